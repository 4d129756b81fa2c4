"""Every error the API answers, as an OperationOutcome with its HTTP status: one handler per
exception type, registered on the app and used by the FHIR view for its audit row.

Texts name parameters and elements, never a value, an id that is not the adapter's own, or
patient data; an unexpected failure is logged by exception type only, without a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Response, request
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from adapter.api.access import Denied, safe_name
from adapter.api.context import services
from adapter.api.responses import FhirError, outcome_response
from adapter.api.task_update import UpdateRejected
from adapter.errors import MappingError, issue
from adapter.outcome import outcome_issue, plain_issue
from adapter.store.search import SearchError

log = logging.getLogger("ggop.api")


def _fhir_error(exc: FhirError) -> Response:
    return outcome_response(exc.issues, exc.status, exc.headers)


def _denied(exc: Denied) -> Response:
    if exc.status == 401:
        return outcome_response([plain_issue("error", "login", exc.reason, catalogue="GGOP-E901")], 401,
                                {"WWW-Authenticate": 'Bearer realm="ggop-adapter"'})
    return outcome_response([plain_issue("error", "forbidden", exc.reason, catalogue="GGOP-E902")], exc.status)


def _search_error(exc: SearchError) -> Response:
    name = safe_name(exc.param)
    return outcome_response([plain_issue("error", "invalid", f"Search parameter {name}: {exc.reason}.", [name])],
                            exc.status)


def _update_rejected(exc: UpdateRejected) -> Response:
    return outcome_response([plain_issue("error", exc.issue_type, text, [expr] if expr else None)
                             for expr, text in exc.issues], exc.status)


def _too_large(_exc: RequestEntityTooLarge) -> Response:
    limit = services().settings.max_bytes
    return outcome_response([outcome_issue(issue("GGOP-E003", None, "/", f"limit {limit} bytes"))], 413)


def _mapping_error(exc: MappingError) -> Response:
    log.error("mapping defect on %s %s: %s", request.method, request.path, ",".join(i.code for i in exc.issues))
    return outcome_response([outcome_issue(i) for i in exc.issues], 500)


def _http(exc: HTTPException) -> Response:
    code = exc.code or 500
    issue_type = "not-found" if code == 404 else "not-supported" if code == 405 else \
        "invalid" if code < 500 else "exception"
    resp = outcome_response([outcome_issue(issue("GGOP-E903", None, request.path, exc.name or f"HTTP {code}"),
                                           issue_type)], code)
    if code == 405 and isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        resp.headers["Allow"] = ", ".join(exc.valid_methods)
    return resp


RETRY_AFTER_SECONDS = 30


def _store_unavailable(exc: DBAPIError) -> Response:
    """PostgreSQL down, SQLite full or locked: nothing was stored (the transaction rolled back,
    so no receipt left), and the sender is told to send again. A value the database refuses
    (DataError, a defect of the checks before it) is a 400 and says nothing about the store."""
    if isinstance(exc, DataError):
        log.error("database refused a value on %s %s: %s", request.method, request.path, type(exc.orig or exc).__name__)
        return outcome_response([outcome_issue(issue("GGOP-E903", None, request.path, "a value the store cannot take"),
                                               "invalid")], 400)
    svc = services()
    if not isinstance(exc, IntegrityError):  # a concurrent writer won: the store itself is fine
        svc.store_failed_at = svc.clock()
    log.error("store unavailable on %s %s: %s", request.method, request.path, type(exc.orig or exc).__name__)
    return outcome_response([outcome_issue(issue("GGOP-E904", None, request.path))], 503,
                            {"Retry-After": str(RETRY_AFTER_SECONDS)})


def _unexpected(exc: BaseException) -> Response:
    log.error("internal error on %s %s: %s", request.method, request.path, type(exc).__name__)
    return outcome_response([outcome_issue(issue("GGOP-E900", None, request.path))], 500)


HANDLERS: list[tuple[type[BaseException], Callable]] = [
    (FhirError, _fhir_error),
    (Denied, _denied),
    (SearchError, _search_error),
    (UpdateRejected, _update_rejected),
    (RequestEntityTooLarge, _too_large),
    (MappingError, _mapping_error),
    (DBAPIError, _store_unavailable),
    (HTTPException, _http),
    (Exception, _unexpected),
]


def error_response(exc: BaseException) -> Response:
    """The answer for ``exc``: the handler of the first type in :data:`HANDLERS` it is an instance of."""
    for kind, handler in HANDLERS:
        if isinstance(exc, kind):
            return handler(exc)
    return _unexpected(exc)  # pragma: no cover - Exception catches all


def audit_detail(exc: BaseException) -> str | None:
    """What the audit row says about a refusal: element and parameter names only."""
    if isinstance(exc, FhirError):
        return ",".join(e for i in exc.issues for e in i.get("expression", [])) or None
    if isinstance(exc, SearchError):
        return safe_name(exc.param)
    if isinstance(exc, UpdateRejected):
        return ",".join(e for e, _ in exc.issues if e) or None
    return None
