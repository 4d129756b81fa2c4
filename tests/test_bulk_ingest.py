"""``ggop-adapter ingest DIR``: every file stored and answered as POST /medcom would, in
parallel processes, the files left where they are; a correction follows its original."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import func, select
from tests.support import TEST_ID_KEY

from adapter.generate import generate_messages
from adapter.service.bulk import letter_key
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
    assert letter_key(tmp_path / "a.xml") == letter_key(tmp_path / "b.xml")
    assert letter_key(tmp_path / "c.xml") == b"c.xml"
