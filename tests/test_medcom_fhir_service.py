"""``POST /fhir/$process-message`` and the inbox with MedCom CareCommunication messages, on the
real app and a real store: Acknowledgements, MedCom's reliable-messaging cases, the format
asked for, refusals, the municipality's Communication and Task, and a letter pushed on as a
CareCommunication to another adapter."""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
import threading
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from tests.support import TEST_ID_KEY
from tests.support.fhir_world import AALBORG, HOSPITAL, ODENSE, OPERATOR, write_clients
from werkzeug.serving import make_server

from adapter.api.app import create_app
from adapter.config import Settings
from adapter.data import MAPPINGS_DIR
from adapter.medcom_fhir.wire import read_message
from adapter.routing.delivery import DELIVERED, deliver
from adapter.routing.routes import MEDCOM_MESSAGE, PUSH, Auth, Route
from adapter.runtime import load_runtime
from adapter.service.inbox import process_inbox
from adapter.store.schema import messages, outbox
from conftest import SHARED

FLOWS = SHARED / "medcom" / "carecommunication-conversion"
EXAMPLES = SHARED / "fhir-profiles" / "medcom.fhir.dk.carecommunication#5.0.4" / "package" / "example"
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
XML, JSON = "application/fhir+xml", "application/fhir+json"
PATH = "/fhir/$process-message"
# MedCom's package examples are addressed to these; the test deployment serves the first as Aalborg's
EXTRA_SOR = ("5790001348120,953741000016009,0851,MedCom testmodtager\n"
             "5790000209354,265161000016000,,MedCom testafsender\n")


def _needs(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"MedCom's files are not present at {path}")
    return path


@pytest.fixture
def service(tmp_path):
    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS_DIR, mappings)
    with open(mappings / "sor-directory.csv", "a", encoding="utf-8") as fh:
        fh.write(EXTRA_SOR)
    settings = Settings(id_key=TEST_ID_KEY, database_url=f"sqlite:///{tmp_path}/adapter.db",
                        clients_file=str(write_clients(tmp_path / "clients.yaml")), mappings_dir=str(mappings))
    runtime = load_runtime(settings)
    app = create_app(runtime, lambda: NOW)
    yield app, app.test_client(), runtime
    runtime.engine.dispose()


def post(client, body: bytes, content_type: str = XML, headers: dict | None = None):
    return client.post(PATH, data=body, headers={**HOSPITAL, "Content-Type": content_type, **(headers or {})})


def ack_of(resp) -> dict:
    return read_message(resp.data)[0]


def response_of(resp) -> dict:
    return ack_of(resp)["entry"][0]["resource"]["response"]


def flow3() -> bytes:
    return _needs(FLOWS / "Flow3-CareCommunication_Ex_to_OIOXML.xml").read_bytes()


def as_json(raw: bytes) -> bytes:
    return json.dumps(read_message(raw)[0], ensure_ascii=False).encode()


def changed(raw: bytes, change) -> bytes:
    bundle = copy.deepcopy(read_message(raw)[0])
    change(bundle)
    return json.dumps(bundle, ensure_ascii=False).encode()


def communication(bundle: dict) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Communication")


def count(runtime, state: str | None = None) -> int:
    q = select(func.count()).select_from(messages)
    if state:
        q = q.where(messages.c.state == state)
    with runtime.engine.connect() as conn:
        return conn.execute(q).scalar_one()


def test_a_medcom_example_is_stored_acknowledged_and_its_municipality_sees_it(service):
    _app, http, runtime = service
    raw = _needs(EXAMPLES / "Bundle-add5e7e2-0c0f-4a4a-bfff-f6f984fa7e3c.json").read_bytes()
    resp = post(http, raw, JSON)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith(JSON)
    ack = ack_of(resp)
    assert ack["meta"]["profile"] == [("http://medcomfhir.dk/ig/acknowledgement/StructureDefinition/"
                                       "medcom-messaging-acknowledgement")]
    assert response_of(resp) == {"identifier": "42cb9200-f421-4d08-8391-7d51a2503cb4", "code": "ok"}
    with runtime.engine.connect() as conn:
        row = conn.execute(select(messages)).one()
    assert (row.kind, row.state, bytes(row.raw)) == ("fdis91", "accepted", raw)  # stored as received
    found = http.get("/fhir/Communication", headers=AALBORG).get_json()
    assert found["total"] == 1
    assert found["entry"][0]["resource"]["category"][0]["coding"][0]["code"] == "examination-results"
    assert http.get("/fhir/Communication", headers=ODENSE).get_json()["total"] == 0


