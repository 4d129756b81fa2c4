"""The deployment's id key: the secret behind every resource id derived from a business
identifier (a CPR number, a GLN, a municipality code; see :mod:`adapter.fhir.identity`).

The key comes from ``ADAPTER_ID_KEY`` (the key itself, e.g. injected from a secret store) or
from the file ``ADAPTER_ID_KEY_FILE`` (default ``var/id.key``, next to the embedded
database), which is created with 256 random bits, readable by its owner only, the first time
it is needed. Ids stay the same only as long as the key does: the store records the key's
fingerprint and refuses to open with another key (``GGOP-E502``), so a lost or swapped key
file can never silently split one citizen into two Patients.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from adapter.config import Settings
from adapter.errors import ConfigError, issue

MIN_KEY_CHARS = 32


def _checked(value: str, where: str) -> bytes:
    value = value.strip()
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(issue("GGOP-E502", None, where, f"at least {MIN_KEY_CHARS} characters"))
    return value.encode("utf-8")


def create_secret_file(path: Path) -> None:
    """A new file of 32 random bytes (hex) readable by the owner only (0600), unless one
    exists: a process that finds another made it first uses theirs. Used for the id key and
    the console's session secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first: use theirs
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(32) + "\n")


def load_id_key(settings: Settings) -> bytes:
    """The configured key, or the key file's (created on first use)."""
    if settings.id_key:
        return _checked(settings.id_key, "environment#id_key")
    path = Path(settings.id_key_file)
    if not path.exists():
        create_secret_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(issue("GGOP-E502", None, str(path), type(exc).__name__)) from None
    return _checked(text, str(path))


def fingerprint(key: bytes) -> str:
    """What the store records of the key: tells keys apart, reveals nothing of them."""
    return hmac.new(key, b"ggop-adapter id key fingerprint", hashlib.sha256).hexdigest()[:32]
