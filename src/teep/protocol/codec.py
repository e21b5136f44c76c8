"""Strict encoding and decoding of TEEP messages, in either numbering.

One table per message type lists its options in the order of the draft's
CDDL, each with the kind of value it holds.  The same table drives the
encoder and the decoder, so the two cannot drift apart.  Decoding is strict
about shapes and types (teep-protocol 18 P0: a message in the other numbering
must fail cleanly, not be misread) and lenient where the draft asks for it:
unknown labels are kept aside and otherwise ignored, and an empty tc-list or
ext-list is accepted (P8).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from teep import cbor
from teep.protocol.errors import LegacyDialect, MalformedMessage
from teep.protocol.messages import (
    Error,
    Message,
    QueryRequest,
    QueryResponse,
    RequestedTC,
    Success,
    Update,
)
from teep.protocol.registry import (
    FINAL,
    PRE_RFC,
    DataItem,
    Dialect,
    ErrCode,
    Label,
    MessageType,
)

__all__ = [
    "classify",
    "decode",
    "decode_value",
    "element_count",
    "encode",
    "encode_value",
]

# what the decoders below may find inside a TEEP message
_TAGS: frozenset[int] = frozenset()


@dataclass(frozen=True)
class _Kind:
    """How one option's value is checked and converted."""

    name: str
    decode: Callable[[Any, Dialect], Any]
    encode: Callable[[Any, Dialect], Any]
    plain: frozenset[type] = frozenset()
    """Exact types whose every value decodes and encodes to itself, so that
    an array of them needs no call per element."""


def _fail(what: str) -> MalformedMessage:
    return MalformedMessage(what)


def _plain(value: Any, where: str) -> Any:
    """``value``, kept as decoded, once its items are known to be plain CBOR
    (a signed message's payload comes without that check: the codec makes
    it wherever it keeps a value it does not interpret)."""
    try:
        cbor.check_types(value, tags=_TAGS)
    except cbor.CBORDecodeError as exc:
        raise _fail(f"{where}: {exc}") from None
    return value


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _uint(bits: int = 64) -> _Kind:
    def dec(value: Any, _d: Dialect) -> int:
        if not _is_uint(value) or value >= 1 << bits:
            raise _fail(f"expected an unsigned integer of {bits} bits")
        return int(value)

    return _Kind("uint", dec, lambda v, _d: int(v))


def _bstr(low: int, high: int) -> _Kind:
    def dec(value: Any, _d: Dialect) -> bytes:
        if not isinstance(value, bytes):
            raise _fail("expected a byte string")
        if not low <= len(value) <= high:
            raise _fail(f"byte string of {len(value)} bytes, expected {low}..{high}")
        return value

    return _Kind("bstr", dec, lambda v, _d: bytes(v))


def _text(low: int, high: int) -> _Kind:
    def dec(value: Any, _d: Dialect) -> str:
        if not isinstance(value, str):
            raise _fail("expected a text string")
        # teep-protocol 18 P19: limits count UTF-8 bytes, not characters.
        size = len(value.encode("utf-8", "surrogatepass"))
        if not low <= size <= high:
            raise _fail(f"text of {size} bytes, expected {low}..{high}")
        return value

    return _Kind("tstr", dec, lambda v, _d: str(v))


def _bool() -> _Kind:
    def dec(value: Any, _d: Dialect) -> bool:
        if not isinstance(value, bool):
            raise _fail("expected a boolean")
        return value

    return _Kind("bool", dec, lambda v, _d: bool(v))


def _array(item: _Kind, *, allow_empty: bool = False) -> _Kind:
    def dec(value: Any, dialect: Dialect) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _fail(f"expected an array of {item.name}")
        if not value and not allow_empty:
            raise _fail("expected a non-empty array")
        if item.plain and item.plain.issuperset(map(type, value)):
            return tuple(value)
        return tuple([item.decode(v, dialect) for v in value])

    def enc(value: Any, dialect: Dialect) -> list[Any]:
        if item.plain and item.plain.issuperset(map(type, value)):
            return list(value)
        return [item.encode(v, dialect) for v in value]

    return _Kind(f"[{item.name}]", dec, enc)


def _int_pair() -> _Kind:
    def dec(value: Any, _d: Dialect) -> tuple[int, int]:
        ok = isinstance(value, list) and len(value) == 2
        if not ok or not (_is_int(value[0]) and _is_int(value[1])):
            raise _fail("a cipher-suite operation is [cose-type, cose-alg]")
        return (value[0], value[1])

    return _Kind("operation", dec, lambda v, _d: list(v))


