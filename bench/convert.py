"""Conversion benchmark: N generated G-GOPs converted in one process, on one core.

Each message goes bytes → checked Bundle → JSON (orjson), as the service does: with the
runtime guard (the compiled JSON Schema of what the adapter emits, adapter/fhir/guard.py), and
again with the full fhir.resources model check as well (``--strict``). The floor is the least
the same work can cost, measured in turn with the conversion (five rounds; medians): parse the
input with lxml and serialise the output JSON (the standard library's json, as the issue
measured it; orjson's in the detail).
Also: where the time goes, stage by stage, and how the cost grows with the message size.

    python bench/convert.py --count 2000
"""

from __future__ import annotations

import argparse
import gc
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from common import Figure, percentile, table
from lxml import etree

from adapter.codes import load_code_tables
from adapter.generate import generate_messages
from adapter.pipeline import convert_bytes

KEY = secrets.token_bytes(32)  # ids are not compared: any key will do


def _convert_all(messages, tables, check_models: bool) -> tuple[float, list[float], list[bytes]]:
    times, out = [], []
    gc.collect()
    start = time.perf_counter()
    for m in messages:
        t0 = time.perf_counter()
        result = convert_bytes(m, tables=tables, check_models=check_models, id_key=KEY)
        out.append(orjson.dumps(result.bundle))
        times.append(time.perf_counter() - t0)
    return time.perf_counter() - start, times, out


def stages(messages, tables) -> dict[str, float]:
    """Milliseconds per message in each step of the core (the same calls convert_bytes makes)."""
    from adapter.danish_time import iso_instant
    from adapter.fhir.bundle import check_with_models, transaction_bundle
    from adapter.fhir.context import MapContext
    from adapter.fhir.guard import check_resources
    from adapter.fhir.identity import identify
    from adapter.fhir.plan import resources_from_plan
    from adapter.medcom.checks import check_ggop
    from adapter.medcom.detect import parse_message
    from adapter.medcom.schema import schema_findings
    from adapter.medcom.xmlsafe import read_xml
    from adapter.pipeline import apply_rules, default_rules, receipt_time
    from adapter.rules.trace import trace

    rules = default_rules()
    spent: dict[str, float] = {}

    def timed(name, f, *a):
        t0 = time.perf_counter()
        r = f(*a)
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0
        return r

    for raw in messages:
        doc = timed("read (safe lxml parse)", read_xml, raw)
        parsed = timed("typed message", parse_message, doc.root)
        timed("XSD check (lxml)", schema_findings, doc.root, parsed.schema_key)
        timed("business checks", check_ggop, parsed.message, tables.municipalities.keys())
        msg = parsed.message
        at = receipt_time(msg, None)
        ctx = MapContext(sender_ean=msg.sender.ean.value, letter_id=msg.letter.identifier.value, received_at=at,
                         tables=tables, id_key=KEY)
        proposal, plan, _ = timed("rules (stratify, schedule)", apply_rules, msg, at, rules, None)
        timed("rules trace", trace, proposal, plan)
        res = timed("mapping (with the keyed ids)", resources_from_plan, msg, raw, ctx, proposal, plan)
        res, ids = timed("identities (check, duplicates)", identify, res, KEY, ctx.identities)
        bundle = timed("bundle", transaction_bundle, res, ctx, iso_instant(at), ids)
        timed("guard (JSON Schema, jsonschema-rs)", check_resources, bundle)
        timed("serialise (orjson)", orjson.dumps, bundle)
        timed("[strict] fhir.resources model check", check_with_models, bundle)
    return {k: v / len(messages) * 1000 for k, v in spent.items()}


def by_size(messages, tables) -> list[dict]:
    """ms per message for the smallest, middle and largest thirds, and a message made large."""
    ordered = sorted(messages, key=len)
    n = len(ordered) // 3
    out = []
    for label, part in (("small third", ordered[:n]), ("middle third", ordered[n:2 * n]),
                        ("large third", ordered[2 * n:])):
        _, times, _ = _convert_all(part, tables, False)
        out.append({"messages": label, "mean_kib": statistics.mean(map(len, part)) / 1024,
                    "ms_per_message": statistics.mean(times) * 1000})
    for target in (100_000, 1_000_000):
        big = grow(ordered[-1], target)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            convert_bytes(big, tables=tables, check_models=False, id_key=KEY)
            times.append(time.perf_counter() - t0)
        out.append({"messages": f"one message grown to {len(big) // 1024} KiB (free text)",
                    "mean_kib": len(big) / 1024, "ms_per_message": min(times) * 1000})
    return out


