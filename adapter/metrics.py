"""Prometheus metrics: what the service and the worker count, and what ``/metrics`` serves.

Counted where it happens (``prometheus_client`` counters and histograms):

* ``ggop_adapter_messages_received_total{type,result}``, ``…_accepted_total{type}``,
  ``…_refused_total{type,refuse_code,code}``: every message through ingest (API and inbox);
* ``ggop_adapter_ingest_seconds{result}`` and ``ggop_adapter_conversion_seconds{type}``;
* ``ggop_adapter_rule_firings_total{rule,kind}``: stratification rules that fired and deadline
  rules that made a Task;
* ``ggop_adapter_delivery_attempts_total{recipient,outcome}``, ``ggop_adapter_dead_letters_total{recipient}``
  (the worker);
* ``ggop_adapter_console_actions_total{action,outcome}`` (the console).

Read from the store at scrape time (at most every :data:`STORE_CACHE_SECONDS`):

* ``ggop_adapter_outbox_rows{recipient,state}`` and ``ggop_adapter_outbox_oldest_age_seconds{recipient,state}``
  for the rows that wait (pending, unroutable, dead);
* ``ggop_adapter_tasks_open{municipality,kind}`` and ``ggop_adapter_tasks_overdue{municipality,kind}``.

Labels are codes only: message type, result, MedCom refuse code, issue code, rule id,
recipient key (``municipality:0461``, ``gln:…`` of an organisation), municipality code and
Task code. Never a CPR number, a name or free text.

Several processes. Under gunicorn every worker counts into files in one folder
(``prometheus_client``'s multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``): ``ggop-adapter
serve`` points it at ``ADAPTER_METRICS_DIR`` (default ``var/metrics``) before any metric is
made, removes the files of processes that are gone, and any worker answers ``/metrics`` with
the sum. ``ggop-adapter worker`` on the same machine counts into the same folder, so its
deliveries appear there too. ``prometheus_client`` is imported on first use, so the choice
of mode is always made after the folder is set.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import and_, case, func, select

from adapter.store.schema import messages, outbox, resources

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PREFIX = "ggop_adapter"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STORE_CACHE_SECONDS = 15.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FINAL_TASK_STATUSES = ("completed", "cancelled", "failed", "rejected", "entered-in-error")
WAITING = ("pending", "unroutable", "dead")
_SAFE_LABEL = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")

F = TypeVar("F", bound=Callable[..., Any])


def label(value: object) -> str:
    """A label value: a short code as it is, anything else ``other`` (never free text)."""
    text = "" if value is None else str(value)
    if not text:
        return "none"
    return text if _SAFE_LABEL.match(text) else "other"


# --------------------------------------------------------------------------------------------
# Where the counts live
# --------------------------------------------------------------------------------------------


def enable_multiprocess(directory: str | Path, *, clean: bool = False) -> Path:
    """Count into ``directory`` (shared by every process that sets it). ``clean`` removes the
    files of processes that no longer run (the service does this when it starts)."""
    path = Path(os.environ.get(MULTIPROC_ENV) or directory)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    if clean:
        for f in path.glob("*.db"):
            pid = f.stem.rsplit("_", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    f.unlink()
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class _Metrics:
    """The counters and histograms, made on first use (after the mode is chosen)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # the *_created series only double every series here
        # single-process mode: a registry of their own; multiprocess mode: the files are the truth
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.received = Counter(f"{PREFIX}_messages_received", "MedCom messages received, by type and result.",
                                ["type", "result"], registry=reg)
        self.accepted = Counter(f"{PREFIX}_messages_accepted", "MedCom messages accepted, by type.",
                                ["type"], registry=reg)
        self.refused = Counter(f"{PREFIX}_messages_refused",
                               "MedCom messages refused, by type, MedCom refuse code and first error code.",
                               ["type", "refuse_code", "code"], registry=reg)
        self.ingest = Histogram(f"{PREFIX}_ingest_seconds", "Time to store, check, convert and answer one message.",
                                ["result"], buckets=LATENCY_BUCKETS, registry=reg)
        self.conversion = Histogram(f"{PREFIX}_conversion_seconds", "Time to convert one accepted message to FHIR.",
                                    ["type"], buckets=LATENCY_BUCKETS, registry=reg)
        self.rules = Counter(f"{PREFIX}_rule_firings", "Rules that fired on accepted plans, by rule id and kind.",
                             ["rule", "kind"], registry=reg)
        self.attempts = Counter(f"{PREFIX}_delivery_attempts", "Outbox delivery attempts, by recipient and outcome.",
                                ["recipient", "outcome"], registry=reg)
        self.dead = Counter(f"{PREFIX}_dead_letters", "Outbox rows that became dead letters, by recipient.",
                            ["recipient"], registry=reg)
        self.console = Counter(f"{PREFIX}_console_actions", "Operator console actions, by action and outcome.",
                               ["action", "outcome"], registry=reg)


