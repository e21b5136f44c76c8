"""The TAM's persistent state, in SQLite or PostgreSQL.

Theory of operation
-------------------
:class:`TAMStore` is a synchronous facade over SQLAlchemy.  Every public
method opens a session, runs one transaction and closes the session before
it returns, so what comes back is a frozen record, never a live ORM object.
The HTTP layer calls the store from worker threads; the engine's pool hands
each call its own connection.

Several TAM worker processes may share one database, so the store never
relies on what it read in an earlier call.  A change that takes several
statements runs in one transaction.  A one-time value (a token or a
challenge) is consumed by a single conditional ``UPDATE ... RETURNING``: the
database guarantees that exactly one caller sees the row change.

SQLite runs in WAL mode with foreign keys on and a busy timeout.  Python's
sqlite3 module would open transactions lazily in DEFERRED mode, where two
writers that both read first can deadlock and fail at once instead of
waiting; the store therefore emits ``BEGIN IMMEDIATE`` itself for every
transaction that writes.  On PostgreSQL the default READ COMMITTED level is
enough, because every check-and-change is a single statement or is guarded
by a unique constraint.

The schema is created and upgraded only by the alembic migrations shipped in
:mod:`teep.tam.migrations`, which :meth:`TAMStore.open` runs under a lock so
that workers starting together do not race.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from alembic.util import CommandError
from sqlalchemy import (
    URL,
    Connection,
    Engine,
    Integer,
    Select,
    String,
    and_,
    cast,
    create_engine,
    delete,
    event,
    func,
    make_url,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from teep.errors import ConfigError, StoreError
from teep.tam import migrations
from teep.tam.models import (
    Appraisal,
    AppraisalRecord,
    AttestationKey,
    AttestationKeyRecord,
    Component,
    ComponentRecord,
    Device,
    DeviceManifest,
    DeviceRecord,
    Event,
    EventRecord,
    Nonce,
    NonceRecord,
    Policy,
    PolicyRecord,
    Setting,
    SignerKey,
    SignerKeyRecord,
    SuitReport,
    SuitReportRecord,
    to_record,
)

__all__ = [
    "AlreadyExistsError",
    "AmbiguousMatchError",
    "AppraisalRecord",
    "AttestationKeyRecord",
    "ComponentRecord",
    "DatabaseUnavailableError",
    "DeviceRecord",
    "EventRecord",
    "NonceRecord",
    "NotFoundError",
    "PolicyRecord",
    "SchemaMismatchError",
    "SignerKeyRecord",
    "StaleVersionError",
    "SuitReportRecord",
    "TAMStore",
    "normalise_selector",
    "normalise_url",
]

log = logging.getLogger("teep.tam.store")

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another process's lock."""

# SUIT sequence numbers are uint, but both databases store signed 64 bits.
_MAX_SEQUENCE = 2**63 - 1

_MIN_PREFIX_HEX = 8

