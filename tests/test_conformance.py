"""Every emitted resource through HAPI FHIR's validator: goldens, MedCom's examples and 500
generated messages. 0 errors; every remaining finding is documented in docs/conformance.md."""

from __future__ import annotations

import re
import shutil

import pytest
from click.testing import CliRunner

from adapter.cli import main
from conftest import DATA, MEDCOM, REPO, runtime_for

pytestmark = pytest.mark.conformance

DOCUMENTED = set(re.findall(r"^\| `([^`]+)` \|", (REPO / "docs" / "conformance.md").read_text("utf-8"), re.M))


@pytest.fixture(scope="module")
def validator(tmp_path_factory):
    from adapter.conformance import HapiValidator, ValidatorUnavailable
    from adapter.conformance.report import own_package
    from adapter.conformance.validator import package_folders

    if shutil.which("java") is None:
        pytest.skip("Java is not installed: the conformance tests need a JDK 17+")
    try:
        packages = package_folders() + [own_package(tmp_path_factory.mktemp("pkg"))]
        v = HapiValidator(packages=packages)
        v.start()
    except ValidatorUnavailable as exc:
        pytest.skip(f"validator unavailable: {exc.reason}")
    yield v
    v.close()


def _medcom_files():
    if not MEDCOM.is_dir():
        return []
    return [MEDCOM / "examples-ggop" / "ggop-medcom-example.xml", MEDCOM / "examples-ggop" / "xdis91-from-ggop-fixed.xml",
            MEDCOM / "examples-oioxml" / "DIS91_1.xml", MEDCOM / "examples-oioxml" / "DIS91_2.xml",
            MEDCOM / "carecommunication-conversion" / "Flow1-XDIS91_Ex_to_FHIR.xml",
            MEDCOM / "carecommunication-conversion" / "Flow3-XDIS91_Ex_from_FHIR.xml"]


def _check(report):
    errors = [f"{f.source} {f.location}: {f.message}" for f in report.findings if f.severity in ("error", "fatal")]
    undocumented = sorted({f.message_id for f in report.findings} - DOCUMENTED)
    assert not report.refused
    assert errors == []
    assert undocumented == [], "findings not listed in docs/conformance.md"


def test_goldens_and_medcom_examples(validator):
    from adapter.conformance.report import run

    paths = [str(p) for p in sorted(DATA.glob("ggop/*.xml")) + sorted(DATA.glob("xdis91/*.xml"))]
    paths += [str(p) for p in _medcom_files()]
    report = run(paths, runtime_for(), validator=validator)
    assert len(report.sources) == len(paths) and sum(report.resources.values()) > 100
    _check(report)


def test_500_generated_messages(validator, tmp_path):
    from adapter.conformance.report import run
    from adapter.generate import generate_messages

    for m in generate_messages(500, seed=2026):
        (tmp_path / m.filename).write_bytes(m.xml)
    report = run([str(tmp_path)], runtime_for(), validator=validator)
    assert len(report.sources) == 500
    _check(report)


def test_the_validator_finds_a_broken_resource(validator):
    """The oracle must be able to fail: a Patient with a CPR of 9 digits."""
    import json

    bundle = json.loads((DATA / "ggop" / "minimal-almen.bundle.json").read_text("utf-8"))
    bundle["entry"][0]["resource"]["identifier"][0]["value"] = "010345001"
    issues = validator.validate(bundle)
    assert any(i["severity"] == "error" and "identifier" in (i.get("location") or "") for i in issues)


def test_cli_report_json_and_html(tmp_path):
    if shutil.which("java") is None:
        pytest.skip("Java is not installed")
    html = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["conformance", str(DATA / "ggop" / "minimal-almen.xml"),
                                    str(DATA / "invalid" / "missing-cpr.xml"), "--json", "--html", str(html)])
    assert res.exit_code == 2  # the refused input makes the run fail
    import json
    data = json.loads(res.stdout)
    assert data["counts"]["error"] == 0 and list(data["refused"]) == [str(DATA / "invalid" / "missing-cpr.xml")]
    assert "FHIR conformance report" in html.read_text("utf-8")
