"""Hostile input, measured: the corpus in tests/hostile/, the large cases of tests/test_hostile.py
and N randomly mutated real messages (seeded), each stored and answered as ``POST /medcom``
would (ingest on a SQLite store in a temporary folder). Prints how many inputs were tried, the
answers by HTTP status, any 500, and the slowest input and the largest traced memory peak.

    python bench/hostile.py [--mutations 2000] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import random
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lxml import etree

from adapter.config import Settings
from adapter.errors import MappingError
from adapter.generate import generate_messages
from adapter.runtime import load_runtime
from adapter.service.ingest import ingest
from tests.support.hostile_cases import large_cases

NASTY = ["", " ", "0", "-1", "9999-12-31", "0001-01-01", "2026-02-30", "24:00", "x" * 300, "ÆØÅ", "<&>",
         "annulleretbrev", "rettetbrev", "specialiseret", "ja", "nej", "0461", "9" * 14]


def mutate(raw: bytes, rng: random.Random, n: int) -> bytes:
    if rng.random() < 0.1:
        at = rng.randrange(len(raw))
        return raw[:at] if rng.random() < 0.5 else raw[:at] + rng.randbytes(rng.randint(1, 8)) + raw[at + 1:]
    root = etree.fromstring(raw)
    for el in root.iter():
        if isinstance(el.tag, str) and etree.QName(el).localname == "Identifier" and el.getparent() is not None \
                and etree.QName(el.getparent()).localname in ("Envelope", "Letter"):
            el.text = f"B{n:013d}"
    for _ in range(rng.randint(1, 4)):
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        el = rng.choice(elements)
        parent = el.getparent()
        action = rng.choice(["text", "remove", "duplicate", "empty"])
        if action == "text":
            el.text = rng.choice(NASTY)
        elif action == "remove" and parent is not None:
            parent.remove(el)
        elif action == "duplicate" and parent is not None:
            parent.append(copy.deepcopy(el))
        elif action == "empty":
            for child in list(el):
                el.remove(child)
            el.text = None
    return etree.tostring(root, xml_declaration=True, encoding=rng.choice(["utf-8", "iso-8859-1", "utf-16"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutations", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    corpus = sorted((REPO / "tests" / "hostile").glob("*.xml"))
    inputs: list[tuple[str, bytes]] = [(p.stem, p.read_bytes()) for p in corpus]
    inputs += [(name, raw) for name, (raw, _status, _codes) in large_cases().items()]
    seeds = [p.read_bytes() for p in sorted((REPO / "tests" / "data").rglob("*.xml")) if "invalid" not in p.parts]
    seeds += [m.xml for m in generate_messages(20, seed=args.seed)]
    rng = random.Random(args.seed)
    inputs += [(f"mutation-{n}", mutate(rng.choice(seeds), rng, n)) for n in range(args.mutations)]

    with tempfile.TemporaryDirectory() as tmp:
        runtime = load_runtime(Settings(database_url=f"sqlite:///{tmp}/adapter.db", id_key="bench " * 8))
        runtime.engine  # noqa: B018 - migrate before timing
        runtime.convert(seeds[0])  # load the schemas and tables before timing
        statuses: Counter[int] = Counter()
        defects: list[str] = []
        slowest = ("", 0.0)
        heaviest = ("", 0.0)
        at = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
        for name, raw in inputs:
            tracemalloc.start()
            started = time.perf_counter()
            try:
                status = ingest(runtime, raw, received_at=at, client="bench").http_status
            except MappingError:
                status = 500
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            statuses[status] += 1
            if status >= 500:
                defects.append(name)
            if elapsed > slowest[1]:
                slowest = (name, elapsed)
            if peak > heaviest[1]:
                heaviest = (name, peak)
    result = {"inputs": len(inputs), "by_status": dict(sorted(statuses.items())), "defects": defects,
              "slowest": {"input": slowest[0], "seconds": round(slowest[1], 3)},
              "largest_memory_peak": {"input": heaviest[0], "MiB": round(heaviest[1], 1)}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['inputs']} inputs: " + ", ".join(f"HTTP {s}: {n}" for s, n in result["by_status"].items()))
    print(f"processing defects (500): {len(defects)}" + (f" ({', '.join(defects[:5])})" if defects else ""))
    print(f"slowest: {slowest[0]} {slowest[1]:.3f} s; largest traced memory peak: {heaviest[0]} {heaviest[1]:.1f} MiB")


if __name__ == "__main__":
    main()
