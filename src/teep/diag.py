"""Annotated CBOR diagnostic notation for TEEP, SUIT, COSE and EAT items.

:func:`annotate` renders a decoded CBOR item in the diagnostic notation of
RFC 8949 section 8 (``h'..'`` byte strings, ``"text"``, ``[..]``, ``{..}``,
``N(..)`` tags) and adds ``/ comments /`` that name what teep knows: TEEP
message types, option labels and error codes (in a chosen numbering), COSE
header labels and algorithms, SUIT envelope and manifest members, EAT claims.
Byte strings known to hold CBOR (a COSE payload or protected header, a SUIT
envelope in a manifest-list, an attestation payload, a SUIT report) are
decoded and shown as ``<< .. >>``.  :func:`to_json` gives the same view as
JSON-ready data.

Theory of operation: a :class:`Hint` says what an item is and how to name its
parts.  One pass (:func:`_annotate`) walks the value with its hint and builds
a small tree of nodes carrying the names; two renderers turn that tree into
diagnostic text or JSON.  Nothing here raises on odd input: an item that does
not look as its hint expects is simply shown without names.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from teep import cbor
from teep.attestation.claims import EATClaim
from teep.attestation.inspect import claim_name
from teep.keys import COSEAlgorithm
from teep.protocol.registry import (
    FINAL,
    DataItem,
    Dialect,
    ErrCode,
    FreshnessMechanism,
    Label,
    MessageType,
)
from teep.suit.registry import (
    ENVELOPE_TAG,
    SuitCommand,
    SuitCommonKey,
    SuitDigestAlgorithm,
    SuitEnvelopeKey,
    SuitManifestKey,
    SuitParameter,
    SuitReportKey,
    SuitReportReason,
)

__all__ = ["Hint", "Kind", "annotate", "guess_kind", "hint_for", "to_json"]

_WIDTH = 88
_INDENT = "  "

Namer = Callable[[Any], str | None]
"""Gives the name of a scalar value (or of a map key), or None."""
Chooser = Callable[[Any, Any], "Hint | None"]
"""Gives the hint of a container's member from (key or index, container)."""


@dataclass(frozen=True)
class Hint:
    """What an item is and how to name its parts."""

    what: str | None = None
    """A name for the item itself, shown as a leading comment."""
    name: Namer | None = None
    """Names a scalar value (an algorithm, a message type ...)."""
    keys: Callable[[Any, Any], str | None] | None = None
    """Names a map key or an array position: (key or index, container)."""
    member: Chooser | None = None
    """The hint of each member, from (key or index, container)."""
    cbor: Hint | None = None
    """For a byte string holding CBOR: the hint of what it holds."""
    select: Callable[[Any], Hint | None] | None = None
    """Picks a more precise hint once the value is seen."""


PLAIN = Hint()


class Kind(enum.Enum):
    """The kinds of top-level object teep can name."""

    TEEP_MESSAGE = "TEEP message"
    COSE = "COSE signed message"
    SUIT_ENVELOPE = "SUIT envelope"
    SUIT_REPORT = "SUIT report"
    EAT = "EAT claims set"
    COSE_KEY = "COSE_Key"
    PLAIN = "CBOR item"


# --- naming helpers ---------------------------------------------------------


def _spell(name: str) -> str:
    return name.lower().replace("_", "-")


def _enum_name(enum_type: type[enum.IntEnum], prefix: str = "") -> Namer:
    def name(value: Any) -> str | None:
        if not _is_int(value):
            return None
        try:
            return prefix + _spell(enum_type(value).name)
        except ValueError:
            return None

    return name


def _alg_name(value: Any) -> str | None:
    if not _is_int(value):
        return None
    try:
        return COSEAlgorithm(value).name
    except ValueError:
        return None


def _lookup(names: Mapping[int, str]) -> Namer:
    return lambda value: names.get(value) if _is_int(value) else None


