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


def migrate(engine: Engine, id_key: bytes | None = None, revision: str = "head") -> None:
    """Bring the database to the newest schema (idempotent). ``id_key``: the deployment's id
    key, which merging a store filled before resources had an identity needs (0003)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["id_key"] = id_key
        command.upgrade(cfg, revision)


def check_id_key(engine: Engine, id_key: bytes) -> None:
    """Record the key's fingerprint in a new store; refuse a store filled with another key
    (nothing to check before the store has its ``deployment`` table)."""
    from sqlalchemy import insert, inspect, select
    from sqlalchemy.exc import IntegrityError

    from adapter.errors import ConfigError, issue
    from adapter.id_key import fingerprint
    from adapter.store.schema import deployment

    mine = fingerprint(id_key)
    for _attempt in range(2):  # two processes starting at once: the second reads what the first wrote
        try:
            with engine.begin() as conn:
                if not inspect(conn).has_table("deployment"):
                    return
                recorded = conn.execute(select(deployment.c.value).where(deployment.c.name == "id_key")).scalar()
                if recorded is None:
                    conn.execute(insert(deployment).values(name="id_key", value=mine))
                    return
        except IntegrityError:
            continue
        if recorded != mine:
            raise ConfigError(issue("GGOP-E502", None, "deployment#id_key",
                                    "this store was filled with another id key: configure that one"))
        return


def open_store(url: str, id_key: bytes | None = None) -> Engine:
    """The store at ``url``, migrated; with ``id_key``, checked to be the store's key."""
    engine = make_engine(url)
    if id_key is not None:
        check_id_key(engine, id_key)  # before a migration could use the wrong key
    migrate(engine, id_key)
    if id_key is not None:
        check_id_key(engine, id_key)
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
