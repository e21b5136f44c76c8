"""Decoding rules of the TEEP codec: types per label, unknown and misplaced
labels, text limits, legacy dialects, and round trips of random messages."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teep import cbor
from teep.protocol import codec
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

from . import vectors

TOKEN = bytes(range(16))
DIALECTS = [FINAL, PRE_RFC]
dialects = pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)

# Options each message allows (teep-protocol 5.1-5.5), spelled as in the spec.
ALLOWED: dict[MessageType, frozenset[Label]] = {
    MessageType.QUERY_REQUEST: frozenset(
        {
            Label.token,
            Label.supported_freshness_mechanisms,
            Label.challenge,
            Label.versions,
            Label.attestation_payload_format,
            Label.attestation_payload,
            Label.suit_reports,
        }
    ),
    MessageType.QUERY_RESPONSE: frozenset(
        {
            Label.token,
            Label.selected_version,
            Label.attestation_payload_format,
            Label.attestation_payload,
            Label.suit_reports,
            Label.tc_list,
            Label.requested_tc_list,
            Label.unneeded_manifest_list,
            Label.ext_list,
        }
    ),
    MessageType.UPDATE: frozenset(
        {
            Label.token,
            Label.unneeded_manifest_list,
            Label.manifest_list,
            Label.attestation_payload_format,
            Label.attestation_payload,
            Label.err_code,
            Label.err_msg,
            Label.err_lang,
        }
    ),
    MessageType.SUCCESS: frozenset({Label.token, Label.msg, Label.suit_reports}),
    MessageType.ERROR: frozenset(
        {
            Label.token,
            Label.err_msg,
            Label.err_lang,
            Label.supported_teep_cipher_suites,
            Label.supported_freshness_mechanisms,
            Label.supported_suit_cose_profiles,
            Label.challenge,
            Label.versions,
            Label.suit_reports,
        }
    ),
}

# Values of the wrong type or outside the CDDL's bounds, per label.
WRONG: dict[Label, list[Any]] = {
    Label.token: [b"\x01" * 7, b"\x01" * 65, "a text token", 12345678, None],
    Label.challenge: [b"\x01" * 7, b"\x01" * 513, "challenge", [b"\x01" * 8]],
    Label.versions: [[], [-1], [1 << 32], [True], 0, "0"],
    Label.supported_freshness_mechanisms: [[], [-1], ["nonce"], 0],
    Label.selected_version: [-1, 1 << 32, "0", [0], False],
    Label.attestation_payload_format: [b"application/eat+cwt", 1, ["text"]],
    Label.attestation_payload: ["eat", 1, [b""]],
    Label.suit_reports: [[], ["report"], b"report", [1]],
    Label.tc_list: [{}, [1], [{1: [b"x"]}], [{0: "x"}], [{0: [b"x", 1]}]],
    Label.requested_tc_list: [
        [],
        [1],
        [{}],
        [{"15": [b"x"]}],
    ],
    Label.unneeded_manifest_list: [[], [b"x"], [[1]], [["x"]], b"x"],
    Label.ext_list: [[-1], [1 << 32], 1, ["x"]],
    Label.manifest_list: [[], [b""], ["envelope"], b"envelope"],
    Label.err_code: [0, -1, "1", 1.0, [1]],
    Label.err_msg: ["", "x" * 129, "\u00e9" * 65, b"disk-full", 3],
    Label.err_lang: ["", "x" * 36, b"en", 3],
    Label.msg: ["", "x" * 129, "\u00e9" * 65, b"ok", 3],
    Label.supported_teep_cipher_suites: [
        [],
        [[]],
        [[[18]]],
        [[[18, "x"]]],
        [[[True, -9]]],
        [[18, -9]],
    ],
    Label.supported_suit_cose_profiles: [[], [[]], [["x"]], [[-16, 1.5]], [-16]],
}


def spec_name(label: Label) -> str:
    return label.name.replace("_", "-")


def wire_type(mtype: MessageType, dialect: Dialect) -> int:
    return dialect.types[mtype]


def skeleton(mtype: MessageType, dialect: Dialect, options: dict[int, Any]) -> bytes:
    """The smallest valid message of a type, with the given options map."""
    value: list[Any] = [wire_type(mtype, dialect), options]
    if mtype is MessageType.QUERY_REQUEST:
        value += [[[[18, -9]]], [[-16, -9, -29, -65534]], 2]
    elif mtype is MessageType.ERROR:
        value.append(1)
    return cbor.dumps(value)


def option_cases() -> list[Any]:
    cases = []
    for mtype, labels in ALLOWED.items():
        for label in sorted(labels):
            for index, bad in enumerate(WRONG[label]):
                cases.append(
                    pytest.param(
                        mtype, label, bad, id=f"{mtype.name}-{label.name}-{index}"
                    )
                )
    return cases


@dialects
@pytest.mark.parametrize(("mtype", "label", "bad"), option_cases())
def test_option_type_error_names_label(
    dialect: Dialect, mtype: MessageType, label: Label, bad: Any
) -> None:
    """A wrongly typed or sized option is refused, naming the label."""
    wire = dialect.labels[label]
    with pytest.raises(MalformedMessage) as caught:
        codec.decode(skeleton(mtype, dialect, {wire: bad}), dialect)
    assert f"{spec_name(label)} (label {wire})" in str(caught.value)


POSITIONAL_WRONG: list[Any] = [
    (MessageType.QUERY_REQUEST, 2, [], "supported-teep-cipher-suites"),
    (MessageType.QUERY_REQUEST, 2, [[[18, "x"]]], "supported-teep-cipher-suites"),
    (MessageType.QUERY_REQUEST, 3, [], "supported-suit-cose-profiles"),
    (MessageType.QUERY_REQUEST, 3, [[b"x"]], "supported-suit-cose-profiles"),
    (MessageType.QUERY_REQUEST, 4, -1, "data-item-requested"),
    (MessageType.QUERY_REQUEST, 4, "3", "data-item-requested"),
    (MessageType.ERROR, 2, "1", "err-code"),
    (MessageType.ERROR, 2, -1, "err-code"),
    (MessageType.ERROR, 2, None, "err-code"),
]


@dialects
@pytest.mark.parametrize(("mtype", "index", "bad", "name"), POSITIONAL_WRONG)
def test_positional_type_error_names_field(
    dialect: Dialect, mtype: MessageType, index: int, bad: Any, name: str
) -> None:
    """A wrongly typed positional element is refused, naming the field."""
    value = cbor.loads(skeleton(mtype, dialect, {}))
    value[index] = bad
    with pytest.raises(MalformedMessage, match=name):
        codec.decode(cbor.dumps(value), dialect)


MISPLACED = [
    pytest.param(mtype, label, id=f"{mtype.name}-{label.name}")
    for mtype, allowed in ALLOWED.items()
    for label in Label
    if label not in allowed
]


@dialects
@pytest.mark.parametrize(("mtype", "label"), MISPLACED)
def test_misplaced_registered_label_refused(
    dialect: Dialect, mtype: MessageType, label: Label
) -> None:
    """A registered label in a message that does not define it is refused."""
    wire = dialect.labels[label]
    with pytest.raises(MalformedMessage, match=f"label {wire} "):
        codec.decode(skeleton(mtype, dialect, {wire: 0}), dialect)


UNKNOWN_LABELS = {
    FINAL.name: (0, 23, 24, 255, 1023, 70000),
    PRE_RFC.name: (0, 5, 24, 1000),
}


@dialects
@pytest.mark.parametrize("mtype", list(MessageType), ids=lambda t: t.name)
def test_unknown_labels_kept_and_ignored(dialect: Dialect, mtype: MessageType) -> None:
    """Unknown labels land in ``extensions``; the message is otherwise unchanged."""
    token = dialect.labels[Label.token]
    plain = codec.decode(skeleton(mtype, dialect, {token: TOKEN}), dialect)
    extra = {label: [label, "x"] for label in UNKNOWN_LABELS[dialect.name]}
    data = skeleton(mtype, dialect, {token: TOKEN, **extra})
    message = codec.decode(data, dialect)
    assert message == plain
    assert message.extensions == extra
    # teep passes them through on re-encoding, after the known options.
    assert codec.encode(message, dialect) == data


@dialects
def test_non_uint_option_label_refused(dialect: Dialect) -> None:
    """Option labels are unsigned integers; text, negative or bytes keys fail."""
    for key in ("token", -1, b"\x13"):
        with pytest.raises(MalformedMessage, match="labels"):
            codec.decode(skeleton(MessageType.SUCCESS, dialect, {key: TOKEN}), dialect)


@dialects
@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("x", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("\u00e9" * 64, True),  # 64 characters, 128 bytes
        ("\u00e9" * 65, False),  # 65 characters, 130 bytes
        ("\U0001f600" * 32, True),  # 32 characters, 128 bytes
        ("\U0001f600" * 33, False),  # 33 characters, 132 bytes
        ("\u20ac" * 43, False),  # 43 characters, 129 bytes
        ("", False),
    ],
    ids=lambda v: f"{len(v)}c{len(v.encode())}b" if isinstance(v, str) else str(v),
)
def test_text_limits_count_utf8_bytes(dialect: Dialect, text: str, ok: bool) -> None:
    """msg and err-msg hold 1..128 bytes of UTF-8, not characters (P19)."""
    for message in (Success(token=TOKEN, msg=text), Error(token=TOKEN, err_msg=text)):
        data = codec.encode(message, dialect)
        if ok:
            assert codec.decode(data, dialect) == message
        else:
            with pytest.raises(MalformedMessage, match="bytes"):
                codec.decode(data, dialect)


@dialects
def test_err_lang_limit(dialect: Dialect) -> None:
    """err-lang holds 1..35 bytes: a 35-byte tag passes, 36 bytes fail."""
    longest = "x-" + "a" * 33
    update = Update(token=TOKEN, err_code=1, err_msg="bad", err_lang=longest)
    assert codec.decode(codec.encode(update, dialect), dialect) == update
    with pytest.raises(MalformedMessage, match="err-lang"):
        codec.decode(codec.encode(Update(err_lang=longest + "b"), dialect), dialect)


def requested(info: dict[Label, Any], dialect: Dialect) -> bytes:
    wire = {dialect.labels[label]: value for label, value in info.items()}
    labels = {dialect.labels[Label.requested_tc_list]: [wire]}
    return skeleton(MessageType.QUERY_RESPONSE, dialect, labels)


@dialects
def test_have_binary_needs_sequence_number(dialect: Dialect) -> None:
    """have-binary true without tc-manifest-sequence-number is refused (P20)."""
    info = {Label.component_id: [b"ta"], Label.have_binary: True}
    with pytest.raises(MalformedMessage, match="have-binary"):
        codec.decode(requested(info, dialect), dialect)
    info[Label.tc_manifest_sequence_number] = 7
    message = codec.decode(requested(info, dialect), dialect)
    assert isinstance(message, QueryResponse)
    assert message.requested_tc_list == (RequestedTC((b"ta",), 7, True),)


@dialects
def test_have_binary_false_alone_accepted(dialect: Dialect) -> None:
    """have-binary false asks for the binary too and needs no sequence number."""
    info = {Label.component_id: [b"ta"], Label.have_binary: False}
    message = codec.decode(requested(info, dialect), dialect)
    assert isinstance(message, QueryResponse)
    assert message.requested_tc_list == (RequestedTC((b"ta",), None, False),)


@dialects
def test_requested_tc_info_field_types(dialect: Dialect) -> None:
    """requested-tc-info checks its sequence number and have-binary types."""
    for info in (
        {Label.component_id: [b"ta"], Label.tc_manifest_sequence_number: -1},
        {Label.component_id: [b"ta"], Label.tc_manifest_sequence_number: "1"},
        {Label.component_id: [b"ta"], Label.have_binary: 1},
        {Label.tc_manifest_sequence_number: 1},
    ):
        with pytest.raises(MalformedMessage, match="requested-tc-list"):
            codec.decode(requested(info, dialect), dialect)


@dialects
def test_err_code_zero_refused(dialect: Dialect) -> None:
    """err-code 0 is reserved, in Error (positional) and in Update (option)."""
    with pytest.raises(MalformedMessage, match="err-code"):
        codec.decode(cbor.dumps([dialect.types[MessageType.ERROR], {}, 0]), dialect)
    update = {dialect.labels[Label.err_code]: 0}
    with pytest.raises(MalformedMessage, match="err-code"):
        codec.decode(skeleton(MessageType.UPDATE, dialect, update), dialect)


@pytest.mark.parametrize(
    ("dialect", "wire"),
    [
        *((FINAL, wire) for wire in (12, 17, 23, 24, 1 << 40)),
        *((PRE_RFC, wire) for wire in (11, 16, 18, 255)),
    ],
    ids=lambda v: v.name if isinstance(v, Dialect) else str(v),
)
def test_unknown_err_code_kept_as_int(dialect: Dialect, wire: int) -> None:
    """An err-code the numbering does not define stays a plain int (P15)."""
    data = cbor.dumps([dialect.types[MessageType.ERROR], {}, wire])
    message = codec.decode(data, dialect)
    assert isinstance(message, Error)
    assert type(message.err_code) is int
    assert message.err_code == wire
    assert codec.encode(message, dialect) == data
    assert codec.error_code_name(message.err_code) == f"unknown error {wire}"


@dialects
def test_known_err_codes_become_enum(dialect: Dialect) -> None:
    """Every defined err-code decodes to its ErrCode member."""
    for code in ErrCode:
        data = cbor.dumps([dialect.types[MessageType.ERROR], {}, dialect.codes[code]])
        message = codec.decode(data, dialect)
        assert isinstance(message, Error)
        assert message.err_code is code


LEGACY = [
    pytest.param([1, 2004318071, {1: [1], 3: [0]}, 2], "-04", id="draft04-uint-token"),
    pytest.param([3, 2004318071, {10: []}], "-04", id="draft04-install"),
    pytest.param([6, 7, 1, {}], "-04", id="draft04-error"),
    pytest.param([1, b"\x01" * 8, {}, 2], "2020", id="bstr-token"),
    pytest.param([1, {20: TOKEN, 1: [[None, 3, None]]}, 3], "-10", id="draft08-query"),
    pytest.param([1, {20: TOKEN}, [[[18, -7]]], 3], "-11", id="draft11-query"),
]


@dialects
@pytest.mark.parametrize(("value", "era"), LEGACY)
def test_legacy_dialect_named(dialect: Dialect, value: list[Any], era: str) -> None:
    """Messages of older drafts raise LegacyDialect naming the dialect."""
    with pytest.raises(LegacyDialect, match=era):
        codec.decode(cbor.dumps(value), dialect)


@dialects
@pytest.mark.parametrize("name", ["query_request", "install"])
def test_draft_04_vectors_named(dialect: Dialect, name: str) -> None:
    """The draft-04 Appendix D messages are refused as draft -02 to -04."""
    data = vectors.read_hex(vectors.LEGACY_04_DIR / f"{name}.hex")
    with pytest.raises(LegacyDialect, match="draft -02 to -04"):
        codec.decode(data, dialect)


@dialects
@pytest.mark.parametrize(
    "value",
    [[], [1], 1, {}, "x", [1, []], [1.5, {}], [-1, {}], [True, {}], [0, {}], [99, {}]],
    ids=repr,
)
def test_not_a_message_shape(dialect: Dialect, value: Any) -> None:
    """Anything but [known type, {options}, ...] is MalformedMessage."""
    with pytest.raises(MalformedMessage):
        codec.decode(cbor.dumps(value), dialect)


@dialects
@pytest.mark.parametrize("mtype", list(MessageType), ids=lambda t: t.name)
def test_wrong_element_count_refused(dialect: Dialect, mtype: MessageType) -> None:
    """Each type has exactly its number of array elements, no more, no less."""
    value = cbor.loads(skeleton(mtype, dialect, {}))
    for bad in ([*value, 0], value[:-1]):
        if len(bad) >= 2:
            # a 3- or 4-element QueryRequest is how drafts -05 to -11 look
            with pytest.raises((MalformedMessage, LegacyDialect)):
                codec.decode(cbor.dumps(bad), dialect)


# -- random valid messages ---------------------------------------------------

U64 = st.integers(0, (1 << 64) - 1)
U32 = st.integers(0, (1 << 32) - 1)
INT = st.integers(-(1 << 64), (1 << 64) - 1)
TOKENS = st.binary(min_size=8, max_size=64)
CHALLENGES = st.binary(min_size=8, max_size=512)
PAYLOADS = st.binary(max_size=64)
COMPONENT_IDS = st.lists(st.binary(max_size=12), max_size=4).map(tuple)


def utf8_text(low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(max_size=high).filter(lambda s: low <= len(s.encode()) <= high)


MSGS = utf8_text(1, 128)
LANGS = utf8_text(1, 35)
FORMATS = st.text(min_size=1, max_size=40)
SUITES = st.lists(
    st.lists(st.tuples(INT, INT), min_size=1, max_size=3).map(tuple),
    min_size=1,
    max_size=3,
).map(tuple)
PROFILES = st.lists(
    st.lists(INT, min_size=1, max_size=5).map(tuple), min_size=1, max_size=4
).map(tuple)
REPORTS = st.lists(PAYLOADS, min_size=1, max_size=3).map(tuple)
FRESHNESS = st.lists(U64, min_size=1, max_size=3).map(tuple)
VERSIONS = st.lists(U32, min_size=1, max_size=3).map(tuple)
CLAIMS = st.builds(
    lambda cid, extra: {0: list(cid), **extra},
    COMPONENT_IDS,
    st.dictionaries(st.integers(1, 40), PAYLOADS, max_size=3),
)
REQUESTED = st.one_of(
    st.builds(RequestedTC, COMPONENT_IDS, st.none() | U64, st.none() | st.just(False)),
    st.builds(RequestedTC, COMPONENT_IDS, U64, st.just(True)),
)
EXTENSION_VALUES = st.recursive(
    st.none() | st.booleans() | INT | st.binary(max_size=8) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)


def opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def err_codes(dialect: Dialect) -> st.SearchStrategy[ErrCode | int]:
    # Unknown codes must not collide with a wire number the dialect defines,
    # or they would come back as that ErrCode.
    unknown = st.integers(1, (1 << 64) - 1).filter(
        lambda c: c not in dialect.wire_codes
    )
    return st.sampled_from(list(ErrCode)) | unknown


def extensions(dialect: Dialect) -> st.SearchStrategy[dict[int, Any]]:
    free = st.integers(24, 1 << 20).filter(lambda w: dialect.label_of(w) is None)
    return st.dictionaries(free, EXTENSION_VALUES, max_size=2)


def messages(dialect: Dialect) -> st.SearchStrategy[Message]:
    ext = extensions(dialect)
    return st.one_of(
        st.builds(
            QueryRequest,
            data_item_requested=U64.map(DataItem),
            supported_teep_cipher_suites=SUITES,
            supported_suit_cose_profiles=PROFILES,
            token=opt(TOKENS),
            supported_freshness_mechanisms=opt(FRESHNESS),
            challenge=opt(CHALLENGES),
            versions=opt(VERSIONS),
            attestation_payload_format=opt(FORMATS),
            attestation_payload=opt(PAYLOADS),
            suit_reports=opt(REPORTS),
            extensions=ext,
        ),
        st.builds(
            QueryResponse,
            token=opt(TOKENS),
            selected_version=opt(U32),
            attestation_payload_format=opt(FORMATS),
            attestation_payload=opt(PAYLOADS),
            suit_reports=opt(REPORTS),
            tc_list=opt(st.lists(CLAIMS, max_size=3).map(tuple)),
            requested_tc_list=opt(
                st.lists(REQUESTED, min_size=1, max_size=3).map(tuple)
            ),
            unneeded_manifest_list=opt(
                st.lists(COMPONENT_IDS, min_size=1, max_size=3).map(tuple)
            ),
            ext_list=opt(st.lists(U32, max_size=3).map(tuple)),
            extensions=ext,
        ),
        st.builds(
            Update,
            token=opt(TOKENS),
            unneeded_manifest_list=opt(
                st.lists(COMPONENT_IDS, min_size=1, max_size=3).map(tuple)
            ),
            manifest_list=opt(
                st.lists(
                    st.binary(min_size=1, max_size=32), min_size=1, max_size=3
                ).map(tuple)
            ),
            attestation_payload_format=opt(FORMATS),
            attestation_payload=opt(PAYLOADS),
            err_code=opt(err_codes(dialect)),
            err_msg=opt(MSGS),
            err_lang=opt(LANGS),
            extensions=ext,
        ),
        st.builds(
            Success,
            token=opt(TOKENS),
            msg=opt(MSGS),
            suit_reports=opt(REPORTS),
            extensions=ext,
        ),
        st.builds(
            Error,
            err_code=err_codes(dialect),
            token=opt(TOKENS),
            err_msg=opt(MSGS),
            err_lang=opt(LANGS),
            supported_teep_cipher_suites=opt(SUITES),
            supported_freshness_mechanisms=opt(FRESHNESS),
            supported_suit_cose_profiles=opt(PROFILES),
            challenge=opt(CHALLENGES),
            versions=opt(VERSIONS),
            suit_reports=opt(REPORTS),
            extensions=ext,
        ),
    )


def assert_round_trip(message: Message, dialect: Dialect) -> None:
    data = codec.encode(message, dialect)
    decoded = codec.decode(data, dialect)
    assert decoded == message
    assert decoded.extensions == message.extensions
    assert codec.encode(decoded, dialect) == data


@settings(max_examples=150, deadline=None)
@given(messages(FINAL))
def test_round_trip_final(message: Message) -> None:
    """Any valid message encodes and decodes to an equal one in FINAL."""
    assert_round_trip(message, FINAL)


@settings(max_examples=150, deadline=None)
@given(messages(PRE_RFC))
def test_round_trip_pre_rfc(message: Message) -> None:
    """Any valid message encodes and decodes to an equal one in PRE_RFC."""
    assert_round_trip(message, PRE_RFC)