def _table(names: Mapping[Any, str]) -> Callable[[Any, Any], str | None]:
    def name(key: Any, _container: Any) -> str | None:
        if isinstance(key, bool) or not isinstance(key, int | str):
            return None
        return names.get(key)

    return name


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _keyed(names: Namer) -> Callable[[Any, Any], str | None]:
    return lambda key, _container: names(key)


def _each(hint: Hint) -> Chooser:
    return lambda _key, _container: hint


def _by_key(hints: Mapping[Any, Hint]) -> Chooser:
    def choose(key: Any, _container: Any) -> Hint | None:
        if isinstance(key, bool) or not isinstance(key, int | str):
            return None
        return hints.get(key)

    return choose


# --- COSE -------------------------------------------------------------------

_COSE_HEADER_NAMES = {
    1: "alg",
    2: "crit",
    3: "content type",
    4: "kid",
    5: "IV",
    6: "Partial IV",
    33: "x5chain",
    34: "x5t",
    -1: "ephemeral key",
}
_COSE_KEY_NAMES = {1: "kty", 2: "kid", 3: "alg", -1: "crv", -2: "x", -3: "y", -4: "d"}
_COSE_KTY = {1: "OKP", 2: "EC2", 4: "Symmetric"}
_COSE_CRV = {1: "P-256", 2: "P-384", 4: "X25519", 6: "Ed25519"}

COSE_KEY = Hint(
    what="COSE_Key",
    keys=_table(_COSE_KEY_NAMES),
    member=_by_key(
        {
            1: Hint(name=_lookup(_COSE_KTY)),
            3: Hint(name=_alg_name),
            -1: Hint(name=_lookup(_COSE_CRV)),
        }
    ),
)
COSE_HEADER = Hint(
    keys=_table(_COSE_HEADER_NAMES),
    member=_by_key({1: Hint(name=_alg_name), -1: COSE_KEY}),
)
_PROTECTED = Hint(cbor=COSE_HEADER)


def cose_sign1(payload: Hint, what: str = "COSE_Sign1") -> Hint:
    """The hint of a COSE_Sign1 (tagged or not) whose payload holds ``payload``."""
    positions = {0: "protected", 1: "unprotected", 2: "payload", 3: "signature"}
    members = {0: _PROTECTED, 1: COSE_HEADER, 2: Hint(cbor=payload)}
    return Hint(what=what, keys=_table(positions), member=_by_key(members))


def cose_sign(payload: Hint) -> Hint:
    """The hint of a COSE_Sign whose payload holds ``payload``."""
    signature = Hint(
        what="COSE_Signature",
        keys=_table({0: "protected", 1: "unprotected", 2: "signature"}),
        member=_by_key({0: _PROTECTED, 1: COSE_HEADER}),
    )
    positions = {0: "protected", 1: "unprotected", 2: "payload", 3: "signatures"}
    members = {
        0: _PROTECTED,
        1: COSE_HEADER,
        2: Hint(cbor=payload),
        3: Hint(member=_each(signature)),
    }
    return Hint(what="COSE_Sign", keys=_table(positions), member=_by_key(members))


def signed_or(inner: Hint) -> Hint:
    """A hint that reads a COSE_Sign1/COSE_Sign around ``inner``, or ``inner``."""

    def select(value: Any) -> Hint | None:
        if isinstance(value, cbor.CBORTag) and value.tag in (18, 98):
            return Hint(member=_tagged(inner))
        if _looks_like_cose(value):
            return cose_sign(inner) if isinstance(value[3], list) else cose_sign1(inner)
        return inner

    return Hint(select=select)


def _tagged(inner: Hint) -> Chooser:
    # The member of a tag (key None) is its content.
    def choose(key: Any, container: Any) -> Hint | None:
        if key is not None or not isinstance(container, cbor.CBORTag):
            return None
        if container.tag == 18:
            return cose_sign1(inner)
        return cose_sign(inner)

    return choose


