"""The command line as a tester uses it."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from adapter.cli import main
from conftest import DATA, REPO

MINIMAL = DATA / "ggop" / "minimal-almen.xml"


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_convert_prints_a_transaction_bundle():
    res = run("convert", str(MINIMAL))
    assert res.exit_code == 0, res.output
    bundle = json.loads(res.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    assert all(e["request"]["method"] == "PUT" for e in bundle["entry"])


def test_convert_is_a_pure_function_of_the_file():
    assert run("convert", str(MINIMAL)).stdout == run("convert", str(MINIMAL)).stdout


def test_received_at_overrides_the_envelope_time():
    res = run("convert", str(MINIMAL), "--received-at", "2026-03-03T08:00:00+01:00")
    bundle = json.loads(res.stdout)
    sr = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    assert sr["authoredOn"] == "2026-03-03T08:00:00+01:00"
    default = json.loads(run("convert", str(MINIMAL)).stdout)
    sr0 = next(e["resource"] for e in default["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    assert sr0["authoredOn"] == "2026-03-02T09:15:00+01:00"  # envelope Sent


def test_bad_received_at_is_a_usage_error():
    res = run("convert", str(MINIMAL), "--received-at", "tomorrow")
    assert res.exit_code == 2 and "ISO" in res.output


def test_convert_many_files_to_a_folder(tmp_path):
    res = run("convert", str(DATA / "ggop"), "--out", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    written = sorted(p.stem for p in (tmp_path / "out").glob("*.json"))
    inputs = sorted(p.stem for p in (DATA / "ggop").glob("*.xml"))
    assert written == inputs
    assert "converted" in res.stderr


def test_convert_refuses_like_validate(tmp_path):
    bad = DATA / "invalid" / "missing-cpr.xml"
    res = run("convert", str(bad))
    assert res.exit_code == 2
    assert res.stdout == ""
    assert "GGOP-E303" in res.stderr


def test_several_inputs_need_out():
    res = run("convert", str(MINIMAL), str(MINIMAL))
    assert res.exit_code == 2 and "--out" in res.output


def test_validate_accepts_with_warnings_and_prints_lines():
    res = run("validate", str(MINIMAL))
    assert res.exit_code == 0
    assert f"{MINIMAL}:39 /Emessage/RehabilitationPlan/Patient/CivilRegistrationNumber GGOP-W330" in res.stdout


def test_validate_json_is_an_operation_outcome():
    res = run("validate", "--json", str(DATA / "invalid" / "unknown-plan-type.xml"))
    assert res.exit_code == 2
    oo = json.loads(res.stdout)
    assert oo["resourceType"] == "OperationOutcome"
    issue = oo["issue"][0]
    assert issue["severity"] == "error" and issue["details"]["coding"][0]["code"] == "GGOP-E306"
    assert issue["location"] == ["/Emessage/RehabilitationPlan/TypeOfRehabilitationPlan"]
    assert issue["extension"][0]["valueInteger"] == 46


def test_validate_json_for_several_files_prints_one_outcome_per_line():
    res = run("validate", "--json", str(MINIMAL), str(DATA / "invalid" / "missing-cpr.xml"))
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [oo["meta"]["source"] for oo in lines] == [str(MINIMAL), str(DATA / "invalid" / "missing-cpr.xml")]
    assert res.exit_code == 2


def test_receipt_positive_and_negative():
    pos = run("receipt", str(MINIMAL))
    assert pos.exit_code == 0 and b"<PositiveReceipt>" in pos.stdout_bytes
    assert b"<OriginalVersionCode>GGOP100</OriginalVersionCode>" in pos.stdout_bytes
    neg = run("receipt", str(DATA / "invalid" / "bad-receiver-gln-check-digit.xml"))
    assert neg.exit_code == 2 and b"<RefuseCode>ukendt_lokationsnummer</RefuseCode>" in neg.stdout_bytes
    assert run("receipt", str(MINIMAL)).stdout_bytes == pos.stdout_bytes


def test_receipt_for_unaddressable_input_says_why():
    res = run("receipt", str(DATA / "invalid" / "empty-file.xml"))
    assert res.exit_code == 2 and "no receipt can be addressed" in res.stderr


def test_generate_then_convert_everything(tmp_path):
    res = run("generate", "--count", "30", "--seed", "3", "--out", str(tmp_path / "gen"))
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "gen").glob("*.xml"))
    assert len(files) == 30
    conv = run("convert", str(tmp_path / "gen"), "--out", str(tmp_path / "out"))
    assert conv.exit_code == 0, conv.output
    assert len(list((tmp_path / "out").glob("*.json"))) == 30


def test_module_entry_point_and_no_traceback_on_garbage(tmp_path):
    garbage = tmp_path / "garbage.xml"
    garbage.write_bytes(b"\x00\xff\xfe<<<")
    proc = subprocess.run([sys.executable, "-m", "adapter", "validate", str(garbage)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "GGOP-E" in proc.stdout


def test_conformance_says_what_is_missing_and_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTER_FHIR_PACKAGES", str(tmp_path / "no-such-package"))
    res = run("conformance", str(MINIMAL))
    assert res.exit_code == 3
    assert "cannot run here" in res.stderr and "to fix:" in res.stderr
    assert "Traceback" not in res.output


def test_receipt_for_an_unreadable_message_uses_the_sent_time_its_bytes_show():
    broken = (DATA / "invalid" / "not-well-formed.xml")
    res = run("receipt", str(broken))
    assert res.exit_code == 2 and b"<NegativeReceipt>" in res.stdout_bytes
    assert b"<Date>2026-03-02</Date><Time>09:15</Time>" in res.stdout_bytes  # the envelope's Sent
    assert b"<RefuseCode>syntaksfejl</RefuseCode>" in res.stdout_bytes
