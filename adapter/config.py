"""Settings: defaults < TOML file (``ADAPTER_CONFIG``) < ``ADAPTER_*`` environment.

Read once at the edges (CLI, service) and passed into the core; the core never reads
the environment itself.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, SupportsInt

from adapter.errors import ConfigError, issue
from adapter.medcom.xmlsafe import (
    DEFAULT_MAX_ATTRIBUTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ELEMENTS,
)

ENV_PREFIX = "ADAPTER_"


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/adapter.db"
    clients_file: str | None = None
    rule_overrides: tuple[str, ...] = ()  # a municipality's own rule files (os.pathsep-separated in env)
    mappings_dir: str | None = None  # code tables and rules; default: the package's own mappings/
    routing_file: str | None = None  # routing table; default: routing.yaml in the mappings
    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_elements: int = DEFAULT_MAX_ELEMENTS
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES  # per element
    # every Bundle is checked against the compiled schema of what the adapter emits
    # (adapter/fhir/guard.py); True also parses each resource with the fhir.resources models
    check_models: bool = False
    body_timeout: int = 30  # seconds a client may take to send a message body, in all
    # The service's public root (e.g. https://ggop.example.dk): every absolute URL the API
    # writes (links, fullUrl) starts with it + /fhir. Unset: X-Forwarded-Proto/-Host/-Prefix from
    # a trusted proxy, else the address ``serve`` binds to (never a client's Host header).
    public_base_url: str | None = None
    trusted_proxies: tuple[str, ...] = ()  # peer addresses whose X-Forwarded-* headers are believed
    bind_url: str | None = None  # set by ``serve``: the address it listens on, the last resort
    # The secret that keys resource ids derived from CPR numbers and other identifiers
    # (adapter/fhir/identity.py). ``id_key`` is the key itself (e.g. from a secret store);
    # otherwise it is read from ``id_key_file``, which is created on first start.
    # POST /medcom without any client listed: only for local testing, never in production
    open_medcom: bool = False
    id_key: str | None = None
    id_key_file: str = "var/id.key"
    # OAuth 2.0 bearer tokens (JWTs) beside the static tokens, on when all four are set
    # (adapter/api/oauth.py): the token issuer (``iss``), its JWKS URL, the audience (``aud``)
    # and a YAML list of ``{client_id, role, municipality}``
    oauth_issuer: str | None = None
    oauth_jwks_url: str | None = None
    oauth_audience: str | None = None
    oauth_clients_file: str | None = None
    # Operator console and metrics (docs/console.md): the secret that signs console session
    # cookies (``console_secret`` itself, else the file, created 0600 on first start); the roles
    # that see patient data in stored messages and resources; how long a sign-in lasts;
    # whether /metrics answers without an operator token (a scraper on a private network)
    console_secret: str | None = None
    console_secret_file: str = "var/console.key"
    console_unmasked_roles: tuple[str, ...] = ("municipality",)
    console_session_hours: int = 8
    metrics_public: bool = False
    metrics_dir: str = "var/metrics"  # where the service's processes and the worker count

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls()
        path = env.get(ENV_PREFIX + "CONFIG")
        if path:
            settings = settings._merge(_read_toml(Path(path)), path)
        overrides = {f.name: env[ENV_PREFIX + f.name.upper()] for f in fields(cls)
                     if ENV_PREFIX + f.name.upper() in env}
        return settings._merge(overrides, "environment")

    def _merge(self, values: Mapping[str, object], source: str) -> Settings:
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}  # each value coerced to its field's type by _coerce
        for key, raw in values.items():
            if key not in known:
                raise ConfigError(issue("GGOP-E501", None, f"{source}#{key}", "unknown setting"))
            default = getattr(Settings, key)
            try:
                changes[key] = _coerce(raw, default)
            except (TypeError, ValueError):
                raise ConfigError(issue("GGOP-E501", None, f"{source}#{key}",
                                        f"expected {type(default).__name__}")) from None
        return replace(self, **changes)


def _coerce(raw: object, default: object) -> object:
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if isinstance(default, int):
        if isinstance(raw, (str, SupportsInt)):
            return int(raw)
        raise TypeError(type(raw).__name__)
    if isinstance(default, tuple):
        if isinstance(raw, (list, tuple)):
            return tuple(str(x) for x in raw)
        return tuple(p for p in str(raw).split(os.pathsep) if p)
    return None if raw in (None, "") else str(raw)


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(issue("GGOP-E501", None, str(path), type(exc).__name__)) from None
    return data.get("adapter", data)
