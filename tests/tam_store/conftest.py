"""Fixtures: TAM databases on SQLite and, when configured, on PostgreSQL.

Set ``TEEP_TEST_POSTGRES_URL`` (for example
``postgresql://postgres@127.0.0.1:5432/test``) to run every test on
PostgreSQL too.  Tests there use schemas with unique names, dropped
afterwards, so runs are repeatable and never touch existing tables.

Migrating takes longer than most tests, so ``db_url`` hands out a database
migrated once per session: a copy of a template file on SQLite, a session
schema emptied before each test on PostgreSQL.  Tests of the migrations
themselves use ``empty_url``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from support import postgres_schema
from teep.tam.models import Base
from teep.tam.store import TAMStore, normalise_url

POSTGRES_ENV = "TEEP_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]


def _postgres_base() -> str:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"set {POSTGRES_ENV} to run the store tests on PostgreSQL")
    return base


def _postgres_schema(base: str) -> Iterator[str]:
    """Create a uniquely named schema, yield a URL that uses it, drop it."""
    yield from postgres_schema(base, "teep_test")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, to be copied."""
    path = tmp_path_factory.mktemp("template") / "tam.db"
    TAMStore.open(str(path)).close()
    assert not Path(f"{path}-wal").exists()
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> Iterator[str]:
    """A PostgreSQL schema migrated to head, shared by the session."""
    for url in _postgres_schema(_postgres_base()):
        TAMStore.open(url).close()
        yield url


def _empty_tables(url: str) -> None:
    engine = create_engine(normalise_url(url))
    # DELETE beats TRUNCATE on a handful of small tables.
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database at head with no rows."""
    if request.param == "sqlite":
        path = tmp_path / "tam.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_migrated")
    _empty_tables(url)
    return url


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database (no schema at all)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tam.db'}"
        return
    yield from _postgres_schema(_postgres_base())


@pytest.fixture
def store(db_url: str) -> Iterator[TAMStore]:
    """An open store on a database at head with no rows."""
    opened = TAMStore.open(db_url, migrate=False)
    yield opened
    opened.close()