def _suites() -> _Kind:
    """``[+ [+ [cose-type, cose-alg]]]``, checked in one pass: every
    QueryRequest carries it, so the generic nested arrays cost too much."""
    pair = _int_pair()

    def dec(value: Any, _d: Dialect) -> tuple[tuple[tuple[int, int], ...], ...]:
        if not isinstance(value, list):
            raise _fail("expected an array of [operation]")
        if not value:
            raise _fail("expected a non-empty array")
        suites = []
        for suite in value:
            if not isinstance(suite, list):
                raise _fail("expected an array of operation")
            if not suite:
                raise _fail("expected a non-empty array")
            operations = []
            for op in suite:
                if type(op) is not list or len(op) != 2:
                    raise _fail("a cipher-suite operation is [cose-type, cose-alg]")
                first, second = op
                if type(first) is not int or type(second) is not int:
                    operations.append(pair.decode(op, _d))  # int subclasses, or refused
                else:
                    operations.append((first, second))
            suites.append(tuple(operations))
        return tuple(suites)

    def enc(value: Any, _d: Dialect) -> list[Any]:
        return [[list(op) for op in suite] for suite in value]

    return _Kind("[[operation]]", dec, enc)


def _profiles() -> _Kind:
    """``[+ [+ int]]`` (SUIT COSE profiles), checked in one pass like the
    cipher suites."""
    inner = _array(_int())

    def dec(value: Any, dialect: Dialect) -> tuple[tuple[int, ...], ...]:
        if not isinstance(value, list):
            raise _fail("expected an array of [int]")
        if not value:
            raise _fail("expected a non-empty array")
        return tuple(
            [
                tuple(p)
                if type(p) is list and p and _INTS.issuperset(map(type, p))
                # anything else: refused (or converted) with the precise reason
                else inner.decode(p, dialect)
                for p in value
            ]
        )

    def enc(value: Any, _d: Dialect) -> list[Any]:
        return [list(profile) for profile in value]

    return _Kind("[[int]]", dec, enc)


_INTS = frozenset({int})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int() -> _Kind:
    def dec(value: Any, _d: Dialect) -> int:
        if not _is_int(value):
            raise _fail("expected an integer")
        return int(value)

    return _Kind("int", dec, lambda v, _d: int(v), frozenset({int}))


def _component_id() -> _Kind:
    def dec(value: Any, _d: Dialect) -> tuple[bytes, ...]:
        if not isinstance(value, list) or not all(isinstance(p, bytes) for p in value):
            raise _fail("a SUIT_Component_Identifier is an array of byte strings")
        return tuple(value)

    return _Kind("component-id", dec, lambda v, _d: list(v))


def _claims_map() -> _Kind:
    def dec(value: Any, _d: Dialect) -> Mapping[Any, Any]:
        # system-property-claims: key 0 is the component id, then SUIT
        # parameters; the parameters are kept as decoded.
        if not isinstance(value, dict) or 0 not in value:
            raise _fail("a tc-list entry is a map with the component id at key 0")
        _COMPONENT_ID.decode(value[0], _d)
        _plain(value, "tc-list entry")
        return value

    return _Kind("system-property-claims", dec, lambda v, _d: dict(v))


def _requested_tc() -> _Kind:
    def dec(value: Any, dialect: Dialect) -> RequestedTC:
        if not isinstance(value, dict):
            raise _fail("a requested-tc-info is a map")
        wire = {k: dialect.labels[label] for k, label in _TC_INFO_LABELS.items()}
        if wire["component_id"] not in value:
            raise _fail("requested-tc-info lacks component-id")
        seq = value.get(wire["tc_manifest_sequence_number"])
        have = value.get(wire["have_binary"])
        tc = RequestedTC(
            _COMPONENT_ID.decode(value[wire["component_id"]], dialect),
            None if seq is None else _UINT.decode(seq, dialect),
            None if have is None else _BOOL.decode(have, dialect),
        )
        # teep-protocol 18 P20: have-binary needs a sequence number.
        if tc.have_binary and tc.tc_manifest_sequence_number is None:
            raise _fail("have-binary without tc-manifest-sequence-number")
        return tc

    def enc(value: RequestedTC, dialect: Dialect) -> dict[int, Any]:
        out: dict[int, Any] = {
            dialect.labels[Label.component_id]: list(value.component_id)
        }
        if value.tc_manifest_sequence_number is not None:
            wire = dialect.labels[Label.tc_manifest_sequence_number]
            out[wire] = value.tc_manifest_sequence_number
        if value.have_binary is not None:
            out[dialect.labels[Label.have_binary]] = value.have_binary
        return out

    return _Kind("requested-tc-info", dec, enc)


