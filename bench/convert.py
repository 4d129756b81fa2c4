"""Conversion benchmark: N generated messages converted in one process.

Prints messages/second, p50/p99 per message and peak memory, and beside them the
floor for the same work (parse the XML with lxml + serialise the output JSON)
and the ratio to it. Run: ``make bench`` or ``python bench/convert.py --count 2000``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import secrets
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree

from adapter.codes import load_code_tables
from adapter.fhir.bundle import to_json
from adapter.generate import generate_messages
from adapter.pipeline import convert_bytes

BENCH_ID_KEY = secrets.token_bytes(32)  # ids are not compared: any key will do


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def run(count: int, seed: int, kind: str, check_models: bool) -> dict:
    tables = load_code_tables()
    messages = [m for m in generate_messages(count, seed) if kind == "all" or m.kind == kind]
    bundles = {}
    for m in messages[:20]:  # warm caches (schemas, models) outside the measurement
        convert_bytes(m.xml, tables=tables, check_models=check_models, id_key=BENCH_ID_KEY)

    gc.collect()
    times = []
    start = time.perf_counter()
    for m in messages:
        t0 = time.perf_counter()
        result = convert_bytes(m.xml, tables=tables, check_models=check_models, id_key=BENCH_ID_KEY)
        text = to_json(result.bundle, None)
        times.append(time.perf_counter() - t0)
        bundles[m.filename] = text
    total = time.perf_counter() - start

    floor_times = []
    fstart = time.perf_counter()
    for m in messages:
        t0 = time.perf_counter()
        etree.fromstring(m.xml)
        json.dumps(json.loads(bundles[m.filename]), ensure_ascii=False)
        floor_times.append(time.perf_counter() - t0)
    floor_total = time.perf_counter() - fstart

    tracemalloc.start()
    for m in messages[:200]:
        convert_bytes(m.xml, tables=tables, check_models=check_models, id_key=BENCH_ID_KEY)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "messages": len(messages),
        "kind": kind,
        "check_models": check_models,
        "messages_per_second": len(messages) / total,
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": percentile(times, 99) * 1000,
        "max_ms": max(times) * 1000,
        "floor_messages_per_second": len(messages) / floor_total,
        "floor_p50_ms": statistics.median(floor_times) * 1000,
        "ratio_to_floor": total / floor_total,
        "peak_traced_memory_mib_per_200": peak / 2**20,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--kind", choices=["ggop", "xdis91", "all"], default="ggop")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    results = [run(args.count, args.seed, args.kind, True), run(args.count, args.seed, args.kind, False)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"python {platform.python_version()} on {platform.machine()}, one process, one core")
    for r in results:
        mode = "with fhir.resources model check" if r["check_models"] else "without model check"
        print(f"\n{r['messages']} {r['kind']} messages, {mode}:")
        print(f"  {r['messages_per_second']:8.0f} messages/s   p50 {r['p50_ms']:.2f} ms   "
              f"p99 {r['p99_ms']:.2f} ms   max {r['max_ms']:.2f} ms")
        print(f"  floor (lxml parse + JSON serialise): {r['floor_messages_per_second']:8.0f} messages/s   "
              f"p50 {r['floor_p50_ms']:.3f} ms   ratio {r['ratio_to_floor']:.1f}x")
        print(f"  peak traced memory over 200 conversions: {r['peak_traced_memory_mib_per_200']:.1f} MiB; "
              f"max RSS {r['max_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
