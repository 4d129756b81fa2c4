"""The routing table (``adapter/mappings/routing.yaml``, or the file ``ADAPTER_ROUTING_FILE`` names):
recipient key → endpoint.

::

    defaults:
      municipalities: pull        # every municipality without an entry reads from /fhir
      payload: transaction        # transaction | message | medcom-message
      timeout_seconds: 30
      max_age_hours: 72           # how long a failing delivery is retried before it is dead
      first_retry_seconds: 30     # backoff: doubles per attempt, with jitter, up to
      max_retry_seconds: 3600
      unroutable_recheck_seconds: 300
    routes:
      "municipality:0851":
        mode: push
        base_url: https://fhir.example.dk/r4
        auth: {bearer_token_env: AALBORG_FHIR_TOKEN}
      "gln:5790001234560":
        mode: push
        base_url: https://gp-gateway.example.dk/fhir
        payload: message
        auth: {client_cert: /etc/ggop/gp.crt, client_key: /etc/ggop/gp.key}
        ca_bundle: /etc/ggop/gp-ca.pem

Keys: ``municipality:<4 digits>`` (a municipality in adapter/mappings/municipalities.csv),
``gln:<13 digits>`` (GS1 check digit), ``sor:<11+ digits>``, ``ydernummer:<digits>``,
``region:<4 digits>``. A broken file raises :class:`ConfigError` with one ``GGOP-E501``
issue naming the file, the key path and the line.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adapter.codes import CodeTables, load_code_tables
from adapter.config_files import (
    At,
    as_choice,
    as_mapping,
    as_str,
    check_keys,
    read_yaml,
)
from adapter.data import MAPPINGS_DIR
from adapter.errors import ConfigError
from adapter.medcom.identifiers import gln_is_valid

ROUTING_FILE = MAPPINGS_DIR / "routing.yaml"  # the sample table; ADAPTER_ROUTING_FILE names another
PUSH, PULL = "push", "pull"
TRANSACTION, MESSAGE = "transaction", "message"
MEDCOM_MESSAGE = "medcom-message"  # letters as MedCom CareCommunication messages (adapter/medcom_fhir)
PAYLOADS = (TRANSACTION, MESSAGE, MEDCOM_MESSAGE)

_KEY = re.compile(r"^(municipality|gln|sor|ydernummer|region):([0-9]+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")



@dataclass(frozen=True)
class Auth:
    bearer_token_env: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    @property
    def kind(self) -> str:
        return "bearer" if self.bearer_token_env else "mtls" if self.client_cert else "none"


@dataclass(frozen=True)
class Retry:
    first_delay: float = 30.0
    max_delay: float = 3600.0
    max_age: dt.timedelta = dt.timedelta(hours=72)


@dataclass(frozen=True)
class Route:
    key: str
    mode: str
    base_url: str | None = None
    payload: str = TRANSACTION
    timeout: float = 30.0
    auth: Auth = field(default_factory=Auth)
    ca_bundle: str | None = None
    retry: Retry = field(default_factory=Retry)
    line: int | None = None

    def describe(self) -> str:
        if self.mode == PULL:
            return f"{self.key}: pull (served by /fhir)"
        return (f"{self.key}: push {self.payload} to {self.base_url} (auth {self.auth.kind}, timeout "
                f"{self.timeout:g} s, retries for {self.retry.max_age.total_seconds() / 3600:g} h)")


@dataclass(frozen=True)
class RoutingTable:
    path: str
    routes: dict[str, Route]
    municipality_default: Route | None
    recheck: float = 300.0

    def lookup(self, keys: Iterable[str]) -> Route | None:
        """The route for the first key that has an entry; a municipality without one gets the
        default (pull unless the file says ``municipalities: none``)."""
        keys = [k for k in keys if k]
        for k in keys:
            if k in self.routes:
                return self.routes[k]
        if self.municipality_default is not None:
            for k in keys:
                if k.startswith("municipality:"):
                    return Route(k, self.municipality_default.mode, retry=self.municipality_default.retry)
        return None

    def warnings(self, env: Mapping[str, str] | None = None) -> list[str]:
        """What cannot work on this machine: unset token variables, missing certificate files."""
        env = os.environ if env is None else env
        out = []
        for r in self.routes.values():
            if r.auth.bearer_token_env and not env.get(r.auth.bearer_token_env):
                out.append(f"{self.path}:{r.line or 0} routes.{r.key}.auth: environment variable "
                           f"{r.auth.bearer_token_env} is not set here")
            for label, p in (("client_cert", r.auth.client_cert), ("client_key", r.auth.client_key),
                             ("ca_bundle", r.ca_bundle)):
                if p and not Path(p).is_file():
                    out.append(f"{self.path}:{r.line or 0} routes.{r.key}: {label} file {p} does not exist")
        return out


_DEFAULT_KEYS = ("municipalities", "payload", "timeout_seconds", "max_age_hours", "first_retry_seconds",
                 "max_retry_seconds", "unroutable_recheck_seconds")
_ROUTE_KEYS = ("mode", "base_url", "payload", "auth", "ca_bundle", "timeout_seconds", "max_age_hours",
               "first_retry_seconds", "max_retry_seconds")


def _number(value: Any, at: At, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        at.fail(f"expected a number, got {value!r}")
    if not lo <= value <= hi:
        at.fail(f"must be between {lo:g} and {hi:g}")
    return float(value)


def _check_key(key: Any, at: At, municipalities: Container[str]) -> str:
    m = _KEY.match(key) if isinstance(key, str) else None
    if not m:
        at.fail("a route key is municipality:<4 digits>, gln:<13 digits>, sor:<11+ digits>, "
                "ydernummer:<digits> or region:<4 digits>")
    kind, number = m.groups()
    if kind == "municipality" and (len(number) != 4 or number not in municipalities):
        at.fail("not a municipality code in adapter/mappings/municipalities.csv (four digits, e.g. 0461)")
    if kind == "gln" and not gln_is_valid(number):
        at.fail("a GLN has 13 digits and a valid GS1 check digit")
    if kind == "sor" and len(number) < 11:
        at.fail("a SOR code has at least 11 digits")
    if kind == "region" and len(number) != 4:
        at.fail("a region code has four digits (e.g. 1081)")
    return key


def _base_url(value: Any, at: At) -> str:

    url = as_str(value, at)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        at.fail("expected an http:// or https:// URL")
    if parts.username or parts.password:
        at.fail("credentials do not belong in the URL: use auth")
    if parts.query or parts.fragment:
        at.fail("the base URL has no query or fragment")
    return url.rstrip("/")


def _auth(value: Any, at: At) -> Auth:

    m = as_mapping(value, at)
    check_keys(m, at, (), ("bearer_token_env", "client_cert", "client_key"))
    if "bearer_token_env" in m:
        if "client_cert" in m or "client_key" in m:
            at.fail("either bearer_token_env or client_cert and client_key, not both")
        name = as_str(m["bearer_token_env"], at.key(m, "bearer_token_env"))
        if not _ENV_NAME.match(name):
            at.key(m, "bearer_token_env").fail("the name of an environment variable (the token itself never "
                                                "goes into this file)")
        return Auth(bearer_token_env=name)
    if ("client_cert" in m) != ("client_key" in m):
        at.fail("mutual TLS needs both client_cert and client_key")
    if "client_cert" in m:
        return Auth(client_cert=as_str(m["client_cert"], at.key(m, "client_cert")),
                    client_key=as_str(m["client_key"], at.key(m, "client_key")))
    return Auth()


def load_routing(path: Path | str = ROUTING_FILE, tables: CodeTables | None = None) -> RoutingTable:
    """Read and check a routing file; any problem is one located GGOP-E501 issue."""

    path = Path(path)
    doc, at = read_yaml(path)
    check_keys(doc, at, ("routes",), ("defaults",))
    d_at = at.key(doc, "defaults")
    defaults = as_mapping(doc.get("defaults") or {}, d_at) if "defaults" in doc else {}
    check_keys(defaults, d_at, (), _DEFAULT_KEYS)

    def num(m: dict, here: At, key: str, fallback: float, lo: float, hi: float) -> float:
        return _number(m[key], here.key(m, key), lo, hi) if key in m else fallback

    base_retry = Retry(
        first_delay=num(defaults, d_at, "first_retry_seconds", 30.0, 0.1, 86400),
        max_delay=num(defaults, d_at, "max_retry_seconds", 3600.0, 1, 86400),
        max_age=dt.timedelta(hours=num(defaults, d_at, "max_age_hours", 72.0, 1, 24 * 60)))
    base_payload = as_choice(defaults["payload"], d_at.key(defaults, "payload"), PAYLOADS) \
        if "payload" in defaults else TRANSACTION
    base_timeout = num(defaults, d_at, "timeout_seconds", 30.0, 1, 600)
    recheck = num(defaults, d_at, "unroutable_recheck_seconds", 300.0, 1, 86400)
    municipalities = as_choice(defaults.get("municipalities", PULL), d_at.key(defaults, "municipalities"),
                             (PULL, "none"))

    municipality_codes = (tables or load_code_tables()).municipalities
    r_at = at.key(doc, "routes")
    raw_routes = doc["routes"] if doc["routes"] is not None else {}
    raw_routes = as_mapping(raw_routes, r_at)
    routes: dict[str, Route] = {}
    for key, raw in raw_routes.items():
        here = r_at.key(raw_routes, key)
        _check_key(key, here, municipality_codes)
        m = as_mapping(raw, here)
        check_keys(m, here, ("mode",), _ROUTE_KEYS)
        mode = as_choice(m["mode"], here.key(m, "mode"), (PUSH, PULL))
        retry = Retry(
            first_delay=num(m, here, "first_retry_seconds", base_retry.first_delay, 0.1, 86400),
            max_delay=num(m, here, "max_retry_seconds", base_retry.max_delay, 1, 86400),
            max_age=dt.timedelta(hours=num(m, here, "max_age_hours", base_retry.max_age.total_seconds() / 3600,
                                           1, 24 * 60)))
        if mode == PULL:
            extra = [k for k in m if k not in ("mode",)]
            if extra:
                here.key(m, extra[0]).fail(f"'{extra[0]}' only applies to mode push")
            routes[key] = Route(key, PULL, retry=retry, line=here.line)
            continue
        if "base_url" not in m:
            here.key(m, "base_url").fail("mode push needs base_url")
        routes[key] = Route(
            key=key, mode=PUSH, base_url=_base_url(m["base_url"], here.key(m, "base_url")),
            payload=as_choice(m["payload"], here.key(m, "payload"), PAYLOADS) if "payload" in m
            else base_payload,
            timeout=num(m, here, "timeout_seconds", base_timeout, 1, 600),
            auth=_auth(m["auth"], here.key(m, "auth")) if "auth" in m else Auth(),
            ca_bundle=as_str(m["ca_bundle"], here.key(m, "ca_bundle")) if "ca_bundle" in m else None,
            retry=retry, line=here.line)
    default = Route("municipality:*", PULL, retry=base_retry) if municipalities == PULL else None
    return RoutingTable(str(path), routes, default, recheck)


class RoutesFile:
    """The routing file, read again when it changes (the worker asks before each round)."""

    def __init__(self, path: Path | str = ROUTING_FILE, tables: CodeTables | None = None):
        self.path = Path(path)
        self.tables = tables
        self._mtime: float | None = None
        self.table: RoutingTable | None = None

    def _stamp(self) -> float | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns + st.st_size

    def load(self) -> RoutingTable:
        stamp = self._stamp()
        self.table = load_routing(self.path, self.tables)
        self._mtime = stamp
        return self.table

    def refresh(self) -> tuple[RoutingTable, bool]:
        """(table, changed). A broken new version raises ConfigError; the caller keeps the old."""
        stamp = self._stamp()
        if self.table is not None and stamp == self._mtime:
            return self.table, False
        try:
            table = load_routing(self.path, self.tables)
        except ConfigError:
            self._mtime = stamp  # report it once per change, not every round
            raise
        changed = self.table is not None
        self.table, self._mtime = table, stamp
        return table, changed


class FixedRoutes:
    """A routing table that never changes (tests, benchmarks)."""

    def __init__(self, table: RoutingTable):
        self.table = table

    def load(self) -> RoutingTable:
        return self.table

    def refresh(self) -> tuple[RoutingTable, bool]:
        return self.table, False
