"""The FHIR REST API under /fhir: metadata, read, vread, history, search, paging, _include,
Task update with If-Match and the plan's re-evaluation, OperationOutcome errors.

Data: golden plans and generated messages converted with the real pipeline and stored as
the ingest stores them (a ``messages`` row with the raw bytes, then the Bundle) for two
municipalities: Odense (0461) and Aalborg (0851). The clock is the test's.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select
from tests.support import TEST_ID_KEY
from tests.support.fhir_world import (
    AALBORG,
    AVANCERET,
    BASAL,
    BUSINESS,
    CPR,
    GGOP,
    HOSPITAL,
    KL,
    MUNICIPALITY_CODES,
    ODENSE,
    ODENSE_TASKS,
    OPERATOR,
    T0,
    TASK_CODES,
    UTC,
    Clock,
    Plan,
    World,
    business,
    code_of,
    ids,
    level,
    make_world,
    output,
    plan,
    plans,
    put_task,
    search_all,
    write_clients,
)

from adapter.config import Settings
from adapter.store.engine import open_store
from adapter.store.resources import save_bundle
from adapter.store.schema import resource_history
from conftest import runtime_for

# --------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------


def test_metadata_without_authentication(world):
    r = world.http.get("/fhir/metadata")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/fhir+json")
    cs = r.json
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert "json" in cs["format"] and not any("xml" in f for f in cs["format"])
    rest = cs["rest"][0]
    assert rest["security"]["service"][0]["text"] == "Bearer token"
    types = {res["type"]: res for res in rest["resource"]}
    assert {"Task", "ServiceRequest", "CarePlan", "Patient", "Organization", "Condition", "Communication"} <= set(types)
    task = types["Task"]
    assert [i["code"] for i in task["interaction"]] == ["read", "vread", "update", "history-instance", "history-type",
                                                        "search-type"]
    assert {p["name"] for p in task["searchParam"]} == {
        "_id", "_lastUpdated", "owner", "status", "business-status", "patient", "subject", "focus", "code"}
    assert task["searchInclude"] == ["Task:focus", "Task:patient", "Task:owner", "Task:based-on"]
    assert task["updateCreate"] is False and task["versioning"] == "versioned-update"
    for rtype, res in types.items():
        codes = {i["code"] for i in res["interaction"]}
        assert codes <= {"read", "vread", "update", "history-instance", "history-type", "search-type"}
        assert ("update" in codes) == (rtype == "Task")
    assert {p["name"] for p in types["Patient"]["searchParam"]} == {"_id", "_lastUpdated", "identifier"}
    assert {p["name"] for p in types["ServiceRequest"]["searchParam"]} == {"_id", "_lastUpdated", "patient",
                                                                           "subject"}


def test_metadata_tells_the_truth_about_search_parameters(world):
    """Every advertised parameter is applied (no 'ignored' outcome); others are reported."""
    sample = {"token": "x|y", "reference": "Patient/x", "date": "ge2000-01-01"}
    rest = world.http.get("/fhir/metadata").json["rest"][0]
    for res in rest["resource"]:
        for p in res["searchParam"]:
            r = world.http.get(f"/fhir/{res['type']}", query_string={p["name"]: sample[p["type"]]},
                               headers=OPERATOR)
            assert r.status_code == 200, (res["type"], p["name"], r.json)
            assert all(e["search"]["mode"] != "outcome" for e in r.json.get("entry", [])), (res["type"], p["name"])
        for inc in res.get("searchInclude", []):
            r = world.http.get(f"/fhir/{res['type']}", query_string={"_include": inc}, headers=OPERATOR)
            assert all(e["search"]["mode"] != "outcome" for e in r.json.get("entry", [])), inc
    r = world.http.get("/fhir/Task", query_string={"_sort": "status", "performer": "x"}, headers=OPERATOR)
    outcome = [e["resource"] for e in r.json["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1
    assert [i["expression"] for i in outcome[0]["issue"]] == [["_sort"], ["performer"]]
    assert {i["severity"] for i in outcome[0]["issue"]} == {"warning"}


def test_metadata_refuses_xml(world):
    assert world.http.get("/fhir/metadata?_format=xml").status_code == 406
    assert world.http.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}).status_code == 406
    assert world.http.get("/fhir/metadata", headers={"Accept": "application/json"}).status_code == 200
    assert world.http.post("/fhir/metadata").status_code == 405


def test_answers_are_valid_r4(world):
    """CapabilityStatement, searchset and history Bundles and an OperationOutcome pass an
    independent R4 check and the fhir.resources models."""
    import fhirkit

    from adapter.fhir.models import model_class
    from invariants import independent_r4_check

    task = plan("minimal-almen").task("offer-start")
    world.clock.now = dt.datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    assert put_task(world, task, status="accepted", output=[output("offered-start", valueDate="2026-03-06")],
                    note=[{"text": "x"}]).status_code == 200
    answers = [
        world.http.get("/fhir/metadata").json,
        world.http.get("/fhir/Task?_count=3&_include=Task:focus&_sort=x", headers=ODENSE).json,
        world.http.get(f"/fhir/Task/{task['id']}/_history", headers=ODENSE).json,
        world.http.get("/fhir/Task?_lastUpdated=x", headers=ODENSE).json,
    ]
    for body in answers:
        if body["resourceType"] == "Bundle":
            assert independent_r4_check(body) == [], body["type"]
        else:
            assert [str(i) for i in fhirkit.validate(body) if i.severity == "error"] == [], body["resourceType"]
        model_class(body["resourceType"]).model_validate(body)


# --------------------------------------------------------------------------------------------
# read, vread, history
# --------------------------------------------------------------------------------------------


def test_read_with_etag_and_last_modified(world):
    task = plan("minimal-almen").task("offer-start")
    r = world.http.get(f"/fhir/Task/{task['id']}", headers=ODENSE)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Last-Modified"] == "Mon, 02 Mar 2026 09:00:00 GMT"
    body = r.json
    assert body["meta"] == {"versionId": "1", "lastUpdated": "2026-03-02T09:00:00.000Z"}
    assert {k: v for k, v in body.items() if k != "meta"} == task


@pytest.mark.parametrize("rtype", ["ServiceRequest", "CarePlan", "Patient", "Organization", "Condition", "Consent",
                                   "DocumentReference", "Provenance"])
def test_read_every_type_of_a_plan(world, rtype):
    resource = plan("minimal-almen").of_type(rtype)[0]
    r = world.http.get(f"/fhir/{rtype}/{resource['id']}", headers=ODENSE)
    assert r.status_code == 200 and r.json["id"] == resource["id"] and r.json["resourceType"] == rtype


def test_read_practitioners_and_communications(world):
    p = plan("full-specialiseret")
    for rtype in ("Practitioner", "PractitionerRole"):
        rid = p.of_type(rtype)[0]["id"]
        assert world.http.get(f"/fhir/{rtype}/{rid}", headers=AALBORG).status_code == 200
    letter = next(x for x in plans() if x.kind == "xdis91" and x.municipality == "0461")
    comm = letter.one("Communication")
    assert world.http.get(f"/fhir/Communication/{comm['id']}", headers=ODENSE).json["id"] == comm["id"]


def test_read_accepts_json_and_refuses_xml(world):
    rid = plan("minimal-almen").one("Patient")["id"]
    assert world.http.get(f"/fhir/Patient/{rid}", headers={**ODENSE, "Accept": "application/json"}).status_code == 200
    assert world.http.get(f"/fhir/Patient/{rid}", headers={**ODENSE, "Accept": "*/*"}).status_code == 200
    r = world.http.get(f"/fhir/Patient/{rid}", headers={**ODENSE, "Accept": "application/fhir+xml"})
    assert r.status_code == 406 and r.json["resourceType"] == "OperationOutcome"
    assert world.http.get(f"/fhir/Patient/{rid}?_format=xml", headers=ODENSE).status_code == 406
    assert world.http.get(f"/fhir/Patient/{rid}?_format=json", headers=ODENSE).status_code == 200


def test_conditional_read(world):
    rid = plan("minimal-almen").one("ServiceRequest")["id"]
    r = world.http.get(f"/fhir/ServiceRequest/{rid}", headers={**ODENSE, "If-None-Match": 'W/"1"'})
    assert r.status_code == 304 and r.headers["ETag"] == 'W/"1"' and not r.data
    assert world.http.get(f"/fhir/ServiceRequest/{rid}", headers={**ODENSE, "If-None-Match": "1"}).status_code == 304
    assert world.http.get(f"/fhir/ServiceRequest/{rid}", headers={**ODENSE, "If-None-Match": 'W/"7"'}).status_code == 200


def test_vread_and_history(world):
    task = plan("minimal-almen").task("visitate-level")
    world.clock.now = dt.datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    assert put_task(world, task, status="accepted").status_code == 200

    r = world.http.get(f"/fhir/Task/{task['id']}/_history/1", headers=ODENSE)
    assert r.status_code == 200 and r.json["status"] == "requested" and r.headers["ETag"] == 'W/"1"'
    r = world.http.get(f"/fhir/Task/{task['id']}/_history/2", headers=ODENSE)
    assert r.status_code == 200 and r.json["status"] == "accepted" and r.headers["ETag"] == 'W/"2"'
    assert r.headers["Last-Modified"] == "Tue, 03 Mar 2026 10:00:00 GMT"
    assert world.http.get(f"/fhir/Task/{task['id']}/_history/3", headers=ODENSE).status_code == 404
    assert world.http.get(f"/fhir/Task/{task['id']}/_history/x", headers=ODENSE).status_code == 404

    h = world.http.get(f"/fhir/Task/{task['id']}/_history", headers=ODENSE).json
    assert h["resourceType"] == "Bundle" and h["type"] == "history" and h["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in h["entry"]] == ["2", "1"]
    assert [e["response"]["status"] for e in h["entry"]] == ["200", "201"]
    assert h["entry"][0]["response"]["etag"] == 'W/"2"'
    assert h["entry"][0]["request"] == {"method": "PUT", "url": f"Task/{task['id']}"}
    assert h["entry"][0]["fullUrl"] == f"http://localhost/fhir/Task/{task['id']}"

    page = world.http.get(f"/fhir/Task/{task['id']}/_history?_count=1", headers=ODENSE).json
    assert len(page["entry"]) == 1 and page["total"] == 2
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    second = world.http.get(nxt, headers=ODENSE).json
    assert [e["resource"]["meta"]["versionId"] for e in second["entry"]] == ["1"]
    assert world.http.get(f"/fhir/Task/{task['id']}/_history?_count=x", headers=ODENSE).status_code == 400


def test_history_of_unknown_resource_is_404(world):
    assert world.http.get("/fhir/Task/6b0f7c52-3d55-5a8e-9a61-0c1f3c7e5a10/_history", headers=ODENSE).status_code == 404


# --------------------------------------------------------------------------------------------
# search
# --------------------------------------------------------------------------------------------


def odense_tasks() -> list[dict]:
    return [t for p in plans() if p.municipality == "0461" for t in p.of_type("Task")]


def search(world, query: str, headers: dict = ODENSE) -> dict:
    r = world.http.get(f"/fhir/{query}", headers=headers)
    assert r.status_code == 200, r.json
    b = r.json
    assert b["resourceType"] == "Bundle" and b["type"] == "searchset"
    return b


def test_search_all_tasks_sorted_and_counted(world):
    b = search(world, "Task")
    expected = odense_tasks()
    assert b["total"] == len(expected) == ODENSE_TASKS
    got = [e["resource"] for e in b["entry"]]
    assert sorted(t["id"] for t in got) == sorted(t["id"] for t in expected)
    keys = [(t["meta"]["lastUpdated"], t["id"]) for t in got]
    assert keys == sorted(keys)
    assert all(e["fullUrl"] == f"http://localhost/fhir/Task/{e['resource']['id']}" for e in b["entry"])
    assert [link["relation"] for link in b["link"]] == ["self", "first"]


def test_search_owner_by_reference_and_by_identifier(world):
    p = plan("minimal-almen")
    owner = p.task("offer-start")["owner"]["reference"]
    b = search(world, f"Task?owner={owner}")
    # one Organization per municipality: every Odense plan's Tasks are owned by the same one
    owned = sorted({t["id"] for x in plans() if x.municipality == "0461" for t in x.of_type("Task")
                    if t["owner"]["reference"] == owner})
    assert {t["id"] for t in p.of_type("Task")} <= set(owned)
    assert sorted(ids(b)) == owned and len(owned) == ODENSE_TASKS
    assert search(world, f"Task?owner={owner.split('/')[1]}")["total"] == ODENSE_TASKS
    by_code = search(world, f"Task?owner={MUNICIPALITY_CODES}|0461")
    assert by_code["total"] == ODENSE_TASKS
    assert search(world, f"Task?owner:identifier={MUNICIPALITY_CODES}|0461")["total"] == ODENSE_TASKS
    assert search(world, f"Task?owner={MUNICIPALITY_CODES}|0851")["total"] == 0
    assert search(world, f"Task?owner=Organization/{p.one('Patient')['id']}")["total"] == 0


def test_search_status_and_business_status(world):
    assert search(world, "Task?status=requested")["total"] == ODENSE_TASKS
    assert search(world, "Task?status=accepted")["total"] == 0
    assert search(world, "Task?status=accepted,requested")["total"] == ODENSE_TASKS
    on_time = search(world, f"Task?business-status={BUSINESS}|on-time")["total"]
    assert on_time == search(world, "Task?business-status=on-time")["total"]
    expected = sum(1 for t in odense_tasks() if business(t) == "on-time")
    assert on_time == expected
    overdue = sum(1 for t in odense_tasks() if business(t) == "overdue")
    assert search(world, "Task?business-status=overdue")["total"] == overdue
    assert search(world, "Task?business-status=http://other|on-time")["total"] == 0


def test_search_patient_subject_focus_code(world):
    p = plan("minimal-almen")
    patient = p.one("Patient")["id"]
    sr = p.one("ServiceRequest")["id"]
    want = sorted(t["id"] for t in p.of_type("Task"))
    assert sorted(ids(search(world, f"Task?patient=Patient/{patient}"))) == want
    assert sorted(ids(search(world, f"Task?patient={patient}"))) == want
    assert sorted(ids(search(world, f"Task?subject=Patient/{patient}"))) == want
    assert sorted(ids(search(world, f"Task?focus=ServiceRequest/{sr}"))) == want
    assert sorted(ids(search(world, f"Task?focus={sr}"))) == want
    assert search(world, f"Task?focus=CarePlan/{sr}")["total"] == 0
    assert ids(search(world, f"Task?patient={patient}&code={TASK_CODES}|offer-start")) == [p.task("offer-start")["id"]]
    assert search(world, "Task?code=offer-start")["total"] == 5
    assert search(world, f"Task?code={TASK_CODES}|offer-start,{TASK_CODES}|inform-citizen")["total"] == 10
    assert search(world, "Task?code=http://other|offer-start")["total"] == 0


def test_search_id(world):
    p = plan("minimal-almen")
    a, b = p.task("offer-start")["id"], p.task("inform-citizen")["id"]
    assert sorted(ids(search(world, f"Task?_id={a},{b}"))) == sorted([a, b])
    assert ids(search(world, f"Task?_id={a},{b}&_id={a}")) == [a]
    assert search(world, "Task?_id=unknown")["total"] == 0


def test_search_last_updated(world):
    t = world.times  # minimal-almen at 09:00, then one plan per hour
    first = sorted(x["id"] for x in plan("minimal-almen").of_type("Task"))
    assert sorted(ids(search(world, "Task?_lastUpdated=le2026-03-02T09:00:00Z"))) == first
    assert sorted(ids(search(world, "Task?_lastUpdated=lt2026-03-02T09:00:01Z"))) == first
    assert sorted(ids(search(world, "Task?_lastUpdated=eq2026-03-02T09:00:00Z"))) == first
    assert sorted(ids(search(world, "Task?_lastUpdated=2026-03-02T10:00:00%2B01:00"))) == first
    assert search(world, "Task?_lastUpdated=gt2026-03-02T09:00:00Z")["total"] == 13
    assert search(world, "Task?_lastUpdated=ge2026-03-02T09:00:00Z")["total"] == ODENSE_TASKS
    assert search(world, "Task?_lastUpdated=lt2026-03-02T09:00:00Z")["total"] == 0
    assert search(world, "Task?_lastUpdated=2026-03-02")["total"] == ODENSE_TASKS
    assert search(world, "Task?_lastUpdated=2026-03")["total"] == ODENSE_TASKS
    assert search(world, "Task?_lastUpdated=2026-03-03")["total"] == 0
    gen = sorted(n for n, p in ((p.name, p) for p in plans()) if p.municipality == "0461" and p.kind == "ggop"
                 and n != "minimal-almen")
    window = t[gen[0]]
    b = search(world, f"Task?_lastUpdated=ge{window.isoformat().replace('+00:00', 'Z')}"
                      f"&_lastUpdated=lt{(window + dt.timedelta(hours=1)).isoformat().replace('+00:00', 'Z')}")
    assert sorted(ids(b)) == sorted(x["id"] for x in plan(gen[0]).of_type("Task"))
    # without an offset: Danish local time (09:00Z is 10:00 in Copenhagen in March)
    assert sorted(ids(search(world, "Task?_lastUpdated=le2026-03-02T10:00:00"))) == first


def test_search_paging_with_count_two(world):
    bundles, got = search_all(world.http, "/fhir/Task?status=requested&_count=2", ODENSE)
    assert len(bundles) == 8
    # the total on the first page; a _cursor page leaves it out (not counted again)
    assert bundles[0]["total"] == ODENSE_TASKS and not any("total" in b for b in bundles[1:])
    assert [len(b["entry"]) for b in bundles] == [2] * 8
    assert len({t["id"] for t in got}) == ODENSE_TASKS
    keys = [(t["meta"]["lastUpdated"], t["id"]) for t in got]
    assert keys == sorted(keys)
    for b in bundles:
        links = {link["relation"]: link["url"] for link in b["link"]}
        for url in links.values():  # every link keeps the search
            q = dict(parse_qsl(urlsplit(url).query))
            assert q["status"] == "requested" and q["_count"] == "2"
    # keyset paging: next carries an opaque cursor, never an offset
    second = {link["relation"]: link["url"] for link in bundles[1]["link"]}
    assert "_cursor" in dict(parse_qsl(urlsplit(second["self"]).query))
    assert "_offset" not in dict(parse_qsl(urlsplit(second["next"]).query))
    first = world.http.get(second["first"], headers=ODENSE).json
    assert ids(first) == ids(bundles[0])
    last = {link["relation"] for link in bundles[-1]["link"]}
    assert "next" not in last


def test_total_on_every_page_when_asked_and_on_none_with_total_none(world):
    accurate, got = search_all(world.http, "/fhir/Task?status=requested&_count=3&_total=accurate", ODENSE)
    assert len(accurate) == 6 and all(b["total"] == ODENSE_TASKS for b in accurate)
    assert len({t["id"] for t in got}) == ODENSE_TASKS
    nxt = next(link["url"] for link in accurate[0]["link"] if link["relation"] == "next")
    assert dict(parse_qsl(urlsplit(nxt).query))["_total"] == "accurate"
    none, got = search_all(world.http, "/fhir/Task?_count=5&_total=none", ODENSE)
    assert not any("total" in b for b in none) and len({t["id"] for t in got}) == ODENSE_TASKS
    estimate = search(world, "Task?_total=estimate")
    assert estimate["total"] == ODENSE_TASKS
    # with content filters (checked in Python) the same
    coded, got = search_all(world.http, "/fhir/Task?code=offer-start&_count=2&_total=accurate", ODENSE)
    assert all(b["total"] == 5 for b in coded) and len(got) == 5
    coded, got = search_all(world.http, "/fhir/Task?code=offer-start&_count=2", ODENSE)
    assert coded[0]["total"] == 5 and not any("total" in b for b in coded[1:]) and len(got) == 5
    # _summary=count is exact whatever _total says
    assert search(world, "Task?_summary=count&_total=none")["total"] == ODENSE_TASKS
    bad = search(world, "Task?_total=sometimes")
    assert bad["total"] == ODENSE_TASKS and any(e["search"]["mode"] == "outcome" for e in bad["entry"])


def test_a_first_page_counts_a_bounded_number_of_matches(world, monkeypatch):
    """Beyond COUNT_LIMIT matches the first page leaves total out (it costs the same however
    many match); _total=accurate and _summary=count count them all; the walk is complete."""
    import adapter.store.search as search_module

    monkeypatch.setattr(search_module, "COUNT_LIMIT", ODENSE_TASKS - 1)
    bundles, got = search_all(world.http, "/fhir/Task?_count=5", ODENSE)
    assert not any("total" in b for b in bundles) and len({t["id"] for t in got}) == ODENSE_TASKS
    assert search(world, "Task?_count=5&_total=accurate")["total"] == ODENSE_TASKS
    assert search(world, "Task?_summary=count")["total"] == ODENSE_TASKS
    assert "total" not in search(world, "Task?_count=5&status=requested,accepted")
    owned = f"Task?owner={MUNICIPALITY_CODES}|0461&_count=5"  # a content filter, checked in Python
    assert "total" not in search(world, owned)
    assert search(world, owned + "&_total=accurate")["total"] == ODENSE_TASKS
    assert search(world, "Task?code=offer-start&_count=1")["total"] == 5  # under the limit
    assert "total" not in world.http.get("/fhir/Task/_history?_count=5", headers=ODENSE).json
    assert world.http.get("/fhir/Task/_history?_count=5&_total=accurate", headers=ODENSE).json["total"] \
        == ODENSE_TASKS
    monkeypatch.setattr(search_module, "COUNT_LIMIT", ODENSE_TASKS)
    assert search(world, "Task?_count=5")["total"] == ODENSE_TASKS  # exactly the limit: counted
    assert world.http.get("/fhir/Task/_history?_count=5", headers=ODENSE).json["total"] == ODENSE_TASKS


def test_a_page_serves_each_resource_as_stored(world):
    """Entries are the stored resources (written as stored, not decoded and re-encoded):
    the same JSON as a read, compact or indented with _pretty=true."""
    page = search(world, "Task?_count=3&_include=Task:focus")
    for entry in page["entry"]:
        if entry["search"]["mode"] in ("match", "include"):
            one = world.http.get("/fhir/" + "/".join(entry["fullUrl"].split("/")[-2:]), headers=ODENSE)
            assert one.json == entry["resource"]
    pretty = world.http.get("/fhir/Task?_count=3&_include=Task:focus&_pretty=true", headers=ODENSE)
    assert b'\n      "resource": {\n        "resourceType"' in pretty.data
    assert [e["resource"] for e in pretty.json["entry"]] == [e["resource"] for e in page["entry"]]
    feed = world.http.get("/fhir/Task/_history?_count=3&_pretty=true", headers=ODENSE)
    assert b'\n        "resourceType": "Task"' in feed.data


def test_search_paging_without_content_filters_uses_sql(world):
    bundles, got = search_all(world.http, "/fhir/Organization?_count=4", ODENSE)
    total = bundles[0]["total"]
    assert total == len(got) == len({o["id"] for o in got})
    # each Organization once, however many Odense messages name it
    assert total == len({o["id"] for p in plans() if p.municipality == "0461" for o in p.of_type("Organization")})


def test_search_count_zero_and_limits(world):
    b = search(world, "Task?_count=0")
    assert b["total"] == ODENSE_TASKS and not b.get("entry")
    assert len(search(world, "Task?_count=1000")["entry"]) == ODENSE_TASKS
    for bad in ("_count=x", "_count=-1", "_offset=-3", "_lastUpdated=yesterday", "_lastUpdated=2026-13-01",
                "_lastUpdated=2026-03-02T10:00%2B99:00", "_lastUpdated=9999-12-31", "_lastUpdated=0001-01-01T00:30%2B01:00",
                "_lastUpdated=0000", "_lastUpdated=2026-03-02T25:00Z",
                "owner=a/b/c", f"owner=Organization/x,{MUNICIPALITY_CODES}|0461"):
        r = world.http.get(f"/fhir/Task?{bad}", headers=ODENSE)
        assert r.status_code == 400, bad
        assert r.json["resourceType"] == "OperationOutcome" and r.json["issue"][0]["severity"] == "error"


def test_search_include_focus_and_patient(world):
    p = plan("minimal-almen")
    patient = p.one("Patient")["id"]
    b = search(world, f"Task?patient={patient}&_include=Task:focus")
    assert len(ids(b)) == 3
    assert [(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"] if e["search"]["mode"] == "include"] \
        == [("ServiceRequest", p.one("ServiceRequest")["id"])]
    assert b["total"] == 3  # included resources do not count
    b = search(world, f"Task?patient={patient}&_include=Task:focus&_include=Task:patient")
    assert sorted(e["resource"]["resourceType"] for e in b["entry"] if e["search"]["mode"] == "include") == \
        ["Patient", "ServiceRequest"]
    b = search(world, "Task?_count=2&_include=Task:focus")
    focus = {e["resource"]["focus"]["reference"] for e in b["entry"] if e["search"]["mode"] == "match"}
    assert {f"ServiceRequest/{i}" for i in ids(b, "include")} == focus
    r = world.http.get("/fhir/Task?_include=Task:performer", headers=ODENSE)
    assert r.status_code == 200 and r.json["entry"][-1]["search"]["mode"] == "outcome"
    assert r.json["entry"][-1]["resource"]["issue"][0]["expression"] == ["_include"]


def test_search_other_types(world):
    p = plan("minimal-almen")
    patient = p.one("Patient")
    for rtype in ("ServiceRequest", "CarePlan", "Condition"):
        want = sorted(r["id"] for r in p.of_type(rtype))
        assert sorted(ids(search(world, f"{rtype}?patient={patient['id']}"))) == want, rtype
        assert sorted(ids(search(world, f"{rtype}?subject=Patient/{patient['id']}"))) == want, rtype
    assert ids(search(world, f"Consent?patient={patient['id']}")) == [p.one("Consent")["id"]]
    assert sorted(ids(search(world, f"DocumentReference?patient={patient['id']}"))) == \
        [p.one("DocumentReference")["id"]]
    cpr = patient["identifier"][0]["value"]
    assert ids(search(world, f"Patient?identifier={CPR}|{cpr}")) == [patient["id"]]
    assert ids(search(world, f"Patient?identifier={cpr}")) == [patient["id"]]
    assert search(world, f"Patient?identifier=http://other|{cpr}")["total"] == 0
    orgs = search(world, f"Organization?identifier={MUNICIPALITY_CODES}|0461")
    want = sorted({o["id"] for x in plans() if x.municipality == "0461" for o in x.of_type("Organization")
                   if {"system": MUNICIPALITY_CODES, "value": "0461"} in o.get("identifier", [])})
    assert len(want) == 1 and ids(orgs) == want  # one Organization for the municipality
    letter = next(x for x in plans() if x.kind == "xdis91" and x.municipality == "0461")
    comm = letter.one("Communication")
    subject = comm["subject"]["reference"]
    assert ids(search(world, f"Communication?subject={subject}")) == [comm["id"]]
    assert ids(search(world, f"Communication?patient={subject.split('/')[1]}")) == [comm["id"]]
    assert search(world, "Communication")["total"] == 1
    for rtype in ("Practitioner", "PractitionerRole", "Provenance", "Encounter"):
        search(world, rtype)


def test_no_query_makes_a_server_error(tmp_path):
    """Any parameter names and values: 200 or 400, an OperationOutcome when refused, never 500."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    w = make_world(tmp_path)
    names = st.sampled_from(["_id", "_lastUpdated", "_count", "_offset", "_include", "owner", "owner:identifier",
                             "status", "business-status", "patient", "subject", "focus", "code", "identifier",
                             "_sort", "status:not", "_format"]) | st.text(max_size=8)
    values = st.sampled_from(["", ",", "|", "a|", "|b", "Patient/", "/x", "Task:focus", "ge", "ge2026", "99999999999",
                              "-1", "2026-02-30", "\\,", "%", "json"]) | st.text(max_size=20)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rtype=st.sampled_from(["Task", "Patient", "Organization", "ServiceRequest"]),
           params=st.lists(st.tuples(names, values), max_size=4))
    def check(rtype, params):
        r = w.http.get(f"/fhir/{rtype}", query_string=params, headers=ODENSE)
        assert r.status_code in (200, 400, 406), (params, r.status_code)
        assert r.json["resourceType"] == ("Bundle" if r.status_code == 200 else "OperationOutcome")

    check()


