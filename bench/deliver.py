"""Outbox delivery throughput against a real FHIR server on loopback (sekmet-fhir, as in the
delivery tests), with 1 worker and with 2 workers; prints what it measured.

    python bench/deliver.py                                  # SQLite (1 worker: SQLite allows one)
    python bench/deliver.py --postgres postgresql://adapter:adapter@127.0.0.1:5432/adapter_test
    python bench/deliver.py --stub ...                       # a stub that answers at once: the outbox alone

With --postgres the database named there is left alone: the benchmark creates and empties
its own database ``adapter_bench`` on the same server, and runs 1 and 2 workers.

For each run: a fresh FHIR server (its own data folder), a fresh store, ``--messages``
generated messages ingested, every recipient routed to the server (transaction Bundles of
PUTs, or message Bundles with --payload message), then the workers (``ggop-adapter worker
--once``, separate processes) drain the outbox. Throughput is rows delivered per second
between the first and the last delivery (the worker start-up is left out; the wall time
with start-up is printed too). Requests go to 127.0.0.1 only and stop when the outbox is empty.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select, text

from adapter.config import Settings
from adapter.generate import generate_messages
from adapter.runtime import load_runtime
from adapter.service.ingest import ingest
from adapter.store.engine import drop_schema, make_engine, open_store
from adapter.store.schema import outbox
from tests.support.fhir_endpoints import FhirServer

BENCH_ID_KEY = secrets.token_hex(32)  # a fresh store each run: any key will do


def bench_database(url: str) -> str:
    """``adapter_bench`` beside the database ``url`` names, created when missing."""
    base, _, _name = url.rpartition("/")
    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not conn.execute(text("select 1 from pg_database where datname = 'adapter_bench'")).first():
            conn.execute(text("create database adapter_bench"))
    engine.dispose()
    return f"{base}/adapter_bench"


def reset(url: str) -> None:
    drop_schema(url)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class _StubServer:
    """A stub endpoint that answers every POST at once with a transaction-response (one entry per
    entry sent), in a process of its own: the outbox alone, without the endpoint's work competing
    for the worker's interpreter."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-stub"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.proc.kill()
            raise SystemExit("the stub endpoint did not start")
        self.base_url, self.token = f"http://127.0.0.1:{int(line)}/fhir", "unused"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def serve_stub() -> None:
    """The stub endpoint's process: prints its port, serves until terminated."""
    import signal
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import orjson

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *_args):
            return

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                entries = len(orjson.loads(raw).get("entry") or [])
            except (orjson.JSONDecodeError, AttributeError):
                entries = 0
            body = orjson.dumps({"resourceType": "Bundle", "type": "transaction-response",
                                 "entry": [{"response": {"status": "200 OK"}}] * entries})
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(server.server_address[1], flush=True)
    server.serve_forever()


