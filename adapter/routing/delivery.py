"""One delivery attempt to one push endpoint, over HTTP (urllib3 directly from a worker's own session,
requests otherwise), and what its answer means.

- ``transaction``: the payload Bundle (type transaction, ``PUT Type/id`` entries with the
  adapter's deterministic ids) is POSTed to the base URL. A redelivery PUTs the same ids
  again, so the receiver never gets a second copy of anything.
- ``message``: the same resources in a FHIR message Bundle with a MessageHeader first
  (deterministic MessageHeader and Bundle ids per outbox row, so a receiver can recognise a
  resend), POSTed to ``<base URL>/$process-message``; a response MessageHeader with code
  ``transient-error`` is retried, ``fatal-error`` is permanent.

Outcomes: ``delivered`` when a 2xx carries a FHIR answer (a ``transaction-response`` Bundle
for a transaction; a response message, or no body at all, for ``$process-message``); ``retry``
on connection errors, timeouts, 408, 409, 425, 429 and 5xx (with the ``Retry-After`` delay
when the server gives one, at most :data:`MAX_RETRY_AFTER`), on a 2xx that is not such an
answer, and on a response larger than the cap; ``permanent`` on any other status. Reasons
name statuses, OperationOutcome issue codes and FHIR paths only, never the server's
diagnostics text (which may echo patient data).

Bounds. An endpoint cannot hold the worker: the route's ``timeout`` is the budget of the
whole request (connecting, sending, the headers and the body; ``timeout (deadline)`` when it
runs out), a stop asked for by the worker (SIGTERM) ends a request in hand after at most
:data:`STOP_GRACE` seconds, and no more than ``max_body`` bytes (:data:`MAX_RESPONSE_BYTES`)
of a response are ever read or held. The request runs in a helper thread that the caller
only waits for (one per calling thread, kept for its next requests), so no read however slow
can delay the deadline. An abandoned request whose headers have arrived has its socket shut
down, and the helper ends at once; one still waiting
for its headers ends by its own read timeout (the route's timeout per read), in the background.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import os
import queue
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import _basic_auth_str
from requests.cookies import extract_cookies_to_jar

from adapter import __version__
from adapter.fhir.bundle import entry_resource
from adapter.fhir.context import ADAPTER_BASE, ID_NAMESPACE
from adapter.routing.routes import MEDCOM_MESSAGE, MESSAGE, Auth, Route

DELIVERED, RETRY, PERMANENT = "delivered", "retry", "permanent"
ABORTED = "aborted"  # the worker is stopping: the attempt was given up, nothing is known of its answer
RETRYABLE_STATUSES = {408, 409, 425, 429}
FHIR_JSON = "application/fhir+json"
# Content-Types of a FHIR JSON answer (the media type only; parameters such as charset are ignored)
JSON_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
MAX_RETRY_AFTER = 24 * 3600.0  # seconds: a longer Retry-After is taken as this
MAX_RESPONSE_BYTES = 1024 * 1024  # the most of a response body that is read
STOP_GRACE = 2.0  # seconds a request in hand may still take once the worker is told to stop
_CHUNK = 64 * 1024
_TICK = 0.1  # seconds between looks at the deadline and the stop flag while a request runs
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,40}/[a-z0-9][a-z0-9.+-]{0,60}$")
# A FHIR path such as Bundle.entry[3].resource.subject: the only part of a server's issue
# that is kept besides its codes (diagnostics text may echo patient data).
_SAFE_PATH = re.compile(r"^[A-Z][A-Za-z]*(\.[A-Za-z][A-Za-z0-9_]*(\[[0-9]{1,4}\])?){1,12}$")
_SAFE_CODE = re.compile(r"^[a-z\-]{1,40}$")


@dataclass(frozen=True)
class Outcome:
    kind: str  # delivered | retry | permanent
    status: int | None
    reason: str  # short; statuses, codes and paths only
    retry_after: float | None = None  # seconds, from Retry-After
    elapsed: float = 0.0


def message_bundle(payload: dict, *, message_id: int, recipient: str, destination: str) -> dict:
    """The payload's resources as a FHIR message Bundle (MessageHeader first)."""
    header_id = str(uuid.uuid5(ID_NAMESPACE, f"outbox|{message_id}|{recipient}|messageheader"))
    entries = [{"fullUrl": e["fullUrl"], "resource": entry_resource(e)} for e in payload["entry"]]
    kinds = {e["resource"]["resourceType"]: e["fullUrl"] for e in reversed(payload["entry"])}
    focus = kinds.get("ServiceRequest") or kinds.get("Communication") or entries[0]["fullUrl"]
    event = "ggop-plan" if "ServiceRequest" in kinds else "correspondence"
    header = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "eventUri": f"{ADAPTER_BASE}/message-event/{event}",
        "destination": [{"endpoint": destination}],
        "source": {"name": "ggop-adapter", "software": "ggop-adapter", "version": __version__,
                   "endpoint": f"{ADAPTER_BASE}/message-source"},
        "focus": [{"reference": focus}],
    }
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(ID_NAMESPACE, f"outbox|{message_id}|{recipient}|message")),
        "type": "message",
        "timestamp": payload.get("timestamp"),
        "entry": [{"fullUrl": f"urn:uuid:{header_id}", "resource": header}] + entries,
    }


