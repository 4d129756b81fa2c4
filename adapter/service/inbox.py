"""Inbox folder mode: files dropped by a VANS client are ingested like HTTP pushes.

Crash safety: a file is first renamed into ``processing/`` (atomic on one file system), then
ingested (the database transaction is the commit point), then its receipt is written to
``done/`` or ``failed/`` (``<name>.receipt.xml``; ``<name>.outcome.json`` when no receipt can
be addressed; ``<name>.reason``, naming only the error code, when the file cannot be read or
ingesting it failed) and the file moved beside it. A process killed at any point leaves the
file in the inbox or in ``processing/``; the next run ingests what is in ``processing/`` first,
and MedCom deduplication turns that into the identical receipt — nothing is lost or doubled.
A name already used in ``processing/``, ``done/`` or ``failed/`` is claimed as ``<name>-1``,
``<name>-2``, …, so no file ever replaces another.

One bad file never stops the others: a file without read permission, a directory, a file over
the size limit, or one whose ingest raised goes to ``failed/``; a file gone before it was read
is skipped. Only a store that cannot be used (``OperationalError``: unreachable, locked) ends a
scan, and the file waits in ``processing/`` for the next one. :func:`watch` never ends on an
exception; ``serve --inbox`` runs it as a process of its own (:class:`WatcherProcess`).
Logs name files, states, error codes and exception types — never message content.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import OperationalError

from adapter.danish_time import utc_now
from adapter.errors import AdapterError
from adapter.medcom_fhir.wire import is_fhir_message
from adapter.outcome import operation_outcome
from adapter.runtime import Runtime
from adapter.service.ingest import ingest
from adapter.service.process_message import receive_file

log = logging.getLogger("ggop.inbox")
SUFFIXES = (".xml", ".XML", ".json", ".JSON")  # JSON: MedCom FHIR messages (CareCommunication)
COMPANIONS = (".receipt.xml", ".outcome.json", ".reason", ".acknowledgement.xml", ".acknowledgement.json")


class _Unreadable(Exception):
    """A claimed file that cannot be ingested; ``reason`` is an error code and at most an
    exception type name."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _unused_name(name: str, *folders: Path) -> str:
    """``name``, or ``<stem>-N<suffix>`` when the name or one of its companions is taken in a folder."""
    stem, suffix = os.path.splitext(name)
    n = 0
    while True:
        candidate = f"{stem}-{n}" if n else stem
        taken = (candidate + suffix, *(candidate + c for c in COMPANIONS))
        if not any(os.path.lexists(folder / t) for folder in folders for t in taken):
            return candidate + suffix
        n += 1


def _claim(entry: Path, processing: Path, *finished: Path) -> Path | None:
    """Move ``entry`` into ``processing/`` (None when it is gone or cannot be moved)."""
    target = processing / _unused_name(entry.name, processing, *finished)
    try:
        os.replace(entry, target)
    except FileNotFoundError:
        log.warning("inbox %s: gone before it was claimed", entry.name)
        return None
    except OSError as exc:
        log.error("inbox %s: cannot be claimed (%s)", entry.name, type(exc).__name__)
        return None
    if target.name != entry.name:
        log.warning("inbox %s: the name is taken, processed as %s", entry.name, target.name)
    return target


