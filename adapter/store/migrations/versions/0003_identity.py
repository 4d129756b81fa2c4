"""one resource per identity: resource_access, deployment, as_of and replaced_by; existing
Patients, Organizations and Practitioners merged onto their keyed ids

Revision ID: 0003
Revises: 0002

The data step needs the deployment's id key (``adapter.store.engine.migrate`` passes it);
a store with shared resources cannot be migrated without one.
"""
import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('as_of', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('replaced_by', sa.String(length=64), nullable=True))
    op.create_table(
        'resource_access',
        sa.Column('type', sa.String(length=40), nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('municipality', sa.String(length=4), nullable=False),
        sa.PrimaryKeyConstraint('type', 'id', 'municipality'),
    )
    with op.batch_alter_table('resource_access', schema=None) as batch_op:
        batch_op.create_index('ix_resource_access_municipality', ['municipality', 'type'], unique=False)
    op.create_table(
        'deployment',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('value', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )

    from adapter.errors import ConfigError, issue
    from adapter.fhir.identity import SHARED_TYPES
    from adapter.store.merge import merge_by_identity

    conn = op.get_bind()
    shared = conn.execute(sa.text(
        "SELECT count(*) FROM resources WHERE type IN ('" + "', '".join(SHARED_TYPES) + "')")).scalar_one()
    if not shared:
        return
    config = op.get_context().config
    secret = config.attributes.get("id_key") if config is not None else None
    if not secret:
        raise ConfigError(issue("GGOP-E502", None, "migration 0003", "the id key is needed to merge this store"))
    merge_by_identity(conn, secret, dt.datetime.now(dt.UTC))


def downgrade():
    op.drop_table('deployment')
    with op.batch_alter_table('resource_access', schema=None) as batch_op:
        batch_op.drop_index('ix_resource_access_municipality')
    op.drop_table('resource_access')
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.drop_column('replaced_by')
        batch_op.drop_column('as_of')
