"""Indexes for the pull API at national scale, and resources.status

Revision ID: 0006
Revises: 0005

A municipality's ``Task?status=requested`` page and its ``_lastUpdated`` walk, and the sync
feed (``_history?_since=…``), read a few rows through these indexes instead of every row of
the type (docs/performance.md has the query plans). ``resources.status`` is a copy of the
resource's own ``status`` code, written with the content, so the status search runs in SQL.
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("resources", sa.Column("status", sa.String(64)))
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(
            "UPDATE resources SET status = content ->> 'status' "
            "WHERE json_typeof(content -> 'status') = 'string' AND length(content ->> 'status') <= 64"))
    else:
        conn.execute(sa.text(
            "UPDATE resources SET status = json_extract(content, '$.status') "
            "WHERE json_type(content, '$.status') = 'text' AND length(json_extract(content, '$.status')) <= 64"))
    op.drop_index("ix_resources_type_municipality", table_name="resources")
    op.create_index("ix_resources_scope_updated", "resources", ["type", "municipality", "last_updated", "id"])
    op.create_index("ix_resources_scope_status", "resources",
                    ["type", "municipality", "status", "last_updated", "id"])
    op.create_index("ix_resources_patient", "resources", ["patient_id", "type"])
    op.create_index("ix_history_scope_updated", "resource_history",
                    ["type", "municipality", "last_updated", "id", "version_id"])
    op.create_index("ix_history_updated", "resource_history", ["last_updated", "type", "id", "version_id"])


def downgrade():
    op.drop_index("ix_history_updated", table_name="resource_history")
    op.drop_index("ix_history_scope_updated", table_name="resource_history")
    op.drop_index("ix_resources_patient", table_name="resources")
    op.drop_index("ix_resources_scope_status", table_name="resources")
    op.drop_index("ix_resources_scope_updated", table_name="resources")
    op.create_index("ix_resources_type_municipality", "resources", ["type", "municipality"])
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("status")
