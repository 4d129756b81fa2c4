"""Pull API at national scale: N Tasks over the 98 municipalities in PostgreSQL, one large
municipality (København, 0101) holding 5 % of them (50,000 of 1,000,000), served by the real
service under gunicorn.

    python bench/pull.py --tasks 1000000            # the issue's scale (seeding takes minutes)
    python bench/pull.py --tasks 10000 100000       # how the cost grows

The rows are seeded in bulk SQL (``INSERT … SELECT generate_series``), not through the API: a
real Task the adapter wrote is the template, each row gets its own id, status, owner and time.
Then, as the large and as a small municipality (their own tokens), repeatedly:

- ``Task?status=requested&_count=100``: the first page of open Tasks;
- ``Task/_history?_since=<5 minutes ago>&_count=100`` after 20 Tasks changed: the incremental sync;
- ``Task?_lastUpdated=ge<5 minutes ago>&_sort=_lastUpdated&_count=100``: the search alternative;
- a full first sync of the large municipality: ``Task?_sort=_lastUpdated&_count=500`` and every
  ``next`` link.

The reference is the page's SQL query timed in the database alone (``EXPLAIN ANALYZE``
execution time; for the status page with its total, counted up to ``COUNT_LIMIT`` as the
service does), so the ratio shows what the service adds. The plans are kept in the results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_ID_KEY, Figure, Postgres, clients_file, percentile, service
from sqlalchemy import text

from adapter.fhir.systems import MUNICIPALITY_SYSTEM
from adapter.store.engine import make_engine, open_store
from adapter.store.search import COUNT_LIMIT

LARGE = "0101"
STATUSES = [("requested", 55), ("in-progress", 20), ("completed", 20), ("cancelled", 5)]  # percent


def _template() -> dict:
    """A Task exactly as the adapter stores it (converted from a generated plan)."""
    from adapter.codes import load_code_tables
    from adapter.generate import generate_messages
    from adapter.pipeline import convert_bytes
    from adapter.store.resources import bundle_resources

    msg = next(m for m in generate_messages(5, seed=3) if m.kind == "ggop")
    bundle = convert_bytes(msg.xml, tables=load_code_tables(), check_models=False, id_key=BENCH_ID_KEY.encode()).bundle
    return next(r for r in bundle_resources(bundle) if r["resourceType"] == "Task")


def seed(url: str, tasks: int) -> dict:
    """``tasks`` Task rows (and their first versions in the history) in bulk SQL."""
    engine = open_store(url, id_key=BENCH_ID_KEY.encode())
    codes = [line.split(",")[0] for line in (Path(__file__).resolve().parents[1] / "adapter" / "mappings"
                                             / "municipalities.csv").read_text("utf-8").splitlines()[1:]]
    others = [c for c in codes if c != LARGE]
    large = tasks // 20
    template = _template()
    template.pop("meta", None)
    status_case = "CASE " + " ".join(
        f"WHEN (g % 100) < {sum(p for _, p in STATUSES[:i + 1])} THEN '{s}'" for i, (s, _p) in enumerate(STATUSES)) \
        + " END"
    started = time.perf_counter()
    with engine.begin() as conn:
        # one year of Tasks, the newest 5 minutes ago; row g of the large municipality when g <= large
        conn.execute(text(f"""
            INSERT INTO resources (type, id, version_id, last_updated, municipality, patient_id, message_id,
                                   content, deleted, status)
            SELECT 'Task', s.id, 1, s.at, s.m, md5('p' || (g / 4)::text)::uuid::text, NULL,
                   (CAST(:template AS jsonb) || jsonb_build_object(
                       'id', s.id, 'status', s.status,
                       'meta', jsonb_build_object('versionId', '1', 'lastUpdated',
                                                  to_char(s.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
                       'owner', jsonb_build_object('identifier', jsonb_build_object(
                           'system', CAST(:system AS text), 'value', s.m))))::json,
                   false, s.status
            FROM generate_series(1, CAST(:n AS int)) AS g
            CROSS JOIN LATERAL (SELECT md5('t' || g::text)::uuid::text AS id,
                                       date_trunc('milliseconds', now() - interval '5 minutes'
                                           - (g * (interval '365 days' / CAST(:n AS int)))) AS at,
                                       CASE WHEN g <= CAST(:large AS int) THEN CAST(:big AS text)
                                            ELSE (CAST(:codes AS text[]))[1 + g % CAST(:others AS int)] END AS m,
                                       {status_case} AS status) AS s
        """), dict(template=json.dumps(template), n=tasks, large=large, big=LARGE, others=len(others), codes=others,
                   system=MUNICIPALITY_SYSTEM))
        conn.execute(text("""
            INSERT INTO resource_history (type, id, version_id, last_updated, municipality, message_id, content,
                                          changed_by)
            SELECT type, id, version_id, last_updated, municipality, message_id, content, 'bench'
            FROM resources WHERE type = 'Task'"""))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE resources"))
        conn.execute(text("VACUUM ANALYZE resource_history"))
        size = conn.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar()
    engine.dispose()
    return {"tasks": tasks, "large_municipality_tasks": large, "seconds": time.perf_counter() - started,
            "database_size": size}


def touch(url: str, municipality: str, n: int = 20) -> None:
    """``n`` Tasks of ``municipality`` change now (a new version each), as an update would."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("""
            WITH picked AS (SELECT id FROM resources WHERE type = 'Task' AND municipality = :m
                            ORDER BY last_updated LIMIT :n),
                 changed AS (
                UPDATE resources r SET version_id = r.version_id + 1, last_updated = date_trunc('milliseconds', now()),
                       status = 'in-progress',
                       content = (r.content::jsonb || '{"status": "in-progress"}'::jsonb)::json
                FROM picked WHERE r.type = 'Task' AND r.id = picked.id
                RETURNING r.type, r.id, r.version_id, r.last_updated, r.municipality, r.content)
            INSERT INTO resource_history (type, id, version_id, last_updated, municipality, content, changed_by)
            SELECT type, id, version_id, last_updated, municipality, content, 'bench' FROM changed"""),
            dict(m=municipality, n=n))
    engine.dispose()


class Client:
    """One keep-alive HTTP/1.1 connection with a bearer token."""

    def __init__(self, base: str, token: str):
        self.host, port = base.rsplit("//", 1)[1].split(":")
        self.port = int(port)
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def get(self, path: str) -> tuple[float, dict]:
        t0 = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"GET {path.split('?')[0]} answered {resp.status}")
        return elapsed, json.loads(body)


def _local(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def timed(client: Client, path: str, repeat: int) -> list[float]:
    client.get(path)  # warm (connection, plan, cache)
    return [client.get(path)[0] for _ in range(repeat)]


def sql_reference(url: str, municipality: str, since: dt.datetime) -> dict:
    """The pages' SQL, timed by the database alone (EXPLAIN ANALYZE), and the plans."""
    engine = make_engine(url)
    queries = {
        "status": ("SELECT type, id, version_id, last_updated, content::text FROM resources WHERE type = 'Task' "
                   "AND deleted = false AND municipality = :m AND status IN ('requested') "
                   "ORDER BY last_updated, id LIMIT 101"),
        # the first page's total, counted up to COUNT_LIMIT as the service counts it
        "status_total": ("SELECT count(*) FROM (SELECT id FROM resources WHERE type = 'Task' AND deleted = false "
                         f"AND municipality = :m AND status IN ('requested') LIMIT {COUNT_LIMIT + 1}) AS s"),
        # every match (_total=accurate, _summary=count)
        "status_total_exact": ("SELECT count(*) FROM resources WHERE type = 'Task' AND deleted = false "
                               "AND municipality = :m AND status IN ('requested')"),
        "history_since": (
            "SELECT h.type, h.id, h.version_id, h.last_updated, h.content::text FROM resource_history h "
            "WHERE EXISTS (SELECT r.id FROM resources r WHERE r.type = h.type AND r.id = h.id "
            "AND r.municipality = :m) AND h.municipality = :m AND h.type = 'Task' AND h.last_updated >= :since "
            "ORDER BY h.last_updated, h.type, h.id, h.version_id LIMIT 101"),
        "last_updated": ("SELECT type, id, version_id, last_updated, content::text FROM resources WHERE type = 'Task' "
                         "AND deleted = false AND municipality = :m AND last_updated >= :since "
                         "ORDER BY last_updated, id LIMIT 101"),
    }
    out = {}
    with engine.connect() as conn:
        for name, sql in queries.items():
            times, plan = [], []
            for _ in range(20):
                plan = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), dict(m=municipality, since=since)
                                    ).scalars().all()
                times.append(float(plan[-1].split(":")[1].strip().split()[0]))  # "Execution Time: x ms"
            out[name] = {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "plan": plan}
    engine.dispose()
    return out


