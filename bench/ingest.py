"""Ingest load check: several concurrent clients POST generated messages to a real
`ggop-adapter serve` on loopback; prints throughput and p50/p99 latency per database.

    python bench/ingest.py --messages 2000 --clients 8                 # SQLite
    python bench/ingest.py --database postgresql://adapter:adapter@127.0.0.1:5432/adapter_bench

The server is started and stopped by this script (gunicorn, --workers as given); the
database is emptied first. Requests are bounded in number and time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adapter.generate import generate_messages
from adapter.store.engine import drop_schema
from tests.support.service_process import start_service, stop_service

BENCH_ID_KEY = secrets.token_hex(32)  # a fresh store each run: any key will do


def reset(url: str) -> None:
    drop_schema(url)


def start(url: str, workers: int, clients_file: Path, check_models: bool):
    return start_service(url, clients_file, workers=workers,
                         env={"ADAPTER_CHECK_MODELS": "1" if check_models else "0", "ADAPTER_ID_KEY": BENCH_ID_KEY})


def run(url: str, messages: list[bytes], clients: int, workers: int, check_models: bool) -> dict:
    if not url.startswith("sqlite"):
        reset(url)
    with tempfile.TemporaryDirectory() as tmp:
        token = "bench-hospital"
        clients_file = Path(tmp) / "clients.yaml"
        clients_file.write_text(f"- name: bench\n  role: hospital\n  token_sha256: "
                                f"{hashlib.sha256(token.encode()).hexdigest()}\n")
        if url.startswith("sqlite"):
            url = f"sqlite:///{tmp}/bench.db"
        proc, base = start(url, workers, clients_file, check_models)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
        host, port = base.rsplit("//", 1)[1].split(":")
        local = threading.local()

        def post(raw: bytes) -> tuple[float, int]:
            # a plain keep-alive HTTP/1.1 connection per client thread: the load generator
            # shares the machine's cores with the server, so it is kept light
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(host, int(port), timeout=30)
            t0 = time.perf_counter()
            conn.request("POST", "/medcom", body=raw, headers=headers)
            response = conn.getresponse()
            response.read()
            return time.perf_counter() - t0, response.status

        try:
            for raw in messages[:10]:  # warm up (not counted; the same messages come back as duplicates)
                post(raw)
            start_t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                results = list(pool.map(post, messages[10:]))
            elapsed = time.perf_counter() - start_t
        finally:
            stop_service(proc)
    latencies = sorted(t for t, _ in results)
    statuses: dict[int, int] = {}
    for _, s in results:
        statuses[s] = statuses.get(s, 0) + 1
    return {
        "database": url.split(":", 1)[0],
        "messages": len(results),
        "clients": clients,
        "workers": workers,
        "check_models": check_models,
        "per_second": len(results) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))] * 1000,
        "statuses": statuses,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database", action="append",
                    help="sqlite (default) and/or a PostgreSQL URL; repeat for several")
    ap.add_argument("--messages", type=int, default=1500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-model-check", action="store_true")
    args = ap.parse_args()
    messages = [m.xml for m in generate_messages(args.messages + 10, seed=4242)]
    for url in args.database or ["sqlite"]:
        r = run(url if url != "sqlite" else "sqlite:///", messages, args.clients, args.workers,
                not args.no_model_check)
        print(f"{r['database']:<10} {r['messages']} messages, {r['clients']} clients, {r['workers']} workers, "
              f"model check {'on' if r['check_models'] else 'off'}: {r['per_second']:.0f} messages/s, "
              f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, statuses {r['statuses']}")


if __name__ == "__main__":
    main()
