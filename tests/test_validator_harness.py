"""The offline HAPI FHIR validator (tools/fhir-validator) and its Python client.

One Java process serves the whole module. Needs Java, the built jar or Maven to build it
(the first build downloads HAPI FHIR from Maven Central), and the Danish FHIR packages in
../shared/fhir-profiles; skipped with the reason when one of them is missing.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess

import pytest

from adapter.conformance import HapiValidator, errors, format_issues
from adapter.conformance import validator as client

pytestmark = pytest.mark.conformance

PROFILES_DIR = client.DEFAULT_PACKAGES_ROOT
DK_PATIENT = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-patient"
DK_CONDITION = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-condition"
KL_SERVICEREQUEST = "http://fhir.kl.dk/rehab/StructureDefinition/klgateway-140-servicerequest"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
CPR_INVARIANT = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-cpr-identifier#cpr"
KL_REPORT_EXAMPLE = (
    PROFILES_DIR / "kl.dk.fhir.rehab#2.2.0" / "package" / "example"
    / "Bundle-RuddiIndberetningsrapport.json"
)


def _prerequisites() -> str | None:
    """Why the validator cannot run here, or None."""
    try:
        client.find_java()
    except client.ValidatorUnavailable as exc:
        return exc.reason
    if not client.jar_path().is_file() and not shutil.which("mvn"):
        return f"validator jar {client.jar_path()} not built and Maven (mvn) not installed"
    if not PROFILES_DIR.is_dir() and not os.environ.get(client.ENV_PACKAGES):
        return f"Danish FHIR packages not present at {PROFILES_DIR}"
    return None


@pytest.fixture(scope="module")
def hapi():
    reason = _prerequisites()
    if reason:
        pytest.skip(reason)
    with HapiValidator() as v:
        yield v


def patient(**extra) -> dict:
    res = {
        "resourceType": "Patient",
        "id": "nancy",
        "active": True,
        "name": [{"use": "official", "family": "Berggren", "given": ["Nancy", "Ann"]}],
        "gender": "female",
        "birthDate": "1948-12-25",
    }
    res.update(extra)
    return res


def dk_patient(cpr: str = "2512489996") -> dict:
    return patient(
        meta={"profile": [DK_PATIENT]},
        identifier=[{"system": CPR_SYSTEM, "value": cpr}],
    )


def transaction(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:4f1f5a0e-8f4e-4c55-9d7b-6a3c2f1d9e{n:02d}",
                "resource": r,
                "request": {"method": "POST", "url": r["resourceType"]},
            }
            for n, r in enumerate(resources)
        ],
    }


def test_ready_line_lists_the_packages(hapi):
    info = hapi.ready_info
    assert info["ready"] is True
    assert info["startupMillis"] > 0
    names = set(info["packages"])
    assert {"hl7.fhir.dk.core#3.4.0", "kl.dk.fhir.rehab#2.2.0"} <= names
    assert info["loaded"]["StructureDefinition"] > 50


def test_valid_r4_patient_has_no_errors(hapi):
    issues = hapi.validate(patient())
    assert errors(issues) == [], format_issues(issues)


def test_invalid_gender_is_an_error_at_patient_gender(hapi):
    issues = hapi.validate(patient(gender="x"))
    at_gender = [i for i in errors(issues) if i["location"] == "Patient.gender"]
    assert at_gender, format_issues(issues)


def test_issue_lines_match_json_dumps_indent_2(hapi):
    res = patient(gender="x")
    lines = json.dumps(res, indent=2).splitlines()
    issue = next(i for i in errors(hapi.validate(res)) if i["location"] == "Patient.gender")
    assert '"gender": "x"' in lines[issue["line"] - 1]


def test_dk_core_patient_in_transaction_bundle_is_valid(hapi):
    issues = hapi.validate(transaction(dk_patient()))
    assert errors(issues) == [], format_issues(issues)
    # that the DK profile really is applied to the entry: the next test breaks the CPR


@pytest.mark.parametrize("cpr", ["251248999", "25124899960", "2512A89996", "3102489996"])
def test_dk_core_cpr_invariant_catches_bad_cpr_in_bundle(hapi, cpr):
    issues = errors(hapi.validate(transaction(dk_patient(cpr))))
    hits = [i for i in issues if i["messageId"] == CPR_INVARIANT]
    assert hits, format_issues(issues)
    assert hits[0]["location"].startswith("Bundle.entry[0].resource")
    assert hits[0]["location"].endswith(".identifier[0].value")


def test_extra_profiles_are_applied(hapi):
    plain = patient(identifier=[{"system": CPR_SYSTEM, "value": "251248999"}])
    assert not [i for i in errors(hapi.validate(plain)) if i["messageId"] == CPR_INVARIANT]
    issues = errors(hapi.validate(plain, profiles=[DK_PATIENT]))
    assert [i for i in issues if i["messageId"] == CPR_INVARIANT], format_issues(issues)


def test_unknown_profile_is_an_error(hapi):
    res = patient(meta={"profile": ["http://example.org/fhir/StructureDefinition/nope"]})
    assert errors(hapi.validate(res))


def test_kl_servicerequest_without_category_is_an_error(hapi):
    sr = {
        "resourceType": "ServiceRequest",
        "id": "ggop",
        "meta": {"profile": [KL_SERVICEREQUEST]},
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/nancy"},
    }
    issues = errors(hapi.validate(sr))
    assert [i for i in issues if "ServiceRequest.category" in i["message"]], format_issues(issues)


def test_kl_delivery_report_example_passes_and_fails_without_category(hapi):
    if not KL_REPORT_EXAMPLE.is_file():
        pytest.skip(f"KL example not present: {KL_REPORT_EXAMPLE}")
    report = json.loads(KL_REPORT_EXAMPLE.read_text(encoding="utf-8"))
    issues = hapi.validate(report)
    assert errors(issues) == [], format_issues(issues)

    broken = copy.deepcopy(report)
    n = next(
        k for k, e in enumerate(broken["entry"])
        if e["resource"]["resourceType"] == "ServiceRequest"
    )
    del broken["entry"][n]["resource"]["category"]
    issues = errors(hapi.validate(broken))
    hits = [
        i for i in issues
        if i["location"].startswith(f"Bundle.entry[{n}].resource")
        and "ServiceRequest.category" in i["message"]
    ]
    assert hits, format_issues(issues)


@pytest.mark.parametrize(
    "coding",
    [
        {"system": "urn:oid:1.2.208.176.2.4.12", "code": "DE11"},  # SKS diagnosis
        {"system": "http://snomed.info/sct", "code": "441509002"},  # not-present stub in R4
        {"system": "http://loinc.org", "code": "8867-4"},  # no CodeSystem at all
    ],
)
def test_external_code_systems_give_warnings_not_errors(hapi, coding):
    condition = {
        "resourceType": "Condition",
        "meta": {"profile": [DK_CONDITION]},
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active",
        }]},
        "code": {"coding": [coding]},
        "subject": {"reference": "Patient/nancy"},
    }
    issues = hapi.validate(condition)
    assert errors(issues) == [], format_issues(issues)
    assert any(coding["system"] in i["message"] for i in issues if i["severity"] == "warning")


def test_fifty_resources_in_one_process(hapi):
    pid = hapi.pid
    batch = [patient(id=f"p{n}", gender="x" if n % 10 == 3 else "male") for n in range(50)]
    answers = list(hapi.validate_many(batch))
    assert len(answers) == 50
    bad = [n for n, issues in enumerate(answers) if errors(issues)]
    assert bad == [3, 13, 23, 33, 43]
    assert hapi.pid == pid and hapi.running


def test_validate_many_abandoned_early_does_not_confuse_later_answers(hapi):
    it = hapi.validate_many([patient(gender="x") for _ in range(10)], window=8)
    assert errors(next(it))
    it.close()
    assert errors(hapi.validate(patient())) == []


def test_malformed_lines_get_error_answers_and_the_process_goes_on(hapi):
    # raw protocol, a second small JVM without packages
    proc = subprocess.run(
        [hapi.java, "-jar", str(hapi.jar), "--no-warmup"],
        input="\n".join([
            "this is not json",
            "[1, 2]",
            '{"id": "no-resource"}',
            '{"id": "ok", "resource": {"resourceType": "Patient", "gender": "x"}}',
        ]) + "\n",
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["ready"] is True
    assert lines[1]["id"] is None and "malformed" in lines[1]["error"]
    assert lines[2]["id"] is None and "error" in lines[2]
    assert lines[3]["id"] == "no-resource" and "error" in lines[3]
    assert lines[4]["id"] == "ok" and errors(lines[4]["issues"])


def test_unavailable_reports_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setenv(client.ENV_JAR, str(tmp_path / "missing.jar"))
    with pytest.raises(client.ValidatorUnavailable) as exc:
        client.ensure_built()
    assert "missing.jar" in exc.value.reason and exc.value.how_to_fix
    monkeypatch.setenv(client.ENV_PACKAGES, str(tmp_path))
    with pytest.raises(client.ValidatorUnavailable):
        client.package_folders()


def test_package_order_puts_dependencies_first():
    if not PROFILES_DIR.is_dir():
        pytest.skip(f"Danish FHIR packages not present at {PROFILES_DIR}")
    names = [p.name for p in client.order_packages(PROFILES_DIR.iterdir())
             if (p / "package").is_dir()]
    assert names.index("hl7.fhir.dk.core#3.4.0") < names.index("medcom.fhir.dk.core#3.0.1")
    assert names.index("kl.dk.fhir.term#2.2.0") < names.index("kl.dk.fhir.rehab#2.2.0")
    assert names.index("medcom.fhir.dk.core#3.0.1") < names.index("medcom.fhir.dk.messaging#4.0.1")

