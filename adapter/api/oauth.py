"""OAuth 2.0 bearer tokens (JWTs, as SMART Backend Services use them) beside the static tokens.

On when ``ADAPTER_OAUTH_ISSUER``, ``ADAPTER_OAUTH_JWKS_URL``, ``ADAPTER_OAUTH_AUDIENCE`` and
``ADAPTER_OAUTH_CLIENTS_FILE`` are all set (some but not all: ``GGOP-E501`` at start). A token
that is not a static token and looks like a JWT (``adapter.api.auth.looks_like_jwt``) is
accepted when

* its header names ``RS256`` or ``ES256`` (``none`` and ``HS*`` are refused before any key is
  looked at) and a ``kid`` of a signing key in the issuer's JWKS, whose algorithm it must match;
* the signature verifies with that key (PyJWT);
* ``iss`` is the issuer, ``aud`` is or contains the audience, ``exp`` is present and not
  passed, ``nbf`` and ``iat`` (when present) not in the future, each with ``LEEWAY_SECONDS``;
* its ``client_id`` claim (else ``azp``) is a client of the OAuth clients file::

      - client_id: odense-system
        role: municipality          # hospital | municipality | operator
        municipality: "0461"

The client becomes an ``adapter.api.auth.Client`` (name = client_id) and goes through the same
access control as a static token's. A refused token is logged by its reason category only
(``expired``, ``audience``, ``issuer``, ``signature``, ``unknown-client``, …), never the token or
a claim.

The JWKS is fetched with a deadline and a size cap, cached for ``JWKS_LIFESPAN_SECONDS``, and
fetched again at most once per ``JWKS_REFRESH_SECONDS`` when a token names an unknown ``kid``
(key rotation). When it cannot be fetched, :class:`IssuerUnavailable` is raised (the API
answers 503 with ``Retry-After``), and no new fetch is tried for ``JWKS_FAILURE_HOLD_SECONDS``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from jwt import PyJWK, PyJWKClient, PyJWKSet
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWKClientError,
    PyJWTError,
)

from adapter.api.auth import Client, client_entries, client_of
from adapter.config import Settings
from adapter.errors import ConfigError, issue

log = logging.getLogger("ggop.api.oauth")

ALGORITHMS = ("RS256", "ES256")
LEEWAY_SECONDS = 30
MAX_TOKEN_CHARS = 16 * 1024
JWKS_TIMEOUT_SECONDS = 5.0  # connect, each read, and (checked between reads) the whole download
JWKS_MAX_BYTES = 64 * 1024
JWKS_LIFESPAN_SECONDS = 300.0
JWKS_REFRESH_SECONDS = 30.0  # an unknown kid refreshes the JWKS at most this often
JWKS_FAILURE_HOLD_SECONDS = 10.0  # after a failed fetch, answer 503 at once for this long
RETRY_AFTER_SECONDS = 10

SETTINGS = ("oauth_issuer", "oauth_jwks_url", "oauth_audience", "oauth_clients_file")


class TokenRefused(Exception):
    """The token is not accepted; ``reason`` is a category, never token content."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class IssuerUnavailable(Exception):
    """The issuer's JWKS cannot be fetched (or holds no usable key): answer 503, not 401."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# The issuer's keys
# --------------------------------------------------------------------------------------------


def _usable_keys(data: object) -> PyJWKSet:
    """The JWKS's signing keys for an allowed algorithm (others, e.g. ``use: enc``, skipped)."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise IssuerUnavailable("not a JWK Set")
    usable = []
    for entry in data["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or not entry["kid"]:
            continue
        if entry.get("use") not in (None, "sig"):
            continue
        try:
            key = PyJWK(entry)
        except PyJWTError:
            continue
        if key.algorithm_name in ALGORITHMS:
            usable.append(entry)
    if not usable:
        raise IssuerUnavailable("no usable signing key")
    return PyJWKSet(usable)


class BoundedJwksClient(PyJWKClient):
    """PyJWT's JWKS client (cache, one refresh per ``refresh`` seconds for an unknown kid),
    fetching with ``requests``: no redirects, a deadline, a size cap; and after a failed fetch
    none for ``failure_hold`` seconds."""

    def __init__(self, uri: str, *, timeout: float = JWKS_TIMEOUT_SECONDS, max_bytes: int = JWKS_MAX_BYTES,
                 lifespan: float = JWKS_LIFESPAN_SECONDS, refresh: float = JWKS_REFRESH_SECONDS,
                 failure_hold: float = JWKS_FAILURE_HOLD_SECONDS):
        super().__init__(uri, cache_jwk_set=True, lifespan=lifespan, timeout=timeout, cooldown_duration=refresh)
        self.max_bytes = max_bytes
        self.failure_hold = failure_hold
        self._failed_at: float | None = None

    def fetch_data(self) -> Any:
        """Called by PyJWKClient under its lock: when the cache is empty or expired, and for an
        unknown kid outside the refresh cool-down."""
        if self._failed_at is not None and time.monotonic() - self._failed_at < self.failure_hold:
            raise IssuerUnavailable("held after a failed fetch")
        try:
            keys = _usable_keys(self._download())
        except IssuerUnavailable as exc:
            self._failed_at = time.monotonic()
            log.warning("oauth: the issuer's JWKS cannot be used (%s)", exc.reason)
            raise
        self._failed_at = None
        return keys

    def _download(self) -> Any:
        deadline = time.monotonic() + self.timeout
        body = bytearray()
        try:
            with requests.get(self.uri, timeout=self.timeout, stream=True, allow_redirects=False,
                              headers={"Accept": "application/json"}) as resp:
                if resp.status_code != 200:
                    raise IssuerUnavailable(f"HTTP {resp.status_code}")
                declared = resp.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise IssuerUnavailable(f"larger than {self.max_bytes} bytes")
                for chunk in resp.iter_content(8192):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise IssuerUnavailable(f"larger than {self.max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise IssuerUnavailable(f"slower than {self.timeout:g} s")
                data = json.loads(bytes(body))
        except requests.RequestException as exc:
            raise IssuerUnavailable(type(exc).__name__) from None
        except ValueError:
            raise IssuerUnavailable("not JSON") from None
        return data


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


_REASONS: tuple[tuple[type[PyJWTError], str], ...] = (
    (ExpiredSignatureError, "expired"),
    (ImmatureSignatureError, "not-yet-valid"),
    (InvalidIssuedAtError, "issued-at"),
    (InvalidAudienceError, "audience"),
    (InvalidIssuerError, "issuer"),
    (MissingRequiredClaimError, "missing-claim"),
    (InvalidAlgorithmError, "algorithm"),
    (InvalidSignatureError, "signature"),
    (InvalidKeyError, "key"),
    (DecodeError, "malformed"),
)


class OAuthValidator:
    def __init__(self, issuer: str, audience: str, clients: dict[str, Client], jwks: PyJWKClient | str, *,
                 leeway: float = LEEWAY_SECONDS):
        self.issuer = issuer
        self.audience = audience
        self.clients = clients
        self.jwks = BoundedJwksClient(jwks) if isinstance(jwks, str) else jwks
        self.leeway = leeway

    def authenticate(self, token: str) -> Client | None:
        """The client of a valid token; None for a refused one (its reason category logged).
        Raises :class:`IssuerUnavailable` when the issuer's keys cannot be had."""
        try:
            return self.validate(token)
        except TokenRefused as exc:
            log.info("oauth: bearer token refused (%s)", exc.reason)
            return None

    def validate(self, token: str) -> Client:
        """The client of a valid token; :class:`TokenRefused` naming the reason otherwise."""
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenRefused("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise TokenRefused("malformed") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenRefused("algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRefused("key")
        try:
            key = self.jwks.get_signing_key(kid)  # IssuerUnavailable passes through
        except PyJWKClientError:
            raise TokenRefused("key") from None
        try:
            claims = jwt.decode(token, key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                                leeway=self.leeway,
                                options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True})
        except PyJWTError as exc:
            reason = next((r for kind, r in _REASONS if isinstance(exc, kind)), "invalid")
            raise TokenRefused(reason) from None
        client_id = claims.get("client_id") or claims.get("azp")
        if not isinstance(client_id, str) or not client_id:
            raise TokenRefused("no-client")
        client = self.clients.get(client_id)
        if client is None:
            raise TokenRefused("unknown-client")
        return client


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def _env(name: str) -> str:
    return "ADAPTER_" + name.upper()


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_oauth(settings: Settings) -> OAuthValidator | None:
    """The validator of the OAuth settings; None when none is set, ``GGOP-E501`` when only
    some are, or when one is unusable."""
    values = {name: getattr(settings, name) for name in SETTINGS}
    if not any(values.values()):
        return None
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigError(issue("GGOP-E501", None, f"environment#{missing[0]}",
                                "OAuth needs " + ", ".join(_env(n) for n in SETTINGS) + " together; missing "
                                + ", ".join(_env(n) for n in missing)))
    url = urlsplit(str(values["oauth_jwks_url"]))
    if not (url.scheme == "https" or (url.scheme == "http" and _loopback(url.hostname))) or not url.hostname:
        raise ConfigError(issue("GGOP-E501", None, "environment#oauth_jwks_url",
                                "an https URL (http only on loopback)"))
    clients = load_oauth_clients(str(values["oauth_clients_file"]))
    return OAuthValidator(str(values["oauth_issuer"]), str(values["oauth_audience"]), clients,
                          str(values["oauth_jwks_url"]))


def load_oauth_clients(path: str | Path) -> dict[str, Client]:
    """``client_id`` → client from the OAuth clients file, validated like the static one."""
    out: dict[str, Client] = {}
    for at, entry in client_entries(path):
        for key in ("client_id", "role"):
            if not entry.get(key):
                raise ConfigError(issue("GGOP-E501", None, f"{at}.{key}", "missing"))
        client_id = str(entry["client_id"])
        if client_id in out:
            raise ConfigError(issue("GGOP-E501", None, f"{at}.client_id", "listed twice"))
        out[client_id] = client_of(at, entry, client_id)
    if not out:
        raise ConfigError(issue("GGOP-E501", None, str(path), "no clients listed"))
    return out
