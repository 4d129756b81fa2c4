"""FHIR resources in the store: current version + history, ``meta.versionId`` and
``meta.lastUpdated``; references inside a Bundle (``urn:uuid:<id>``) become ``Type/id``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String, and_, insert, literal, select, update
from sqlalchemy.engine import Connection

from adapter.store.schema import resource_history, resources


def _rewrite_references(obj: Any, targets: dict[str, str]) -> Any:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str) and v in targets:
                out[k] = targets[v]
            else:
                out[k] = _rewrite_references(v, targets)
        return out
    if isinstance(obj, list):
        return [_rewrite_references(x, targets) for x in obj]
    return obj


def bundle_resources(bundle: dict) -> list[dict]:
    """The Bundle's resources with their in-Bundle references made relative (``Type/id``)."""
    targets = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    return [_rewrite_references(e["resource"], targets) for e in bundle["entry"]]


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def save_resource(conn: Connection, resource: dict, *, now: dt.datetime, municipality: str | None,
                  patient_id: str | None, message_id: int | None, changed_by: str | None) -> dict:
    """Insert or update one resource; returns it with ``meta.versionId``/``lastUpdated`` set.

    An update whose content equals the current version (apart from meta) keeps the version."""
    rtype, rid = resource["resourceType"], resource["id"]
    current = conn.execute(select(resources.c.version_id, resources.c.content).where(
        and_(resources.c.type == rtype, resources.c.id == rid))).first()
    body = {k: v for k, v in resource.items() if k != "meta"}
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    if current is not None:
        old = {k: v for k, v in current.content.items() if k != "meta"}
        old_meta = {k: v for k, v in current.content.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
        if old == body and old_meta == meta:
            return current.content
    version = 1 if current is None else current.version_id + 1
    stored = {"resourceType": rtype, "id": rid,
              "meta": {**meta, "versionId": str(version), "lastUpdated": iso(now)},
              **{k: v for k, v in body.items() if k not in ("resourceType", "id")}}
    values = dict(version_id=version, last_updated=now, municipality=municipality, patient_id=patient_id,
                  message_id=message_id, content=stored, deleted=False)
    if current is None:
        conn.execute(insert(resources).values(type=rtype, id=rid, **values))
    else:
        conn.execute(update(resources).where(and_(resources.c.type == rtype, resources.c.id == rid)).values(**values))
    conn.execute(insert(resource_history).values(
        type=rtype, id=rid, version_id=version, last_updated=now, municipality=municipality,
        message_id=message_id, content=stored, changed_by=changed_by))
    return stored


def save_bundle(conn: Connection, bundle: dict, *, now: dt.datetime, municipality: str | None,
                message_id: int | None, changed_by: str | None) -> list[dict]:
    """Store every resource of a transaction Bundle (as a FHIR server would apply its PUTs).

    One query finds which resources exist; new ones are inserted in bulk."""
    items = bundle_resources(bundle)
    patient = next((r["id"] for r in items if r["resourceType"] == "Patient"), None)
    ids = [r["id"] for r in items]
    existing = {(row.type, row.id) for row in conn.execute(
        select(resources.c.type, resources.c.id).where(resources.c.id.in_(ids)))}
    fresh, out = [], []
    for r in items:
        if (r["resourceType"], r["id"]) in existing:
            out.append(save_resource(conn, r, now=now, municipality=municipality, patient_id=patient,
                                     message_id=message_id, changed_by=changed_by))
            continue
        stored = {"resourceType": r["resourceType"], "id": r["id"],
                  "meta": {**{k: v for k, v in r.get("meta", {}).items() if k not in ("versionId", "lastUpdated")},
                           "versionId": "1", "lastUpdated": iso(now)},
                  **{k: v for k, v in r.items() if k not in ("resourceType", "id", "meta")}}
        fresh.append(stored)
        out.append(stored)
    if fresh:
        conn.execute(insert(resources), [dict(
            type=r["resourceType"], id=r["id"], version_id=1, last_updated=now, municipality=municipality,
            patient_id=patient, message_id=message_id, content=r, deleted=False) for r in fresh])
        # the first versions are copied inside the database rather than sent twice
        copied = select(resources.c.type, resources.c.id, resources.c.version_id, resources.c.last_updated,
                        resources.c.municipality, resources.c.message_id, resources.c.content,
                        literal(changed_by, String).label("changed_by")).where(
            resources.c.id.in_([r["id"] for r in fresh]), resources.c.version_id == 1)
        conn.execute(insert(resource_history).from_select(
            ["type", "id", "version_id", "last_updated", "municipality", "message_id", "content", "changed_by"],
            copied))
    return out


def get_resource(conn: Connection, rtype: str, rid: str):
    return conn.execute(select(resources).where(and_(resources.c.type == rtype, resources.c.id == rid))).first()
