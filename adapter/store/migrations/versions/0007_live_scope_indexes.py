"""The scope indexes of the pull API cover live rows only

Revision ID: 0007
Revises: 0006

``ix_resources_scope_updated`` and ``ix_resources_scope_status`` become partial indexes
(``WHERE deleted = false``, the condition of every search), so the ``total`` of a
municipality's page is counted by an index-only scan instead of reading every matching row
(docs/performance.md has the query plans).
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_LIVE = sa.column("deleted", sa.Boolean) == sa.false()
_SCOPE = {
    "ix_resources_scope_updated": ["type", "municipality", "last_updated", "id"],
    "ix_resources_scope_status": ["type", "municipality", "status", "last_updated", "id"],
}


def upgrade():
    for name, columns in _SCOPE.items():
        op.drop_index(name, table_name="resources")
        op.create_index(name, "resources", columns, postgresql_where=_LIVE, sqlite_where=_LIVE)


def downgrade():
    for name, columns in _SCOPE.items():
        op.drop_index(name, table_name="resources")
        op.create_index(name, "resources", columns)
