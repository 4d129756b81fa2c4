"""Bearer-token clients from the YAML file named by ``ADAPTER_CLIENTS_FILE``.

Only SHA-256 hashes of tokens are kept at rest::

    - name: odense
      role: municipality          # hospital | municipality | operator
      municipality: "0461"        # four digits; "461" is read as "0461"
      token_sha256: 9f86d08…

A static token is checked first; any other token that looks like a JWT goes to the OAuth
validator when OAuth is configured (``adapter/api/oauth.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from adapter.errors import ConfigError, issue
from adapter.medcom.identifiers import normalise_municipality_code

ROLES = ("hospital", "municipality", "operator")
REALM = "ggop-adapter"
# three base64url parts (the signature may be empty, as in an unsigned ``alg: none`` token)
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Client:
    name: str
    role: str
    municipality: str | None = None  # for role municipality
    sender_eans: tuple[str, ...] = ()  # for role hospital: the GLNs it may send as (empty: any)


class TokenValidator(Protocol):
    """What checks tokens that are not static ones (``adapter.api.oauth.OAuthValidator``)."""

    def authenticate(self, token: str) -> Client | None: ...


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    return authorization[7:].strip() or None


def looks_like_jwt(token: str) -> bool:
    return JWT_SHAPE.match(token) is not None


def bearer_challenge(authorization: str | None) -> str:
    """The ``WWW-Authenticate`` value of a 401: ``error="invalid_token"`` when a token was sent."""
    if bearer_token(authorization) is None:
        return f'Bearer realm="{REALM}"'
    return f'Bearer realm="{REALM}", error="invalid_token"'


class Clients:
    def __init__(self, by_hash: dict[str, Client], oauth: TokenValidator | None = None):
        self._by_hash = by_hash
        self.oauth = oauth

    @property
    def empty(self) -> bool:
        return not self._by_hash and self.oauth is None

    def authenticate(self, authorization: str | None) -> Client | None:
        """The client whose token the ``Authorization: Bearer …`` header carries, or None: a
        static token first, then a JWT through the OAuth validator (which raises
        ``IssuerUnavailable`` when the issuer's keys cannot be fetched)."""
        token = bearer_token(authorization)
        if token is None:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        for known, client in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return client
        if self.oauth is not None and looks_like_jwt(token):
            return self.oauth.authenticate(token)
        return None

    def still_valid(self, digest: str | None, client: Client) -> bool:
        """Whether a sign-in made earlier (the console's session) still stands: the static token
        with this SHA-256 digest still names this client, or, without a digest, the OAuth
        clients still list it."""
        if digest is not None:
            known = self._by_hash.get(digest)
            return known is not None and known == client
        listed = getattr(self.oauth, "clients", None) if self.oauth is not None else None
        return isinstance(listed, dict) and client in listed.values()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def client_entries(path: str | Path) -> list[tuple[str, dict]]:
    """The entries of a clients file (a YAML list, or a mapping with ``clients:``), each with
    its location for errors; a file that is not such a list is a located GGOP-E501."""
    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text("utf-8")) or []
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(issue("GGOP-E501", None, where, type(exc).__name__)) from None
    if isinstance(data, dict):
        data = data.get("clients", [])
    if not isinstance(data, list):
        raise ConfigError(issue("GGOP-E501", None, where, "expected a list of clients"))
    out = []
    for i, entry in enumerate(data):
        at = f"{where}#[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(issue("GGOP-E501", None, at, "expected a mapping"))
        out.append((at, entry))
    return out


def client_of(at: str, entry: dict, name: str) -> Client:
    """The client an entry of a clients file (static or OAuth) describes: its role, the
    municipality a municipality client is bound to, the GLNs a hospital may send as."""
    role = str(entry["role"])
    if role not in ROLES:
        raise ConfigError(issue("GGOP-E501", None, f"{at}.role", "one of " + ", ".join(ROLES)))
    municipality = None
    if role == "municipality":
        municipality = normalise_municipality_code(str(entry.get("municipality", "")))
        if municipality is None:
            raise ConfigError(issue("GGOP-E501", None, f"{at}.municipality", "four digits"))
    eans = entry.get("sender_eans", []) or []
    if not isinstance(eans, list):
        raise ConfigError(issue("GGOP-E501", None, f"{at}.sender_eans", "expected a list"))
    return Client(name, role, municipality, tuple(str(x) for x in eans))


def load_clients(path: str | Path | None, *, allow_none: bool = False,
                 oauth: TokenValidator | None = None) -> Clients:
    """The clients of the clients file (and the OAuth validator, when configured). Without
    any, ``POST /medcom`` would take messages from anyone: refused (GGOP-E501) unless
    ``allow_none`` (``ADAPTER_OPEN_MEDCOM``, local testing only)."""
    if oauth is not None:
        allow_none = True  # the OAuth clients are clients
    if not path:
        if not allow_none:
            raise ConfigError(issue("GGOP-E501", None, "environment#clients_file",
                                    "no clients file: set ADAPTER_CLIENTS_FILE (or ADAPTER_OPEN_MEDCOM=1 "
                                    "for local testing only)"))
        return Clients({}, oauth)
    where = str(path)
    out: dict[str, Client] = {}
    for at, entry in client_entries(path):
        for key in ("name", "role", "token_sha256"):
            if not entry.get(key):
                raise ConfigError(issue("GGOP-E501", None, f"{at}.{key}", "missing"))
        digest = str(entry["token_sha256"]).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(issue("GGOP-E501", None, f"{at}.token_sha256", "64 hex digits"))
        out[digest] = client_of(at, entry, str(entry["name"]))
    if not out and not allow_none:
        raise ConfigError(issue("GGOP-E501", None, where, "no clients listed: POST /medcom would be open to anyone "
                                "(set ADAPTER_OPEN_MEDCOM=1 for local testing only)"))
    return Clients(out, oauth)