def parse_retry_after(value: str | None, now: dt.datetime, limit: float = MAX_RETRY_AFTER) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), at most ``limit``;
    None when there is none or it cannot be read."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), limit)  # float() of any run of digits is finite or inf, never an error
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return min(limit, max(0.0, (when - now).total_seconds()))


def _json(body: bytes) -> Any:
    """The body as JSON, or None (not JSON, not UTF-8, or nested deeper than the parser goes)."""
    try:
        return json.loads(body or b"")
    except (ValueError, RecursionError):
        return None


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def outcome_summary(body: bytes, limit: int = 3) -> str:
    """OperationOutcome issues as ``severity/code at path`` (no diagnostics text)."""
    data = _json(body)
    if not isinstance(data, dict):
        return ""
    if data.get("resourceType") == "Bundle":  # a message response carrying an OperationOutcome
        data = next((r for r in (e.get("resource") for e in _dicts(data.get("entry")))
                     if isinstance(r, dict) and r.get("resourceType") == "OperationOutcome"), None) or {}
    if data.get("resourceType") != "OperationOutcome":
        return ""
    parts = []
    for i in _dicts(data.get("issue"))[:limit]:
        sev = i.get("severity") if _SAFE_CODE.match(str(i.get("severity", ""))) else "?"
        code = i.get("code") if _SAFE_CODE.match(str(i.get("code", ""))) else "?"
        paths = [p for key in ("expression", "location") if isinstance(i.get(key), list) for p in i[key]]
        where = next((p for p in paths if isinstance(p, str) and _SAFE_PATH.match(p)), None)
        parts.append(f"{sev}/{code}" + (f" at {where}" if where else ""))
    return "OperationOutcome " + ", ".join(parts) if parts else ""


def _reason(status: int | None, text: str, body: bytes = b"") -> str:
    summary = outcome_summary(body)
    head = f"HTTP {status}" if status is not None else text
    parts = [head] + ([text] if status is not None and text else []) + ([summary] if summary else [])
    return "; ".join(parts)[:300]


def _is_message_response(data: Any) -> bool:
    """A FHIR response message: a Bundle of type message with a MessageHeader first."""
    if not isinstance(data, dict) or data.get("resourceType", "Bundle") != "Bundle" or data.get("type") != "message":
        return False
    entries = data.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    resource = first.get("resource") if isinstance(first, dict) else None
    return isinstance(resource, dict) and resource.get("resourceType") == "MessageHeader"


def _message_response(data: Any) -> str | None:
    """The response code of a response message (``ok``, ``transient-error``, ``fatal-error``)."""
    if not _is_message_response(data):
        return None
    response = data["entry"][0]["resource"].get("response")
    code = response.get("code") if isinstance(response, dict) else None
    return code if isinstance(code, str) else None


def _is_transaction_response(data: Any) -> bool:
    """A FHIR transaction-response Bundle whose entries (if any) are objects."""
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle" or data.get("type") != "transaction-response":
        return False
    entries = data.get("entry", [])
    return isinstance(entries, list) and all(isinstance(e, dict) for e in entries)


def _transaction_failures(data: Any) -> list[str]:
    """``entry[i] <status>`` for every entry of a transaction-response that did not succeed."""
    if not _is_transaction_response(data):
        return []
    out = []
    for i, e in enumerate(data.get("entry") or []):
        response = e.get("response")
        status = str(response.get("status", "")) if isinstance(response, dict) else ""
        if status and not status.startswith("2"):
            out.append(f"entry[{i}] {status.split(' ')[0][:3]}")
    return out


