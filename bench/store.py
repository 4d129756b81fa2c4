"""The store's part of ingest, in one process: messages read, checked and converted first,
then stored one per transaction (``store_prepared`` in ``stored_first``, as ``POST /medcom``
stores them), on a private PostgreSQL server with ``pg_stat_statements``. Prints the store's
CPU and wall time per message and, per statement, the server's execution time per message:
where a message's store time goes, and what a change to the statements or the server's
settings saves.

    python bench/store.py --messages 900
    python bench/store.py --messages 900 --compression pglz   # the JSON compressed as before 0008

It also times one of the array statements (the current versions of a plan's resources) sent
through SQLAlchemy's ``exec_driver_sql`` and straight to psycopg, as :mod:`adapter.store.pg_arrays`
sends them: what SQLAlchemy's execution layer adds to a statement.

Only with the private server (the statistics extension must be preloaded).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_ID_KEY, Postgres

from adapter.config import Settings
from adapter.generate import generate_messages
from adapter.runtime import load_runtime
from adapter.service.ingest import prepare, store_prepared, stored_first
from adapter.store import pg_arrays
from adapter.store.resources import bundle_resources

COLUMNS = (("resources", "content"), ("resource_history", "content"), ("outbox", "payload"), ("messages", "raw"),
           ("messages", "receipt"))


def run(messages: int, compression: str | None) -> dict:
    raw = [m.xml for m in generate_messages(messages, seed=11)]
    with Postgres(conf={"shared_preload_libraries": "'pg_stat_statements'"}) as pg:
        runtime = load_runtime(Settings.load({"ADAPTER_DATABASE_URL": pg.database("bench_store"),
                                              "ADAPTER_ID_KEY": BENCH_ID_KEY}))
        engine = runtime.engine
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            for table, column in COLUMNS if compression else ():
                conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {compression}")
        now = dt.datetime.now(dt.UTC)
        prepared = [prepare(runtime, m, received_at=now) for m in raw]
        warm, timed = prepared[:len(prepared) // 4], prepared[len(prepared) // 4:]
        for p in warm:
            stored_first(engine, lambda conn, p=p: store_prepared(conn, runtime, p, "bench"), lambda c, e: None)
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT pg_stat_statements_reset()")
        cpu, wall = time.process_time(), time.perf_counter()
        for p in timed:
            stored_first(engine, lambda conn, p=p: store_prepared(conn, runtime, p, "bench"), lambda c, e: None)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        keys = [(r["resourceType"], r["id"]) for r in bundle_resources(timed[0].conversion.bundle)]
        overhead = statement_times(engine, keys)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 60), sum(calls), sum(total_exec_time) "
                "FROM pg_stat_statements WHERE query NOT LIKE '%%pg_stat_statements%%' "
                "GROUP BY 1 ORDER BY 3 DESC").all()
        engine.dispose()
    n = len(timed)
    return {"messages": n, "compression": compression or "as migrated", "cpu_ms": cpu / n * 1000,
            "wall_ms": wall / n * 1000,
            "server_ms": {q: ms / n for q, _calls, ms in rows if ms / n >= 0.005},
            "server_total_ms": sum(ms for _q, _c, ms in rows) / n, "statement_us": overhead}


def statement_times(engine, keys: list[tuple[str, str]], repeat: int = 2000) -> dict[str, float]:
    """Microseconds per execution of the current-versions query for ``keys`` (round trip
    included), through SQLAlchemy and through psycopg, on one connection in turn."""
    params = {"types": [k[0] for k in keys], "ids": [k[1] for k in keys]}
    out: dict[str, float] = {}
    with engine.begin() as conn:
        ways = {"sqlalchemy": lambda: conn.exec_driver_sql(pg_arrays._CURRENT, params).all(),
                "psycopg": lambda: pg_arrays._execute(conn, pg_arrays._CURRENT, params).fetchall()}
        for _ in range(3):  # alternately, the best of three rounds each
            for name, run_once in ways.items():
                for _ in range(50):
                    run_once()
                t = time.perf_counter()
                for _ in range(repeat):
                    run_once()
                us = (time.perf_counter() - t) / repeat * 1e6
                out[name] = min(us, out.get(name, us))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=900)
    ap.add_argument("--compression", choices=("pglz", "lz4"), help="set on the JSON and message columns first")
    args = ap.parse_args()
    r = run(args.messages, args.compression)
    print(f"store, {r['messages']} messages one per transaction, compression {r['compression']}: "
          f"{r['cpu_ms']:.2f} ms CPU and {r['wall_ms']:.2f} ms wall per message; "
          f"PostgreSQL executing {r['server_total_ms']:.2f} ms per message")
    for query, ms in r["server_ms"].items():
        print(f"  {ms:7.3f} ms  {query}")
    st = r["statement_us"]
    print(f"one array statement (current versions of a plan's resources): {st['sqlalchemy']:.0f} µs through "
          f"SQLAlchemy, {st['psycopg']:.0f} µs through psycopg")


if __name__ == "__main__":
    main()