def _looks_like_cose(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and isinstance(value[0], bytes)
        and isinstance(value[1], dict)
        and (value[2] is None or isinstance(value[2], bytes))
    )


# --- SUIT -------------------------------------------------------------------

SUIT_DIGEST = Hint(
    what="SUIT_Digest",
    keys=_table({0: "algorithm-id", 1: "digest-bytes"}),
    member=_by_key({0: Hint(name=_enum_name(SuitDigestAlgorithm, "suit-"))}),
)
_PARAMETERS = Hint(
    keys=_keyed(_enum_name(SuitParameter, "suit-parameter-")),
    member=_by_key({int(SuitParameter.image_digest): Hint(cbor=SUIT_DIGEST)}),
)


def _command_member(index: Any, container: Any) -> Hint | None:
    if not _is_int(index) or index % 2 == 0:
        return Hint(name=_enum_name(SuitCommand, "suit-"))
    command = container[index - 1]
    if command in (
        SuitCommand.directive_override_parameters,
        SuitCommand.directive_set_parameters,
    ):
        return _PARAMETERS
    if command == SuitCommand.directive_try_each:
        return Hint(member=_each(Hint(cbor=COMMAND_SEQUENCE)))
    if command == SuitCommand.directive_run_sequence:
        return Hint(cbor=COMMAND_SEQUENCE)
    return None


COMMAND_SEQUENCE = Hint(what="SUIT_Command_Sequence", member=_command_member)
_COMPONENT_IDS = Hint(member=_each(Hint(what="SUIT_Component_Identifier")))
SUIT_COMMON = Hint(
    keys=_keyed(_enum_name(SuitCommonKey, "suit-")),
    member=_by_key(
        {
            int(SuitCommonKey.components): _COMPONENT_IDS,
            int(SuitCommonKey.shared_sequence): Hint(cbor=COMMAND_SEQUENCE),
        }
    ),
)
_SEQUENCE_KEYS = (7, 8, 9, 15, 16, 18, 20, 24)
SUIT_MANIFEST = Hint(
    what="SUIT_Manifest",
    keys=_keyed(_enum_name(SuitManifestKey, "suit-")),
    member=_by_key(
        {
            int(SuitManifestKey.common): Hint(cbor=SUIT_COMMON),
            **{key: Hint(cbor=COMMAND_SEQUENCE) for key in _SEQUENCE_KEYS},
        }
    ),
)


def _auth_member(index: Any, _container: Any) -> Hint | None:
    if index == 0:
        return Hint(cbor=SUIT_DIGEST)
    return Hint(cbor=signed_or(PLAIN))


SUIT_AUTHENTICATION = Hint(what="SUIT_Authentication", member=_auth_member)
_ENVELOPE_MAP = Hint(
    what="SUIT_Envelope",
    keys=_keyed(_enum_name(SuitEnvelopeKey, "suit-")),
    member=_by_key(
        {
            int(SuitEnvelopeKey.authentication_wrapper): Hint(cbor=SUIT_AUTHENTICATION),
            int(SuitEnvelopeKey.manifest): Hint(cbor=SUIT_MANIFEST),
            **{key: Hint(cbor=COMMAND_SEQUENCE) for key in (15, 16, 18, 20)},
        }
    ),
)
SUIT_ENVELOPE = Hint(
    member=lambda key, container: (
        _ENVELOPE_MAP if key is None and isinstance(container, cbor.CBORTag) else None
    ),
    select=lambda value: None if isinstance(value, cbor.CBORTag) else _ENVELOPE_MAP,
)

