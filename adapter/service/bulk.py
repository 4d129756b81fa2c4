"""Bulk ingest: a folder of MedCom messages (a backlog, a replayed year) into the store, as
fast as the machine allows, each message exactly as ``POST /medcom`` would take it.

``ggop-adapter ingest DIR`` reads every ``*.xml`` under ``DIR`` (name order) and hands the
files to ``--jobs`` processes (default: one per core), each with its own runtime and store
connection. Each process reads, checks and converts its files and stores them ``--batch`` at
a time in one transaction, each message by the same code as ``POST /medcom``
(:func:`adapter.service.ingest.store_prepared`), so duplicates, corrections and refusals
behave as over HTTP. When a batch fails (a defect of ours in one message, the store refusing
a write), it is rolled back and its messages are stored again one per transaction: the others
are kept, and the failing one is kept as ``failed`` as over HTTP. A file is counted, and its
receipt written, only after its transaction committed. The files stay where they are (the
inbox watcher is the one that moves files); ``--receipts OUT`` writes each receipt beside a
copy of the name.

Order: the versions of one letter (an original and its ``rettetbrev``) must be taken in their
order, so files are shared out by the letter's sender and id, read from the first bytes of
the file (an encoding that hides them, UTF-16, shares by file name): one process takes all
versions of a letter, in name order. Letters are shared out by the party they are addressed
to (its GLN, from the first version): one process takes all the letters to one municipality,
so no other process waits to write that municipality's Organization, which changes with the
department a plan names. The shares are balanced by their number of files (the largest
receivers first, each to the share with the fewest files so far).

Every input is bounded as over HTTP: a file over ``ADAPTER_MAX_BYTES`` is not read (counted as
refused, ``GGOP-E003``); the reader's limits apply to the rest. Nothing of a message's content
is printed: the summary counts states and codes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapter.service.ingest import IngestResult, Prepared

_SENDER = re.compile(rb"<(?:[A-Za-z0-9_]+:)?Sender>.*?<(?:[A-Za-z0-9_]+:)?EANIdentifier>\s*([0-9]{1,20})\s*<",
                     re.DOTALL)
_RECEIVER = re.compile(rb"<(?:[A-Za-z0-9_]+:)?Receiver>.*?<(?:[A-Za-z0-9_]+:)?EANIdentifier>\s*([0-9]{1,20})\s*<",
                       re.DOTALL)
_LETTER = re.compile(rb"<(?:[A-Za-z0-9_]+:)?Letter>\s*<(?:[A-Za-z0-9_]+:)?Identifier>\s*([^<\s]{1,40})\s*<",
                     re.DOTALL)
SNIFF_BYTES = 16_384
CLIENT = "bulk-ingest"


def sniff(path: Path) -> tuple[bytes, bytes]:
    """(which letter the file is a version of, the GLN it is addressed to or b""), from its
    first bytes: the letter as sender GLN and letter id when they show (else the file's name)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return path.name.encode(), b""
    receiver = _RECEIVER.search(head)
    to = receiver.group(1) if receiver else b""
    letter = _LETTER.search(head)
    if letter is None:
        return path.name.encode(), to
    sender = _SENDER.search(head)
    return (sender.group(1) if sender else b"") + b"|" + letter.group(1), to


def share_out(paths: list[Path], jobs: int) -> list[list[str]]:
    """``paths`` (in name order) in ``jobs`` shares: every version of a letter in one share,
    the letters to one receiver in one share (the receiver of a letter's first version),
    receivers given out largest first to the share with the fewest files; name order within
    each share."""
    letters: dict[bytes, list[int]] = {}
    receiver_of: dict[bytes, bytes] = {}
    for i, path in enumerate(paths):
        key, to = sniff(path)
        if key not in letters:
            letters[key] = []
            receiver_of[key] = to or key  # no receiver to be read: the letter stands alone
        letters[key].append(i)
    by_receiver: dict[bytes, list[int]] = {}
    for key, indexes in letters.items():
        by_receiver.setdefault(receiver_of[key], []).extend(indexes)
    shares: list[list[int]] = [[] for _ in range(jobs)]
    for _to, indexes in sorted(by_receiver.items(), key=lambda item: (-len(item[1]), item[0])):
        min(shares, key=len).extend(indexes)
    return [[str(paths[i]) for i in sorted(share)] for share in shares]


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


def _work(paths: list[str], receipts: str | None, batch: int, results) -> None:
    """One process: its own runtime and connection pool, its share of the files in order,
    converted and stored ``batch`` per transaction."""
    from adapter.runtime import load_runtime

    runtime = load_runtime()
    limit = runtime.settings.max_bytes
    summary = Summary()
    writer = _Writer(runtime, summary, Path(receipts) if receipts else None, None)
    counted: list[tuple[str, list[str]]] = []
    writer.report = counted.append
    try:
        for i in range(0, len(paths), batch):
            chunk = paths[i:i + batch]
            writer.store(chunk, _prepare_files(runtime, chunk, limit))
            results.put(counted[:])  # a batch's files at once: one message to the parent, not one a file
            counted.clear()
    finally:
        if counted:
            results.put(counted[:])
        results.put(None)
        runtime.engine.dispose()


def _prepare_files(runtime, paths: list[str], limit: int) -> list[tuple]:
    """Each file read, checked and converted (no store): ``("ready", Prepared)``,
    ``("refused", codes)`` when it cannot be read, or ``("retry", None)`` when preparing it
    failed unexpectedly (it is then ingested on its own, as over HTTP)."""
    import datetime as dt

    from adapter.danish_time import utc_now
    from adapter.service.ingest import prepare

    out: list[tuple] = []
    for name in paths:
        path = Path(name)
        try:
            if path.stat().st_size > limit:
                out.append(("refused", ["GGOP-E003"]))
                continue
            raw = path.read_bytes()
        except OSError:
            out.append(("refused", ["GGOP-E009"]))
            continue
        try:
            out.append(("ready", prepare(runtime, raw, received_at=utc_now().astimezone(dt.UTC))))
        except Exception:  # noqa: BLE001 - ingested again on its own; what happens is counted
            out.append(("retry", None))
    return out


def ingest_folder(folder: Path, *, jobs: int | None = None, receipts: Path | None = None,
                  progress: Callable[[int], None] | None = None, batch: int = 20) -> Summary:
    """Ingest every ``*.xml`` under ``folder`` with ``jobs`` processes, ``batch`` messages per
    transaction; ``progress(n)`` is called as files are committed."""
    paths = files_of(folder)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(paths) or 1))
    shares = share_out(paths, jobs)
    if receipts is not None:
        receipts.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    if not paths:
        return summary
    ctx = mp.get_context("spawn")  # a clean process: no inherited connections or threads
    results = ctx.Queue()
    procs = [ctx.Process(target=_work, args=(share, str(receipts) if receipts else None, max(1, batch), results),
                         daemon=True) for share in shares if share]
    for proc in procs:
        proc.start()
    running = [len(procs)]  # processes that have not said they are done
    for item in _drain(results, procs, running):
        if item is None:
            running[0] -= 1
            continue
        for state, codes in item:
            summary.add(state, codes)
        if progress is not None:
            progress(len(item))
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


