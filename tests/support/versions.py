"""What the store holds of one shared resource type: each resource's current version and the
versions its history has, for the invariant that they form one unbroken line (1, 2, … current)."""

from __future__ import annotations

from sqlalchemy import select

from adapter.store.schema import resource_history, resources


def version_lines(engine, rtype: str = "Organization") -> tuple[dict[str, int], dict[str, list[int]]]:
    """(current version by id, the history's versions by id, in order)."""
    with engine.connect() as conn:
        current = dict(conn.execute(select(resources.c.id, resources.c.version_id).where(
            resources.c.type == rtype)).all())
        versions: dict[str, list[int]] = {}
        for rid, version in conn.execute(select(resource_history.c.id, resource_history.c.version_id).where(
                resource_history.c.type == rtype).order_by(resource_history.c.version_id)):
            versions.setdefault(rid, []).append(version)
    return current, versions
