"""Structured logs: one JSON line per request and per delivery, each with a correlation id.

A request's correlation id is the caller's ``X-Correlation-Id`` when it is a plain token (8 to
64 letters, digits, ``-`` or ``_``), otherwise a new random one; the answer carries it back in
``X-Correlation-Id``. For ``POST /medcom`` it is written to the audit trail beside the
message (``audit`` row, action ``correlate``), so the console shows it on the message page
and a delivery of that message logs the same id.

A line names the route pattern (``/fhir/<rtype>/<rid>``), never the path or query a client
sent (a query may hold a CPR number), and otherwise codes, statuses, durations, ids and
client names only::

    {"ts": "2026-03-02T09:00:00.123Z", "level": "info", "event": "request", "correlation_id": "…",
     "method": "POST", "route": "/medcom", "status": 200, "ms": 41.2, "client": "test-hospital",
     "message_id": 12, "message_state": "accepted"}
    {"ts": "…", "level": "info", "event": "delivery", "correlation_id": "…", "outbox_id": 7,
     "message_id": 12, "recipient": "municipality:0461", "state": "delivered", "status": 200,
     "attempts": 1}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
import sys
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from adapter.store.schema import audit

if TYPE_CHECKING:
    from flask import Flask, Response
    from sqlalchemy.engine import Connection

REQUEST_LOG = "ggop.request"
DELIVERY_LOG = "ggop.delivery"
HEADER = "X-Correlation-Id"
CORRELATE = "correlate"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_FIELDS = ("event", "correlation_id", "method", "route", "status", "ms", "client", "role", "message_id",
           "message_state", "outbox_id", "recipient", "state", "attempts", "mode", "action", "target")


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, the structured fields given as ``extra``,
    and the message text only for records without an ``event`` (the adapter's own texts,
    which hold codes and ids only)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        for f in _FIELDS:
            value = getattr(record, f, None)
            if value is not None:
                out[f] = value
        if "event" not in out:
            out["message"] = record.getMessage()
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def json_handler(stream=None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler


def configure(logger_names: tuple[str, ...] = (REQUEST_LOG, DELIVERY_LOG), stream=None) -> None:
    """JSON lines for the request and delivery loggers (once per process)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
            logger.addHandler(json_handler(stream))
        logger.setLevel(logging.INFO)
        logger.propagate = False


def new_correlation_id() -> str:
    return secrets.token_hex(16)


def correlation_id_from(value: str | None) -> str:
    """The caller's id when it is a plain token, else a new one."""
    return value if value and _TOKEN.match(value) else new_correlation_id()


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def install(app: Flask) -> None:
    """Register the correlation id and the request line on ``app`` (a message's routes store
    the id with the message: :func:`adapter.service.ingest.stored_first`)."""
    from flask import g, request

    configure()
    log = logging.getLogger(REQUEST_LOG)

    @app.before_request
    def _correlate() -> None:
        g.correlation_id = correlation_id_from(request.headers.get(HEADER))
        g.started = time.perf_counter()

    @app.after_request
    def _line(resp: Response) -> Response:
        cid = g.get("correlation_id") or new_correlation_id()
        resp.headers[HEADER] = cid
        message_id = resp.headers.get("X-Message-Id")  # its correlation id is stored with it
        client = g.get("client") or g.get("console_client")
        started = g.get("started")
        log.info("request", extra={
            "event": "request", "correlation_id": cid, "method": request.method,
            "route": request.url_rule.rule if request.url_rule is not None else "(no route)",
            "status": resp.status_code, "ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
            "client": client.name if client is not None else None,
            "message_id": int(message_id) if message_id and message_id.isdigit() else None,
            "message_state": resp.headers.get("X-Message-State")})
        return resp


def record_correlation(conn: Connection, at: dt.datetime, message_id: int, correlation_id: str) -> None:
    conn.execute(_INSERT_AUDIT, dict(at=at, action=CORRELATE, target=f"message/{message_id}", outcome="-",
                                     detail=correlation_id))


_INSERT_AUDIT = insert(audit)  # built once: SQLAlchemy reuses its compiled form


def correlation_of(conn: Connection, message_id: int) -> str | None:
    """The correlation id of the request that brought a message (the first, for a resend)."""
    return conn.execute(select(audit.c.detail).where(audit.c.action == CORRELATE,
                                                     audit.c.target == f"message/{message_id}")
                        .order_by(audit.c.id).limit(1)).scalar()


# --------------------------------------------------------------------------------------------
# Deliveries
# --------------------------------------------------------------------------------------------


def log_delivery(conn: Connection | None, row, change: dict, correlation_id: str | None = None) -> None:
    """The worker's line for one outcome of an outbox row, under its message's correlation id
    (``correlation_id`` when the caller has it, else looked up with ``conn``)."""
    log = logging.getLogger(DELIVERY_LOG)
    configure((DELIVERY_LOG,))
    cid = correlation_id if correlation_id is not None or conn is None else correlation_of(conn, row.message_id)
    state = change.get("state")
    log.log(logging.WARNING if state == "dead" else logging.INFO, "delivery", extra={
        "event": "delivery", "correlation_id": cid or f"outbox-{row.id}", "outbox_id": row.id,
        "message_id": row.message_id, "recipient": row.recipient, "state": state,
        "status": change.get("last_status"), "attempts": change.get("attempts", row.attempts),
        "mode": change.get("mode")})