def _media_type(content_type: str | None) -> str | None:
    return content_type.split(";", 1)[0].strip().lower() if content_type else None


def _not_json_note(content_type: str | None) -> str:
    """`` (Content-Type …)`` for an answer not served as JSON: the media type alone, when it looks like one."""
    media = _media_type(content_type)
    if not media:
        return " (no Content-Type)"
    return f" (Content-Type {media})" if _MEDIA_TYPE.match(media) else " (Content-Type not shown)"


def _client_cert(auth: Auth) -> str | tuple[str, str] | None:
    """requests' ``cert`` for mutual TLS (the routing file always names both certificate and key)."""
    if not auth.client_cert:
        return None
    if auth.client_key is None:
        return auth.client_cert  # what requests does with (cert, None): the key is read from the cert file
    return (auth.client_cert, auth.client_key)


@dataclass
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _TooLarge(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class _Deadline(Exception):
    """The route's time ran out before the whole answer was read."""


class _Stopped(Exception):
    """The worker is stopping and the request outlasted the grace period."""


@dataclass
class _Exchange:
    """One HTTP request, run in a helper thread that the caller waits for."""

    session: requests.Session
    method: str
    url: str
    kwargs: dict
    max_body: int
    done: threading.Event = field(default_factory=threading.Event)
    abandoned: threading.Event = field(default_factory=threading.Event)
    response: requests.Response | None = None
    answer: _Answer | None = None
    error: BaseException | None = None

    def run(self) -> None:
        try:
            resp = self.session.request(self.method, self.url, stream=True, **self.kwargs)
            self.response = resp
            try:
                if not self.abandoned.is_set():
                    self.answer = _Answer(resp.status_code, resp.headers, self._read(resp))
            finally:
                resp.close()  # a body not read to its end closes the connection rather than reuse it
        except BaseException as exc:  # noqa: BLE001 - handed over to the waiting thread
            self.error = exc
        finally:
            self.done.set()

    def _read(self, resp: requests.Response) -> bytes:
        declared = resp.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_body:
            raise _TooLarge(resp.status_code)
        body = bytearray()
        for chunk in resp.iter_content(_CHUNK):
            if self.abandoned.is_set():
                break
            if len(body) + len(chunk) > self.max_body:
                raise _TooLarge(resp.status_code)
            body += chunk
        return bytes(body)

    def abandon(self) -> None:
        """Give the request up: shut its socket down, so the helper's read ends now."""
        self.abandoned.set()
        resp = self.response
        if resp is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):  # closed already, or no socket
                resp.raw.shutdown()
        # before the headers have arrived there is no socket to reach: the helper ends by its own
        # read timeout (the route's timeout), holding nothing but that request

    def wait(self, budget: float, should_stop: Callable[[], bool] | None) -> _Answer:
        """The answer, read within ``budget`` seconds; raises the request's own error, :class:`_Deadline`,
        :class:`_Stopped` or :class:`_TooLarge`."""
        started = time.monotonic()
        deadline = started + budget
        stop_at: float | None = None
        helper = _helper()
        helper.put(self)
        while True:
            now = time.monotonic()
            if stop_at is None and should_stop is not None and should_stop():
                stop_at = now + STOP_GRACE
            end = deadline if stop_at is None else min(deadline, stop_at)
            if self.done.wait(max(0.0, min(_TICK, end - now))):
                break
            if time.monotonic() >= end:
                self.abandon()
                _helpers.helper = None  # that one is busy until the request ends: the next gets a new one
                raise _Deadline() if stop_at is None or deadline <= stop_at else _Stopped()
        if self.error is not None:
            raise self.error
        assert self.answer is not None, "a request ends with an answer or an error"
        return self.answer


