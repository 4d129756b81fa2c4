"""PostgreSQL: a message's multi-row reads and writes as statements of fixed text over arrays.

A plan writes 12–16 resources, their history, the access grants of its shared resources and
1–3 outbox rows. Written as ``INSERT … VALUES (…), (…)``, each row count is a new SQL text:
psycopg converts it again, PostgreSQL parses and plans it again, and neither can keep it
prepared. Here each is one text whatever the number of rows (the rows go as one array per
column and ``unnest`` turns them back into rows), so psycopg prepares it once per connection
and the server runs it from its plan. The resources, their history and the grants are one
statement (data-modifying CTEs). SQLite keeps the statements of :mod:`adapter.store.resources`
and :mod:`adapter.routing.outbox`, which do the same work row by row.

JSON goes as text (orjson), cast to ``json`` by the server; JSON read back comes as text and is
parsed with orjson, as the SQLAlchemy JSON columns do it.

The statements go to psycopg's connection directly (within the SQLAlchemy transaction, on its
connection): SQLAlchemy's execution layer (its context, events and result objects) cost about a
tenth of a millisecond a statement, which is as much as psycopg's own work here. A database
error is raised as SQLAlchemy raises it (``IntegrityError``, ``OperationalError``, …), so the
callers' retries see what they would see through SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

import orjson
import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError


def _execute(conn: Connection, sql: str, params: dict) -> psycopg.Cursor:
    """``sql`` on the psycopg connection under ``conn`` (in its transaction); a database error
    as SQLAlchemy's exception for it."""
    raw = conn.connection.driver_connection
    assert raw is not None, "a connection in a transaction has its driver's connection"
    try:
        return raw.execute(sql, params)
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, params, exc, psycopg.Error, hide_parameters=True,
                                  dialect=conn.dialect) from exc


class Current(NamedTuple):
    """A stored resource's current version, as :func:`adapter.store.resources.next_version` needs it."""

    type: str
    id: str
    version_id: int
    content: dict
    as_of: dt.datetime | None


# Advisory locks of shared resources: (LOCK_SPACE, hashtext of "Type/id"). The delivery worker's
# locks are in a space of their own (adapter/routing/worker.py).
LOCK_SPACE = 0x67670002
_LOCKS = """
SELECT {take}
FROM (SELECT DISTINCT hashtext(u.type || '/' || u.id) AS k
      FROM unnest(%(types)b::varchar[], %(ids)b::varchar[]) AS u(type, id) ORDER BY 1) AS s
"""
_LOCK = _LOCKS.format(take="count(pg_advisory_xact_lock(%(space)s::int, s.k))")
# true when every lock was free (those taken stay held until the transaction ends)
_TRY_LOCK = _LOCKS.format(take="coalesce(bool_and(pg_try_advisory_xact_lock(%(space)s::int, s.k)), true)")


def _lock_params(keys: Sequence[tuple[str, str]]) -> dict:
    return {"space": LOCK_SPACE, "types": [k[0] for k in keys], "ids": [k[1] for k in keys]}


class LockBusy(Exception):
    """A shared resource a transaction of several messages (a bulk batch) did not lock up front
    is held by another transaction: rather than wait for it while holding the batch's own locks
    (two such waits could deadlock), the batch gives up and its messages are stored again one
    per transaction."""


