"""Merging a store's shared resources onto their identity (:mod:`adapter.fhir.identity`).

Stores filled before resources had an identity hold one Patient per message, one
Organization per message and role, and so on. :func:`merge_by_identity` gives each of them
the id its identity derives from under the deployment's key, so the store looks as if every
message had arrived after the change:

* one resource per identity: the most recently updated duplicate's content, as version 1 of
  the resource under its keyed id; every municipality that saw a duplicate sees it;
* every duplicate stays in the store, marked deleted with ``replaced_by`` naming the
  survivor: a read answers ``410 Gone`` and names it, its history stays readable;
* every reference to a duplicate (in any resource's current version, and the ``patient_id``
  column) now names the survivor, as a new version of the referring resource, so a
  municipal system polling ``_lastUpdated`` sees the change;
* outbox rows not yet delivered carry the new ids and conditional updates.

Running it again changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, insert, select, update
from sqlalchemy.engine import Connection

from adapter.fhir.bundle import entry_resource, transaction_entries
from adapter.fhir.identity import SHARED_TYPES, identify, identities
from adapter.store.resources import rewrite_references, stored_time
from adapter.store.schema import outbox, resource_access, resource_history, resources

CHANGED_BY = "merge-by-identity"
OPEN_OUTBOX = ("pending", "unroutable")


@dataclass
class MergeReport:
    renamed: int = 0  # shared resources given their keyed id
    survivors: int = 0  # resources they became
    rewritten: int = 0  # resources whose references were rewritten
    outbox_rows: int = 0  # undelivered payloads rebuilt


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _store_target(ref: Any) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and "/" in ref["reference"]:
        return ref["reference"].rsplit("/", 1)[-1]
    return None


def _versioned(content: dict, rid: str, version: int, now: dt.datetime) -> dict:
    meta = {k: v for k, v in (content.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    body = {k: v for k, v in content.items() if k not in ("resourceType", "id", "meta")}
    return {"resourceType": content["resourceType"], "id": rid,
            "meta": {**meta, "versionId": str(version), "lastUpdated": _iso(now)}, **body}


def merge_by_identity(conn: Connection, secret: bytes, now: dt.datetime) -> MergeReport:
    now = stored_time(now)
    report = MergeReport()
    rows = list(conn.execute(select(
        resources.c.type, resources.c.id, resources.c.last_updated, resources.c.municipality,
        resources.c.message_id, resources.c.content).where(
        resources.c.type.in_(SHARED_TYPES), resources.c.deleted == false())))
    found = identities([r.content for r in rows], _store_target)
    groups: dict[tuple[str, str], list] = {}
    for r in rows:
        ident = found.get(r.id)
        if ident is not None and ident.rtype == r.type:
            new = ident.resource_id(secret)
            if new != r.id:
                groups.setdefault((r.type, new), []).append(r)
    renames: dict[str, str] = {}
    patient_ids: dict[str, str] = {}
    for (rtype, new), olds in groups.items():
        for r in olds:
            renames[f"{rtype}/{r.id}"] = f"{rtype}/{new}"
            if rtype == "Patient":
                patient_ids[r.id] = new
    for (rtype, new), olds in sorted(groups.items()):
        exists = conn.execute(select(resources.c.id).where(
            resources.c.type == rtype, resources.c.id == new)).first() is not None
        if not exists:
            survivor = max(olds, key=lambda r: (r.last_updated, r.id))
            content = _versioned(rewrite_references(survivor.content, renames), new, 1, now)
            values = dict(type=rtype, id=new, version_id=1, last_updated=now, municipality=None,
                          patient_id=new if rtype == "Patient" else None, message_id=survivor.message_id,
                          content=content, deleted=False)
            conn.execute(insert(resources).values(**values))
            conn.execute(insert(resource_history).values(
                type=rtype, id=new, version_id=1, last_updated=now, municipality=None,
                message_id=survivor.message_id, content=content, changed_by=CHANGED_BY))
            report.survivors += 1
        have = set(conn.execute(select(resource_access.c.municipality).where(
            resource_access.c.type == rtype, resource_access.c.id == new)).scalars())
        for municipality in sorted({r.municipality for r in olds if r.municipality} - have):
            conn.execute(insert(resource_access).values(type=rtype, id=new, municipality=municipality))
        for r in olds:
            conn.execute(update(resources).where(resources.c.type == rtype, resources.c.id == r.id)
                         .values(deleted=True, replaced_by=new))
            report.renamed += 1
    if renames:
        report.rewritten = _rewrite_referrers(conn, renames, patient_ids, now)
    report.outbox_rows = _rebuild_outbox(conn, secret, patient_ids)
    return report


def _rewrite_referrers(conn: Connection, renames: dict[str, str], patient_ids: dict[str, str],
                        now: dt.datetime) -> int:
    current = list(conn.execute(select(
        resources.c.type, resources.c.id, resources.c.version_id, resources.c.municipality,
        resources.c.patient_id, resources.c.message_id, resources.c.content).where(resources.c.deleted == false())))
    count = 0
    for r in current:
        content = rewrite_references(r.content, renames)
        patient = patient_ids.get(r.patient_id, r.patient_id) if r.patient_id else None
        if content == r.content and patient == r.patient_id:
            continue
        key = and_(resources.c.type == r.type, resources.c.id == r.id)
        if content == r.content:
            conn.execute(update(resources).where(key).values(patient_id=patient))
            continue
        version = r.version_id + 1
        stored = _versioned(content, r.id, version, now)
        conn.execute(update(resources).where(key).values(
            content=stored, version_id=version, last_updated=now, patient_id=patient))
        conn.execute(insert(resource_history).values(
            type=r.type, id=r.id, version_id=version, last_updated=now, municipality=r.municipality,
            message_id=r.message_id, content=stored, changed_by=CHANGED_BY))
        count += 1
    return count


def rekeyed_payload(payload: dict, secret: bytes) -> dict:
    """An undelivered transaction Bundle with keyed ids and conditional updates."""
    if payload.get("type") != "transaction":
        return payload
    items, found = identify([entry_resource(e) for e in payload.get("entry", [])], secret)
    return {**payload, "entry": transaction_entries(items, found)}


def _rebuild_outbox(conn: Connection, secret: bytes, patient_ids: dict[str, str]) -> int:
    count = 0
    for row in list(conn.execute(select(outbox.c.id, outbox.c.payload, outbox.c.order_key, outbox.c.state))):
        values: dict[str, Any] = {}
        if row.order_key in patient_ids:
            values["order_key"] = patient_ids[row.order_key]
        if row.state in OPEN_OUTBOX and row.payload is not None:
            payload = rekeyed_payload(row.payload, secret)
            if payload != row.payload:
                values["payload"] = payload
                count += 1
        if values:
            conn.execute(update(outbox).where(outbox.c.id == row.id).values(**values))
    return count
