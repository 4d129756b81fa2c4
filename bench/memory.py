"""Memory: the resident size of the service's workers through a long run, and one 10 MB message.

- The real service (gunicorn, 2 workers) on PostgreSQL takes N generated messages from 4
  clients; every worker's RSS (``/proc/<pid>/status``) is sampled throughout; the figure is the
  largest seen, against the RSS of a worker that has taken a handful (the reference).
- A G-GOP grown to about 10 MB of free text (just under ``ADAPTER_MAX_BYTES``) is ingested
  in a fresh process on SQLite; the figure is that process's peak RSS growth, against the
  message's own size. One over the limit is refused before it is read.

    python bench/memory.py --messages 100000 [--postgres URL]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Figure, Postgres, clients_file, service, table

from adapter.generate import generate_messages

BIG_SCRIPT = r"""
import datetime as dt, resource, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from adapter.config import Settings
from adapter.generate import generate_messages
from adapter.runtime import load_runtime
from adapter.service.ingest import ingest
with tempfile.TemporaryDirectory() as tmp:
    rt = load_runtime(Settings(database_url=f"sqlite:///{tmp}/a.db", id_key="m" * 40))
    rt.engine
    small = next(m.xml for m in generate_messages(5, seed=2) if m.kind == "ggop")
    ingest(rt, small, received_at=dt.datetime.now(dt.UTC))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    raw = Path(sys.argv[2]).read_bytes()  # read here: the peak before it is the process at rest
    t0 = __import__("time").perf_counter()
    r = ingest(rt, raw, received_at=dt.datetime.now(dt.UTC))
    took = __import__("time").perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(raw), r.http_status, before, after, took)
"""


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def workers_of(master: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    kids = [int(x) for x in out.split()]
    grand = []
    for k in kids:  # serve may run gunicorn under a supervisor process
        more = subprocess.run(["pgrep", "-P", str(k)], capture_output=True, text=True, timeout=10).stdout
        grand += [int(x) for x in more.split()]
    return kids + grand


def long_run(url: str, count: int) -> dict:
    messages = [m.xml for m in generate_messages(min(count, 5000), seed=77)]
    with tempfile.TemporaryDirectory() as tmp:
        cf, tokens = clients_file(Path(tmp), [{"name": "mem-hospital", "role": "hospital"}])
        proc, base = service(url, cf, workers=2)
        host, port = base.rsplit("//", 1)[1].split(":")
        headers = {"Authorization": f"Bearer {tokens['mem-hospital']}", "Content-Type": "application/xml"}
        local = threading.local()
        peak: dict[int, float] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for pid in workers_of(proc.pid):
                    peak[pid] = max(peak.get(pid, 0.0), rss_mib(pid))
                stop.wait(0.5)

        def post(n: int) -> int:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(host, int(port), timeout=60)
            # beyond the generated set the same messages come back: duplicates, answered from the store
            conn.request("POST", "/medcom", body=messages[n % len(messages)], headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status

        sampler = threading.Thread(target=sample, daemon=True)
        try:
            for n in range(20):
                post(n)
            time.sleep(1)
            start_rss = {pid: rss_mib(pid) for pid in workers_of(proc.pid)}
            sampler.start()
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                statuses = list(pool.map(post, range(count)))
            elapsed = time.perf_counter() - t0
        finally:
            stop.set()
            from tests.support.service_process import stop_service

            stop_service(proc)
    return {"messages": count, "distinct": len(messages), "seconds": elapsed,
            "max_worker_rss_mib": max(peak.values() or [0.0]),
            "worker_rss_after_warm_up_mib": max(start_rss.values() or [0.0]),
            "non_200": sum(1 for s in statuses if s != 200), "per_worker_peak_mib": sorted(peak.values())}


def big_message(size: int = 10_000_000) -> dict:
    from convert import grow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.xml"
        path.write_bytes(grow(next(m.xml for m in generate_messages(5, seed=1) if m.kind == "ggop"), size))
        done = subprocess.run([sys.executable, "-c", BIG_SCRIPT, str(REPO), str(path)], capture_output=True,
                              text=True, timeout=1800, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit("the large message run failed: " + done.stderr[-1500:])
    size_b, status, before, after, took = done.stdout.split()[-5:]
    return {"bytes": int(size_b), "http_status": int(status), "rss_before_mib": int(before) / 1024,
            "peak_rss_mib": int(after) / 1024, "growth_mib": (int(after) - int(before)) / 1024, "seconds": float(took)}


def run(pg: Postgres, messages: int = 10_000) -> tuple[list[Figure], dict]:
    r = long_run(pg.database("adapter_bench_memory"), messages)
    b = big_message()
    warm = r["worker_rss_after_warm_up_mib"]
    figures = [
        Figure(f"service worker peak RSS through {messages:,} messages", r["max_worker_rss_mib"], "MiB",
               warm, "MiB warm", r["max_worker_rss_mib"] / warm if warm else None,
               "< 200 MiB", r["max_worker_rss_mib"] < 200, r),
        Figure(f"one {b['bytes'] / 1e6:.1f} MB message: peak RSS growth (HTTP {b['http_status']})", b["growth_mib"],
               "MiB", b["bytes"] / 2**20, "MiB message", b["growth_mib"] / (b["bytes"] / 2**20), "bounded", None, b),
    ]
    return figures, {"long_run": r, "big_message": b}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--postgres", help="a PostgreSQL URL (default: a private server of its own)")
    args = ap.parse_args()
    with Postgres(args.postgres) as pg:
        figures, _ = run(pg, args.messages)
    print(table(figures))


if __name__ == "__main__":
    main()
