"""Access control on /fhir: tokens (401), roles (403), one municipality never sees another's
resources (read, search, _include, _history, paging, forged links, update), and the audit
trail without patient data."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select
from tests.support.fhir_world import (
    AALBORG,
    HOSPITAL,
    MUNICIPALITY_CODES,
    ODENSE,
    OPERATOR,
    UTC,
    ids,
    plan,
    plans,
    put_task,
    search_all,
)

from adapter.store.resources import save_resource
from adapter.store.schema import audit, resource_history, resources

UNKNOWN = "6b0f7c52-3d55-5a8e-9a61-0c1f3c7e5a10"


def of(municipality: str, rtype: str) -> list[dict]:
    """The resources of this type the municipality's messages name, each once (a Patient or
    Organization named by several messages is one resource)."""
    found = {r["id"]: r for p in plans() if p.municipality == municipality for r in p.of_type(rtype)}
    return list(found.values())


def only_theirs(municipality: str, resources: list[dict]) -> list[dict]:
    """Those of ``resources`` no message of ``municipality`` names (a hospital both write to
    is one Organization, which both see)."""
    mine = {r["id"] for p in plans() if p.municipality == municipality for r in p.resources()}
    return [r for r in resources if r["id"] not in mine]


def aalborg_plan():
    return plan("full-specialiseret")


# --------------------------------------------------------------------------------------------
# 401 / 403
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic dG9rLW9kZW5zZTo="},
    {"Authorization": "tok-odense"},
])
@pytest.mark.parametrize("method, path", [
    ("GET", "/fhir/Task"),
    ("GET", f"/fhir/Task/{UNKNOWN}"),
    ("GET", f"/fhir/Task/{UNKNOWN}/_history"),
    ("PUT", f"/fhir/Task/{UNKNOWN}"),
    ("GET", "/fhir/Observation"),
])
def test_without_a_valid_token_401(world, headers, method, path):
    r = world.http.open(path, method=method, headers=headers, json={"resourceType": "Task"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json["resourceType"] == "OperationOutcome"
    assert r.json["issue"][0]["code"] == "login"
    assert r.json["issue"][0]["details"]["coding"][0]["code"] == "GGOP-E901"


def test_metadata_needs_no_token(world):
    assert world.http.get("/fhir/metadata").status_code == 200
    assert world.http.get("/fhir/metadata", headers={"Authorization": "Bearer wrong"}).status_code == 200


def test_hospital_may_not_use_fhir(world):
    task = aalborg_plan().task("note-specialised-plan")
    for method, path in (("GET", "/fhir/Task"), ("GET", f"/fhir/Task/{task['id']}"),
                         ("GET", f"/fhir/Task/{task['id']}/_history"), ("GET", f"/fhir/Task/{task['id']}/_history/1"),
                         ("PUT", f"/fhir/Task/{task['id']}")):
        r = world.http.open(path, method=method, headers={**HOSPITAL, "If-Match": 'W/"1"'}, json=task)
        assert r.status_code == 403, path
        assert r.json["issue"][0]["code"] == "forbidden"
        assert r.json["issue"][0]["details"]["coding"][0]["code"] == "GGOP-E902"
    assert world.http.get("/fhir/metadata", headers=HOSPITAL).status_code == 200


def test_operator_reads_everything_and_updates_nothing(world):
    b = world.http.get("/fhir/Task?_count=500", headers=OPERATOR).json
    assert b["total"] == len(of("0461", "Task")) + len(of("0851", "Task"))
    task = aalborg_plan().task("note-specialised-plan")
    assert world.http.get(f"/fhir/Task/{task['id']}", headers=OPERATOR).status_code == 200
    assert world.http.get(f"/fhir/Task/{task['id']}/_history", headers=OPERATOR).status_code == 200
    r = put_task(world, task, headers=OPERATOR, status="accepted")
    assert r.status_code == 403 and r.json["issue"][0]["code"] == "forbidden"
    assert world.http.get(f"/fhir/Task/{task['id']}", headers=OPERATOR).json["meta"]["versionId"] == "1"


# --------------------------------------------------------------------------------------------
# one municipality never sees another's
# --------------------------------------------------------------------------------------------


def test_read_of_another_municipality_is_404_like_an_unknown_id(world):
    foreign = aalborg_plan()
    unknown = world.http.get(f"/fhir/Task/{UNKNOWN}", headers=ODENSE)
    assert only_theirs("0461", foreign.resources())
    for resource in only_theirs("0461", foreign.resources()):
        rtype, rid = resource["resourceType"], resource["id"]
        r = world.http.get(f"/fhir/{rtype}/{rid}", headers=ODENSE)
        assert r.status_code == 404, rtype
        assert r.json == unknown.json  # nothing tells "exists, but not yours"
        assert world.http.get(f"/fhir/{rtype}/{rid}/_history/1", headers=ODENSE).status_code == 404
        assert world.http.get(f"/fhir/{rtype}/{rid}/_history", headers=ODENSE).status_code == 404
        assert world.http.get(f"/fhir/{rtype}/{rid}", headers=AALBORG).status_code == 200


@pytest.mark.parametrize("rtype", ["Task", "ServiceRequest", "CarePlan", "Patient", "Organization", "Condition",
                                   "Communication", "Consent", "Provenance", "DocumentReference", "Practitioner",
                                   "PractitionerRole"])
def test_search_shows_only_own_resources(world, rtype):
    for headers, mine, theirs in ((ODENSE, "0461", "0851"), (AALBORG, "0851", "0461")):
        _bundles, got = search_all(world.http, f"/fhir/{rtype}?_count=3", headers)
        assert sorted(r["id"] for r in got) == sorted(r["id"] for r in of(mine, rtype))
        assert not {r["id"] for r in got} & {r["id"] for r in only_theirs(mine, of(theirs, rtype))}


def test_search_filters_cannot_reach_another_municipality(world):
    foreign = aalborg_plan()
    patient = foreign.one("Patient")
    task = foreign.task("note-specialised-plan")
    queries = [
        f"Task?_id={task['id']}",
        f"Task?patient={patient['id']}",
        f"Task?focus={task['focus']['reference']}",
        f"Task?owner={task['owner']['reference']}",
        f"Task?owner={MUNICIPALITY_CODES}|0851",
        f"Patient?identifier={patient['identifier'][0]['system']}|{patient['identifier'][0]['value']}",
        f"Patient?_id={patient['id']}",
        f"ServiceRequest?patient={patient['id']}",
        f"Organization?identifier={MUNICIPALITY_CODES}|0851",
    ]
    for q in queries:
        assert world.http.get(f"/fhir/{q}", headers=ODENSE).json["total"] == 0, q
        assert world.http.get(f"/fhir/{q}", headers=AALBORG).json["total"] >= 1, q


def test_include_never_brings_another_municipality(world):
    """Even a Task of Odense that (wrongly) points at Aalborg's ServiceRequest and Patient does not
    include them."""
    mine = plan("minimal-almen").task("offer-start")
    foreign = aalborg_plan()
    forged = {**mine, "focus": {"reference": f"ServiceRequest/{foreign.one('ServiceRequest')['id']}"},
              "for": {"reference": f"Patient/{foreign.one('Patient')['id']}"}}
    with world.engine.begin() as conn:
        row = conn.execute(select(resources.c.patient_id, resources.c.message_id)
                           .where(resources.c.id == mine["id"])).first()
        save_resource(conn, forged, now=dt.datetime(2026, 3, 3, tzinfo=UTC), municipality="0461",
                      patient_id=row.patient_id, message_id=row.message_id, changed_by="test")
    b = world.http.get(f"/fhir/Task?_id={mine['id']}&_include=Task:focus&_include=Task:patient&_include=Task:owner",
                       headers=ODENSE).json
    assert ids(b) == [mine["id"]]
    included = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"] if e["search"]["mode"] == "include"]
    assert included == [("Organization", mine["owner"]["reference"].split("/")[1])]
    b = world.http.get(f"/fhir/Task?_id={mine['id']}&_include=Task:focus", headers=OPERATOR).json
    assert ids(b, "include") == [foreign.one("ServiceRequest")["id"]]  # it does exist


def test_paging_links_are_filtered_for_whoever_uses_them(world):
    # Aalborg's paged search: its next link, used by Odense, shows Odense's data only
    b = world.http.get("/fhir/Task?_count=1", headers=AALBORG).json
    assert b["total"] == len(of("0851", "Task")) > 1
    nxt = next(link["url"] for link in b["link"] if link["relation"] == "next")
    as_odense = world.http.get(nxt, headers=ODENSE).json
    assert "total" not in as_odense  # a _cursor page is not counted again unless asked
    counted = world.http.get(nxt + "&_total=accurate", headers=ODENSE).json
    assert counted["total"] == len(of("0461", "Task"))
    assert set(ids(as_odense)) <= {t["id"] for t in of("0461", "Task")}
    assert set(ids(as_odense)) <= {t["id"] for t in of("0461", "Task")}
    # a next link carrying Aalborg's own filter shows Odense nothing
    owner = aalborg_plan().task("note-specialised-plan")["owner"]["reference"]
    b = world.http.get(f"/fhir/Task?owner={owner}&_count=1&_include=Task:focus", headers=AALBORG).json
    assert b["total"] >= 1
    forged = f"/fhir/Task?owner={owner}&_count=1&_include=Task:focus&_offset=0"
    r = world.http.get(forged, headers=ODENSE).json
    assert r["total"] == 0 and not r.get("entry")
    # an operator's link walked by Odense: every page is Odense's only
    op = world.http.get("/fhir/Task?_count=4", headers=OPERATOR).json
    url = next(link["url"] for link in op["link"] if link["relation"] == "next")
    _bundles, walked = search_all(world.http, url, ODENSE)
    assert {t["id"] for t in walked} <= {t["id"] for t in of("0461", "Task")}
    # a history link of Aalborg's Task, walked by Odense
    task = aalborg_plan().task("note-specialised-plan")
    assert world.http.get(f"/fhir/Task/{task['id']}/_history?_count=1&_offset=0", headers=ODENSE).status_code == 404


def test_update_of_another_municipality_is_404_and_changes_nothing(world):
    task = aalborg_plan().task("note-specialised-plan")
    r = put_task(world, task, headers=ODENSE, status="accepted")
    assert r.status_code == 404
    got = world.http.get(f"/fhir/Task/{task['id']}", headers=AALBORG).json
    assert got["status"] == "requested" and got["meta"]["versionId"] == "1"
    assert put_task(world, task, headers=AALBORG, status="accepted").status_code == 200


def test_reevaluation_stays_inside_the_municipality(world):
    """An Odense Task update writes nothing of Aalborg's."""
    with world.engine.connect() as conn:
        before = {(r.type, r.id): r.version_id for r in conn.execute(
            select(resources.c.type, resources.c.id, resources.c.version_id).where(resources.c.municipality == "0851"))}
    world.clock.now = dt.datetime(2026, 3, 20, tzinfo=UTC)
    task = plan("minimal-almen").task("offer-start")
    assert put_task(world, task, output=[{"type": {"coding": [{
        "system": "http://ggop-adapter.dk/fhir/CodeSystem/task-output-types", "code": "offered-start"}]},
        "valueDate": "2026-03-06"}]).status_code == 200
    with world.engine.connect() as conn:
        after = {(r.type, r.id): r.version_id for r in conn.execute(
            select(resources.c.type, resources.c.id, resources.c.version_id).where(resources.c.municipality == "0851"))}
        written = conn.execute(select(resource_history.c.municipality).where(
            resource_history.c.changed_by == "odense")).scalars().all()
    assert before == after
    assert len(written) >= 3 and set(written) == {"0461"}