_TC_INFO_LABELS = {
    "component_id": Label.component_id,
    "tc_manifest_sequence_number": Label.tc_manifest_sequence_number,
    "have_binary": Label.have_binary,
}
_UINT = _uint()
_BOOL = _bool()
_COMPONENT_ID = _component_id()
_VERSION = _uint(32)
_SUITES = _suites()
_PROFILES = _profiles()
_TOKEN = _bstr(8, 64)
_CHALLENGE = _bstr(8, 512)
_REPORTS = _array(_bstr(0, 1 << 32))
_MESSAGE_TEXT = _text(1, 128)
_LANG = _text(1, 35)


def _err_code() -> _Kind:
    def dec(value: Any, dialect: Dialect) -> ErrCode | int:
        code = _UINT.decode(value, dialect)
        if code == 0:
            raise _fail("err-code 0 is reserved")
        return dialect.code_of(code)

    def enc(value: ErrCode | int, dialect: Dialect) -> int:
        # A plain int is a code the numbering does not define, kept as it
        # came off the wire; only ErrCode members are renumbered.  (A plain
        # 11 read from a pre-RFC peer must not go back out as 17.)
        if isinstance(value, ErrCode):
            return dialect.wire_code(value)
        return int(value)

    return _Kind("err-code", dec, enc)


_ERR_CODE = _err_code()

# Options of each message in the draft's CDDL order (which the encoder keeps).
_OPTIONS: dict[MessageType, tuple[tuple[str, Label, _Kind], ...]] = {
    MessageType.QUERY_REQUEST: (
        ("token", Label.token, _TOKEN),
        (
            "supported_freshness_mechanisms",
            Label.supported_freshness_mechanisms,
            _array(_UINT),
        ),
        ("challenge", Label.challenge, _CHALLENGE),
        ("versions", Label.versions, _array(_VERSION)),
        (
            "attestation_payload_format",
            Label.attestation_payload_format,
            _text(1, 1 << 16),
        ),
        ("attestation_payload", Label.attestation_payload, _bstr(0, 1 << 32)),
        ("suit_reports", Label.suit_reports, _REPORTS),
    ),
    MessageType.QUERY_RESPONSE: (
        ("token", Label.token, _TOKEN),
        ("selected_version", Label.selected_version, _VERSION),
        (
            "attestation_payload_format",
            Label.attestation_payload_format,
            _text(1, 1 << 16),
        ),
        ("attestation_payload", Label.attestation_payload, _bstr(0, 1 << 32)),
        ("suit_reports", Label.suit_reports, _REPORTS),
        ("tc_list", Label.tc_list, _array(_claims_map(), allow_empty=True)),
        ("requested_tc_list", Label.requested_tc_list, _array(_requested_tc())),
        ("unneeded_manifest_list", Label.unneeded_manifest_list, _array(_COMPONENT_ID)),
        ("ext_list", Label.ext_list, _array(_uint(32), allow_empty=True)),
    ),
    MessageType.UPDATE: (
        ("token", Label.token, _TOKEN),
        ("unneeded_manifest_list", Label.unneeded_manifest_list, _array(_COMPONENT_ID)),
        ("manifest_list", Label.manifest_list, _array(_bstr(1, 1 << 40))),
        (
            "attestation_payload_format",
            Label.attestation_payload_format,
            _text(1, 1 << 16),
        ),
        ("attestation_payload", Label.attestation_payload, _bstr(0, 1 << 32)),
        ("err_code", Label.err_code, _ERR_CODE),
        ("err_msg", Label.err_msg, _MESSAGE_TEXT),
        ("err_lang", Label.err_lang, _LANG),
    ),
    MessageType.SUCCESS: (
        ("token", Label.token, _TOKEN),
        ("msg", Label.msg, _MESSAGE_TEXT),
        ("suit_reports", Label.suit_reports, _REPORTS),
    ),
    MessageType.ERROR: (
        ("token", Label.token, _TOKEN),
        ("err_msg", Label.err_msg, _MESSAGE_TEXT),
        ("err_lang", Label.err_lang, _LANG),
        ("supported_teep_cipher_suites", Label.supported_teep_cipher_suites, _SUITES),
        (
            "supported_freshness_mechanisms",
            Label.supported_freshness_mechanisms,
            _array(_UINT),
        ),
        ("supported_suit_cose_profiles", Label.supported_suit_cose_profiles, _PROFILES),
        ("challenge", Label.challenge, _CHALLENGE),
        ("versions", Label.versions, _array(_VERSION)),
        ("suit_reports", Label.suit_reports, _REPORTS),
    ),
}

