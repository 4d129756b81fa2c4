"""One citizen, one Patient; one organisation, one Organization: ids from business
identifiers under the deployment's key, in the conversion, the store, the pull API and the
outbox; a newer message updates, an older one does not; each municipality sees a shared
resource only through its own messages."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import uuid

import pytest
from sqlalchemy import select
from tests.support import TEST_ID_KEY
from tests.support.citizens import about, cancelled, plans_and_letter, sender_of
from tests.support.fhir_world import AALBORG, CPR, MUNICIPALITY_CODES, ODENSE, write_clients

from adapter.api.app import create_app
from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.fhir.bundle import entry_id
from adapter.fhir.identity import Identity, identify, organization_identity, patient_identity
from adapter.id_key import load_id_key
from adapter.routing.outbox import payload_of
from adapter.service.ingest import ingest
from adapter.store.engine import open_store
from adapter.store.schema import outbox, resource_access, resources
from conftest import runtime_for

KEY = TEST_ID_KEY.encode()
CITIZEN = "0203041234"  # a synthetic CPR number
T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


# --------------------------------------------------------------------------------------------
# identities and keyed ids
# --------------------------------------------------------------------------------------------


def test_the_same_identifier_gives_the_same_id_and_another_key_another_id():
    a = Identity("Patient", f"{CPR}|{CITIZEN}", CPR, CITIZEN)
    assert a.resource_id(KEY) == Identity("Patient", f"{CPR}|{CITIZEN}", CPR, CITIZEN).resource_id(KEY)
    assert a.resource_id(KEY) != a.resource_id(b"another deployment's key, 32 chars or more")
    assert uuid.UUID(a.resource_id(KEY)).version == 4


def test_an_id_is_not_a_plain_hash_of_the_cpr_number():
    rid = Identity("Patient", f"{CPR}|{CITIZEN}", CPR, CITIZEN).resource_id(KEY)
    plain = {hashlib.sha256(s.encode()).hexdigest()[:32] for s in (CITIZEN, f"{CPR}|{CITIZEN}", f"Patient|{CPR}|{CITIZEN}")}
    plain |= {str(uuid.uuid5(uuid.NAMESPACE_OID, s)) for s in (CITIZEN, f"{CPR}|{CITIZEN}")}
    assert rid.replace("-", "") not in plain and rid not in plain
    assert CITIZEN not in rid.replace("-", "")


def test_cpr_x_ecpr_and_local_identifiers_are_never_one_patient():
    cpr = patient_identity({"identifier": [{"system": CPR, "value": "0101011234"}]})
    xecpr = patient_identity({"identifier": [{"system": "urn:oid:1.2.208.176.1.6.1.1", "value": "0101011234"}]})
    local = patient_identity({"identifier": [{"type": {"text": "Erstatnings-id"}, "value": "0101011234"}]})
    assert cpr and xecpr and local
    assert len({cpr.resource_id(KEY), xecpr.resource_id(KEY), local.resource_id(KEY)}) == 3
    assert cpr.conditional_url == "Patient?identifier=urn:oid:1.2.208.176.1.2|0101011234"
    assert local.conditional_url is None  # no system: a receiver cannot be asked by it


def test_a_municipality_is_one_organization_whatever_department_writes():
    a = {"identifier": [{"system": "https://www.gs1.org/gln", "value": "5790000000001"},
                        {"system": MUNICIPALITY_CODES, "value": "0461"}]}
    b = {"identifier": [{"system": "https://www.gs1.org/gln", "value": "5790000000002"},
                        {"system": MUNICIPALITY_CODES, "value": "0461"}]}
    hospital = {"identifier": [{"system": "https://www.gs1.org/gln", "value": "5790000000003"},
                               {"system": "urn:oid:1.2.208.176.1.1", "value": "123456789012345"}]}
    assert organization_identity(a) == organization_identity(b)
    found = organization_identity(hospital)
    assert found is not None and found.system == "https://www.gs1.org/gln"
    assert organization_identity({"name": "no identifier"}) is None


def test_two_roles_that_are_one_organization_are_one_entry():
    org = {"resourceType": "Organization", "identifier": [{"system": "https://www.gs1.org/gln", "value": "5790000000003"}]}
    resources_ = [{**org, "id": "a"}, {**org, "id": "b"},
                  {"resourceType": "Provenance", "id": "p", "target": [{"reference": "urn:uuid:a"}, {"reference": "urn:uuid:b"}]}]
    out, found = identify(resources_, KEY)
    assert [r["resourceType"] for r in out] == ["Organization", "Provenance"]
    assert out[1]["target"] == [{"reference": f"urn:uuid:{out[0]['id']}"}]
    assert set(found) == {out[0]["id"]}


def test_practitioners_are_one_per_name_within_their_organization(runtime):
    plans, _letter = plans_and_letter("0461")
    first = runtime.convert(plans[0]).bundle
    again = runtime.convert(about(plans[0], CITIZEN)).bundle  # the same people, another patient
    practitioners = [entry_id(e) for e in first["entry"] if e["resource"]["resourceType"] == "Practitioner"]
    assert practitioners
    assert practitioners == [entry_id(e) for e in again["entry"] if e["resource"]["resourceType"] == "Practitioner"]


# --------------------------------------------------------------------------------------------
# the key
# --------------------------------------------------------------------------------------------


def test_the_key_file_is_made_once_owner_only_and_reused(tmp_path):
    settings = Settings(id_key_file=str(tmp_path / "var" / "id.key"))
    key = load_id_key(settings)
    mode = stat.S_IMODE(os.stat(settings.id_key_file).st_mode)
    assert mode == 0o600 and len(key) >= 32
    assert load_id_key(settings) == key


def test_a_short_or_unreadable_key_is_a_located_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_id_key(Settings(id_key="s3cret-but-short"))
    assert err.value.first.code == "GGOP-E502" and "s3cret" not in str(err.value)  # never echoed
    (tmp_path / "id.key").write_bytes(b"\xff\xfe not text")
    with pytest.raises(ConfigError) as err:
        load_id_key(Settings(id_key_file=str(tmp_path / "id.key")))
    assert err.value.first.code == "GGOP-E502"


def test_a_store_refuses_another_key(tmp_path):
    url = f"sqlite:///{tmp_path}/a.db"
    open_store(url, id_key=KEY).dispose()
    open_store(url, id_key=KEY).dispose()  # the same key: fine
    with pytest.raises(ConfigError) as err:
        open_store(url, id_key=b"another deployment's key, 32 chars or more")
    assert err.value.first.code == "GGOP-E502"


# --------------------------------------------------------------------------------------------
# store, pull API, outbox
# --------------------------------------------------------------------------------------------


def current(engine, rtype: str) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(resources).where(resources.c.type == rtype, resources.c.deleted.is_(False))))


def test_two_hospitals_and_a_letter_give_one_patient_and_one_organization_per_municipality(engine, tmp_path):
    plans, letter = plans_and_letter("0461")
    assert sender_of(plans[0]) != sender_of(plans[1])
    rt = runtime_for(engine, clients_file=str(write_clients(tmp_path / "clients.yaml")))
    for i, raw in enumerate([*plans, letter]):
        assert ingest(rt, about(raw, CITIZEN), received_at=T0 + dt.timedelta(hours=i)).state == "accepted"

    patients = current(engine, "Patient")
    assert len(patients) == 1 and patients[0].municipality is None
    assert patients[0].content["identifier"] == [{"system": CPR, "value": CITIZEN}]
    odense = [o for o in current(engine, "Organization")
              if {"system": MUNICIPALITY_CODES, "value": "0461"} in o.content.get("identifier", [])]
    assert len(odense) == 1
    hospitals = {sender_of(p) for p in plans}
    assert all(len([o for o in current(engine, "Organization") if any(i.get("value") == h for i in o.content["identifier"])]) == 1
               for h in hospitals)

    http = create_app(rt, lambda: T0 + dt.timedelta(days=1)).test_client()
    found = http.get(f"/fhir/Patient?identifier={CPR}|{CITIZEN}", headers=ODENSE).json
    assert found["total"] == 1 and found["entry"][0]["resource"]["id"] == patients[0].id
    tasks = http.get("/fhir/Task?_count=100", headers=ODENSE).json
    assert tasks["total"] >= 4 and {e["resource"]["for"]["reference"] for e in tasks["entry"]} == {f"Patient/{patients[0].id}"}
    assert {e["resource"]["owner"]["reference"] for e in tasks["entry"]} == {f"Organization/{odense[0].id}"}
    assert http.get(f"/fhir/Organization?identifier={MUNICIPALITY_CODES}|0461", headers=ODENSE).json["total"] == 1

    # what is pushed: every payload names the one Patient, by a conditional update on the CPR number
    with engine.connect() as conn:
        rows = list(conn.execute(select(outbox).where(outbox.c.role == "primary")))
        payloads = [payload_of(conn, r) for r in rows]
    assert len(payloads) == 3
    entries = [next(e for e in p["entry"] if e["resource"]["resourceType"] == "Patient") for p in payloads]
    assert {e["fullUrl"] for e in entries} == {f"urn:uuid:{patients[0].id}"}
    assert {e["request"]["url"] for e in entries} == {f"Patient?identifier={CPR}|{CITIZEN}"}
    assert all("id" not in e["resource"] for e in entries)
    assert {r.order_key for r in rows} == {patients[0].id}  # one citizen, one delivery order


def test_a_newer_message_updates_the_patient_and_an_older_one_arriving_later_does_not(engine):
    plans, _letter = plans_and_letter("0461")
    rt = runtime_for(engine)
    ingest(rt, about(plans[0], CITIZEN, street="Gammel Vej 1", written="2026-03-01"), received_at=T0)
    ingest(rt, about(plans[1], CITIZEN, street="Ny Vej 2", written="2026-03-05"), received_at=T0 + dt.timedelta(hours=1))
    (patient,) = current(engine, "Patient")
    assert patient.content["address"][0]["line"][0] == "Ny Vej 2" and patient.version_id == 2
    # an older letter (written 3 March) that arrives last changes nothing
    older = about(plans_and_letter("0461", seed=12)[0][0], CITIZEN, street="Mellem Vej 3", written="2026-03-03")
    late = ingest(rt, older, received_at=T0 + dt.timedelta(hours=2))
    assert late.state == "accepted"
    (patient,) = current(engine, "Patient")
    assert patient.content["address"][0]["line"][0] == "Ny Vej 2" and patient.version_id == 2
    # and what is pushed on for it carries the newer details too: a receiver never goes back
    with engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.message_id == late.message_id, outbox.c.role == "primary")).one()
        pushed = payload_of(conn, row)
    (entry,) = [e for e in pushed["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert entry["resource"]["address"][0]["line"][0] == "Ny Vej 2"
    assert "id" not in entry["resource"] and entry["request"]["url"] == f"Patient?identifier={CPR}|{CITIZEN}"


def test_another_municipality_sees_the_citizen_only_through_its_own_plan(engine, tmp_path):
    odense_plans, _ = plans_and_letter("0461")
    aalborg_plans, _ = plans_and_letter("0851", seed=31)
    rt = runtime_for(engine, clients_file=str(write_clients(tmp_path / "clients.yaml")))
    ingest(rt, about(odense_plans[0], CITIZEN), received_at=T0)
    http = create_app(rt, lambda: T0 + dt.timedelta(days=1)).test_client()
    (patient,) = current(engine, "Patient")
    assert http.get(f"/fhir/Patient/{patient.id}", headers=AALBORG).status_code == 404  # not yet Aalborg's
    assert http.get(f"/fhir/Patient?identifier={CPR}|{CITIZEN}", headers=AALBORG).json["total"] == 0

    ingest(rt, about(aalborg_plans[0], CITIZEN), received_at=T0 + dt.timedelta(hours=1))
    (patient,) = current(engine, "Patient")  # still one
    for headers in (ODENSE, AALBORG):
        assert http.get(f"/fhir/Patient/{patient.id}", headers=headers).status_code == 200
        assert http.get(f"/fhir/Patient/{patient.id}/_history", headers=headers).json["total"] == patient.version_id
    # neither learns of the other's plan, Tasks or municipality
    for mine, theirs, code in ((ODENSE, AALBORG, "0851"), (AALBORG, ODENSE, "0461")):
        assert http.get(f"/fhir/Organization?identifier={MUNICIPALITY_CODES}|{code}", headers=mine).json["total"] == 0
        own = {e["resource"]["id"] for e in http.get("/fhir/Task?_count=100", headers=mine).json["entry"]}
        other = {e["resource"]["id"] for e in http.get("/fhir/Task?_count=100", headers=theirs).json["entry"]}
        assert own and other and not own & other
        assert http.get(f"/fhir/Task?patient={patient.id}&_count=100", headers=mine).json["total"] == len(own)
    with engine.connect() as conn:
        granted = set(conn.execute(select(resource_access.c.municipality).where(
            resource_access.c.type == "Patient", resource_access.c.id == patient.id)).scalars())
    assert granted == {"0461", "0851"}


def test_messages_about_one_new_citizen_arriving_at_once_give_one_patient(engine):
    """Concurrent ingests race to create the same Patient and Organizations: the loser's
    transaction is retried and updates what the winner created."""
    import threading

    plans, letter = plans_and_letter("0461", seed=13)
    more, _ = plans_and_letter("0461", seed=14)
    messages = [about(raw, CITIZEN) for raw in (*plans, letter, *more)]
    rt = runtime_for(engine)
    start = threading.Barrier(len(messages))
    states: list[str] = []

    def push(raw: bytes) -> None:
        start.wait()
        states.append(ingest(rt, raw, received_at=T0).state)

    threads = [threading.Thread(target=push, args=(raw,)) for raw in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert states == ["accepted"] * len(messages)
    assert len(current(engine, "Patient")) == 1
    with engine.connect() as conn:
        rows = list(conn.execute(select(resource_access).where(resource_access.c.type == "Patient")))
    assert [r.municipality for r in rows] == ["0461"]


def test_a_cancelled_plan_withdraws_the_citizen_unless_another_of_the_municipality_stands(engine, tmp_path):
    odense, _ = plans_and_letter("0461")
    aalborg, _ = plans_and_letter("0851", seed=31)
    rt = runtime_for(engine, clients_file=str(write_clients(tmp_path / "clients.yaml")))
    http = create_app(rt, lambda: T0 + dt.timedelta(days=1)).test_client()
    first = about(odense[0], CITIZEN)
    ingest(rt, first, received_at=T0)
    ingest(rt, about(aalborg[0], CITIZEN), received_at=T0 + dt.timedelta(minutes=1))
    (patient,) = current(engine, "Patient")
    assert http.get(f"/fhir/Patient/{patient.id}", headers=ODENSE).status_code == 200

    assert ingest(rt, cancelled(first), received_at=T0 + dt.timedelta(minutes=2)).state == "accepted"
    assert http.get(f"/fhir/Patient/{patient.id}", headers=ODENSE).status_code == 404  # no plan of Odense stands
    assert http.get(f"/fhir/Patient?identifier={CPR}|{CITIZEN}", headers=ODENSE).json["total"] == 0
    assert http.get(f"/fhir/Patient/{patient.id}", headers=AALBORG).status_code == 200  # Aalborg's does
    revoked = http.get("/fhir/ServiceRequest", headers=ODENSE).json["entry"][0]["resource"]
    assert revoked["status"] == "revoked"  # the cancelled plan itself stays Odense's to see

    ingest(rt, about(odense[1], CITIZEN), received_at=T0 + dt.timedelta(minutes=3))  # a new plan
    assert http.get(f"/fhir/Patient/{patient.id}", headers=ODENSE).status_code == 200


def test_a_cancelled_plan_cancels_its_deadline_tasks(engine):
    plans, _ = plans_and_letter("0461")
    rt = runtime_for(engine)
    first = about(plans[0], CITIZEN)
    ingest(rt, first, received_at=T0)
    assert {t.content["status"] for t in current(engine, "Task")} == {"requested"}
    ingest(rt, cancelled(first), received_at=T0 + dt.timedelta(hours=1))
    tasks = current(engine, "Task")
    assert tasks and {t.content["status"] for t in tasks} == {"cancelled"}
    assert all(t.content["statusReason"]["text"] for t in tasks) and all(t.version_id == 2 for t in tasks)
    assert {s.content["status"] for s in current(engine, "ServiceRequest")} == {"revoked"}


def test_processes_opening_a_new_store_at_once_record_one_key(store_url):
    """Two workers starting together on a fresh store: one records the key, the other agrees."""
    import threading

    from adapter.store.engine import check_id_key, make_engine
    from adapter.store.schema import deployment

    engine = open_store(store_url)  # migrated, no key recorded yet
    errors: list[BaseException] = []
    engines = [make_engine(store_url) for _ in range(12)]  # a connection each, as processes have
    for e in engines:
        with e.connect():
            pass
    start = threading.Barrier(len(engines))

    def open_with_key(own) -> None:
        start.wait()
        try:
            check_id_key(own, KEY)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_with_key, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with engine.connect() as conn:
        assert len(list(conn.execute(select(deployment)))) == 1
    for e in [engine, *engines]:
        e.dispose()
