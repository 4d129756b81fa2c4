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
from collections.abc import Callable
from pathlib import Path

from adapter.danish_time import utc_now
from adapter.outcome import operation_outcome
from adapter.runtime import Runtime
from adapter.service.ingest import ingest

log = logging.getLogger("ggop.inbox")
SUFFIXES = (".xml", ".XML")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def process_inbox(directory: Path, runtime: Runtime,
                  clock: Callable[[], dt.datetime] = utc_now) -> dict[str, int]:
    """Ingest every file waiting in ``directory`` (and any left in ``processing/``)."""
    directory = Path(directory)
    processing, done, failed = directory / "processing", directory / "done", directory / "failed"
    for d in (processing, done, failed):
        d.mkdir(parents=True, exist_ok=True)
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
        result = ingest(runtime, raw, received_at=clock(), client=f"inbox:{directory.name}")
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


def watch(directory: Path, runtime: Runtime, interval: float = 2.0) -> None:  # pragma: no cover - loop
    while True:
        try:
            process_inbox(directory, runtime)
        except OSError as exc:
            log.error("inbox %s: %s", directory, type(exc).__name__)
        time.sleep(interval)
