"""The FHIR R4 REST API for municipalities under ``/fhir`` (JSON only).

Interactions (``adapter/api/capability.py`` builds the CapabilityStatement from the same
tables):

* ``GET /fhir/metadata``: the CapabilityStatement, without authentication;
* ``GET /fhir/<Type>/<id>``: read (ETag ``W/"<versionId>"``, Last-Modified; ``If-None-Match``
  with the current version is answered 304); ``…/_history/<vid>``: vread; ``…/_history``:
  the history Bundle, newest first, paged like a search;
* ``GET /fhir/<Type>?…``: search (``adapter/store/search.py``): a searchset Bundle with
  ``total`` (on the first page when at most ``COUNT_LIMIT`` match; exact on every page with
  ``_total=accurate`` or ``_summary=count``, on none with ``_total=none``), ``_count``
  (default 50, at most 500), ``self``/``first``/``next`` links (``next`` with an opaque
  ``_cursor``; an explicit ``_offset`` pages by offset, with ``previous``), ``_include``d
  resources marked ``include``, and the ignored parameters listed in an OperationOutcome
  entry (``Prefer: handling=strict`` refuses them with 400 instead);
* ``PUT /fhir/Task/<id>`` with ``If-Match``: update and re-evaluation of the plan
  (``adapter/api/task_update.py``).

Access (``adapter/api/access.py``): every interaction but metadata needs a bearer token; a
municipality client sees its own citizens' resources only, and a resource of another
municipality is answered 404 exactly like an unknown id (no disclosure that it exists);
operators read everything and update nothing; hospital clients get 403. Every request but
metadata leaves an audit row.

Answers are ``application/fhir+json``; errors are OperationOutcomes with their HTTP status.
They name parameters and elements, never a parameter's value, an id that is not the
adapter's own, or patient data; an unexpected failure is logged by exception type only and
answered 500 without a traceback.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from email.utils import format_datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, request
from sqlalchemy.exc import IntegrityError, OperationalError

from adapter.api import access
from adapter.api.capability import TYPES, UPDATABLE, capability_statement
from adapter.api.context import current_client, services
from adapter.api.errors import audit_detail, error_response
from adapter.api.responses import FhirError, StoredJson, fhir_json
from adapter.api.task_update import update_task
from adapter.danish_time import as_utc
from adapter.outcome import operation_outcome, plain_issue
from adapter.store.resources import iso
from adapter.store.search import (
    DEFAULT_COUNT,
    MAX_COUNT,
    MAX_OFFSET,
    TOTALS,
    VERSION_ID,
    HistoryCursor,
    content_of,
    history,
    history_since,
    next_cursor,
    parse_date,
    parse_search,
    read,
    search,
    total_limit,
    vread,
    whole_number,
)

log = logging.getLogger(__name__)

blueprint = Blueprint("fhir", __name__, url_prefix="/fhir")

JSON_TYPES = ("application/fhir+json", "application/json")
FORMAT_VALUES = ("json", "application/json", "application/fhir+json", "application/json+fhir")
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
_VERSION = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------


def _base() -> str:
    """The FHIR base of every absolute URL: the configured public root, or what a trusted proxy
    forwards, or the address ``serve`` binds to; a client's Host header never decides (only an
    app made without ``serve``, as in tests, falls back to the request's own root)."""
    settings = services().settings
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/") + "/fhir"
    if request.remote_addr in settings.trusted_proxies:
        proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
        prefix = request.headers.get("X-Forwarded-Prefix", "").split(",")[0].strip().rstrip("/")
        if proto in ("http", "https") and _HOST.match(host) and _PREFIX.match(prefix):
            return f"{proto}://{host}{prefix}/fhir"
    if settings.bind_url:
        return settings.bind_url.rstrip("/") + "/fhir"
    return request.url_root.rstrip("/") + "/fhir"


_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~\-]+)*$")


def _etag(version: int | str) -> str:
    return f'W/"{version}"'


def _http_date(value) -> str:
    return format_datetime(as_utc(value), usegmt=True)