# Elements after the options map, per type.
_POSITIONAL: dict[MessageType, tuple[tuple[str, _Kind], ...]] = {
    MessageType.QUERY_REQUEST: (
        ("supported_teep_cipher_suites", _SUITES),
        ("supported_suit_cose_profiles", _PROFILES),
        ("data_item_requested", _UINT),
    ),
    MessageType.QUERY_RESPONSE: (),
    MessageType.UPDATE: (),
    MessageType.SUCCESS: (),
    MessageType.ERROR: (("err_code", _ERR_CODE),),
}

_CLASSES: dict[MessageType, type[Any]] = {
    MessageType.QUERY_REQUEST: QueryRequest,
    MessageType.QUERY_RESPONSE: QueryResponse,
    MessageType.UPDATE: Update,
    MessageType.SUCCESS: Success,
    MessageType.ERROR: Error,
}


def encode_value(message: Message, dialect: Dialect = FINAL) -> list[Any]:
    """The CBOR data model of a message: ``[type, options, ...]``."""
    mtype = message.type
    options: dict[int, Any] = {}
    for wire, (attr, _label, kind) in _known_options(dialect, mtype).items():
        value = getattr(message, attr)
        if value is not None:
            options[wire] = kind.encode(value, dialect)
    for wire, value in message.extensions.items():
        options.setdefault(wire, value)
    item: list[Any] = [dialect.types[mtype], options]
    for attr, kind in _POSITIONAL[mtype]:
        item.append(kind.encode(getattr(message, attr), dialect))
    return item


def encode(message: Message, dialect: Dialect = FINAL) -> bytes:
    """Encode a message (the payload a COSE signature covers)."""
    return cbor.dumps(encode_value(message, dialect))


def decode(data: bytes, dialect: Dialect = FINAL) -> Message:
    """Decode an unsigned TEEP message in the given numbering.

    :raises MalformedMessage: if the bytes are not such a message.
    :raises LegacyDialect: if they are a message of an older dialect.
    """
    try:
        value = cbor.loads(data, tags=_TAGS)
    except cbor.CBORDecodeError as exc:
        raise MalformedMessage(f"not CBOR: {exc}") from None
    return decode_value(value, dialect)


def decode_value(value: Any, dialect: Dialect = FINAL) -> Message:
    """Decode a message from its CBOR data model (see :func:`decode`)."""
    if not isinstance(value, list) or len(value) < 2:
        raise _legacy_or(value, "a TEEP message is an array [type, options, ...]")
    wire_type, options = value[0], value[1]
    if not _is_uint(wire_type):
        raise _legacy_or(value, "the message type must be an unsigned integer")
    mtype = _message_types(dialect).get(wire_type)
    if mtype is None:
        # Draft -04 had Delete (4) and Error (6): still name the dialect.
        raise _legacy_or(value, f"unknown message type {wire_type} ({dialect.name})")
    if not isinstance(options, dict):
        raise _legacy_or(value, "the second element must be the options map")
    positional = _POSITIONAL[mtype]
    if len(value) != element_count(mtype):
        raise _legacy_or(
            value,
            f"{mtype.name} has {len(value)} elements, expected {element_count(mtype)}"
            f" ({dialect.name} numbering)",
        )
    kwargs: dict[str, Any] = {}
    extensions: dict[int, Any] = {}
    known = _known_options(dialect, mtype)
    for wire, raw in options.items():
        if not _is_uint(wire):
            raise _fail("option labels must be unsigned integers")
        entry = known.get(wire)
        if entry is None:
            misplaced = dialect.label_of(wire)
            if misplaced is not None:
                # A registered label in the wrong message is not "unknown":
                # it is how a message of the other numbering shows itself.
                raise _fail(
                    f"label {wire} ({misplaced.name}) is not allowed in {mtype.name}"
                )
            extensions[wire] = _plain(raw, f"label {wire}")
            continue
        attr, label, kind = entry
        try:
            kwargs[attr] = kind.decode(raw, dialect)
        except MalformedMessage as exc:
            raise MalformedMessage(
                f"{label.name.replace('_', '-')} (label {wire}): {exc}"
            ) from None
    for (attr, kind), raw in zip(positional, value[2:], strict=True):
        try:
            kwargs[attr] = kind.decode(raw, dialect)
        except MalformedMessage as exc:
            raise MalformedMessage(f"{attr.replace('_', '-')}: {exc}") from None
    if "data_item_requested" in kwargs:
        kwargs["data_item_requested"] = _data_item(kwargs["data_item_requested"])
    if extensions:
        kwargs["extensions"] = extensions
    message: Message = _CLASSES[mtype](**kwargs)
    return message


