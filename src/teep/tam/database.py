"""The TAM's database: connections, transactions, units and errors.

:class:`Database` is the base of :class:`teep.tam.store.TAMStore`: it opens
the engine, runs the migrations, and gives every store method its
transaction (``_tx``) or joins the thread's open unit (:meth:`Database.unit`).

SQLite runs in WAL mode with foreign keys on and a busy timeout.  Python's
sqlite3 module would open transactions lazily in DEFERRED mode, where two
writers that both read first can deadlock and fail at once instead of
waiting; the store therefore emits ``BEGIN IMMEDIATE`` itself for every
transaction that writes.  On PostgreSQL the default READ COMMITTED level is
enough, because every check-and-change is a single statement or is guarded
by a unique constraint.

The schema is created and upgraded only by the alembic migrations shipped in
:mod:`teep.tam.migrations`, which :meth:`Database.open` runs under a lock so
that workers starting together do not race.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any, Self

from alembic.util import CommandError
from sqlalchemy import (
    URL,
    Connection,
    Engine,
    Integer,
    String,
    Table,
    cast,
    create_engine,
    event,
    make_url,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.expression import Executable

from teep.errors import ConfigError, StoreError
from teep.tam import migrations
from teep.tam.models import (
    Device,
    Setting,
)

__all__ = [
    "AlreadyExistsError",
    "AmbiguousMatchError",
    "Database",
    "DatabaseUnavailableError",
    "NotFoundError",
    "SchemaMismatchError",
    "StaleVersionError",
    "normalise_url",
]


log = logging.getLogger("teep.tam.database")

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another process's lock."""

# SUIT sequence numbers are uint, but both databases store signed 64 bits.
_MAX_SEQUENCE = 2**63 - 1


_WRITE = "teep_write"
_GENERATION = "config_generation"

_SETTINGS: Table = Setting.__table__  # type: ignore[assignment]
_GENERATION_QUERY = select(_SETTINGS.c.value).where(_SETTINGS.c.key == _GENERATION)


# errors


class NotFoundError(StoreError):
    """The device, component or policy named does not exist."""


class AlreadyExistsError(StoreError):
    """A row with the same identity is already stored."""


class AmbiguousMatchError(StoreError):
    """A search text matches more than one device."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached, or refused the operation."""


class SchemaMismatchError(StoreError):
    """The database schema is not the one this version of teep expects."""


class StaleVersionError(StoreError):
    """A component version is not newer than one already catalogued."""


# engines and migrations


