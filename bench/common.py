"""What the benchmarks share: a PostgreSQL server (started the way the tests start one), the
real service under gunicorn, percentiles, the machine's description and the results file.

Every benchmark returns rows of :class:`Figure`: what was measured, the figure, the floor or
reference measured in the same run (what the same work costs at its cheapest), their ratio,
and the target from issue 15 where there is one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS = REPO / "var" / "bench"
BENCH_ID_KEY = secrets.token_hex(32)  # a fresh store each run: any key will do


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    floor: float | None = None  # the reference measured in the same run
    floor_what: str = ""
    ratio: float | None = None  # value / floor (or floor / value for rates: how far from the floor)
    target: str = ""  # the goal, e.g. ">= 1000/s"
    met: bool | None = None
    detail: dict = field(default_factory=dict)


def tree_cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user + system) of process ``pid`` and its descendants: those alive now, and
    through the root's ``cutime``/``cstime`` those it has reaped (Linux ``/proc``; 0 elsewhere
    or without a pid)."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")

    def fields(p: int) -> list[str] | None:
        try:
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None

    root = fields(pid)
    if root is None:
        return 0.0
    total = sum(int(x) for x in root[11:15])  # utime, stime, cutime, cstime
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            f = fields(int(entry.name))
            if f is not None:
                children.setdefault(int(f[1]), []).append(int(entry.name))
    stack = list(children.get(pid, []))
    while stack:
        p = stack.pop()
        f = fields(p)
        if f is not None:
            total += int(f[11]) + int(f[12])
        stack.extend(children.get(p, []))
    return total / tick


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def machine() -> dict:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = f"{int(Path('/proc/meminfo').read_text().split()[1]) // 1024} MiB"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0, 0, 0)
    return {"python": platform.python_version(), "machine": platform.machine(), "cpu": cpu,
            "cores": os.cpu_count(), "memory": mem, "load_average_at_start": [round(x, 2) for x in load]}


class Postgres:
    """A PostgreSQL server for a benchmark: the URL given (``--postgres``), or a private one of
    its own started as the fault tests start theirs (``tests/support/private_postgres.py``:
    Debian's binaries, a data folder in /tmp, a free loopback port, ``fsync=off``), with 512 MB
    of shared buffers."""

    def __init__(self, url: str | None = None, conf: dict[str, str] | None = None):
        self.given = url
        self.server = None
        self.conf = {"shared_buffers": "'512MB'", **(conf or {})}  # server settings of a private server

    def __enter__(self) -> Postgres:
        if self.given is None:
            from tests.support.private_postgres import PrivatePostgres

            self.server = PrivatePostgres()
            conf = self.server.data / "postgresql.auto.conf"
            conf.write_text(conf.read_text() + "".join(f"\n{k} = {v}" for k, v in self.conf.items()) + "\n")
            self.server.start()
        return self

    @property
    def settings(self) -> dict:
        from sqlalchemy import text

        from adapter.store.engine import make_engine

        engine = make_engine(self.url)
        with engine.connect() as conn:
            out = {name: conn.execute(text(f"SHOW {name}")).scalar() for name in
                   ("server_version", "fsync", "synchronous_commit", "shared_buffers")}
        engine.dispose()
        return out

    @property
    def pid(self) -> int | None:
        """The private server's postmaster (None for a server given by URL)."""
        if self.server is None:
            return None
        try:
            return int((self.server.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def url(self) -> str:
        if self.given is not None:
            return self.given
        assert self.server is not None
        return self.server.url

    def database(self, name: str) -> str:
        """A fresh, empty database ``name`` on this server; its URL."""
        from sqlalchemy import text

        from adapter.store.engine import make_engine

        base = self.url.rsplit("/", 1)[0]
        engine = make_engine(self.url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return f"{base}/{name}"

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.remove()


def clients_file(folder: Path, entries: list[dict]) -> tuple[Path, dict[str, str]]:
    """A clients YAML with a fresh token per entry; returns the file and name -> token."""
    tokens, lines = {}, []
    for e in entries:
        token = secrets.token_urlsafe(24)
        tokens[e["name"]] = token
        lines.append(f"- name: {e['name']}\n  role: {e['role']}\n"
                     + (f"  municipality: \"{e['municipality']}\"\n" if e.get("municipality") else "")
                     + f"  token_sha256: {hashlib.sha256(token.encode()).hexdigest()}\n")
    path = folder / "clients.yaml"
    path.write_text("".join(lines))
    return path, tokens


def service(url: str, clients: Path, workers: int = 2, env: dict | None = None):
    """The real service (``ggop-adapter serve``, gunicorn) on a free loopback port."""
    from tests.support.service_process import start_service

    return start_service(url, clients, workers=workers, timeout=120,
                         env={"ADAPTER_ID_KEY": BENCH_ID_KEY, **(env or {})})


def write_results(figures: list[Figure], meta: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"bench-{stamp}.json"
    doc = {"at": stamp, "machine": machine(), **meta, "figures": [asdict(f) for f in figures]}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (RESULTS / "latest.json").write_text(path.read_text())
    return path


def table(figures: list[Figure]) -> str:
    head = f"{'benchmark':<58} {'measured':>14} {'floor/reference':>26} {'ratio':>7}  {'target':<16} met"
    lines = [head, "-" * len(head)]
    for f in figures:
        floor = f"{f.floor:,.1f} {f.floor_what}" if f.floor is not None else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[f.met]
        lines.append(f"{f.name:<58} {f.value:>9,.1f} {f.unit:<4} {floor:>26} {ratio:>7}  {f.target:<16} {met}")
    return "\n".join(lines)