_RESULT = Hint(
    keys=_keyed(_enum_name(SuitReportKey, "suit-")),
    member=_by_key(
        {
            int(SuitReportKey.report_result_reason): Hint(
                name=_enum_name(SuitReportReason)
            )
        }
    ),
)
_RECORD = Hint(
    what="SUIT_Record",
    keys=_table(
        {
            0: "manifest-id",
            1: "manifest-section",
            2: "section-offset",
            3: "component-index",
            4: "properties",
        }
    ),
    member=_by_key({4: _PARAMETERS}),
)
_REPORT_MAP = Hint(
    what="SUIT_Report",
    keys=_keyed(_enum_name(SuitReportKey, "suit-")),
    member=_by_key(
        {
            int(SuitReportKey.reference): Hint(
                keys=_table({0: "uri", 1: "digest"}), member=_by_key({1: SUIT_DIGEST})
            ),
            int(SuitReportKey.report_records): Hint(member=_each(_RECORD)),
            int(SuitReportKey.report_result): _RESULT,
        }
    ),
)
SUIT_REPORT = signed_or(_REPORT_MAP)


# --- EAT ----------------------------------------------------------------------

_CNF = Hint(keys=_table({1: "COSE_Key", 3: "kid"}), member=_by_key({1: COSE_KEY}))


def _claim(key: Any) -> str | None:
    # EAT, CWT and EAR claims share one key space.
    name = claim_name(key) if _is_int(key) else None
    return None if name is None else _spell(name)


_CLAIMS = Hint(
    what="EAT claims",
    keys=_keyed(_claim),
    member=_by_key({int(EATClaim.cnf): _CNF}),
)
EAT = signed_or(_CLAIMS)


# --- TEEP ---------------------------------------------------------------------


def _suite_hint() -> Hint:
    operation = Hint(
        keys=_table({0: "cose-type", 1: "cose-alg"}),
        member=_by_key({1: Hint(name=_alg_name)}),
    )
    return Hint(member=_each(Hint(member=_each(operation))))


_SUITES = _suite_hint()
_PROFILES = Hint(member=_each(Hint(member=_each(Hint(name=_alg_name)))))
_TC_INFO = Hint(
    keys=_keyed(
        lambda key: (
            "system-component-id"
            if key == 0
            else _enum_name(SuitParameter, "suit-parameter-")(key)
        )
    ),
    member=_by_key({int(SuitParameter.image_digest): Hint(cbor=SUIT_DIGEST)}),
)


def _data_items(value: Any) -> str | None:
    if not _is_int(value) or value < 0:
        return None
    names = [_spell(bit.name or "") for bit in DataItem if value & bit]
    return " | ".join(names) or None


def teep_message(dialect: Dialect = FINAL) -> Hint:
    """The hint of a bare TEEP message in ``dialect``'s numbering."""
    err_code = Hint(name=lambda v: _code_name(v, dialect))
    by_label: dict[Label, Hint] = {
        Label.attestation_payload: Hint(cbor=EAT),
        Label.manifest_list: Hint(member=_each(Hint(cbor=SUIT_ENVELOPE))),
        Label.suit_reports: Hint(member=_each(Hint(cbor=SUIT_REPORT))),
        Label.err_code: err_code,
        Label.supported_teep_cipher_suites: _SUITES,
        Label.supported_suit_cose_profiles: _PROFILES,
        Label.supported_freshness_mechanisms: Hint(
            member=_each(Hint(name=_enum_name(FreshnessMechanism)))
        ),
        Label.tc_list: Hint(member=_each(_TC_INFO)),
        Label.requested_tc_list: Hint(member=_each(_requested_tc(dialect))),
    }
    wire = {dialect.labels[label]: hint for label, hint in by_label.items()}
    options = Hint(
        keys=_keyed(lambda key: _label_name(key, dialect)),
        member=_by_key(wire),
    )
    return Hint(
        keys=lambda index, msg: _position_name(index, msg, dialect),
        member=lambda index, msg: _position_hint(index, msg, dialect, options),
    )


def _requested_tc(dialect: Dialect) -> Hint:
    return Hint(keys=_keyed(lambda key: _label_name(key, dialect)))


def _label_name(key: Any, dialect: Dialect) -> str | None:
    label = dialect.label_of(key) if _is_int(key) else None
    return None if label is None else _spell(label.name)


