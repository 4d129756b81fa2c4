"""Bearer-token clients from the YAML file named by ``ADAPTER_CLIENTS_FILE``.

Only SHA-256 hashes of tokens are kept at rest::

    - name: odense
      role: municipality          # hospital | municipality | operator
      municipality: "0461"        # four digits; "461" is read as "0461"
      token_sha256: 9f86d08…
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import yaml

from adapter.errors import ConfigError, issue
from adapter.medcom.identifiers import normalise_municipality_code

ROLES = ("hospital", "municipality", "operator")


@dataclass(frozen=True)
class Client:
    name: str
    role: str
    municipality: str | None = None  # for role municipality
    sender_eans: tuple[str, ...] = ()  # for role hospital: the GLNs it may send as (empty: any)


class Clients:
    def __init__(self, by_hash: dict[str, Client]):
        self._by_hash = by_hash

    @property
    def empty(self) -> bool:
        return not self._by_hash

    def authenticate(self, authorization: str | None) -> Client | None:
        """The client whose token the ``Authorization: Bearer …`` header carries, or None."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        digest = hashlib.sha256(authorization[7:].strip().encode()).hexdigest()
        for known, client in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return client
        return None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_clients(path: str | Path | None, *, allow_none: bool = False) -> Clients:
    """The clients of the clients file. Without any, ``POST /medcom`` would take messages
    from anyone: refused (GGOP-E501) unless ``allow_none`` (``ADAPTER_OPEN_MEDCOM``, local
    testing only)."""
    if not path:
        if not allow_none:
            raise ConfigError(issue("GGOP-E501", None, "environment#clients_file",
                                    "no clients file: set ADAPTER_CLIENTS_FILE (or ADAPTER_OPEN_MEDCOM=1 "
                                    "for local testing only)"))
        return Clients({})
    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text("utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(issue("GGOP-E501", None, where, type(exc).__name__)) from None
    if isinstance(data, dict):
        data = data.get("clients", [])
    if not isinstance(data, list):
        raise ConfigError(issue("GGOP-E501", None, where, "expected a list of clients"))
    out: dict[str, Client] = {}
    for i, entry in enumerate(data):
        at = f"{where}#[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(issue("GGOP-E501", None, at, "expected a mapping"))
        for key in ("name", "role", "token_sha256"):
            if not entry.get(key):
                raise ConfigError(issue("GGOP-E501", None, f"{at}.{key}", "missing"))
        role = str(entry["role"])
        if role not in ROLES:
            raise ConfigError(issue("GGOP-E501", None, f"{at}.role", "one of " + ", ".join(ROLES)))
        municipality = None
        if role == "municipality":
            municipality = normalise_municipality_code(str(entry.get("municipality", "")))
            if municipality is None:
                raise ConfigError(issue("GGOP-E501", None, f"{at}.municipality", "four digits"))
        digest = str(entry["token_sha256"]).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(issue("GGOP-E501", None, f"{at}.token_sha256", "64 hex digits"))
        eans = tuple(str(x) for x in entry.get("sender_eans", []) or [])
        out[digest] = Client(str(entry["name"]), role, municipality, eans)
    if not out and not allow_none:
        raise ConfigError(issue("GGOP-E501", None, where, "no clients listed: POST /medcom would be open to anyone "
                                "(set ADAPTER_OPEN_MEDCOM=1 for local testing only)"))
    return Clients(out)
