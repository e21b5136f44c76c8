"""alembic environment for the TAM's database.

:meth:`teep.tam.store.TAMStore.open` runs the migrations itself, on a
connection it has already opened and locked, and hands that connection over
in ``config.attributes["connection"]``.  Run by hand (``alembic -c <ini>``),
the environment connects to the ``sqlalchemy.url`` of the configuration.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from teep.tam.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Upgrade on the handed-over connection, or on one of our own."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url to run the TAM migrations by hand")
    engine = create_engine(url)
    with engine.begin() as own:
        _run(own)
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the TAM migrations run online only")
run_migrations_online()