def test_unknown_parameters_lenient_and_strict(world):
    b = search(world, "Task?status=requested&_sort=status&_summary=text")
    assert b["total"] == ODENSE_TASKS
    outcome = b["entry"][-1]
    assert outcome["search"]["mode"] == "outcome"
    assert [i["expression"] for i in outcome["resource"]["issue"]] == [["_sort"], ["_summary"]]
    self_link = next(link["url"] for link in b["link"] if link["relation"] == "self")
    assert "_sort" not in self_link and "_summary" not in self_link  # self names what was applied
    r = world.http.get("/fhir/Task?status=requested&_sort=x", headers={**ODENSE, "Prefer": "handling=strict"})
    assert r.status_code == 400 and r.json["issue"][0]["expression"] == ["_sort"]
    r = world.http.get("/fhir/Task?status:not=requested", headers={**ODENSE, "Prefer": "handling=strict"})
    assert r.status_code == 400
    r = world.http.get("/fhir/Task?status=requested", headers={**ODENSE, "Prefer": "handling=strict"})
    assert r.status_code == 200 and all(e["search"]["mode"] == "match" for e in r.json["entry"])


# --------------------------------------------------------------------------------------------
# update
# --------------------------------------------------------------------------------------------


def read_task(world, rid: str, headers: dict = ODENSE) -> dict:
    r = world.http.get(f"/fhir/Task/{rid}", headers=headers)
    assert r.status_code == 200
    return r.json


