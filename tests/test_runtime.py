"""One runtime for every entry point: the CLI, the HTTP API, the inbox (function and command)
and the timed re-evaluation convert and evaluate the same message to the same result under
the same municipal rule overrides (``ADAPTER_RULE_OVERRIDES``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.support import TEST_ID_KEY

from adapter.api.app import create_app
from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.routing.outbox import payload_of
from adapter.runtime import load_runtime
from adapter.service.inbox import process_inbox
from adapter.store.engine import open_store
from adapter.store.schema import outbox, resources
from conftest import DATA, REPO

OVERRIDE = DATA / "rules" / "municipality-0840-rebild.yaml"
LOCAL_RULE = "DL-REBILD-CONTACT-AFTER-RECEIPT"
RECEIVED = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def plan_for_rebild() -> bytes:
    """A plan addressed to Rebild (0840), the municipality the override file names."""
    raw = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
    out = raw.replace(b"<mm100:Identifier>461</mm100:Identifier>", b"<mm100:Identifier>840</mm100:Identifier>")
    assert out != raw
    return out


def rule_ids(bundle: dict) -> set[str]:
    out = set()
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Task":
            out |= {i.get("valueString") for i in r.get("input", []) if i["type"]["coding"][0]["code"] == "rule-id"}
    return out


def cli(*args: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adapter", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def stored_payload(url: str) -> dict:
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(outbox).order_by(outbox.c.id)).first()
            assert row is not None
            payload = payload_of(conn, row)
    finally:
        engine.dispose()
    assert payload is not None
    return payload


def test_every_entry_point_converts_to_the_same_bundle_under_the_same_overrides(tmp_path, plan_for_rebild):
    message = tmp_path / "plan.xml"
    message.write_bytes(plan_for_rebild)
    env = {"ADAPTER_RULE_OVERRIDES": str(OVERRIDE)}

    # the CLI
    converted = cli("convert", "--received-at", RECEIVED.isoformat(), str(message), env=env)
    assert converted.returncode == 0, converted.stderr
    from_cli = json.loads(converted.stdout)
    assert LOCAL_RULE in rule_ids(from_cli)
    national = cli("convert", "--received-at", RECEIVED.isoformat(), str(message), env={})
    assert LOCAL_RULE not in rule_ids(json.loads(national.stdout))

    # the HTTP API
    api_url = f"sqlite:///{tmp_path}/api.db"
    app = create_app(load_runtime(Settings(id_key=TEST_ID_KEY, database_url=api_url, rule_overrides=(str(OVERRIDE),), open_medcom=True)), lambda: RECEIVED)
    r = app.test_client().post("/medcom", data=plan_for_rebild, content_type="application/xml")
    assert r.status_code == 200, r.data
    assert stored_payload(api_url) == from_cli

    # the inbox, as a function (what serve --inbox runs) and as the command
    inbox_url = f"sqlite:///{tmp_path}/inbox.db"
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "plan.xml").write_bytes(plan_for_rebild)
    runtime = load_runtime(Settings(id_key=TEST_ID_KEY, database_url=inbox_url, rule_overrides=(str(OVERRIDE),)))
    assert process_inbox(tmp_path / "inbox", runtime, clock=lambda: RECEIVED) == {"accepted": 1}
    assert stored_payload(inbox_url) == from_cli

    command_url = f"sqlite:///{tmp_path}/command.db"
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / "plan.xml").write_bytes(plan_for_rebild)
    done = cli("inbox", str(tmp_path / "box"), "--once", env={**env, "ADAPTER_DATABASE_URL": command_url})
    assert done.returncode == 0, done.stderr
    payload = stored_payload(command_url)
    assert LOCAL_RULE in rule_ids(payload)
    # the command stamps its own receipt time; everything else is the same conversion
    assert {e["fullUrl"] for e in payload["entry"]} == {e["fullUrl"] for e in from_cli["entry"]}


def test_the_timed_re_evaluation_applies_the_same_overrides(tmp_path, plan_for_rebild):
    url = f"sqlite:///{tmp_path}/a.db"
    app = create_app(load_runtime(Settings(id_key=TEST_ID_KEY, database_url=url, rule_overrides=(str(OVERRIDE),), open_medcom=True)),
                     lambda: RECEIVED)
    assert app.test_client().post("/medcom", data=plan_for_rebild, content_type="application/xml").status_code == 200

    def local_task_status() -> str:
        engine = open_store(url)
        try:
            with engine.connect() as conn:
                tasks = [r.content for r in conn.execute(select(resources.c.content).where(resources.c.type == "Task"))]
        finally:
            engine.dispose()
        task = next(t for t in tasks if any(i.get("valueString") == LOCAL_RULE for i in t.get("input", [])))
        return task["businessStatus"]["coding"][0]["code"]

    assert local_task_status() == "on-time"
    # months later: the municipality's own deadline is overdue only if the sweep knows the rule
    swept = cli("reevaluate", env={"ADAPTER_DATABASE_URL": url, "ADAPTER_RULE_OVERRIDES": str(OVERRIDE)})
    assert swept.returncode == 0, swept.stderr
    assert local_task_status() == "overdue"


def test_a_broken_override_stops_every_entry_point_with_a_located_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text('municipality: "0840"\ndeadlines:\n  rules:\n    - {id: DL-X, offset: nonsense}\n', encoding="utf-8")
    env = {"ADAPTER_RULE_OVERRIDES": str(broken), "ADAPTER_DATABASE_URL": f"sqlite:///{tmp_path}/a.db"}
    for args in (["convert", str(DATA / "ggop" / "minimal-almen.xml")], ["reevaluate"],
                 ["inbox", str(tmp_path / "box"), "--once"], ["worker", "--once"]):
        r = cli(*args, env=env)
        assert r.returncode == 3, (args, r.stderr)
        assert "GGOP-E501" in r.stderr and "broken.yaml" in r.stderr and "Traceback" not in r.stderr, args
        assert "deadlines.rules[0]" in r.stderr, args  # the broken rule is located, not only the file


def test_an_override_applies_only_to_the_plans_of_the_municipality_it_names(tmp_path, plan_for_rebild):
    """Rebild's local deadline (an override with municipality 0840) must not reach Odense's plans."""
    from lxml import etree

    root = etree.fromstring(plan_for_rebild)
    receiver = next(el for el in root.iter() if isinstance(el.tag, str) and etree.QName(el).localname == "Receiver")
    ident = next(el for el in receiver if isinstance(el.tag, str) and etree.QName(el).localname == "Identifier")
    ident.text = "461"  # the same plan, received by Odense
    for_odense = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    runtime = load_runtime(Settings(id_key=TEST_ID_KEY, rule_overrides=(str(OVERRIDE),)))
    assert LOCAL_RULE in rule_ids(runtime.convert(plan_for_rebild, RECEIVED).bundle)
    assert LOCAL_RULE not in rule_ids(runtime.convert(for_odense, RECEIVED).bundle)
    assert runtime.rules_for("0840") is not runtime.rules_for("0461")
    assert runtime.rules_for("0461") is runtime.rules  # the national rules


def test_an_override_that_names_no_municipality_is_refused_unless_national(tmp_path, plan_for_rebild):
    text = OVERRIDE.read_text("utf-8")
    nameless = tmp_path / "nameless.yaml"
    nameless.write_text(text.replace('municipality: "0840"\n', ""), "utf-8")
    with pytest.raises(ConfigError) as err:
        load_runtime(Settings(id_key=TEST_ID_KEY, rule_overrides=(str(nameless),)))
    assert err.value.first.code == "GGOP-E501" and "nameless.yaml#municipality" in str(err.value)
    national = tmp_path / "national.yaml"
    national.write_text(text.replace('municipality: "0840"', "municipality: national"), "utf-8")
    runtime = load_runtime(Settings(id_key=TEST_ID_KEY, rule_overrides=(str(national),)))
    assert LOCAL_RULE in rule_ids(runtime.convert(plan_for_rebild, RECEIVED).bundle)
    done = cli("convert", "--received-at", RECEIVED.isoformat(), str(nameless), env={"ADAPTER_RULE_OVERRIDES": str(nameless)})
    assert done.returncode == 3 and "GGOP-E501" in done.stderr and "Traceback" not in done.stderr