def _resource_headers(version: int, last_updated) -> dict[str, str]:
    return {"ETag": _etag(version), "Last-Modified": _http_date(last_updated)}


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    action: str  # read | vread | history | history-type | history-system | search | update | unsupported
    rtype: str | None = None
    rid: str | None = None
    vid: str | None = None
    error: FhirError | None = None

    @property
    def target(self) -> str | None:
        if self.action == "history-system":
            return "_history"
        if self.action == "history-type":
            return f"{self.rtype}/_history"
        if self.rtype is None:
            return None
        if self.action == "search":
            names = [k for k, _ in request.args.items(multi=True)] + list(request.form.keys())
            return access.search_target(self.rtype, names)
        if self.rid is None:
            return self.rtype
        target = f"{self.rtype}/{access.safe_id(self.rid)}"
        if self.action == "history":
            return target + "/_history"
        if self.action == "vread":
            return target + "/_history/" + (self.vid if self.vid and VERSION_ID.match(self.vid)
                                             else "-")
        return target

    def type_name(self) -> str:
        """The resource type of a search, read, vread, history or update."""
        assert self.rtype is not None, "_route names the type of every interaction it routes"
        return self.rtype

    def type_and_id(self) -> tuple[str, str]:
        """The resource type and id of a read, vread, history or update."""
        assert self.rtype is not None and self.rid is not None, "_route names type and id of every instance route"
        return self.rtype, self.rid


def _not_allowed(action: str, rtype: str | None = None, rid: str | None = None, allow: str = "GET, HEAD") -> _Route:
    return _Route(action, rtype, rid, error=FhirError(405, "not-supported", "This interaction is not supported here.",
                                                      headers={"Allow": allow}))


def _route(method: str, segs: list[str]) -> _Route:
    if method == "HEAD":
        method = "GET"
    if not segs:
        return _not_allowed("unsupported")
    if segs == ["_history"]:
        return _Route("history-system") if method == "GET" else _not_allowed("unsupported")
    rtype = segs[0]
    if rtype not in TYPES:
        return _Route("unsupported", error=FhirError(404, "not-found", "Unknown or unsupported resource type."))
    if len(segs) == 1:
        return _Route("search", rtype) if method == "GET" else _not_allowed("unsupported", rtype)
    rid = segs[1]
    if segs[1:] == ["_history"]:
        return _Route("history-type", rtype) if method == "GET" else _not_allowed("unsupported", rtype)
    if segs[1:] == ["_search"]:
        return _Route("search", rtype) if method == "POST" else _not_allowed("unsupported", rtype, allow="POST")
    if len(segs) == 2:
        if method == "GET":
            return _Route("read", rtype, rid)
        if method == "PUT" and rtype in UPDATABLE:
            return _Route("update", rtype, rid)
        return _not_allowed("unsupported", rtype, rid, "GET, HEAD, PUT" if rtype in UPDATABLE else "GET, HEAD")
    if segs[2] == "_history" and len(segs) in (3, 4):
        if method != "GET":
            return _not_allowed("unsupported", rtype, rid)
        if len(segs) == 3:
            return _Route("history", rtype, rid)
        return _Route("vread", rtype, rid, segs[3])
    return _Route("unsupported", error=FhirError(404, "not-found", "Unknown path."))


_SERVED = {*JSON_TYPES, "application/json+fhir", "*/*", "application/*"}


def _media_types(header: str) -> list[tuple[str, float]]:
    """The media ranges of an Accept header with their quality; parameters such as
    ``fhirVersion=4.0`` or ``charset=utf-8`` do not change what is served."""
    out = []
    for part in header.split(","):
        mime, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if mime:
            out.append((mime.lower(), q))
    return out


def _check_format() -> None:
    """``_format`` decides when given (json or a JSON media type; ``+`` may arrive as a
    space), in the query string or, for ``POST [type]/_search``, in the form-encoded body (the
    search's own parameters: its self link carries it); otherwise the Accept header must admit
    FHIR JSON (any parameters, any quality above 0)."""
    fmt = request.args.get("_format")
    if fmt is None and request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        fmt = request.form.get("_format")
    if fmt is not None:
        mime = fmt.split(";")[0].strip().lower().replace(" ", "+")
        if mime not in FORMAT_VALUES:
            raise FhirError(406, "not-supported", "Only JSON is supported (_format=json).")
        return
    header = request.headers.get("Accept", "").strip()
    if header and not any(q > 0 and mime in _SERVED for mime, q in _media_types(header)):
        raise FhirError(406, "not-supported", "Only application/fhir+json and application/json are served.")


