"""The operator console (/console) over a real store: sign-in, the message log and a message's
page, masking, a municipality tester's limits, the outbox with replay and cancel, the
dashboards, the audit trail, and `ggop-adapter explain --lineage`."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from tests.support.console import DATA, csrf_of, make_console, odense_and_aalborg, sign_in
from tests.support.fhir_endpoints import Reply, StubEndpoint
from tests.support.fhir_world import ODENSE, output, put_task

from adapter.routing.routes import RoutesFile
from adapter.routing.worker import Worker
from adapter.store.schema import audit, messages, outbox

REFUSED = DATA / "invalid" / "bad-receiver-gln-check-digit.xml"
MINIMAL = DATA / "ggop" / "minimal-almen.xml"
CPR = "0103450017"  # minimal-almen's CPR number


@pytest.fixture
def console(tmp_path):
    c = make_console(tmp_path)
    refused = c.push(REFUSED.read_bytes())
    assert refused.status_code == 422
    assert c.push(MINIMAL.read_bytes()).status_code == 200  # the corrected plan under the same ids
    odense, aalborg = odense_and_aalborg()
    for raw in odense + aalborg:
        assert c.push(raw).status_code == 200
    yield c
    c.runtime.engine.dispose()


def _signed_in(console, token):
    http = console.client()
    r = sign_in(http, token)
    assert r.status_code == 303, r.text
    return http


def _ids(console, **where):
    with console.runtime.engine.connect() as conn:
        q = select(messages.c.id, messages.c.municipality, messages.c.state, messages.c.letter_id).order_by(messages.c.id)
        return [r for r in conn.execute(q) if all(getattr(r, k) == v for k, v in where.items())]


def _audit(console, action):
    with console.runtime.engine.connect() as conn:
        return conn.execute(select(audit).where(audit.c.action == action).order_by(audit.c.id)).all()


# --------------------------------------------------------------------------------------------
# Sign-in
# --------------------------------------------------------------------------------------------


def test_pages_need_a_sign_in(console):
    r = console.client().get("/console/messages")
    assert r.status_code == 303 and r.headers["Location"].startswith("/console/login")


def test_sign_in_sets_a_secure_session_cookie(console):
    http = console.app.test_client()
    r = sign_in(http, "tok-drift", base="https://localhost")
    assert r.status_code == 303 and r.headers["Location"] == "/console/messages"
    cookie = next(c for c in r.headers.getlist("Set-Cookie") if c.startswith("ggop_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie and "Secure" in cookie
    assert "tok-drift" not in cookie
    plain = sign_in(console.client(), "tok-drift")
    assert "Secure" not in next(c for c in plain.headers.getlist("Set-Cookie") if c.startswith("ggop_console="))
    assert [a.client for a in _audit(console, "console-login") if a.outcome == "200"] == ["drift", "drift"]


@pytest.mark.parametrize("token", ["wrong", "tok-hospital", ""])
def test_sign_in_refused_for_unknown_tokens_and_hospitals(console, token):
    r = sign_in(console.client(), token)
    assert r.status_code == 401 and "GGOP-E701" in r.text and "Traceback" not in r.text
    assert all(a.client is None for a in _audit(console, "console-login"))


def test_the_login_form_needs_its_nonce(console):
    r = console.client().post("/console/login", data={"token": "tok-drift"})
    assert r.status_code == 401 and "GGOP-E702" in r.text


def test_a_forged_cookie_is_no_session(console):
    http = console.client()
    http.set_cookie("ggop_console", "eyJuIjoiZHJpZnQifQ.forged", path="/console")
    assert http.get("/console/messages").status_code == 303


def test_a_session_ends_when_its_token_is_no_longer_listed(tmp_path, console):
    from adapter.api.auth import token_hash

    http = _signed_in(console, "tok-drift")
    assert http.get("/console/messages").status_code == 200
    changed = tmp_path / "clients-changed.yaml"
    changed.write_text((tmp_path / "clients.yaml").read_text().replace(token_hash("tok-drift"),
                                                                       token_hash("a-new-operator-token")))
    restarted = make_console(tmp_path, clients_file=str(changed)).client()  # the same console secret
    restarted.set_cookie("ggop_console", http.get_cookie("ggop_console", path="/console").value, path="/console")
    assert restarted.get("/console/messages").status_code == 303


# --------------------------------------------------------------------------------------------
# The message log and a message
# --------------------------------------------------------------------------------------------


def test_log_lists_every_message_with_its_result(console):
    http = _signed_in(console, "tok-drift")
    page = http.get("/console/messages")
    assert page.status_code == 200
    for row in _ids(console):
        assert f'href="/console/messages/{row.id}"' in page.text
    assert "refused" in page.text and "GGOP-E309" in page.text and "XCTL02" in page.text and "XCTL03" in page.text


def test_search_by_letter_id_date_and_result(console):
    http = _signed_in(console, "tok-drift")
    target = _ids(console, state="accepted")[-1]
    found = http.get(f"/console/messages?letter={target.letter_id}")
    listed = set(re.findall(r'href="/console/messages/(\d+)"', found.text))
    assert listed == {str(target.id)}
    refused = set(re.findall(r'href="/console/messages/(\d+)"', http.get("/console/messages?result=refused").text))
    assert refused == {str(r.id) for r in _ids(console, state="refused")}
    day = console.clock.now.date().isoformat()
    assert len(set(re.findall(r'href="/console/messages/(\d+)"',
                              http.get(f"/console/messages?from={day}&to={day}").text))) == len(_ids(console))
    assert "/console/messages/" not in http.get("/console/messages?from=2020-01-01&to=2020-01-02").text.split("<main")[1]


@pytest.mark.parametrize("query", ["from=yesterday", "result=lost", "letter=<script>", "before=x", "type=pdf"])
def test_malformed_searches_are_located_400s(console, query):
    r = _signed_in(console, "tok-drift").get(f"/console/messages?{query}")
    assert r.status_code == 400 and "GGOP-E705" in r.text and "<script>" not in r.text


def test_refused_message_shows_its_located_issue_and_receipt(console):
    http = _signed_in(console, "tok-drift")
    refused = _ids(console, state="refused")[0]
    expect = json.loads(REFUSED.with_suffix(".expect.json").read_text())
    page = http.get(f"/console/messages/{refused.id}")
    assert page.status_code == 200
    row = re.search(r'<tr class="error" data-testid="issue">(.*?)</tr>', page.text, re.S).group(1)
    assert expect["code"] in row and expect["xpath"] in row and f'href="#L{expect["line"]}"' in row
    assert f'id="L{expect["line"]}" class="hit"' in page.text
    receipt = http.get(f"/console/messages/{refused.id}/receipt")
    assert receipt.status_code == 200 and b"<RefuseCode>ukendt_lokationsnummer</RefuseCode>" in receipt.data
    assert "attachment" in receipt.headers["Content-Disposition"]


def test_accepted_plan_shows_explanation_lineage_resources_and_where_it_went(console):
    http = _signed_in(console, "tok-drift")
    accepted = next(r for r in _ids(console, state="accepted") if r.letter_id == "00000000004712")
    page = http.get(f"/console/messages/{accepted.id}").text
    assert 'data-testid="proposed-level">basal<' in page and "DL-D1-INFORM-CITIZEN" in page
    assert "ServiceRequest.extension[0].valueDate" in page
    assert "/Emessage/RehabilitationPlan/CurrentHospitalContact/ExpectedEnd/Date" in page
    assert "municipality:0461" in page and "ServiceRequest/" in page
    with console.runtime.engine.connect() as conn:
        cid = conn.execute(select(audit.c.detail).where(audit.c.action == "correlate",
                                                        audit.c.target == f"message/{accepted.id}")).scalar()
    assert cid and f'data-testid="message-correlation">{cid}<' in page


def test_operator_sees_the_message_masked(console):
    http = _signed_in(console, "tok-drift")
    accepted = next(r for r in _ids(console, state="accepted") if r.letter_id == "00000000004712")
    page = http.get(f"/console/messages/{accepted.id}").text
    assert CPR not in page and "•••" in page and "Show JSON" not in page
    assert "5790001234560" in page  # the sender's location number stays readable


def test_municipality_tester_sees_its_own_messages_only(console):
    http = _signed_in(console, "tok-odense")
    own = _ids(console, municipality="0461")
    others = _ids(console, municipality="0851")
    assert own and others
    log = http.get("/console/messages").text
    assert {int(x) for x in re.findall(r'href="/console/messages/(\d+)"', log)} == {r.id for r in own}
    mine = next(r for r in own if r.letter_id == "00000000004712" and r.state == "accepted")
    page = http.get(f"/console/messages/{mine.id}").text
    assert CPR in page and "Show JSON" in page  # testers see their own citizens' data (console_unmasked_roles)
    for other in others:
        for path in (f"/console/messages/{other.id}", f"/console/messages/{other.id}/receipt"):
            r = http.get(path)
            assert r.status_code == 404 and "GGOP-E703" in r.text
    assert http.get("/console/dashboard?municipality=0851").status_code == 403


def test_unmasked_roles_are_a_setting(tmp_path):
    c = make_console(tmp_path, console_unmasked_roles=("operator",))
    c.push(MINIMAL.read_bytes())
    assert CPR in _signed_in(c, "tok-drift").get("/console/messages/1").text
    assert CPR not in _signed_in(c, "tok-odense").get("/console/messages/1").text


def test_unknown_console_paths_are_html_not_traces(console):
    http = _signed_in(console, "tok-drift")
    r = http.get("/console/nothing-here")
    assert r.status_code == 404 and "Traceback" not in r.text


# --------------------------------------------------------------------------------------------
# Outbox: replay and cancel
# --------------------------------------------------------------------------------------------


def _dead_letter(console, tmp_path):
    """Odense pushed to an endpoint that refuses: the real worker makes dead letters."""
    with StubEndpoint([Reply(400, {"resourceType": "OperationOutcome",
                                   "issue": [{"severity": "error", "code": "invalid"}]})] * 20) as stub:
        routes = tmp_path / "routing.yaml"
        routes.write_text(f'routes:\n  "municipality:0461": {{mode: push, base_url: "{stub.base_url}"}}\n')
        Worker(console.runtime.engine, RoutesFile(routes)).run(once=True)
    with console.runtime.engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.state == "dead").order_by(outbox.c.id)).all()


def test_replay_a_dead_letter_with_csrf_and_an_audit_row(console, tmp_path):
    dead = _dead_letter(console, tmp_path)
    assert dead and all(r.recipient == "municipality:0461" for r in dead)
    http = _signed_in(console, "tok-drift")
    page = http.get("/console/outbox")
    assert "municipality:0461" in page.text and "dead" in page.text
    token = csrf_of(page.text)
    forged = http.post("/console/outbox/replay", data={"row": str(dead[0].id)})
    assert forged.status_code == 403 and "GGOP-E702" in forged.text
    done = http.post("/console/outbox/replay", data={"row": str(dead[0].id), "csrf": token})
    assert done.status_code == 303
    with console.runtime.engine.connect() as conn:
        assert conn.execute(select(outbox.c.state).where(outbox.c.id == dead[0].id)).scalar() == "pending"
    rows = _audit(console, "console-outbox-replay")
    assert [(a.client, a.role, a.target, a.outcome) for a in rows] == [
        ("drift", "operator", f"outbox/{dead[0].id}", "replayed")]
    cancel = http.post("/console/outbox/cancel", data={"row": str(dead[0].id), "csrf": token})
    assert cancel.status_code == 303
    with console.runtime.engine.connect() as conn:
        state, reason = conn.execute(select(outbox.c.state, outbox.c.last_error).where(outbox.c.id == dead[0].id)).one()
    assert state == "cancelled" and "drift" in reason
    again = http.post("/console/outbox/cancel", data={"row": str(dead[0].id), "csrf": token})
    assert again.status_code == 409 and "GGOP-E706" in again.text


def test_testers_see_their_outbox_but_may_not_replay(console, tmp_path):
    dead = _dead_letter(console, tmp_path)
    http = _signed_in(console, "tok-odense")
    page = http.get("/console/outbox")
    assert page.status_code == 200 and "municipality:0461" in page.text and "municipality:0851" not in page.text
    r = http.post("/console/outbox/replay", data={"row": str(dead[0].id), "csrf": csrf_of(page.text)})
    assert r.status_code == 403 and "GGOP-E704" in r.text
    aalborg = _signed_in(console, "tok-aalborg").get("/console/outbox").text
    assert "municipality:0461" not in aalborg


# --------------------------------------------------------------------------------------------
# Dashboards
# --------------------------------------------------------------------------------------------


def test_dashboard_reads_levels_and_compliance(console):
    from adapter.console import dashboard as dash

    http = _signed_in(console, "tok-drift")
    national = http.get("/console/dashboard")
    assert national.status_code == 200 and "<svg" in national.text and "0461 Odense" in national.text
    with console.runtime.engine.connect() as conn:
        per = dash.compute(conn, console.runtime.tables, None)
    odense = per["0461"]
    assert odense.plans == _plans(console, "0461") and per[None].plans == _plans(console, None)
    assert sum(odense.levels.values()) >= 1
    # Odense offers a start on day 5 after discharge: compliance and waiting time move
    task = _task(console, "offer-start", "00000000004712")
    world = type("W", (), {"http": console.client()})
    r = put_task(world, task, version=task["meta"]["versionId"], headers=ODENSE, status="completed",
                 output=[output("offered-start", valueDate="2026-03-06")])
    assert r.status_code == 200, r.json
    with console.runtime.engine.connect() as conn:
        odense = dash.compute(conn, console.runtime.tables, "0461")[None]
    assert odense.offer.on_time == 1 and odense.waits == [5] and odense.median_wait == 5
    page = http.get("/console/dashboard?municipality=0461").text
    assert "median 5" in page


def _plans(console, municipality):
    q = select(messages.c.id).where(messages.c.kind == "ggop", messages.c.state == "accepted")
    if municipality:
        q = q.where(messages.c.municipality == municipality)
    with console.runtime.engine.connect() as conn:
        return len(conn.execute(q).all())


def _task(console, code, letter_id):
    from adapter.store.schema import resources

    with console.runtime.engine.connect() as conn:
        message_id = conn.execute(select(messages.c.id).where(messages.c.letter_id == letter_id,
                                                              messages.c.state == "accepted")).scalar()
        for content in conn.execute(select(resources.c.content).where(resources.c.type == "Task",
                                                                     resources.c.message_id == message_id)).scalars():
            if content["code"]["coding"][0]["code"] == code:
                return content
    raise LookupError(code)


def test_percentiles():
    from adapter.console.dashboard import percentile

    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2 and percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 11)), 90) == 9 and percentile([7], 90) == 7


def test_every_console_action_is_audited(console, tmp_path):
    http = _signed_in(console, "tok-drift")
    http.get("/console/messages?result=refused")
    http.get("/console/messages/1")
    http.get("/console/dashboard")
    actions = {(a.action, a.client) for a in _audit(console, "console-log") + _audit(console, "console-message")
               + _audit(console, "console-dashboard")}
    assert actions == {("console-log", "drift"), ("console-message", "drift"), ("console-dashboard", "drift")}
    logged = _audit(console, "console-log")[0]
    assert logged.target == "console/messages?result"  # parameter names, never their values


# --------------------------------------------------------------------------------------------
# explain --lineage
# --------------------------------------------------------------------------------------------


def test_explain_lineage_prints_json_without_values():
    from adapter.cli import main

    result = CliRunner().invoke(main, ["explain", "--lineage", str(MINIMAL)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["kind"] == "ggop" and out["lineage"]
    by_element = {r["element"]: r for r in out["lineage"]}
    assert by_element["ServiceRequest.extension[0].valueDate"]["xpath"] == \
        "/Emessage/RehabilitationPlan/CurrentHospitalContact/ExpectedEnd/Date"
    tasks = [r for r in out["lineage"] if r["element"] == "Task.restriction.period.end"]
    assert tasks and all(r["rule"] and r["rule"].startswith("DL-") for r in tasks)
    assert CPR not in result.stdout


def test_explain_lineage_of_a_refused_file_is_a_located_line():
    from adapter.cli import main

    result = CliRunner().invoke(main, ["explain", "--lineage", str(REFUSED)])
    assert result.exit_code == 2 and "GGOP-E309" in result.output and "Traceback" not in result.output