def test_update_status_and_output(world):
    task = plan("minimal-almen").task("offer-start")
    world.clock.now = dt.datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    r = put_task(world, task, status="accepted", output=[output("offered-start", valueDate="2026-03-06")],
                 note=[{"text": "Tilbudt tid"}])
    assert r.status_code == 200, r.json
    assert r.headers["ETag"] == 'W/"2"'
    assert r.json["status"] == "accepted" and r.json["meta"]["versionId"] == "2"
    assert r.json["output"][0]["valueDate"] == "2026-03-06"
    assert r.json["meta"]["lastUpdated"] == "2026-03-03T10:00:00.000Z"
    stored = read_task(world, task["id"])
    assert stored == r.json
    with world.engine.connect() as conn:
        rows = conn.execute(select(resource_history.c.version_id, resource_history.c.changed_by)
                            .where(resource_history.c.id == task["id"]).order_by(resource_history.c.version_id)).all()
    assert [tuple(x) for x in rows] == [(1, "test"), (2, "odense")]


def test_update_with_application_json_and_prefer_minimal(world):
    task = plan("minimal-almen").task("inform-citizen")
    r = world.http.put(f"/fhir/Task/{task['id']}", data=__import__("json").dumps({**task, "status": "in-progress"}),
                       headers={**ODENSE, "If-Match": 'W/"1"', "Content-Type": "application/json",
                                "Prefer": "return=minimal"})
    assert r.status_code == 200 and not r.data and r.headers["ETag"] == 'W/"2"'


