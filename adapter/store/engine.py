"""Database engines: SQLite (WAL, the embedded default) or PostgreSQL (by URL), and the
schema migrations (Alembic) that every start applies."""

from __future__ import annotations

from pathlib import Path

import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _json_dumps(value) -> str:
    """The JSON columns hold whole FHIR Bundles: encoded with orjson (several times faster)."""
    return orjson.dumps(value).decode("utf-8")


_JSON = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created, WAL and a busy timeout set."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **_JSON)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised via connections
            dbapi_conn.isolation_level = None  # SQLAlchemy manages BEGIN itself
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover
            # Take the write lock at BEGIN: two writers never deadlock upgrading a read lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True, **_JSON)


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_store(url: str) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    return engine


def schema_is_current(engine: Engine) -> bool:
    """True when the database is migrated to the newest revision."""
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


def drop_schema(url: str) -> None:
    """Remove the adapter's tables and migration mark from a database (tests, benchmarks)."""
    from sqlalchemy import text

    from adapter.store.schema import metadata

    engine = make_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