class _Writer:
    """Stores prepared messages, ``batch`` per transaction; counts and answers each after its commit."""

    def __init__(self, runtime, summary: Summary, receipts: Path | None, progress: Callable[[int], None] | None):
        self.runtime, self.summary, self.receipts, self.progress = runtime, summary, receipts, progress
        self.report: Callable[[tuple[str, list[str]]], None] | None = None

    def store(self, paths: list[str], prepared: list[tuple]) -> None:
        from adapter import metrics
        from adapter.service.ingest import store_prepared, written_at
        from adapter.store.resources import lock_shared_of

        ready = [(path, p) for path, (what, p) in zip(paths, prepared, strict=True) if what == "ready"]
        done: list[tuple[str, Prepared, IngestResult]] = []
        try:
            with self.runtime.engine.begin() as conn:
                locked = lock_shared_of(conn, [(p.conversion.bundle, written_at(p.conversion.message))
                                               for _path, p in ready if p.conversion is not None])
                done = [(path, p, store_prepared(conn, self.runtime, p, CLIENT, count=False, locked=locked))
                        for path, p in ready]
        except Exception:  # noqa: BLE001 - rolled back: each message again in its own transaction
            done = []
        for _path, p, result in done:  # counted once committed
            metrics.observe_message(p.ident.kind, result.state, result.issues)
        committed = {path: result for path, _p, result in done}
        for path, (what, value) in zip(paths, prepared, strict=True):
            if what == "refused":
                self._count("refused", value)
            elif path in committed:
                self._answer(path, committed[path])
            else:
                self._one(path, value if what == "ready" else None)

    def _one(self, path: str, prepared) -> None:
        """One message in its own transaction, as ``POST /medcom`` takes it."""
        import datetime as dt

        from adapter.danish_time import utc_now
        from adapter.errors import AdapterError
        from adapter.service.ingest import ingest, keep_failed_message, store_prepared, stored_first

        try:
            if prepared is None:
                raw = Path(path).read_bytes()
                result = ingest(self.runtime, raw, received_at=utc_now().astimezone(dt.UTC), client=CLIENT)
            else:
                result = stored_first(
                    self.runtime.engine, lambda conn: store_prepared(conn, self.runtime, prepared, CLIENT),
                    lambda conn, exc: keep_failed_message(conn, prepared.raw, prepared.received_at, CLIENT, exc))
        except OSError:
            self._count("refused", ["GGOP-E009"])
            return
        except AdapterError as exc:
            self._count("failed", sorted({i.code for i in exc.issues}))
            return
        except Exception as exc:  # noqa: BLE001 - counted, never printed (it may carry data)
            self._count("failed", [f"GGOP-E900 {type(exc).__name__}"])
            return
        self._answer(path, result)

    def _answer(self, path: str, result) -> None:
        if self.receipts is not None and result.receipt:
            (self.receipts / (Path(path).stem + ".receipt.xml")).write_bytes(result.receipt)
        errors = sorted({i.code for i in result.issues if i.is_error}) if result.state == "refused" else []
        self._count(result.state, errors)

    def _count(self, state: str, codes: list[str]) -> None:
        self.summary.add(state, codes)
        if self.report is not None:
            self.report((state, codes))
        if self.progress is not None:
            self.progress(1)