class _Helper:
    """The thread that runs the requests of one calling thread, one at a time (started once, not
    once per request). It ends when its caller ends, or after an abandoned request."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, args=(self.jobs,), name="delivery", daemon=True).start()

    @staticmethod
    def _serve(jobs: queue.SimpleQueue) -> None:
        while True:
            exchange = jobs.get()
            if exchange is None:
                return
            exchange.run()
            if exchange.abandoned.is_set():
                return  # its caller has a new helper already

    def put(self, exchange: _Exchange) -> None:
        self.jobs.put(exchange)


class _Owner:
    """Held by the calling thread only: when that thread ends, its helper is told to end too."""

    def __init__(self, helper: _Helper):
        self.helper = helper
        weakref.finalize(self, helper.jobs.put, None)


_helpers = threading.local()


def _helper() -> _Helper:
    owner = getattr(_helpers, "helper", None)
    if owner is None:
        owner = _helpers.helper = _Owner(_Helper())
    return owner.helper


def _first_match(exc: BaseException | None, table) -> type[BaseException] | None:
    return next((target for source, target in table if isinstance(exc, source)), None)


def _requests_error(exc: BaseException) -> BaseException:
    """The exception requests raises for a urllib3 error in sending a request and reading its
    headers (as ``HTTPAdapter.send`` converts it), so the outcome reasons stay the same. The
    tables are in requests' order: the first match wins."""
    from urllib3 import exceptions as u

    rex = requests.exceptions
    if isinstance(exc, u.MaxRetryError):
        reason = exc.reason
        if isinstance(reason, u.ConnectTimeoutError) and not isinstance(reason, u.NewConnectionError):
            return rex.ConnectTimeout(exc)
        target = _first_match(reason, ((u.ResponseError, rex.RetryError), (u.ProxyError, rex.ProxyError),
                                       (u.SSLError, rex.SSLError)))
        return (target or rex.ConnectionError)(exc)
    target = _first_match(exc, ((u.ProtocolError, rex.ConnectionError), (OSError, rex.ConnectionError),
                                (u.ClosedPoolError, rex.ConnectionError), (u.ProxyError, rex.ProxyError),
                                (u.SSLError, rex.SSLError), (u.ReadTimeoutError, rex.ReadTimeout),
                                (u.InvalidHeader, rex.InvalidHeader)))
    return target(exc) if target is not None else exc


def _body_error(exc: BaseException) -> BaseException:
    """The exception requests raises for a urllib3 error while reading a body (``iter_content``)."""
    from urllib3 import exceptions as u

    rex = requests.exceptions
    target = _first_match(exc, ((u.ProtocolError, rex.ChunkedEncodingError), (u.DecodeError, rex.ContentDecodingError),
                                (u.ReadTimeoutError, rex.ConnectionError), (u.SSLError, rex.SSLError)))
    return target(exc) if target is not None else exc


@dataclass
class _Endpoint:
    """What a worker's session sends to one URL with, worked out once (as requests would work it
    out for every request): the prepared URL, the adapter whose urllib3 pools (keep-alive, TLS
    verification and CA bundle, client certificate, proxies) carry it, and the headers."""

    prepared: requests.PreparedRequest
    adapter: HTTPAdapter
    target: str  # the path, or the whole URL through an HTTP proxy
    verify: bool | str
    cert: Any
    proxies: dict
    headers: dict  # the session's own (User-Agent, Accept-Encoding, Accept, Connection)
    auth: str | None  # Basic credentials from ~/.netrc, which replace any Authorization header


def _plain(session: requests.Session) -> bool:
    """A worker's own session with nothing of its own that requests would add to a request (no
    cookies, auth, proxies, parameters, hooks, TLS settings): its requests can go to urllib3 directly."""
    return (type(session) is requests.Session and not session.trust_env and not session.cookies
            and session.auth is None and not session.proxies and not session.params
            and session.verify is True and session.cert is None
            and not any(session.hooks.values()))


def _endpoint(session: requests.Session, url: str, verify: bool | str, cert: Any) -> _Endpoint:
    endpoints: dict = session.__dict__.setdefault("_delivery_endpoints", {})
    key = (url, verify, cert)
    found = endpoints.get(key)
    if found is None:
        env = _environment(url, verify, cert)
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)  # MissingSchema, InvalidURL
        prepared.prepare_headers(None)  # for the cookie jar, should the server set a cookie
        adapter = session.get_adapter(prepared.url or url)  # InvalidSchema
        if type(adapter) is not HTTPAdapter:
            raise TypeError("not requests' own adapter")
        proxies = env.get("proxies") or {}
        auth = env.get("auth")
        found = _Endpoint(prepared, adapter, adapter.request_url(prepared, proxies), env.get("verify", verify),
                          env.get("cert", cert), proxies, dict(session.headers.items()),
                          _basic_auth_str(*auth) if auth else None)
        if len(endpoints) > 1024:
            endpoints.clear()
        endpoints[key] = found
    return found


