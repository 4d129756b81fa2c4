"""``ggop-adapter worker``, ``ggop-adapter routes check`` and ``ggop-adapter outbox …``.

Exit codes as elsewhere: 0 fine, 3 a configuration problem (a located ``GGOP-E501`` line,
a failed probe, a second worker on SQLite), 2 an operator asked for something that is not
there (an unknown outbox id).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from adapter.danish_time import utc_now
from adapter.errors import AdapterError

if TYPE_CHECKING:
    from adapter.runtime import Runtime

EXIT_OK, EXIT_NOT_FOUND, EXIT_CONFIG = 0, 2, 3
ROUTES_OPTION = click.option("--routes", "routes_file", type=click.Path(dir_okay=False),
                             help="Routing table (default: $ADAPTER_ROUTING_FILE or adapter/mappings/routing.yaml).")


def _runtime(routes_file: str | None = None) -> Runtime:
    """The process runtime (the same settings, tables and rules as every other entry point);
    ``--routes`` replaces the routing file it names."""
    from dataclasses import replace

    from adapter.errors import ConfigError
    from adapter.runtime import load_runtime

    try:
        runtime = load_runtime()
    except ConfigError as exc:
        _fail(exc)
    return replace(runtime, routing_file=Path(routes_file)) if routes_file else runtime


def _fail(exc: AdapterError) -> NoReturn:
    for i in exc.issues:
        click.echo(i.render_line(i.location.xpath.split("#", 1)[0] if i.location.xpath else "-"), err=True)
    sys.exit(EXIT_CONFIG)


# --------------------------------------------------------------------------------------------
# worker
# --------------------------------------------------------------------------------------------


@click.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (tests, cron).")
@ROUTES_OPTION
@click.option("--poll-interval", default=2.0, show_default=True, type=click.FloatRange(0.05, 3600),
              help="Seconds between looks at the outbox when nothing is due.")
@click.option("--quiet", is_flag=True, help="Only warnings and alerts.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Rows delivered at a time (threads).")
@click.option("--per-recipient", default=2, show_default=True, type=click.IntRange(1, 64),
              help="At most this many of them to one recipient, so a slow one never holds up the others.")
def worker(once: bool, routes_file: str | None, poll_interval: float, quiet: bool, concurrency: int,
           per_recipient: int) -> None:
    """Deliver the outbox: push to municipal FHIR servers, mark pull recipients, retry, dead-letter.

    Several workers may run against PostgreSQL; SQLite allows one. SIGTERM stops after the
    delivery in hand."""
    from adapter.errors import ConfigError
    from adapter.routing.worker import Worker, WorkerBusy

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    runtime = _runtime(routes_file)
    from adapter.metrics import enable_multiprocess

    enable_multiprocess(runtime.settings.metrics_dir)  # its deliveries count in the service's /metrics
    w = Worker(runtime.engine, runtime.routes(), poll_interval=poll_interval, concurrency=concurrency,
               per_recipient=per_recipient)
    signal.signal(signal.SIGTERM, w.stop)
    signal.signal(signal.SIGINT, w.stop)
    try:
        stats = w.run(once=once)
    except WorkerBusy as exc:
        click.echo(f"worker: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except ConfigError as exc:
        _fail(exc)
    finally:
        runtime.engine.dispose()
    if once:
        click.echo(f"worker: {stats.line()}", err=True)


# --------------------------------------------------------------------------------------------
# routes
# --------------------------------------------------------------------------------------------


@click.group()
def routes() -> None:
    """The routing table: recipient → endpoint."""


@routes.command("check")
@ROUTES_OPTION
@click.option("--probe", is_flag=True, help="Also GET <base_url>/metadata of every push route.")
def routes_check(routes_file: str | None, probe: bool) -> None:
    """Check the routing table; exit 3 with a located GGOP-E501 line when it is broken."""
    import requests

    from adapter.errors import ConfigError
    from adapter.routing.delivery import probe as probe_route
    from adapter.routing.routes import PUSH, load_routing

    try:
        runtime = _runtime(routes_file)
        table = load_routing(runtime.routing_file, runtime.tables)
    except ConfigError as exc:
        _fail(exc)
    push = [r for r in table.routes.values() if r.mode == PUSH]
    default = "pull (served by /fhir)" if table.municipality_default else "none (unroutable until listed)"
    click.echo(f"{table.path}: ok, {len(table.routes)} routes ({len(push)} push, "
               f"{len(table.routes) - len(push)} pull); municipalities without an entry: {default}")
    for r in table.routes.values():
        click.echo(f"  {r.describe()}")
    for w in table.warnings():
        click.echo(f"warning: {w}", err=True)
    if not probe:
        return
    failed = 0
    session = requests.Session()
    for r in push:
        ok, text = probe_route(session, r)
        failed += 0 if ok else 1
        click.echo(f"probe {r.key} {r.base_url}/metadata: {'ok' if ok else 'FAILED'} ({text})")
    if failed:
        click.echo(f"{failed} of {len(push)} push endpoints failed the probe", err=True)
        sys.exit(EXIT_CONFIG)


# --------------------------------------------------------------------------------------------
# outbox
# --------------------------------------------------------------------------------------------


@click.group()
def outbox() -> None:
    """What is waiting to be delivered, and why; replay and cancel."""


def _count_line(counts: dict[str, int]) -> str:
    return "outbox: " + ", ".join(f"{state} {n}" for state, n in counts.items())


@outbox.command("list")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["pending", "unroutable", "delivered", "dead", "cancelled"]),
              help="Only rows in this state (repeatable). Default: what is waiting (pending, unroutable, dead).")
@click.option("--all", "show_all", is_flag=True, help="Every state, delivered and cancelled too.")
@click.option("--recipient", help="Only this recipient, e.g. municipality:0851.")
@click.option("--message", "message_id", type=int, help="Only rows of this message id.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True)
def outbox_list(states: tuple[str, ...], show_all: bool, recipient: str | None, message_id: int | None,
                limit: int, as_json: bool) -> None:
    """Counts per state, then one line per row with why it is where it is."""
    from adapter.routing import outbox as box

    engine = _runtime().engine
    if not states and not show_all:
        states = (box.PENDING, box.UNROUTABLE, box.DEAD)
    now = utc_now()
    with engine.connect() as conn:
        counts = box.counts(conn)
        rows = box.list_rows(conn, states=() if show_all else states, recipient=recipient, message_id=message_id,
                             limit=limit)
    engine.dispose()
    if as_json:
        click.echo(json.dumps({"counts": counts, "rows": [{
            "id": v.row.id, "message": v.row.message_id, "recipient": v.row.recipient, "role": v.row.role,
            "state": v.row.state, "attempts": v.row.attempts, "lastStatus": v.row.last_status,
            "mode": v.row.mode, "blockedBy": v.blocked_by[0] if v.blocked_by else None, "why": v.why(now),
        } for v in rows]}, indent=2))
        return
    click.echo(_count_line(counts))
    if counts[box.UNROUTABLE]:
        click.echo(f"ALERT {counts[box.UNROUTABLE]} row(s) unroutable: add their recipients to the routing table")
    if counts[box.DEAD]:
        click.echo(f"ALERT {counts[box.DEAD]} dead letter(s): fix the cause, then `ggop-adapter outbox replay`")
    for v in rows:
        r = v.row
        click.echo(f"#{r.id:<6} message {r.message_id:<6} {r.recipient:<28} {r.role:<9} {r.state:<10} {v.why(now)}")
    if not rows:
        click.echo("(no rows" + ("" if show_all else " waiting") + ")")


@outbox.command("show")
@click.argument("row_id", type=int)
@click.option("--payload", "with_payload", is_flag=True,
              help="Also print the payload Bundle (it holds patient data: handle the output accordingly).")
def outbox_show(row_id: int, with_payload: bool) -> None:
    """Everything about one row (the payload only as counts unless --payload)."""
    from adapter.routing import outbox as box

    engine = _runtime().engine
    with engine.connect() as conn:
        row = box.get_row(conn, row_id)
        blocked = box.blocker(conn, row) if row is not None and row.state == box.PENDING else None
        payload = box.payload_of(conn, row) if row is not None else None
    engine.dispose()
    if row is None:
        click.echo(f"outbox #{row_id}: no such row", err=True)
        sys.exit(EXIT_NOT_FOUND)
    view = box.RowView(row, blocked)
    fields = ["id", "message_id", "recipient", "addresses", "role", "order_key", "state", "mode", "endpoint",
              "attempts", "created_at", "last_attempt_at", "next_attempt_at", "failing_since", "delivered_at",
              "last_status", "last_error"]
    for f in fields:
        value = getattr(row, f)
        if isinstance(value, dt.datetime):
            value = box.utc_text(value)
        click.echo(f"{f:<16} {value if value is not None else '-'}")
    click.echo(f"{'why':<16} {view.why(utc_now())}")
    payload = payload or {}
    kinds: dict[str, int] = {}
    for e in payload.get("entry", []):
        t = e.get("resource", {}).get("resourceType", "?")
        kinds[t] = kinds.get(t, 0) + 1
    click.echo(f"{'payload':<16} Bundle {payload.get('id', '-')} ({payload.get('type', 'none')}): "
               + (", ".join(f"{t} {n}" for t, n in sorted(kinds.items())) or "empty"))
    if with_payload and payload:
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))


@outbox.command("replay")
@click.argument("row_ids", nargs=-1, type=int)
@click.option("--recipient", help="Every dead row of this recipient (after an outage).")
@click.option("--include-delivered", is_flag=True,
              help="With --recipient: also resend what was delivered (e.g. the receiver lost its data).")
def outbox_replay(row_ids: tuple[int, ...], recipient: str | None, include_delivered: bool) -> None:
    """Send rows again from now: dead letters by id, or everything dead for a recipient."""
    from adapter.routing import outbox as box

    if not row_ids and not recipient:
        raise click.UsageError("name outbox ids, or --recipient KEY")
    engine = _runtime().engine
    with engine.begin() as conn:
        done = box.replay(conn, ids=row_ids, recipient=recipient, include_delivered=include_delivered, now=utc_now())
        counts = box.counts(conn)
    engine.dispose()
    click.echo(f"replayed {len(done)} row(s)" + (": " + ", ".join(f"#{i}" for i in done) if done else ""))
    click.echo(_count_line(counts))
    missing = sorted(set(row_ids) - set(done))
    if missing:
        click.echo("not replayed (no such row, or already delivered): " + ", ".join(f"#{i}" for i in missing),
                   err=True)
        sys.exit(EXIT_NOT_FOUND)


@outbox.command("cancel")
@click.argument("row_ids", nargs=-1, type=int, required=True)
def outbox_cancel(row_ids: tuple[int, ...]) -> None:
    """Stop delivering rows that are not delivered yet (pending, unroutable or dead)."""
    from adapter.routing import outbox as box

    engine = _runtime().engine
    with engine.begin() as conn:
        done = box.cancel(conn, row_ids, reason=f"cancelled by an operator at {box.utc_text(utc_now())}")
        counts = box.counts(conn)
    engine.dispose()
    click.echo(f"cancelled {len(done)} row(s)" + (": " + ", ".join(f"#{i}" for i in done) if done else ""))
    click.echo(_count_line(counts))
    missing = sorted(set(row_ids) - set(done))
    if missing:
        click.echo("not cancelled (no such row, or already delivered or cancelled): "
                   + ", ".join(f"#{i}" for i in missing), err=True)
        sys.exit(EXIT_NOT_FOUND)


def commands() -> list[click.Command]:
    return [worker, routes, outbox]
