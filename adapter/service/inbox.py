"""Inbox folder mode: files dropped by a VANS client are ingested like HTTP pushes.

Crash safety: a file is first renamed into ``processing/`` (atomic on one file system),
then ingested (the database transaction is the commit point), then its receipt is written
to ``done/`` or ``failed/`` (``<name>.receipt.xml``, or ``<name>.outcome.json`` when no
receipt can be addressed) and the file moved beside it. A process killed at any point
leaves the file in the inbox or in ``processing/``; the next run ingests it again, and
MedCom deduplication turns that into the identical receipt — nothing is lost or doubled.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from pathlib import Path

from adapter.codes import load_code_tables
from adapter.config import Settings
from adapter.outcome import operation_outcome
from adapter.pipeline import Limits, default_rules
from adapter.service.ingest import ingest
from adapter.store.engine import open_store

log = logging.getLogger("ggop.inbox")
SUFFIXES = (".xml", ".XML")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def process_inbox(directory: Path, settings: Settings, engine=None, clock=None,
                  rules=None) -> dict[str, int]:
    """Ingest every file waiting in ``directory`` (and any left in ``processing/``)."""
    directory = Path(directory)
    processing, done, failed = directory / "processing", directory / "done", directory / "failed"
    for d in (processing, done, failed):
        d.mkdir(parents=True, exist_ok=True)
    engine = engine or open_store(settings.database_url)
    tables = load_code_tables()
    rules = rules or default_rules()
    clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
    limits = Limits(settings.max_bytes, settings.max_depth)
    counts: dict[str, int] = {}

    waiting = sorted(processing.iterdir())  # left over from an interrupted run first
    for f in sorted(directory.iterdir()):
        if f.is_file() and f.suffix in SUFFIXES and not f.name.startswith("."):
            target = processing / f.name
            os.replace(f, target)
            waiting.append(target)
    for path in waiting:
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        raw = path.read_bytes()
        result = ingest(engine, raw, received_at=clock(), tables=tables, rules=rules, limits=limits,
                        client=f"inbox:{directory.name}", check_models=settings.check_models)
        ok = result.state in ("accepted", "duplicate") and result.http_status == 200
        folder = done if ok else failed
        if result.receipt is not None:
            _atomic_write(folder / (path.stem + ".receipt.xml"), result.receipt)
        else:
            _atomic_write(folder / (path.stem + ".outcome.json"),
                          json.dumps(operation_outcome(result.issues), ensure_ascii=False).encode("utf-8"))
        os.replace(path, folder / path.name)
        counts[result.state] = counts.get(result.state, 0) + 1
        log.info("inbox %s: message/%s %s", path.name, result.message_id, result.state)
    return counts


def watch(directory: Path, settings: Settings, interval: float = 2.0) -> None:  # pragma: no cover - loop
    engine = open_store(settings.database_url)
    while True:
        try:
            process_inbox(directory, settings, engine=engine)
        except OSError as exc:
            log.error("inbox %s: %s", directory, type(exc).__name__)
        time.sleep(interval)
