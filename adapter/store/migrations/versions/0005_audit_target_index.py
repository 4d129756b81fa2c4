"""An index on the audit trail's target: the console lists a message's audit rows and the
worker finds a message's correlation id without reading the whole trail.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_target", "audit", ["target", "action"])


def downgrade() -> None:
    op.drop_index("ix_audit_target", table_name="audit")