def test_update_needs_current_version(world):
    task = plan("minimal-almen").task("offer-start")
    r = put_task(world, task, version=None, status="accepted")
    assert r.status_code == 428 and r.json["issue"][0]["code"] == "required"
    assert put_task(world, task, version="1", status="accepted").status_code == 200
    r = put_task(world, task, version="1", status="in-progress")
    assert r.status_code == 412 and r.json["resourceType"] == "OperationOutcome"
    assert put_task(world, task, version="2", status="in-progress").status_code == 200
    r = world.http.put(f"/fhir/Task/{task['id']}", json={**task, "status": "completed"},
                       headers={**ODENSE, "If-Match": "garbage"})
    assert r.status_code == 400
    assert read_task(world, task["id"])["status"] == "in-progress"


def test_update_refuses_other_changes(world):
    task = plan("minimal-almen").task("offer-start")
    r = put_task(world, task, description="changed", priority="urgent")
    assert r.status_code == 422
    assert [i["expression"] for i in r.json["issue"]] == [["Task.description"], ["Task.priority"]]
    assert r.json["issue"][0]["severity"] == "error"
    without_input = {k: v for k, v in task.items() if k != "input"}
    r = world.http.put(f"/fhir/Task/{task['id']}", json=without_input, headers={**ODENSE, "If-Match": 'W/"1"'})
    assert r.status_code == 422 and r.json["issue"][0]["expression"] == ["Task.input"]
    assert read_task(world, task["id"])["meta"]["versionId"] == "1"