@blueprint.route("/", defaults={"path": ""}, methods=METHODS, strict_slashes=False)
@blueprint.route("/<path:path>", methods=METHODS)
def fhir(path: str) -> Response:
    segs = [s for s in path.split("/") if s]
    if segs == ["metadata"]:
        return _metadata()
    svc = services()
    client = current_client()
    route = _route(request.method, segs)
    detail = None
    audit_in_update = False
    try:
        if route.action == "update":
            access.require_writer(client)
        else:
            access.require_reader(client)
        _check_format()
        if route.error is not None:
            raise route.error
        if route.action == "read":
            resp = _read(client, route)
        elif route.action == "vread":
            resp = _vread(client, route)
        elif route.action == "history":
            resp = _history(client, route)
        elif route.action in ("history-type", "history-system"):
            resp = _history_since(client, route)
        elif route.action == "search":
            resp, detail = _search(client, route)
        else:
            resp = _update(client, route)
            audit_in_update = True
    except Exception as exc:  # noqa: BLE001 - every refusal and failure is answered by its handler, never a traceback
        resp = error_response(exc)
        detail = audit_detail(exc)
    if audit_in_update:  # written in the update's own transaction
        return resp
    try:
        access.record(svc.engine, svc.clock(), client, route.action, route.target, resp.status_code, detail)
    except Exception as exc:  # noqa: BLE001 - no answer without its audit row
        log.error("audit write failed: %s", type(exc).__name__)
        return error_response(FhirError(503, "transient", "The audit trail cannot be written; try again."))
    return resp


# --------------------------------------------------------------------------------------------
# Interactions
# --------------------------------------------------------------------------------------------


def _metadata() -> Response:
    if request.method not in ("GET", "HEAD"):
        return error_response(FhirError(405, "not-supported", "metadata is read-only.", headers={"Allow": "GET, HEAD"}))
    try:
        _check_format()
    except FhirError as exc:
        return error_response(exc)
    return fhir_json(capability_statement(_base(), services().clock()))


def _if_none_match(version: int) -> bool:
    value = request.headers.get("If-None-Match")
    if not value:
        return False
    return any((m := _VERSION.match(v)) is not None and int(m.group(1)) == version for v in value.split(","))


def _read(client, route: _Route) -> Response:
    svc = services()
    with svc.engine.connect() as conn:
        row = read(conn, *route.type_and_id(), access.scope_for(client))
    if row is None:
        raise FhirError(404, "not-found", "No such resource.")
    headers = _resource_headers(row.version_id, row.last_updated)
    if row.deleted and row.replaced_by:
        survivor = f"{route.type_and_id()[0]}/{row.replaced_by}"
        issue = plain_issue("error", "deleted", f"This resource was merged into {survivor}: one resource per "
                            "citizen or organisation. Use that one.")
        raise FhirError(410, "deleted", "", headers=headers, issues=[{**issue, "diagnostics": survivor}])
    if row.deleted:
        raise FhirError(410, "deleted", "The resource has been deleted.", headers=headers)
    if _if_none_match(row.version_id):
        resp = Response(status=304)
        resp.headers.update(headers)
        return resp
    return fhir_json(StoredJson(row.raw), 200, headers)


def _vread(client, route: _Route) -> Response:
    svc = services()
    with svc.engine.connect() as conn:
        row = vread(conn, *route.type_and_id(), route.vid or "", access.scope_for(client))
    if row is None:
        raise FhirError(404, "not-found", "No such resource version.")
    return fhir_json(StoredJson(row.raw), 200, _resource_headers(row.version_id, row.last_updated))


def _strict() -> bool:
    return "handling=strict" in _prefer()


def _prefer() -> set[str]:
    return {p.strip().replace(" ", "") for p in re.split(r"[;,]", request.headers.get("Prefer", ""))}


def _paging(pairs: list[tuple[str, str]]) -> tuple[int, int, list[tuple[str, str]]]:
    """``_count``/``_offset`` for a history; the other parameters are returned as ignored."""
    count, offset, ignored = DEFAULT_COUNT, 0, []
    seen: set[str] = set()
    for name, value in pairs:
        if name in ("_count", "_offset"):
            if name in seen:
                continue
            seen.add(name)
            number = whole_number(name, value, high=MAX_COUNT if name == "_count" else MAX_OFFSET)
            if name == "_count":
                count = number
            else:
                offset = number
        elif name not in ("_format", "_pretty"):
            ignored.append((name, "not supported for a history"))
    return count, offset, ignored


def _link(path: str, pairs: list[tuple[str, str]], offset: int) -> str:
    kept = [(k, v) for k, v in pairs if k != "_offset"]
    if offset:
        kept.append(("_offset", str(offset)))
    query = urlencode(kept)
    return f"{_base()}/{path}" + (f"?{query}" if query else "")


def _links(path: str, pairs: list[tuple[str, str]], count: int, offset: int, total: int) -> list[dict]:
    links = [{"relation": "self", "url": _link(path, pairs, offset)},
             {"relation": "first", "url": _link(path, pairs, 0)}]
    if count and offset + count < total:
        links.append({"relation": "next", "url": _link(path, pairs, offset + count)})
    if offset > 0:
        links.append({"relation": "previous", "url": _link(path, pairs, max(offset - max(count, 1), 0))})
    return links