_METRICS: _Metrics | None = None
_LOCK = threading.Lock()


def metrics() -> _Metrics:
    global _METRICS
    if _METRICS is None:
        with _LOCK:
            if _METRICS is None:
                _METRICS = _Metrics()
    return _METRICS


# --------------------------------------------------------------------------------------------
# Hooks (one line each where it happens)
# --------------------------------------------------------------------------------------------


def counted_ingest(fn: F) -> F:
    """Around ``ingest``: the latency of the whole transaction, by result."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        result = "failed"
        try:
            out = fn(*args, **kwargs)
            result = out.state
            return out
        finally:
            metrics().ingest.labels(label(result)).observe(time.perf_counter() - started)

    return wrapper  # type: ignore[return-value]


def counted_messages(fn: F) -> F:
    """Around ``_ingest(conn, …)``: counts each message by type and result (refusals by
    MedCom refuse code and first error code); a processing defect counts as ``failed``."""

    @wraps(fn)
    def wrapper(conn, *args, **kwargs):
        try:
            out = fn(conn, *args, **kwargs)
        except Exception as exc:
            from adapter.errors import MappingError

            if isinstance(exc, MappingError):
                metrics().received.labels("unknown", "failed").inc()
            raise
        kind = conn.execute(select(messages.c.kind).where(messages.c.id == out.message_id)).scalar()
        observe_message(kind, out.state, out.issues)
        return out

    return wrapper  # type: ignore[return-value]


def observe_message(kind: str | None, state: str, issues: list) -> None:
    m = metrics()
    kind = label(kind or "unknown")
    m.received.labels(kind, label(state)).inc()
    if state == "accepted":
        m.accepted.labels(kind).inc()
    elif state == "refused":
        first = next((i for i in issues if i.is_error), issues[0] if issues else None)
        refuse = first.info.refuse_code if first is not None else "ikke_specificeret"
        m.refused.labels(kind, label(refuse), label(first.code if first is not None else None)).inc()


@contextlib.contextmanager
def conversion_timer(kind: str | None = None) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics().conversion.labels(label(kind or "message")).observe(time.perf_counter() - started)


def observe_rules(trace: dict | None) -> None:
    """The rules behind an accepted plan: stratification rules that fired, deadline rules that
    made a Task."""
    if not trace:
        return
    m = metrics()
    for fired in (trace.get("stratification") or {}).get("fired", []):
        m.rules.labels(label(fired.get("rule")), "stratification").inc()
    for d in trace.get("deadlines") or []:
        m.rules.labels(label(d.get("rule")), "deadline").inc()


def observe_delivery(row, change: dict) -> None:
    """One outcome of the worker for an outbox row (``change`` as the worker records it)."""
    m = metrics()
    recipient = label(row.recipient)
    state = change.get("state")
    if state == "delivered":
        outcome = "pull" if change.get("mode") == "pull" else "delivered"
    elif state == "pending":
        outcome = "retry"
    else:
        outcome = label(state)
    m.attempts.labels(recipient, outcome).inc()
    if state == "dead":
        m.dead.labels(recipient).inc()


def observe_console(action: str, outcome: str) -> None:
    metrics().console.labels(label(action), label(outcome)).inc()


# --------------------------------------------------------------------------------------------
# The store's state at scrape time
# --------------------------------------------------------------------------------------------


class StoreCollector:
    """Gauges read from the store: the outbox rows that wait and the open Tasks."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime]):
        self.engine = engine
        self.clock = clock
        self._cache: tuple[float, list] | None = None
        self._lock = threading.Lock()

    def describe(self) -> list:
        return []

    def collect(self) -> list:
        with self._lock:
            if self._cache is not None and time.monotonic() - self._cache[0] < STORE_CACHE_SECONDS:
                return self._cache[1]
            families = self._read()
            self._cache = (time.monotonic(), families)
            return families

    def _read(self) -> list:
        from prometheus_client.core import GaugeMetricFamily

        from adapter.danish_time import DANISH_TIME, as_utc

        now = self.clock().astimezone(dt.UTC)
        rows = GaugeMetricFamily(f"{PREFIX}_outbox_rows", "Outbox rows waiting, by recipient and state.",
                                 labels=["recipient", "state"])
        age = GaugeMetricFamily(f"{PREFIX}_outbox_oldest_age_seconds",
                                "Age of the oldest waiting outbox row, by recipient and state.",
                                labels=["recipient", "state"])
        open_tasks = GaugeMetricFamily(f"{PREFIX}_tasks_open", "Open deadline Tasks, by municipality and kind.",
                                       labels=["municipality", "kind"])
        overdue = GaugeMetricFamily(f"{PREFIX}_tasks_overdue", "Open deadline Tasks past their due time, by "
                                    "municipality and kind.", labels=["municipality", "kind"])
        status = resources.c.content["status"].as_string()
        code = resources.c.content[("code", "coding", 0, "code")].as_string()
        due = func.substr(resources.c.content[("restriction", "period", "end")].as_string(), 1, 19)
        local_now = now.astimezone(DANISH_TIME).strftime("%Y-%m-%dT%H:%M:%S")
        late = case((and_(due.is_not(None), due < local_now), 1), else_=0)
        with self.engine.connect() as conn:
            waiting = (select(outbox.c.recipient, outbox.c.state, func.count(), func.min(outbox.c.created_at))
                       .where(outbox.c.state.in_(WAITING)).group_by(outbox.c.recipient, outbox.c.state))
            for r in conn.execute(waiting):
                labels = [label(r[0]), label(r[1])]
                rows.add_metric(labels, float(r[2]))
                if r[3] is not None:
                    age.add_metric(labels, max(0.0, (now - as_utc(r[3])).total_seconds()))
            q = (select(resources.c.municipality, code, func.count(), func.sum(late))
                 .where(resources.c.type == "Task", resources.c.deleted.is_(False),
                        status.not_in(FINAL_TASK_STATUSES))
                 .group_by(resources.c.municipality, code))
            for r in conn.execute(q):
                labels = [label(r[0]), label(r[1])]
                open_tasks.add_metric(labels, float(r[2]))
                overdue.add_metric(labels, float(r[3] or 0))
        return [rows, age, open_tasks, overdue]