def _code_name(value: Any, dialect: Dialect) -> str | None:
    if not _is_int(value):
        return None
    code = dialect.code_of(value)
    return code.name if isinstance(code, ErrCode) else None


def _type_name(value: Any, dialect: Dialect) -> str | None:
    mtype = dialect.type_of(value) if _is_int(value) and value >= 0 else None
    return None if mtype is None else _spell(mtype.name)


def _positions(msg: Any, dialect: Dialect) -> tuple[str, ...]:
    first: Any = msg[0] if isinstance(msg, list) and msg else None
    mtype = dialect.type_of(first) if _is_int(first) and first >= 0 else None
    if mtype is MessageType.QUERY_REQUEST:
        return (
            "type",
            "options",
            "supported-teep-cipher-suites",
            "supported-suit-cose-profiles",
            "data-item-requested",
        )
    if mtype is MessageType.ERROR:
        return ("type", "options", "err-code")
    return ("type", "options")


def _position_name(index: Any, msg: Any, dialect: Dialect) -> str | None:
    names = _positions(msg, dialect)
    return names[index] if _is_int(index) and 0 <= index < len(names) else None


def _position_hint(
    index: Any, msg: Any, dialect: Dialect, options: Hint
) -> Hint | None:
    name = _position_name(index, msg, dialect)
    hints = {
        "type": Hint(name=lambda v: _type_name(v, dialect)),
        "options": options,
        "supported-teep-cipher-suites": _SUITES,
        "supported-suit-cose-profiles": _PROFILES,
        "data-item-requested": Hint(name=_data_items),
        "err-code": Hint(name=lambda v: _code_name(v, dialect)),
    }
    return None if name is None else hints.get(name)


# --- guessing -------------------------------------------------------------------


def guess_kind(value: Any) -> Kind:
    """Tell what a decoded top-level item most likely is."""
    if isinstance(value, cbor.CBORTag):
        if value.tag in (18, 98):
            return Kind.COSE
        if value.tag == ENVELOPE_TAG:
            return Kind.SUIT_ENVELOPE
        return Kind.PLAIN
    if _looks_like_cose(value):
        return Kind.COSE
    if isinstance(value, list) and len(value) >= 2:
        if _is_int(value[0]) and isinstance(value[1], dict):
            return Kind.TEEP_MESSAGE
    if isinstance(value, dict):
        return _guess_map(value)
    return Kind.PLAIN


def _guess_map(value: dict[Any, Any]) -> Kind:
    keys = set(value)
    if isinstance(value.get(2), bytes) and isinstance(value.get(3), bytes):
        return Kind.SUIT_ENVELOPE
    if _lookup(_COSE_KTY)(value.get(1)) and keys <= set(_COSE_KEY_NAMES):
        return Kind.COSE_KEY
    if keys & {99, 3, 4} and keys <= {2, 3, 4, 8, 99}:
        return Kind.SUIT_REPORT
    if keys & {8, 10, 256, 258, 259, 260, 265, 270, 271, 272, 273, 1000}:
        return Kind.EAT
    return Kind.PLAIN


def hint_for(kind: Kind, dialect: Dialect = FINAL) -> Hint:
    """The hint of a top-level item of ``kind``; COSE payloads are guessed."""
    hints = {
        Kind.TEEP_MESSAGE: teep_message(dialect),
        Kind.SUIT_ENVELOPE: SUIT_ENVELOPE,
        Kind.SUIT_REPORT: SUIT_REPORT,
        Kind.EAT: EAT,
        Kind.COSE_KEY: COSE_KEY,
        Kind.PLAIN: PLAIN,
    }
    if kind is Kind.COSE:
        return signed_or(Hint(select=lambda v: hints[guess_kind(v)]))
    return hints[kind]


# --- the annotated tree -----------------------------------------------------------


