"""Golden files: tests/data/**/<case>.xml → <case>.bundle.json, discovered by glob."""

from __future__ import annotations

import json

import pytest
from tests.support import TEST_ID_KEY

from adapter.fhir.bundle import to_json
from adapter.pipeline import convert_bytes
from conftest import golden_inputs

KEY = TEST_ID_KEY.encode()


@pytest.mark.parametrize("path", golden_inputs(), ids=lambda p: p.stem)
def test_golden_bundle(path, update_goldens):
    result = convert_bytes(path.read_bytes(), id_key=KEY)
    golden = path.with_suffix(".bundle.json")
    text = to_json(result.bundle) + "\n"
    if update_goldens or not golden.exists():
        golden.write_text(text, encoding="utf-8")
        if not update_goldens:
            pytest.fail(f"golden file {golden.name} was missing and has been written; review and commit it")
    expected = json.loads(golden.read_text("utf-8"))
    assert result.bundle == expected, f"{path.name} converts differently from {golden.name} (--update-goldens)"
    if result.trace is not None:
        trace_file = path.with_suffix(".trace.json")
        if update_goldens or not trace_file.exists():
            trace_file.write_text(json.dumps(result.trace, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            if not update_goldens:
                pytest.fail(f"golden file {trace_file.name} was missing and has been written; review and commit it")
        assert result.trace == json.loads(trace_file.read_text("utf-8")), \
            f"{path.name}: stratification or deadlines differ from {trace_file.name} (--update-goldens)"


def test_there_are_goldens_of_every_kind():
    kinds = {p.parent.name for p in golden_inputs()}
    assert {"ggop", "xdis91"} <= kinds
    assert len(golden_inputs()) >= 8
