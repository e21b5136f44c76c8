"""The TAM's schema migrations (an alembic environment inside the package).

No ``alembic.ini`` is needed: :func:`alembic_config` builds the
configuration in code and points it at this directory, wherever the package
is installed.  :func:`upgrade` runs on a connection the caller has opened,
so the caller decides how the database is locked while it runs.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

__all__ = ["LOCATION", "alembic_config", "revisions", "upgrade"]

LOCATION = Path(__file__).resolve().parent
"""The directory holding ``env.py`` and ``versions/``."""

# An arbitrary constant naming the migration lock among advisory locks.
_PG_MIGRATION_LOCK = 0x7EE9_0001


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic configuration for these migrations.

    With a ``connection``, ``env.py`` runs on it instead of opening its own.
    """
    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade the schema inside the connection's current transaction.

    On PostgreSQL an advisory lock held until the transaction ends makes
    workers that start together migrate one after the other; on SQLite the
    caller's ``BEGIN IMMEDIATE`` does the same.

    Raises:
        alembic.util.CommandError: the database is at an unknown revision.
        sqlalchemy.exc.SQLAlchemyError: a statement failed.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"
        )
    command.upgrade(alembic_config(connection), revision)


def revisions(connection: Connection) -> tuple[set[str], set[str]]:
    """The revisions the database is at, and the heads this code expects."""
    current = MigrationContext.configure(connection).get_current_heads()
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return set(current), set(heads)
