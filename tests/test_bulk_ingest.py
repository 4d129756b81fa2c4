"""``ggop-adapter ingest DIR``: every file stored and answered as POST /medcom would, in
parallel processes, the files left where they are; a correction follows its original."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select
from tests.support import TEST_ID_KEY

from adapter.generate import generate_messages
from adapter.service.bulk import share_out, sniff
from adapter.store.engine import open_store
from adapter.store.schema import messages
from conftest import DATA, REPO


def test_a_folder_is_ingested_by_two_processes_and_counted(tmp_path):
    folder = tmp_path / "year"
    (folder / "sub").mkdir(parents=True)
    for m in generate_messages(12, seed=3):
        (folder / "sub" / m.filename).write_bytes(m.xml)
    (folder / "broken.xml").write_bytes(b"<<<not xml")
    (folder / "again.xml").write_bytes((DATA / "ggop" / "minimal-almen.xml").read_bytes())
    (folder / "again-copy.xml").write_bytes((DATA / "ggop" / "minimal-almen.xml").read_bytes())
    url = f"sqlite:///{tmp_path}/store.db"
    env = {**os.environ, "ADAPTER_DATABASE_URL": url, "ADAPTER_ID_KEY": TEST_ID_KEY}
    done = subprocess.run([sys.executable, "-m", "adapter", "ingest", str(folder), "--jobs", "2", "--no-progress",
                           "--receipts", str(tmp_path / "receipts")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "15 files" in done.stderr and "accepted 13" in done.stderr and "duplicate 1" in done.stderr
    assert "refused 1" in done.stderr
    assert len(list((tmp_path / "receipts").glob("*.receipt.xml"))) == 14  # the unreadable one gets none
    assert len(list(folder.rglob("*.xml"))) == 15  # the files stay
    engine = open_store(url, id_key=TEST_ID_KEY.encode())
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 15
    engine.dispose()


def test_the_versions_of_one_letter_go_to_the_same_process(tmp_path):
    original = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
    corrected = original.replace(b"nytbrev", b"rettetbrev")
    (tmp_path / "a.xml").write_bytes(original)
    (tmp_path / "b.xml").write_bytes(corrected)
    (tmp_path / "c.xml").write_bytes(b"no letter here")
    assert sniff(tmp_path / "a.xml")[0] == sniff(tmp_path / "b.xml")[0]
    assert sniff(tmp_path / "c.xml") == (b"c.xml", b"")


def test_files_are_shared_out_by_letter_and_receiver_in_balanced_shares(tmp_path):
    """Every version of a letter in one share (in name order), all the letters to one
    receiver in one share, so no two processes write one municipality's Organization; the
    shares' sizes differ by no more than one receiver's files."""
    original = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
    for m in generate_messages(240, seed=5):
        (tmp_path / m.filename).write_bytes(m.xml)
    # a correction addressed elsewhere than its original still follows it
    (tmp_path / "zz-original.xml").write_bytes(original)
    (tmp_path / "zz-rettet.xml").write_bytes(original.replace(b"nytbrev", b"rettetbrev").replace(
        b"5790007654324</mm100:EANIdentifier>", b"5790000123117</mm100:EANIdentifier>", 1))
    paths = sorted(tmp_path.glob("*.xml"))
    shares = share_out(paths, 3)
    assert sorted(p for share in shares for p in share) == [str(p) for p in paths]
    assert all(share == sorted(share) for share in shares)
    where = {p: i for i, share in enumerate(shares) for p in share}
    letters, receivers = {}, {}
    for p in paths:
        key, to = sniff(p)
        letters.setdefault(key, set()).add(where[str(p)])
        receivers.setdefault(to, set()).add(where[str(p)])
    assert all(len(s) == 1 for s in letters.values())
    assert letters[sniff(tmp_path / "zz-original.xml")[0]] == {where[str(tmp_path / "zz-rettet.xml")]}
    assert sniff(tmp_path / "zz-rettet.xml")[1] == b"5790000123117"
    assert len(receivers) > 3 and all(len(s) == 1 for s in receivers.values())
    largest = max(sum(1 for p in paths if sniff(p)[1] == to) for to in receivers)
    assert max(map(len, shares)) - min(map(len, shares)) <= largest


def test_a_failing_message_in_a_batch_is_kept_as_failed_and_the_others_are_stored(tmp_path, monkeypatch):
    """A batch is one transaction: when one message fails it is rolled back, and each message
    is stored again on its own, so the others are kept and the failing one is kept as failed."""
    import adapter.service.ingest as ingest_module
    from adapter.errors import MappingError, issue
    from adapter.service.bulk import Summary, _prepare_files, _Writer
    from conftest import runtime_for

    paths = []
    for m in generate_messages(3, seed=5):
        (tmp_path / m.filename).write_bytes(m.xml)
        paths.append(str(tmp_path / m.filename))
    engine = open_store(f"sqlite:///{tmp_path}/store.db", id_key=TEST_ID_KEY.encode())
    runtime = runtime_for(engine)
    prepared = _prepare_files(runtime, paths, runtime.settings.max_bytes)
    assert [what for what, _ in prepared] == ["ready"] * 3
    broken = id(prepared[1][1].conversion.bundle)
    save_bundle = ingest_module.save_bundle

    def failing(conn, bundle, **kwargs):
        if id(bundle) == broken:
            raise MappingError(issue("GGOP-E401", detail="test"))
        return save_bundle(conn, bundle, **kwargs)

    monkeypatch.setattr(ingest_module, "save_bundle", failing)
    summary = Summary()
    _Writer(runtime, summary, None, None).store(paths, prepared)
    assert summary.by_state == {"accepted": 2, "failed": 1} and summary.by_code == {"GGOP-E401": 1}
    with engine.connect() as conn:
        states = sorted(conn.execute(select(messages.c.state)).scalars())
    assert states == ["accepted", "accepted", "failed"]
    engine.dispose()


@pytest.mark.slow
def test_four_processes_share_the_organisations_without_deadlocks_or_lost_versions(store_url, tmp_path):
    """Many plans name the same hospitals and municipalities, whose Organizations change from
    message to message (another department writes). Four processes storing batches of them
    take their locks in one order: no deadlock, nothing failed, and every shared resource's
    history is one unbroken line of versions ending in the current one."""
    from tests.support.versions import version_lines

    folder = tmp_path / "year"
    folder.mkdir()
    for m in generate_messages(320, seed=17):
        (folder / m.filename).write_bytes(m.xml)
    engine = open_store(store_url, id_key=TEST_ID_KEY.encode())
    deadlocks_before = _deadlocks(engine)
    env = {**os.environ, "ADAPTER_DATABASE_URL": store_url, "ADAPTER_ID_KEY": TEST_ID_KEY}
    done = subprocess.run([sys.executable, "-m", "adapter", "ingest", str(folder), "--jobs", "4", "--batch", "20",
                           "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "failed" not in done.stderr and "accepted 320" in done.stderr, done.stderr
    assert _deadlocks(engine) == deadlocks_before
    current, versions = version_lines(engine)
    engine.dispose()
    assert max(current.values()) > 1  # the organisations were written again and again
    assert versions == {rid: list(range(1, n + 1)) for rid, n in current.items()}


def _deadlocks(engine) -> int:
    """The deadlocks PostgreSQL has resolved in this database (0 on SQLite: one writer at a time)."""
    from sqlalchemy import text

    if engine.dialect.name != "postgresql":
        return 0
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return conn.execute(text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
                            ).scalar_one()
