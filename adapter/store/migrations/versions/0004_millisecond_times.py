"""resources and resource_history: last_updated to the millisecond, as meta.lastUpdated serves it

Revision ID: 0004
Revises: 0003

Times were kept to the microsecond and served to the millisecond, so ``_lastUpdated=eq`` with
a served value found nothing and ``gt`` found the same resource again. The writers now keep
milliseconds; this truncates what is already stored the same way.
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _truncate(conn, table: sa.Table, keys: list[str]) -> None:
    rows = conn.execute(sa.select(*[table.c[k] for k in keys], table.c.last_updated)).all()
    for row in rows:
        value = row.last_updated
        if value is not None and value.microsecond % 1000:
            conn.execute(sa.update(table).where(*[table.c[k] == getattr(row, k) for k in keys])
                         .values(last_updated=value.replace(microsecond=value.microsecond - value.microsecond % 1000)))


def upgrade():
    conn = op.get_bind()
    meta = sa.MetaData()
    resources = sa.Table("resources", meta, sa.Column("type", sa.String), sa.Column("id", sa.String),
                         sa.Column("last_updated", sa.DateTime(timezone=True)))
    history = sa.Table("resource_history", meta, sa.Column("type", sa.String), sa.Column("id", sa.String),
                       sa.Column("version_id", sa.Integer), sa.Column("last_updated", sa.DateTime(timezone=True)))
    _truncate(conn, resources, ["type", "id"])
    _truncate(conn, history, ["type", "id", "version_id"])


def downgrade():
    pass  # the microseconds are gone; milliseconds are valid times for the older schema too
