"""The TAM's data model: its tables, and the records copied out of them.

The declarative classes describe the schema for the ORM and for alembic's
autogenerate; the schema itself is created only by the migrations in
:mod:`teep.tam.migrations`, and a test checks that both agree.

Rows never leave :mod:`teep.tam.store`: it copies them into the frozen
records defined here, because its sessions are closed by the time a caller
looks at the result.

Times are UNIX seconds as floats.  A device is known by its TEEP Agent's key
thumbprint (``kid``).  Rows that describe what happened (appraisals, events,
SUIT Reports) and one-time values carry the kid as a plain column, not as a
foreign key, because they can concern a device the TAM has not stored yet.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints let later migrations alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


TA = "ta"
"""The kind of a Trusted Component's own manifest."""
CONFIG = "config"
"""The kind of a manifest installing a Trusted Component's Personalization Data."""
EVERY_DEVICE = "*"
"""The device of a catalogue entry meant for every device."""


class Base(DeclarativeBase):
    """The declarative base of every TAM table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Device(Base):
    """A device, known by its TEEP Agent's key."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[bytes] = mapped_column(LargeBinary(64), unique=True)
    cose_key: Mapped[bytes] = mapped_column(LargeBinary)
    ueid: Mapped[bytes | None] = mapped_column(LargeBinary(64), index=True)
    hwmodel: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    numbering: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str] = mapped_column(Text)
    status_at: Mapped[float | None] = mapped_column(Float)
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)


class DeviceManifest(Base):
    """A manifest a device reported as installed."""

    __tablename__ = "device_manifests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    manifest_component_id: Mapped[bytes] = mapped_column(LargeBinary)
    sequence_number: Mapped[int | None] = mapped_column(BigInteger)
    reported_at: Mapped[float] = mapped_column(Float)


