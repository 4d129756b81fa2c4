"""One delivery attempt to one push endpoint, with requests, and what its answer means.

- ``transaction``: the payload Bundle (type transaction, ``PUT Type/id`` entries with the
  adapter's deterministic ids) is POSTed to the base URL. A redelivery PUTs the same ids
  again, so the receiver never gets a second copy of anything.
- ``message``: the same resources in a FHIR message Bundle with a MessageHeader first
  (deterministic MessageHeader and Bundle ids per outbox row, so a receiver can recognise a
  resend), POSTed to ``<base URL>/$process-message``; a response MessageHeader with code
  ``transient-error`` is retried, ``fatal-error`` is permanent.

Outcomes: ``delivered``; ``retry`` on connection errors, timeouts, 408, 409, 425, 429 and
5xx (with the ``Retry-After`` delay when the server gives one); ``permanent`` on any other
status. Reasons name statuses, OperationOutcome issue codes and FHIR paths only, never the
server's diagnostics text (which may echo patient data).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import requests

from adapter import __version__
from adapter.fhir.bundle import entry_resource
from adapter.fhir.context import ADAPTER_BASE, ID_NAMESPACE
from adapter.routing.routes import MESSAGE, Auth, Route

DELIVERED, RETRY, PERMANENT = "delivered", "retry", "permanent"
RETRYABLE_STATUSES = {408, 409, 425, 429}
FHIR_JSON = "application/fhir+json"
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


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def outcome_summary(body: bytes, limit: int = 3) -> str:
    """OperationOutcome issues as ``severity/code at path`` (no diagnostics text)."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    if data.get("resourceType") == "Bundle":  # a message response carrying an OperationOutcome
        data = next((e.get("resource") for e in data.get("entry") or []
                     if isinstance(e, dict) and (e.get("resource") or {}).get("resourceType") == "OperationOutcome"),
                    None) or {}
    if data.get("resourceType") != "OperationOutcome":
        return ""
    parts = []
    for i in (data.get("issue") or [])[:limit]:
        if not isinstance(i, dict):
            continue
        sev = i.get("severity") if _SAFE_CODE.match(str(i.get("severity", ""))) else "?"
        code = i.get("code") if _SAFE_CODE.match(str(i.get("code", ""))) else "?"
        where = next((p for p in (i.get("expression") or []) + (i.get("location") or [])
                      if isinstance(p, str) and _SAFE_PATH.match(p)), None)
        parts.append(f"{sev}/{code}" + (f" at {where}" if where else ""))
    return "OperationOutcome " + ", ".join(parts) if parts else ""


def _reason(status: int | None, text: str, body: bytes = b"") -> str:
    summary = outcome_summary(body)
    head = f"HTTP {status}" if status is not None else text
    parts = [head] + ([text] if status is not None and text else []) + ([summary] if summary else [])
    return "; ".join(parts)[:300]


def _message_response(body: bytes) -> str | None:
    try:
        data = json.loads(body or b"")
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "message":
        return None
    first = ((data.get("entry") or [{}])[0] or {}).get("resource") or {}
    if first.get("resourceType") != "MessageHeader":
        return None
    return (first.get("response") or {}).get("code")


def _transaction_failures(body: bytes) -> list[str]:
    try:
        data = json.loads(body or b"")
    except ValueError:
        return []
    if not isinstance(data, dict) or data.get("type") != "transaction-response":
        return []
    out = []
    for i, e in enumerate(data.get("entry") or []):
        status = str(((e or {}).get("response") or {}).get("status", ""))
        if status and not status.startswith("2"):
            out.append(f"entry[{i}] {status.split(' ')[0][:3]}")
    return out


def _client_cert(auth: Auth) -> str | tuple[str, str] | None:
    """requests' ``cert`` for mutual TLS (the routing file always names both certificate and key)."""
    if not auth.client_cert:
        return None
    if auth.client_key is None:
        return auth.client_cert  # what requests does with (cert, None): the key is read from the cert file
    return (auth.client_cert, auth.client_key)


