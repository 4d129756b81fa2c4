"""Alembic environment: migrations run on the connection the adapter passes in."""

from alembic import context

from adapter.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the adapter always passes a connection
    raise RuntimeError("run migrations through adapter.store.engine.migrate()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
