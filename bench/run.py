"""Every benchmark of issue 15 against the real parts, one table, one JSON file.

    python bench/run.py            # quick: minutes (make bench)
    python bench/run.py --full     # the issue's scale: 1M Tasks, 100k messages (make bench-full)
    python bench/run.py --only convert pull

PostgreSQL is a private server started as the fault tests start theirs (or ``--postgres URL``);
the service runs under gunicorn (``ggop-adapter serve --workers 2``); delivery goes to a stub
that answers at once and to sekmet-fhir, the FHIR server of the delivery tests. Each row shows
the figure, the floor or reference measured in the same run, their ratio and the target. The
results go to ``var/bench/bench-<time>.json`` (and ``var/bench/latest.json``).

Figures depend on the machine and on what else runs on it: compare ratios, and measure on a
quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, Postgres, machine, table, write_results

PLANS = {
    "quick": {"convert": 1000, "ingest": 1500, "bulk": 3000, "pull": [10_000, 100_000], "pull_repeat": 100,
              "deliver": 1000, "memory": 3000},
    "full": {"convert": 3000, "ingest": 6000, "bulk": 20_000, "pull": [10_000, 100_000, 1_000_000],
             "pull_repeat": 300, "deliver": 1000, "memory": 100_000},
}
ALL = ("convert", "ingest", "pull", "deliver", "memory")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the issue's scale (long)")
    ap.add_argument("--only", nargs="+", choices=ALL, default=list(ALL))
    ap.add_argument("--postgres", help="a PostgreSQL server URL to use instead of a private one")
    args = ap.parse_args()
    plan = PLANS["full" if args.full else "quick"]
    figures: list[Figure] = []
    details: dict = {}
    errors: dict = {}
    started = time.time()
    print(f"bench ({'full' if args.full else 'quick'}): {machine()}", flush=True)
    with Postgres(args.postgres) as pg:
        details["postgres"] = pg.settings
        for name in args.only:
            print(f"\n== {name}", flush=True)
            t0 = time.time()
            try:
                if name == "convert":
                    import convert

                    got, extra = convert.run(plan["convert"])
                elif name == "ingest":
                    import ingest

                    got, extra = ingest.run(pg, plan["ingest"], bulk=plan["bulk"])
                elif name == "pull":
                    import pull

                    got, extra = [], {}
                    for n in plan["pull"]:
                        rows, more = pull.run(pg, n, plan["pull_repeat"], full_sync=n == max(plan["pull"]))
                        got += rows
                        extra[str(n)] = more
                elif name == "deliver":
                    import deliver

                    got, extra = deliver.figures(pg.url, plan["deliver"])
                else:
                    import memory

                    got, extra = memory.run(pg, plan["memory"])
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - one benchmark's failure is reported, the rest run
                errors[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
                continue
            figures += got
            details[name] = {**extra, "seconds": time.time() - t0}
            print(table(got), flush=True)
            if name == "ingest":
                print(ingest.cpu_split(extra), flush=True)
    path = write_results(figures, {"plan": "full" if args.full else "quick", "details": details, "errors": errors,
                                   "seconds": time.time() - started})
    print("\n" + table(figures))
    if errors:
        print("\nfailed: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    print(f"\nwritten to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
