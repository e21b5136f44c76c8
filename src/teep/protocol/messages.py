"""The five TEEP messages as frozen dataclasses.

Field names follow the CDDL (``requested_tc_list``, ``attestation_payload``).
An optional field is ``None`` when absent.  Options with labels the codec does
not know are kept in ``extensions`` so a tool can show them; protocol logic
ignores them, as teep-protocol section 4 asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from teep.protocol.registry import (
    ALL_SUIT_COSE_PROFILES,
    MTI_CIPHER_SUITES,
    CipherSuite,
    DataItem,
    ErrCode,
    MessageType,
    SuitCoseProfile,
)
from teep.suit.store import ComponentId

__all__ = [
    "Attestation",
    "Error",
    "Message",
    "QueryRequest",
    "QueryResponse",
    "RequestedTC",
    "Success",
    "Update",
]


@dataclass(frozen=True, slots=True)
class Attestation:
    """An attestation payload and its media type, as either peer sends it."""

    payload: bytes
    """Evidence or an Attestation Result, possibly encrypted to the peer."""
    payload_format: str | None = None
    """attestation-payload-format; None means the TEEP EAT profile."""


@dataclass(frozen=True, slots=True)
class RequestedTC:
    """An entry of requested-tc-list: a component the Agent wants."""

    component_id: ComponentId
    """The Trusted Component's id."""
    tc_manifest_sequence_number: int | None = None
    """The lowest acceptable manifest sequence number; None means any."""
    have_binary: bool | None = None
    """True when the Agent already holds the binary and needs only a manifest."""


@dataclass(frozen=True, slots=True)
class QueryRequest:
    """TAM -> Agent: what the TAM wants to know (teep-protocol 5.1)."""

    type = MessageType.QUERY_REQUEST
    data_item_requested: DataItem = DataItem.ATTESTATION | DataItem.TRUSTED_COMPONENTS
    """Which items the Agent must return."""
    supported_teep_cipher_suites: tuple[CipherSuite, ...] = MTI_CIPHER_SUITES
    """The cipher suites the TAM offers (positional on the wire)."""
    supported_suit_cose_profiles: tuple[SuitCoseProfile, ...] = ALL_SUIT_COSE_PROFILES
    """The SUIT COSE profiles the TAM can parse reports in (positional)."""
    token: bytes | None = None
    """Matches the response to this request (8-64 bytes)."""
    supported_freshness_mechanisms: tuple[int, ...] | None = None
    """Freshness mechanisms the TAM supports; absent means nonce only."""
    challenge: bytes | None = None
    """The nonce the Agent's Evidence must carry (8-512 bytes)."""
    versions: tuple[int, ...] | None = None
    """Protocol versions the TAM supports; absent means [0]."""
    attestation_payload_format: str | None = None
    """Media type of attestation_payload; absent means the TEEP EAT profile."""
    attestation_payload: bytes | None = None
    """The TAM's own Evidence or Attestation Result."""
    suit_reports: tuple[bytes, ...] | None = None
    """The TAM's own SUIT Reports (each an encoded report)."""
    extensions: Mapping[int, Any] = field(default_factory=dict, compare=False)
    """Options with labels the codec does not know (wire label -> value)."""


@dataclass(frozen=True, slots=True)
class QueryResponse:
    """Agent -> TAM: the answer to a QueryRequest (teep-protocol 5.2)."""

    type = MessageType.QUERY_RESPONSE
    token: bytes | None = None
    """The QueryRequest's token, echoed."""
    selected_version: int | None = None
    """The chosen protocol version; absent means 0."""
    attestation_payload_format: str | None = None
    """Media type of attestation_payload; absent means the TEEP EAT profile."""
    attestation_payload: bytes | None = None
    """Evidence or an Attestation Result."""
    suit_reports: tuple[bytes, ...] | None = None
    """Boot-time SUIT Reports."""
    tc_list: tuple[Mapping[Any, Any], ...] | None = None
    """system-property-claims of each installed component (key 0 = its id)."""
    requested_tc_list: tuple[RequestedTC, ...] | None = None
    """Components the Agent wants and does not have."""
    unneeded_manifest_list: tuple[ComponentId, ...] | None = None
    """Manifest ids of components nothing on the device needs any more."""
    ext_list: tuple[int, ...] | None = None
    """Supported extensions."""
    extensions: Mapping[int, Any] = field(default_factory=dict, compare=False)
    """Options with labels the codec does not know."""


@dataclass(frozen=True, slots=True)
class Update:
    """TAM -> Agent: install, update, delete (teep-protocol 5.3)."""

    type = MessageType.UPDATE
    token: bytes | None = None
    """Matches the Success or Error to this Update."""
    unneeded_manifest_list: tuple[ComponentId, ...] | None = None
    """Manifest ids to unlink."""
    manifest_list: tuple[bytes, ...] | None = None
    """SUIT envelopes to process (each the envelope's encoding)."""
    attestation_payload_format: str | None = None
    """Media type of attestation_payload."""
    attestation_payload: bytes | None = None
    """An Attestation Result passed back to the Agent."""
    err_code: ErrCode | int | None = None
    """The TAM's report of a problem with the QueryResponse."""
    err_msg: str | None = None
    """Diagnostic text, 1-128 bytes of UTF-8."""
    err_lang: str | None = None
    """Language tag of err_msg."""
    extensions: Mapping[int, Any] = field(default_factory=dict, compare=False)
    """Options with labels the codec does not know."""


@dataclass(frozen=True, slots=True)
class Success:
    """Agent -> TAM: the Update was applied (teep-protocol 5.4)."""

    type = MessageType.SUCCESS
    token: bytes | None = None
    """The Update's token, echoed."""
    msg: str | None = None
    """Diagnostic text, 1-128 bytes of UTF-8."""
    suit_reports: tuple[bytes, ...] | None = None
    """SUIT Reports of the update procedure."""
    extensions: Mapping[int, Any] = field(default_factory=dict, compare=False)
    """Options with labels the codec does not know."""


@dataclass(frozen=True, slots=True)
class Error:
    """Agent -> TAM: the message could not be processed (teep-protocol 5.5)."""

    type = MessageType.ERROR
    err_code: ErrCode | int = ErrCode.ERR_PERMANENT_ERROR
    """Why (positional on the wire); unknown codes stay ints."""
    token: bytes | None = None
    """The token of the message being answered, echoed."""
    err_msg: str | None = None
    """Diagnostic text, 1-128 bytes of UTF-8."""
    err_lang: str | None = None
    """Language tag of err_msg."""
    supported_teep_cipher_suites: tuple[CipherSuite, ...] | None = None
    """The Agent's suites (with ERR_UNSUPPORTED_CIPHER_SUITES)."""
    supported_freshness_mechanisms: tuple[int, ...] | None = None
    """The Agent's mechanisms (with ERR_UNSUPPORTED_FRESHNESS_MECHANISMS)."""
    supported_suit_cose_profiles: tuple[SuitCoseProfile, ...] | None = None
    """The Agent's profiles (with ERR_UNSUPPORTED_SUIT_REPORT)."""
    challenge: bytes | None = None
    """A challenge for the TAM's attestation (with ERR_ATTESTATION_REQUIRED)."""
    versions: tuple[int, ...] | None = None
    """The Agent's versions (with ERR_UNSUPPORTED_MSG_VERSION)."""
    suit_reports: tuple[bytes, ...] | None = None
    """SUIT Reports detailing a failed update."""
    extensions: Mapping[int, Any] = field(default_factory=dict, compare=False)
    """Options with labels the codec does not know."""


Message = QueryRequest | QueryResponse | Update | Success | Error