@pytest.mark.parametrize("changes, expression", [
    ({"status": "bogus"}, "Task.status"),
    ({"status": "draft"}, "Task.status"),
    ({"output": [output("unknown-type", valueString="x")]}, "Task.output[0].type"),
    ({"output": [output("offered-start", valueString="2026-03-06")]}, "Task.output[0].valueDate"),
    ({"output": [output("offered-start", valueDate="06-03-2026")]}, "Task.output[0].valueDate"),
    ({"output": [output("confirmed-level", valueCodeableConcept=level("nope"))]},
     "Task.output[0].valueCodeableConcept"),
    ({"output": [output("citizen-informed", valueDateTime="2026-03-04T10:00")]}, "Task.output[0].valueDateTime"),
    # extreme dates: beyond every deadline computation (they used to end in an overflow, a 500)
    ({"output": [output("citizen-informed", valueDateTime="9999-12-31T23:59:59-14:00")]},
     "Task.output[0].valueDateTime"),
    ({"output": [output("citizen-informed", valueDateTime="0001-01-01T00:00:00+14:00")]},
     "Task.output[0].valueDateTime"),
    ({"output": [output("offered-start", valueDate="9999-12-31")]}, "Task.output[0].valueDate"),
    ({"output": [output("offered-start", valueDate="0001-01-01")]}, "Task.output[0].valueDate"),
    ({"output": [output("offered-start", valueDate="2026-03-06"), output("offered-start", valueDate="2026-03-07")]},
     "Task.output[1].type"),
    ({"businessStatus": {"coding": [{"system": BUSINESS, "code": "bogus"}]}}, "Task.businessStatus"),
    ({"businessStatus": "on-time"}, "Task.businessStatus"),
    ({"note": [{"author": "x"}]}, "Task.note[0]"),
])
def test_update_refuses_malformed_allowed_elements(world, changes, expression):
    task = plan("minimal-almen").task("offer-start")
    r = put_task(world, task, **changes)
    assert r.status_code == 422, r.json
    assert r.json["issue"][0]["expression"] == [expression]


def test_update_terminal_status_stays(world):
    task = plan("minimal-almen").task("inform-citizen")
    assert put_task(world, task, status="completed").status_code == 200
    r = put_task(world, task, version="2", status="in-progress")
    assert r.status_code == 422 and "completed" in r.json["issue"][0]["details"]["text"]


def test_update_bad_requests(world):
    task = plan("minimal-almen").task("offer-start")
    url = f"/fhir/Task/{task['id']}"
    h = {**ODENSE, "If-Match": 'W/"1"'}
    assert world.http.put(url, data="{not json", headers={**h, "Content-Type": "application/fhir+json"}).status_code == 400
    assert world.http.put(url, data="<Task/>", headers={**h, "Content-Type": "application/xml"}).status_code == 415
    assert world.http.put(url, json={**task, "id": "other"}, headers=h).status_code == 400
    assert world.http.put(url, json={**task, "resourceType": "ServiceRequest"}, headers=h).status_code == 400
    assert world.http.put(url, json=[task], headers=h).status_code == 400
    deep = "[" * 100_000 + "]" * 100_000
    assert world.http.put(url, data=deep, headers={**h, "Content-Type": "application/fhir+json"}).status_code == 400
    unknown = "6b0f7c52-3d55-5a8e-9a61-0c1f3c7e5a10"
    assert world.http.put(f"/fhir/Task/{unknown}", json={**task, "id": unknown}, headers=h).status_code == 404
    sr = plan("minimal-almen").one("ServiceRequest")
    assert world.http.put(f"/fhir/ServiceRequest/{sr['id']}", json=sr, headers=h).status_code == 405


# --------------------------------------------------------------------------------------------
# re-evaluation
# --------------------------------------------------------------------------------------------


def plan_tasks(world, p: Plan) -> dict[str, dict]:
    sr = p.one("ServiceRequest")["id"]
    b = search(world, f"Task?focus=ServiceRequest/{sr}")
    return {code_of(e["resource"]): e["resource"] for e in b["entry"]}


def test_offered_start_reevaluates_the_other_tasks(world):
    p = plan("minimal-almen")
    before = plan_tasks(world, p)
    assert set(before) == {"inform-citizen", "offer-start", "visitate-level"}
    assert {business(t) for t in before.values()} == {"on-time"}
    world.clock.now = dt.datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # inform/visitate due 2026-03-05: due soon
    r = put_task(world, before["offer-start"], status="accepted",
                 output=[output("offered-start", valueDate="2026-03-06")])
    assert r.status_code == 200
    assert business(r.json) == "done-on-time"
    after = plan_tasks(world, p)
    assert business(after["inform-citizen"]) == "done-on-time"  # the citizen was told when the start was offered
    assert after["inform-citizen"]["meta"]["versionId"] == "2"
    assert business(after["visitate-level"]) == "due-soon"
    assert "change-level-window" not in after  # an offered start is not the course's first session
    world.clock.now = dt.datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    offer = read_task(world, before["offer-start"]["id"])
    r = put_task(world, offer, version=offer["meta"]["versionId"],
                 output=[*offer["output"], output("course-started", valueDate="2026-03-06")])
    assert r.status_code == 200, r.json
    after = plan_tasks(world, p)
    window = after["change-level-window"]  # the first session was held: the 14-day window is a Task now
    assert window["restriction"]["period"]["end"] == "2026-03-20T23:59:59+01:00"
    assert window["focus"] == before["offer-start"]["focus"] and window["for"] == before["offer-start"]["for"]
    assert window["owner"] == before["offer-start"]["owner"]
    assert window["meta"]["versionId"] == "1"
    for ref in (window["focus"], window["for"], window["owner"]):
        assert world.http.get(f"/fhir/{ref['reference']}", headers=ODENSE).status_code == 200
    with world.engine.connect() as conn:
        changed_by = conn.execute(select(resource_history.c.changed_by).where(
            resource_history.c.id == window["id"])).scalar_one()
    assert changed_by == "odense"