@dataclass
class _PoolExchange(_Exchange):
    """One POST sent through urllib3 directly (the connection pool requests would use for it),
    without requests' per-request work; the same headers, TLS and proxy settings, timeouts, size
    cap and errors (converted to requests' own exceptions)."""

    endpoint: _Endpoint | None = None
    raw: urllib3.BaseHTTPResponse | None = None

    def run(self) -> None:
        try:
            ep = self.endpoint
            assert ep is not None
            body: bytes = self.kwargs["data"]
            headers = {**ep.headers, **self.kwargs["headers"], "Content-Length": str(len(body))}
            if ep.auth is not None:
                headers["Authorization"] = ep.auth
            connect, read = self.kwargs["timeout"]
            try:  # the pool for this URL and these settings (the session's pools are kept for reuse)
                conn = cast(urllib3.HTTPConnectionPool, ep.adapter.get_connection_with_tls_context(
                    ep.prepared, ep.verify, proxies=ep.proxies, cert=ep.cert))
            except urllib3.exceptions.LocationValueError as exc:
                raise requests.exceptions.InvalidURL(exc) from exc
            ep.adapter.cert_verify(conn, self.url, ep.verify, ep.cert)  # the CA bundle and client cert files
            try:
                resp = conn.urlopen(self.method, ep.target, body=body, headers=headers, redirect=False,
                                    assert_same_host=False, preload_content=False, decode_content=False,
                                    retries=ep.adapter.max_retries,
                                    timeout=urllib3.Timeout(connect=connect, read=read), chunked=False)
            except Exception as exc:
                converted = _requests_error(exc)
                if converted is exc:
                    raise
                raise converted from exc
            self.raw = resp
            consumed = False
            try:
                if "Set-Cookie" in resp.headers:  # kept by the session, as requests keeps them
                    extract_cookies_to_jar(self.session.cookies, ep.prepared, resp)
                if not self.abandoned.is_set():
                    content, consumed = self._read_raw(resp)
                    self.answer = _Answer(resp.status, resp.headers, content)
            finally:
                if not consumed:
                    resp.close()  # a body not read to its end closes the connection rather than reuse it
                resp.release_conn()
        except BaseException as exc:  # noqa: BLE001 - handed over to the waiting thread
            self.error = exc
        finally:
            self.done.set()

    def _read_raw(self, resp: urllib3.BaseHTTPResponse) -> tuple[bytes, bool]:
        declared = resp.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_body:
            raise _TooLarge(resp.status)
        body = bytearray()
        try:
            for chunk in resp.stream(_CHUNK, decode_content=True):
                if self.abandoned.is_set():
                    return bytes(body), False
                if len(body) + len(chunk) > self.max_body:
                    raise _TooLarge(resp.status)
                body += chunk
        except _TooLarge:
            raise
        except Exception as exc:  # as requests' iter_content would raise it
            converted = _body_error(exc)
            if converted is exc:
                raise
            raise converted from exc
        return bytes(body), True

    def abandon(self) -> None:
        """Give the request up: shut its socket down, so the helper's read ends now."""
        self.abandoned.set()
        resp = self.raw
        if resp is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):  # closed already, or no socket
                resp.shutdown()


_ENVIRONMENT: dict[tuple, dict] = {}
_ENVIRONMENT_LOCK = threading.Lock()


def quiet_session() -> requests.Session:
    """A session that does not read the environment on every request (proxy variables, CA bundle
    variables, ``~/.netrc``: a noticeable part of a request's cost); :func:`deliver` and
    :func:`probe` give it the same settings, read once per endpoint."""
    session = requests.Session()
    session.trust_env = False
    return session


def _environment(url: str, verify: bool | str, cert: Any) -> dict:
    """What requests takes from the environment for ``url`` (proxies and ``no_proxy``,
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, ``~/.netrc``), read once per URL and settings."""
    key = (url, verify, cert)
    found = _ENVIRONMENT.get(key)
    if found is None:
        reader = requests.Session()  # trust_env: reads as a plain session would
        found = dict(reader.merge_environment_settings(url, {}, None, verify, cert))
        found.pop("stream", None)
        found["auth"] = requests.utils.get_netrc_auth(url)
        reader.close()
        with _ENVIRONMENT_LOCK:
            if len(_ENVIRONMENT) > 4096:  # many endpoints: start again rather than grow
                _ENVIRONMENT.clear()
            _ENVIRONMENT[key] = found
    return found


