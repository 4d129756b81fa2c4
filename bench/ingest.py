"""Ingest: generated messages POSTed to the real service (``ggop-adapter serve --workers 2``,
gunicorn) on PostgreSQL by concurrent clients, every receipt sent only after its message and
everything made from it committed. Prints throughput and the receipt latency (p50/p99); the
reference is the conversion alone in one process (the CPU floor of a message).

Then a national year's share, from a folder, through ``ggop-adapter ingest DIR`` (bulk, one
process per core, ``--batch`` messages per transaction), extrapolated to 214,550 messages.

    python bench/ingest.py --messages 3000 --clients 8 [--postgres URL] [--bulk 20000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_ID_KEY, REPO, Figure, Postgres, clients_file, percentile, service, table, tree_cpu_seconds

from adapter.generate import generate_messages

NATIONAL_YEAR = 214_550


def conversion_floor(messages: list[bytes]) -> float:
    """Mean ms of converting one message in one process (no store, no HTTP)."""
    from adapter.codes import load_code_tables
    from adapter.pipeline import convert_bytes

    tables = load_code_tables()
    for m in messages[:20]:
        convert_bytes(m, tables=tables, check_models=False, id_key=BENCH_ID_KEY.encode())
    t0 = time.perf_counter()
    for m in messages[:300]:
        convert_bytes(m, tables=tables, check_models=False, id_key=BENCH_ID_KEY.encode())
    return (time.perf_counter() - t0) / min(300, len(messages)) * 1000


def http_run(url: str, messages: list[bytes], clients: int, workers: int, pg_pid: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cf, tokens = clients_file(Path(tmp), [{"name": "bench-hospital", "role": "hospital"}])
        proc, base = service(url, cf, workers=workers)
        headers = {"Authorization": f"Bearer {tokens['bench-hospital']}", "Content-Type": "application/xml"}
        host, port = base.rsplit("//", 1)[1].split(":")
        local = threading.local()

        def post(raw: bytes) -> tuple[float, int]:
            # one keep-alive connection per client thread: the load generator shares the cores
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(host, int(port), timeout=60)
            t0 = time.perf_counter()
            conn.request("POST", "/medcom", body=raw, headers=headers)
            response = conn.getresponse()
            response.read()
            return time.perf_counter() - t0, response.status

        try:
            for raw in messages[:20]:  # warm up (not counted)
                post(raw)
            cpu_before = (tree_cpu_seconds(proc.pid), tree_cpu_seconds(pg_pid), time.process_time())
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                results = list(pool.map(post, messages[20:]))
            elapsed = time.perf_counter() - start
            cpu_after = (tree_cpu_seconds(proc.pid), tree_cpu_seconds(pg_pid), time.process_time())
        finally:
            from tests.support.service_process import stop_service

            stop_service(proc)
    latencies = [t for t, _ in results]
    statuses: dict[int, int] = {}
    for _, s in results:
        statuses[s] = statuses.get(s, 0) + 1
    n = len(results)
    service_cpu, pg_cpu, client_cpu = (b - a for a, b in zip(cpu_before, cpu_after, strict=True))
    cpu = {"service_ms_per_message": service_cpu / n * 1000,
           "postgres_ms_per_message": pg_cpu / n * 1000 if pg_pid is not None else None,
           "client_ms_per_message": client_cpu / n * 1000,
           "cores_busy": (service_cpu + pg_cpu + client_cpu) / elapsed}
    return {"messages": n, "per_second": n / elapsed, "cpu": cpu,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "statuses": statuses, "clients": clients, "workers": workers}


def _ingest_folder(url: str, folder: Path, batch: int, jobs: int | None = None) -> tuple[float, str]:
    env = {**os.environ, "ADAPTER_DATABASE_URL": url, "ADAPTER_ID_KEY": BENCH_ID_KEY}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "adapter", "ingest", str(folder), "--no-progress",
                           "--batch", str(batch), *(["--jobs", str(jobs)] if jobs else [])],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=7200)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"ggop-adapter ingest failed: {done.stderr[-2000:]}")
    return elapsed, done.stderr.strip()


def bulk_run(url: str, count: int, seed: int, batch: int = 20, pg_pid: int | None = None,
             jobs: int | None = None) -> dict:
    """``ggop-adapter ingest DIR`` over ``count`` generated files; and over one file first, for
    what a run costs whatever its size (starting the processes, loading rules and schemas), so
    that a national year is extrapolated from the rate per file, not from a start-up spread
    over a small folder."""
    with tempfile.TemporaryDirectory() as tmp:
        folder, one = Path(tmp) / "year", Path(tmp) / "one"
        folder.mkdir()
        one.mkdir()
        generated = generate_messages(count + 1, seed=seed)
        (one / generated[0].filename).write_bytes(generated[0].xml)
        for m in generated[1:]:
            (folder / m.filename).write_bytes(m.xml)
        fixed, _ = _ingest_folder(url, one, batch, jobs)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        pg_before = tree_cpu_seconds(pg_pid)
        elapsed, summary = _ingest_folder(url, folder, batch, jobs)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        pg_cpu = tree_cpu_seconds(pg_pid) - pg_before
    ingest_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    per_file = max(elapsed - fixed, 1e-9) / count
    return {"messages": count, "seconds": elapsed, "per_second": count / elapsed, "batch": batch, "jobs": jobs,
            "start_seconds": fixed, "per_second_after_start": 1 / per_file,
            "year_minutes": (fixed + NATIONAL_YEAR * per_file) / 60,
            "cpu": {"ingest_ms_per_message": ingest_cpu / count * 1000,
                    "postgres_ms_per_message": pg_cpu / count * 1000 if pg_pid is not None else None,
                    "cores_busy": (ingest_cpu + pg_cpu) / elapsed},
            "summary": summary}


def run(pg: Postgres, messages: int = 3000, clients: int = 8, workers: int = 2, bulk: int = 10_000,
        batch: int = 20, jobs: int | None = None) -> tuple[list[Figure], dict]:
    raw = [m.xml for m in generate_messages(max(messages, 300) + 20, seed=4242)]
    floor_ms = conversion_floor(raw)
    figures: list[Figure] = []
    detail: dict = {"conversion_ms": floor_ms}
    if messages:
        figures += http_figures(pg, raw, clients, workers, floor_ms, detail)
    if bulk:
        b = bulk_run(pg.database("adapter_bench_bulk"), bulk, seed=2026, batch=batch, pg_pid=pg.pid, jobs=jobs)
        year = b["year_minutes"]
        figures.append(Figure(f"bulk ingest DIR ({bulk:,} files), a national year at this rate", year, "min",
                              NATIONAL_YEAR / (1000 / floor_ms) / 60 / (os.cpu_count() or 1), "min convert",
                              None, "<= 10 min", year <= 10, b))
        detail["bulk"] = b
    return figures, detail


def http_figures(pg: Postgres, raw: list[bytes], clients: int, workers: int, floor_ms: float,
                 detail: dict) -> list[Figure]:
    r = http_run(pg.database("adapter_bench_ingest"), raw, clients, workers, pg.pid)
    detail["http"] = r
    return [
        Figure(f"ingest POST /medcom, PostgreSQL, {workers} workers, {clients} clients", r["per_second"], "/s",
               1000 / floor_ms, "/s convert", (1000 / floor_ms) / r["per_second"], ">= 400/s", r["per_second"] >= 400,
               r),
        Figure("ingest receipt latency p99", r["p99_ms"], "ms", floor_ms, "ms convert", r["p99_ms"] / floor_ms,
               "p99 <= 50 ms", r["p99_ms"] <= 50, {"p50_ms": r["p50_ms"]}),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=3000, help="messages POSTed (0: no HTTP run)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bulk", type=int, default=10_000, help="files for the bulk run (0: none)")
    ap.add_argument("--batch", type=int, default=20, help="messages per transaction in the bulk run")
    ap.add_argument("--jobs", type=int, help="processes of the bulk run (default: ingest's own, one per core)")
    ap.add_argument("--postgres", help="a PostgreSQL URL (default: a private server of its own)")
    args = ap.parse_args()
    with Postgres(args.postgres) as pg:
        figures, detail = run(pg, args.messages, args.clients, args.workers, args.bulk, args.batch, args.jobs)
    print(table(figures))
    print("\n" + cpu_split(detail))


def cpu_split(detail: dict) -> str:
    """Where the CPU went, per message, and how many of the cores it kept busy."""
    def ms(value):
        return f"{value:.2f}" if value is not None else "-"

    lines = []
    if "http" in detail:
        http = detail["http"]["cpu"]
        lines.append(f"POST /medcom CPU per message: service {ms(http['service_ms_per_message'])} ms, PostgreSQL "
                     f"{ms(http['postgres_ms_per_message'])} ms, load generator "
                     f"{ms(http['client_ms_per_message'])} ms; {http['cores_busy']:.2f} cores busy")
    if "bulk" in detail:
        b = detail["bulk"]
        lines.append(f"ingest DIR CPU per message: ingest processes {ms(b['cpu']['ingest_ms_per_message'])} ms, "
                     f"PostgreSQL {ms(b['cpu']['postgres_ms_per_message'])} ms; {b['cpu']['cores_busy']:.2f} cores "
                     f"busy; start-up {b['start_seconds']:.1f} s, then {b['per_second_after_start']:.0f} files/s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
