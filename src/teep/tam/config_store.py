"""What the TAM's operator configures: the catalogue of Trusted Components
and their Personalization Data, the policy, the trusted keys and settings.

Every change here bumps the configuration generation in its transaction
(workers drop what they cached when it moves).
"""

from __future__ import annotations

from sqlalchemy import (
    Select,
    and_,
    case,
    delete,
    func,
    select,
)
from sqlalchemy.orm import Session

from teep.errors import ConfigError
from teep.tam.database import (
    AlreadyExistsError,
    Database,
    NotFoundError,
    StaleVersionError,
    at_most_two,
    bounded,
    unhex,
    valid_sequence,
)
from teep.tam.models import (
    CONFIG,
    EVERY_DEVICE,
    TA,
    AttestationKey,
    AttestationKeyRecord,
    Component,
    ComponentRecord,
    DeviceRecord,
    Policy,
    PolicyRecord,
    Setting,
    SignerKey,
    SignerKeyRecord,
    to_record,
)

__all__ = [
    "ConfigurationStore",
    "normalise_selector",
    "selectors_for",
]


def normalise_selector(selector: str) -> str:
    """Check a policy selector and return its canonical (lower-case) form.

    Raises:
        ConfigError: it is not ``*``, a hex string, or ``hwmodel:<hex>``.
    """
    text = selector.strip().lower()
    if text == "*":
        return text
    hex_part = text.removeprefix("hwmodel:")
    if hex_part and unhex(hex_part) is not None:
        return bounded("selector", text, 300)
    raise ConfigError(
        f"bad selector {selector!r}: use '*', a kid or ueid in hex, or hwmodel:<hex>"
    )


def selectors_for(device: DeviceRecord) -> set[str]:
    """The policy selectors that match a device."""
    selectors = {"*", device.kid.hex()}
    if device.ueid:
        selectors.add(device.ueid.hex())
    if device.hwmodel:
        selectors.add("hwmodel:" + device.hwmodel.hex())
    return selectors


class ConfigurationStore(Database):
    """The catalogue, policy, trusted keys and settings of a TAM."""

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
        kind: str = TA,
        device: str = EVERY_DEVICE,
        newer_only: bool = False,
    ) -> ComponentRecord:
        """Add a version of a Trusted Component (``kind`` :data:`TA`) or of
        its Personalization Data (:data:`CONFIG`) to the catalogue.

        Personalization Data is for every device (``device`` ``*``) or for
        the one whose kid or ueid in hex ``device`` is.  With
        ``newer_only``, the version must have a greater sequence number than
        every version already catalogued for the same name, kind and device:
        devices refuse a rollback anyway, and a TAM that offered one would
        send it again at every session.

        Raises:
            ConfigError: the kind is unknown, the device is malformed, or a
                Trusted Component is given a device.
            AlreadyExistsError: this version is already catalogued, or the
                manifest component id belongs to another name.
            StaleVersionError: ``newer_only`` and a version as new exists.
            StoreError: the sequence number is outside 0..2^63-1.
        """
        device = _catalogue_device(kind, device)
        row = Component(
            name=bounded("component name", name, 200),
            kind=kind,
            device=device,
            manifest_component_id=manifest_component_id,
            component_id=component_id,
            sequence_number=valid_sequence(sequence_number),
            envelope=envelope,
            signer_kid=signer_kid,
            added_at=now,
        )
        what = _describe(name, kind, device)
        conflict = f"{what} already has sequence number {sequence_number}"
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
                _check_newer(session, row)
            session.add(row)
        return to_record(ComponentRecord, row)

    def get_component(self, name: str) -> ComponentRecord | None:
        """The newest version of the named Trusted Component, or None."""
        query = _newest().where(Component.name == name, Component.kind == TA)
        with self._tx("read a component", write=False) as session:
            rows = session.scalars(query)
            return next((to_record(ComponentRecord, row) for row in rows), None)

    def component_by_manifest_id(
        self, manifest_component_id: bytes
    ) -> ComponentRecord | None:
        """The newest version catalogued with this manifest id (for
        Personalization Data, of any device), or None."""
        query = (
            select(Component)
            .where(Component.manifest_component_id == manifest_component_id)
            .order_by(Component.sequence_number.desc())
            .limit(1)
        )
        with self._tx("read a component", write=False) as session:
            return next(
                (to_record(ComponentRecord, r) for r in session.scalars(query)), None
            )

    def list_components(self, *, all_versions: bool = False) -> list[ComponentRecord]:
        """The newest version of every catalogue entry (or every version).

        An entry is a Trusted Component or its Personalization Data for
        every device or for one; they come by name, the Trusted Component
        first, then by device and sequence number.
        """
        query: Select[Component] = select(Component) if all_versions else _newest()
        query = query.order_by(
            Component.name,
            case((Component.kind == TA, 0), else_=1),
            Component.device,
            Component.sequence_number,
        )
        with self._tx("list components", write=False) as session:
            return [to_record(ComponentRecord, row) for row in session.scalars(query)]

    def remove_component(self, name: str) -> bool:
        """Remove every version of a component, its Personalization Data
        and its policy rows.

        Returns False if no version existed.
        """
        with self._tx("remove a component", config=True) as session:
            session.execute(delete(Policy).where(Policy.component == name))
            result = session.execute(delete(Component).where(Component.name == name))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def remove_personalization(self, name: str, device: str | None = None) -> bool:
        """Remove every version of a component's Personalization Data: for
        one ``device`` (``*``: the data for every device), or all of it.

        The component itself and its policy stay.  Returns False if no
        version existed.

        Raises:
            ConfigError: the device is malformed.
        """
        criteria = [Component.name == name, Component.kind == CONFIG]
        if device is not None:
            criteria.append(Component.device == _catalogue_device(CONFIG, device))
        with self._tx("remove Personalization Data", config=True) as session:
            result = session.execute(delete(Component).where(*criteria))
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
            if not at_most_two(session, Component.name == component, model=Component):
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
        """The newest version of each Trusted Component a rule requires on
        the device."""
        names = select(Policy.component).where(
            Policy.selector.in_(selectors_for(device))
        )
        query = (
            _newest()
            .where(Component.name.in_(names), Component.kind == TA)
            .order_by(Component.name)
        )
        with self._tx("read required components", write=False) as session:
            return [to_record(ComponentRecord, row) for row in session.scalars(query)]

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
            label=bounded("label", label, 200),
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
            label=bounded("label", label, 200),
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
            key=bounded("setting key", key, 200), value=value
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[Setting.key], set_={"value": stmt.excluded.value}
        )
        with self._tx("write a setting") as session:
            session.execute(stmt)