def test_late_offer_and_missed_deadline_create_the_free_choice_task(world):
    p = plan("minimal-almen")
    tasks = plan_tasks(world, p)
    world.clock.now = dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC)  # the 7 days (to 2026-03-08) have passed
    r = put_task(world, tasks["inform-citizen"], status="in-progress")
    assert r.status_code == 200
    assert business(r.json) == "overdue"
    after = plan_tasks(world, p)
    assert "inform-free-choice" in after
    free = after["inform-free-choice"]
    # due the day after the 7 days ended; first seen a day later, so born overdue, and it says why
    assert free["status"] == "requested" and business(free) == "overdue"
    assert free["restriction"]["period"]["end"] == "2026-03-09T23:59:59+01:00"
    assert free["input"][0]["valueString"] == "DL-D4-INFORM-FREE-CHOICE"
    assert [n["text"] for n in free["note"]] == [
        "Opgaven er oprettet 2026-03-10, efter sin frist: der var ikke tilbudt opstart, da fristen udløb 2026-03-08."]
    assert {c["code"] for i in free["input"] if i["type"]["coding"][0]["code"] == "flag"
            for c in i["valueCodeableConcept"]["coding"]} == {"created-late"}
    assert business(after["offer-start"]) == "overdue"
    # a second update does not make a second free-choice Task
    r = put_task(world, after["inform-citizen"], version="2", status="completed")
    assert r.status_code == 200 and business(r.json) == "done-late"
    again = search(world, f"Task?code={TASK_CODES}|inform-free-choice&focus={p.one('ServiceRequest')['id']}")
    assert again["total"] == 1 and again["entry"][0]["resource"]["meta"]["versionId"] == "1"


def test_start_condition_read_by_the_municipality_moves_the_deadlines(world):
    """Discharged 2026-03-01 with "når gipsen er fjernet": the start Task keeps the 7 days as
    provisional, flagged for manual reading, and no free-choice Task appears. Odense reads the
    condition as 2026-03-20 (output earliest-start): the start is due 03-27 from 03-20, and free
    choice watches those 7 days."""
    raw = ((GGOP / "minimal-almen.xml").read_bytes()
           .replace(b"00000000004711", b"00000000004791").replace(b"00000000004712", b"00000000004792")
           .replace(b"inden for 5 dage efter udskrivelse", "når gipsen er fjernet".encode()))
    r = world.http.post("/medcom", data=raw, headers={**HOSPITAL, "Content-Type": "application/xml"})
    assert r.status_code == 200
    srs = search(world, "ServiceRequest?_count=100")["entry"]
    sr = next(e["resource"] for e in srs if e["resource"]["identifier"][0]["value"] == "00000000004792")
    tasks = {code_of(e["resource"]): e["resource"] for e in search(world, f"Task?focus={sr['id']}")["entry"]}
    start = tasks["offer-start"]
    assert start["restriction"]["period"] == {"end": "2026-03-08T23:59:59+01:00"}
    assert [n["text"][:40] for n in start["note"]] == ["Planens betingelse for opstart skal læse"]
    world.clock.now = dt.datetime(2026, 3, 12, 9, 0, tzinfo=UTC)  # past the default 7 days
    r = put_task(world, start, status="in-progress",
                 output=[output("earliest-start", valueDate="2026-03-20")])
    assert r.status_code == 200, r.json
    read = r.json
    assert read["restriction"]["period"] == {"start": "2026-03-20", "end": "2026-03-27T23:59:59+01:00"}
    assert [n["text"][:37] for n in read["note"]] == ["Planen udskyder opstarten: tidligst 2"]
    assert business(read) == "on-time"
    tasks = {code_of(e["resource"]): e["resource"] for e in search(world, f"Task?focus={sr['id']}")["entry"]}
    assert "inform-free-choice" not in tasks  # the 7 days now run from 03-20
    world.clock.now = dt.datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    inform = tasks["inform-citizen"]
    assert put_task(world, inform, version=inform["meta"]["versionId"], status="in-progress").status_code == 200
    tasks = {code_of(e["resource"]): e["resource"] for e in search(world, f"Task?focus={sr['id']}")["entry"]}
    assert tasks["inform-free-choice"]["restriction"]["period"]["end"] == "2026-03-28T23:59:59+01:00"


def test_client_business_status_is_kept(world):
    tasks = plan_tasks(world, plan("minimal-almen"))
    world.clock.now = dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    mine = {"coding": [{"system": BUSINESS, "code": "on-time"}], "text": "aftalt med borger"}
    r = put_task(world, tasks["visitate-level"], businessStatus=mine)
    assert r.status_code == 200 and r.json["businessStatus"] == mine


def test_confirmed_level_confirms_the_service_request(world):
    p = plan("minimal-almen")
    tasks = plan_tasks(world, p)
    sr_id = p.one("ServiceRequest")["id"]
    # the proposal is not a decision: the ServiceRequest has no level until it is confirmed
    assert len(world.http.get(f"/fhir/ServiceRequest/{sr_id}", headers=ODENSE).json["category"]) == 1
    world.clock.now = dt.datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    r = put_task(world, tasks["visitate-level"], status="completed",
                 output=[output("confirmed-level", valueCodeableConcept=level(AVANCERET))])
    assert r.status_code == 200 and business(r.json) == "done-on-time"
    sr = world.http.get(f"/fhir/ServiceRequest/{sr_id}", headers=ODENSE).json
    assert sr["meta"]["versionId"] == "2"
    category = sr["category"][1]
    assert category["extension"][0]["valueCoding"]["code"] == "confirmed"
    assert category["coding"] == [{"system": KL, "code": AVANCERET, "display": "avanceret"}]
    assert sr["category"][0] == p.one("ServiceRequest")["category"][0]


def test_level_change_after_the_window_is_flagged(world):
    p = plan("minimal-almen")
    tasks = plan_tasks(world, p)
    world.clock.now = dt.datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    r = put_task(world, tasks["visitate-level"], output=[output("confirmed-level", valueCodeableConcept=level(BASAL))])
    assert r.status_code == 200
    world.clock.now = dt.datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    assert put_task(world, tasks["offer-start"], output=[output("offered-start", valueDate="2026-03-06"),
                                                          output("course-started", valueDate="2026-03-06")]) \
        .status_code == 200
    # within the window (ends 2026-03-20): a change is not flagged
    world.clock.now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    visit = read_task(world, tasks["visitate-level"]["id"])
    r = put_task(world, visit, version=visit["meta"]["versionId"],
                 output=[output("confirmed-level", valueCodeableConcept=level(AVANCERET))])
    assert r.status_code == 200 and "note" not in r.json
    # after the window: flagged with a note by the adapter
    world.clock.now = dt.datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
    visit = read_task(world, tasks["visitate-level"]["id"])
    r = put_task(world, visit, version=visit["meta"]["versionId"],
                 output=[output("confirmed-level", valueCodeableConcept=level(BASAL))])
    assert r.status_code == 200
    notes = r.json["note"]
    assert len(notes) == 1 and notes[0]["authorString"] == "ggop-adapter"
    assert "efter ændringsvinduet" in notes[0]["text"] and "2026-03-20" in notes[0]["text"]
    sr = world.http.get(f"/fhir/ServiceRequest/{p.one('ServiceRequest')['id']}", headers=ODENSE).json
    assert sr["category"][1]["coding"][0]["code"] == BASAL
    # the flag survives a later update that leaves it out
    visit = read_task(world, tasks["visitate-level"]["id"])
    r = put_task(world, visit, version=visit["meta"]["versionId"], note=[], status="in-progress")
    assert r.status_code == 200 and [n["authorString"] for n in r.json["note"]] == ["ggop-adapter"]


