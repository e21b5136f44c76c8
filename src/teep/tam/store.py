"""The TAM's persistent state, in SQLite or PostgreSQL.

Theory of operation
-------------------
:class:`TAMStore` is a synchronous facade over SQLAlchemy.  Every public
method runs one transaction and returns frozen records, never live ORM
objects.  A TAM worker handling a message opens a :meth:`TAMStore.unit`
around it, and every call it makes joins the unit's one transaction; outside
a unit, each call has its own.  The HTTP layer calls the store from worker
threads; the engine's pool hands each thread its own connection.

The statements run for every message (one-time values, devices, records)
are prebuilt Core statements executed on the connection: for those, the
ORM's per-statement bookkeeping would cost more than the database does.
Administration paths use the ORM.

Several TAM worker processes may share one database, so the store never
relies on what it read in an earlier call.  A change that takes several
statements runs in one transaction.  A one-time value (a token or a
challenge) is consumed by a single conditional ``UPDATE ... RETURNING``: the
database guarantees that exactly one caller sees the row change.

Connections, transactions and units are in :mod:`teep.tam.database`; what
the operator configures (catalogue, policy, trusted keys) in
:mod:`teep.tam.config_store`; the deliveries devices keep refusing in
:mod:`teep.tam.delivery_store`; this module adds what else sessions change:
devices, one-time values and the records operators read.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from teep.errors import ConfigError
from teep.tam.config_store import (
    ConfigurationStore,
    normalise_selector,
    selectors_for,
)
from teep.tam.database import (
    AlreadyExistsError,
    AmbiguousMatchError,
    DatabaseUnavailableError,
    NotFoundError,
    SchemaMismatchError,
    StaleVersionError,
    at_most_two,
    bounded,
    normalise_url,
    run_core,
    unhex,
    valid_sequence,
)
from teep.tam.delivery_store import (
    Delivery,
    DeliveryFailureRecord,
    DeliveryStore,
)
from teep.tam.models import (
    TA,
    Appraisal,
    AppraisalRecord,
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
    PolicyRecord,
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
    "Delivery",
    "DeliveryFailureRecord",
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
    "selectors_for",
]


_MIN_PREFIX_HEX = 8

# The tables under the models, for the statements the per-message paths run
# as Core.
_DEVICES: Table = Device.__table__  # type: ignore[assignment]
_DEVICE_MANIFESTS: Table = DeviceManifest.__table__  # type: ignore[assignment]
_NONCES: Table = Nonce.__table__  # type: ignore[assignment]
_APPRAISALS: Table = Appraisal.__table__  # type: ignore[assignment]
_EVENTS: Table = Event.__table__  # type: ignore[assignment]
_SUIT_REPORTS: Table = SuitReport.__table__  # type: ignore[assignment]

# Built once: constructing a statement costs more than SQLite running it.
_DEVICE_QUERY = select(_DEVICES).where(_DEVICES.c.kid == bindparam("kid"))
_DEVICE_ID_QUERY = select(_DEVICES.c.id).where(_DEVICES.c.kid == bindparam("kid"))
_DEVICE_STATUS = (
    update(_DEVICES)
    .where(_DEVICES.c.kid == bindparam("p_kid"))
    .values(
        status=bindparam("p_status"),
        status_reason=bindparam("p_reason"),
        status_at=bindparam("p_now"),
    )
)
_DEVICE_STATUS_SEEN = _DEVICE_STATUS.values(last_seen=bindparam("p_now"))
_DEVICE_MANIFESTS_QUERY = (
    select(
        _DEVICE_MANIFESTS.c.manifest_component_id,
        _DEVICE_MANIFESTS.c.sequence_number,
    )
    .where(_DEVICE_MANIFESTS.c.device_id == bindparam("device_id"))
    .order_by(_DEVICE_MANIFESTS.c.id)
)
_CLEAR_DEVICE_MANIFESTS = delete(_DEVICE_MANIFESTS).where(
    _DEVICE_MANIFESTS.c.device_id == bindparam("device_id")
)
_OUTSTANDING = (
    _NONCES.c.hash == bindparam("p_hash"),
    _NONCES.c.kind == bindparam("p_kind"),
    _NONCES.c.used.is_(False),
    _NONCES.c.expires_at > bindparam("p_now"),
)
_CONSUMED = (
    _NONCES.c.kind,
    _NONCES.c.device_kid,
    _NONCES.c.data,
    _NONCES.c.issued_at,
    _NONCES.c.expires_at,
)
_CONSUME = (
    update(_NONCES)
    .where(*_OUTSTANDING)
    .values(used=True, used_at=bindparam("p_now"))
    .returning(*_CONSUMED)
)
_CONSUME_OWN = (
    update(_NONCES)
    .where(*_OUTSTANDING, _NONCES.c.device_kid == bindparam("p_kid"))
    .values(used=True, used_at=bindparam("p_now"))
    .returning(*_CONSUMED)
)


@dataclass(frozen=True)
class _Upserts:
    """The statements whose form depends on the database's dialect."""

    upsert_device: Executable
    """Store a device or refresh the one with its kid, in one statement so
    two workers meeting a new device cannot collide."""
    add_nonce: Executable
    """Insert a one-time value, or take over the row of a used or expired
    one with the same hash; nothing if that one is outstanding."""

    @staticmethod
    @functools.cache
    def for_dialect(name: str) -> _Upserts:
        dialect: Any = postgresql if name == "postgresql" else sqlite
        device = dialect.insert(_DEVICES)
        excluded = device.excluded
        device = device.on_conflict_do_update(
            index_elements=[_DEVICES.c.kid],
            set_={
                "cose_key": excluded.cose_key,
                "ueid": func.coalesce(excluded.ueid, _DEVICES.c.ueid),
                "hwmodel": func.coalesce(excluded.hwmodel, _DEVICES.c.hwmodel),
                "numbering": excluded.numbering,
                "last_seen": excluded.last_seen,
            },
        ).returning(*_DEVICES.c)
        nonce = dialect.insert(_NONCES)
        fresh = nonce.excluded
        # teep-protocol 5.1: a token may be reused once answered or expired.
        # RETURNING tells whether the row went in: drivers disagree on the
        # rowcount of an insert that did nothing.
        nonce = nonce.on_conflict_do_update(
            index_elements=[_NONCES.c.hash],
            set_={
                name: getattr(fresh, name)
                for name in _NONCES.c.keys()
                if name != "hash"
            },
            where=or_(_NONCES.c.used, _NONCES.c.expires_at <= fresh.issued_at),
        ).returning(_NONCES.c.hash)
        return _Upserts(device, nonce)


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _json_default(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return str(value)


def _to_json(detail: dict[str, Any]) -> str:
    try:
        return json.dumps(detail, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"appraisal detail cannot be stored as JSON: {exc}") from None


def _next_prefix(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


# the store


class TAMStore(DeliveryStore, ConfigurationStore):
    """The TAM's devices, catalogue, policy, one-time values, records and
    failed deliveries.

    Create it with :meth:`open`.  Every method is one transaction (or part
    of the thread's open :meth:`unit`) and is safe to call from several
    threads and several processes at once.  Besides the exceptions each
    method names, any method can raise
    :class:`DatabaseUnavailableError` (the database cannot be reached or timed
    out) or :class:`~teep.errors.StoreError` (any other database failure).
    """

    @functools.cached_property
    def _sql(self) -> _Upserts:
        return _Upserts.for_dialect(self._dialect)

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
            "numbering": bounded("numbering", numbering, 16),
            "label": None,
            "status": "unknown",
            "status_reason": "",
            "first_seen": now,
            "last_seen": now,
        }
        with self._tx("store a device") as session:
            row = run_core(session, self._sql.upsert_device, values).one()
            return to_record(DeviceRecord, row)

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
                "numbering": bounded("numbering", d.numbering, 16),
                "label": d.label,
                "status": bounded("status", d.status, 32),
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
            return _device_record(session, kid)

    def find_device(self, text: str) -> DeviceRecord | None:
        """Find a device by what an operator types.

        Tried in order: the whole kid in hex, the ueid in hex, the label,
        then a kid prefix of at least 8 hex digits.

        Raises:
            AmbiguousMatchError: several devices match the ueid or prefix.
        """
        text = text.strip()
        raw = unhex(text)
        with self._tx("find a device", write=False) as session:
            searches: list[Callable[[], list[Device]]] = []
            if raw:
                searches.append(lambda: at_most_two(session, Device.kid == raw))
                searches.append(lambda: at_most_two(session, Device.ueid == raw))
            searches.append(lambda: at_most_two(session, Device.label == text))
            if len(text) >= _MIN_PREFIX_HEX and unhex(text[: len(text) // 2 * 2]):
                searches.append(lambda: _kid_prefix(session, text.lower()))
            for search in searches:
                rows = search()
                if len(rows) > 1:
                    raise AmbiguousMatchError(f"{text!r} matches several devices")
                if rows:
                    return to_record(DeviceRecord, rows[0])
        return None

    def list_devices(
        self, *, statuses: Sequence[str] | None = None
    ) -> list[DeviceRecord]:
        """Every device, oldest first; with ``statuses``, only the devices
        whose attestation status is one of them."""
        query = select(Device).order_by(Device.id)
        if statuses is not None:
            query = query.where(Device.status.in_(list(statuses)))
        with self._tx("list devices", write=False) as session:
            return [to_record(DeviceRecord, row) for row in session.scalars(query)]

    def set_device_label(self, kid: bytes, label: str | None) -> None:
        """Name a device for operators (None removes the name).

        Raises:
            NotFoundError: no device has this kid.
            AlreadyExistsError: another device has this label.
        """
        if label is not None:
            bounded("label", label, 200)
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
        checked = [(mid, valid_sequence(seq)) for mid, seq in manifests]
        with self._tx("store a device's manifests") as session:
            device_id = _device_id(session, kid)
            run_core(session, _CLEAR_DEVICE_MANIFESTS, {"device_id": device_id})
            rows = [
                {
                    "device_id": device_id,
                    "manifest_component_id": mid,
                    "sequence_number": seq,
                    "reported_at": now,
                }
                for mid, seq in checked
            ]
            if rows:
                run_core(session, insert(_DEVICE_MANIFESTS), rows)

    def device_manifests(self, kid: bytes) -> list[tuple[bytes, int | None]]:
        """The manifests a device last reported, in the order reported.

        Raises:
            NotFoundError: no device has this kid.
        """
        with self._tx("read a device's manifests", write=False) as session:
            device_id = _device_id(session, kid)
            rows = run_core(session, _DEVICE_MANIFESTS_QUERY, {"device_id": device_id})
            return [(r.manifest_component_id, r.sequence_number) for r in rows]

    def count_holders(self, name: str) -> int:
        """How many devices last reported holding a version of component
        ``name`` (its Trusted Component manifest, any sequence number)."""
        manifests = select(Component.manifest_component_id).where(
            Component.name == name, Component.kind == TA
        )
        query = select(func.count(func.distinct(DeviceManifest.device_id))).where(
            DeviceManifest.manifest_component_id.in_(manifests)
        )
        with self._tx("count a component's holders", write=False) as session:
            return int(session.scalar(query) or 0)

    def set_device_status(
        self, kid: bytes, status: str, reason: str, *, now: float, seen: bool = False
    ) -> None:
        """Set a device's attestation status ("affirming", "quarantined", ...);
        with ``seen``, the status comes from the device's own message, which
        also counts as contact (its last-seen time becomes ``now``).

        Raises:
            NotFoundError: no device has this kid.
        """
        bounded("status", status, 32)
        values = {"p_kid": kid, "p_status": status, "p_reason": reason, "p_now": now}
        statement = _DEVICE_STATUS_SEEN if seen else _DEVICE_STATUS
        with self._tx("set a device's status") as session:
            if not run_core(session, statement, values).rowcount:
                raise NotFoundError(f"no device with kid {kid.hex()[:16]}")

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
        row = {
            "hash": digest,
            "kind": bounded("nonce kind", kind, 32),
            "device_kid": device_kid,
            "data": data,
            "issued_at": now,
            "expires_at": now + ttl,
            "used": False,
            "used_at": None,
        }
        with self._tx("issue a one-time value") as session:
            if run_core(session, self._sql.add_nonce, row).first() is None:
                raise AlreadyExistsError("value is outstanding")

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
        stmt = _CONSUME if device_kid is None else _CONSUME_OWN
        values = {
            "p_hash": _digest(value),
            "p_kind": kind,
            "p_now": now,
            "p_kid": device_kid,
        }
        with self._tx("consume a one-time value") as session:
            row = run_core(session, stmt, values).first()
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
        row = {
            "device_kid": device_kid,
            "status": bounded("status", status, 32),
            "reason": reason,
            "detail": _to_json(detail),
            "at": now,
        }
        with self._tx("record an appraisal") as session:
            run_core(session, insert(_APPRAISALS), row)

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
        row = {
            "device_kid": device_kid,
            "kind": bounded("event kind", kind, 64),
            "message": message,
            "at": now,
        }
        with self._tx("record an event") as session:
            run_core(session, insert(_EVENTS), row)

    def list_events(
        self,
        device_kid: bytes | None = None,
        limit: int = 100,
        *,
        kinds: Sequence[str] | None = None,
    ) -> list[EventRecord]:
        """The newest events first, of one device or (None) of all; with
        ``kinds``, only events of those kinds."""
        query = _recent(Event, device_kid, limit)
        if kinds is not None:
            query = query.where(Event.kind.in_(list(kinds)))
        with self._tx("list events", write=False) as session:
            return [to_record(EventRecord, row) for row in session.scalars(query)]

    def record_suit_report(
        self, device_kid: bytes, *, report: bytes, ok: bool, now: float
    ) -> None:
        """Keep a SUIT Report a device sent, as received."""
        row = {"device_kid": device_kid, "report": report, "ok": ok, "at": now}
        with self._tx("record a SUIT Report") as session:
            run_core(session, insert(_SUIT_REPORTS), row)

    def list_suit_reports(
        self, device_kid: bytes, limit: int = 50
    ) -> list[SuitReportRecord]:
        """A device's SUIT Reports, newest first."""
        query = _recent(SuitReport, device_kid, limit)
        with self._tx("list SUIT Reports", write=False) as session:
            return [to_record(SuitReportRecord, row) for row in session.scalars(query)]


def _device_record(session: Session, kid: bytes) -> DeviceRecord | None:
    row = run_core(session, _DEVICE_QUERY, {"kid": kid}).first()
    return None if row is None else to_record(DeviceRecord, row)


def _device_id(session: Session, kid: bytes) -> int:
    found = run_core(session, _DEVICE_ID_QUERY, {"kid": kid}).scalar()
    if found is None:
        raise NotFoundError(f"no device with kid {kid.hex()[:16]}")
    return int(found)


def _device(session: Session, kid: bytes) -> Device:
    row = session.scalars(select(Device).where(Device.kid == kid)).first()
    if row is None:
        raise NotFoundError(f"no device with kid {kid.hex()[:16]}")
    return row


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


def _recent(model: Any, device_kid: bytes | None, limit: int) -> Any:
    query = select(model).order_by(model.id.desc()).limit(max(0, limit))
    if device_kid is not None:
        query = query.where(model.device_kid == device_kid)
    return query