@dataclass
class _Node:
    """One item with the names found for it."""

    value: Any
    """The scalar value (for containers: None)."""
    shape: str
    """'scalar', 'bytes', 'array', 'map' or 'tag'."""
    what: str | None = None
    name: str | None = None
    inner: _Node | None = None
    """For 'bytes': the decoded CBOR; for 'tag': the content."""
    members: list[tuple[_Node | None, str | None, _Node]] = field(default_factory=list)
    """(key node or None for arrays, name of key/position, value node)."""


_NESTED_TAGS = cbor.DEFAULT_TAGS | {1070}


def _annotate(value: Any, hint: Hint | None, depth: int = 0) -> _Node:
    hint = hint or PLAIN
    if hint.select is not None:
        chosen = hint.select(value)
        if chosen is not None and chosen is not hint:
            if chosen.what is None:
                chosen = replace(chosen, what=hint.what)
            return _annotate(value, chosen, depth)
    name = hint.name(value) if hint.name is not None else None
    if isinstance(value, cbor.CBORTag):
        inner_hint = hint.member(None, value) if hint.member else None
        node = _Node(value.tag, "tag", hint.what, _tag_name(value.tag))
        node.inner = _annotate(value.value, inner_hint, depth + 1)
        if node.inner.what == node.name:
            node.inner.what = None  # the tag already says it
        return node
    if isinstance(value, list):
        node = _Node(None, "array", hint.what, name)
        for index, item in enumerate(value):
            node.members.append(
                (
                    None,
                    _key_name(hint, index, value),
                    _child(hint, index, value, item, depth),
                )
            )
        return node
    if isinstance(value, dict):
        node = _Node(None, "map", hint.what, name)
        for key, item in value.items():
            node.members.append(
                (
                    _annotate(key, None, depth + 1),
                    _key_name(hint, key, value),
                    _child(hint, key, value, item, depth),
                )
            )
        return node
    if isinstance(value, bytes):
        node = _Node(value, "bytes", hint.what, name or _text_of(value))
        if hint.cbor is not None and value and depth < 48:
            node.inner = _unwrap(value, hint.cbor, depth)
            if node.inner is not None:
                node.name = name
        return node
    return _Node(value, "scalar", hint.what, name)


def _key_name(hint: Hint, key: Any, container: Any) -> str | None:
    return hint.keys(key, container) if hint.keys is not None else None


def _child(hint: Hint, key: Any, container: Any, item: Any, depth: int) -> _Node:
    member = hint.member(key, container) if hint.member is not None else None
    return _annotate(item, member, depth + 1)


def _unwrap(data: bytes, hint: Hint, depth: int) -> _Node | None:
    try:
        inner = cbor.loads(data, tags=_NESTED_TAGS)
    except cbor.CBORDecodeError:
        return None
    return _annotate(inner, hint, depth + 1)


def _text_of(data: bytes) -> str | None:
    if len(data) < 2 or not all(0x20 <= b < 0x7F for b in data):
        return None
    return json.dumps(data.decode("ascii"))


_TAG_NAMES = {
    16: "COSE_Encrypt0",
    17: "COSE_Mac0",
    18: "COSE_Sign1",
    61: "CWT",
    96: "COSE_Encrypt",
    97: "COSE_Mac",
    98: "COSE_Sign",
    107: "SUIT_Envelope_Tagged",
    1070: "SUIT_Manifest_Tagged",
}


def _tag_name(tag: int) -> str | None:
    return _TAG_NAMES.get(tag)


# --- diagnostic notation ------------------------------------------------------------


def annotate(
    value: Any,
    kind: Kind | None = None,
    dialect: Dialect = FINAL,
    *,
    max_bytes: int | None = None,
) -> str:
    """Render a decoded CBOR item as annotated diagnostic notation.

    :param value: an item as returned by :func:`teep.cbor.loads`.
    :param kind: what the item is; guessed with :func:`guess_kind` if None.
    :param dialect: the numbering used to name TEEP types, labels and codes.
    :param max_bytes: show at most this many bytes of a byte string that is
        not unwrapped (a payload, say), with a comment giving its length;
        None shows every byte.
    """
    hint = hint_for(kind or guess_kind(value), dialect)
    return _diag(_annotate(value, hint), 0, max_bytes)


