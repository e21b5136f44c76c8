"""The TEEP Protocol's registries, and the two numberings as tables.

The enums carry the final values of draft-ietf-teep-protocol-26 (the IANA
"TEEP" registries).  Earlier drafts (-05 to -25) and every deployed peer use
another numbering for Success, Error, most option labels and one error code.
A :class:`Dialect` maps between the enums and the numbers on the wire; code
above the codec never sees a wire number.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "ALL_SUIT_COSE_PROFILES",
    "DIALECTS",
    "FINAL",
    "MTI_CIPHER_SUITES",
    "PRE_RFC",
    "TEEP_MEDIA_TYPE",
    "CipherSuite",
    "DataItem",
    "Dialect",
    "ErrCode",
    "FreshnessMechanism",
    "Label",
    "MessageType",
    "SuitCoseProfile",
]

TEEP_MEDIA_TYPE = "application/teep+cbor"


class MessageType(enum.IntEnum):
    """TEEP Message Types (final numbering)."""

    QUERY_REQUEST = 1
    QUERY_RESPONSE = 2
    UPDATE = 3
    SUCCESS = 4
    ERROR = 5


class Label(enum.IntEnum):
    """TEEP CBOR Labels (final numbering)."""

    supported_teep_cipher_suites = 1
    challenge = 2
    versions = 3
    supported_suit_cose_profiles = 4
    selected_version = 5
    attestation_payload = 6
    tc_list = 7
    ext_list = 8
    manifest_list = 9
    msg = 10
    err_msg = 11
    attestation_payload_format = 12
    requested_tc_list = 13
    unneeded_manifest_list = 14
    component_id = 15
    tc_manifest_sequence_number = 16
    have_binary = 17
    suit_reports = 18
    token = 19
    supported_freshness_mechanisms = 20
    err_lang = 21
    err_code = 22


class ErrCode(enum.IntEnum):
    """TEEP Error Codes (final numbering)."""

    ERR_PERMANENT_ERROR = 1
    ERR_UNSUPPORTED_EXTENSION = 2
    ERR_UNSUPPORTED_FRESHNESS_MECHANISMS = 3
    ERR_UNSUPPORTED_MSG_VERSION = 4
    ERR_UNSUPPORTED_CIPHER_SUITES = 5
    ERR_BAD_CERTIFICATE = 6
    ERR_ATTESTATION_REQUIRED = 7
    ERR_UNSUPPORTED_SUIT_REPORT = 8
    ERR_CERTIFICATE_EXPIRED = 9
    ERR_TEMPORARY_ERROR = 10
    ERR_MANIFEST_PROCESSING_FAILED = 11


class FreshnessMechanism(enum.IntEnum):
    """TEEP Freshness Mechanisms."""

    NONCE = 0
    TIMESTAMP = 1


class DataItem(enum.IntFlag):
    """Bits of data-item-requested in a QueryRequest."""

    ATTESTATION = 1
    TRUSTED_COMPONENTS = 2
    EXTENSIONS = 4
    SUIT_REPORTS = 8


COSE_SIGN1 = 18

CipherSuite = tuple[tuple[int, int], ...]
"""A TEEP cipher suite: an ordered list of [cose-type, cose-alg] operations."""

SUITE_ESP256: CipherSuite = ((COSE_SIGN1, -9),)
SUITE_ED25519: CipherSuite = ((COSE_SIGN1, -19),)
SUITE_ES256: CipherSuite = ((COSE_SIGN1, -7),)
SUITE_EDDSA: CipherSuite = ((COSE_SIGN1, -8),)
# teep-protocol 7.1: a TAM MUST support both of these.
MTI_CIPHER_SUITES: tuple[CipherSuite, ...] = (SUITE_ESP256, SUITE_ED25519)
LEGACY_CIPHER_SUITES: tuple[CipherSuite, ...] = (SUITE_ES256, SUITE_EDDSA)

SuitCoseProfile = tuple[int, ...]
"""[hash-alg, signature-alg, key-agreement-alg, content-encryption-alg]."""

# suit-mti profiles; teep-protocol 7.2: the TAM MUST support all four.
ALL_SUIT_COSE_PROFILES: tuple[SuitCoseProfile, ...] = (
    (-16, -9, -29, -65534),
    (-16, -19, -29, -65534),
    (-16, -9, -29, 1),
    (-16, -19, -29, 24),
)


def _inverse(table: Mapping[int, int]) -> Mapping[int, int]:
    return MappingProxyType({wire: value for value, wire in table.items()})


@dataclass(frozen=True, eq=False)
class Dialect:
    """One numbering of the TEEP registries: enum value -> wire number."""

    name: str
    """Short name used in configuration and messages (``final``, ``pre-rfc``)."""
    description: str
    """What speaks it."""
    types: Mapping[int, int]
    """MessageType -> wire type."""
    labels: Mapping[int, int]
    """Label -> wire label."""
    codes: Mapping[int, int]
    """ErrCode -> wire err-code."""
    wire_types: Mapping[int, int] = field(init=False)
    wire_labels: Mapping[int, int] = field(init=False)
    wire_codes: Mapping[int, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wire_types", _inverse(self.types))
        object.__setattr__(self, "wire_labels", _inverse(self.labels))
        object.__setattr__(self, "wire_codes", _inverse(self.codes))

    def type_of(self, wire: int) -> MessageType | None:
        """The message type a wire type number means, if any."""
        value = self.wire_types.get(wire)
        return None if value is None else MessageType(value)

    def label_of(self, wire: int) -> Label | None:
        """The label a wire label number means, if any."""
        value = self.wire_labels.get(wire)
        return None if value is None else Label(value)

    def code_of(self, wire: int) -> ErrCode | int:
        """The error code a wire err-code means (unknown codes stay ints)."""
        value = self.wire_codes.get(wire)
        return wire if value is None else ErrCode(value)

    def wire_code(self, code: ErrCode | int) -> int:
        """The wire number of an error code (unknown ints pass through)."""
        return self.codes.get(int(code), int(code))


def _identity(enum_type: type[enum.IntEnum]) -> dict[int, int]:
    return {int(member): int(member) for member in enum_type}


FINAL = Dialect(
    name="final",
    description="draft-ietf-teep-protocol-26 and the IANA registries",
    types=MappingProxyType(_identity(MessageType)),
    labels=MappingProxyType(_identity(Label)),
    codes=MappingProxyType(_identity(ErrCode)),
)

# teep-protocol 19: the final draft moved Success/Error down by one, every
# label from selected-version on down by one, and code 17 to 11.
PRE_RFC = Dialect(
    name="pre-rfc",
    description="drafts -05 to -25, spoken by the existing implementations",
    types=MappingProxyType(
        {**_identity(MessageType), MessageType.SUCCESS: 5, MessageType.ERROR: 6}
    ),
    labels=MappingProxyType(
        {int(label): int(label) + (1 if label >= 5 else 0) for label in Label}
    ),
    codes=MappingProxyType(
        {**_identity(ErrCode), ErrCode.ERR_MANIFEST_PROCESSING_FAILED: 17}
    ),
)

DIALECTS: Mapping[str, Dialect] = MappingProxyType(
    {FINAL.name: FINAL, PRE_RFC.name: PRE_RFC}
)


def dialect_named(name: str) -> Dialect:
    """Look a dialect up by name.

    :raises KeyError: if there is none by that name.
    """
    return DIALECTS[name]
