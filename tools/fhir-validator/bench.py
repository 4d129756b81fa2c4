#!/usr/bin/env python3
"""Start-up time and warm throughput of the offline HAPI validator.

    PYTHONPATH=. python3 tools/fhir-validator/bench.py [--starts 3] [--resources 500] [--bundles 50]

Prints JVM start-to-ready time (as seen by the client and as reported by the JVM), the
first-use cost of the Danish profiles, and warm throughput for single resources (pipelined
with validate_many and one round trip at a time) and for transaction Bundles of 20 entries.
Standard library and the project's client only; builds the jar first if needed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapter.conformance import HapiValidator, ensure_built, errors, format_issues

DK = "http://hl7.dk/fhir/core/StructureDefinition/"
KL = "http://fhir.kl.dk/rehab/StructureDefinition/"


def cpr(n: int) -> str:
    return f"{(n % 28) + 1:02d}{(n % 12) + 1:02d}48{n % 10000:04d}"


def dk_patient(n: int) -> dict:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "meta": {"profile": [DK + "dk-core-patient"]},
        "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": cpr(n)}],
        "name": [{"use": "official", "family": f"Berggren{n}", "given": ["Nancy"]}],
        "gender": "female" if n % 2 else "male",
        "birthDate": "1948-12-25",
        "address": [{"line": [f"Vejen {n}"], "postalCode": "8000", "city": "Aarhus C"}],
    }


def dk_organization(n: int) -> dict:
    return {
        "resourceType": "Organization",
        "id": f"o{n}",
        "meta": {"profile": [DK + "dk-core-organization"]},
        "identifier": [{"system": "urn:oid:1.2.208.176.1.1", "value": f"{325_421_000_016 + n}"}],
        "name": f"Genoptræning {n}",
    }


def dk_condition(n: int, patient_ref: str) -> dict:
    return {
        "resourceType": "Condition",
        "id": f"c{n}",
        "meta": {"profile": [DK + "dk-core-condition"]},
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "urn:oid:1.2.208.176.2.4.12", "code": "DS720"}]},
        "subject": {"reference": patient_ref},
    }


def plain_observation(n: int, patient_ref: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": f"obs{n}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": patient_ref},
        "effectiveDateTime": "2024-05-01T10:00:00+02:00",
        "valueQuantity": {"value": 70 + n % 30, "unit": "kg",
                          "system": "http://unitsofmeasure.org", "code": "kg"},
    }


def resources(n: int) -> list[dict]:
    makers = [
        lambda k: dk_patient(k),
        lambda k: dk_organization(k),
        lambda k: dk_condition(k, f"Patient/p{k}"),
        lambda k: plain_observation(k, f"Patient/p{k}"),
    ]
    return [makers[k % len(makers)](k) for k in range(n)]


def bundle(b: int, size: int = 20) -> dict:
    entries = []
    for k in range(size):
        n = b * size + k
        uuid = f"urn:uuid:00000000-0000-4000-8000-{n:012d}"
        pat_uuid = f"urn:uuid:00000000-0000-4000-8000-{b * size:012d}"
        kind = k % 4
        if k == 0 or kind == 0:
            res = dk_patient(n)
        elif kind == 1:
            res = dk_organization(n)
        elif kind == 2:
            res = dk_condition(n, pat_uuid)
        else:
            res = plain_observation(n, pat_uuid)
        res.pop("id", None)
        entries.append({"fullUrl": uuid, "resource": res,
                        "request": {"method": "POST", "url": res["resourceType"]}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=3, help="process starts to time (default 3)")
    ap.add_argument("--resources", type=int, default=500, help="warm single resources (500)")
    ap.add_argument("--bundles", type=int, default=50, help="warm 20-entry Bundles (50)")
    args = ap.parse_args()

    ensure_built(quiet=False)

    wall, jvm = [], []
    for _ in range(max(0, args.starts - 1)):
        with HapiValidator() as v:
            wall.append(v.startup_seconds)
            jvm.append(v.ready_info["startupMillis"] / 1000)

    with HapiValidator() as v:
        wall.append(v.startup_seconds)
        jvm.append(v.ready_info["startupMillis"] / 1000)
        print(f"HAPI FHIR {v.ready_info.get('hapiVersion')}; packages: "
              f"{', '.join(v.ready_info['packages'])}")
        print(f"start to ready (client wall clock): median {statistics.median(wall):.2f} s "
              f"over {len(wall)} starts (min {min(wall):.2f}, max {max(wall):.2f})")
        print(f"start to ready (JVM-reported):      median {statistics.median(jvm):.2f} s "
              f"(last start: JVM {v.ready_info.get('jvmMillis')} ms, loading packages "
              f"{v.ready_info.get('loadMillis')} ms, warm-up incl. R4 core "
              f"{v.ready_info.get('warmupMillis')} ms)")

        # first use of each profile: snapshot / structure loading the warm-up did not cover
        firsts = {
            "dk-core-patient": dk_patient(99_001),
            "dk-core-organization": dk_organization(99_002),
            "dk-core-condition": dk_condition(99_003, "Patient/p1"),
        }
        for name, res in firsts.items():
            secs, _ = timed(lambda r=res: v.validate(r))
            print(f"first resource against {name}: {secs * 1000:.0f} ms")
        bsecs, _ = timed(lambda: v.validate(bundle(10_000)))
        print(f"first 20-entry transaction Bundle: {bsecs * 1000:.0f} ms")

        # warm-up (JIT, caches), then measure
        list(v.validate_many(resources(400)))
        list(v.validate_many(bundle(b) for b in range(20)))

        batch = resources(args.resources)
        secs, answers = timed(lambda: list(v.validate_many(batch)))
        bad = [a for a in answers if errors(a)]
        print(f"warm, pipelined:    {len(batch) / secs:7.1f} resources/s "
              f"({len(batch)} resources in {secs:.2f} s; {len(bad)} with errors)")
        if bad:
            print(format_issues(errors(bad[0])), file=sys.stderr)

        some = batch[: min(len(batch), 200)]
        secs, _ = timed(lambda: [v.validate(r) for r in some])
        print(f"warm, one by one:   {len(some) / secs:7.1f} resources/s "
              f"({len(some)} round trips in {secs:.2f} s)")

        bundles = [bundle(b) for b in range(args.bundles)]
        secs, answers = timed(lambda: list(v.validate_many(bundles)))
        bad = [a for a in answers if errors(a)]
        print(f"warm, Bundles:      {len(bundles) / secs:7.2f} Bundles/s of 20 entries "
              f"= {20 * len(bundles) / secs:.1f} entries/s ({len(bad)} with errors)")
        if bad:
            print(format_issues(errors(bad[0])), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