def grow(raw: bytes, size: int) -> bytes:
    """The message with its health summary's text repeated until it is about ``size`` bytes."""
    root = etree.fromstring(raw)
    target = next((el for el in root.iter() if isinstance(el.tag, str)
                   and etree.QName(el).localname == "PatientHealthSummary"), None)
    if target is None:
        return raw
    para = "Borgeren har brug for hjælp til forflytning og gang på trapper. "
    target.text = (target.text or "") + para * max(1, (size - len(raw)) // len(para.encode()))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


ROUNDS = 5


def _floor(messages, outputs) -> tuple[float, float]:
    """Seconds for the floor over all messages: lxml's parse of the input and the standard
    library's serialisation of the output (and the same with orjson)."""
    gc.collect()
    start = time.perf_counter()
    for raw, out in zip(messages, outputs, strict=True):
        etree.fromstring(raw)
        json.dumps(json.loads(out), ensure_ascii=False)
    floor_total = time.perf_counter() - start
    start = time.perf_counter()
    for raw, out in zip(messages, outputs, strict=True):
        etree.fromstring(raw)
        orjson.dumps(orjson.loads(out))
    return floor_total, time.perf_counter() - start


def run(count: int = 2000, seed: int = 42, rounds: int = ROUNDS) -> tuple[list[Figure], dict]:
    """The conversion and its floor measured in turn, ``rounds`` times over the same messages:
    this machine's speed drifts by 15 % and more within minutes, and a floor measured once,
    after the conversion, could land in another minute than the conversion it is compared with.
    The figures are the medians of the rounds; the ratio is the median of each round's own."""
    tables = load_code_tables()
    messages = [m.xml for m in generate_messages(count, seed) if m.kind == "ggop"]
    for m in messages[:30]:  # warm the schemas, tables and models outside the measurement
        convert_bytes(m, tables=tables, check_models=True, id_key=KEY)

    per_round, guard_times = [], []
    for _ in range(rounds):
        guard_total, times, outputs = _convert_all(messages, tables, False)
        floor_total, floor_orjson_total = _floor(messages, outputs)
        per_round.append({"convert_s": guard_total, "floor_s": floor_total, "floor_orjson_s": floor_orjson_total})
        guard_times += times
    strict_total, strict_times, _ = _convert_all(messages, tables, True)

    n = len(messages)
    rate = n / statistics.median(r["convert_s"] for r in per_round)
    floor_rate = n / statistics.median(r["floor_s"] for r in per_round)
    ratio = statistics.median(r["convert_s"] / r["floor_s"] for r in per_round)
    strict_rate = n / strict_total
    detail = {"messages": n, "rounds": per_round, "p50_ms": percentile(guard_times, 50) * 1000,
              "p99_ms": percentile(guard_times, 99) * 1000,
              "floor_orjson_per_second": n / statistics.median(r["floor_orjson_s"] for r in per_round)}
    figures = [
        Figure("convert G-GOP, output checked (schema guard)", rate, "/s", floor_rate, "/s floor",
               ratio, ">= 1000/s, <= 3x", rate >= 1000 and ratio <= 3, detail),
        Figure("convert G-GOP, --strict (+ fhir.resources models)", strict_rate, "/s", floor_rate, "/s floor",
               floor_rate / strict_rate, "", None,
               {"p50_ms": percentile(strict_times, 50) * 1000, "p99_ms": percentile(strict_times, 99) * 1000}),
    ]
    extra = {"stages_ms": stages(messages[:300], tables), "by_size": by_size(messages, tables)}
    return figures, extra


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="conversion and floor measured in turn, this often")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    figures, extra = run(args.count, args.seed, args.rounds)
    if args.json:
        from dataclasses import asdict

        print(json.dumps({"figures": [asdict(f) for f in figures], **extra}, indent=2))
        return
    print(table(figures))
    print("\nwhere the time goes (ms per message):")
    for k, v in extra["stages_ms"].items():
        print(f"  {k:<40} {v:7.3f}")
    print("\nby message size:")
    for row in extra["by_size"]:
        print(f"  {row['messages']:<44} {row['mean_kib']:8.1f} KiB {row['ms_per_message']:8.2f} ms")


if __name__ == "__main__":
    main()