def normalise_url(url: str) -> URL:
    """Parse a database URL, choosing the driver teep uses.

    A text without ``://`` is taken as the path of a SQLite file.  A
    ``postgresql://`` URL is rewritten to use psycopg 3.

    Raises:
        ConfigError: the URL is malformed or names an unsupported database.
    """
    if "://" not in url:
        return URL.create("sqlite", database=url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"malformed database URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise ConfigError(
        f"unsupported database {parsed.drivername!r}: use sqlite or postgresql"
    )


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "postgresql":
        try:
            return create_engine(url, pool_pre_ping=True)
        except ImportError:
            raise ConfigError(
                "PostgreSQL needs psycopg: install teep[postgres]"
            ) from None
    memory = url.database in (None, "", ":memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
        # One connection, or every checkout would see a new empty database.
        poolclass=StaticPool if memory else None,
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the sqlite3 module (see the module doc).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _prepare_schema(engine: Engine, migrate: bool) -> None:
    with engine.execution_options(**{_WRITE: True}).begin() as connection:
        if migrate:
            migrations.upgrade(connection)
            return
        current, heads = migrations.revisions(connection)
    if current != heads:
        raise SchemaMismatchError(
            f"database schema is at {sorted(current) or 'nothing'}, "
            f"teep expects {sorted(heads)}: run the migrations"
        )


# validation and conversions


def bounded(what: str, value: str, limit: int) -> str:
    """``value`` if it has at most ``limit`` characters.

    :raises ConfigError: if it is longer.
    """
    if len(value) > limit:
        raise ConfigError(f"{what} is longer than {limit} characters")
    return value


def valid_sequence(value: int | None) -> int | None:
    """``value`` if it fits the 64-bit column (SUIT sequence numbers are
    uint, both databases store signed 64 bits).

    :raises StoreError: if it does not.
    """
    if value is not None and not 0 <= value <= _MAX_SEQUENCE:
        raise StoreError(f"sequence number {value} is outside 0..2^63-1")
    return value


def unhex(text: str) -> bytes | None:
    """The bytes a hex text spells, or None if it is not hex."""
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _first_line(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


# the base of the store


class Database:
    """Connections and transactions; the store's methods build on it.

    Besides the exceptions each method names, any method can raise
    :class:`DatabaseUnavailableError` (the database cannot be reached or
    timed out) or :class:`~teep.errors.StoreError` (any other database
    failure).
    """

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine whose schema is already current; prefer :meth:`open`."""
        self._engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )
        self._dialect = engine.dialect.name
        self._unit = threading.local()
        # SQLite has one writer.  Threads of this process queue for it here,
        # in order, rather than in SQLite's busy handler, which sleeps in
        # growing steps and would add its sleeps to the latency.
        self._writer: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._dialect == "sqlite" else contextlib.nullcontext()
        )

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Self:
        """Connect to a database and bring its schema to the current version.

        Args:
            url: a SQLAlchemy URL (``sqlite:///tam.db``, ``postgresql://...``)
                or the path of a SQLite file.  ``sqlite://`` is an in-memory
                database on one shared connection, for tests and tools only.
            migrate: run the migrations up to head; when false, only check
                that the schema is already at head.

        Raises:
            ConfigError: the URL is malformed or unsupported.
            DatabaseUnavailableError: the database cannot be reached.
            SchemaMismatchError: the schema is not at head (``migrate=False``)
                or is newer than this version of teep.
            StoreError: the migrations failed.
        """
        engine = _create_engine(normalise_url(url))
        try:
            with _mapped_errors("open the database"):
                try:
                    _prepare_schema(engine, migrate)
                except CommandError as exc:
                    raise SchemaMismatchError(f"cannot migrate: {exc}") from None
        except BaseException:
            engine.dispose()
            raise
        log.debug("opened %s database", engine.dialect.name)
        return cls(engine)

    @property
    def local(self) -> bool:
        """Whether the database is on this machine (SQLite) rather than
        across the network."""
        return self._dialect == "sqlite"

    def close(self) -> None:
        """Close every pooled connection.  The store is unusable afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(
        self,
        action: str,
        *,
        write: bool = True,
        conflict: str | None = None,
        config: bool = False,
    ) -> Iterator[Session]:
        """One transaction; database errors become StoreErrors.

        ``config`` marks a change to what workers may cache (catalogue,
        policy, trusted keys, devices removed): it bumps the configuration
        generation in the same transaction.
        """
        outer = self._unit_session()
        if outer is not None:
            with self._nested(outer, action, conflict) as session:
                if config:
                    session.execute(self._bump_generation())
                yield session
            return
        factory = self._write if write else self._read
        writer = self._writer if write else contextlib.nullcontext()
        with (
            _mapped_errors(action, conflict),
            writer,
            factory() as session,
            session.begin(),
        ):
            if config:
                session.execute(self._bump_generation())
            yield session

    @contextlib.contextmanager
    def unit(self, action: str) -> Iterator[None]:
        """Run every store call this thread makes in the block as one
        transaction, committed when the block ends (rolled back if it
        raises).

        A TAM worker wraps each incoming message in a unit: a session's
        bookkeeping then costs one commit instead of one per call, and what
        one message changes lands together or not at all.  The transaction
        starts at the first call (a message refused before it touches the
        store costs nothing) and, on SQLite, holds the write lock from
        then on.  Units do not nest: an inner one joins the outer.
        """
        if getattr(self._unit, "stack", None) is not None:
            yield
            return
        with contextlib.ExitStack() as stack:
            self._unit.stack, self._unit.action = stack, action
            try:
                yield
            finally:
                self._unit.stack = self._unit.session = None

    def _unit_session(self) -> Session | None:
        """The session of the thread's open unit, begun on first use."""
        stack: contextlib.ExitStack | None = getattr(self._unit, "stack", None)
        if stack is None:
            return None
        session: Session | None = getattr(self._unit, "session", None)
        if session is None:
            stack.enter_context(_mapped_errors(self._unit.action))
            stack.enter_context(self._writer)
            session = stack.enter_context(self._write())
            stack.enter_context(session.begin())
            self._unit.session = session
        return session

    @contextlib.contextmanager
    def _nested(
        self, session: Session, action: str, conflict: str | None
    ) -> Iterator[Session]:
        """A method's work inside the thread's open :meth:`unit`.

        Each method still sees the database as it is (what earlier methods
        loaded is expired) and leaves its changes flushed, so its errors
        surface in it.  A method that maps a conflict runs in a savepoint, so
        a refused row does not spoil the unit's transaction.
        """
        with _mapped_errors(action, conflict):
            session.expire_all()
            if conflict is None:
                yield session
                session.flush()
                return
            with session.begin_nested():
                yield session

    def _bump_generation(self) -> Any:
        stmt = self._insert(Setting).values(key=_GENERATION, value="1")
        # One statement: concurrent bumps from several workers all count.
        bumped = cast(cast(Setting.value, Integer) + 1, String)
        return stmt.on_conflict_do_update(
            index_elements=[Setting.key], set_={"value": bumped}
        )

    def config_generation(self) -> int:
        """A number that grows with every change to the catalogue, the
        policy, the trusted keys or the set of devices; workers compare it to
        know when what they cached is stale."""
        with self._tx("read the configuration generation", write=False) as session:
            value = run_core(session, _GENERATION_QUERY).scalar()
        try:
            return int(value or 0)
        except ValueError:
            return 0

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self._dialect == "postgresql" else sqlite
        return dialect.insert(table)


# queries


@contextlib.contextmanager
def _mapped_errors(action: str, conflict: str | None = None) -> Iterator[None]:
    """Turn SQLAlchemy's exceptions into teep's, with one-line messages."""
    try:
        yield
    except IntegrityError as exc:
        raise AlreadyExistsError(
            conflict or f"cannot {action}: {_first_line(exc)}"
        ) from None
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnavailableError(f"cannot {action}: {_first_line(exc)}") from None
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot {action}: {_first_line(exc)}") from None


def run_core(
    session: Session, statement: Executable, params: Any = None
) -> CursorResult[Any]:
    """Run a Core statement on the session's connection, past the ORM: the
    per-message paths use these, since the ORM's bookkeeping would cost more
    than the database."""
    return session.connection().execute(statement, params)


def at_most_two(session: Session, *criteria: Any, model: Any = Device) -> list[Any]:
    """At most two rows: enough to tell none, one and several apart."""
    return list(session.scalars(select(model).where(*criteria).limit(2)))
