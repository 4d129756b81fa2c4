"""The inbox folder as an operator meets it: one bad file goes to failed/ and the rest go on,
a crash or a name used twice loses nothing, the watcher outlives any failure, and
``serve --inbox`` boots with files waiting."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from tests.support.service_process import free_port, stop_service

from adapter.data import MAPPINGS_DIR
from adapter.service.inbox import WatcherProcess, process_inbox, watch
from adapter.store.schema import message_keys, messages
from conftest import DATA, REPO, runtime_for

CLOCK = lambda: dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
PLAN = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
OTHER_PLAN = (DATA / "ggop" / "child-consent-nej.xml").read_bytes()
BIG_PLAN = (DATA / "ggop" / "full-specialiseret.xml").read_bytes()
LETTER = (DATA / "xdis91" / "letter-to-municipality.xml").read_bytes()


def make_inbox(tmp_path: Path, **files: bytes) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, raw in files.items():
        (inbox / name).write_bytes(raw)
    return inbox


def store_counts(runtime) -> tuple[int, int]:
    with runtime.engine.connect() as conn:
        keys = conn.execute(select(func.count()).select_from(message_keys)).scalar_one()
        accepted = conn.execute(select(func.count()).select_from(messages)
                                .where(messages.c.state == "accepted")).scalar_one()
    return keys, accepted


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def wait_until(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


# --------------------------------------------------------------------------------------------
# One bad file goes to failed/, the others go on
# --------------------------------------------------------------------------------------------


def test_a_directory_or_a_file_over_the_limit_goes_to_failed_with_a_reason(tmp_path):
    inbox = make_inbox(tmp_path, **{"a.xml": PLAN, "big.xml": BIG_PLAN, "z.xml": LETTER})
    (inbox / "folder.xml").mkdir()
    (inbox / "processing").mkdir()
    (inbox / "processing" / "left.xml").mkdir()  # an odd leftover must not stay forever
    (inbox / "left.xml").write_bytes(OTHER_PLAN)  # and must not block a new file of its name
    runtime = runtime_for(database_url=f"sqlite:///{tmp_path}/a.db", max_bytes=len(PLAN) + 100)
    assert len(BIG_PLAN) > len(PLAN) + 100 > len(LETTER)

    counts = process_inbox(inbox, runtime, clock=CLOCK)

    assert counts == {"accepted": 3, "unreadable": 3}
    assert listing(inbox / "done") == {"a.xml", "a.receipt.xml", "left-1.xml", "left-1.receipt.xml",
                                       "z.xml", "z.receipt.xml"}
    assert listing(inbox / "failed") == {"big.xml", "big.reason", "folder.xml", "folder.reason",
                                         "left.xml", "left.reason"}
    assert (inbox / "failed" / "big.reason").read_text() == "GGOP-E003\n"  # the code, never content
    assert (inbox / "failed" / "folder.reason").read_text() == "GGOP-E009 not a regular file\n"
    assert not any((inbox / "processing").iterdir())
    assert store_counts(runtime) == (3, 3)  # the file over the limit is not stored, as over HTTP (413)


def test_a_file_without_read_permission_goes_to_failed_and_the_rest_continue(tmp_path):
    inbox = make_inbox(tmp_path, **{"a.xml": PLAN, "secret.xml": OTHER_PLAN, "z.xml": LETTER})
    (inbox / "secret.xml").chmod(0)
    try:
        (inbox / "secret.xml").read_bytes()
        pytest.skip("this user reads files without read permission (root with CAP_DAC_OVERRIDE)")
    except PermissionError:
        pass
    runtime = runtime_for(database_url=f"sqlite:///{tmp_path}/a.db")

    counts = process_inbox(inbox, runtime, clock=CLOCK)

    assert counts == {"accepted": 2, "unreadable": 1}
    assert (inbox / "failed" / "secret.reason").read_text() == "GGOP-E009 PermissionError\n"
    assert {"a.receipt.xml", "z.receipt.xml"} <= listing(inbox / "done")


def test_files_taken_by_another_watcher_between_listing_and_reading_are_skipped(tmp_path):
    inbox = make_inbox(tmp_path, **{"c.xml": LETTER, "d.xml": BIG_PLAN})
    (inbox / "processing").mkdir()  # a killed run left two files behind
    (inbox / "processing" / "a.xml").write_bytes(PLAN)
    (inbox / "processing" / "b.xml").write_bytes(OTHER_PLAN)
    runtime = runtime_for(database_url=f"sqlite:///{tmp_path}/a.db")
    other: dict[str, int] = {}

    def clock_while_another_watcher_runs() -> dt.datetime:
        # an operator's `inbox --once` on the same folder runs through everything while this
        # run reads its first file: a.xml is moved away under it, b.xml, c.xml and d.xml
        # vanish between this run's listing and its claiming or reading them
        if not other:
            other.update(process_inbox(inbox, runtime, clock=CLOCK))
        return CLOCK()

    counts = process_inbox(inbox, runtime, clock=clock_while_another_watcher_runs)

    assert other == {"accepted": 4} and counts == {}
    assert listing(inbox / "done") == {f"{n}{s}" for n in "abcd" for s in (".xml", ".receipt.xml")}
    assert not any((inbox / "processing").iterdir()) and not any((inbox / "failed").iterdir())
    assert store_counts(runtime) == (4, 4)


def test_a_processing_defect_moves_only_that_file_to_failed(tmp_path):
    # The deployment's own copy of the mappings lacks a text every G-GOP needs: converting a
    # plan is a defect of ours (GGOP-E401), a letter still converts.
    mappings = shutil.copytree(MAPPINGS_DIR, tmp_path / "mappings")
    texts_file = mappings / "codesystems" / "adapter-texts.json"
    texts = json.loads(texts_file.read_text(encoding="utf-8"))
    texts["concept"] = [c for c in texts["concept"] if c["code"] != "ggop-document"]
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    inbox = make_inbox(tmp_path, **{"a-plan.xml": PLAN, "b-letter.xml": LETTER})
    runtime = runtime_for(database_url=f"sqlite:///{tmp_path}/a.db", mappings_dir=str(mappings))

    counts = process_inbox(inbox, runtime, clock=CLOCK)

    assert counts == {"failed": 1, "accepted": 1}
    assert listing(inbox / "failed") == {"a-plan.xml", "a-plan.reason"}
    assert (inbox / "failed" / "a-plan.reason").read_text() == "GGOP-E401\n"
    assert listing(inbox / "done") == {"b-letter.xml", "b-letter.receipt.xml"}
    with runtime.engine.connect() as conn:  # the plan's bytes are kept for an operator
        states = sorted(conn.execute(select(messages.c.state)).scalars())
    assert states == ["accepted", "failed"]


# --------------------------------------------------------------------------------------------
# A crash midway, and a name used twice, lose nothing
# --------------------------------------------------------------------------------------------


def test_a_new_file_never_replaces_a_leftover_or_a_finished_file_of_the_same_name(tmp_path):
    inbox = make_inbox(tmp_path, **{"a.xml": OTHER_PLAN, "b.xml": LETTER})
    runtime = runtime_for(database_url=f"sqlite:///{tmp_path}/a.db")
    (inbox / "processing").mkdir()
    (inbox / "processing" / "a.xml").write_bytes(PLAN)  # claimed, then the process was killed
    (inbox / "done").mkdir()
    (inbox / "done" / "b.xml").write_bytes(BIG_PLAN)  # finished yesterday under the same name
    (inbox / "done" / "b.receipt.xml").write_bytes(b"yesterday's receipt")

    counts = process_inbox(inbox, runtime, clock=CLOCK)

    assert counts == {"accepted": 3}
    done = inbox / "done"
    assert listing(done) == {"a.xml", "a.receipt.xml", "a-1.xml", "a-1.receipt.xml",
                             "b.xml", "b.receipt.xml", "b-1.xml", "b-1.receipt.xml"}
    assert (done / "a.xml").read_bytes() == PLAN and (done / "a-1.xml").read_bytes() == OTHER_PLAN
    assert (done / "b.receipt.xml").read_bytes() == b"yesterday's receipt"
    assert (done / "b-1.xml").read_bytes() == LETTER
    assert store_counts(runtime) == (3, 3)


def test_a_run_killed_midway_is_finished_by_the_next_without_doubling(tmp_path):
    inbox = make_inbox(tmp_path, **{"a.xml": PLAN, "b.xml": OTHER_PLAN, "c.xml": LETTER, "d.xml": BIG_PLAN})
    db = f"sqlite:///{tmp_path}/a.db"
    # a real process, killed (os._exit, no clean-up) as it takes the time for its third file:
    # two files are done, the third is claimed and the fourth still waits in the inbox
    script = (
        "import datetime as dt, os, sys\n"
        "from pathlib import Path\n"
        "from adapter.config import Settings\n"
        "from adapter.runtime import load_runtime\n"
        "from adapter.service.inbox import process_inbox\n"
        "calls = []\n"
        "def clock():\n"
        "    calls.append(1)\n"
        "    if len(calls) == 3:\n"
        "        os._exit(9)\n"
        "    return dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)\n"
        "process_inbox(Path(sys.argv[1]), load_runtime(Settings.load()), clock=clock)\n"
    )
    env = {**os.environ, "ADAPTER_DATABASE_URL": db}
    killed = subprocess.run([sys.executable, "-c", script, str(inbox)], cwd=REPO, env=env, check=False)
    assert killed.returncode == 9
    assert listing(inbox / "processing") == {"c.xml"} and (inbox / "d.xml").exists()
    receipts = {p.name: p.read_bytes() for p in (inbox / "done").glob("*.receipt.xml")}
    # as if that run had been killed after a.xml's commit and receipt, before its move
    os.replace(inbox / "done" / "a.xml", inbox / "processing" / "a.xml")
    runtime = runtime_for(database_url=db)

    counts = process_inbox(inbox, runtime, clock=CLOCK)

    assert counts == {"accepted": 2, "duplicate": 1}
    assert listing(inbox / "done") == {f"{n}{s}" for n in "abcd" for s in (".xml", ".receipt.xml")}
    assert (inbox / "done" / "a.receipt.xml").read_bytes() == receipts["a.receipt.xml"]
    assert store_counts(runtime) == (4, 4)


# --------------------------------------------------------------------------------------------
# The watcher outlives any failure
# --------------------------------------------------------------------------------------------


def test_the_watch_loop_outlives_an_unusable_store_and_picks_up_afterwards(tmp_path, caplog):
    inbox = make_inbox(tmp_path, **{"a.xml": PLAN})
    (tmp_path / "a.db").mkdir()  # the store cannot be opened: sqlite3 raises OperationalError
    runtime = runtime_for(database_url=f"sqlite:///{tmp_path}/a.db")
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(inbox, runtime, 0.05), kwargs={"stop": stop, "max_pause": 0.2},
                               daemon=True)
    with caplog.at_level(logging.ERROR, logger="ggop.inbox"):
        watcher.start()
        try:
            assert wait_until(lambda: caplog.text.count("scan failed (OperationalError)") >= 2, 5)
            assert (inbox / "a.xml").exists()  # a store problem fails no file
            (tmp_path / "a.db").rmdir()
            assert wait_until(lambda: (inbox / "done" / "a.receipt.xml").exists(), 10)
            assert watcher.is_alive()
        finally:
            stop.set()
            watcher.join(5)
    assert not watcher.is_alive()
    assert "0103450017" not in caplog.text and "Testesen" not in caplog.text


@pytest.mark.slow
def test_the_watcher_process_is_started_again_when_it_dies(tmp_path, monkeypatch, caplog):
    inbox = make_inbox(tmp_path, **{"a.xml": PLAN})
    monkeypatch.setenv("ADAPTER_DATABASE_URL", f"sqlite:///{tmp_path}/a.db")
    with caplog.at_level(logging.ERROR, logger="ggop.inbox"):
        watcher = WatcherProcess(inbox, interval=0.1, restart_after=0.1).start()
        try:
            assert wait_until(lambda: (inbox / "done" / "a.receipt.xml").exists())
            first = watcher.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            (inbox / "b.xml").write_bytes(LETTER)
            assert wait_until(lambda: (inbox / "done" / "b.receipt.xml").exists())
            assert watcher.pid != first
        finally:
            watcher.stop()
    assert "inbox watcher stopped" in caplog.text
    assert watcher.pid is not None
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(watcher.pid, 0)


@pytest.mark.slow
def test_serve_with_files_waiting_boots_and_empties_the_inbox(tmp_path):
    from adapter.generate import generate_messages

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    msgs = generate_messages(30, seed=5)
    for m in msgs:
        (inbox / m.filename).write_bytes(m.xml)
    port = free_port()
    env = {**os.environ, "ADAPTER_DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
           "ADAPTER_CLIENTS_FILE": str(REPO / "config" / "clients.sample.yaml")}
    log_file = tmp_path / "serve.log"
    with open(log_file, "wb") as log_out:
        proc = subprocess.Popen([sys.executable, "-m", "adapter", "serve", "--port", str(port), "--workers", "2",
                                 "--inbox", str(inbox)], cwd=REPO, env=env, stdout=log_out, stderr=log_out,
                                start_new_session=True)
    names = {m.filename for m in msgs}

    def ready() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except requests.RequestException:  # not listening yet, or a worker stuck at boot
            return False

    try:
        booted = wait_until(ready, 20)
        emptied = wait_until(lambda: {p.name for p in (inbox / "done").glob("*.xml")} >= names, 20)
        still_ready = ready()
        master_files = open_files(proc.pid)
    finally:
        stop_service(proc)
    tail = log_file.read_text(errors="replace")[-2000:]
    assert booted and emptied and still_ready, tail
    assert "database is locked" not in tail
    # The cause: a worker forked while the master's watcher thread held an SQLite lock never
    # got it. The master holds no store connection at all; the watcher is a process of its own.
    assert not any(f.startswith(str(tmp_path / "a.db")) for f in master_files)


def open_files(pid: int) -> set[str]:
    fds = Path(f"/proc/{pid}/fd")
    if not fds.is_dir():
        pytest.skip("no /proc to list a process's open files")
    out = set()
    for fd in fds.iterdir():
        try:
            out.add(os.readlink(fd))
        except OSError:  # closed meanwhile
            continue
    return out