def test_the_requests_correlation_id_is_stored_with_the_message(service):
    from adapter.logs import CORRELATE, correlation_of
    from adapter.store.schema import audit

    _app, http, runtime = service
    resp = post(http, flow3(), headers={"X-Correlation-Id": "fhir-push-0001"})
    assert resp.status_code == 200 and resp.headers["X-Correlation-Id"] == "fhir-push-0001"
    message_id = int(resp.headers["X-Message-Id"])
    with runtime.engine.connect() as conn:
        assert correlation_of(conn, message_id) == "fhir-push-0001"
        assert conn.execute(select(func.count()).select_from(audit).where(
            audit.c.action == CORRELATE, audit.c.target == f"message/{message_id}")).scalar_one() == 1


def test_resends_follow_medcoms_reliable_messaging_rules(service):
    _app, http, runtime = service
    raw = flow3()
    first = post(http, raw)
    assert first.status_code == 200 and response_of(first)["code"] == "ok"
    assert first.headers["Content-Type"].startswith(XML)  # answered in the format it came in

    # both ids known, same message: the original answer, byte for byte
    again = post(http, raw)
    assert (again.status_code, again.data, again.headers["X-Message-State"]) == (200, first.data, "duplicate")
    # the same message as JSON: the same Acknowledgement, in JSON
    in_json = post(http, as_json(raw), JSON)
    assert in_json.headers["X-Message-State"] == "duplicate" and ack_of(in_json) == ack_of(first)
    # MessageHeader.id known, new Bundle.id, same content: a resend in a new envelope
    envelope = changed(raw, lambda b: b.update(id="6b9a5b0e-3f2d-4c1a-9a11-2f5b9c3e7d01",
                                               timestamp="2023-11-22T13:00:00+01:00"))
    resent = post(http, envelope, JSON, {"Accept": XML})
    assert (resent.status_code, resent.headers["X-Message-State"], resent.data) == (200, "duplicate", first.data)
    # ... and that envelope once more
    assert post(http, envelope, JSON, {"Accept": XML}).data == first.data
    # MessageHeader.id known, new Bundle.id, other content: refused
    other = changed(raw, lambda b: (b.update(id="7c1d2e3f-0000-4000-8000-000000000001"),
                                    communication(b)["payload"][0].update(contentString="Noget andet.")))
    refused = post(http, other, JSON)
    assert refused.status_code == 422 and response_of(refused)["code"] == "fatal-error"
    assert "GGOP-E611" in refused.get_data(as_text=True)
    assert post(http, other, JSON).data == refused.data  # the same refusal again
    # Bundle.id known, new MessageHeader.id: Bundle.ids are never reused
    reused = changed(raw, lambda b: b["entry"][0]["resource"].update(id="0f0e0d0c-0b0a-4909-8807-060504030201"))
    bundle_reused = post(http, reused, JSON)
    assert bundle_reused.status_code == 422 and "GGOP-E610" in bundle_reused.get_data(as_text=True)
    # processed once: one Communication, one accepted message
    assert http.get("/fhir/Communication", headers=ODENSE).get_json()["total"] == 1
    assert count(runtime, "accepted") == 1


def test_a_refused_message_may_be_sent_again_corrected(service):
    _app, http, _runtime = service
    broken = changed(flow3(), lambda b: communication(b).update(identifier=[{"value": "brev-17"}]))
    refused = post(http, broken, JSON)
    assert refused.status_code == 422 and "GGOP-E608" in refused.get_data(as_text=True)
    corrected = changed(flow3(), lambda b: b.update(id="1d6a942e-7e9e-42e4-8dbb-09a608b56c8d"))
    assert response_of(post(http, corrected, JSON))["code"] == "ok"