def test_concurrent_updates_of_one_plan(world):
    """Updates of sibling Tasks at once: each is applied or told its version is stale (the
    re-evaluation of another update changed it); versions stay consecutive, never a 500."""
    import threading

    tasks = list(plan_tasks(world, plan("minimal-almen")).values())
    world.clock.now = dt.datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    results: list[int] = []
    start = threading.Barrier(6)

    def update(task: dict, status: str) -> None:
        http = world.app.test_client()
        start.wait()
        r = http.put(f"/fhir/Task/{task['id']}", json={**task, "status": status},
                     headers={**ODENSE, "If-Match": 'W/"1"'})
        results.append(r.status_code)

    threads = [threading.Thread(target=update, args=(t, s)) for t in tasks for s in ("accepted", "in-progress")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 6 and set(results) <= {200, 412} and 200 in results, results
    with world.engine.connect() as conn:
        for task in tasks:
            versions = conn.execute(select(resource_history.c.version_id).where(
                resource_history.c.id == task["id"]).order_by(resource_history.c.version_id)).scalars().all()
            assert versions == list(range(1, len(versions) + 1))


def test_update_without_stored_message_skips_reevaluation(tmp_path):
    """A Task whose plan has no raw message row (stored without message_id) is still updated."""
    from adapter.api.app import create_app
    from adapter.runtime import load_runtime

    url = f"sqlite:///{tmp_path}/a.db"
    engine = open_store(url)
    p = plan("minimal-almen")
    with engine.begin() as conn:
        save_bundle(conn, p.bundle, now=T0, municipality="0461", message_id=None, changed_by="test")
    settings = Settings(id_key=TEST_ID_KEY, database_url=url, clients_file=str(write_clients(tmp_path / "c.yaml")))
    app = create_app(load_runtime(settings, engine=engine), Clock(dt.datetime(2026, 3, 20, tzinfo=UTC)))
    w = World(app, app.test_client(), engine, Clock(T0))
    r = put_task(w, p.task("offer-start"), status="accepted")
    assert r.status_code == 200
    assert business(read_task(w, p.task("inform-citizen")["id"])) == "on-time"


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/fhir/Observation", 404),
    ("GET", "/fhir/Observation/1", 404),
    ("GET", "/fhir/Task/1/_history/1/x", 404),
    ("GET", "/fhir/Task/1/$everything", 404),
    ("GET", "/fhir", 405),
    ("POST", "/fhir/Task", 405),
    ("DELETE", "/fhir/Task/6b0f7c52-3d55-5a8e-9a61-0c1f3c7e5a10", 405),
    ("PATCH", "/fhir/Task/6b0f7c52-3d55-5a8e-9a61-0c1f3c7e5a10", 405),
    ("PUT", "/fhir/Patient/6b0f7c52-3d55-5a8e-9a61-0c1f3c7e5a10", 405),
    ("POST", "/fhir/Task/6b0f7c52-3d55-5a8e-9a61-0c1f3c7e5a10/_history", 405),
    ("GET", "/fhir/Task/6b0f7c52-3d55-5a8e-9a61-0c1f3c7e5a10", 404),
])
def test_errors_are_operation_outcomes(world, method, path, status):
    r = world.http.open(path, method=method, headers=ODENSE)
    assert r.status_code == status
    assert r.headers["Content-Type"].startswith("application/fhir+json")
    assert r.json["resourceType"] == "OperationOutcome"
    assert r.json["issue"][0]["severity"] == "error"


def test_internal_error_is_500_without_traceback(world, monkeypatch):
    import adapter.api.fhir_rest as fhir

    def broken(*_a, **_k):
        raise RuntimeError("secret detail 0103450017")

    monkeypatch.setattr(fhir, "search", broken)
    r = world.http.get("/fhir/Task", headers=ODENSE)
    assert r.status_code == 500 and r.json["resourceType"] == "OperationOutcome"
    assert b"Traceback" not in r.data and b"0103450017" not in r.data and b"secret" not in r.data


def test_too_large_update_is_413(world):
    world.app.config["MAX_CONTENT_LENGTH"] = 1000
    task = plan("minimal-almen").task("offer-start")
    r = put_task(world, task, note=[{"text": "x" * 2000}])
    assert r.status_code == 413 and r.json["resourceType"] == "OperationOutcome"


# --------------------------------------------------------------------------------------------
# Sync: exact _lastUpdated, keyset paging under concurrent updates
# --------------------------------------------------------------------------------------------


def test_the_served_last_updated_is_exact_for_eq_and_gt(world):
    world.clock.now = dt.datetime(2026, 3, 3, 8, 0, 0, 123456, tzinfo=UTC)  # microseconds in the clock
    task = odense_tasks()[0]
    assert put_task(world, task, status="accepted").status_code == 200
    served = read_task(world, task["id"])["meta"]["lastUpdated"]
    assert served == "2026-03-03T08:00:00.123Z"
    assert ids(search(world, f"Task?_id={task['id']}&_lastUpdated=eq{served}")) == [task["id"]]
    assert ids(search(world, f"Task?_id={task['id']}&_lastUpdated=gt{served}")) == []
    assert ids(search(world, f"Task?_id={task['id']}&_lastUpdated=ge{served}")) == [task["id"]]


def test_a_walk_sees_every_task_while_tasks_are_updated_under_it(world):
    """Offset paging skipped a Task whenever one was updated mid-walk; the cursor cannot."""
    everyone = {t["id"] for t in odense_tasks()}
    seen: set[str] = set()
    url = "/fhir/Task?_count=2"
    minute = 0
    while url:
        page = world.http.get(url, headers=ODENSE).json
        seen |= set(ids(page))
        unseen = sorted(everyone - seen)
        if unseen:  # another process updates a Task the walk has not reached yet
            minute += 1
            world.clock.now = dt.datetime(2026, 3, 3, 9, minute, tzinfo=UTC)
            current = read_task(world, unseen[-1])
            assert put_task(world, current, version=current["meta"]["versionId"],
                            note=[{"text": f"ændret {minute}"}]).status_code == 200
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert everyone <= seen


@pytest.mark.parametrize("sort", ["_lastUpdated", "-_lastUpdated", "_id", "-_id"])
def test_sorting_and_its_pages(world, sort):
    _bundles, got = search_all(world.http, f"/fhir/Task?_count=4&_sort={sort}", ODENSE)
    key = (lambda t: (t["meta"]["lastUpdated"], t["id"])) if "lastUpdated" in sort else (lambda t: t["id"])
    assert [key(t) for t in got] == sorted((key(t) for t in got), reverse=sort.startswith("-"))
    assert len(got) == len({t["id"] for t in got}) == ODENSE_TASKS


def test_a_forged_cursor_is_a_400(world):
    for token in ("not-base64!", "W10", "WyJfaWQiLCIiLCIuLi8uLiJd"):
        r = world.http.get(f"/fhir/Task?_cursor={token}", headers=ODENSE)
        assert r.status_code == 400 and r.json["issue"][0]["expression"] == ["_cursor"]


def test_the_history_feed_has_every_change_since_a_time_once_in_order(world):
    """GET [type]/_history?_since: the sync feed. A change after the walk started shows up once
    at its end; every version the municipality may see, nothing of another municipality."""
    r = world.http.get("/fhir/Task/_history?_count=4", headers=ODENSE)
    assert r.status_code == 200 and r.json["type"] == "history"
    assert r.json["total"] == ODENSE_TASKS  # one version per Task so far
    world.clock.now = dt.datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    task = odense_tasks()[0]
    assert put_task(world, task, status="accepted").status_code == 200
    feed, url = [], "/fhir/Task/_history?_count=4"
    while url:
        page = world.http.get(url, headers=ODENSE).json
        feed += [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in page["entry"]]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert len(feed) == len(set(feed)) >= 16 and feed[-1][0] == task["id"]
    pages, url = [], "/fhir/Task/_history?_count=4"
    while url:
        pages.append(world.http.get(url, headers=ODENSE).json)
        url = next((link["url"] for link in pages[-1]["link"] if link["relation"] == "next"), None)
    assert pages[0]["total"] == len(feed) and not any("total" in p for p in pages[1:])  # counted once
    accurate = world.http.get("/fhir/Task/_history?_count=4&_total=accurate", headers=ODENSE).json
    following = next(link["url"] for link in accurate["link"] if link["relation"] == "next")
    assert world.http.get(following, headers=ODENSE).json["total"] == len(feed)
    assert "total" not in world.http.get("/fhir/Task/_history?_count=4&_total=none", headers=ODENSE).json
    since = world.http.get("/fhir/Task/_history?_since=2026-03-03T10:00:00Z", headers=ODENSE).json
    assert [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in since["entry"]] == [(task["id"], "2")]
    assert world.http.get("/fhir/Task/_history?_since=2026-03-03T10:00:00Z", headers=AALBORG).json["total"] == 0
    everything = world.http.get("/fhir/_history?_since=2026-03-03T10:00:00Z", headers=ODENSE).json
    assert {e["resource"]["resourceType"] for e in everything["entry"]} >= {"Task"}
    assert world.http.post("/fhir/Task/_history", headers=ODENSE).status_code == 405


