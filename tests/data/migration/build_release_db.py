"""Fill a store with the 0.1.0 release and dump it: the input of the migration tests.

Run with the 0.1.0 release installed (``git checkout e735538``)::

    python tests/data/migration/build_release_db.py OUT.json

Generated messages (seed 7) are edited so that one citizen has two plans from two
hospitals and a letter in one municipality, and a third plan in another municipality.
The dump holds every row of every table (bytes as base64, times as ISO 8601)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

from lxml import etree
from sqlalchemy import select

from adapter.config import Settings
from adapter.generate import generate_messages
from adapter.runtime import load_runtime
from adapter.service.ingest import ingest
from adapter.store.schema import metadata

M100 = "urn:oio:medcom:municipality:1.0.0"


def _local(el) -> str:
    return etree.QName(el).localname


def _find(root, name):
    return next(el for el in root.iter() if isinstance(el.tag, str) and _local(el) == name)


def edit(raw: bytes, cpr: str | None = None, receiver_from: bytes | None = None) -> bytes:
    root = etree.fromstring(raw)
    if cpr is not None:
        _find(root, "CivilRegistrationNumber").text = cpr
    if receiver_from is not None:
        theirs = _find(etree.fromstring(receiver_from), "Receiver")
        ours = _find(root, "Receiver")
        namespaces = {_local(c): etree.QName(c).namespace for c in ours if isinstance(c.tag, str)}
        for child in list(ours):
            ours.remove(child)
        by_name = {_local(c): c.text for c in theirs if isinstance(c.tag, str)}
        for child in theirs:
            if isinstance(child.tag, str) and _local(child) in ("EANIdentifier", "Identifier", "IdentifierCode",
                                                                 "OrganisationName", "DepartmentName"):
                ns = namespaces.get(_local(child), etree.QName(child).namespace)
                new = etree.SubElement(ours, etree.QName(ns, _local(child)) if ns else _local(child))
                new.text = by_name[_local(child)]
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        keep = {"ggop-0001-almen.xml", "ggop-0002-almen.xml", "ggop-0003-almen.xml", "ggop-0006-almen.xml",
                "xdis91-0011.xml", "xdis91-0012.xml"}
        files = {m.filename: m.xml for m in generate_messages(16, 7) if m.filename in keep}
        first = files["ggop-0001-almen.xml"]
        cpr = _find(etree.fromstring(first), "CivilRegistrationNumber").text
        files["ggop-0002-almen.xml"] = edit(files["ggop-0002-almen.xml"], cpr=cpr, receiver_from=first)
        files["xdis91-0011.xml"] = edit(files["xdis91-0011.xml"], cpr=cpr, receiver_from=first)
        files["ggop-0003-almen.xml"] = edit(files["ggop-0003-almen.xml"], cpr=cpr)
        url = f"sqlite:///{tmp}/release.db"
        runtime = load_runtime(Settings(database_url=url))
        at = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
        for i, (name, raw) in enumerate(files.items()):
            result = ingest(runtime, raw, received_at=at + dt.timedelta(minutes=i), client="fixture")
            print(name, result.state, result.http_status)
        engine = runtime.engine
        dump: dict[str, list[dict]] = {}
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                rows = conn.execute(select(table)).mappings().all()
                dump[table.name] = [{k: _plain(v) for k, v in row.items()} for row in rows]
    out.write_text(json.dumps(dump, ensure_ascii=False, indent=None, sort_keys=True) + "\n", encoding="utf-8")


def _plain(value):
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


if __name__ == "__main__":
    main(Path(sys.argv[1]))