def _ignored_outcome(ignored: list[tuple[str, str]]) -> list[dict]:
    return [plain_issue("warning", "not-supported", f"Parameter {access.safe_name(name)} was ignored: {why}.",
                   [access.safe_name(name)]) for name, why in ignored]


def _history(client, route: _Route) -> Response:
    pairs = list(request.args.items(multi=True))
    count, offset, ignored = _paging(pairs)
    if ignored and _strict():
        raise FhirError(400, "not-supported", "",
                        issues=[{**i, "severity": "error"} for i in _ignored_outcome(ignored)])
    rtype, rid = route.type_and_id()
    svc = services()
    with svc.engine.connect() as conn:
        total, rows = history(conn, rtype, rid, access.scope_for(client), count, offset)
    if total == 0:
        raise FhirError(404, "not-found", "No such resource.")
    base = _base()
    entries = []
    for row in rows:
        entries.append({
            "fullUrl": f"{base}/{row.type}/{row.id}",
            "resource": StoredJson(row.raw),
            "request": {"method": "PUT", "url": f"{row.type}/{row.id}"},
            "response": {"status": "201" if row.version_id == 1 else "200", "etag": _etag(row.version_id),
                         "lastModified": iso(as_utc(row.last_updated))},
        })
    bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": iso(svc.clock())},
              "type": "history", "total": total,
              "link": _links(f"{rtype}/{rid}/_history", pairs, count, offset, total), "entry": entries}
    return fhir_json(bundle)


def _history_since(client, route: _Route) -> Response:
    """``[type]/_history`` and ``_history``: every version written at or after ``_since``,
    oldest first, paged by cursor; the sync feed of docs/sync.md."""
    pairs = list(request.args.items(multi=True))
    since, count, cursor, total_mode, ignored = None, DEFAULT_COUNT, None, None, []
    for name, value in pairs:
        if name == "_since":
            since = parse_date(value, "_since").start
        elif name == "_count":
            count = whole_number(name, value, high=MAX_COUNT)
        elif name == "_cursor":
            cursor = HistoryCursor.parse(value)
        elif name == "_total" and value in TOTALS:
            total_mode = value
        elif name not in ("_format", "_pretty"):
            ignored.append((name, "not supported for a history"))
    if ignored and _strict():
        raise FhirError(400, "not-supported", "",
                        issues=[{**i, "severity": "error"} for i in _ignored_outcome(ignored)])
    svc = services()
    rtype = route.rtype
    with svc.engine.connect() as conn:
        page = history_since(conn, rtype, access.scope_for(client), since, count, cursor,
                             count_limit=total_limit(total_mode, first_page=cursor is None))
    base = _base()
    entries = [{
        "fullUrl": f"{base}/{row.type}/{row.id}",
        "resource": StoredJson(row.raw),
        "request": {"method": "POST" if row.version_id == 1 else "PUT",
                    "url": row.type if row.version_id == 1 else f"{row.type}/{row.id}"},
        "response": {"status": "201" if row.version_id == 1 else "200", "etag": _etag(row.version_id),
                     "lastModified": iso(as_utc(row.last_updated))},
    } for row in page.rows]
    path = f"{rtype}/_history" if rtype else "_history"
    kept = [(k, v) for k, v in pairs if k in ("_since", "_count", "_total", "_format", "_pretty")]
    links = [{"relation": "self", "url": _link(path, kept + ([("_cursor", cursor.token())] if cursor else []), 0)}]
    if page.next is not None:
        links.append({"relation": "next", "url": _link(path, kept + [("_cursor", page.next.token())], 0)})
    bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": iso(svc.clock())},
              "type": "history", **({} if page.total is None else {"total": page.total}), "link": links,
              "entry": entries}
    return fhir_json(bundle)


def _search_pairs() -> list[tuple[str, str]]:
    """The search parameters: the query string, and for ``POST [type]/_search`` the
    form-encoded body too (FHIR http.html#search-post)."""
    pairs = list(request.args.items(multi=True))
    if request.method == "POST":
        if request.mimetype != "application/x-www-form-urlencoded":
            raise FhirError(415, "not-supported", "Send the search as application/x-www-form-urlencoded.")
        pairs += list(request.form.items(multi=True))
    return pairs


