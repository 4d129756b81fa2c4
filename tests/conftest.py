"""Shared fixtures: code tables, MedCom's reference files in ../shared (skipped when
absent), generated messages, and the --update-goldens switch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.support import TEST_ID_KEY
from tests.support.private_postgres import drop_database

# Every runtime the tests build, and every process they start, derives ids with this key.
os.environ["ADAPTER_ID_KEY"] = TEST_ID_KEY

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared"
MEDCOM = SHARED / "medcom"


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="Rewrite tests/data/**/<case>.bundle.json from the current converter.")


@pytest.fixture(scope="session")
def update_goldens(request) -> bool:
    return request.config.getoption("--update-goldens")


@pytest.fixture(scope="session")
def tables():
    from adapter.codes import load_code_tables
    return load_code_tables()


@pytest.fixture(scope="session")
def medcom() -> Path:
    if not MEDCOM.is_dir():
        pytest.skip(f"MedCom reference files not present at {MEDCOM} (../shared/medcom)")
    return MEDCOM


def golden_inputs() -> list[Path]:
    return sorted(p for p in DATA.rglob("*.xml") if "invalid" not in p.parts)


def invalid_inputs() -> list[Path]:
    return sorted((DATA / "invalid").glob("*.xml"))


def _reset_postgres(url: str) -> None:
    from adapter.store.engine import drop_schema

    drop_schema(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty store of each kind: a SQLite file, and the PostgreSQL server named by
    ADAPTER_TEST_POSTGRES_URL (make test and .ci/run start one; skipped without it)."""


    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/adapter.db"
    url = os.environ.get("ADAPTER_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL: set ADAPTER_TEST_POSTGRES_URL (make test starts a local server)")
    _reset_postgres(url)
    return url


@pytest.fixture
def engine(store_url):
    """The store of ``store_url``, migrated, disposed after the test."""
    from adapter.store.engine import open_store

    e = open_store(store_url, id_key=TEST_ID_KEY.encode())
    yield e
    e.dispose()


_BASE_RUNTIME = None


def runtime_for(engine=None, **settings):
    """The runtime every entry point builds (package defaults, or the given settings), on
    ``engine``: what the service, the CLI, the inbox and the worker use."""
    import dataclasses

    from adapter.config import Settings
    from adapter.runtime import load_runtime

    global _BASE_RUNTIME
    if settings:
        return load_runtime(Settings(**{"id_key": TEST_ID_KEY, **settings}), engine=engine)
    if _BASE_RUNTIME is None:
        _BASE_RUNTIME = load_runtime(Settings(id_key=TEST_ID_KEY))
    return dataclasses.replace(_BASE_RUNTIME, _engine=engine)


@pytest.fixture
def runtime(engine):
    return runtime_for(engine)


# --------------------------------------------------------------------------------------------
# The FHIR API over a store of each kind (tests/support/fhir_world.py)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url():
    """A database of its own on the PostgreSQL server named by ADAPTER_TEST_POSTGRES_URL (make
    test and CI start one), so that other test modules using that database are not disturbed."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from adapter.store.engine import make_engine

    url = os.environ.get("ADAPTER_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL: set ADAPTER_TEST_POSTGRES_URL (make test starts a local server)")
    name = f"fhir_api_{os.getpid()}"
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(url).set(database=name).render_as_string(hide_password=False)
    drop_database(admin, name)
    admin.dispose()


def _empty_postgres(url: str) -> str:
    from adapter.store.engine import drop_schema

    drop_schema(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    """The API over a store of each kind (PostgreSQL skipped without a server)."""
    url = None if request.param == "sqlite" else _empty_postgres(request.getfixturevalue("postgres_url"))
    from tests.support.fhir_world import make_world

    w = make_world(tmp_path, url)
    yield w
    w.engine.dispose()