def _request(session: requests.Session, method: str, url: str, *, budget: float, max_body: int,
             should_stop: Callable[[], bool] | None = None, **kwargs: Any) -> _Answer:
    """``method url`` within ``budget`` seconds in all, its body read up to ``max_body`` bytes."""
    kwargs.setdefault("timeout", (min(10.0, budget), budget))
    if method == "POST" and not kwargs.get("allow_redirects", True) and _plain(session):
        # a delivery from a worker's own session: straight to urllib3, settings read once per endpoint
        endpoint = _endpoint(session, url, kwargs.get("verify", True), kwargs.get("cert"))
        exchange: _Exchange = _PoolExchange(session, method, url, kwargs, max_body, endpoint=endpoint)
        return exchange.wait(budget, should_stop)
    if not session.trust_env:  # a worker's own session: the environment is read once per endpoint
        kwargs.update(_environment(url, kwargs.get("verify", True), kwargs.get("cert")))
    exchange = _Exchange(session, method, url, kwargs, max_body)
    return exchange.wait(budget, should_stop)


def deliver(session: requests.Session, route: Route, payload: dict | bytes, *, message_id: int, recipient: str,
            now: dt.datetime, env: Mapping[str, str] | None = None,
            should_stop: Callable[[], bool] | None = None, max_body: int = MAX_RESPONSE_BYTES) -> Outcome:
    """Send one payload to one push route within the route's timeout; never raises for network or
    HTTP trouble. ``should_stop`` (the worker's stop flag) gives a request in hand up after
    :data:`STOP_GRACE` seconds, as an ``aborted`` outcome. ``payload`` is the Bundle, or its JSON
    text as stored (UTF-8), which a transaction route sends as it is."""
    env = os.environ if env is None else env
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "Prefer": "return=minimal",
               "User-Agent": f"ggop-adapter/{__version__}"}
    if route.auth.bearer_token_env:
        token = env.get(route.auth.bearer_token_env)
        if not token:
            return Outcome(RETRY, None, f"environment variable {route.auth.bearer_token_env} (bearer token) is not set")
        headers["Authorization"] = f"Bearer {token}"
    base_url = route.base_url
    assert base_url is not None, "load_routing gives every push route a base_url"
    if route.payload not in (MESSAGE, MEDCOM_MESSAGE):  # the transaction Bundle itself
        # compact UTF-8 JSON, as json.dumps(…, ensure_ascii=False) wrote it
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return _send(session, route, base_url, data, headers, now, should_stop, max_body)
    bundle: dict = orjson.loads(payload) if isinstance(payload, bytes) else payload
    if route.payload == MESSAGE:
        url = f"{base_url}/$process-message"
        body = message_bundle(bundle, message_id=message_id, recipient=recipient, destination=base_url)
    else:  # a letter as a MedCom CareCommunication message
        from adapter.medcom_fhir.delivery import medcom_message

        url = f"{base_url}/$process-message"
        try:
            body = medcom_message(bundle, message_id=message_id, recipient=recipient)
        except ValueError as exc:  # not a letter, or a party without SOR code: codes only
            return Outcome(PERMANENT, None, f"no CareCommunication message: {exc}")
    return _send(session, route, url, orjson.dumps(body), headers, now, should_stop, max_body)


def _send(session: requests.Session, route: Route, url: str, data: bytes, headers: dict, now: dt.datetime,
          should_stop: Callable[[], bool] | None, max_body: int) -> Outcome:
    """POST ``data`` to ``url`` within the route's timeout, and what the answer means."""
    started = time.monotonic()
    try:
        answer = _request(session, "POST", url, budget=route.timeout, max_body=max_body, should_stop=should_stop,
                          data=data, headers=headers, cert=_client_cert(route.auth),
                          verify=route.ca_bundle or True, allow_redirects=False)
    except _Deadline:
        return Outcome(RETRY, None, "timeout (deadline)", elapsed=time.monotonic() - started)
    except _Stopped:
        return Outcome(ABORTED, None, "stopped (the worker is stopping)", elapsed=time.monotonic() - started)
    except _TooLarge as exc:
        return Outcome(RETRY, exc.status, _reason(exc.status, "response too large"),
                       elapsed=time.monotonic() - started)
    except requests.exceptions.Timeout as exc:
        return Outcome(RETRY, None, f"timeout ({type(exc).__name__})")
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema) as exc:
        return Outcome(PERMANENT, None, f"bad base URL ({type(exc).__name__})")
    except (OSError, requests.exceptions.RequestException) as exc:  # connection refused/reset, TLS, DNS
        return Outcome(RETRY, None, f"no connection ({type(exc).__name__})")
    elapsed = time.monotonic() - started
    return _outcome(route, answer, now, elapsed)