@pytest.mark.parametrize("method, path, allow", [
    ("POST", "/fhir/Task/_history", "GET, HEAD"),
    ("DELETE", "/fhir/Task/abc", "GET, HEAD, PUT"),
    ("PUT", "/fhir/Patient/abc", "GET, HEAD"),
    ("DELETE", "/fhir/Task", "GET, HEAD"),
    ("POST", "/fhir/metadata", "GET, HEAD"),
])
def test_405_names_what_is_allowed(world, method, path, allow):
    r = world.http.open(path, method=method, headers=ODENSE)
    assert r.status_code == 405 and r.headers["Allow"] == allow


@pytest.mark.parametrize("accept, fmt, status", [
    ("application/fhir+json; fhirVersion=4.0", None, 200),
    ("application/json; charset=utf-8", None, 200),
    ("application/fhir+json;q=0.9, application/fhir+xml;q=1.0", None, 200),
    ("application/fhir+xml", "json", 200),  # _format overrides Accept
    ("application/fhir+xml", None, 406),
    ("text/html", "application/fhir+json", 200),
    ("*/*", None, 200),
    (None, "xml", 406),
])
def test_content_negotiation_follows_the_fhir_rules(world, accept, fmt, status):
    headers = {**ODENSE, **({"Accept": accept} if accept else {})}
    r = world.http.get("/fhir/Task?_count=1" + (f"&_format={fmt}" if fmt else ""), headers=headers)
    assert r.status_code == status, r.data[:200]
    if status == 200:
        assert r.headers["Content-Type"].startswith("application/fhir+json")


@pytest.mark.parametrize("fmt, status", [("json", 200), ("xml", 406), ("%00", 406)])
def test_a_post_search_with_format_in_its_body_is_answered_as_its_get_would_be(world, fmt, status):
    """The body's parameters are the search's (its self link carries them): the same _format
    in the query string or in the form-encoded body gets the same answer."""
    form = {**ODENSE, "Content-Type": "application/x-www-form-urlencoded"}
    posted = world.http.post("/fhir/Task/_search", data=f"_count=1&_format={fmt}", headers=form)
    got = world.http.get(f"/fhir/Task?_count=1&_format={fmt}", headers=ODENSE)
    assert posted.status_code == got.status_code == status, (posted.data[:200], got.data[:200])


def test_absolute_urls_come_from_the_configured_root_never_from_a_clients_host(tmp_path):
    from tests.support.fhir_world import write_clients

    from adapter.api.app import create_app

    clients = str(write_clients(tmp_path / "clients.yaml"))

    def link_of(headers, environ=None, **settings):
        rt = runtime_for(None, database_url=f"sqlite:///{tmp_path}/a.db", clients_file=clients, **settings)
        r = create_app(rt).test_client().get("/fhir/Task?_count=1", headers={**ODENSE, **headers},
                                              environ_base=environ or {})
        return next(link["url"] for link in r.json["link"] if link["relation"] == "self")

    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    assert link_of(evil, public_base_url="https://ggop.kommune.dk/").startswith("https://ggop.kommune.dk/fhir/Task?")
    assert link_of(evil, bind_url="http://10.0.0.5:8080").startswith("http://10.0.0.5:8080/fhir/")
    proxy = {"REMOTE_ADDR": "10.0.0.9"}
    forwarded = {"X-Forwarded-Host": "ggop.kommune.dk", "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/api"}
    assert link_of(forwarded, proxy, trusted_proxies=("10.0.0.9",), bind_url="http://10.0.0.5:8080") \
        .startswith("https://ggop.kommune.dk/api/fhir/")
    assert link_of(forwarded, {"REMOTE_ADDR": "10.0.0.66"}, trusted_proxies=("10.0.0.9",),
                   bind_url="http://10.0.0.5:8080").startswith("http://10.0.0.5:8080/fhir/")  # not a trusted proxy
    bad = {"X-Forwarded-Host": "a b/c", "X-Forwarded-Proto": "javascript"}
    assert link_of(bad, proxy, trusted_proxies=("10.0.0.9",), bind_url="http://10.0.0.5:8080") \
        .startswith("http://10.0.0.5:8080/fhir/")


# --------------------------------------------------------------------------------------------
# Search surface: POST _search, _summary=count, _elements, _include, _revinclude
# --------------------------------------------------------------------------------------------


def test_post_search_takes_form_encoded_parameters(world):
    p = plan("minimal-almen")
    got = world.http.post("/fhir/Task/_search", data={"patient": p.one("Patient")["id"], "_count": "100"},
                          headers=ODENSE)
    assert got.status_code == 200 and sorted(ids(got.json)) == sorted(t["id"] for t in p.of_type("Task"))
    as_json = world.http.post("/fhir/Task/_search", json={"status": "requested"}, headers=ODENSE)
    assert as_json.status_code == 415
    assert world.http.get("/fhir/Task/_search", headers=ODENSE).status_code == 405


def test_summary_count_and_elements(world):
    counted = search(world, "Task?_summary=count")
    assert counted["total"] == ODENSE_TASKS and not counted.get("entry")
    slim = search(world, "Task?_elements=status,owner&_count=3")
    for e in slim["entry"]:
        res = e["resource"]
        assert set(res) <= {"resourceType", "id", "meta", "status", "owner"} and "status" in res
        assert any(tag.get("code") == "SUBSETTED" for tag in res["meta"]["tag"])


def test_a_task_reaches_its_care_plan_and_patient(world):
    p = plan("minimal-almen")
    task = p.task("offer-start")
    b = search(world, f"Task?_id={task['id']}&_include=Task:based-on&_include=Task:patient")
    assert sorted((r, i) for r, i in ((e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]
                                      if e["search"]["mode"] == "include")) == \
        sorted([("CarePlan", p.one("CarePlan")["id"]), ("Patient", p.one("Patient")["id"])])


def test_a_referral_with_its_tasks_and_care_plan(world):
    p = plan("minimal-almen")
    sr = p.one("ServiceRequest")
    b = search(world, f"ServiceRequest?_id={sr['id']}&_revinclude=Task:focus&_revinclude=CarePlan:activity-reference")
    included = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"] if e["search"]["mode"] == "include"}
    assert included == {("Task", t["id"]) for t in p.of_type("Task")} | {("CarePlan", p.one("CarePlan")["id"])}
    foreign = plan("full-specialiseret").one("ServiceRequest")  # Aalborg's: nothing of it reaches Odense
    assert search(world, f"ServiceRequest?_id={foreign['id']}&_revinclude=Task:focus")["total"] == 0


def test_the_capability_statement_lists_history_revincludes_and_the_sync_feed(world):
    rest = world.http.get("/fhir/metadata").json["rest"][0]
    assert rest["interaction"] == [{"code": "history-system"}]
    task = next(r for r in rest["resource"] if r["type"] == "Task")
    assert {"code": "history-type"} in task["interaction"] and "Task:based-on" in task["searchInclude"]
    sr = next(r for r in rest["resource"] if r["type"] == "ServiceRequest")
    assert set(sr["searchRevInclude"]) == {"Task:focus", "CarePlan:activity-reference"}
    for res in rest["resource"]:
        for rev in res.get("searchRevInclude", []):
            r = world.http.get(f"/fhir/{res['type']}", query_string={"_revinclude": rev}, headers=OPERATOR)
            assert r.status_code == 200 and all(e["search"]["mode"] != "outcome" for e in r.json.get("entry", []))