class Component(Base):
    """One version of a manifest in the TAM's catalogue: a Trusted
    Component's, or its Personalization Data's for every device or one."""

    __tablename__ = "components"
    __table_args__ = (UniqueConstraint("name", "kind", "device", "sequence_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(16), server_default=TA)
    device: Mapped[str] = mapped_column(String(300), server_default=EVERY_DEVICE)
    manifest_component_id: Mapped[bytes] = mapped_column(LargeBinary(512), index=True)
    component_id: Mapped[bytes] = mapped_column(LargeBinary)
    sequence_number: Mapped[int] = mapped_column(BigInteger)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    signer_kid: Mapped[bytes] = mapped_column(LargeBinary(64))
    added_at: Mapped[float] = mapped_column(Float)


class Policy(Base):
    """A rule: devices matching ``selector`` must hold ``component``."""

    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("component", "selector"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    component: Mapped[str] = mapped_column(String(200), index=True)
    selector: Mapped[str] = mapped_column(String(300))


class Nonce(Base):
    """A one-time value (token or challenge), kept only as its SHA-256."""

    __tablename__ = "nonces"
    __table_args__ = (
        Index("ix_nonces_outstanding", "device_kid", "used", "expires_at"),
    )

    hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    device_kid: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    issued_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    used: Mapped[bool] = mapped_column(Boolean)
    used_at: Mapped[float | None] = mapped_column(Float)


class Appraisal(Base):
    """The outcome of appraising a device's attestation."""

    __tablename__ = "appraisals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_kid: Mapped[bytes | None] = mapped_column(LargeBinary(64), index=True)
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)


class Event(Base):
    """Something operators may want to read about later."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_kid: Mapped[bytes | None] = mapped_column(LargeBinary(64), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)


class SuitReport(Base):
    """A SUIT Report a device sent, as received."""

    __tablename__ = "suit_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_kid: Mapped[bytes] = mapped_column(LargeBinary(64), index=True)
    report: Mapped[bytes] = mapped_column(LargeBinary)
    ok: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[float] = mapped_column(Float)


class DeliveryFailure(Base):
    """A catalogue version a device keeps failing to install: consecutive
    failed deliveries of one envelope to one device."""

    __tablename__ = "delivery_failures"
    __table_args__ = (UniqueConstraint("device_id", "name", "kind", "envelope_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    envelope_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    sequence_number: Mapped[int] = mapped_column(BigInteger)
    failures: Mapped[int] = mapped_column(Integer)
    err_code: Mapped[int] = mapped_column(Integer)
    err_msg: Mapped[str] = mapped_column(Text)
    last_at: Mapped[float] = mapped_column(Float)
    held_at: Mapped[float | None] = mapped_column(Float)


class AttestationKey(Base):
    """A TEE attestation key the TAM accepts (an endorsement)."""

    __tablename__ = "attestation_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[bytes] = mapped_column(LargeBinary(64), unique=True)
    cose_key: Mapped[bytes] = mapped_column(LargeBinary)
    hwmodel: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    oemid: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    label: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[float] = mapped_column(Float)


class SignerKey(Base):
    """A Trusted Component signer key the TAM accepts."""

    __tablename__ = "signer_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[bytes] = mapped_column(LargeBinary(64), unique=True)
    cose_key: Mapped[bytes] = mapped_column(LargeBinary)
    label: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[float] = mapped_column(Float)


class Setting(Base):
    """A named configuration value kept in the database."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# records


@dataclass(frozen=True)
class DeviceRecord:
    """A device the TAM knows, identified by its TEEP Agent's key."""

    kid: bytes
    """RFC 9679 thumbprint of the Agent's TEEP key."""
    cose_key: bytes
    """The Agent's public key as an encoded COSE_Key."""
    ueid: bytes | None
    """The EAT ueid claim last attested, if any."""
    hwmodel: bytes | None
    """The EAT hwmodel claim last attested, if any."""
    numbering: str
    """Which TEEP numbering the device speaks ("final" or "pre-rfc")."""
    label: str | None
    """A name an operator gave the device."""
    status: str
    """Last attestation status ("unknown" until set)."""
    status_reason: str
    """Why the status was set."""
    status_at: float | None
    """When the status was set."""
    first_seen: float
    """When the device was first stored."""
    last_seen: float
    """When the device was last upserted."""


@dataclass(frozen=True)
class ComponentRecord:
    """One version of a manifest in the catalogue (a Trusted Component's
    or its Personalization Data's)."""

    name: str
    """The name operators and devices use for the component."""
    kind: str
    """:data:`TA` (the component itself) or :data:`CONFIG` (its
    Personalization Data)."""
    device: str
    """The device the manifest is for: a kid or ueid in hex, or
    :data:`EVERY_DEVICE`."""
    manifest_component_id: bytes
    """The encoded suit-manifest-component-id of its manifest."""
    component_id: bytes
    """The encoded SUIT_Component_Identifier of what it installs."""
    sequence_number: int
    """Its suit-manifest-sequence-number."""
    envelope: bytes
    """The SUIT envelope, as received."""
    signer_kid: bytes
    """Thumbprint of the key that signed the manifest."""
    added_at: float
    """When this version was added."""


@dataclass(frozen=True)
class PolicyRecord:
    """A rule: the devices matching ``selector`` must hold ``component``."""

    component: str
    """The component's name."""
    selector: str
    """``*``, a device kid or ueid in hex, or ``hwmodel:<hex>``."""


@dataclass(frozen=True)
class NonceRecord:
    """What was stored with a one-time value when it was issued."""

    kind: str
    """What the value is ("token", "challenge", ...)."""
    device_kid: bytes | None
    """The device it was issued to, if known then."""
    data: bytes
    """Opaque session state stored with it."""
    issued_at: float
    """When it was issued."""
    expires_at: float
    """When it stops being accepted."""


@dataclass(frozen=True)
class AppraisalRecord:
    """The outcome of appraising a device's attestation."""

    device_kid: bytes | None
    """The device appraised, if known."""
    status: str
    """The outcome ("affirming", "contraindicated", ...)."""
    reason: str
    """Why, in one line."""
    detail: dict[str, Any]
    """Details, as JSON (byte strings were stored as hex)."""
    at: float
    """When it was recorded."""


@dataclass(frozen=True)
class EventRecord:
    """Something that happened, for operators."""

    device_kid: bytes | None
    """The device concerned, if any."""
    kind: str
    """A short category ("install", "error", ...)."""
    message: str
    """What happened."""
    at: float
    """When it was recorded."""


@dataclass(frozen=True)
class SuitReportRecord:
    """A SUIT Report a device sent."""

    device_kid: bytes
    """The device that sent it."""
    report: bytes
    """The report, as received."""
    ok: bool
    """Whether it reports success."""
    at: float
    """When it was recorded."""


@dataclass(frozen=True)
class DeliveryFailureRecord:
    """Consecutive failed deliveries of one catalogue version to a device."""

    name: str
    """The component's name."""
    kind: str
    """:data:`TA` or :data:`CONFIG`."""
    envelope_digest: bytes
    """SHA-256 of the envelope sent."""
    sequence_number: int
    """The version's suit-manifest-sequence-number."""
    failures: int
    """How many deliveries in a row the device answered with an Error."""
    err_code: int
    """The err-code of the last Error."""
    err_msg: str
    """The err-msg of the last Error ("" if none)."""
    last_at: float
    """When the last Error came."""
    held_at: float | None
    """When the TAM started holding the version back (None: it does not)."""


@dataclass(frozen=True)
class AttestationKeyRecord:
    """A TEE attestation key (endorsement) the TAM accepts."""

    kid: bytes
    """Its RFC 9679 thumbprint."""
    cose_key: bytes
    """The public key as an encoded COSE_Key."""
    hwmodel: bytes | None
    """The hwmodel it may attest, or None for any."""
    oemid: bytes | None
    """The oemid it may attest, or None for any."""
    label: str
    """An operator's name for it."""
    added_at: float
    """When it was added."""


@dataclass(frozen=True)
class SignerKeyRecord:
    """A Trusted Component signer key the TAM accepts."""

    kid: bytes
    """Its RFC 9679 thumbprint."""
    cose_key: bytes
    """The public key as an encoded COSE_Key."""
    label: str
    """An operator's name for it."""
    added_at: float
    """When it was added."""


# copying rows out

R = TypeVar("R")


def to_record(cls: type[R], row: object, **overrides: Any) -> R:
    """Copy the attributes of ``row`` named like the fields of ``cls``."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    values = {name: getattr(row, name) for name in names if name not in overrides}
    return cls(**values, **overrides)