def test_accept_decides_the_format(service):
    _app, http, _runtime = service
    raw = flow3()
    as_asked = post(http, raw, XML, {"Accept": JSON})
    assert as_asked.headers["Content-Type"].startswith(JSON) and as_asked.data.startswith(b'{"resourceType"')
    in_xml = post(http, as_json(raw), JSON, {"Accept": "application/fhir+xml;q=0.9, application/json;q=0.5"})
    assert in_xml.headers["Content-Type"].startswith(XML) and ack_of(in_xml) == ack_of(as_asked)


def test_refusals_and_their_statuses(service):
    _app, http, _runtime = service
    raw = flow3()
    assert http.post(PATH, data=raw, headers={"Content-Type": XML}).status_code == 401
    assert http.post(PATH, data=raw, headers={**ODENSE, "Content-Type": XML}).status_code == 403
    assert post(http, raw, "text/plain").status_code == 415
    junk = post(http, b"<Emessage/>", XML)
    assert junk.status_code == 400 and read_message(junk.data)[0]["resourceType"] == "OperationOutcome"
    elsewhere = changed(raw, lambda b: next(e["resource"] for e in b["entry"] if e["resource"]["id"] ==
                                            "4eb364ac-95d5-4b59-a05b-c4d5ab8f695f").update(identifier=[
                                                {"system": "https://www.gs1.org/gln", "value": "5790000000005"},
                                                {"system": "urn:oid:1.2.208.176.1.1", "value": "111111000016001"}]))
    unknown = post(http, elsewhere, JSON)
    assert unknown.status_code == 422
    assert "MSG_Receiver_Identifier_UNKNOWN" in unknown.get_data(as_text=True)
    assert "2512489996" not in unknown.get_data(as_text=True)


REPLY = "\nVi beder om svar inden fredag."


def test_a_reply_request_gives_the_municipality_the_task_the_xdis91_letter_gives(service):
    _app, http, _runtime = service
    cc = changed(flow3(), lambda b: communication(b)["payload"][0].update(
        contentString=communication(b)["payload"][0]["contentString"] + REPLY))
    assert response_of(post(http, cc, JSON))["code"] == "ok"
    from_fhir = http.get("/fhir/Task", headers=ODENSE).get_json()["entry"]
    xdis91 = _needs(FLOWS / "Flow3-XDIS91_Ex_from_FHIR.xml").read_bytes().replace(
        b"Venlig hilsen", b"Vi beder om svar inden fredag. Venlig hilsen")
    resp = http.post("/medcom", data=xdis91, headers={**HOSPITAL, "Content-Type": "application/xml"})
    assert resp.status_code == 200, resp.data
    # MedCom's XDIS91 names the receiver by GLN only, so its Task is the operator's to see; the
    # CareCommunication's receiver is Odense's unit by the SOR directory
    every = http.get("/fhir/Task", headers=OPERATOR).get_json()["entry"]
    from_xdis91 = [e for e in every if e["resource"]["id"] not in {t["resource"]["id"] for t in from_fhir}]

    def shape(task: dict) -> tuple:
        return (task["code"]["coding"][0]["code"], task["status"], task["intent"], task["description"],
                [i["valueString"] for i in task["input"]])

    assert [shape(t["resource"]) for t in from_fhir] == [shape(t["resource"]) for t in from_xdis91]
    assert [t["resource"]["code"]["coding"][0]["code"] for t in from_fhir] == ["answer-letter"]


def test_the_inbox_answers_fhir_files_with_acknowledgements(service, tmp_path):
    _app, _http, runtime = service
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "cc.xml").write_bytes(flow3())
    (inbox / "example.json").write_bytes(
        _needs(EXAMPLES / "Bundle-0d5b3c18-fab6-4d93-9d88-c9c8abf1f18c.json").read_bytes())
    (inbox / "broken.json").write_bytes(b'{"resourceType": "Bundle", "type": "message"}')
    counts = process_inbox(inbox, runtime, clock=lambda: NOW)
    assert counts == {"accepted": 2, "refused": 1}
    xml_ack = read_message((inbox / "done" / "cc.acknowledgement.xml").read_bytes())[0]
    assert xml_ack["entry"][0]["resource"]["response"]["code"] == "ok"
    json_ack = json.loads((inbox / "done" / "example.acknowledgement.json").read_bytes())
    assert json_ack["entry"][0]["resource"]["response"]["code"] == "ok"
    assert (inbox / "failed" / "broken.outcome.json").is_file()


