"""FHIR resources in the store: current version + history, ``meta.versionId`` and
``meta.lastUpdated``; references inside a Bundle (``urn:uuid:<id>``) become ``Type/id``.

A plan's resources belong to its municipality (``resources.municipality``). The shared types
(Patient, Organization, Practitioner, PractitionerRole: one resource per citizen or
organisation, :mod:`adapter.fhir.identity`) belong to no municipality: each municipality
whose message names one gets a ``resource_access`` row, and an update from a message
written earlier than the stored version's (``as_of``) leaves the content as it is."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, bindparam, delete, false, insert, or_, select, tuple_, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from adapter.fhir.bundle import entry_id, entry_resource
from adapter.fhir.identity import SHARED_TYPES
from adapter.store import pg_arrays
from adapter.store.schema import messages, resource_access, resource_history, resources


def rewrite_references(obj: Any, targets: dict[str, str]) -> Any:
    """``obj`` with every ``reference`` that ``targets`` names replaced (a new structure)."""
    if isinstance(obj, dict):
        return _rewrite_dict(obj, targets)
    if isinstance(obj, list):
        return _rewrite_list(obj, targets)
    return obj


# The walk runs over every node of every message's Bundle: the plain JSON types are told by
# ``type() is`` inline (no call per leaf); anything else (a subclass) goes the general way.
_LEAVES = frozenset((str, int, float, bool, type(None)))


def _rewrite_dict(obj: dict, targets: dict[str, str]) -> dict:
    out: dict = {}
    for k, v in obj.items():
        t = type(v)
        if t is dict:
            out[k] = _rewrite_dict(v, targets)
        elif t is list:
            out[k] = _rewrite_list(v, targets)
        elif k == "reference" and isinstance(v, str):
            out[k] = targets.get(v, v)
        elif t in _LEAVES:
            out[k] = v
        else:
            out[k] = rewrite_references(v, targets)
    return out


def _rewrite_list(obj: list, targets: dict[str, str]) -> list:
    out: list = []
    for x in obj:
        t = type(x)
        if t is dict:
            out.append(_rewrite_dict(x, targets))
        elif t is list:
            out.append(_rewrite_list(x, targets))
        elif t in _LEAVES:
            out.append(x)
        else:
            out.append(rewrite_references(x, targets))
    return out


def bundle_resources(bundle: dict) -> list[dict]:
    """The Bundle's resources with their in-Bundle references made relative (``Type/id``)."""
    targets = _relative_targets(bundle)
    return [rewrite_references(entry_resource(e), targets) for e in bundle["entry"]]


def _relative_targets(bundle: dict) -> dict[str, str]:
    """Each entry's ``fullUrl`` → its relative reference (``Type/id``)."""
    return {e["fullUrl"]: f"{e['resource']['resourceType']}/{entry_id(e)}" for e in bundle["entry"]}


@dataclass(frozen=True)
class Saved:
    """What :func:`save_bundle` stored: every resource of the Bundle as it now stands (in
    Bundle order), and the shared ones whose stored version stood because it was written after
    the message (an older message arriving after a newer one)."""

    resources: list[dict]
    newer: frozenset[tuple[str, str]]


def current_shared(bundle: dict, saved: Saved) -> dict:
    """``bundle`` with each shared resource as the store now holds it: when an older message
    arrives after a newer one, what is pushed on carries the newer Patient, as the store does,
    so a receiver never goes back to older details. (Every other shared resource stands as
    the message gave it: the Bundle itself is returned when there is none.)"""
    if not saved.newer:
        return bundle
    by_key = {key: r for r in saved.resources if (key := (r["resourceType"], r["id"])) in saved.newer}
    local = {f"{e['resource']['resourceType']}/{entry_id(e)}": e["fullUrl"] for e in bundle["entry"]}
    entries = []
    for e in bundle["entry"]:
        res = e["resource"]
        now = by_key.get((res["resourceType"], entry_id(e)))
        if now is not None:
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
    current = conn.execute(_CURRENT_ONE, {"k_type": rtype, "k_id": rid}).first()
    stored = next_version(resource, current, now, as_of)
    if stored is None:
        assert current is not None, "a resource not stored yet always gets its first version"
        return current.content
    values = dict(version_id=int(stored["meta"]["versionId"]), last_updated=now, municipality=municipality,
                  patient_id=patient_id, message_id=message_id, content=stored, status=status_of(stored),
                  deleted=False, as_of=as_of)
    if current is None:
        conn.execute(_INSERT_RESOURCE, {"type": rtype, "id": rid, **values})
    else:
        conn.execute(_UPDATE_RESOURCE, {"k_type": rtype, "k_id": rid, **values})
    conn.execute(_INSERT_HISTORY, {
        "type": rtype, "id": rid, "version_id": values["version_id"], "last_updated": now,
        "municipality": municipality, "message_id": message_id, "content": stored, "changed_by": changed_by})
    return stored