def run(url: str, workers: int, messages: int, payload: str, work: Path, stub: bool = False,
        concurrency: int = 8, per_recipient: int = 2) -> dict:
    if url.startswith("postgresql"):
        reset(url)
    engine = open_store(url, id_key=BENCH_ID_KEY.encode())
    at = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    runtime = load_runtime(Settings(database_url=url, check_models=False, id_key=BENCH_ID_KEY), engine=engine)
    for m in generate_messages(messages, seed=99):
        ingest(runtime, m.xml, received_at=at)
    with engine.connect() as conn:
        keys = sorted(set(conn.execute(select(outbox.c.recipient)).scalars()))
        rows = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
    server = _StubServer() if stub else FhirServer(work / f"fhir-{workers}-{int(time.time() * 1000)}").start()
    try:
        routing = work / "routing.yaml"
        routing.write_text("routes:\n" + "".join(
            f'  "{k}": {{mode: push, base_url: "{server.base_url}", payload: {payload}, '
            f'auth: {{bearer_token_env: BENCH_TOKEN}}}}\n' for k in keys))
        env = {**os.environ, "ADAPTER_DATABASE_URL": url, "BENCH_TOKEN": server.token,
               "ADAPTER_ID_KEY": BENCH_ID_KEY}
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "adapter", "worker", "--once", "--quiet", "--routes",
                                   str(routing), "--concurrency", str(concurrency), "--per-recipient",
                                   str(per_recipient)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for _ in range(workers)]
        errors = [p.communicate(timeout=3600)[1] for p in procs]
        wall = time.perf_counter() - started
        if any(p.returncode for p in procs):
            raise SystemExit("a worker failed:\n" + "\n".join(errors))
    finally:
        server.stop()
    with engine.connect() as conn:
        done = conn.execute(select(outbox.c.delivered_at).where(outbox.c.state == "delivered")).scalars().all()
        states: dict[str, int] = {str(k): int(v) for k, v in conn.execute(
            select(outbox.c.state, func.count()).group_by(outbox.c.state)).all()}
    engine.dispose()
    times = sorted(_utc(t) for t in done)
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else 0.0
    return {"workers": workers, "concurrency": concurrency, "rows": rows, "delivered": len(done), "states": states,
            "wall": wall, "span": span, "rate": (len(times) - 1) / span if span else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=300, help="generated messages to ingest (default 300)")
    ap.add_argument("--payload", choices=["transaction", "message"], default="transaction")
    ap.add_argument("--postgres", help="a PostgreSQL URL: also run 1 and 2 workers on database adapter_bench there")
    ap.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    ap.add_argument("--stub", action="store_true",
                    help="deliver to a stub that answers at once instead of the FHIR server (the outbox's own cost)")
    ap.add_argument("--serve-stub", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_stub:
        serve_stub()
        return
    with tempfile.TemporaryDirectory(prefix="deliver-bench-") as tmp:
        work = Path(tmp)
        plan = []
        if not args.no_sqlite:
            plan.append(("sqlite", f"sqlite:///{work}/adapter.db", 1))
        if args.postgres:
            pg = bench_database(args.postgres)
            plan += [("postgresql", pg, 1), ("postgresql", pg, 2)]
        target = "a stub endpoint" if args.stub else "sekmet-fhir"
        print(f"outbox delivery to {target} on loopback: {args.messages} generated messages, "
              f"{args.payload} Bundles, {os.cpu_count()} cores")
        for name, url, workers in plan:
            if name == "sqlite":
                Path(url.split("///", 1)[1]).unlink(missing_ok=True)
            r = run(url, workers, args.messages, args.payload, work, args.stub)
            print(f"{name:<10} workers {workers}: {r['delivered']}/{r['rows']} rows delivered, "
                  f"{r['rate']:.1f} rows/s ({r['span']:.1f} s from first to last delivery; "
                  f"{r['wall']:.1f} s wall with start-up); states {r['states']}")


if __name__ == "__main__":
    main()


def figures(pg_url: str, messages: int = 600) -> tuple[list, dict]:
    """For bench/run.py: PostgreSQL, two workers, to a stub answering at once and to sekmet-fhir."""
    from common import Figure

    out: list = []
    detail: dict = {}
    with tempfile.TemporaryDirectory(prefix="deliver-bench-") as tmp:
        work = Path(tmp)
        pg = bench_database(pg_url)
        single = run(pg, 1, messages, "transaction", work, stub=True, concurrency=1, per_recipient=1)
        fast = run(pg, 2, messages, "transaction", work, stub=True)
        detail["stub_one_worker_sequential"], detail["stub_two_workers"] = single, fast
        out.append(Figure("deliver to a fast endpoint, 2 workers x 8 lanes, PostgreSQL", fast["rate"], "/s",
                          single["rate"], "/s 1 worker, 1 lane",
                          fast["rate"] / single["rate"] if single["rate"] else None,
                          ">= 500/s", fast["rate"] >= 500, fast))
        try:
            real = run(pg, 2, messages, "transaction", work, stub=False)
            detail["sekmet_two_workers"] = real
            out.append(Figure("deliver to sekmet-fhir (a real FHIR server), 2 workers", real["rate"], "/s",
                              fast["rate"], "/s to the stub", None, "", None, real))
        except Exception as exc:  # noqa: BLE001 - the FHIR server may not be installable here
            detail["sekmet_error"] = type(exc).__name__
    return out, detail
