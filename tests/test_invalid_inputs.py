"""Invalid inputs, each named by its defect, refused with a stable code and location."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tests.support import TEST_ID_KEY

from adapter.cli import main
from adapter.errors import InputError
from adapter.pipeline import Limits, convert_bytes, receipt_for, validate_bytes
from conftest import DATA, invalid_inputs

KEY = TEST_ID_KEY.encode()

CASES = invalid_inputs()


def expected(path):
    return json.loads(path.with_suffix(".expect.json").read_text("utf-8"))


def test_enough_invalid_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_refused_with_code_and_location(path):
    exp = expected(path)
    result = validate_bytes(path.read_bytes())
    assert not result.accepted
    first = next(i for i in result.issues if i.is_error)
    assert first.code == exp["code"]
    assert first.location.line == exp["line"]
    assert first.location.xpath == exp["xpath"]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_convert_refuses_without_half_bundle(path):
    with pytest.raises(InputError) as info:
        convert_bytes(path.read_bytes(), id_key=KEY)
    assert any(i.code == expected(path)["code"] for i in info.value.issues)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_cli_prints_located_line_and_exits_2(path):
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    exp = expected(path)
    assert f"{path}:{exp['line'] or 0} {exp['xpath'] or '/'} {exp['code']} " in res.output


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_receipt_is_negative_or_unaddressable(path):
    result = receipt_for(path.read_bytes())
    assert not result.positive
    if result.xml is not None:
        assert b"NegativeReceipt" in result.xml and b"<RefuseCode>" in result.xml


def test_issue_texts_never_echo_patient_values():
    cpr_case = DATA / "invalid" / "bad-cpr-date.xml"
    result = validate_bytes(cpr_case.read_bytes())
    rendered = " ".join(i.render_line() for i in result.issues)
    assert "3102450017" not in rendered and "Testesen" not in rendered


def test_oversized_message_is_refused_before_parsing():
    raw = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
    big = raw.replace(b"</Emessage>", b"<!--" + b"x" * (10 * 1024 * 1024) + b"--></Emessage>")
    result = validate_bytes(big)
    assert [i.code for i in result.issues] == ["GGOP-E003"]
    assert result.issues[0].info.http_status == 413


def test_size_limit_is_configurable():
    raw = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
    assert validate_bytes(raw, limits=Limits(max_bytes=1000)).issues[0].code == "GGOP-E003"
    assert validate_bytes(raw, limits=Limits(max_bytes=len(raw))).accepted


def test_unreadable_file_is_a_located_error(tmp_path):
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "missing.xml")])
    assert res.exit_code == 2
    assert "GGOP-E009" in res.output and "Traceback" not in res.output