def _read(path: Path, limit: int) -> bytes:
    """The file's bytes: FileNotFoundError when it is gone, _Unreadable when it is no regular
    file, cannot be read or is over ``limit`` (never read beyond it)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise _Unreadable("GGOP-E009 not a regular file")
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _Unreadable(f"GGOP-E009 {type(exc).__name__}") from None
    if len(raw) > limit:
        raise _Unreadable("GGOP-E003")
    return raw


def _finish(path: Path, folder: Path, state: str, suffix: str, data: bytes) -> str | None:
    """Write the companion (receipt, outcome or reason), then move the file beside it."""
    try:
        _atomic_write(folder / (path.stem + suffix), data)
        os.replace(path, folder / path.name)
    except OSError as exc:  # it stays in processing/ and is tried again on the next scan
        log.error("inbox %s: cannot be moved to %s/ (%s)", path.name, folder.name, type(exc).__name__)
        return None
    log.info("inbox %s: %s, moved to %s/", path.name, state, folder.name)
    return state


def _process(path: Path, runtime: Runtime, clock: Callable[[], dt.datetime], client: str,
             done: Path, failed: Path) -> str | None:
    """Ingest one claimed file and move it on; its state, or None when it is gone or still waits.
    Raises OperationalError (the store, not the file): the file waits in ``processing/``."""
    try:
        raw = _read(path, runtime.limits.max_bytes)
    except FileNotFoundError:
        log.warning("inbox %s: gone before it was read", path.name)
        return None
    except _Unreadable as exc:
        log.error("inbox %s: unreadable (%s)", path.name, exc.reason)
        return _finish(path, failed, "unreadable", ".reason", (exc.reason + "\n").encode())
    try:
        if is_fhir_message(raw):  # a MedCom FHIR message: answered with an Acknowledgement
            state, ok, suffix, answer = receive_file(runtime, raw, received_at=clock(), client=client)
            log.info("inbox %s: %s", path.name, state)
            return _finish(path, done if ok else failed, state, suffix, answer)
        result = ingest(runtime, raw, received_at=clock(), client=client)
    except OperationalError:
        raise
    except Exception as exc:  # noqa: BLE001 - a defect of ours must not stop the files behind this one
        # MappingError: the message is kept as failed in the store, for an operator to replay
        reason = (" ".join(sorted({i.code for i in exc.issues})) if isinstance(exc, AdapterError)
                  else f"GGOP-E900 {type(exc).__name__}")
        log.error("inbox %s: ingest failed (%s)", path.name, reason)
        return _finish(path, failed, "failed", ".reason", (reason + "\n").encode())
    log.info("inbox %s: message/%s %s", path.name, result.message_id, result.state)
    folder = done if result.state in ("accepted", "duplicate") and result.http_status == 200 else failed
    if result.receipt is not None:
        return _finish(path, folder, result.state, ".receipt.xml", result.receipt)
    outcome = json.dumps(operation_outcome(result.issues), ensure_ascii=False).encode("utf-8")
    return _finish(path, folder, result.state, ".outcome.json", outcome)


def process_inbox(directory: Path, runtime: Runtime,
                  clock: Callable[[], dt.datetime] = utc_now) -> dict[str, int]:
    """Ingest every file waiting in ``directory``, those left in ``processing/`` by an
    interrupted run first; the count per state (accepted, duplicate, refused, failed,
    unreadable). Raises only when the store cannot be used; the files then wait."""
    directory = Path(directory)
    processing, done, failed = directory / "processing", directory / "done", directory / "failed"
    for d in (processing, done, failed):
        d.mkdir(parents=True, exist_ok=True)
    runtime.engine  # opened (and migrated) before any file moves  # noqa: B018
    client = f"inbox:{directory.name}"
    counts: Counter[str] = Counter()
    waiting = sorted(processing.iterdir())  # left over from an interrupted run
    waiting += sorted(e for e in directory.iterdir() if e.suffix in SUFFIXES and not e.name.startswith("."))
    for entry in waiting:
        path = entry if entry.parent == processing else _claim(entry, processing, done, failed)
        state = _process(path, runtime, clock, client, done, failed) if path is not None else None
        if state is not None:
            counts[state] += 1
    return dict(counts)


def watch(directory: Path, runtime: Runtime, interval: float = 2.0, *,
          stop: threading.Event | None = None, max_pause: float = 60.0) -> None:
    """Process the inbox every ``interval`` seconds until ``stop`` is set. No exception ends the
    loop: a failed scan (the store unreachable or locked, the folder gone) is logged by its
    exception type and tried again after a pause that doubles up to ``max_pause``."""
    stop = stop or threading.Event()
    failures = 0
    while not stop.is_set():
        try:
            process_inbox(directory, runtime)
            failures = 0
        except Exception as exc:  # noqa: BLE001 - the watcher outlives any failure, and says so
            failures += 1
            log.error("inbox %s: scan failed (%s), trying again", directory, type(exc).__name__)
        stop.wait(min(interval * 2 ** failures, max_pause))


class WatcherProcess:
    """``ggop-adapter inbox DIR`` as a child process (same settings, from the environment),
    started again after ``restart_after`` seconds whenever it exits, until :meth:`stop`.

    ``serve --inbox`` runs this instead of a watcher thread in the gunicorn master: a worker
    forked while a thread of the master holds an SQLite lock never gets that lock
    (``database is locked``), so the master must hold no store connection at all."""

    def __init__(self, directory: Path, interval: float = 2.0, restart_after: float = 5.0):
        self.command = [sys.executable, "-m", "adapter", "inbox", str(directory), "--interval", str(interval)]
        self.restart_after = restart_after
        self._owner = os.getpid()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> WatcherProcess:
        threading.Thread(target=self._supervise, name="inbox-watcher", daemon=True).start()
        return self

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._lock:
                    if self._stopping.is_set():
                        return
                    self._proc = proc = subprocess.Popen(self.command)
                status: object = proc.wait()
            except Exception as exc:  # noqa: BLE001 - not even a failed start ends the supervision
                status = type(exc).__name__
            if not self._stopping.is_set():
                log.error("inbox watcher stopped (%s), starting it again in %g s", status, self.restart_after)
                self._stopping.wait(self.restart_after)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the child (only in the process that started it, not in a forked worker)."""
        if os.getpid() != self._owner:
            return
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