def _written_after(current, as_of: dt.datetime | None) -> bool:
    """Is the ``current`` version (a row with ``as_of``, or None) of a message written after
    ``as_of``?"""
    return current is not None and as_of is not None and current.as_of is not None \
        and _utc(current.as_of) > as_of


def next_version(resource: dict, current, now: dt.datetime, as_of: dt.datetime | None) -> dict | None:
    """What to store for ``resource`` over ``current`` (a row with ``version_id``, ``content``,
    ``as_of``, or None): the next version, or None when the current version stands (the same
    content apart from meta, or a current version written after ``as_of``). ``now`` as the
    store keeps it (:func:`stored_time`)."""
    if _written_after(current, as_of):
        return None
    body = {k: v for k, v in resource.items() if k != "meta"}
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    if current is not None:
        old = {k: v for k, v in current.content.items() if k != "meta"}
        old_meta = {k: v for k, v in current.content.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
        if old == body and old_meta == meta:
            return None
    version = 1 if current is None else current.version_id + 1
    return {"resourceType": resource["resourceType"], "id": resource["id"],
            "meta": {**meta, "versionId": str(version), "lastUpdated": iso(now)},
            **{k: v for k, v in body.items() if k not in ("resourceType", "id")}}


# Statements built once (SQLAlchemy caches their compiled form): parameters by name.
_KEY = and_(resources.c.type == bindparam("k_type"), resources.c.id == bindparam("k_id"))
_CURRENT_ONE = select(resources.c.version_id, resources.c.content, resources.c.as_of).where(_KEY)
_CURRENT_MANY = select(resources.c.type, resources.c.id, resources.c.version_id, resources.c.content,
                       resources.c.as_of).where(
    tuple_(resources.c.type, resources.c.id).in_(bindparam("keys", expanding=True)))
_INSERT_RESOURCE = insert(resources)
_UPDATE_RESOURCE = update(resources).where(_KEY)
_INSERT_HISTORY = insert(resource_history)
# the versions just written are copied inside the database rather than sent twice
_COPY_HISTORY = insert(resource_history).from_select(
    ["type", "id", "version_id", "last_updated", "municipality", "message_id", "content", "changed_by"],
    select(resources.c.type, resources.c.id, resources.c.version_id, resources.c.last_updated,
           resources.c.municipality, resources.c.message_id, resources.c.content,
           bindparam("changed_by", type_=String)).where(
        tuple_(resources.c.type, resources.c.id).in_(bindparam("keys", expanding=True))))


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value  # SQLite keeps no offset


def _owners(r: dict, municipality: str | None, patient: str | None) -> tuple[str | None, str | None]:
    """(municipality, patient_id) columns: a shared resource belongs to no municipality, and
    only a Patient is about a patient."""
    if r["resourceType"] not in SHARED_TYPES:
        return municipality, patient
    return None, (r["id"] if r["resourceType"] == "Patient" else None)


# SQLite's multi-row writes (PostgreSQL's are in :mod:`adapter.store.pg_arrays`), one statement
# each: ``RETURNING`` makes SQLAlchemy send the rows as one ``INSERT … VALUES (…), (…)`` rather
# than a statement per row. New and changed resources in one insert-or-update; access grants
# skipping those that exist.
_RESOURCE_COLUMNS = ("version_id", "last_updated", "municipality", "patient_id", "message_id", "content", "status",
                     "deleted", "as_of")
_sqlite_resources = sqlite_insert(resources)
_SQLITE_UPSERT = _sqlite_resources.on_conflict_do_update(
    index_elements=[resources.c.type, resources.c.id],
    set_={c: getattr(_sqlite_resources.excluded, c) for c in _RESOURCE_COLUMNS}).returning(resources.c.id)
_SQLITE_GRANT = sqlite_insert(resource_access).on_conflict_do_nothing().returning(resource_access.c.id)


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


def lock_shared_of(conn: Connection, bundles: list[tuple[dict, dt.datetime | None]]) -> set[tuple[str, str]] | None:
    """Before a transaction stores several messages (a bulk batch; each Bundle with when its
    message was written): take the locks of the shared resources they will write, all at once
    and in one order (PostgreSQL; SQLite has one writer at a time), so that two such
    transactions never hold one each of what the other needs. A shared resource that every
    message of the batch names as it is stored (a hospital, a municipality whose details do not
    change) is not written, so it is not locked: batches naming it do not wait for each other.

    Returns the keys locked, for :func:`save_bundle` (``locked``): one written after this look
    by a concurrent transaction, which a message of the batch then writes too, is taken there
    without waiting, or the batch gives up (:class:`~adapter.store.pg_arrays.LockBusy`) and its
    messages are stored again one per transaction; a batch never waits while holding locks
    another waits for. None on SQLite."""
    if conn.dialect.name != "postgresql":
        return None
    named: dict[tuple[str, str], list[tuple[dict, dt.datetime | None]]] = {}
    for bundle, as_of in bundles:
        targets = None
        for e in bundle["entry"]:
            if e["resource"]["resourceType"] in SHARED_TYPES:
                targets = targets or _relative_targets(bundle)
                resource = rewrite_references(entry_resource(e), targets)
                named.setdefault((resource["resourceType"], resource["id"]), []).append((resource, as_of))
    if not named:
        return set()
    current = pg_arrays.current_versions(conn, sorted(named))
    now = stored_time(dt.datetime.now(dt.UTC))
    writes = [key for key, versions in named.items()
              if any(next_version(r, current.get(key), now, as_of) is not None for r, as_of in versions)]
    pg_arrays.lock_shared(conn, sorted(writes))
    return set(writes)


def save_bundle(conn: Connection, bundle: dict, *, now: dt.datetime, municipality: str | None,
                message_id: int | None, changed_by: str | None, as_of: dt.datetime | None = None,
                locked: set[tuple[str, str]] | None = None) -> Saved:
    """Store every resource of a transaction Bundle (as a FHIR server would apply its PUTs,
    conditional ones by the id the adapter derives from the identifier).

    ``as_of``: when the message was written; the shared resources keep a newer version.
    A fixed number of statements whatever the Bundle's size: one query reads the current
    versions (through the primary key); new and changed resources, their history rows and the
    access grants are written in one statement on PostgreSQL (:mod:`adapter.store.pg_arrays`),
    in three on SQLite. ``locked``: the shared resources the transaction locked up front
    (:func:`lock_shared_of`), when it stores several messages."""
    now = stored_time(now)
    items = bundle_resources(bundle)
    patient = next((r["id"] for r in items if r["resourceType"] == "Patient"), None)
    keys = [(r["resourceType"], r["id"]) for r in items]
    grants = sorted({k for k in keys if k[0] in SHARED_TYPES})
    if conn.dialect.name != "postgresql":  # one writer at a time: nothing to lock
        written, out, newer = _versions(items, _current_rows(conn, keys), now, municipality, patient, message_id,
                                        as_of)
        if written:
            conn.execute(_SQLITE_UPSERT, sorted(written, key=lambda v: (v["type"], v["id"])))
            conn.execute(_COPY_HISTORY, {"keys": [(v["type"], v["id"]) for v in written], "changed_by": changed_by})
        if municipality is not None and grants:
            conn.execute(_SQLITE_GRANT, [dict(type=t, id=i, municipality=municipality) for t, i in grants])
        return Saved(out, newer)
    current = pg_arrays.current_versions(conn, keys)
    written, out, newer = _versions(items, current, now, municipality, patient, message_id, as_of)
    shared_writes = sorted({(v["type"], v["id"]) for v in written if v["type"] in SHARED_TYPES})
    if shared_writes:
        # A shared resource this message writes (one that many messages name): its lock, taken
        # with the others' in one global order, then its current version read again, as no
        # concurrent message can write it now. One that stands as stored is not locked.
        if locked is None:
            pg_arrays.lock_shared(conn, shared_writes)
        else:  # in a transaction that took its locks up front (lock_shared_of): no waiting now
            missing = [k for k in shared_writes if k not in locked]
            pg_arrays.try_lock_shared(conn, missing)
            locked.update(missing)
        current.update(pg_arrays.current_versions(conn, shared_writes))
        written, out, newer = _versions(items, current, now, municipality, patient, message_id, as_of)
    pg_arrays.write_resources(conn, written, now=now, message_id=message_id, changed_by=changed_by,
                              grants=grants, grant_to=municipality)
    return Saved(out, newer)


def _current_rows(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    return {(row.type, row.id): row for row in conn.execute(_CURRENT_MANY, {"keys": keys})}


def _versions(items: list[dict], current: dict[tuple[str, str], Any], now: dt.datetime, municipality: str | None,
              patient: str | None, message_id: int | None, as_of: dt.datetime | None
              ) -> tuple[list[dict], list[dict], frozenset[tuple[str, str]]]:
    """What storing ``items`` over the ``current`` versions writes: the rows of the new and the
    changed resources, every resource as it then stands (in ``items`` order), and the shared
    ones whose current version stands because it was written after the message."""
    written, out, newer = [], [], []
    for r in items:
        rtype, rid = r["resourceType"], r["id"]
        shared = rtype in SHARED_TYPES
        now_row = current.get((rtype, rid))
        stored = next_version(r, now_row, now, as_of if shared else None)
        if stored is None:  # the current version stands
            assert now_row is not None, "a resource not stored yet always gets its first version"
            out.append(now_row.content)
            if shared and _written_after(now_row, as_of):
                newer.append((rtype, rid))
            continue
        owner, about = _owners(r, municipality, patient)
        values = dict(version_id=int(stored["meta"]["versionId"]), last_updated=now, municipality=owner,
                      patient_id=about, message_id=message_id, content=stored, status=status_of(stored),
                      deleted=False, as_of=as_of if shared else None)
        written.append({"type": rtype, "id": rid, **values})
        out.append(stored)
    return written, out, frozenset(newer)


def get_resource(conn: Connection, rtype: str, rid: str):
    return conn.execute(select(resources).where(and_(resources.c.type == rtype, resources.c.id == rid))).first()
