"""The console over a real store for the tests: the service app with the test clients
(tests/support/fhir_world.py), messages pushed through ``POST /medcom`` as a hospital does,
and signing in through the login form."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from tests.support import TEST_ID_KEY
from tests.support.citizens import generated
from tests.support.fhir_world import Clock, write_clients

from adapter.config import Settings

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
HOSPITAL = {"Authorization": "Bearer tok-hospital", "Content-Type": "application/xml"}
NOW = dt.datetime(2026, 3, 3, 8, 0, tzinfo=dt.UTC)


@dataclass
class Console:
    app: object
    runtime: object
    clock: Clock
    tmp: Path

    def client(self, base_url: str = "http://localhost"):
        return self.app.test_client()  # type: ignore[attr-defined]

    def push(self, raw: bytes):
        return self.client().post("/medcom", data=raw, headers=HOSPITAL)


def make_console(tmp_path: Path, **settings) -> Console:
    from adapter.api.app import create_app
    from adapter.runtime import load_runtime

    values = dict(id_key=TEST_ID_KEY, database_url=f"sqlite:///{tmp_path}/adapter.db",
                  clients_file=str(write_clients(tmp_path / "clients.yaml")),
                  console_secret_file=str(tmp_path / "console.key"))
    values.update(settings)
    runtime = load_runtime(Settings(**values))
    clock = Clock(NOW)
    return Console(create_app(runtime, clock), runtime, clock, tmp_path)


def sign_in(http, token: str, base: str = "") -> object:
    """The login form as a browser fills it: the page's nonce, then the token."""
    page = http.get(base + "/console/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)
    return http.post(base + "/console/login", data={"token": token, "nonce": nonce, "next": "/console/messages"})


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def odense_and_aalborg() -> tuple[list[bytes], list[bytes]]:
    """A few generated messages to Odense (0461) and to Aalborg (0851)."""
    return [m.xml for m in generated("0461", 4, 21)], [m.xml for m in generated("0851", 3, 22)]
