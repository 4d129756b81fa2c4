"""The console's pages (``/console``): sign-in, message log, message page, outbox, dashboards.

Every page view and every action writes an audit row (client, role, action, target as ids and
parameter names, outcome); replay and cancel are POST forms with the session's CSRF token.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from urllib.parse import urlencode

from flask import Blueprint, Response, g, make_response, redirect, render_template, request, url_for
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from adapter import metrics
from adapter.api.access import record, record_in
from adapter.api.context import services
from adapter.console import dashboard as dash
from adapter.console import data
from adapter.console.masking import stored_xml
from adapter.console.session import COOKIE, LOGIN_COOKIE, PATH, ConsoleError, Session, Sessions
from adapter.danish_time import DANISH_TIME, as_utc
from adapter.errors import CATALOGUE, AdapterError, issue
from adapter.routing import outbox as box

log = logging.getLogger("ggop.console")
blueprint = Blueprint("console", __name__, url_prefix=PATH, template_folder="templates", static_folder="static")
EXTENSION = "ggop_console"
_DIGITS = re.compile(r"^[0-9]{1,18}$")
_LETTER_ID = re.compile(r"^[A-Za-z0-9._\-]{1,35}$")
_RECIPIENT = re.compile(r"^[a-z]+:[0-9]{1,20}$")
_MUNICIPALITY = re.compile(r"^[0-9]{4}$")


def _state() -> Sessions:
    from flask import current_app

    s: Sessions = current_app.extensions[EXTENSION]
    return s


# --------------------------------------------------------------------------------------------
# Request plumbing
# --------------------------------------------------------------------------------------------


@blueprint.before_request
def _session() -> BaseResponse | None:
    g.console = _state().read(request.cookies.get(COOKIE))
    g.console_client = g.console.client if g.console else None
    if g.console is None and request.endpoint not in ("console.login", "console.static"):
        return redirect(url_for("console.login", next=request.full_path if request.method == "GET" else None), 303)
    return None


@blueprint.after_request
def _headers(resp: Response) -> Response:
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'")
    return resp


def _secure() -> bool:
    base = services().settings.public_base_url or ""
    return request.is_secure or base.startswith("https://")


def current() -> Session:
    s: Session | None = g.get("console")
    if s is None:  # the before_request hook redirects first
        raise ConsoleError("GGOP-E701", request.path)
    return s


def _audit(action: str, target: str | None, outcome: int | str, detail: str | None = None) -> None:
    svc = services()
    session = g.get("console")
    record(svc.engine, svc.clock(), session.client if session else None, f"console-{action}", target, outcome, detail)
    metrics.observe_console(action, str(outcome))


def _page(template: str, status: int = 200, **ctx) -> Response:
    session: Session | None = g.get("console")
    resp = make_response(render_template(template, session=session, client=session.client if session else None,
                                         correlation_id=g.get("correlation_id"), catalogue=CATALOGUE,
                                         municipality_name=_municipality_name, utc=_utc, local=_local, **ctx), status)
    resp.headers["Content-Type"] = "text/html; charset=utf-8"
    return resp


def _municipality_name(code: str | None) -> str:
    if not code:
        return "–"
    m = services().runtime.tables.municipalities.get(code)
    return f"{code} {m.name}" if m is not None else code


def _utc(value: dt.datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "–"


def _local(value: dt.datetime | None) -> str:
    return as_utc(value).astimezone(DANISH_TIME).strftime("%Y-%m-%d %H:%M") if value else "–"


@blueprint.errorhandler(ConsoleError)
def _console_error(exc: ConsoleError) -> Response:
    if exc.issue.code != "GGOP-E701":
        _audit("refused", exc.issue.location.xpath, exc.status, exc.issue.code)
    return _page("error.html", exc.status, issue=exc.issue)


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    code = exc.code or 500
    return _page("error.html", code, issue=issue("GGOP-E903", None, request.path, exc.name or f"HTTP {code}"))


@blueprint.errorhandler(DBAPIError)
def _store_error(exc: DBAPIError) -> Response:
    log.error("console: store unavailable on %s (%s)", request.path, type(exc.orig or exc).__name__)
    resp = _page("error.html", 503, issue=issue("GGOP-E904", None, request.path))
    resp.headers["Retry-After"] = "30"
    return resp


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.error("console: internal error on %s (%s)", request.path, type(exc).__name__)
    return _page("error.html", 500, issue=issue("GGOP-E900", None, request.path))


def _require_operator(where: str) -> Session:
    s = current()
    if s.client.role != "operator":
        raise ConsoleError("GGOP-E704", where)
    return s


def _csrf(where: str) -> Session:
    s = current()
    _state().check_csrf(s, request.form.get("csrf"), where)
    return s


# --------------------------------------------------------------------------------------------
# Sign-in
# --------------------------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    if value and value.startswith(PATH + "/") and not value.startswith("//") and "\\" not in value:
        return value.rstrip("?")
    return url_for("console.messages")


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse:
    state = _state()
    problem = None
    if request.method == "POST":
        try:
            state.check_login_nonce(request.cookies.get(LOGIN_COOKIE), request.form.get("nonce"))
            session, cookie = state.sign_in(request.form.get("token", ""))
        except ConsoleError as exc:
            problem = exc.issue
            svc = services()
            record(svc.engine, svc.clock(), None, "console-login", "/console/login", exc.status, exc.issue.code)
            metrics.observe_console("login", str(exc.status))
        else:
            g.console = session
            _audit("login", "/console/login", 200)
            resp = redirect(_safe_next(request.form.get("next")), 303)
            resp.set_cookie(COOKIE, cookie, max_age=state.max_age, path=PATH, secure=_secure(), httponly=True,
                            samesite="Strict")
            resp.delete_cookie(LOGIN_COOKIE, path=PATH)
            return resp
    nonce, signed = state.login_nonce()
    resp = _page("login.html", 401 if problem else 200, problem=problem, nonce=nonce,
                 next=_safe_next(request.values.get("next")))
    resp.set_cookie(LOGIN_COOKIE, signed, max_age=1800, path=PATH, secure=_secure(), httponly=True, samesite="Strict")
    return resp


@blueprint.post("/logout")
def logout() -> BaseResponse:
    _csrf("/console/logout")
    _audit("logout", "/console/logout", 200)
    resp = redirect(url_for("console.login"), 303)
    resp.delete_cookie(COOKIE, path=PATH)
    return resp


# --------------------------------------------------------------------------------------------
# Message log and message page
# --------------------------------------------------------------------------------------------


def _date_arg(name: str) -> dt.date | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConsoleError("GGOP-E705", f"/console/messages?{name}", "a date YYYY-MM-DD") from None


@blueprint.get("/")
def index() -> BaseResponse:
    return redirect(url_for("console.messages"), 303)


@blueprint.get("/messages")
def messages() -> Response:
    session = current()
    args = request.args
    letter = args.get("letter", "").strip() or None
    if letter is not None and not _LETTER_ID.match(letter):
        raise ConsoleError("GGOP-E705", "/console/messages?letter", "letters, digits, . _ - (at most 35)")
    result = args.get("result") or None
    if result is not None and result not in data.RESULTS:
        raise ConsoleError("GGOP-E705", "/console/messages?result", "one of " + ", ".join(data.RESULTS))
    kind = args.get("type") or None
    if kind is not None and kind not in ("ggop", "xdis91", "xctl"):
        raise ConsoleError("GGOP-E705", "/console/messages?type", "ggop, xdis91 or xctl")
    before = args.get("before") or None
    if before is not None and not _DIGITS.match(before):
        raise ConsoleError("GGOP-E705", "/console/messages?before", "a message id")
    q = data.LogQuery(letter, _date_arg("from"), _date_arg("to"), result, kind, int(before) if before else None)
    scope = data.Scope.of(session.client)
    with services().engine.connect() as conn:
        rows = data.message_log(conn, scope, q)
        more = len(rows) > data.PAGE
        rows = rows[:data.PAGE]
        recipients = data.recipients_of(conn, [r.id for r in rows])
    _audit("log", "console/messages?" + ",".join(sorted(k for k in args if args.get(k))), 200)
    keep = {k: v for k, v in args.items() if k != "before" and v}
    older = url_for("console.messages") + "?" + urlencode({**keep, "before": rows[-1].id}) if more and rows else None
    return _page("messages.html", rows=rows, recipients=recipients, q=q, older=older, results=data.RESULTS,
                 first_issue=_first_issue)


def _first_issue(row) -> str | None:
    codes = [i.get("code") for i in row.issue_codes or [] if CATALOGUE.get(i.get("code", "")) is not None
             and CATALOGUE[i["code"]].severity == "error"]
    return codes[0] if codes else None


def _message_or_404(message_id: int, where: str):
    session = current()
    with services().engine.connect() as conn:
        row = data.get_message(conn, data.Scope.of(session.client), message_id)
    if row is None:
        raise ConsoleError("GGOP-E703", where)
    return row


def _unmasked(session: Session) -> bool:
    return session.client.role in services().settings.console_unmasked_roles


@blueprint.get("/messages/<int:message_id>")
def message(message_id: int) -> Response:
    session = current()
    where = f"/console/messages/{message_id}"
    row = _message_or_404(message_id, where)
    svc = services()
    unmasked = _unmasked(session)
    notes = []
    xml = stored_xml(row.raw, masked=not unmasked, max_bytes=svc.settings.max_bytes)
    if xml is None:
        notes.append(issue("GGOP-W701", None, where))
    explanation, lineage_rows = _explain(row, notes, where)
    from adapter.logs import correlation_of

    scope = data.Scope.of(session.client)
    with svc.engine.connect() as conn:
        versions = data.produced(conn, message_id)
        current_v = data.current_versions(conn, [(v.type, v.id) for v in versions])
        rows = data.outbox_rows(conn, scope, message_id=message_id)
        targets = [f"message/{message_id}"] + [f"outbox/{v.row.id}" for v in rows]
        if row.duplicate_of:
            targets.append(f"message/{row.duplicate_of}")
        audits = data.audit_rows(conn, targets)
        correlation = correlation_of(conn, message_id)
    _audit("message", f"message/{message_id}", 200)
    now = svc.clock()
    issue_lines = {i.line for i in data.issues_of(row) if i.line}
    return _page("message.html", m=row, issues=data.issues_of(row), xml_lines=xml.split("\n") if xml else None,
                 issue_lines=issue_lines, masked=not unmasked, notes=notes, explanation=explanation,
                 lineage=lineage_rows, versions=versions, current_versions=current_v, outbox_rows=rows,
                 why=lambda v: v.why(now), audits=audits, correlation=correlation, show_json=unmasked,
                 to_json=lambda c: json.dumps(c, ensure_ascii=False, indent=2))


def _explain(row, notes: list, where: str) -> tuple[dict | None, list[dict]]:
    """The rules' explanation and the lineage, computed again from the stored message as it
    was converted when it came (the pure core, the same rules and key; nothing is counted)."""
    if row.state not in ("accepted", "superseded", "duplicate") or row.kind not in ("ggop", "xdis91"):
        return None, []
    raw = row.raw
    if row.state == "duplicate" and row.duplicate_of:
        return None, []
    from adapter.lineage import lineage
    from adapter.medcom.xmlsafe import read_xml
    from adapter.pipeline import convert_bytes

    runtime = services().runtime
    try:
        conversion = convert_bytes(raw, received_at=as_utc(row.received_at), tables=runtime.tables,
                                   limits=runtime.limits, check_models=False, rules=runtime.rule_book,
                                   id_key=runtime.id_key)
        root = read_xml(raw, max_bytes=runtime.limits.max_bytes).root
        rows = lineage(root, conversion.bundle, conversion.trace)
    except (AdapterError, ValueError, KeyError, TypeError) as exc:
        log.warning("console: explanation of %s not computed (%s)", where, type(exc).__name__)
        notes.append(issue("GGOP-W702", None, where))
        return None, []
    return conversion.trace, rows


@blueprint.get("/messages/<int:message_id>/receipt")
def receipt(message_id: int) -> Response:
    where = f"/console/messages/{message_id}/receipt"
    row = _message_or_404(message_id, where)
    if row.receipt is None:
        raise ConsoleError("GGOP-E703", where, "this message has no receipt")
    _audit("receipt", f"message/{message_id}", 200)
    kind = "XCTL03" if row.receipt_positive else "XCTL02"
    resp = Response(row.receipt, mimetype="application/xml")
    resp.headers["Content-Disposition"] = f'attachment; filename="message-{message_id}-{kind}.xml"'
    return resp


# --------------------------------------------------------------------------------------------
# Outbox
# --------------------------------------------------------------------------------------------


@blueprint.get("/outbox")
def outbox_page() -> Response:
    session = current()
    recipient = request.args.get("recipient") or None
    if recipient is not None and not _RECIPIENT.match(recipient):
        raise ConsoleError("GGOP-E705", "/console/outbox?recipient", "a recipient key such as municipality:0461")
    state = request.args.get("state") or None
    if state is not None and state not in box.STATES:
        raise ConsoleError("GGOP-E705", "/console/outbox?state", "one of " + ", ".join(box.STATES))
    states = (state,) if state else (box.PENDING, box.UNROUTABLE, box.DEAD)
    scope = data.Scope.of(session.client)
    with services().engine.connect() as conn:
        summaries = data.recipient_summaries(conn, scope)
        rows = data.outbox_rows(conn, scope, recipient=recipient, states=states)
    _audit("outbox", "console/outbox?" + ",".join(sorted(k for k in request.args if request.args.get(k))), 200)
    now = services().clock()
    return _page("outbox.html", summaries=summaries, rows=rows, recipient=recipient, state=state,
                 states=box.STATES, why=lambda v: v.why(now), done=request.args.get("done"))


def _row_ids(where: str) -> tuple[int, ...]:
    raw = request.form.getlist("row")
    if not raw or len(raw) > 1000 or not all(_DIGITS.match(x) for x in raw):
        raise ConsoleError("GGOP-E705", where, "choose one or more outbox rows")
    return tuple(sorted({int(x) for x in raw}))


def _back(default: str) -> str:
    back = request.form.get("back") or ""
    return back if back.startswith(PATH + "/") and not back.startswith("//") else default


def _done(text: str) -> BaseResponse:
    back = _back(url_for("console.outbox_page")).split("#", 1)[0]
    return redirect(back + ("&" if "?" in back else "?") + urlencode({"done": text}), 303)


def _audit_rows(conn, svc, session, done, action: str, outcome: str) -> None:
    """One audit row per outbox row acted on, naming the operator and the message."""
    found = data.message_of_outbox(conn, done)
    for row_id in done:
        record_in(conn, svc.clock(), session.client, f"console-outbox-{action}", f"outbox/{row_id}", outcome,
                  f"message/{found[row_id][0]}" if row_id in found else None)


def _outcome(where: str, done, action: str, outcome: str) -> BaseResponse:
    metrics.observe_console(f"outbox-{action}", outcome if done else "none")
    if not done:
        raise ConsoleError("GGOP-E706", where, f"nothing was {outcome}")
    return _done(f"{outcome} {len(done)}")


@blueprint.post("/outbox/replay")
def replay() -> BaseResponse:
    where = "/console/outbox/replay"
    session = _require_operator(where)
    _csrf(where)
    svc = services()
    recipient = request.form.get("recipient") or None
    if recipient is not None:
        if not _RECIPIENT.match(recipient):
            raise ConsoleError("GGOP-E705", where, "a recipient key")
        ids: tuple[int, ...] = ()
    else:
        ids = _row_ids(where)
    with svc.engine.begin() as conn:
        done = box.replay(conn, ids=ids, recipient=recipient, now=svc.clock())
        _audit_rows(conn, svc, session, done, "replay", "replayed")
    return _outcome(where, done, "replay", "replayed")


@blueprint.post("/outbox/cancel")
def cancel() -> BaseResponse:
    where = "/console/outbox/cancel"
    session = _require_operator(where)
    _csrf(where)
    svc = services()
    ids = _row_ids(where)
    with svc.engine.begin() as conn:
        done = box.cancel(conn, ids, reason=f"cancelled by {session.client.name} in the console at "
                          f"{box.utc_text(svc.clock())}")
        _audit_rows(conn, svc, session, done, "cancel", "cancelled")
    return _outcome(where, done, "cancel", "cancelled")


# --------------------------------------------------------------------------------------------
# Dashboards
# --------------------------------------------------------------------------------------------


@blueprint.get("/dashboard")
def dashboard() -> Response:
    session = current()
    chosen = request.args.get("municipality") or None
    if chosen is not None and not _MUNICIPALITY.match(chosen):
        raise ConsoleError("GGOP-E705", "/console/dashboard?municipality", "four digits")
    if session.client.role == "municipality":
        if chosen is not None and chosen != session.client.municipality:
            raise ConsoleError("GGOP-E704", "/console/dashboard?municipality", "a tester sees its own municipality")
        chosen = session.client.municipality
    svc = services()
    with svc.engine.connect() as conn:
        per = dash.compute(conn, svc.runtime.tables, chosen)
    stats = per.get(None) or dash.Stats()
    table = sorted(((code, s) for code, s in per.items() if code is not None), key=lambda x: -x[1].plans)
    _audit("dashboard", f"console/dashboard{'?municipality' if chosen else ''}", 200, chosen)
    charts = {
        "levels": dash.level_chart(stats),
        "compliance": dash.share_bars([
            ("Informed within 4 days", stats.inform.share, f"({stats.inform.on_time} of {stats.inform.decided})"),
            ("Start offered within 7 days", stats.offer.share, f"({stats.offer.on_time} of {stats.offer.decided})"),
        ], "Deadline compliance: share done on time"),
        "types": dash.count_bars(sorted(stats.by_type.items()), "Plans per type"),
        "waits": dash.count_bars(dash.wait_buckets(stats.waits), "Days from discharge to offered start"),
    }
    options = sorted(svc.runtime.tables.municipalities) if session.client.role == "operator" else []
    return _page("dashboard.html", stats=stats, chosen=chosen, charts=charts, table=table, options=options,
                 pct=dash.pct)
