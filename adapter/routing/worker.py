"""The outbox worker: takes due rows, finds their route, delivers, records the outcome.

Shape. One coordinating thread does all the database work, in batches: it claims due rows
(one statement for up to :data:`CLAIM_BATCH` rows), hands them to ``concurrency`` delivery
lanes (threads, each with its own HTTP session, so connections to an endpoint are kept
alive), and writes the outcomes the lanes hand back, many in one transaction. At most
``per_recipient`` rows of one recipient are delivered at a time: a slow or stalled
municipality holds those lanes only, and the other recipients' rows go past it.

Claiming. The claim picks, in SQL, the due rows (pending before unroutable, oldest due time
first) that no earlier row of the same patient (``order_key``) and recipient holds up (one
pending, unroutable or dead: a correction never overtakes its original), at most
``per_recipient`` per recipient. On PostgreSQL it takes them with ``SELECT … FOR UPDATE SKIP
LOCKED`` (two workers claiming at the same moment never pick the same row; a row changed by
another worker since the statement began is checked again against its newest version), and
in the same statement takes a session-level advisory lock per row on the worker's own
connection. The advisory lock marks the row as in hand until its outcome is committed: the
claims of every worker leave rows locked that way alone, so no row is delivered twice. A
worker that dies loses its connection, and with it its locks: its rows are free again at
once, and the next worker delivers them (entries are PUTs with fixed ids, so a repeated
delivery changes nothing at the receiver). On SQLite there is one worker per database file
(an exclusive lock on ``<database>.worker.lock``; a second one refuses to start). A row in
hand stays ``pending`` until its outcome is committed, so the order check keeps a patient's
later rows waiting behind it, in this worker and in any other. Transactions are short on
both: the hospitals' pushes are never held up by a slow endpoint.

Outcomes. Pull routes: delivered at once (``mode`` pull; the recipient reads ``/fhir``).
No route: ``unroutable`` with an ALERT log line, re-checked every
``unroutable_recheck_seconds`` and at once when the routing file changes. Push: delivered;
or retried with exponential backoff and jitter (or the server's ``Retry-After``, at most 24 h
and never past the end) until ``max_age_hours`` after the first failure, then dead; or dead
at once for a permanent refusal, with the last status and a short reason. An outcome is only
written while the row is still as it was claimed (state and attempts): an operator's cancel
during a delivery stands.

One row never stops the worker: an unexpected error while dealing with a row (or writing its
outcome) makes that row a dead letter, ``internal error (<exception type>)``, with an ALERT
log line naming the type only (an exception's text may carry patient data), and the worker
goes on with the next row. Only a database error is not the row's fault: the row stays as it
was, and the worker waits and tries again.

Stopping. :meth:`Worker.stop` (SIGTERM) lets the deliveries in hand finish, but gives one up
after ``delivery.STOP_GRACE`` seconds when its endpoint holds it; that row stays due, as if
never tried, and so do the claimed rows no lane had started. Each request is bounded by its
route's timeout in all and reads at most ``max_response_bytes`` of an answer
(``adapter/routing/delivery.py``).

The clock, the sleep, the random source and the HTTP session are parameters, so tests can
drive a worker through days of retries in milliseconds.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import math
import os
import queue
import random
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

import requests
from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Text,
    all_,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from adapter.danish_time import as_utc, utc_now
from adapter.errors import ConfigError
from adapter.logs import CORRELATE, log_delivery
from adapter.metrics import observe_delivery
from adapter.routing.delivery import (
    ABORTED,
    MAX_RESPONSE_BYTES,
    MAX_RETRY_AFTER,
    PERMANENT,
    Outcome,
    deliver,
    quiet_session,
)
from adapter.routing.delivery import DELIVERED as OK
from adapter.routing.outbox import BLOCKING, DEAD, DELIVERED, PENDING, UNROUTABLE
from adapter.routing.routes import PULL, PUSH, Retry, RoutingTable
from adapter.store.schema import audit, outbox, resources

log = logging.getLogger("adapter.routing")
UTC = dt.UTC
MIN_DELAY = 1.0  # seconds: a Retry-After of 0 never makes a tight loop
CLAIM_BATCH = 64  # the most rows one claim statement takes
WAIT_TICK = 0.2  # seconds the coordinator waits for a lane before looking at the stop flag again
# PostgreSQL advisory locks of rows in hand: (LOCK_SPACE, row id modulo LOCK_MODULO). Two rows
# sharing a key only means one waits for the other; it never lets a row be taken twice.
LOCK_SPACE = 0x67670001
LOCK_MODULO = 2147483647


class WorkerBusy(Exception):
    """Another worker holds this SQLite database."""


def _database_trouble(exc: BaseException) -> bool:
    """The database failed (gone, restarted, a lost connection), not one row: every error of the
    driver except a value or a constraint it refuses (a defect met with one row)."""
    return isinstance(exc, DBAPIError) and not isinstance(exc, (DataError, IntegrityError))


def _stored_json(value: str | None) -> bytes | None:
    """A JSON column read as its text: the UTF-8 bytes to send, None for no payload."""
    if value is None or value == "null":
        return None
    return value.encode("utf-8")


class _Mismatch(Exception):
    """A batch of outcomes matched fewer rows than it names: written again one by one."""


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


_STOP_LANE = None  # the job that ends a lane


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
        self._abandon = threading.Event()  # the loop ended on an error: give deliveries in hand up
        self.sleep = sleep or self._stop.wait
        self.rng = rng or random.Random()
        self._shared_session = session  # tests pass one; otherwise one per delivery lane
        self._sessions = threading.local()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_interval = poll_interval
        self.alert_interval = alert_interval
        self.env = env
        self.max_response_bytes = max_response_bytes
        self.postgres = engine.dialect.name == "postgresql"
        self.table: RoutingTable | None = None
        self.stats = Stats()
        self._stats_lock = threading.Lock()
        self._lock_file: TextIO | None = None
        self._last_alert: dt.datetime | None = None
        self.concurrency = max(1, concurrency)
        self.per_recipient = max(1, per_recipient)
        # the coordinator's state (its thread alone touches it)
        self._conn: Connection | None = None  # holds the advisory locks of the rows in hand (PostgreSQL)
        self._generation = 0  # which connection took a row's lock; a lost connection lost its locks
        self._held: dict[int, Any] = {}  # rows in hand: waiting for a lane or being delivered
        self._held_per_recipient: collections.Counter[str] = collections.Counter()
        self._waiting: collections.deque = collections.deque()  # claimed, no lane yet
        self._delivering: collections.Counter[str] = collections.Counter()
        self._in_lanes = 0
        self._finished: list[tuple[Any, dict | None]] = []  # outcomes not written yet
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._lanes: list[threading.Thread] = []
        self._claims: dict[str, Any] = {}  # the claim statement per state, built once

    @property
    def session(self) -> requests.Session:
        if self._shared_session is not None:
            return self._shared_session
        own = getattr(self._sessions, "session", None)
        if own is None:
            own = self._sessions.session = quiet_session()
        return own

    # -- life cycle ---------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.clock().astimezone(UTC)

    def stop(self, *_args) -> None:
        """Finish the deliveries in hand, or give one up after ``delivery.STOP_GRACE`` seconds,
        then stop (the SIGTERM handler)."""
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
            log.info("worker %s started: %s, %d routes in %s, %d lanes (%d per recipient)", self.name,
                     self.engine.dialect.name, len(self.table.routes), self.table.path, self.concurrency,
                     self.per_recipient)
            self._alert_summary(force=True)
            self._abandon.clear()
            self._start_lanes()
            try:
                self._loop(once)
            except BaseException:
                self._abandon.set()  # deliveries in hand end within the grace time
                raise
            finally:
                self._finish()
        finally:
            self.release()
        log.info("worker %s stopped: %s", self.name, self.stats.line())
        return self.stats

    def _loop(self, once: bool) -> None:
        """Take and deliver rows until stopped (or, ``once``, until nothing is due); also reloads
        the routing table and writes the periodic alert summary."""
        while not self.stopping:
            try:
                self._refresh()
                if self.step():
                    continue
                if once:
                    break
                self._alert_summary()
            except DBAPIError as exc:
                # The database went away (restart, failover, a killed connection): nothing is
                # lost, the rows in hand are still pending; wait and carry on.
                self._lose_connection()
                if once:
                    raise
                log.error("ALERT database error (%s); trying again in %g s", type(exc.orig).__name__,
                          self.poll_interval)
            self.sleep(self.poll_interval)

    # -- lanes --------------------------------------------------------------------------------

    def _start_lanes(self) -> None:
        self._jobs, self._done = queue.SimpleQueue(), queue.SimpleQueue()
        self._lanes = [threading.Thread(target=self._lane, name=f"deliver-{n}", daemon=True)
                       for n in range(self.concurrency)]
        for t in self._lanes:
            t.start()

    def _lane(self) -> None:
        """Deliver the rows handed over, one at a time; every row handed over is handed back."""
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP_LANE:
                    return
                row, now = job
                change: dict | None = None
                try:
                    change = self._work(row, now)
                except Exception as exc:  # noqa: BLE001 - a database error: the row stays as it was
                    log.error("ALERT %s: database error while delivering (%s); the row stays due",
                              self._where(row), type(getattr(exc, "orig", exc)).__name__)
                finally:
                    self._done.put((row, change))
        finally:
            own = getattr(self._sessions, "session", None)
            if own is not None:
                own.close()
                self._sessions.session = None

    def _finish(self) -> None:
        """Give back what no lane started, let the lanes end their deliveries, write the outcomes."""
        try:
            self._give_back(list(self._waiting))
            self._waiting.clear()
            while self._in_lanes:
                self._collect(WAIT_TICK)
            try:
                self._write_finished()
            except Exception as exc:  # noqa: BLE001 - the rows stay pending; their locks go with the connection
                log.error("ALERT outcomes of %d row(s) not written (%s); they are delivered again",
                          len(self._finished), type(exc).__name__)
                self._finished.clear()
        finally:
            for _ in self._lanes:
                self._jobs.put(_STOP_LANE)
            for t in self._lanes:
                t.join()
            self._lanes = []
            self._close_connection()
            self._held.clear()
            self._held_per_recipient.clear()
            self._delivering.clear()
            self._in_lanes = 0

    def _should_stop(self) -> bool:
        return self._stop.is_set() or self._abandon.is_set()

    def _count(self, field: str) -> None:
        with self._stats_lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    # -- the coordinator ----------------------------------------------------------------------

    def step(self) -> bool:
        """One round: write the outcomes the lanes handed back, give waiting rows to free lanes,
        claim more due rows, then wait for a lane. False when nothing is due and nothing is in hand."""
        self._collect(0)
        self._write_finished()
        self._dispatch()
        if self._claim_more():
            self._dispatch()
        if not self._held:
            return False
        if self._in_lanes:
            self._collect(WAIT_TICK)
        return True

    def _collect(self, timeout: float) -> None:
        """Take the outcomes the lanes have handed back (waiting up to ``timeout`` for the first)."""
        try:
            item = self._done.get(timeout=timeout) if timeout else self._done.get_nowait()
        except queue.Empty:
            return
        while True:
            row, _change = item
            self._in_lanes -= 1
            self._delivering[row.recipient] -= 1
            if self._delivering[row.recipient] <= 0:
                del self._delivering[row.recipient]
            self._finished.append(item)
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                return

    def _dispatch(self) -> None:
        """Hand waiting rows to free lanes, at most ``per_recipient`` at a time to one recipient."""
        if self._should_stop() or not self._waiting or self._in_lanes >= self.concurrency:
            return
        kept: collections.deque = collections.deque()
        while self._waiting and self._in_lanes < self.concurrency:
            row = self._waiting.popleft()
            if self._delivering[row.recipient] >= self.per_recipient:
                kept.append(row)
                continue
            self._delivering[row.recipient] += 1
            self._in_lanes += 1
            self._jobs.put((row, self.now()))
        kept.extend(self._waiting)
        self._waiting = kept

    def _connection(self) -> Connection:
        """The coordinator's connection. On PostgreSQL it runs in autocommit: a claim is one
        statement and its own transaction (its row locks end with it; the advisory locks stay with
        the session, and need no flush to disk: none outlives a crash); outcomes are written in
        explicit transactions that are flushed as usual."""
        if self._conn is None:
            conn = self.engine.connect()
            if self.postgres:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("SET synchronous_commit TO off")
            self._conn = conn
            self._generation += 1
        return self._conn

    @contextlib.contextmanager
    def _transaction(self, conn: Connection, unlock: list | None = None):
        """A transaction on the coordinator's connection that also frees the advisory locks of
        ``unlock`` (rows taken on this connection) before it commits."""
        keys = self._keys(unlock or [])
        if not self.postgres:
            with conn.begin():
                yield
            return
        conn.exec_driver_sql("BEGIN; SET LOCAL synchronous_commit TO on")
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                conn.exec_driver_sql("ROLLBACK")
            raise
        # freed inside the transaction: until it commits, the rows it changed stay locked, so no
        # other worker can claim one between the unlock and the commit
        conn.exec_driver_sql((self._unlock_sql(keys) + "; " if keys else "") + "COMMIT")

    def _keys(self, rows: list) -> list[int]:
        """The advisory lock keys of ``rows`` taken on the current connection."""
        if not self.postgres:
            return []
        return [int(r.id) % LOCK_MODULO for r in rows if getattr(r, "lock", None) == self._generation]

    @staticmethod
    def _unlock_sql(keys: list[int]) -> str:
        listed = ",".join(str(int(k)) for k in keys)  # integers of ours: nothing to quote
        return f"SELECT pg_advisory_unlock({LOCK_SPACE}, k) FROM unnest(ARRAY[{listed}]::integer[]) AS k"

    def _lose_connection(self) -> None:
        """After a database error: drop the connection (on PostgreSQL its locks go with it, so the
        rows no lane has started are given up; the ones in lanes are written when they end)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001 - it is gone either way
                pass
        if self.postgres:
            for row in self._waiting:
                self._let_go(row)
            self._waiting.clear()

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self.postgres:
                conn.exec_driver_sql("SELECT pg_advisory_unlock_all(); RESET synchronous_commit")
            conn.close()
        except Exception:  # noqa: BLE001 - a connection that cannot be cleaned is not reused
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001 - it is gone either way
                pass

    def _claim_more(self) -> int:
        """Claim due rows while there is room: about two rows in hand per lane. Unroutable rows
        are looked at when no pending row can be taken."""
        if self._should_stop() or len(self._waiting) >= self.concurrency:
            return 0
        room = min(CLAIM_BATCH, 2 * self.concurrency - len(self._held))
        if room <= 0:
            return 0
        conn = self._connection()
        params = {"now": self.now(), "n": room, "held": list(self._held),
                  "full": [r for r, n in self._held_per_recipient.items() if n >= self.per_recipient]}
        taken: Sequence[Any] = ()
        for state in (PENDING, UNROUTABLE):
            if self.postgres:
                taken = conn.execute(self._claim_statement(state), params).all()
            else:
                with conn.begin():
                    taken = conn.execute(self._claim_statement(state), params).all()
            if taken:
                break
        for r in taken:
            row = SimpleNamespace(**r._mapping, lock=self._generation)
            row.payload = _stored_json(row.payload)
            self._held[row.id] = row
            self._held_per_recipient[row.recipient] += 1
            self._waiting.append(row)
        return len(taken)

    def _claim_statement(self, state: str):
        """Due rows in ``state`` that nothing holds up and nobody holds, oldest due first, at most
        ``per_recipient`` per recipient; on PostgreSQL each is locked for this worker. Each comes
        with its payload as stored JSON text (its own, or its message's: stored once per message)
        and its message's correlation id. Parameters: ``now``, ``n`` (the most rows), ``held``
        (ids in hand here), ``full`` (recipients whose lanes are full here). Built once per
        worker and state.

        The candidates are read in the order of the (state, next_attempt_at) index and each is
        checked through the (order_key, recipient, id) index (the check is kept a per-row filter:
        ``OFFSET 0`` stops the planner from turning it into a join over the whole outbox), so a
        claim reads about as many rows as it takes, however long the queue."""
        cached = self._claims.get(state)
        if cached is not None:
            return cached
        o, e, p = outbox.alias("o"), outbox.alias("e"), outbox.alias("p")
        earlier = select(e.c.id).where(e.c.order_key == o.c.order_key, e.c.recipient == o.c.recipient,
                                       e.c.id < o.c.id, e.c.state.in_(BLOCKING)).offset(0).exists()
        if self.postgres:  # arrays: one statement text whatever the lists hold (prepared once)
            others = (o.c.id != all_(bindparam("held", type_=ARRAY(BigInteger))),
                      o.c.recipient != all_(bindparam("full", type_=ARRAY(String))))
        else:
            others = (o.c.id.not_in(bindparam("held", expanding=True)),
                      o.c.recipient.not_in(bindparam("full", expanding=True)))
        q = select(o).where(o.c.state == state, o.c.next_attempt_at <= bindparam("now"), ~earlier, *others)
        q = q.order_by(o.c.next_attempt_at).limit(bindparam("n", type_=Integer))
        if self.postgres:
            locked: Any = select(literal_column("objid::bigint")).select_from(text("pg_locks")).where(
                text(f"locktype = 'advisory' AND classid = {LOCK_SPACE} AND objsubid = 2"))
            q = q.where((o.c.id % LOCK_MODULO).not_in(locked)).with_for_update(skip_locked=True, of=o)
        c = q.cte("claimed")
        if self.postgres:
            c = c.prefix_with("MATERIALIZED")
        rank = func.row_number().over(partition_by=c.c.recipient, order_by=(c.c.next_attempt_at, c.c.id))
        r = select(c, rank.label("rank")).subquery("ranked")
        take = r.c.rank <= self.per_recipient
        if self.postgres:
            take = case((take, func.pg_try_advisory_lock(LOCK_SPACE, cast(r.c.id % LOCK_MODULO, Integer))),
                        else_=false())
        own = cast(r.c.payload, Text)
        shared = select(cast(p.c.payload, Text)).where(
            p.c.message_id == r.c.message_id, p.c.payload.is_not(None), cast(p.c.payload, Text) != "null",
        ).order_by(p.c.id).limit(1).scalar_subquery()
        correlation = select(audit.c.detail).where(
            audit.c.action == CORRELATE, audit.c.target == literal("message/") + cast(r.c.message_id, String),
        ).order_by(audit.c.id).limit(1).scalar_subquery()
        columns = [case((and_(own.is_not(None), own != "null"), own), else_=shared).label("payload")
                   if col.name == "payload" else r.c[col.name] for col in outbox.c]
        stmt = select(*columns, correlation.label("correlation_id")).where(take).order_by(
            r.c.next_attempt_at, r.c.id)
        self._claims[state] = stmt
        return stmt

    def _let_go(self, row) -> None:
        """``row`` is no longer in hand."""
        if self._held.pop(row.id, None) is None:
            return
        self._held_per_recipient[row.recipient] -= 1
        if self._held_per_recipient[row.recipient] <= 0:
            del self._held_per_recipient[row.recipient]

    def _give_back(self, rows: list) -> None:
        """Rows claimed but never started: due again, for this worker or another."""
        if not rows:
            return
        keys = self._keys(rows)
        try:
            if self._conn is not None and keys:
                self._conn.exec_driver_sql(self._unlock_sql(keys))
        except DBAPIError:
            self._lose_connection()
        for row in rows:
            self._let_go(row)

    def _write_finished(self) -> None:
        """Write the outcomes handed back, all in one transaction (one by one when the store
        refuses one of them), and free their rows."""
        if not self._finished:
            return
        done = self._finished
        conn = self._connection()
        try:
            with self._transaction(conn, unlock=[r for r, _c in done]):
                self._write_batch(conn, [(r, c) for r, c in done if c is not None])
        except Exception as exc:
            if _database_trouble(exc):
                raise  # the loop drops the connection; the outcomes stay to be written
            for row, change in done:
                self._write_one(row, change)
        else:
            for row, change in done:
                if change is not None:
                    self._observe(row, change)
        for row, _change in done:
            self._let_go(row)
        self._finished = []

    def _write_batch(self, conn: Connection, items: list) -> None:
        """One ``UPDATE`` per set of changed columns, run for many rows at once."""
        groups: dict[tuple[str, ...], list] = {}
        for row, change in items:
            groups.setdefault(tuple(sorted(change)), []).append((row, change))
        for keys, group in groups.items():
            stmt = update(outbox).where(outbox.c.id == bindparam("w_id"), outbox.c.state == bindparam("w_state"),
                                        outbox.c.attempts == bindparam("w_attempts")).values(
                {k: bindparam(f"v_{k}") for k in keys})
            params = [{"w_id": row.id, "w_state": row.state, "w_attempts": row.attempts,
                       **{f"v_{k}": change[k] for k in keys}} for row, change in group]
            done = conn.execute(stmt, params)
            if done.rowcount != len(params):
                raise _Mismatch()

    def _write_one(self, row, change: dict | None) -> None:
        """One outcome in its own transaction; one the store refuses makes the row a dead letter."""
        conn = self._connection()
        try:
            with self._transaction(conn, unlock=[row]):
                if change is not None:
                    self._record(conn, row, change)
        except Exception as exc:
            if _database_trouble(exc) or change is None:
                raise
            self._record_defect(row, exc)

    def _record_defect(self, row, exc: Exception) -> None:
        """An outcome the store refused (a defect of ours): the row becomes a dead letter instead."""
        change = self._internal_error(row, exc, "while recording its outcome")
        conn = self._connection()
        with self._transaction(conn, unlock=[row]):
            self._record(conn, row, change)

    def _record(self, conn, row, change: dict) -> None:
        """Write one outcome, if the row is still as it was claimed."""
        done = conn.execute(update(outbox).where(and_(outbox.c.id == row.id, outbox.c.state == row.state,
                                                      outbox.c.attempts == row.attempts)).values(**change))
        if done.rowcount == 0:
            log.warning("outbox #%d was changed by an operator during its delivery; its outcome (%s) is not "
                        "recorded", row.id, change.get("state"))
        self._observe(row, change, conn)

    def _observe(self, row, change: dict, conn=None) -> None:
        """The metrics and the delivery log line of one outcome, under its message's correlation id."""
        observe_delivery(row, change)
        # a claimed row brings its correlation id; a row read otherwise has it looked up
        claimed = hasattr(row, "correlation_id")
        log_delivery(None if claimed else conn, row, change, getattr(row, "correlation_id", None) if claimed else None)

    # -- housekeeping -------------------------------------------------------------------------

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

    # -- one row (in a lane) ------------------------------------------------------------------

    def _where(self, row) -> str:
        return f"outbox #{row.id} {row.recipient} ({row.role}, message {row.message_id})"

    def _internal_error(self, row, exc: Exception, when: str) -> dict:
        """A dead letter for a defect met while dealing with a row: the exception's type only (its
        text, and a trace, may carry patient data)."""
        self._count("dead")
        reason = f"internal error ({type(exc).__name__})"
        log.error("ALERT %s: dead letter, %s %s", self._where(row), reason, when)
        return dict(state=DEAD, next_attempt_at=None, last_error=reason, last_attempt_at=self.now())

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
                raise  # not the row's fault: it stays as it was
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
            self._count("unroutable")
            also = f" (nor {', '.join(row.addresses)})" if row.addresses else ""
            return dict(state=UNROUTABLE, mode=None, next_attempt_at=now + dt.timedelta(seconds=table.recheck),
                        last_error=f"no route for {row.recipient}{also} in {Path(table.path).name}")
        if route.mode == PULL:
            self._count("pulled")
            log.info("%s: delivered by pull (served by /fhir)", where)
            return dict(state=DELIVERED, mode=PULL, delivered_at=now, next_attempt_at=None, endpoint=None,
                        last_error=None, failing_since=None)
        payload = row.payload if row.payload is not None else self._shared_payload(row)
        try:
            outcome = deliver(self.session, route, payload, message_id=row.message_id, recipient=row.recipient,
                              now=now, env=self.env, should_stop=self._should_stop,
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
            self._count("delivered")
            log.info("%s: delivered to %s (%s, %s, %.2f s, attempt %d)", where, route.base_url, route.payload,
                     outcome.reason, outcome.elapsed, attempts)
            return dict(common, state=DELIVERED, delivered_at=after, next_attempt_at=None, last_error=None,
                        failing_since=None)
        since = as_utc(row.failing_since) if row.failing_since else after
        if outcome.kind == PERMANENT:
            self._count("dead")
            log.warning("ALERT %s: dead letter, refused by %s: %s", where, route.base_url, outcome.reason)
            return dict(common, state=DEAD, next_attempt_at=None, last_error=outcome.reason, failing_since=since)
        deadline = since + route.retry.max_age
        if after >= deadline:
            self._count("dead")
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
        self._count("retried")
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
