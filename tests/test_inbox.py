"""Inbox folder mode: files move to done/ or failed/ with their receipts; an interrupted
run loses nothing and doubles nothing."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select
from tests.support import TEST_ID_KEY

from adapter.config import Settings
from adapter.runtime import load_runtime
from adapter.service.inbox import process_inbox
from adapter.store.engine import open_store
from adapter.store.schema import message_keys, messages
from conftest import DATA, REPO

CLOCK = lambda: dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def test_files_end_in_done_or_failed_with_receipts(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "plan.xml").write_bytes((DATA / "ggop" / "full-specialiseret.xml").read_bytes())
    (inbox / "bad.xml").write_bytes((DATA / "invalid" / "unknown-plan-type.xml").read_bytes())
    (inbox / "junk.xml").write_bytes(b"not xml at all")
    (inbox / "notes.txt").write_text("left alone")
    settings = Settings(id_key=TEST_ID_KEY, database_url=f"sqlite:///{tmp_path}/a.db")
    counts = process_inbox(inbox, load_runtime(settings), clock=CLOCK)
    assert counts == {"accepted": 1, "refused": 2}
    assert b"<PositiveReceipt>" in (inbox / "done" / "plan.receipt.xml").read_bytes()
    assert (inbox / "done" / "plan.xml").exists()
    assert b"<RefuseCode>syntaksfejl</RefuseCode>" in (inbox / "failed" / "bad.receipt.xml").read_bytes()
    assert "GGOP-E001" in (inbox / "failed" / "junk.outcome.json").read_text()
    assert (inbox / "notes.txt").exists() and not any((inbox / "processing").iterdir())


def test_leftover_in_processing_is_ingested_again_without_doubling(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "processing").mkdir(parents=True)
    raw = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
    settings = Settings(id_key=TEST_ID_KEY, database_url=f"sqlite:///{tmp_path}/a.db")
    (inbox / "a.xml").write_bytes(raw)
    process_inbox(inbox, load_runtime(settings), clock=CLOCK)
    first_receipt = (inbox / "done" / "a.receipt.xml").read_bytes()
    # a run killed after the commit but before the move leaves the file in processing/
    (inbox / "processing" / "a.xml").write_bytes(raw)
    counts = process_inbox(inbox, load_runtime(settings), clock=CLOCK)
    assert counts == {"duplicate": 1}
    assert (inbox / "done" / "a.receipt.xml").read_bytes() == first_receipt
    engine = open_store(settings.database_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(message_keys)).scalar_one() == 1


@pytest.mark.slow
def test_killing_the_inbox_process_midway_loses_nothing(tmp_path):
    from adapter.generate import generate_messages

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    msgs = generate_messages(120, seed=77)
    for m in msgs:
        (inbox / m.filename).write_bytes(m.xml)
    env = {**os.environ, "ADAPTER_DATABASE_URL": f"sqlite:///{tmp_path}/a.db"}
    cmd = [sys.executable, "-m", "adapter", "inbox", str(inbox), "--interval", "0.2"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((inbox / "done").glob("*.xml")) if (inbox / "done").exists() else []) < 20:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(cmd[:-2] + ["--once"], cwd=REPO, env=env, check=True, stderr=subprocess.DEVNULL)
    names = {m.filename for m in msgs}
    finished = {p.name for p in (inbox / "done").glob("*.xml") if not p.name.endswith(".receipt.xml")} | \
               {p.name for p in (inbox / "failed").glob("*.xml") if not p.name.endswith(".receipt.xml")}
    assert finished == names
    engine = open_store(env["ADAPTER_DATABASE_URL"])
    with engine.connect() as conn:
        keys = conn.execute(select(func.count()).select_from(message_keys)).scalar_one()
        accepted = conn.execute(select(func.count()).select_from(messages).where(messages.c.state == "accepted")).scalar_one()
    assert keys == len(msgs) and accepted == len(msgs)
