"""FHIR resources in the store: current version + history, ``meta.versionId`` and
``meta.lastUpdated``; references inside a Bundle (``urn:uuid:<id>``) become ``Type/id``.

A plan's resources belong to its municipality (``resources.municipality``). The shared types
(Patient, Organization, Practitioner, PractitionerRole: one resource per citizen or
organisation, :mod:`adapter.fhir.identity`) belong to no municipality: each municipality
whose message names one gets a ``resource_access`` row, and an update from a message
written earlier than the stored version's (``as_of``) leaves the content as it is."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String, and_, delete, false, insert, literal, or_, select, tuple_, update
from sqlalchemy.engine import Connection

from adapter.fhir.bundle import entry_id, entry_resource
from adapter.fhir.identity import SHARED_TYPES
from adapter.store.schema import messages, resource_access, resource_history, resources


def rewrite_references(obj: Any, targets: dict[str, str]) -> Any:
    """``obj`` with every ``reference`` that ``targets`` names replaced (a new structure)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str) and v in targets:
                out[k] = targets[v]
            else:
                out[k] = rewrite_references(v, targets)
        return out
    if isinstance(obj, list):
        return [rewrite_references(x, targets) for x in obj]
    return obj


def bundle_resources(bundle: dict) -> list[dict]:
    """The Bundle's resources with their in-Bundle references made relative (``Type/id``)."""
    targets = {e["fullUrl"]: f"{e['resource']['resourceType']}/{entry_id(e)}" for e in bundle["entry"]}
    return [rewrite_references(entry_resource(e), targets) for e in bundle["entry"]]