def run(pg: Postgres, tasks: int, repeat: int, full_sync: bool) -> tuple[list[Figure], dict]:
    url = pg.database("adapter_bench_pull")
    seeded = seed(url, tasks)
    print(f"  seeded {tasks:,} Tasks in {seeded['seconds']:.0f} s ({seeded['database_size']})", flush=True)
    small = "0461"
    touch(url, LARGE)
    touch(url, small)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    since_q = urllib.parse.quote(since.isoformat(timespec="seconds").replace("+00:00", "Z"))
    figures: list[Figure] = []
    detail: dict = {"seed": seeded}
    with tempfile.TemporaryDirectory() as tmp:
        clients, tokens = clients_file(Path(tmp), [
            {"name": "large", "role": "municipality", "municipality": LARGE},
            {"name": "small", "role": "municipality", "municipality": small}])
        proc, base = service(url, clients, workers=2)
        try:
            for who, code in (("large", LARGE), ("small", small)):
                client = Client(base, tokens[who])
                pages = {
                    "Task?status=requested&_count=100": "/fhir/Task?status=requested&_count=100",
                    "Task/_history?_since&_count=100": f"/fhir/Task/_history?_since={since_q}&_count=100",
                    "Task?_lastUpdated=ge&_count=100":
                        f"/fhir/Task?_lastUpdated=ge{since_q}&_sort=_lastUpdated&_count=100",
                }
                reference = sql_reference(url, code, since)
                detail[f"sql_{who}"] = reference
                ref_for = {"Task?status=requested&_count=100": reference["status"]["p99_ms"]
                           + reference["status_total"]["p99_ms"],
                           "Task/_history?_since&_count=100": reference["history_since"]["p99_ms"],
                           "Task?_lastUpdated=ge&_count=100": reference["last_updated"]["p99_ms"]}
                for label, path in pages.items():
                    times = timed(client, path, repeat)
                    p99 = percentile(times, 99) * 1000
                    figures.append(Figure(
                        f"pull {label} ({who}, {tasks:,} Tasks) p99", p99, "ms", ref_for[label], "ms SQL",
                        p99 / ref_for[label] if ref_for[label] else None, "p99 <= 20 ms", p99 <= 20,
                        {"p50_ms": percentile(times, 50) * 1000, "requests": len(times)}))
            if full_sync:
                client = Client(base, tokens["large"])
                t0 = time.perf_counter()
                seen: dict[str, str] = {}
                _, page = client.get("/fhir/Task?_sort=_lastUpdated&_count=500")
                pages_read = 1
                while True:
                    for e in page.get("entry", []):
                        seen[e["resource"]["id"]] = e["resource"]["meta"]["versionId"]
                    nxt = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
                    if nxt is None:
                        break
                    _, page = client.get(_local(nxt))
                    pages_read += 1
                elapsed = time.perf_counter() - t0
                expected = seeded["large_municipality_tasks"]
                figures.append(Figure(
                    f"pull full first sync, {expected:,} Tasks of one municipality", elapsed, "s", None, "", None,
                    "<= 60 s" if expected >= 50_000 else "", elapsed <= 60 if expected >= 50_000 else None,
                    {"tasks_seen": len(seen), "expected": expected, "pages": pages_read,
                     "tasks_per_second": len(seen) / elapsed}))
                if len(seen) != expected:
                    raise SystemExit(f"the first sync saw {len(seen)} Tasks, expected {expected}")
        finally:
            from tests.support.service_process import stop_service

            stop_service(proc)
    return figures, detail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, nargs="+", default=[100_000])
    ap.add_argument("--repeat", type=int, default=200, help="requests per page kind and municipality")
    ap.add_argument("--postgres", help="a PostgreSQL URL (default: a private server of its own)")
    ap.add_argument("--no-full-sync", action="store_true")
    args = ap.parse_args()
    from common import table

    with Postgres(args.postgres) as pg:
        for n in args.tasks:
            figures, _ = run(pg, n, args.repeat, not args.no_full_sync)
            print(table(figures))


if __name__ == "__main__":
    main()