def exposition(collector: StoreCollector | None) -> bytes:
    """The text exposition of every count (all processes' in multiprocess mode) and the store's
    gauges."""
    from prometheus_client import CollectorRegistry, generate_latest

    directory = multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        counts = CollectorRegistry()
        multiprocess.MultiProcessCollector(counts, path=directory)
    else:
        counts = metrics().registry
    out = generate_latest(counts)
    if collector is not None:
        store = CollectorRegistry(auto_describe=False)
        store.register(collector)
        out += generate_latest(store)
    return out


# --------------------------------------------------------------------------------------------
# GET /metrics
# --------------------------------------------------------------------------------------------


def register_endpoint(app, engine_of: Callable[[], Engine], clock: Callable[[], dt.datetime], public: bool) -> None:
    """``GET /metrics``: for an operator's bearer token (``ADAPTER_METRICS_PUBLIC=1``: for anyone,
    e.g. a scraper on a private network); 401 ``GGOP-E707`` otherwise."""
    from flask import Response, g

    collector: list[StoreCollector] = []

    def view() -> Response:
        client = g.get("client")
        if not public and (client is None or client.role != "operator"):
            from adapter.api.responses import outcome_response
            from adapter.errors import issue
            from adapter.outcome import outcome_issue

            return outcome_response([outcome_issue(issue("GGOP-E707", None, "/metrics"))], 401)
        if not collector:
            collector.append(StoreCollector(engine_of(), clock))
        return Response(exposition(collector[0]), mimetype=None, content_type=CONTENT_TYPE)

    app.add_url_rule("/metrics", "metrics", view, methods=["GET"])
