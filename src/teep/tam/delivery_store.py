"""Failed deliveries: the catalogue versions a device keeps refusing, and
the limit past which the TAM stops sending them.

A row counts, for one device and one catalogue version (component name,
kind, and the SHA-256 of the envelope sent), the Updates in a row the
device answered with an Error, with the last Error and when the TAM began
holding the version back.  A newer version is another envelope, so another
row: it is sent afresh.  Rows go with their device.

:class:`DeliveryStore` is a part of :class:`teep.tam.store.TAMStore`.  What
a session runs (reading a device's rows when its plan installs something,
counting an Error, clearing after a Success) are prebuilt Core statements,
as in :mod:`teep.tam.store`; the limit is a setting in the database, so
every worker follows a change at its next message.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import Executable

from teep.errors import ConfigError
from teep.tam.database import Database, NotFoundError, run_core, valid_sequence
from teep.tam.models import (
    DeliveryFailure,
    DeliveryFailureRecord,
    Device,
    Setting,
    to_record,
)

__all__ = [
    "DEFAULT_MAX_FAILED_DELIVERIES",
    "Delivery",
    "DeliveryFailureRecord",
    "DeliveryStore",
]

DEFAULT_MAX_FAILED_DELIVERIES = 3
"""Failed deliveries in a row after which a version is held back."""
MAX_FAILED_DELIVERIES_KEY = "max_failed_deliveries"
"""The setting holding the limit."""
_LARGEST_LIMIT = 2**31 - 1

_FAILURES: Table = DeliveryFailure.__table__  # type: ignore[assignment]
_DEVICES: Table = Device.__table__  # type: ignore[assignment]
_SETTINGS: Table = Setting.__table__  # type: ignore[assignment]

# Built once, as the per-message statements of the store are.
_DEVICE_ID = (
    select(_DEVICES.c.id).where(_DEVICES.c.kid == bindparam("p_kid")).scalar_subquery()
)
_OF_DEVICE = _FAILURES.c.device_id == _DEVICE_ID
_VERSION = (
    _FAILURES.c.name == bindparam("p_name"),
    _FAILURES.c.kind == bindparam("p_kind"),
    _FAILURES.c.envelope_digest == bindparam("p_digest"),
)
_FAILED = (
    select(*(_FAILURES.c[f.name] for f in fields(DeliveryFailureRecord)))
    .where(_OF_DEVICE, _FAILURES.c.failures >= bindparam("p_least"))
    # A component before its Personalization Data ("ta" after "config").
    .order_by(_FAILURES.c.name, _FAILURES.c.kind.desc(), _FAILURES.c.id)
)
_HOLD = (
    update(_FAILURES)
    .where(_OF_DEVICE, *_VERSION, _FAILURES.c.held_at.is_(None))
    .values(held_at=bindparam("p_now"))
)
_CLEAR_ENTRY = delete(_FAILURES).where(
    _OF_DEVICE,
    _FAILURES.c.name == bindparam("p_name"),
    _FAILURES.c.kind == bindparam("p_kind"),
)
_LIMIT_QUERY = select(_SETTINGS.c.value).where(
    _SETTINGS.c.key == MAX_FAILED_DELIVERIES_KEY
)
_DEVICE_ID_QUERY = select(_DEVICES.c.id).where(_DEVICES.c.kid == bindparam("p_kid"))


@dataclass(frozen=True)
class Delivery:
    """One catalogue version an Update carried."""

    name: str
    """The component's name."""
    kind: str
    """:data:`~teep.tam.models.TA` or :data:`~teep.tam.models.CONFIG`."""
    envelope_digest: bytes
    """SHA-256 of the envelope sent."""
    sequence_number: int
    """The version's suit-manifest-sequence-number."""


@functools.cache
def _count_statement(dialect_name: str) -> Executable:
    """Insert a first failure, or add one to the version's row; a row
    counting again is no longer announced as held."""
    dialect: Any = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(_FAILURES)
    fresh = stmt.excluded
    upsert: Executable = stmt.on_conflict_do_update(
        index_elements=[
            _FAILURES.c.device_id,
            _FAILURES.c.name,
            _FAILURES.c.kind,
            _FAILURES.c.envelope_digest,
        ],
        set_={
            "failures": _FAILURES.c.failures + 1,
            "sequence_number": fresh.sequence_number,
            "err_code": fresh.err_code,
            "err_msg": fresh.err_msg,
            "last_at": fresh.last_at,
            "held_at": None,
        },
    )
    return upsert