def deliver(session: requests.Session, route: Route, payload: dict, *, message_id: int, recipient: str,
            now: dt.datetime, env: Mapping[str, str] | None = None) -> Outcome:
    """Send one payload to one push route; never raises for network or HTTP trouble."""
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
    if route.payload == MESSAGE:
        url = f"{base_url}/$process-message"
        body = message_bundle(payload, message_id=message_id, recipient=recipient, destination=base_url)
    else:
        url = base_url
        body = payload
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    cert = _client_cert(route.auth)
    try:
        resp = session.post(url, data=data, headers=headers, timeout=(min(10.0, route.timeout), route.timeout),
                            cert=cert, verify=route.ca_bundle or True, allow_redirects=False)
    except requests.exceptions.Timeout as exc:
        return Outcome(RETRY, None, f"timeout ({type(exc).__name__})")
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema) as exc:
        return Outcome(PERMANENT, None, f"bad base URL ({type(exc).__name__})")
    except (OSError, requests.exceptions.RequestException) as exc:  # connection refused/reset, TLS, DNS
        return Outcome(RETRY, None, f"no connection ({type(exc).__name__})")
    status, content = resp.status_code, resp.content
    elapsed = resp.elapsed.total_seconds() if resp.elapsed else 0.0
    retry_after = parse_retry_after(resp.headers.get("Retry-After"), now)
    if 200 <= status < 300:
        if route.payload == MESSAGE:
            code = _message_response(content)
            if code == "transient-error":
                return Outcome(RETRY, status, _reason(status, "response code transient-error", content),
                               retry_after, elapsed)
            if code == "fatal-error":
                return Outcome(PERMANENT, status, _reason(status, "response code fatal-error", content),
                               None, elapsed)
        else:
            failed = _transaction_failures(content)
            if failed:
                return Outcome(PERMANENT, status, _reason(status, "transaction-response with failed entries: "
                                                          + ", ".join(failed[:3])), None, elapsed)
        return Outcome(DELIVERED, status, f"HTTP {status}", None, elapsed)
    if status in RETRYABLE_STATUSES or status >= 500:
        return Outcome(RETRY, status, _reason(status, "", content), retry_after, elapsed)
    if 300 <= status < 400:
        return Outcome(PERMANENT, status, _reason(status, "redirect: correct base_url in the routing table"),
                       None, elapsed)
    return Outcome(PERMANENT, status, _reason(status, "refused", content), None, elapsed)


def probe(session: requests.Session, route: Route, env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """GET <base>/metadata with the route's authentication: (ok, one line)."""
    env = os.environ if env is None else env
    headers = {"Accept": FHIR_JSON}
    if route.auth.bearer_token_env:
        token = env.get(route.auth.bearer_token_env)
        if not token:
            return False, f"environment variable {route.auth.bearer_token_env} is not set"
        headers["Authorization"] = f"Bearer {token}"
    cert = _client_cert(route.auth)
    try:
        resp = session.get(f"{route.base_url}/metadata", headers=headers, timeout=min(route.timeout, 15.0),
                           cert=cert, verify=route.ca_bundle or True)
    except (OSError, requests.exceptions.RequestException) as exc:
        return False, f"no answer ({type(exc).__name__})"
    if resp.status_code != 200:
        return False, f"HTTP {resp.status_code}"
    try:
        cs = resp.json()
    except ValueError:
        return False, "HTTP 200 but not JSON"
    if not isinstance(cs, dict) or cs.get("resourceType") != "CapabilityStatement":
        return False, "HTTP 200 but not a CapabilityStatement"
    software = (cs.get("software") or {}).get("name") or "unknown software"
    version = cs.get("fhirVersion") or "?"
    ok = str(version).startswith("4.0")
    return ok, f"HTTP 200, FHIR {version}, {str(software)[:60]}" + ("" if ok else " (not FHIR R4)")