def try_lock_shared(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
    """Take the locks of ``keys`` as :func:`lock_shared` does, but without waiting: raise
    :class:`LockBusy` when another transaction holds one."""
    if keys:
        row = _execute(conn, _TRY_LOCK, _lock_params(keys)).fetchone()
        if not (row and row[0]):
            raise LockBusy(f"{len(keys)} shared resource(s) held by another transaction")


def lock_shared(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
    """Take the transaction's locks of the shared resources ``keys`` names (Patient,
    Organization, …: those that many messages write), all at once and in one global order.

    Two transactions that write the same organisations then take their turns instead of
    deadlocking (each waits for all it needs before it holds any of their rows), and each reads
    their current versions again once no other can write them: no two write the same next
    version. Locks already held (a bulk batch takes its messages' all at once) are taken again
    at no cost."""
    if keys:
        _execute(conn, _LOCK, _lock_params(keys))


_CURRENT = """
SELECT c.type, c.id, c.version_id, c.content, c.as_of
FROM unnest(%(types)b::varchar[], %(ids)b::varchar[]) AS k(type, id)
CROSS JOIN LATERAL (SELECT r.type, r.id, r.version_id, r.content::text AS content, r.as_of FROM resources AS r
                    WHERE r.type = k.type AND r.id = k.id LIMIT 1) AS c
"""


def current_versions(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Current]:
    """The current versions of the resources ``keys`` names (those stored), by key."""
    rows = _execute(conn, _CURRENT, {"types": [k[0] for k in keys], "ids": [k[1] for k in keys]})
    return {(t, i): Current(t, i, v, orjson.loads(c), a) for t, i, v, c, a in rows}


# New and changed resources (an insert-or-update, rows in key order so two messages naming the
# same shared resources take their locks in the same order), their history rows from what was
# written (a version a concurrent message wrote in between fails on the history's primary key),
# and the municipality's access grants to the shared ones (skipping those that exist).
_WRITE = """
WITH written AS (
  INSERT INTO resources AS r (type, id, version_id, last_updated, municipality, patient_id, message_id,
                              content, status, deleted, as_of)
  SELECT w.type, w.id, w.version_id, %(now)s::timestamptz, w.municipality, w.patient_id, %(message_id)s::bigint,
         w.content, w.status, false, w.as_of
  FROM unnest(%(type)b::varchar[], %(id)b::varchar[], %(version_id)b::int[], %(municipality)b::varchar[],
              %(patient_id)b::varchar[], %(content)b::json[], %(status)b::varchar[], %(as_of)b::timestamptz[])
       AS w(type, id, version_id, municipality, patient_id, content, status, as_of)
  ORDER BY w.type, w.id
  ON CONFLICT (type, id) DO UPDATE SET
    version_id = excluded.version_id, last_updated = excluded.last_updated,
    municipality = excluded.municipality, patient_id = excluded.patient_id, message_id = excluded.message_id,
    content = excluded.content, status = excluded.status, deleted = excluded.deleted, as_of = excluded.as_of
  RETURNING r.type, r.id, r.version_id, r.last_updated, r.municipality, r.message_id, r.content
), history AS (
  INSERT INTO resource_history (type, id, version_id, last_updated, municipality, message_id, content, changed_by)
  SELECT type, id, version_id, last_updated, municipality, message_id, content, %(changed_by)s::varchar
  FROM written
)
INSERT INTO resource_access (type, id, municipality)
SELECT g.type, g.id, %(grant_to)s::varchar
FROM unnest(%(grant_types)b::varchar[], %(grant_ids)b::varchar[]) AS g(type, id)
WHERE %(grant_to)s::varchar IS NOT NULL
ORDER BY g.type, g.id
ON CONFLICT DO NOTHING
"""


def write_resources(conn: Connection, rows: list[dict], *, now: dt.datetime, message_id: int | None,
                    changed_by: str | None, grants: Sequence[tuple[str, str]], grant_to: str | None) -> None:
    """One statement: ``rows`` (each with type, id, version_id, municipality, patient_id,
    content, status, as_of) stored as current versions with their history, and ``grant_to``
    let see the shared resources ``grants`` names."""
    _execute(conn, _WRITE, {
        "now": now, "message_id": message_id, "changed_by": changed_by,
        "type": [r["type"] for r in rows], "id": [r["id"] for r in rows],
        "version_id": [r["version_id"] for r in rows], "municipality": [r["municipality"] for r in rows],
        "patient_id": [r["patient_id"] for r in rows],
        "content": [orjson.dumps(r["content"]).decode() for r in rows],
        "status": [r["status"] for r in rows], "as_of": [r["as_of"] for r in rows],
        "grant_to": grant_to, "grant_types": [g[0] for g in grants], "grant_ids": [g[1] for g in grants]})


# One row per recipient, in list order (the first gets the lowest id and the payload).
_OUTBOX = """
INSERT INTO outbox (message_id, created_at, recipient, role, addresses, order_key, state, attempts,
                    next_attempt_at, payload)
SELECT %(message_id)s::bigint, %(at)s::timestamptz, o.recipient, o.role, o.addresses, %(order_key)s::varchar,
       %(state)s::varchar, 0, %(at)s::timestamptz, CASE WHEN o.n = 1 THEN %(payload)s::json END
FROM unnest(%(recipient)b::varchar[], %(role)b::varchar[], %(addresses)b::json[]) WITH ORDINALITY
     AS o(recipient, role, addresses, n)
ORDER BY o.n
"""


def write_outbox(conn: Connection, *, message_id: int, at: dt.datetime, order_key: str, state: str,
                 recipients: Sequence[tuple[str, str, list[str] | None]], payload: dict) -> None:
    """The outbox rows of one message (recipient key, role, other addresses), the payload on the first."""
    _execute(conn, _OUTBOX, {
        "message_id": message_id, "at": at, "order_key": order_key, "state": state,
        "recipient": [r[0] for r in recipients], "role": [r[1] for r in recipients],
        "addresses": [orjson.dumps(r[2]).decode() if r[2] else None for r in recipients],
        "payload": orjson.dumps(payload).decode()})