# --------------------------------------------------------------------------------------------
# audit
# --------------------------------------------------------------------------------------------


def _cprs() -> set[str]:
    out = set()
    for p in plans():
        for patient in p.of_type("Patient"):
            for ident in patient.get("identifier", []):
                if re.fullmatch(r"\d{10}", ident.get("value", "")):
                    out.add(ident["value"])
    return out


def _names() -> set[str]:
    out = set()
    for p in plans():
        for patient in p.of_type("Patient"):
            for n in patient.get("name", []):
                out.update(x for x in [n.get("family"), *n.get("given", [])] if x)
    return out


def test_audit_rows_without_patient_data(world):
    mine = plan("minimal-almen")
    patient = mine.one("Patient")
    cpr = patient["identifier"][0]["value"]
    task = mine.task("offer-start")
    foreign = aalborg_plan().task("note-specialised-plan")
    h = world.http
    h.get(f"/fhir/Task/{task['id']}", headers=ODENSE)
    h.get(f"/fhir/Patient?identifier=urn:oid:1.2.208.176.1.2|{cpr}&family=Testesen", headers=ODENSE)
    h.get(f"/fhir/Patient/{cpr}", headers=ODENSE)  # a CPR number as id
    h.get(f"/fhir/Patient?{cpr}=x&name={cpr}", headers=ODENSE)  # as a parameter name and value
    h.get(f"/fhir/Task?_lastUpdated={cpr}", headers=ODENSE)  # a bad value
    h.get(f"/fhir/Task/{foreign['id']}", headers=ODENSE)
    h.get("/fhir/Task", headers={"Authorization": f"Bearer {cpr}"})
    h.get("/fhir/Task", headers=HOSPITAL)
    put_task(world, task, status="accepted", note=[{"text": f"Ringet til {patient['name'][0]['family']}"}])
    put_task(world, task, status="accepted")  # stale
    put_task(world, foreign, headers=OPERATOR, status="accepted")

    with world.engine.connect() as conn:
        rows = conn.execute(select(audit).order_by(audit.c.id)).all()
    got = [(r.client, r.role, r.action, r.target, r.outcome) for r in rows]
    assert got == [
        ("odense", "municipality", "read", f"Task/{task['id']}", "200"),
        ("odense", "municipality", "search", "Patient?identifier,family", "200"),
        ("odense", "municipality", "read", "Patient/-", "404"),
        ("odense", "municipality", "search", "Patient?(unreadable name),name", "200"),
        ("odense", "municipality", "search", "Task?_lastUpdated", "400"),
        ("odense", "municipality", "read", f"Task/{foreign['id']}", "404"),
        (None, None, "search", "Task?", "401"),
        ("hospital", "hospital", "search", "Task?", "403"),
        ("odense", "municipality", "update", f"Task/{task['id']}", "200"),
        ("odense", "municipality", "update", f"Task/{task['id']}", "412"),
        ("drift", "operator", "update", f"Task/{foreign['id']}", "403"),
    ]
    assert all(r.at is not None for r in rows)
    text = " ".join(str(v) for r in rows for v in r if v is not None)
    for value in _cprs():
        assert value not in text
        assert value[:6] not in text  # not even the birth date part
    for name in _names():
        assert name not in text


def test_error_bodies_do_not_echo_values(world):
    cpr = plan("minimal-almen").one("Patient")["identifier"][0]["value"]
    for path in (f"/fhir/Task?_lastUpdated={cpr}", f"/fhir/Task?_count={cpr}x", f"/fhir/Patient/{cpr}",
                 f"/fhir/Task?owner=a/{cpr}/b", f"/fhir/Observation/{cpr}", f"/fhir/Patient/{cpr}/_history/{cpr}"):
        r = world.http.get(path, headers=ODENSE)
        assert r.status_code >= 400 and r.json["resourceType"] == "OperationOutcome", path
        assert cpr[:6].encode() not in r.data, path
    r = world.http.get(f"/fhir/Patient?{cpr}=1&_sort={cpr}", headers=ODENSE)
    outcome = [e["resource"] for e in r.json["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1 and cpr[:6] not in str(outcome)