def _check_newer(session: Session, row: Component) -> None:
    # SUIT anti-rollback: devices reject a sequence number that is not
    # strictly greater, so the catalogue refuses such a version up front.
    top = session.scalar(
        select(func.max(Component.sequence_number)).where(
            Component.name == row.name,
            Component.kind == row.kind,
            Component.device == row.device,
        )
    )
    if top is not None and row.sequence_number <= top:
        raise StaleVersionError(
            f"{_describe(row.name, row.kind, row.device)} already has sequence "
            f"number {top}; {row.sequence_number} would be a rollback"
        )


def _catalogue_device(kind: str, device: str) -> str:
    """The canonical device of a catalogue entry.

    Raises:
        ConfigError: the kind is unknown, the device is not ``*`` or a hex
            kid or ueid, or a Trusted Component is given a device.
    """
    if kind not in (TA, CONFIG):
        raise ConfigError(f"unknown catalogue kind {kind!r}: use {TA} or {CONFIG}")
    text = normalise_selector(device)
    if text.startswith("hwmodel:"):
        raise ConfigError(
            f"bad device {device!r}: Personalization Data is for '*' "
            "or one device's kid or ueid in hex"
        )
    if kind == TA and text != EVERY_DEVICE:
        raise ConfigError(
            "a Trusted Component is for every device; only its "
            "Personalization Data can be for one"
        )
    return text


def _describe(name: str, kind: str, device: str) -> str:
    """How messages name a catalogue entry."""
    if kind == TA:
        return f"component {name!r}"
    if device == EVERY_DEVICE:
        return f"the Personalization Data of {name!r}"
    return f"the Personalization Data of {name!r} for device {device[:16]}"


def _newest() -> Select[Component]:
    """Select the newest version of each catalogue entry (name, kind, device)."""
    entry = (Component.name, Component.kind, Component.device)
    newest = (
        select(*entry, func.max(Component.sequence_number).label("top"))
        .group_by(*entry)
        .subquery()
    )
    return select(Component).join(
        newest,
        and_(
            Component.name == newest.c.name,
            Component.kind == newest.c.kind,
            Component.device == newest.c.device,
            Component.sequence_number == newest.c.top,
        ),
    )
