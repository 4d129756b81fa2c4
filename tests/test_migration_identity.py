"""Migration 0003 on a store filled by the 0.1.0 release (tests/data/migration/): one Patient
per CPR number and one Organization per municipality, every reference rewritten, the old ids
answering 410 with the survivor's name, nothing lost, undelivered payloads rekeyed; on SQLite
and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections import Counter

import pytest
from sqlalchemy import DateTime, LargeBinary, MetaData, select, text
from tests.support import TEST_ID_KEY
from tests.support.citizens import about, generated
from tests.support.fhir_world import token_hash

from adapter.api.app import create_app
from adapter.fhir.bundle import entry_id
from adapter.routing.outbox import payload_of
from adapter.service.ingest import ingest
from adapter.store.engine import make_engine, migrate, schema_is_current
from adapter.store.merge import merge_by_identity
from adapter.store.schema import outbox, resource_access, resource_history, resources
from conftest import DATA, runtime_for

KEY = TEST_ID_KEY.encode()
DUMP = DATA / "migration" / "release-0.1.0.json"
CITIZEN = "0806853483"  # three messages to Norddjurs (0707), one to Randers (0825)
CPR = "urn:oid:1.2.208.176.1.2"
MUNICIPALITY_CODES = "http://hl7.dk/fhir/core/CodeSystem/dk-core-municipality-codes"
NORDDJURS = {"Authorization": "Bearer tok-norddjurs"}
RANDERS = {"Authorization": "Bearer tok-randers"}


def _value(raw, column):
    if isinstance(raw, dict) and set(raw) == {"base64"} and isinstance(column.type, LargeBinary):
        return base64.b64decode(raw["base64"])
    if isinstance(raw, str) and isinstance(column.type, DateTime):
        value = dt.datetime.fromisoformat(raw)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return raw


def release_store(url: str):
    """A store at revision 0002 holding every row the 0.1.0 release wrote."""
    engine = make_engine(url)
    migrate(engine, revision="0002")
    dump = json.loads(DUMP.read_text("utf-8"))
    tables = MetaData()
    tables.reflect(engine)
    with engine.begin() as conn:
        for name in ("messages", "message_keys", "resources", "resource_history", "audit", "outbox"):
            table = tables.tables[name]
            conn.execute(table.insert(), [{k: _value(v, table.c[k]) for k, v in row.items()} for row in dump[name]])
        if engine.dialect.name == "postgresql":
            for name in ("messages", "audit", "outbox"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"))
    return engine, dump


@pytest.fixture
def migrated(store_url):
    engine, dump = release_store(store_url)
    migrate(engine, id_key=KEY)
    yield engine, dump
    engine.dispose()


def live(engine, rtype: str | None = None) -> list:
    conds = [resources.c.deleted.is_(False)]
    if rtype:
        conds.append(resources.c.type == rtype)
    with engine.connect() as conn:
        return list(conn.execute(select(resources).where(*conds)))


def references(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from references(v)
    elif isinstance(obj, list):
        for x in obj:
            yield from references(x)


def test_a_release_store_without_the_key_is_not_merged(store_url):
    engine, _dump = release_store(store_url)
    try:
        with pytest.raises(Exception, match="GGOP-E502"):
            migrate(engine)
        assert not schema_is_current(engine)  # nothing half done: still at 0002
    finally:
        engine.dispose()


def test_one_patient_per_cpr_and_one_organization_per_municipality(migrated):
    engine, dump = migrated
    assert schema_is_current(engine)
    cprs = Counter(p.content["identifier"][0]["value"] for p in live(engine, "Patient"))
    assert cprs[CITIZEN] == 1 and set(cprs.values()) == {1}
    assert len(cprs) == len({r["content"]["identifier"][0]["value"] for r in dump["resources"] if r["type"] == "Patient"})
    codes = Counter(i["value"] for o in live(engine, "Organization") for i in o.content.get("identifier", [])
                    if i.get("system") == MUNICIPALITY_CODES)
    assert codes["0707"] == 1 and set(codes.values()) == {1}
    (citizen,) = [p for p in live(engine, "Patient") if p.content["identifier"][0]["value"] == CITIZEN]
    with engine.connect() as conn:
        granted = set(conn.execute(select(resource_access.c.municipality).where(
            resource_access.c.type == "Patient", resource_access.c.id == citizen.id)).scalars())
    assert granted == {"0707", "0825"}
    assert citizen.municipality is None and citizen.patient_id == citizen.id


def test_nothing_is_lost_and_no_reference_dangles(migrated):
    engine, dump = migrated
    with engine.connect() as conn:
        everything = {(r.type, r.id): r for r in conn.execute(select(resources))}
        history = {(r.type, r.id, r.version_id) for r in conn.execute(select(resource_history))}
    assert {(r["type"], r["id"]) for r in dump["resources"]} <= set(everything)
    assert {(r["type"], r["id"], r["version_id"]) for r in dump["resource_history"]} <= history
    alive = {f"{t}/{i}" for (t, i), r in everything.items() if not r.deleted}
    for (rtype, rid), row in everything.items():
        if row.deleted:
            assert row.replaced_by and f"{rtype}/{row.replaced_by}" in alive  # merged, never just gone
            continue
        dangling = [ref for ref in references(row.content) if "/" in ref and ref not in alive]
        assert not dangling, (rtype, dangling)
        assert (rtype, rid, row.version_id) in history
        if row.patient_id is not None:
            assert f"Patient/{row.patient_id}" in alive
    merged = [r for r in everything.values() if r.deleted]
    assert {r.type for r in merged} >= {"Patient", "Organization", "Practitioner", "PractitionerRole"}


def test_the_old_ids_answer_410_naming_the_survivor_and_the_pull_api_shows_one_citizen(migrated, tmp_path):
    engine, dump = migrated
    clients = tmp_path / "clients.yaml"
    clients.write_text("".join(
        f'- name: {name}\n  role: municipality\n  municipality: "{code}"\n  token_sha256: {token_hash(token)}\n'
        for name, code, token in (("norddjurs", "0707", "tok-norddjurs"), ("randers", "0825", "tok-randers"))), "utf-8")
    rt = runtime_for(engine, clients_file=str(clients))
    http = create_app(rt, lambda: dt.datetime(2026, 11, 3, tzinfo=dt.UTC)).test_client()
    (citizen,) = [p for p in live(engine, "Patient") if p.content["identifier"][0]["value"] == CITIZEN]
    old = [r for r in dump["resources"] if r["type"] == "Patient" and r["municipality"] == "0707"
           and r["content"]["identifier"][0]["value"] == CITIZEN]
    assert len(old) == 3  # two plans and a letter
    for r in old:
        got = http.get(f"/fhir/Patient/{r['id']}", headers=NORDDJURS)
        assert got.status_code == 410
        assert got.json["issue"][0]["diagnostics"] == f"Patient/{citizen.id}"
        assert http.get(f"/fhir/Patient/{r['id']}", headers=RANDERS).status_code == 404  # never Randers'
        assert http.get(f"/fhir/Patient/{r['id']}/_history", headers=NORDDJURS).json["total"] >= 1  # kept
    found = http.get(f"/fhir/Patient?identifier={CPR}|{CITIZEN}", headers=NORDDJURS).json
    assert found["total"] == 1 and found["entry"][0]["resource"]["id"] == citizen.id
    tasks = http.get(f"/fhir/Task?patient={citizen.id}&_count=100", headers=NORDDJURS).json
    assert tasks["total"] >= 4
    assert {e["resource"]["meta"]["versionId"] for e in tasks["entry"]} == {"2"}  # rewritten, as a new version
    for headers in (NORDDJURS, RANDERS):
        assert http.get(f"/fhir/Patient/{citizen.id}", headers=headers).status_code == 200


def test_undelivered_payloads_carry_the_new_ids_and_a_new_message_finds_the_citizen(migrated):
    engine, _dump = migrated
    (citizen,) = [p for p in live(engine, "Patient") if p.content["identifier"][0]["value"] == CITIZEN]
    with engine.connect() as conn:
        rows = list(conn.execute(select(outbox).where(outbox.c.recipient == "municipality:0707")))
        payloads = [payload_of(conn, r) for r in rows]
    assert len(rows) == 3 and {r.order_key for r in rows} == {citizen.id}
    for p in payloads:
        (entry,) = [e for e in p["entry"] if e["resource"]["resourceType"] == "Patient"]
        assert entry_id(entry) == citizen.id and entry["request"]["url"] == f"Patient?identifier={CPR}|{CITIZEN}"
        full = {e["fullUrl"] for e in p["entry"]}
        assert all(ref in full for ref in references([e["resource"] for e in p["entry"]]))

    plan = next(m.xml for m in generated("0461", 10, 77) if m.kind == "ggop")
    assert ingest(runtime_for(engine), about(plan, CITIZEN), received_at=dt.datetime(2026, 11, 4, tzinfo=dt.UTC)).state \
        == "accepted"
    assert [p.id for p in live(engine, "Patient") if p.content["identifier"][0]["value"] == CITIZEN] == [citizen.id]


def test_merging_again_changes_nothing(migrated):
    engine, _dump = migrated
    before = {(r.type, r.id, r.version_id) for r in live(engine)}
    with engine.begin() as conn:
        report = merge_by_identity(conn, KEY, dt.datetime.now(dt.UTC))
    assert (report.renamed, report.survivors, report.rewritten, report.outbox_rows) == (0, 0, 0, 0)
    assert {(r.type, r.id, r.version_id) for r in live(engine)} == before
