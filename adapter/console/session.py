"""Console sign-in: the same clients as the API (static tokens and OAuth clients), a signed
session cookie, CSRF tokens, and the console's own errors.

* The login form takes a token once; the cookie then holds the client (name, role,
  municipality), the SHA-256 of a static token (so replacing the token in the clients file
  ends the session), a CSRF token and the time of sign-in, signed with the console secret.
  It is ``HttpOnly``, ``SameSite=Strict``, limited to ``/console``, ``Secure`` when the
  console is served over https (the request's scheme or ``ADAPTER_PUBLIC_BASE_URL``), and
  lasts ``ADAPTER_CONSOLE_SESSION_HOURS``.
* The console secret is ``ADAPTER_CONSOLE_SECRET``, else the file ``ADAPTER_CONSOLE_SECRET_FILE``
  (default ``var/console.key``), created with 256 random bits, readable by its owner only, on
  first start. Every process of one deployment must use the same secret.
* Every form that changes something carries the session's CSRF token; the login form a token
  of a short-lived pre-login cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from adapter.api.auth import Client, Clients
from adapter.config import Settings
from adapter.errors import ConfigError, issue
from adapter.id_key import create_secret_file

COOKIE = "ggop_console"
LOGIN_COOKIE = "ggop_console_login"
PATH = "/console"
MIN_SECRET_CHARS = 32
LOGIN_FORM_SECONDS = 1800
ROLES = ("operator", "municipality")


class ConsoleError(Exception):
    """A refusal the console shows as a page: a GGOP-E7xx code, its status and where."""

    def __init__(self, code: str, where: str, detail: str | None = None):
        self.issue = issue(code, None, where, detail)
        super().__init__(self.issue.render_line())

    @property
    def status(self) -> int:
        return self.issue.info.http_status


@dataclass(frozen=True)
class Session:
    client: Client
    digest: str | None  # the static token's SHA-256; None for an OAuth client
    csrf: str
    issued: float


def load_secret(settings: Settings) -> bytes:
    """The configured console secret, or the secret file's (created on first use)."""
    if settings.console_secret:
        value, where = settings.console_secret.strip(), "environment#console_secret"
    else:
        path = Path(settings.console_secret_file)
        if not path.exists():
            create_secret_file(path)
        try:
            value, where = path.read_text(encoding="utf-8").strip(), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(issue("GGOP-E708", None, str(path), type(exc).__name__)) from None
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(issue("GGOP-E708", None, where, f"at least {MIN_SECRET_CHARS} characters"))
    return value.encode("utf-8")


class Sessions:
    def __init__(self, secret: bytes, clients: Clients, hours: int):
        self.signer = URLSafeTimedSerializer(secret, salt="ggop-console-session")
        self.login_signer = URLSafeTimedSerializer(secret, salt="ggop-console-login")
        self.clients = clients
        self.max_age = max(1, hours) * 3600

    # -- sign-in -------------------------------------------------------------------------------

    def sign_in(self, token: str) -> tuple[Session, str]:
        """The session for a token typed into the login form, and its cookie value."""
        token = token.strip()
        client = self.clients.authenticate(f"Bearer {token}") if token else None
        if client is None or client.role not in ROLES or (client.role == "municipality" and not client.municipality):
            raise ConsoleError("GGOP-E701", "/console/login")
        digest: str | None = hashlib.sha256(token.encode()).hexdigest()
        if not self.clients.still_valid(digest, client):
            digest = None  # an OAuth client
        session = Session(client, digest, secrets.token_urlsafe(24), time.time())
        return session, self.signer.dumps({
            "n": client.name, "r": client.role, "m": client.municipality, "e": list(client.sender_eans),
            "h": digest, "c": session.csrf, "t": session.issued})

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None when it is missing, forged, expired or its client
        (or static token) is no longer configured."""
        if not cookie:
            return None
        try:
            data = self.signer.loads(cookie, max_age=self.max_age)
        except BadSignature:
            return None
        try:
            client = Client(str(data["n"]), str(data["r"]), data["m"], tuple(str(x) for x in data.get("e") or ()))
            session = Session(client, data.get("h"), str(data["c"]), float(data["t"]))
        except (KeyError, TypeError, ValueError):
            return None
        if client.role not in ROLES or not self.clients.still_valid(session.digest, client):
            return None
        return session

    # -- CSRF ----------------------------------------------------------------------------------

    @staticmethod
    def check_csrf(session: Session, sent: str | None, where: str) -> None:
        if not sent or not hmac.compare_digest(session.csrf, sent):
            raise ConsoleError("GGOP-E702", where)

    def login_nonce(self) -> tuple[str, str]:
        """A nonce for the login form and the pre-login cookie that vouches for it."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self.login_signer.dumps(nonce)

    def check_login_nonce(self, cookie: str | None, sent: str | None) -> None:
        try:
            expected = self.login_signer.loads(cookie or "", max_age=LOGIN_FORM_SECONDS)
        except BadSignature:
            raise ConsoleError("GGOP-E702", "/console/login") from None
        if not sent or not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
            raise ConsoleError("GGOP-E702", "/console/login")