def current_shared(bundle: dict, stored: list[dict]) -> dict:
    """``bundle`` with each shared resource as the store now holds it: when an older message
    arrives after a newer one, what is pushed on carries the newer Patient, as the store does,
    so a receiver never goes back to older details."""
    by_key = {(r["resourceType"], r["id"]): r for r in stored}
    local = {f"{e['resource']['resourceType']}/{entry_id(e)}": e["fullUrl"] for e in bundle["entry"]}
    entries = []
    for e in bundle["entry"]:
        res = e["resource"]
        now = by_key.get((res["resourceType"], entry_id(e)))
        if res["resourceType"] in SHARED_TYPES and now is not None:
            meta = {k: v for k, v in now.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
            body = rewrite_references({k: v for k, v in now.items() if k not in ("meta", "id")}, local)
            fresh = {"resourceType": res["resourceType"], **({"id": res["id"]} if "id" in res else {}),
                     **({"meta": meta} if meta else {}), **{k: v for k, v in body.items() if k != "resourceType"}}
            if fresh != res:
                e = {**e, "resource": fresh}
        entries.append(e)
    return {**bundle, "entry": entries}


def stored_time(value: dt.datetime) -> dt.datetime:
    """A time as the store keeps it: UTC, to the millisecond, exactly what ``meta.lastUpdated``
    says, so ``_lastUpdated=eq<served value>`` finds the resource and ``gt`` does not."""
    value = value.astimezone(dt.UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_of(content: dict) -> str | None:
    """The ``resources.status`` column: the resource's own ``status`` code, when it has one."""
    value = content.get("status")
    return value if isinstance(value, str) and len(value) <= 64 else None


def save_resource(conn: Connection, resource: dict, *, now: dt.datetime, municipality: str | None,
                  patient_id: str | None, message_id: int | None, changed_by: str | None,
                  as_of: dt.datetime | None = None) -> dict:
    """Insert or update one resource; returns it with ``meta.versionId``/``lastUpdated`` set.

    An update whose content equals the current version (apart from meta) keeps the version;
    so does one written before the current version (``as_of``, shared types)."""
    now = stored_time(now)
    rtype, rid = resource["resourceType"], resource["id"]
    current = conn.execute(select(resources.c.version_id, resources.c.content, resources.c.as_of).where(
        and_(resources.c.type == rtype, resources.c.id == rid))).first()
    if current is not None and as_of is not None and current.as_of is not None \
            and _utc(current.as_of) > as_of:
        return current.content
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
                  message_id=message_id, content=stored, status=status_of(stored), deleted=False, as_of=as_of)
    if current is None:
        conn.execute(insert(resources).values(type=rtype, id=rid, **values))
    else:
        conn.execute(update(resources).where(and_(resources.c.type == rtype, resources.c.id == rid)).values(**values))
    conn.execute(insert(resource_history).values(
        type=rtype, id=rid, version_id=version, last_updated=now, municipality=municipality,
        message_id=message_id, content=stored, changed_by=changed_by))
    return stored


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value  # SQLite keeps no offset


def _owners(r: dict, municipality: str | None, patient: str | None) -> tuple[str | None, str | None]:
    """(municipality, patient_id) columns: a shared resource belongs to no municipality, and
    only a Patient is about a patient."""
    if r["resourceType"] not in SHARED_TYPES:
        return municipality, patient
    return None, (r["id"] if r["resourceType"] == "Patient" else None)


def grant_access(conn: Connection, keys: list[tuple[str, str]], municipality: str) -> None:
    """Let ``municipality`` see these shared resources (``(type, id)``), once."""
    if not keys:
        return
    have = {(row.type, row.id) for row in conn.execute(
        select(resource_access.c.type, resource_access.c.id).where(
            resource_access.c.municipality == municipality,
            tuple_(resource_access.c.type, resource_access.c.id).in_(keys)))}
    missing = sorted(set(keys) - have)
    if missing:
        conn.execute(insert(resource_access), [dict(type=t, id=i, municipality=municipality) for t, i in missing])


def withdraw_access(conn: Connection, municipality: str, patient_id: str) -> bool:
    """A municipality sees a citizen only while one of its plans or letters about them stands:
    after a cancellation (``annulleretbrev``), the citizen's Patient is withdrawn unless another
    of its messages names them. Returns whether it was withdrawn."""
    standing = select(resources.c.id).join(messages, messages.c.id == resources.c.message_id).where(
        resources.c.municipality == municipality, resources.c.patient_id == patient_id,
        resources.c.type.in_(("ServiceRequest", "Communication")), resources.c.deleted == false(),
        or_(messages.c.letter_status.is_(None), messages.c.letter_status != "annulleretbrev")).limit(1)
    if conn.execute(standing).first() is not None:
        return False
    conn.execute(delete(resource_access).where(
        resource_access.c.type == "Patient", resource_access.c.id == patient_id,
        resource_access.c.municipality == municipality))
    return True


def save_bundle(conn: Connection, bundle: dict, *, now: dt.datetime, municipality: str | None,
                message_id: int | None, changed_by: str | None, as_of: dt.datetime | None = None) -> list[dict]:
    """Store every resource of a transaction Bundle (as a FHIR server would apply its PUTs,
    conditional ones by the id the adapter derives from the identifier).

    ``as_of``: when the message was written; the shared resources keep a newer version.
    One query finds which resources exist; new ones are inserted in bulk."""
    now = stored_time(now)
    items = bundle_resources(bundle)
    patient = next((r["id"] for r in items if r["resourceType"] == "Patient"), None)
    keys = [(r["resourceType"], r["id"]) for r in items]
    existing = {(row.type, row.id) for row in conn.execute(  # through the primary key (type, id)
        select(resources.c.type, resources.c.id).where(tuple_(resources.c.type, resources.c.id).in_(keys)))}
    fresh, out = [], []
    for r in items:
        if (r["resourceType"], r["id"]) in existing:
            owner, about = _owners(r, municipality, patient)
            out.append(save_resource(conn, r, now=now, municipality=owner, patient_id=about,
                                     message_id=message_id, changed_by=changed_by,
                                     as_of=as_of if r["resourceType"] in SHARED_TYPES else None))
            continue
        stored = {"resourceType": r["resourceType"], "id": r["id"],
                  "meta": {**{k: v for k, v in r.get("meta", {}).items() if k not in ("versionId", "lastUpdated")},
                           "versionId": "1", "lastUpdated": iso(now)},
                  **{k: v for k, v in r.items() if k not in ("resourceType", "id", "meta")}}
        fresh.append(stored)
        out.append(stored)
    if fresh:
        conn.execute(insert(resources), [dict(
            type=r["resourceType"], id=r["id"], version_id=1, last_updated=now,
            municipality=_owners(r, municipality, patient)[0], patient_id=_owners(r, municipality, patient)[1],
            message_id=message_id, content=r, status=status_of(r), deleted=False,
            as_of=as_of if r["resourceType"] in SHARED_TYPES else None) for r in fresh])
        # the first versions are copied inside the database rather than sent twice
        copied = select(resources.c.type, resources.c.id, resources.c.version_id, resources.c.last_updated,
                        resources.c.municipality, resources.c.message_id, resources.c.content,
                        literal(changed_by, String).label("changed_by")).where(
            tuple_(resources.c.type, resources.c.id).in_([(r["resourceType"], r["id"]) for r in fresh]),
            resources.c.version_id == 1)
        conn.execute(insert(resource_history).from_select(
            ["type", "id", "version_id", "last_updated", "municipality", "message_id", "content", "changed_by"],
            copied))
    if municipality is not None:
        grant_access(conn, [(r["resourceType"], r["id"]) for r in items if r["resourceType"] in SHARED_TYPES],
                     municipality)
    return out


def get_resource(conn: Connection, rtype: str, rid: str):
    return conn.execute(select(resources).where(and_(resources.c.type == rtype, resources.c.id == rid))).first()
