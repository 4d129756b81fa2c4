"""Bulk ingest: a folder of MedCom messages (a backlog, a replayed year) into the store, as
fast as the machine allows, each message exactly as ``POST /medcom`` would take it.

``ggop-adapter ingest DIR`` reads every ``*.xml`` under ``DIR`` (name order) and hands the
files to ``--jobs`` processes (default: one per core), each with its own runtime and store
connection. Each message is stored, checked, converted and answered in its own transaction by
:func:`adapter.service.ingest.ingest`, so duplicates, corrections and refusals behave as over
HTTP, and a file is counted only after its transaction committed. The files stay where they
are (the inbox watcher is the one that moves files); ``--receipts OUT`` writes each receipt
beside a copy of the name.

Order: the versions of one letter (an original and its ``rettetbrev``) must be taken in their
order, so files are shared out by the letter's sender and id, read from the first bytes of
the file (an encoding that hides them, UTF-16, shares by file name): one process takes all
versions of a letter, in name order.

Every input is bounded as over HTTP: a file over ``ADAPTER_MAX_BYTES`` is not read (counted as
refused, ``GGOP-E003``); the reader's limits apply to the rest. Nothing of a message's content
is printed: the summary counts states and codes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_SENDER = re.compile(rb"<(?:[A-Za-z0-9_]+:)?Sender>.*?<(?:[A-Za-z0-9_]+:)?EANIdentifier>\s*([0-9]{1,20})\s*<",
                     re.DOTALL)
_LETTER = re.compile(rb"<(?:[A-Za-z0-9_]+:)?Letter>\s*<(?:[A-Za-z0-9_]+:)?Identifier>\s*([^<\s]{1,40})\s*<",
                     re.DOTALL)
SNIFF_BYTES = 16_384


def letter_key(path: Path) -> bytes:
    """What shares files out: sender GLN and letter id when the first bytes show them."""
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return path.name.encode()
    letter = _LETTER.search(head)
    if letter is None:
        return path.name.encode()
    sender = _SENDER.search(head)
    return (sender.group(1) if sender else b"") + b"|" + letter.group(1)


@dataclass
class Summary:
    files: int = 0
    by_state: Counter = field(default_factory=Counter)
    by_code: Counter = field(default_factory=Counter)
    failed: int = 0  # a processing defect of ours (GGOP-E401/E900), or the store refusing

    def add(self, state: str, codes: list[str]) -> None:
        self.files += 1
        self.by_state[state] += 1
        for c in codes:
            self.by_code[c] += 1
        if state == "failed":
            self.failed += 1


def files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.xml") if p.is_file())


def _work(paths: list[str], receipts: str | None, results) -> None:
    """One process: its own runtime and connection pool, its share of the files in order."""
    import datetime as dt

    from adapter.danish_time import utc_now
    from adapter.errors import AdapterError
    from adapter.runtime import load_runtime
    from adapter.service.ingest import ingest

    runtime = load_runtime()
    limit = runtime.settings.max_bytes
    try:
        for name in paths:
            path = Path(name)
            try:
                if path.stat().st_size > limit:
                    results.put(("refused", ["GGOP-E003"]))
                    continue
                raw = path.read_bytes()
            except OSError:
                results.put(("refused", ["GGOP-E009"]))
                continue
            try:
                done = ingest(runtime, raw, received_at=utc_now().astimezone(dt.UTC), client="bulk-ingest")
            except AdapterError as exc:
                results.put(("failed", sorted({i.code for i in exc.issues})))
                continue
            except Exception as exc:  # noqa: BLE001 - counted, never printed (it may carry data)
                results.put(("failed", [f"GGOP-E900 {type(exc).__name__}"]))
                continue
            if receipts and done.receipt:
                (Path(receipts) / (path.stem + ".receipt.xml")).write_bytes(done.receipt)
            errors = sorted({i.code for i in done.issues if i.is_error}) if done.state == "refused" else []
            results.put((done.state, errors))
    finally:
        results.put(None)
        runtime.engine.dispose()


def ingest_folder(folder: Path, *, jobs: int | None = None, receipts: Path | None = None,
                  progress: Callable[[int], None] | None = None) -> Summary:
    """Ingest every ``*.xml`` under ``folder`` with ``jobs`` processes; ``progress(n)`` is
    called as files are done."""
    paths = files_of(folder)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(paths) or 1))
    shares: list[list[str]] = [[] for _ in range(jobs)]
    for p in paths:
        shares[zlib.crc32(letter_key(p)) % jobs].append(str(p))
    if receipts is not None:
        receipts.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    if not paths:
        return summary
    ctx = mp.get_context("spawn")  # a clean process: no inherited connections or threads
    results = ctx.Queue()
    procs = [ctx.Process(target=_work, args=(share, str(receipts) if receipts else None, results), daemon=True)
             for share in shares if share]
    for proc in procs:
        proc.start()
    running = [len(procs)]  # processes that have not said they are done
    for item in _drain(results, procs, running):
        if item is None:
            running[0] -= 1
            continue
        state, codes = item
        summary.add(state, codes)
        if progress is not None:
            progress(1)
    for proc in procs:
        proc.join()
    lost = len(paths) - summary.files
    if lost > 0:  # a process died (killed, out of memory): its remaining files were not taken
        summary.by_state["not taken"] += lost
    return summary


def _drain(results, procs, running: list[int]) -> Iterator:
    import queue

    while running[0] > 0:
        try:
            yield results.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                while True:  # what the last processes put before they ended
                    try:
                        yield results.get_nowait()
                    except queue.Empty:
                        return
