"""Schema creation by migrations, opening rules and error mapping."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from teep.errors import ConfigError
from teep.tam import migrations
from teep.tam.models import CONFIG, TA, Base
from teep.tam.store import (
    AlreadyExistsError,
    DatabaseUnavailableError,
    SchemaMismatchError,
    TAMStore,
    normalise_url,
)


def test_migrations_create_every_table(empty_url: str) -> None:
    """Opening an empty database creates every model table at head."""
    TAMStore.open(empty_url).close()
    engine = create_engine(normalise_url(empty_url))
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        current, heads = migrations.revisions(connection)
    engine.dispose()
    assert set(Base.metadata.tables) | {"alembic_version"} == tables
    assert current == heads


def test_models_match_migrations(empty_url: str) -> None:
    """alembic autogenerate finds no difference between models and schema."""
    TAMStore.open(empty_url).close()
    engine = create_engine(normalise_url(empty_url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_open_is_idempotent(empty_url: str) -> None:
    """Opening twice migrates once and keeps the data."""
    with TAMStore.open(empty_url) as store:
        store.set_setting("k", "v")
    with TAMStore.open(empty_url) as store:
        assert store.get_setting("k") == "v"
    TAMStore.open(empty_url, migrate=False).close()


def test_open_without_migrate_needs_current_schema(empty_url: str) -> None:
    """migrate=False on an empty database raises SchemaMismatchError."""
    with pytest.raises(SchemaMismatchError, match="run the migrations"):
        TAMStore.open(empty_url, migrate=False)


def test_downgrade_and_upgrade_again(empty_url: str) -> None:
    """The first revision downgrades to nothing and upgrades again."""
    TAMStore.open(empty_url).close()
    engine = create_engine(normalise_url(empty_url))
    with engine.begin() as connection:
        command.downgrade(migrations.alembic_config(connection), "base")
        assert inspect(connection).get_table_names() == ["alembic_version"]
    engine.dispose()
    TAMStore.open(empty_url).close()


def test_first_schema_upgrades_with_its_catalogue(empty_url: str) -> None:
    """A database made by the first revision upgrades to head: its components
    become Trusted Components for every device, their policies stay, and
    Personalization Data can join them at the same sequence number."""
    engine = create_engine(normalise_url(empty_url))
    with engine.begin() as connection:
        migrations.upgrade(connection, "0001")
        connection.execute(
            text(
                "INSERT INTO components (name, manifest_component_id, component_id,"
                " sequence_number, envelope, signer_kid, added_at)"
                " VALUES ('hello', :mid, :cid, 3, :env, :kid, 1.0)"
            ),
            {"mid": b"m", "cid": b"c", "env": b"e", "kid": b"k"},
        )
        connection.execute(
            text("INSERT INTO policies (component, selector) VALUES ('hello', '*')")
        )
    engine.dispose()
    with TAMStore.open(empty_url) as store:
        (record,) = store.list_components()
        assert (record.name, record.kind, record.device) == ("hello", TA, "*")
        assert record.sequence_number == 3
        assert [p.component for p in store.list_policies()] == ["hello"]
        for device in ("*", "ab"):
            store.add_component(
                "hello",
                kind=CONFIG,
                device=device,
                manifest_component_id=b"m-config",
                component_id=b"c-config",
                sequence_number=3,
                envelope=b"e-config",
                signer_kid=b"k",
                now=2.0,
            )
        with pytest.raises(AlreadyExistsError):
            store.add_component(
                "hello",
                manifest_component_id=b"m",
                component_id=b"c",
                sequence_number=3,
                envelope=b"e2",
                signer_kid=b"k",
                now=3.0,
            )
        assert len(store.list_components()) == 3


def test_downgrade_drops_personalization(empty_url: str) -> None:
    """Going back to the first revision keeps the Trusted Components and
    drops the Personalization Data the old schema cannot hold."""
    with TAMStore.open(empty_url) as store:
        for kind, seq in ((TA, 1), (CONFIG, 1)):
            store.add_component(
                "hello",
                kind=kind,
                manifest_component_id=kind.encode(),
                component_id=kind.encode(),
                sequence_number=seq,
                envelope=b"e",
                signer_kid=b"k",
                now=1.0,
            )
    engine = create_engine(normalise_url(empty_url))
    with engine.begin() as connection:
        command.downgrade(migrations.alembic_config(connection), "0001")
        rows = connection.execute(text("SELECT name, sequence_number FROM components"))
        assert [tuple(r) for r in rows] == [("hello", 1)]
    engine.dispose()
    with TAMStore.open(empty_url) as store:
        assert [c.kind for c in store.list_components()] == [TA]


def test_unknown_revision_is_a_schema_mismatch(empty_url: str) -> None:
    """A database migrated by a newer teep is refused with a clear error."""
    TAMStore.open(empty_url).close()
    engine = create_engine(normalise_url(empty_url))
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'future'")
    engine.dispose()
    with pytest.raises(SchemaMismatchError):
        TAMStore.open(empty_url)
    with pytest.raises(SchemaMismatchError):
        TAMStore.open(empty_url, migrate=False)


def test_sqlite_pragmas(tmp_path: Path) -> None:
    """SQLite databases run in WAL mode with foreign keys on."""
    url = f"sqlite:///{tmp_path / 'tam.db'}"
    with TAMStore.open(url) as store:
        with store._engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1


def test_plain_path_and_memory(tmp_path: Path) -> None:
    """A bare path means a SQLite file; sqlite:// is an in-memory database."""
    path = tmp_path / "plain.db"
    TAMStore.open(str(path)).close()
    assert path.exists()
    with TAMStore.open("sqlite://") as store:
        store.set_setting("a", "b")
        assert store.get_setting("a") == "b"


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite"),
        ("x.db", "sqlite"),
    ],
)
def test_normalise_url(url: str, driver: str) -> None:
    """PostgreSQL URLs are rewritten to psycopg 3; paths become SQLite URLs."""
    assert normalise_url(url).drivername == driver


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "postgresql+asyncpg://h/db", "::://"]
)
def test_unsupported_urls(url: str) -> None:
    """Other databases and malformed URLs raise ConfigError."""
    with pytest.raises(ConfigError):
        TAMStore.open(url)


def test_unreachable_database() -> None:
    """A server that does not answer raises DatabaseUnavailableError."""
    with pytest.raises(DatabaseUnavailableError):
        TAMStore.open("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")


def test_unwritable_sqlite_path(tmp_path: Path) -> None:
    """A SQLite file that cannot be created raises DatabaseUnavailableError."""
    with pytest.raises(DatabaseUnavailableError):
        TAMStore.open(str(tmp_path / "missing" / "dir" / "tam.db"))


def test_store_errors_after_close(tmp_path: Path) -> None:
    """A store whose tables vanished raises a StoreError, not SQLAlchemy's."""
    url = f"sqlite:///{tmp_path / 'tam.db'}"
    store = TAMStore.open(url)
    engine = create_engine(normalise_url(url))
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE settings")
    engine.dispose()
    with pytest.raises(DatabaseUnavailableError):
        store.get_setting("x")
    store.close()


def _open_and_close(url: str) -> None:
    TAMStore.open(url).close()


def test_workers_migrating_together(empty_url: str) -> None:
    """Processes opening an empty database at once all succeed (a lock orders them)."""
    context = multiprocessing.get_context("fork")
    procs = [
        context.Process(target=_open_and_close, args=(empty_url,)) for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    TAMStore.open(empty_url, migrate=False).close()