@functools.lru_cache(maxsize=64)
def _data_item(bits: int) -> DataItem:
    """The flags of data-item-requested (the same few in every QueryRequest)."""
    return DataItem(bits)


@functools.lru_cache(maxsize=8)
def _message_types(dialect: Dialect) -> Mapping[int, MessageType]:
    """Wire type -> message type, in one numbering (as ``dialect.type_of``)."""
    return MappingProxyType(
        {wire: MessageType(mtype) for mtype, wire in dialect.types.items()}
    )


@functools.lru_cache(maxsize=32)
def _known_options(
    dialect: Dialect, mtype: MessageType
) -> Mapping[int, tuple[str, Label, _Kind]]:
    """Wire label -> option of a message type, in one numbering."""
    return MappingProxyType(
        {
            dialect.labels[label]: (attr, label, kind)
            for attr, label, kind in _OPTIONS[mtype]
        }
    )


def element_count(mtype: MessageType) -> int:
    """How many elements a message of type ``mtype`` has: the type, the
    options map and its positional fields."""
    return 2 + len(_POSITIONAL[mtype])


def _legacy_or(value: Any, reason: str) -> Exception:
    from teep.protocol.legacy import recognise

    legacy = recognise(value)
    if legacy is not None:
        return LegacyDialect(f"the peer speaks {legacy}, which teep does not support")
    return MalformedMessage(reason)


def classify(value: Any) -> Dialect | None:
    """Tell which numbering a decoded message uses (teep-protocol 13).

    :returns: FINAL or PRE_RFC, or None when the message reads the same in
        both (for example a QueryRequest carrying only a challenge).
    """
    if not isinstance(value, list) or len(value) < 2 or not isinstance(value[1], dict):
        return None
    mtype, options = value[0], value[1]
    for rule in _EVIDENCE:
        verdict = rule(mtype, options, value)
        if verdict is not None:
            return verdict
    return None


def _token_rule(_t: Any, options: dict[Any, Any], _v: Any) -> Dialect | None:
    if _is_token(options.get(19)) or _is_small_uints(options.get(20)):
        return FINAL
    if _is_token(options.get(20)) or _is_small_uints(options.get(21)):
        return PRE_RFC
    return None


def _type_rule(mtype: Any, options: dict[Any, Any], value: list[Any]) -> Dialect | None:
    if mtype == 4 and len(value) == 2:
        return FINAL
    if mtype == 6:
        return PRE_RFC
    if mtype == 5:
        return FINAL if len(value) == 3 else PRE_RFC
    if mtype == 3:
        if _is_bstr_list(options.get(9)):
            return FINAL
        if _is_bstr_list(options.get(10)):
            return PRE_RFC
    return None


def _response_rule(mtype: Any, options: dict[Any, Any], _v: Any) -> Dialect | None:
    if mtype != 2:
        return None
    if _is_uint(options.get(5)) or isinstance(options.get(6), bytes):
        return FINAL
    if isinstance(options.get(12), str) or _is_map_list(options.get(13)):
        return FINAL
    if _is_uint(options.get(6)) or isinstance(options.get(7), bytes):
        return PRE_RFC
    if isinstance(options.get(13), str) or _is_map_list(options.get(14)):
        return PRE_RFC
    if isinstance(options.get(5), list):
        return PRE_RFC
    return None


_EVIDENCE = (_token_rule, _type_rule, _response_rule)


def _is_token(value: Any) -> bool:
    return isinstance(value, bytes) and 8 <= len(value) <= 64


def _is_small_uints(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(_is_uint(v) and v < 24 for v in value)
    )


def _is_bstr_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, bytes) for v in value)


def _is_map_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) for v in value)
    )


def field_names(message_type: MessageType) -> tuple[str, ...]:
    """Attribute names of a message class, for tools."""
    return tuple(f.name for f in fields(_CLASSES[message_type]))


def error_code_name(code: ErrCode | int) -> str:
    """A printable name for an error code, known or not."""
    return code.name if isinstance(code, ErrCode) else f"unknown error {code}"