def _outcome(route: Route, answer: _Answer, now: dt.datetime, elapsed: float) -> Outcome:
    """What an answer read in full means."""
    status, content = answer.status, answer.body
    retry_after = parse_retry_after(answer.headers.get("Retry-After"), now)
    if 200 <= status < 300:
        return _success_outcome(route, answer, retry_after, elapsed)
    if status in RETRYABLE_STATUSES or status >= 500:
        return Outcome(RETRY, status, _reason(status, "", content), retry_after, elapsed)
    if 300 <= status < 400:
        return Outcome(PERMANENT, status, _reason(status, "redirect: correct base_url in the routing table"),
                       None, elapsed)
    return Outcome(PERMANENT, status, _reason(status, "refused", content), None, elapsed)


def _success_outcome(route: Route, answer: _Answer, retry_after: float | None, elapsed: float) -> Outcome:
    """A 2xx is a delivery only when it carries the FHIR answer the payload asks for."""
    status, content = answer.status, answer.body
    content_type = answer.headers.get("Content-Type")
    is_json = _media_type(content_type) in JSON_TYPES
    data = _json(content) if is_json else None
    if route.payload in (MESSAGE, MEDCOM_MESSAGE):
        if not content.strip():  # accepted for asynchronous processing, or no response message
            return Outcome(DELIVERED, status, f"HTTP {status}", None, elapsed)
        if not _is_message_response(data):
            note = "" if is_json else _not_json_note(content_type)
            return Outcome(RETRY, status, _reason(status, "not a FHIR message response" + note,
                                                  content if is_json else b""), None, elapsed)
        code = _message_response(data)
        if code == "transient-error":
            return Outcome(RETRY, status, _reason(status, "response code transient-error", content), retry_after,
                           elapsed)
        if code == "fatal-error":
            return Outcome(PERMANENT, status, _reason(status, "response code fatal-error", content), None, elapsed)
        return Outcome(DELIVERED, status, f"HTTP {status}", None, elapsed)
    if not _is_transaction_response(data):
        note = "" if is_json else _not_json_note(content_type)
        return Outcome(RETRY, status, _reason(status, "not a FHIR transaction-response" + note,
                                              content if is_json else b""), None, elapsed)
    failed = _transaction_failures(data)
    if failed:
        return Outcome(PERMANENT, status, _reason(status, "transaction-response with failed entries: "
                                                  + ", ".join(failed[:3])), None, elapsed)
    return Outcome(DELIVERED, status, f"HTTP {status}", None, elapsed)


def probe(session: requests.Session, route: Route, env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """GET <base>/metadata with the route's authentication: (ok, one line)."""
    env = os.environ if env is None else env
    headers = {"Accept": FHIR_JSON}
    if route.auth.bearer_token_env:
        token = env.get(route.auth.bearer_token_env)
        if not token:
            return False, f"environment variable {route.auth.bearer_token_env} is not set"
        headers["Authorization"] = f"Bearer {token}"
    budget = min(route.timeout, 15.0)
    try:
        answer = _request(session, "GET", f"{route.base_url}/metadata", budget=budget, max_body=MAX_RESPONSE_BYTES,
                          headers=headers, cert=_client_cert(route.auth), verify=route.ca_bundle or True)
    except _Deadline:
        return False, f"no answer within {budget:g} s"
    except _TooLarge as exc:
        return False, f"HTTP {exc.status} but the response is too large"
    except (OSError, requests.exceptions.RequestException) as exc:
        return False, f"no answer ({type(exc).__name__})"
    if answer.status != 200:
        return False, f"HTTP {answer.status}"
    cs = _json(answer.body)
    if cs is None:
        return False, "HTTP 200 but not JSON"
    if not isinstance(cs, dict) or cs.get("resourceType") != "CapabilityStatement":
        return False, "HTTP 200 but not a CapabilityStatement"
    software = cs.get("software")
    name = (software.get("name") if isinstance(software, dict) else None) or "unknown software"
    version = cs.get("fhirVersion") or "?"
    ok = str(version).startswith("4.0")
    return ok, f"HTTP 200, FHIR {version}, {str(name)[:60]}" + ("" if ok else " (not FHIR R4)")
