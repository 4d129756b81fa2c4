"""The outbox worker: takes due rows, finds their route, delivers, records the outcome.

Claiming. On PostgreSQL each row is taken with ``SELECT … FOR UPDATE SKIP LOCKED`` and the
row stays locked, in that one transaction, while it is delivered: several workers never take
the same row, and a worker that dies mid-delivery loses its connection, so the row is free
again at once and the next worker delivers it (entries are PUTs with fixed ids, so a
repeated delivery changes nothing at the receiver). On SQLite there is one worker per
database file (an exclusive lock on ``<database>.worker.lock``; a second one refuses to
start); the row is read in one short transaction and its outcome written in another, so
the hospitals' pushes are never held up by a slow endpoint.

Order. A row waits while an earlier row for the same patient (``order_key``) and the same
recipient is pending, unroutable or dead, so a correction never overtakes its original.

Concurrency. A worker delivers ``concurrency`` rows at a time (threads, each with its own
connection and HTTP session), at most ``per_recipient`` of them to one recipient: a slow or
stalled municipality holds those lanes only, and the other recipients' rows go past it. A row
in hand stays ``pending`` until its outcome is committed, so the order check above keeps a
patient's later rows waiting behind it, in this worker and in any other.

Outcomes. Pull routes: delivered at once (``mode`` pull; the recipient reads ``/fhir``).
No route: ``unroutable`` with an ALERT log line, re-checked every
``unroutable_recheck_seconds`` and at once when the routing file changes. Push: delivered;
or retried with exponential backoff and jitter (or the server's ``Retry-After``, at most 24 h
and never past the end) until ``max_age_hours`` after the first failure, then dead; or dead
at once for a permanent refusal, with the last status and a short reason.

One row never stops the worker: an unexpected error while dealing with a row (or writing its
outcome) makes that row a dead letter, ``internal error (<exception type>)``, with an ALERT
log line naming the type only (an exception's text may carry patient data), and the worker
goes on with the next row. Only a database error is not the row's fault: the row stays as it
was, and the worker waits and tries again.

Stopping. :meth:`Worker.stop` (SIGTERM) lets the delivery in hand finish, but gives it up
after ``delivery.STOP_GRACE`` seconds when its endpoint holds it; that row stays due, as if
never tried. Each request is bounded by its route's timeout in all and reads at most
``max_response_bytes`` of an answer (``adapter/routing/delivery.py``).

The clock, the sleep, the random source and the HTTP session are parameters, so tests can
drive a worker through days of retries in milliseconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import random
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import requests
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from adapter.danish_time import as_utc, utc_now
from adapter.errors import ConfigError
from adapter.logs import log_delivery
from adapter.metrics import observe_delivery
from adapter.routing.delivery import ABORTED, MAX_RESPONSE_BYTES, MAX_RETRY_AFTER, PERMANENT, Outcome, deliver
from adapter.routing.delivery import DELIVERED as OK
from adapter.routing.outbox import BLOCKING, DEAD, DELIVERED, PENDING, UNROUTABLE
from adapter.routing.routes import PULL, PUSH, Retry, RoutingTable
from adapter.store.schema import outbox, resources

log = logging.getLogger("adapter.routing")
UTC = dt.UTC
MIN_DELAY = 1.0  # seconds: a Retry-After of 0 never makes a tight loop
CLAIM_BATCH = 50


class WorkerBusy(Exception):
    """Another worker holds this SQLite database."""


def _database_trouble(exc: Exception) -> bool:
    """The database failed (gone, restarted, a lost connection), not one row: every error of the
    driver except a value or a constraint it refuses (a defect met with one row)."""
    return isinstance(exc, DBAPIError) and not isinstance(exc, (DataError, IntegrityError))


@dataclass
class Stats:
    delivered: int = 0
    pulled: int = 0
    retried: int = 0
    dead: int = 0
    unroutable: int = 0

    def line(self) -> str:
        return (f"delivered {self.delivered}, pull {self.pulled}, to retry {self.retried}, dead {self.dead}, "
                f"unroutable {self.unroutable}")



class Worker:
    def __init__(self, engine: Engine, routes, *, clock: Callable[[], dt.datetime] | None = None,
                 sleep: Callable[[float], object] | None = None, rng: random.Random | None = None,
                 session: requests.Session | None = None, name: str | None = None, poll_interval: float = 2.0,
                 alert_interval: float = 3600.0, env: Mapping[str, str] | None = None,
                 max_response_bytes: int = MAX_RESPONSE_BYTES, concurrency: int = 1, per_recipient: int = 1):
        self.engine = engine
        self.routes = routes  # RoutesFile or FixedRoutes: .load() and .refresh()
        self.clock = clock or utc_now
        self._stop = threading.Event()
        self.sleep = sleep or self._stop.wait
        self.rng = rng or random.Random()
        self._shared_session = session  # tests pass one; otherwise one per delivering thread
        self._sessions = threading.local()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_interval = poll_interval
        self.alert_interval = alert_interval
        self.env = env
        self.max_response_bytes = max_response_bytes
        self.postgres = engine.dialect.name == "postgresql"
        self.table: RoutingTable | None = None
        self.stats = Stats()
        self._lock_file: TextIO | None = None
        self._last_alert: dt.datetime | None = None
        self.concurrency = max(1, concurrency)
        self.per_recipient = max(1, per_recipient)
        self._busy = threading.Lock()
        self._in_hand: set[int] = set()  # rows being delivered by this worker's threads
        self._lanes: dict[str, int] = {}  # recipient -> rows in hand

    @property
    def session(self) -> requests.Session:
        if self._shared_session is not None:
            return self._shared_session
        own = getattr(self._sessions, "session", None)
        if own is None:
            own = self._sessions.session = requests.Session()
        return own

    # -- life cycle ---------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.clock().astimezone(UTC)

    def stop(self, *_args) -> None:
        """Finish the delivery in hand, or give it up after ``delivery.STOP_GRACE`` seconds, then
        stop (the SIGTERM handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def acquire(self) -> None:
        if self.engine.dialect.name != "sqlite":
            return
        database = self.engine.url.database
        if not database or database == ":memory:":
            return
        import fcntl

        path = Path(database + ".worker.lock")
        fh = open(path, "a+")  # noqa: SIM115 - held for the worker's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise WorkerBusy(f"another worker is running on this SQLite database (lock {path}); SQLite allows "
                             "one worker: stop it, or use PostgreSQL to run several") from None
        self._lock_file = fh

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def run(self, once: bool = False) -> Stats:
        """Deliver until stopped; with ``once``, until nothing is due, then return."""
        self.acquire()
        try:
            if self.table is None:
                self.table = self.routes.load()
            log.info("worker %s started: %s, %d routes in %s", self.name, self.engine.dialect.name,
                     len(self.table.routes), self.table.path)
            self._alert_summary(force=True)
            if self.concurrency == 1:
                self._loop(once, lead=True)
            else:
                self._run_threads(once)
        finally:
            self.release()
        log.info("worker %s stopped: %s", self.name, self.stats.line())
        return self.stats

    def _loop(self, once: bool, lead: bool) -> None:
        """Take and deliver rows until stopped (or, ``once``, until nothing is due). The lead
        loop also reloads the routing table and writes the periodic alert summary."""
        while not self.stopping:
            try:
                if lead:
                    self._refresh()
                if self.step():
                    continue
                if once:
                    break
                if lead:
                    self._alert_summary()
            except DBAPIError as exc:
                # The database went away (restart, failover, a killed connection): nothing is
                # lost, the row in hand is still pending; wait and carry on.
                if once:
                    raise
                log.error("ALERT database error (%s); trying again in %g s", type(exc.orig).__name__,
                          self.poll_interval)
            self.sleep(self.poll_interval)

    def _run_threads(self, once: bool) -> None:
        """``concurrency`` loops side by side; the first error of a ``once`` run is raised."""
        errors: list[BaseException] = []

        def loop(lead: bool) -> None:
            try:
                self._loop(once, lead)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                errors.append(exc)
                self._stop.set()

        threads = [threading.Thread(target=loop, args=(n == 0,), name=f"deliver-{n}", daemon=True)
                   for n in range(self.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _take(self, row) -> bool:
        """Hold ``row`` for this thread, unless another thread has it or its recipient's lanes are full."""
        with self._busy:
            if row.id in self._in_hand or self._lanes.get(row.recipient, 0) >= self.per_recipient:
                return False
            self._in_hand.add(row.id)
            self._lanes[row.recipient] = self._lanes.get(row.recipient, 0) + 1
            return True

    def _release(self, row) -> None:
        with self._busy:
            self._in_hand.discard(row.id)
            left = self._lanes.get(row.recipient, 1) - 1
            if left > 0:
                self._lanes[row.recipient] = left
            else:
                self._lanes.pop(row.recipient, None)

    def _refresh(self) -> None:
        try:
            table, changed = self.routes.refresh()
        except ConfigError as exc:
            log.error("ALERT routing table not reloaded, the previous one stays in use: %s",
                      exc.issues[0].render_line(str(getattr(self.routes, "path", "-"))))
            return
        self.table = table
        if changed:
            log.info("routing table reloaded: %d routes; unroutable rows are checked again", len(table.routes))
            with self.engine.begin() as conn:
                conn.execute(update(outbox).where(outbox.c.state == UNROUTABLE).values(next_attempt_at=self.now()))

    def _alert_summary(self, force: bool = False) -> None:
        now = self.now()
        if not force and self._last_alert is not None and \
                (now - self._last_alert).total_seconds() < self.alert_interval:
            return
        self._last_alert = now
        with self.engine.connect() as conn:
            found = conn.execute(select(outbox.c.state, func.count()).where(
                outbox.c.state.in_((UNROUTABLE, DEAD))).group_by(outbox.c.state)).all()
            rows: dict[str, int] = {str(state): int(count) for state, count in found}
        if rows:
            log.warning("ALERT outbox: %d unroutable, %d dead (see: ggop-adapter outbox list)",
                        rows.get(UNROUTABLE, 0), rows.get(DEAD, 0))

    # -- one row ------------------------------------------------------------------------------

    def step(self) -> bool:
        """Take one due row and deal with it; False when nothing is due."""
        held: list = []
        try:
            return self._step(held)
        finally:
            for row in held:
                self._release(row)

    def _step(self, held: list) -> bool:
        now = self.now()
        if self.postgres:
            row = None
            try:
                with self.engine.begin() as conn:
                    row = self._claim(conn, now, held)
                    if row is None:
                        return False
                    change = self._work(row, now)
                    if change is not None:
                        self._record(conn, row, change)
            except Exception as exc:
                if row is None or _database_trouble(exc):
                    raise
                self._record_defect(row, exc)  # the transaction is gone: the dead letter gets its own
            return True
        with self.engine.begin() as conn:
            row = self._claim(conn, now, held)
        if row is None:
            return False
        change = self._work(row, now)
        if change is not None:
            try:
                with self.engine.begin() as conn:
                    self._record(conn, row, change)
            except Exception as exc:
                if _database_trouble(exc):
                    raise
                self._record_defect(row, exc)
        return True

    def _record_defect(self, row, exc: Exception) -> None:
        """An outcome the store refused (a defect of ours): the row becomes a dead letter instead."""
        with self.engine.begin() as conn:
            self._record(conn, row, self._internal_error(row, exc, "while recording its outcome"))

    def _where(self, row) -> str:
        return f"outbox #{row.id} {row.recipient} ({row.role}, message {row.message_id})"

    def _internal_error(self, row, exc: Exception, when: str) -> dict:
        """A dead letter for a defect met while dealing with a row: the exception's type only (its
        text, and a trace, may carry patient data)."""
        self.stats.dead += 1
        reason = f"internal error ({type(exc).__name__})"
        log.error("ALERT %s: dead letter, %s %s", self._where(row), reason, when)
        return dict(state=DEAD, next_attempt_at=None, last_error=reason, last_attempt_at=self.now())

    def _claim(self, conn, now: dt.datetime, held: list | None = None):
        """The first due row (pending before unroutable, oldest due time first) that no earlier
        row of the same patient and recipient holds up and no other worker holds.

        Candidates are read in small batches through the (state, next_attempt_at) index and
        each is checked through the (order_key, recipient, id) index, so the cost of a claim
        does not grow with the outbox even before the planner has statistics."""
        for state in (PENDING, UNROUTABLE):
            after = None
            while True:
                q = select(outbox.c.id, outbox.c.order_key, outbox.c.recipient, outbox.c.next_attempt_at).where(
                    outbox.c.state == state, outbox.c.next_attempt_at <= now)
                if after is not None:
                    q = q.where(or_(outbox.c.next_attempt_at > after[0],
                                    and_(outbox.c.next_attempt_at == after[0], outbox.c.id > after[1])))
                batch = conn.execute(q.order_by(outbox.c.next_attempt_at, outbox.c.id).limit(CLAIM_BATCH)).all()
                for c in batch:
                    if not self._take(c):  # another thread has it, or its recipient's lanes are full
                        continue
                    if self._blocked(conn, c):
                        self._release(c)
                        continue
                    take = select(outbox).where(outbox.c.id == c.id, outbox.c.state == state,
                                                outbox.c.next_attempt_at <= now)
                    if self.postgres:
                        take = take.with_for_update(skip_locked=True)
                    row = conn.execute(take).first()
                    if row is not None:
                        if held is not None:
                            held.append(c)
                        else:
                            self._release(c)
                        return row
                    self._release(c)
                if len(batch) < CLAIM_BATCH:
                    break
                after = (batch[-1].next_attempt_at, batch[-1].id)
        return None

    @staticmethod
    def _blocked(conn, c) -> bool:
        return conn.execute(select(outbox.c.id).where(
            outbox.c.order_key == c.order_key, outbox.c.recipient == c.recipient, outbox.c.id < c.id,
            outbox.c.state.in_(BLOCKING)).limit(1)).first() is not None

    def backoff(self, attempts: int, retry: Retry) -> float:
        """Exponential backoff with jitter: half the step fixed, half random."""
        step = min(retry.max_delay, retry.first_delay * 2 ** min(attempts - 1, 40))
        return step / 2 + self.rng.uniform(0, step / 2)

    def _work(self, row, now: dt.datetime) -> dict | None:
        """The change a row's attempt makes (None: given up because the worker is stopping)."""
        try:
            return self._attempt(row, now)
        except Exception as exc:
            if _database_trouble(exc):
                raise  # not the row's fault: run() waits and tries again
            return self._internal_error(row, exc, "while delivering")

    def _attempt(self, row, now: dt.datetime) -> dict | None:
        table = self.table
        assert table is not None, "run() loads the routing table before the first step"
        where = self._where(row)
        keys = (row.recipient, *(row.addresses or ()))
        route = table.lookup(keys)
        if route is None:
            if row.state != UNROUTABLE:
                log.warning("ALERT %s unroutable: no route in %s; it waits until one is added", where, table.path)
            self.stats.unroutable += 1
            also = f" (nor {', '.join(row.addresses)})" if row.addresses else ""
            return dict(state=UNROUTABLE, mode=None, next_attempt_at=now + dt.timedelta(seconds=table.recheck),
                        last_error=f"no route for {row.recipient}{also} in {Path(table.path).name}")
        if route.mode == PULL:
            self.stats.pulled += 1
            log.info("%s: delivered by pull (served by /fhir)", where)
            return dict(state=DELIVERED, mode=PULL, delivered_at=now, next_attempt_at=None, endpoint=None,
                        last_error=None, failing_since=None)
        payload = row.payload if row.payload is not None else self._shared_payload(row)
        try:
            outcome = deliver(self.session, route, payload, message_id=row.message_id, recipient=row.recipient,
                              now=now, env=self.env, should_stop=self._stop.is_set,
                              max_body=self.max_response_bytes)
        except Exception as exc:  # noqa: BLE001 - a defect of ours must not stop the queue behind this row
            # the kind of error only: a trace or an exception text may carry patient data
            log.error("ALERT %s: internal error while delivering (%s)", where, type(exc).__name__)
            outcome = Outcome(PERMANENT, None, f"internal error ({type(exc).__name__})")
        if outcome.kind == ABORTED:
            log.info("%s: delivery to %s given up, the worker is stopping; the row stays due", where,
                     route.base_url)
            return None
        after = self.now()
        attempts = row.attempts + 1
        common = dict(attempts=attempts, last_status=outcome.status, last_attempt_at=after, mode=PUSH,
                      endpoint=(route.base_url or "")[:300])
        if outcome.kind == OK:
            self.stats.delivered += 1
            log.info("%s: delivered to %s (%s, %s, %.2f s, attempt %d)", where, route.base_url, route.payload,
                     outcome.reason, outcome.elapsed, attempts)
            return dict(common, state=DELIVERED, delivered_at=after, next_attempt_at=None, last_error=None,
                        failing_since=None)
        since = as_utc(row.failing_since) if row.failing_since else after
        if outcome.kind == PERMANENT:
            self.stats.dead += 1
            log.warning("ALERT %s: dead letter, refused by %s: %s", where, route.base_url, outcome.reason)
            return dict(common, state=DEAD, next_attempt_at=None, last_error=outcome.reason, failing_since=since)
        deadline = since + route.retry.max_age
        if after >= deadline:
            self.stats.dead += 1
            hours = route.retry.max_age.total_seconds() / 3600
            reason = f"gave up after {attempts} attempts in {hours:g} h; last: {outcome.reason}"[:300]
            log.warning("ALERT %s: dead letter: %s", where, reason)
            return dict(common, state=DEAD, next_attempt_at=None, last_error=reason, failing_since=since)
        delay = outcome.retry_after
        if delay is None or not math.isfinite(delay):
            delay = self.backoff(attempts, route.retry)
        # never past the end of the retries (nor a date out of range: a Retry-After may be any number)
        delay = min(max(MIN_DELAY, delay), MAX_RETRY_AFTER, route.retry.max_age.total_seconds())
        nxt = min(after + dt.timedelta(seconds=delay), deadline)
        self.stats.retried += 1
        log.info("%s: %s; attempt %d failed, next at %s", where, outcome.reason, attempts,
                 nxt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return dict(common, state=PENDING, next_attempt_at=nxt, last_error=outcome.reason, failing_since=since)

    def _shared_payload(self, row) -> dict:
        """The payload stored on another row of the same message (or rebuilt, see below)."""
        from adapter.routing.outbox import payload_of

        with self.engine.connect() as conn:
            payload = payload_of(conn, row)
        return payload if payload is not None else self._rebuild(row)

    def _rebuild(self, row) -> dict:
        """A payload for a row written before payloads were stored: the message's resources."""
        with self.engine.connect() as conn:
            contents = conn.execute(select(resources.c.content).where(
                resources.c.message_id == row.message_id).order_by(resources.c.type, resources.c.id)).scalars().all()
        return {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": f"urn:uuid:{c['id']}", "resource": {k: v for k, v in c.items() if k != "meta"},
             "request": {"method": "PUT", "url": f"{c['resourceType']}/{c['id']}"}} for c in contents]}

    def _record(self, conn, row, change: dict) -> None:
        done = conn.execute(update(outbox).where(and_(outbox.c.id == row.id, outbox.c.state == row.state))
                            .values(**change))
        observe_delivery(row, change)
        log_delivery(conn, row, change)
        if done.rowcount == 0:
            log.warning("outbox #%d was changed by an operator during its delivery; its outcome (%s) is not "
                        "recorded", row.id, change.get("state"))