def _comment(text: str | None) -> str:
    # A "/" inside would end the comment early (RFC 8610 appendix G.6).
    return "" if not text else f"/ {text.replace('/', '|')} / "


def _diag(node: _Node, level: int, limit: int | None) -> str:
    lead = _comment(node.what)
    trail = f" {_comment(node.name).rstrip()}" if node.name else ""
    if node.shape == "scalar":
        return f"{lead}{_scalar(node.value)}{trail}"
    if node.shape == "bytes":
        if node.inner is not None:
            return f"{lead}<< {_diag(node.inner, level, limit)} >>"
        data: bytes = node.value
        if limit is not None and len(data) > limit:
            cut = _comment(f"{len(data)} bytes, the first {limit} shown").rstrip()
            return f"{lead}h'{data[:limit].hex()}' {cut}{trail}"
        return f"{lead}h'{data.hex()}'{trail}"
    if node.shape == "tag":
        assert node.inner is not None
        inner = _diag(node.inner, level, limit)
        return f"{lead}{_comment(node.name)}{node.value}({inner})"
    open_, close = ("[", "]") if node.shape == "array" else ("{", "}")
    parts = [
        _member(key, name, val, level + 1, limit) for key, name, val in node.members
    ]
    flat = f"{open_}{', '.join(parts)}{close}"
    if not parts or ("\n" not in flat and len(flat) + 2 * level + len(lead) < 72):
        return f"{lead}{flat}{trail}"
    pad = _INDENT * (level + 1)
    body = ",\n".join(pad + part for part in parts)
    return f"{lead}{open_}{trail}\n{body}\n{_INDENT * level}{close}"


def _member(
    key: _Node | None, name: str | None, value: _Node, level: int, limit: int | None
) -> str:
    text = _diag(value, level, limit)
    if key is None:
        return f"{_comment(name)}{text}"
    return f"{_comment(name)}{_diag(key, level, limit)}: {text}"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    return str(value)


# --- JSON -------------------------------------------------------------------------


def to_json(value: Any, kind: Kind | None = None, dialect: Dialect = FINAL) -> Any:
    """The annotated view of a decoded CBOR item as JSON-ready data.

    Byte strings become hex strings (or the decoded item where they hold
    CBOR, under ``{"cbor": ...}``); map keys read ``"name (key)"`` where a
    name is known; named scalars become ``{"value": v, "name": n}``; tags
    become ``{"tag": n, "value": ...}``.
    """
    hint = hint_for(kind or guess_kind(value), dialect)
    return _json(_annotate(value, hint))


def _json(node: _Node) -> Any:
    if node.shape == "tag":
        assert node.inner is not None
        tagged = {"tag": node.value, "value": _json(node.inner)}
        return {**tagged, "name": node.name} if node.name else tagged
    if node.shape == "bytes":
        if node.inner is not None:
            return {"cbor": _json(node.inner)}
        return _named(node.value.hex(), node.name)
    if node.shape == "array":
        return [_json(val) for _key, _name, val in node.members]
    if node.shape == "map":
        return {_json_key(key, name): _json(val) for key, name, val in node.members}
    value = node.value
    if isinstance(value, float) and not math.isfinite(value):
        value = _scalar(value)
    return _named(value, node.name)


def _named(value: Any, name: str | None) -> Any:
    return {"value": value, "name": name} if name else value


def _json_key(key: _Node | None, name: str | None) -> str:
    assert key is not None
    text = key.value.hex() if key.shape == "bytes" else _scalar(key.value)
    if key.shape == "scalar" and isinstance(key.value, str):
        text = key.value
    return f"{name} ({text})" if name else text