class DeliveryStore(Database):
    """Failed deliveries per device and version, and the limit on them."""

    def count_failed_deliveries(
        self,
        kid: bytes,
        versions: Sequence[Delivery],
        *,
        err_code: int,
        err_msg: str,
        now: float,
    ) -> None:
        """Add one failed delivery to each version, with the Error that
        answered it.

        Raises:
            NotFoundError: no device has this kid.
            StoreError: a sequence number is outside 0..2^63-1.
        """
        rows = [
            {
                "name": v.name,
                "kind": v.kind,
                "envelope_digest": v.envelope_digest,
                "sequence_number": valid_sequence(v.sequence_number),
                "failures": 1,
                "err_code": err_code,
                "err_msg": err_msg,
                "last_at": now,
                "held_at": None,
            }
            for v in versions
        ]
        if not rows:
            return
        with self._tx("count a failed delivery") as session:
            device_id = run_core(session, _DEVICE_ID_QUERY, {"p_kid": kid}).scalar()
            if device_id is None:
                raise NotFoundError(f"no device with kid {kid.hex()[:16]}")
            for row in rows:
                row["device_id"] = device_id
            run_core(session, _count_statement(self._dialect), rows)

    def failed_deliveries(
        self, kid: bytes, *, at_least: int = 1
    ) -> list[DeliveryFailureRecord]:
        """A device's versions with ``at_least`` failed deliveries in a row,
        by component name, each component before its Personalization Data
        (none for an unknown device)."""
        values = {"p_kid": kid, "p_least": at_least}
        with self._tx("read failed deliveries", write=False) as session:
            rows = run_core(session, _FAILED, values)
            return [to_record(DeliveryFailureRecord, row) for row in rows]

    def held_counts(self, *, at_least: int) -> dict[bytes, int]:
        """For every device with versions that failed ``at_least`` times in
        a row, how many such versions it has, by kid (one query for the
        whole registry)."""
        query = (
            select(_DEVICES.c.kid, func.count())
            .select_from(
                _FAILURES.join(_DEVICES, _FAILURES.c.device_id == _DEVICES.c.id)
            )
            .where(_FAILURES.c.failures >= at_least)
            .group_by(_DEVICES.c.kid)
        )
        with self._tx("count held deliveries", write=False) as session:
            rows = session.execute(query).all()
            return {bytes(kid): int(count) for kid, count in rows}

    def hold_deliveries(
        self, kid: bytes, versions: Sequence[Delivery], *, now: float
    ) -> None:
        """Note that the TAM holds these versions back from the device from
        ``now`` (versions already held keep their time)."""
        params = [
            {
                "p_kid": kid,
                "p_name": v.name,
                "p_kind": v.kind,
                "p_digest": v.envelope_digest,
                "p_now": now,
            }
            for v in versions
        ]
        if not params:
            return
        with self._tx("hold a delivery back") as session:
            run_core(session, _HOLD, params)

    def clear_failed_deliveries(
        self, kid: bytes, name: str | None = None, kind: str | None = None
    ) -> int:
        """Forget a device's failed deliveries: all of them, a component's
        (``name``), or one catalogue entry's (``name`` and ``kind``), every
        version.  Held versions are sent again at the next session.
        Returns how many versions were forgotten.
        """
        if name is not None and kind is not None:
            values = {"p_kid": kid, "p_name": name, "p_kind": kind}
            with self._tx("clear failed deliveries") as session:
                return int(run_core(session, _CLEAR_ENTRY, values).rowcount)
        criteria = [_FAILURES.c.device_id == _DEVICE_ID]
        if name is not None:
            criteria.append(_FAILURES.c.name == name)
        with self._tx("clear failed deliveries") as session:
            result = run_core(
                session, delete(_FAILURES).where(*criteria), {"p_kid": kid}
            )
            return int(result.rowcount)

    def max_failed_deliveries(self) -> int:
        """Failed deliveries in a row after which the TAM stops sending a
        version to a device (0: it never stops)."""
        with self._tx("read a setting", write=False) as session:
            value = run_core(session, _LIMIT_QUERY).scalar()
        try:
            return (
                DEFAULT_MAX_FAILED_DELIVERIES if value is None else max(0, int(value))
            )
        except ValueError:
            return DEFAULT_MAX_FAILED_DELIVERIES

    def set_max_failed_deliveries(self, limit: int) -> None:
        """Set :meth:`max_failed_deliveries`; workers follow at their next
        message.

        Raises:
            ConfigError: the limit is negative or absurdly large.
        """
        if not 0 <= limit <= _LARGEST_LIMIT:
            raise ConfigError(f"the limit must be 0..{_LARGEST_LIMIT}, not {limit}")
        stmt = self._insert(Setting).values(
            key=MAX_FAILED_DELIVERIES_KEY, value=str(limit)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[Setting.key], set_={"value": stmt.excluded.value}
        )
        with self._tx("set the delivery limit", config=True) as session:
            session.execute(stmt)