def _search(client, route: _Route) -> tuple[Response, str]:
    pairs = _search_pairs()
    rtype = route.type_name()
    parsed = parse_search(rtype, pairs)
    if parsed.ignored and _strict():
        raise FhirError(400, "not-supported", "",
                        issues=[{**i, "severity": "error"} for i in _ignored_outcome(parsed.ignored)])
    svc = services()
    if parsed.summary_count:
        parsed.count = 0
    with svc.engine.connect() as conn:
        result = search(conn, parsed, access.scope_for(client))
    base = _base()
    entries = [{"fullUrl": f"{base}/{r.type}/{r.id}", "resource": _subset(r, parsed.elements),
                "search": {"mode": "match"}} for r in result.matches]
    entries += [{"fullUrl": f"{base}/{r.type}/{r.id}", "resource": StoredJson(r.raw), "search": {"mode": "include"}}
                for r in result.included]
    if parsed.ignored:
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}",
                        "resource": operation_outcome(_ignored_outcome(parsed.ignored)), "search": {"mode": "outcome"}})
    bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": iso(svc.clock())},
              "type": "searchset", **({} if result.total is None else {"total": result.total}),
              "link": _search_links(rtype, pairs, parsed, result), "entry": entries}
    detail = f"total={result.total}" if result.total is not None else f"page={len(result.matches)}"
    return fhir_json(bundle), detail


SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


def _subset(row, elements: list[str] | None) -> dict | StoredJson:
    """``_elements``: the listed top-level elements (and id, meta), marked SUBSETTED; without
    it, the resource as stored."""
    if elements is None:
        return StoredJson(row.raw)
    resource = content_of(row)
    meta = {**resource.get("meta", {}), "tag": [*resource.get("meta", {}).get("tag", []), SUBSETTED]}
    kept = {k: v for k, v in resource.items() if k in elements and k not in ("resourceType", "id", "meta")}
    return {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta, **kept}


def _search_links(rtype: str, pairs: list[tuple[str, str]], parsed, result) -> list[dict]:
    """self (the parameters applied, nothing ignored), first, and next with the cursor where
    this page ended (keyset paging: a walk sees every match at least once, also when matches
    are updated meanwhile). An explicit ``_offset`` pages by offset, with previous."""
    applied = [(k, v) for k, v in pairs
               if k.partition(":")[0] in parsed.used or k in ("_format", "_pretty")]
    links = [{"relation": "self", "url": _link(rtype, applied + (
        [("_cursor", parsed.cursor.token())] if parsed.cursor else []), 0 if parsed.cursor else parsed.offset)},
        {"relation": "first", "url": _link(rtype, applied, 0)}]
    following = next_cursor(parsed, result)
    if following is not None:
        links.append({"relation": "next", "url": _link(rtype, applied + [("_cursor", following.token())], 0)})
    if parsed.cursor is None and parsed.offset > 0:
        back = max(parsed.offset - max(parsed.count, 1), 0)
        links.append({"relation": "previous", "url": _link(rtype, applied, back)})
    return links


def _update(client, route: _Route) -> Response:
    if request.mimetype not in JSON_TYPES:
        raise FhirError(415, "not-supported", "Send the Task as application/fhir+json.")
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, RecursionError):
        raise FhirError(400, "structure", "The body is not valid JSON.") from None
    _, task_id = route.type_and_id()
    svc = services()
    now = svc.clock()
    try:
        with svc.engine.begin() as conn:
            stored = update_task(conn, task_id=task_id, body=body, if_match=request.headers.get("If-Match"),
                                 scope=access.scope_for(client), client_name=client.name, now=now,
                                 tables=svc.runtime.tables, rules=svc.runtime.rule_book, id_key=svc.runtime.id_key)
            access.record_in(conn, now, client, "update", route.target, 200)
    except IntegrityError:  # a concurrent writer got there first
        raise FhirError(409, "conflict", "The Task or its plan changed at the same time; read it again.") from None
    except OperationalError:  # e.g. the database is locked or unreachable
        raise FhirError(503, "transient", "The store is busy; try again.") from None
    headers = _resource_headers(int(stored["meta"]["versionId"]), now)
    headers["Content-Location"] = f"{_base()}/Task/{task_id}/_history/{stored['meta']['versionId']}"
    prefer = _prefer()
    if "return=minimal" in prefer:
        resp = Response(status=200)
        resp.headers.update(headers)
        return resp
    if "return=OperationOutcome" in prefer:
        updated = plain_issue("information", "informational", "The Task was updated.")
        return fhir_json(operation_outcome([updated]), 200, headers)
    return fhir_json(stored, 200, headers)