@pytest.fixture
def receiving_adapter(tmp_path):
    """A second adapter over HTTP on loopback: the receiving end of a push route."""
    settings = Settings(id_key=TEST_ID_KEY, database_url=f"sqlite:///{tmp_path}/receiver.db",
                        clients_file=str(write_clients(tmp_path / "receiver-clients.yaml")))
    runtime = load_runtime(settings)
    server = make_server("127.0.0.1", 0, create_app(runtime, lambda: NOW), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", runtime
    server.shutdown()
    thread.join()
    runtime.engine.dispose()


def test_a_letter_is_pushed_on_as_a_carecommunication(service, receiving_adapter):
    _app, http, runtime = service
    base, receiver = receiving_adapter
    letter = _needs(FLOWS / "Flow1-XDIS91_Ex_to_FHIR.xml").read_bytes()
    assert http.post("/medcom", data=letter, headers={**HOSPITAL, "Content-Type": "application/xml"}).status_code == 200
    with runtime.engine.connect() as conn:
        row = conn.execute(select(outbox)).first()
    route = Route("municipality:0461", PUSH, base_url=f"{base}/fhir", payload=MEDCOM_MESSAGE,
                  auth=Auth(bearer_token_env="RECEIVER_TOKEN"))
    env = {"RECEIVER_TOKEN": HOSPITAL["Authorization"].split()[1]}
    with requests.Session() as session:
        first = deliver(session, route, row.payload, message_id=row.message_id, recipient=row.recipient, now=NOW,
                        env=env)
        again = deliver(session, route, row.payload, message_id=row.message_id, recipient=row.recipient, now=NOW,
                        env=env)
    assert (first.kind, again.kind) == (DELIVERED, DELIVERED), (first.reason, again.reason)
    with receiver.engine.connect() as conn:
        states = sorted(conn.execute(select(messages.c.state)).scalars())
    assert states == ["accepted", "duplicate"]  # the redelivery is the same message again
    received = receiver.engine
    assert received is not None
    stored = requests.get(f"{base}/fhir/Communication", headers=OPERATOR, timeout=10).json()
    assert stored["total"] == 1
    assert stored["entry"][0]["resource"]["payload"][0]["contentString"].startswith("Denne meddelelse har høj")


def test_the_capability_statement_lists_process_message_and_the_event_codes(service):
    _app, http, _runtime = service
    cs = http.get("/fhir/metadata").get_json()
    assert cs["rest"][0]["operation"][0]["name"] == "process-message"
    assert cs["rest"][0]["operation"][0]["definition"].endswith("MessageHeader-process-message")
    messaging = cs["messaging"][0]
    assert "care-communication-message" in messaging["documentation"]
    assert "acknowledgement-message" in messaging["documentation"]
    assert {(m["mode"], m["definition"].rsplit("/", 1)[1]) for m in messaging["supportedMessage"]} == {
        ("receiver", "MedComCareCommunicationMessageDefinition|5.0"),
        ("sender", "MedComCareCommunicationMessageDefinition|5.0"),
        ("sender", "MedComAcknowledgementMessageDefinition|2.0")}


def test_a_store_that_fails_gets_a_transient_error_and_keeps_nothing(service, tmp_path):
    """The database file is gone under the running service (SQLite opens an empty one without
    the tables): nothing can be stored, and the sender is told to send again later."""
    _app, http, runtime = service
    runtime.engine.dispose()
    for f in tmp_path.glob("adapter.db*"):
        f.unlink()
    resp = post(http, flow3())
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert response_of(resp)["code"] == "transient-error"
    assert "MSG_Mailbox_Out_Of_Operation" in resp.get_data(as_text=True)
