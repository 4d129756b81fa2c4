"""The FHIR API over a real store for tests: golden plans and generated messages converted
with the real pipeline and stored as the ingest stores them, for two municipalities (Odense
0461 and Aalborg 0851), with clients for each role and the test's own clock."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sqlalchemy import insert
from tests.support import TEST_ID_KEY

from adapter.api.auth import token_hash
from adapter.config import Settings
from adapter.pipeline import convert_bytes
from adapter.store.engine import open_store
from adapter.store.resources import bundle_resources, save_bundle
from adapter.store.schema import messages

KEY = TEST_ID_KEY.encode()

REPO = Path(__file__).resolve().parents[2]
GGOP = REPO / "tests" / "data" / "ggop"
UTC = dt.UTC
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

TASK_CODES = "http://ggop-adapter.dk/fhir/CodeSystem/task-codes"
BUSINESS = "http://ggop-adapter.dk/fhir/CodeSystem/task-business-status"
OUTPUT = "http://ggop-adapter.dk/fhir/CodeSystem/task-output-types"
MUNICIPALITY_CODES = "http://hl7.dk/fhir/core/CodeSystem/dk-core-municipality-codes"
CPR = "urn:oid:1.2.208.176.1.2"
KL = "http://fhir.kl.dk/term/CodeSystem/CareSocialCodes"
BASAL = "8b962281-2ab6-4b10-9c91-4bac592d6d49"
AVANCERET = "b679c454-2da2-46dd-9425-0e52d4aa2bf3"

CLIENTS = {  # token: (name, role, municipality)
    "tok-odense": ("odense", "municipality", "0461"),
    "tok-aalborg": ("aalborg", "municipality", "0851"),
    "tok-drift": ("drift", "operator", None),
    "tok-hospital": ("hospital", "hospital", None),
}
ODENSE = {"Authorization": "Bearer tok-odense"}
AALBORG = {"Authorization": "Bearer tok-aalborg"}
OPERATOR = {"Authorization": "Bearer tok-drift"}
HOSPITAL = {"Authorization": "Bearer tok-hospital"}
# Odense's Tasks in the world: the deadline Tasks of its plans and the reply Task of its letter
ODENSE_TASKS = 16


# --------------------------------------------------------------------------------------------
# Shared helpers (also used by test_access_control.py and test_fhir_client.py)
# --------------------------------------------------------------------------------------------


def write_clients(path: Path) -> Path:
    lines = []
    for token, (name, role, municipality) in CLIENTS.items():
        lines += [f"- name: {name}", f"  role: {role}"]
        if municipality:
            lines.append(f'  municipality: "{municipality}"')
        lines.append(f"  token_sha256: {token_hash(token)}")
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


@dataclass(frozen=True)
class Plan:
    name: str
    raw: bytes
    bundle: dict
    municipality: str
    kind: str

    def resources(self) -> list[dict]:
        return bundle_resources(self.bundle)

    def of_type(self, rtype: str) -> list[dict]:
        return [r for r in self.resources() if r["resourceType"] == rtype]

    def one(self, rtype: str) -> dict:
        found = self.of_type(rtype)
        assert len(found) == 1, (rtype, len(found))
        return found[0]

    def task(self, code: str) -> dict:
        return next(t for t in self.of_type("Task") if t["code"]["coding"][0]["code"] == code)


def _municipality_csv(tmp: Path, code: str) -> Path:
    rows = {"0461": "0461,Odense,1083,Region Syddanmark", "0851": "0851,Aalborg,1081,Region Nordjylland"}
    path = tmp / f"municipalities-{code}.csv"
    path.write_text("kommunekode,navn,regionskode,regionsnavn\n" + rows[code] + "\n", "utf-8")
    return path


@lru_cache(maxsize=1)
def plans() -> tuple[Plan, ...]:
    """Odense: minimal-almen and four generated plans and a letter; Aalborg: full-specialiseret
    and two generated messages."""
    import tempfile

    from adapter.generate import generate_messages

    out = []
    for name, municipality in (("minimal-almen", "0461"), ("full-specialiseret", "0851")):
        raw = (GGOP / f"{name}.xml").read_bytes()
        out.append(Plan(name, raw, convert_bytes(raw, id_key=KEY).bundle, municipality, "ggop"))
    with tempfile.TemporaryDirectory() as tmp:
        for code, count, seed in (("0461", 5, 5), ("0851", 3, 6)):
            for m in generate_messages(count, seed, municipalities_csv=_municipality_csv(Path(tmp), code)):
                out.append(Plan(f"{code}-{m.filename}", m.xml, convert_bytes(m.xml, id_key=KEY).bundle, code, m.kind))
    return tuple(out)


def plan(name: str) -> Plan:
    return next(p for p in plans() if p.name == name)


def load_store(engine, at: dt.datetime = T0) -> dict[str, dt.datetime]:
    """Every plan as the ingest stores it, one hour apart; returns each plan's save time."""
    times = {}
    for i, p in enumerate(plans()):
        when = at + dt.timedelta(hours=i)
        with engine.begin() as conn:
            message_id = conn.execute(insert(messages).values(
                received_at=when, sha256=hashlib.sha256(p.raw).hexdigest(), size=len(p.raw), raw=p.raw,
                kind=p.kind, municipality=p.municipality, state="accepted")).inserted_primary_key[0]
            save_bundle(conn, p.bundle, now=when, municipality=p.municipality, message_id=message_id,
                        changed_by="test")
        times[p.name] = when
    return times


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class World:
    app: object
    http: object
    engine: object
    clock: Clock
    times: dict = field(default_factory=dict)


def make_world(tmp_path: Path, url: str | None = None) -> World:
    from adapter.api.app import create_app
    from adapter.runtime import load_runtime

    url = url or f"sqlite:///{tmp_path}/adapter.db"
    engine = open_store(url)
    times = load_store(engine)
    clock = Clock(dt.datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
    settings = Settings(id_key=TEST_ID_KEY, database_url=url, clients_file=str(write_clients(tmp_path / "clients.yaml")))
    app = create_app(load_runtime(settings, engine=engine), clock)
    return World(app, app.test_client(), engine, clock, times)


def search_all(http, url: str, headers: dict) -> tuple[list[dict], list[dict]]:
    """Follow next links; returns (bundles, match resources)."""
    bundles, matches = [], []
    while url:
        r = http.get(url, headers=headers)
        assert r.status_code == 200, r.json
        bundles.append(r.json)
        matches += [e["resource"] for e in r.json.get("entry", []) if e["search"]["mode"] == "match"]
        url = next((link["url"] for link in r.json["link"] if link["relation"] == "next"), None)
    return bundles, matches


def ids(bundle: dict, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def code_of(task: dict) -> str:
    return task["code"]["coding"][0]["code"]


def business(task: dict) -> str | None:
    """A deadline Task's business status (a letter's reply Task has no deadline, so none)."""
    status = task.get("businessStatus")
    return status["coding"][0]["code"] if status else None


def output(code: str, **value) -> dict:
    return {"type": {"coding": [{"system": OUTPUT, "code": code}]}, **value}


def level(code: str) -> dict:
    return {"coding": [{"system": KL, "code": code}]}


def put_task(world, task: dict, version: str | None = "1", headers: dict = ODENSE, **changes):
    body = {**task, **changes}
    extra = {"If-Match": f'W/"{version}"'} if version is not None else {}
    return world.http.put(f"/fhir/Task/{task['id']}", json=body, headers={**headers, **extra})
