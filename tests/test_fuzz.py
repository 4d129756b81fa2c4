"""Property-based fuzzing of receive → validate → convert → store → receipt over mutated real
messages (the goldens, MedCom's examples when present, generated plans and letters).

The invariant: every input is stored and answered with a receipt or a located refusal (an
AdapterError with a 4xx status); never a processing defect (a 500), never an exception
escaping, never a traceback. The budget is fixed (``FUZZ_EXAMPLES``, default 400 per test; ``make test`` and CI run it);
a failure prints the seed (``--hypothesis-seed``) and the shrunk mutation to reproduce it.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import os
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree
from tests.support import TEST_ID_KEY

from adapter.errors import CATALOGUE, AdapterError, MappingError
from adapter.generate import generate_messages
from adapter.service.ingest import ingest
from adapter.store.engine import open_store
from conftest import golden_inputs, runtime_for

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

NASTY_TEXT = ["", " ", "0", "-1", "9999-12-31", "0001-01-01", "2026-02-30", "2026-13-01", "24:00", "99:99",
              "12:5", "0000000000", "9999999999", "x" * 300, "ÆØÅ æøå", "<&>\"'", "\t\n", "1e309", "NaN",
              "annulleretbrev", "rettetbrev", "almen", "specialiseret", "rehabilitering", "ja", "nej",
              "kommunenummer", "ydernummer", "sorkode", "lokationsnummer", "5790001234560", "0461", "461",
              "9" * 14, "\u202e", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"]


@lru_cache(maxsize=1)
def seeds() -> tuple[bytes, ...]:
    real = [p.read_bytes() for p in golden_inputs()]
    generated = [m.xml for m in generate_messages(12, seed=5)]
    return tuple(real + generated)


def _elements(root) -> list:
    return [el for el in root.iter() if isinstance(el.tag, str)]


@st.composite
def mutated(draw) -> bytes:
    raw = draw(st.sampled_from(seeds()))
    if draw(st.integers(0, 9)) == 0:  # byte level: truncate or overwrite
        if not raw:
            return raw
        at = draw(st.integers(0, len(raw) - 1))
        if draw(st.booleans()):
            return raw[:at]
        return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at + 1:]
    root = etree.fromstring(raw)
    fresh_ids(root)
    for _ in range(draw(st.integers(1, 4))):
        elements = _elements(root)
        el = elements[draw(st.integers(0, len(elements) - 1))]
        action = draw(st.sampled_from(["text", "remove", "duplicate", "empty", "move"]))
        parent = el.getparent()
        if action == "text":
            el.text = draw(st.sampled_from(NASTY_TEXT) | st.text(max_size=20).filter(_xml_text))
        elif action == "remove" and parent is not None:
            parent.remove(el)
        elif action == "duplicate" and parent is not None:
            for _ in range(draw(st.integers(1, 3))):
                parent.append(copy.deepcopy(el))
        elif action == "empty":
            for child in list(el):
                el.remove(child)
            el.text = None
        elif action == "move" and parent is not None:
            target = elements[draw(st.integers(0, len(elements) - 1))]
            if el not in target.iterancestors() and target is not el:
                parent.remove(el)
                target.append(el)
    return etree.tostring(root, xml_declaration=True, encoding=draw(st.sampled_from(["utf-8", "iso-8859-1"])))


_IDS = itertools.count(1)


def fresh_ids(root) -> None:
    """New envelope and letter ids: each example is a new message to the store, not a reuse
    of a letter id (which is refused before conversion, GGOP-E321)."""
    n = next(_IDS)
    for el in root.iter():
        if isinstance(el.tag, str) and etree.QName(el).localname == "Identifier" and el.getparent() is not None \
                and etree.QName(el.getparent()).localname in ("Envelope", "Letter"):
            el.text = f"F{n:013d}"


def _xml_text(s: str) -> bool:
    try:
        etree.Element("x").text = s
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def fuzz_runtime(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/adapter.db"
    engine = open_store(url, id_key=TEST_ID_KEY.encode())
    yield runtime_for(engine)
    engine.dispose()


def check_input(runtime, raw: bytes) -> None:
    """The invariant for one input: no escaping exception, no processing defect, a receipt or
    a located refusal."""
    validation = runtime.validate(raw)
    for i in validation.issues:
        assert i.code in CATALOGUE
    runtime.receipt(raw)
    try:
        result = ingest(runtime, raw, received_at=T0, client="fuzz")
    except MappingError as exc:  # the sender would get a 500
        pytest.fail(f"processing defect: {[i.render_line() for i in exc.issues]}")
    assert result.http_status < 500, result.issues
    event(f"{result.state} {result.http_status}")
    if result.http_status == 200:
        assert result.receipt is not None
    elif result.state != "duplicate":  # a resend gets the first answer again
        assert result.issues and all(i.code in CATALOGUE for i in result.issues)


@settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(raw=mutated())
def test_mutated_messages_get_a_receipt_or_a_located_refusal(fuzz_runtime, raw):
    check_input(fuzz_runtime, raw)


@settings(max_examples=EXAMPLES // 2, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=2000) | st.text(max_size=500).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes_get_a_located_refusal(fuzz_runtime, raw):
    try:
        check_input(fuzz_runtime, raw)
    except AdapterError as exc:  # e.g. the store refusing: must be a 4xx, located
        assert all(CATALOGUE[i.code].http_status < 500 for i in exc.issues)