_WRITE = "teep_write"
_GENERATION = "config_generation"


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


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _bounded(what: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise ConfigError(f"{what} is longer than {limit} characters")
    return value


def _sequence(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= _MAX_SEQUENCE:
        raise StoreError(f"sequence number {value} is outside 0..2^63-1")
    return value


def _unhex(text: str) -> bytes | None:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _json_default(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return str(value)


def _to_json(detail: dict[str, Any]) -> str:
    try:
        return json.dumps(detail, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"appraisal detail cannot be stored as JSON: {exc}") from None


def _first_line(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _next_prefix(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def normalise_selector(selector: str) -> str:
    """Check a policy selector and return its canonical (lower-case) form.

    Raises:
        ConfigError: it is not ``*``, a hex string, or ``hwmodel:<hex>``.
    """
    text = selector.strip().lower()
    if text == "*":
        return text
    hex_part = text.removeprefix("hwmodel:")
    if hex_part and _unhex(hex_part) is not None:
        return _bounded("selector", text, 300)
    raise ConfigError(
        f"bad selector {selector!r}: use '*', a kid or ueid in hex, or hwmodel:<hex>"
    )


def _selectors_for(device: DeviceRecord) -> set[str]:
    selectors = {"*", device.kid.hex()}
    if device.ueid:
        selectors.add(device.ueid.hex())
    if device.hwmodel:
        selectors.add("hwmodel:" + device.hwmodel.hex())
    return selectors


# the store


class TAMStore:
    """The TAM's devices, catalogue, policy, one-time values and records.

    Create it with :meth:`open`.  Every method is one transaction and is safe
    to call from several threads and several processes at once.  Besides the
    exceptions each method names, any method can raise
    :class:`DatabaseUnavailableError` (the database cannot be reached or timed
    out) or :class:`~teep.errors.StoreError` (any other database failure).
    """

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine whose schema is already current; prefer :meth:`open`."""
        self._engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )
        self._dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> TAMStore:
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

    def close(self) -> None:
        """Close every pooled connection.  The store is unusable afterwards."""
        self._engine.dispose()

    def __enter__(self) -> TAMStore:
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
        factory = self._write if write else self._read
        with _mapped_errors(action, conflict), factory() as session, session.begin():
            if config:
                session.execute(self._bump_generation())
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
            value = session.scalar(
                select(Setting.value).where(Setting.key == _GENERATION)
            )
        try:
            return int(value or 0)
        except ValueError:
            return 0

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self._dialect == "postgresql" else sqlite
        return dialect.insert(table)

    # devices

    def upsert_device(
        self,
        kid: bytes,
        *,
        cose_key: bytes,
        ueid: bytes | None = None,
        hwmodel: bytes | None = None,
        numbering: str = "final",
        now: float,
    ) -> DeviceRecord:
        """Store a device, or refresh the one with this kid.

        A ``ueid`` or ``hwmodel`` of None keeps the value already stored.
        The status, label and first-seen time of a known device are kept.
        """
        values = {
            "kid": kid,
            "cose_key": cose_key,
            "ueid": ueid,
            "hwmodel": hwmodel,
            "numbering": _bounded("numbering", numbering, 16),
            "label": None,
            "status": "unknown",
            "status_reason": "",
            "first_seen": now,
            "last_seen": now,
        }
        stmt = self._insert(Device).values(values)
        # One statement, so two workers meeting a new device cannot collide.
        stmt = stmt.on_conflict_do_update(
            index_elements=[Device.kid],
            set_={
                "cose_key": stmt.excluded.cose_key,
                "ueid": func.coalesce(stmt.excluded.ueid, Device.ueid),
                "hwmodel": func.coalesce(stmt.excluded.hwmodel, Device.hwmodel),
                "numbering": stmt.excluded.numbering,
                "last_seen": stmt.excluded.last_seen,
            },
        )
        with self._tx("store a device") as session:
            session.execute(stmt)
            return to_record(DeviceRecord, _device(session, kid))

    def add_devices(self, devices: Sequence[DeviceRecord]) -> int:
        """Store many devices in one transaction; kids already stored are
        skipped.  Returns how many were added.

        Meant for imports (pre-registered devices, another TAM's registry,
        load tests); sessions enroll devices one by one with
        :meth:`upsert_device`.
        """
        rows = [
            {
                "kid": d.kid,
                "cose_key": d.cose_key,
                "ueid": d.ueid,
                "hwmodel": d.hwmodel,
                "numbering": _bounded("numbering", d.numbering, 16),
                "label": d.label,
                "status": _bounded("status", d.status, 32),
                "status_reason": d.status_reason,
                "status_at": d.status_at,
                "first_seen": d.first_seen,
                "last_seen": d.last_seen,
            }
            for d in devices
        ]
        if not rows:
            return 0
        stmt = self._insert(Device).on_conflict_do_nothing(index_elements=[Device.kid])
        counted = select(func.count()).select_from(Device)
        with self._tx("import devices") as session:
            before = session.scalar(counted) or 0
            session.execute(stmt, rows)
            return (session.scalar(counted) or 0) - before

    def get_device(self, kid: bytes) -> DeviceRecord | None:
        """The device with this kid, or None."""
        with self._tx("read a device", write=False) as session:
            row = session.scalars(select(Device).where(Device.kid == kid)).first()
            return None if row is None else to_record(DeviceRecord, row)

    def find_device(self, text: str) -> DeviceRecord | None:
        """Find a device by what an operator types.

        Tried in order: the whole kid in hex, the ueid in hex, the label,
        then a kid prefix of at least 8 hex digits.

        Raises:
            AmbiguousMatchError: several devices match the ueid or prefix.
        """
        text = text.strip()
        raw = _unhex(text)
        with self._tx("find a device", write=False) as session:
            searches: list[Callable[[], list[Device]]] = []
            if raw:
                searches.append(lambda: _where(session, Device.kid == raw))
                searches.append(lambda: _where(session, Device.ueid == raw))
            searches.append(lambda: _where(session, Device.label == text))
            if len(text) >= _MIN_PREFIX_HEX and _unhex(text[: len(text) // 2 * 2]):
                searches.append(lambda: _kid_prefix(session, text.lower()))
            for search in searches:
                rows = search()
                if len(rows) > 1:
                    raise AmbiguousMatchError(f"{text!r} matches several devices")
                if rows:
                    return to_record(DeviceRecord, rows[0])
        return None

    def list_devices(self) -> list[DeviceRecord]:
        """Every device, oldest first."""
        with self._tx("list devices", write=False) as session:
            rows = session.scalars(select(Device).order_by(Device.id))
            return [to_record(DeviceRecord, row) for row in rows]

    def set_device_label(self, kid: bytes, label: str | None) -> None:
        """Name a device for operators (None removes the name).

        Raises:
            NotFoundError: no device has this kid.
            AlreadyExistsError: another device has this label.
        """
        if label is not None:
            _bounded("label", label, 200)
        conflict = f"another device is labelled {label!r}"
        with self._tx("label a device", conflict=conflict) as session:
            _device(session, kid).label = label

    def remove_device(self, kid: bytes) -> bool:
        """Forget a device and its reported manifests; False if unknown."""
        with self._tx("remove a device", config=True) as session:
            result = session.execute(delete(Device).where(Device.kid == kid))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def set_device_manifests(
        self, kid: bytes, manifests: Sequence[tuple[bytes, int | None]], *, now: float
    ) -> None:
        """Replace the manifests a device reported as installed.

        Each item is (encoded manifest component id, sequence number or None).

        Raises:
            NotFoundError: no device has this kid.
            StoreError: a sequence number is outside 0..2^63-1.
        """
        checked = [(mid, _sequence(seq)) for mid, seq in manifests]
        with self._tx("store a device's manifests") as session:
            device_id = _device(session, kid).id
            session.execute(
                delete(DeviceManifest).where(DeviceManifest.device_id == device_id)
            )
            session.add_all(
                DeviceManifest(
                    device_id=device_id,
                    manifest_component_id=mid,
                    sequence_number=seq,
                    reported_at=now,
                )
                for mid, seq in checked
            )

    def device_manifests(self, kid: bytes) -> list[tuple[bytes, int | None]]:
        """The manifests a device last reported, in the order reported.

        Raises:
            NotFoundError: no device has this kid.
        """
        with self._tx("read a device's manifests", write=False) as session:
            device_id = _device(session, kid).id
            rows = session.execute(
                select(
                    DeviceManifest.manifest_component_id, DeviceManifest.sequence_number
                )
                .where(DeviceManifest.device_id == device_id)
                .order_by(DeviceManifest.id)
            )
            return [(mid, seq) for mid, seq in rows]

    def set_device_status(
        self, kid: bytes, status: str, reason: str, *, now: float
    ) -> None:
        """Set a device's attestation status ("affirming", "quarantined", ...).

        Raises:
            NotFoundError: no device has this kid.
        """
        _bounded("status", status, 32)
        with self._tx("set a device's status") as session:
            device = _device(session, kid)
            device.status, device.status_reason, device.status_at = status, reason, now

    # Trusted Components

    def add_component(
        self,
        name: str,
        *,
        manifest_component_id: bytes,
        component_id: bytes,
        sequence_number: int,
        envelope: bytes,
        signer_kid: bytes,
        now: float,
        newer_only: bool = False,
    ) -> ComponentRecord:
        """Add a version of a Trusted Component to the catalogue.

        With ``newer_only``, the version must have a greater sequence number
        than every version of the component already catalogued: devices
        refuse a rollback anyway, and a TAM that offered one would send it
        again at every session.

        Raises:
            AlreadyExistsError: this name already has this sequence number,
                or the manifest component id belongs to another name.
            StaleVersionError: ``newer_only`` and a version as new exists.
            StoreError: the sequence number is outside 0..2^63-1.
        """
        row = Component(
            name=_bounded("component name", name, 200),
            manifest_component_id=manifest_component_id,
            component_id=component_id,
            sequence_number=_sequence(sequence_number),
            envelope=envelope,
            signer_kid=signer_kid,
            added_at=now,
        )
        conflict = f"component {name!r} already has sequence number {sequence_number}"
        with self._tx("add a component", conflict=conflict, config=True) as session:
            other = session.scalars(
                select(Component.name).where(
                    Component.manifest_component_id == manifest_component_id,
                    Component.name != name,
                )
            ).first()
            if other is not None:
                raise AlreadyExistsError(
                    f"this manifest belongs to component {other!r}"
                )
            if newer_only:
                _check_newer(session, name, sequence_number)
            session.add(row)
        return to_record(ComponentRecord, row)

    def get_component(self, name: str) -> ComponentRecord | None:
        """The newest version of the named component, or None."""
        with self._tx("read a component", write=False) as session:
            rows = session.scalars(_newest().where(Component.name == name))
            return next((to_record(ComponentRecord, row) for row in rows), None)

    def component_by_manifest_id(
        self, manifest_component_id: bytes
    ) -> ComponentRecord | None:
        """The newest version of the component with this manifest id, or None."""
        query = _newest().where(
            Component.manifest_component_id == manifest_component_id
        )
        with self._tx("read a component", write=False) as session:
            return next(
                (to_record(ComponentRecord, r) for r in session.scalars(query)), None
            )

    def list_components(self, *, all_versions: bool = False) -> list[ComponentRecord]:
        """The newest version of every component (or every version), by name."""
        query: Select[Component] = select(Component) if all_versions else _newest()
        query = query.order_by(Component.name, Component.sequence_number)
        with self._tx("list components", write=False) as session:
            return [to_record(ComponentRecord, row) for row in session.scalars(query)]

    def remove_component(self, name: str) -> bool:
        """Remove every version of a component and its policy rows.

        Returns False if no version existed.
        """
        with self._tx("remove a component", config=True) as session:
            session.execute(delete(Policy).where(Policy.component == name))
            result = session.execute(delete(Component).where(Component.name == name))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # policy

    def add_policy(self, component: str, *, selector: str = "*") -> PolicyRecord:
        """Require the devices matching ``selector`` to hold ``component``.

        ``selector`` is ``*`` (every device), a device's kid or ueid in hex,
        or ``hwmodel:<hex>``.

        Raises:
            ConfigError: the selector is malformed.
            NotFoundError: no component has this name.
            AlreadyExistsError: the same rule exists.
        """
        selector = normalise_selector(selector)
        conflict = f"component {component!r} already has policy {selector!r}"
        with self._tx("add a policy", conflict=conflict, config=True) as session:
            if not _where(session, Component.name == component, model=Component):
                raise NotFoundError(f"no component named {component!r}")
            session.add(Policy(component=component, selector=selector))
        return PolicyRecord(component=component, selector=selector)

    def remove_policy(self, component: str, *, selector: str = "*") -> bool:
        """Remove one rule; False if it did not exist.

        Raises:
            ConfigError: the selector is malformed.
        """
        selector = normalise_selector(selector)
        with self._tx("remove a policy", config=True) as session:
            result = session.execute(
                delete(Policy).where(
                    Policy.component == component, Policy.selector == selector
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def list_policies(self) -> list[PolicyRecord]:
        """Every rule, by component then selector."""
        query = select(Policy).order_by(Policy.component, Policy.selector)
        with self._tx("list policies", write=False) as session:
            return [to_record(PolicyRecord, row) for row in session.scalars(query)]

    def required_components(self, device: DeviceRecord) -> list[ComponentRecord]:
        """The newest version of each component a rule requires on the device."""
        names = select(Policy.component).where(
            Policy.selector.in_(_selectors_for(device))
        )
        query = _newest().where(Component.name.in_(names)).order_by(Component.name)
        with self._tx("read required components", write=False) as session:
            return [to_record(ComponentRecord, row) for row in session.scalars(query)]

    # one-time values

    def issue_nonce(
        self,
        value: bytes,
        *,
        kind: str,
        now: float,
        ttl: float,
        device_kid: bytes | None = None,
        data: bytes = b"",
    ) -> None:
        """Remember a one-time value (token or challenge) until ``now + ttl``.

        Only the SHA-256 of the value is stored, so a copy of the database
        does not hand out live tokens.  ``data`` is opaque session state
        returned by :meth:`consume_nonce`.

        Raises:
            AlreadyExistsError: the same value is still outstanding.
        """
        digest = _digest(value)
        row = Nonce(
            hash=digest,
            kind=_bounded("nonce kind", kind, 32),
            device_kid=device_kid,
            data=data,
            issued_at=now,
            expires_at=now + ttl,
            used=False,
            used_at=None,
        )
        with self._tx(
            "issue a one-time value", conflict="value is outstanding"
        ) as session:
            # teep-protocol 5.1: a token may be reused once answered or expired.
            session.execute(
                delete(Nonce).where(
                    Nonce.hash == digest, or_(Nonce.used, Nonce.expires_at <= now)
                )
            )
            session.add(row)

    def consume_nonce(
        self, value: bytes, *, kind: str, now: float, device_kid: bytes | None = None
    ) -> NonceRecord | None:
        """Use up a one-time value, returning what was stored with it.

        Returns None if the value is unknown, of another kind, already used
        or expired, or (when ``device_kid`` is given) was issued to another
        device, which then cannot burn it.  Among any number of concurrent callers in any number of
        processes, exactly one gets the record.
        """
        # teep-protocol 5.1: a token MUST be expired after the first response;
        # check, mark and read in one statement so no two callers both win.
        stmt = (
            update(Nonce)
            .where(
                Nonce.hash == _digest(value),
                Nonce.kind == kind,
                Nonce.used.is_(False),
                Nonce.expires_at > now,
                *(() if device_kid is None else (Nonce.device_kid == device_kid,)),
            )
            .values(used=True, used_at=now)
            .returning(
                Nonce.kind,
                Nonce.device_kid,
                Nonce.data,
                Nonce.issued_at,
                Nonce.expires_at,
            )
            .execution_options(synchronize_session=False)
        )
        with self._tx("consume a one-time value") as session:
            row = session.execute(stmt).first()
        if row is None:
            return None
        return to_record(NonceRecord, row)

    def purge_nonces(self, *, now: float) -> int:
        """Delete expired one-time values; returns how many were deleted."""
        with self._tx("purge one-time values") as session:
            result = session.execute(delete(Nonce).where(Nonce.expires_at <= now))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def count_outstanding_nonces(self, device_kid: bytes | None, *, now: float) -> int:
        """How many unused, unexpired values were issued to a device.

        With ``device_kid`` None, counts the values issued to no device
        (before the TAM knew who it was talking to).
        """
        owner = (
            Nonce.device_kid.is_(None)
            if device_kid is None
            else (Nonce.device_kid == device_kid)
        )
        query = select(func.count()).where(
            owner, Nonce.used.is_(False), Nonce.expires_at > now
        )
        with self._tx("count one-time values", write=False) as session:
            return int(session.scalar(query) or 0)

    # records operators read

    def record_appraisal(
        self,
        device_kid: bytes | None,
        *,
        status: str,
        reason: str,
        detail: dict[str, Any],
        now: float,
    ) -> None:
        """Record the outcome of an attestation appraisal.

        ``detail`` is stored as JSON; byte strings become hex, and other
        values JSON cannot hold become their ``str()``.

        Raises:
            ConfigError: ``detail`` cannot be stored as JSON.
        """
        row = Appraisal(
            device_kid=device_kid,
            status=_bounded("status", status, 32),
            reason=reason,
            detail=_to_json(detail),
            at=now,
        )
        with self._tx("record an appraisal") as session:
            session.add(row)

    def list_appraisals(
        self, device_kid: bytes | None = None, limit: int = 50
    ) -> list[AppraisalRecord]:
        """The newest appraisals first, of one device or (None) of all."""
        query = _recent(Appraisal, device_kid, limit)
        with self._tx("list appraisals", write=False) as session:
            return [
                to_record(AppraisalRecord, row, detail=json.loads(row.detail))
                for row in session.scalars(query)
            ]

    def record_event(
        self, device_kid: bytes | None, *, kind: str, message: str, now: float
    ) -> None:
        """Record something operators may want to read later."""
        row = Event(
            device_kid=device_kid,
            kind=_bounded("event kind", kind, 64),
            message=message,
            at=now,
        )
        with self._tx("record an event") as session:
            session.add(row)

    def list_events(
        self, device_kid: bytes | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """The newest events first, of one device or (None) of all."""
        query = _recent(Event, device_kid, limit)
        with self._tx("list events", write=False) as session:
            return [to_record(EventRecord, row) for row in session.scalars(query)]

    def record_suit_report(
        self, device_kid: bytes, *, report: bytes, ok: bool, now: float
    ) -> None:
        """Keep a SUIT Report a device sent, as received."""
        row = SuitReport(device_kid=device_kid, report=report, ok=ok, at=now)
        with self._tx("record a SUIT Report") as session:
            session.add(row)

    def list_suit_reports(
        self, device_kid: bytes, limit: int = 50
    ) -> list[SuitReportRecord]:
        """A device's SUIT Reports, newest first."""
        query = _recent(SuitReport, device_kid, limit)
        with self._tx("list SUIT Reports", write=False) as session:
            return [to_record(SuitReportRecord, row) for row in session.scalars(query)]

    # trust configuration

    def add_attestation_key(
        self,
        *,
        cose_key: bytes,
        kid: bytes,
        hwmodel: bytes | None,
        oemid: bytes | None,
        label: str,
        now: float,
    ) -> None:
        """Accept a TEE attestation key (for one hwmodel/oemid, or any if None).

        Raises:
            AlreadyExistsError: a key with this kid is already accepted.
        """
        row = AttestationKey(
            kid=kid,
            cose_key=cose_key,
            hwmodel=hwmodel,
            oemid=oemid,
            label=_bounded("label", label, 200),
            added_at=now,
        )
        conflict = f"attestation key {kid.hex()[:16]} is already accepted"
        with self._tx(
            "add an attestation key", conflict=conflict, config=True
        ) as session:
            session.add(row)

    def list_attestation_keys(self) -> list[AttestationKeyRecord]:
        """Every accepted attestation key, oldest first."""
        with self._tx("list attestation keys", write=False) as session:
            return [
                to_record(AttestationKeyRecord, row)
                for row in session.scalars(
                    select(AttestationKey).order_by(AttestationKey.id)
                )
            ]

    def remove_attestation_key(self, kid: bytes) -> bool:
        """Stop accepting an attestation key; False if it was not accepted."""
        with self._tx("remove an attestation key", config=True) as session:
            result = session.execute(
                delete(AttestationKey).where(AttestationKey.kid == kid)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def add_signer_key(
        self, *, cose_key: bytes, kid: bytes, label: str, now: float
    ) -> None:
        """Accept a Trusted Component signer key.

        Raises:
            AlreadyExistsError: a key with this kid is already accepted.
        """
        row = SignerKey(
            kid=kid,
            cose_key=cose_key,
            label=_bounded("label", label, 200),
            added_at=now,
        )
        conflict = f"signer key {kid.hex()[:16]} is already accepted"
        with self._tx("add a signer key", conflict=conflict, config=True) as session:
            session.add(row)

    def list_signer_keys(self) -> list[SignerKeyRecord]:
        """Every accepted signer key, oldest first."""
        with self._tx("list signer keys", write=False) as session:
            return [
                to_record(SignerKeyRecord, row)
                for row in session.scalars(select(SignerKey).order_by(SignerKey.id))
            ]

    def remove_signer_key(self, kid: bytes) -> bool:
        """Stop accepting a signer key; False if it was not accepted."""
        with self._tx("remove a signer key", config=True) as session:
            result = session.execute(delete(SignerKey).where(SignerKey.kid == kid))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def get_setting(self, key: str) -> str | None:
        """A configuration value, or None if unset."""
        with self._tx("read a setting", write=False) as session:
            return session.scalar(select(Setting.value).where(Setting.key == key))

    def set_setting(self, key: str, value: str) -> None:
        """Set a configuration value, replacing any earlier one."""
        stmt = self._insert(Setting).values(
            key=_bounded("setting key", key, 200), value=value
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[Setting.key], set_={"value": stmt.excluded.value}
        )
        with self._tx("write a setting") as session:
            session.execute(stmt)


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


def _device(session: Session, kid: bytes) -> Device:
    row = session.scalars(select(Device).where(Device.kid == kid)).first()
    if row is None:
        raise NotFoundError(f"no device with kid {kid.hex()[:16]}")
    return row


def _check_newer(session: Session, name: str, sequence_number: int) -> None:
    # SUIT anti-rollback: devices reject a sequence number that is not
    # strictly greater, so the catalogue refuses such a version up front.
    top = session.scalar(
        select(func.max(Component.sequence_number)).where(Component.name == name)
    )
    if top is not None and sequence_number <= top:
        raise StaleVersionError(
            f"component {name!r} already has sequence number {top}; "
            f"{sequence_number} would be a rollback"
        )


def _where(session: Session, *criteria: Any, model: Any = Device) -> list[Any]:
    """At most two rows: enough to tell none, one and several apart."""
    return list(session.scalars(select(model).where(*criteria).limit(2)))


def _kid_prefix(session: Session, prefix: str) -> list[Device]:
    """Devices whose kid in hex starts with ``prefix`` (at most two)."""
    head = bytes.fromhex(prefix[: len(prefix) // 2 * 2])
    upper = _next_prefix(head)
    # A byte range the index can serve; an odd last digit is checked after.
    criteria = [Device.kid >= head] + ([Device.kid < upper] if upper else [])
    rows = session.scalars(select(Device).where(*criteria).order_by(Device.kid))
    found: list[Device] = []
    for row in rows:
        if not row.kid.startswith(head):
            break
        if row.kid.hex().startswith(prefix):
            found.append(row)
            if len(found) == 2:
                break
    return found


def _newest() -> Select[Component]:
    """Select the newest version of each component."""
    newest = (
        select(Component.name, func.max(Component.sequence_number).label("top"))
        .group_by(Component.name)
        .subquery()
    )
    return select(Component).join(
        newest,
        and_(
            Component.name == newest.c.name, Component.sequence_number == newest.c.top
        ),
    )


def _recent(model: Any, device_kid: bytes | None, limit: int) -> Any:
    query = select(model).order_by(model.id.desc()).limit(max(0, limit))
    if device_kid is not None:
        query = query.where(model.device_kid == device_kid)
    return query
