"""Messages teep builds validate against the draft's CDDL (cddl-verifier 1.5.3).

The schemas are ``teep.cddl`` (final numbering) and ``teep-pre-rfc.cddl``,
each followed by ``teep-validation-stubs.cddl``, which closes the SUIT rules
they import.  The CDDL has no catch-all for unknown labels, so the messages
here carry no extensions.
"""

from __future__ import annotations

import hashlib

import pytest
from cddl_verifier import Validator

from teep import cbor
from teep.protocol import codec
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
    ALL_SUIT_COSE_PROFILES,
    FINAL,
    MTI_CIPHER_SUITES,
    PRE_RFC,
    DataItem,
    Dialect,
    ErrCode,
    FreshnessMechanism,
)

from . import vectors

TOKEN = bytes.fromhex("5c1f0e9d8a7b6c5d4e3f2a1b0c9d8e7f")
CHALLENGE = hashlib.sha256(b"challenge").digest()
TA_ID = (b"TEEP-Device", b"SecureFS", bytes.fromhex("8d82573a926d4754935332dc29997f74"))
COMPONENT_ID = (*TA_ID, b"ta")
MANIFEST_ID = (*TA_ID, b"suit")
IMAGE_DIGEST = hashlib.sha256(b"Hello, Secure World!").digest()
EAT_MEDIA_TYPE = 'application/eat+cwt; eat_profile="urn:ietf:rfc:rfcXXXX"'
# An unsigned SUIT Report in the current suit-report layout (DIGEST 14.3).
SUIT_REPORT = cbor.dumps(
    {
        99: ["https://tam.example/ta.suit", [-16, IMAGE_DIGEST]],
        2: TOKEN,
        3: [],
        4: True,
    }
)
# The SUIT_Envelope that the Appendix D Update example carries.
ENVELOPE = cbor.loads(vectors.final("update"))[1][9][0]


def built_messages() -> dict[str, Message]:
    """One message of each type with every option it allows set."""
    return {
        "query_request": QueryRequest(
            data_item_requested=DataItem(15),
            supported_teep_cipher_suites=MTI_CIPHER_SUITES,
            supported_suit_cose_profiles=ALL_SUIT_COSE_PROFILES,
            token=TOKEN,
            supported_freshness_mechanisms=(
                FreshnessMechanism.NONCE,
                FreshnessMechanism.TIMESTAMP,
            ),
            challenge=CHALLENGE,
            versions=(0,),
            attestation_payload_format=EAT_MEDIA_TYPE,
            attestation_payload=b"\xd2\x84" + bytes(40),
            suit_reports=(SUIT_REPORT,),
        ),
        "query_response": QueryResponse(
            token=TOKEN,
            selected_version=0,
            attestation_payload_format=EAT_MEDIA_TYPE,
            attestation_payload=b"\xd2\x84" + bytes(60),
            suit_reports=(SUIT_REPORT, SUIT_REPORT),
            tc_list=({0: list(COMPONENT_ID), 3: cbor.dumps([-16, IMAGE_DIGEST])},),
            requested_tc_list=(
                RequestedTC((b"TEEP-Device", b"wanted"), 3, True),
                RequestedTC((b"TEEP-Device", b"other")),
            ),
            unneeded_manifest_list=(MANIFEST_ID,),
            ext_list=(1,),
        ),
        "update": Update(
            token=TOKEN,
            unneeded_manifest_list=(MANIFEST_ID,),
            manifest_list=(ENVELOPE,),
            attestation_payload_format="application/ear+cwt",
            attestation_payload=b"\xd2\x84" + bytes(50),
            err_code=ErrCode.ERR_ATTESTATION_REQUIRED,
            err_msg="attestation result was not affirming",
            err_lang="en-GB",
        ),
        "success": Success(
            token=TOKEN, msg="installed 1 component", suit_reports=(SUIT_REPORT,)
        ),
        "error": Error(
            err_code=ErrCode.ERR_UNSUPPORTED_CIPHER_SUITES,
            token=TOKEN,
            err_msg="no common cipher suite",
            err_lang="en",
            supported_teep_cipher_suites=MTI_CIPHER_SUITES,
            supported_freshness_mechanisms=(FreshnessMechanism.NONCE,),
            supported_suit_cose_profiles=ALL_SUIT_COSE_PROFILES[:2],
            challenge=CHALLENGE,
            versions=(0,),
            suit_reports=(SUIT_REPORT,),
        ),
    }


BUILT = built_messages()
RULES = {name: name.replace("_", "-") for name in vectors.MESSAGES}
ROOTS = ("teep-message", "rule")


@pytest.fixture(scope="module")
def final_schema() -> Validator:
    return Validator(vectors.cddl("teep.cddl", "teep-validation-stubs.cddl"))


@pytest.fixture(scope="module")
def pre_rfc_schema() -> Validator:
    return Validator(vectors.cddl("teep-pre-rfc.cddl", "teep-validation-stubs.cddl"))


def check(schema: Validator, data: bytes, name: str, root: str) -> None:
    result = schema.validate(
        data, "teep-message" if root == "teep-message" else RULES[name]
    )
    assert result.valid, result.format()


def rejects(schema: Validator, data: bytes) -> bool:
    return not schema.validate(data, "teep-message").valid


names = pytest.mark.parametrize("name", vectors.MESSAGES)
roots = pytest.mark.parametrize("root", ROOTS)


@names
@roots
def test_built_message_final_valid(
    final_schema: Validator, name: str, root: str
) -> None:
    """A message with every option set, encoded in FINAL, matches teep.cddl."""
    check(final_schema, codec.encode(BUILT[name], FINAL), name, root)


@names
@roots
def test_built_message_pre_rfc_valid(
    pre_rfc_schema: Validator, name: str, root: str
) -> None:
    """The same message encoded in PRE_RFC matches teep-pre-rfc.cddl."""
    check(pre_rfc_schema, codec.encode(BUILT[name], PRE_RFC), name, root)


@names
def test_built_message_does_not_fit_other_numbering(
    final_schema: Validator, pre_rfc_schema: Validator, name: str
) -> None:
    """A message with a token matches only the CDDL of its own numbering."""
    assert rejects(pre_rfc_schema, codec.encode(BUILT[name], FINAL))
    assert rejects(final_schema, codec.encode(BUILT[name], PRE_RFC))


@names
@roots
def test_final_vector_valid(final_schema: Validator, name: str, root: str) -> None:
    """Each final Appendix D example matches teep.cddl."""
    check(final_schema, vectors.final(name), name, root)


@names
@roots
def test_pre_rfc_vector_valid(pre_rfc_schema: Validator, name: str, root: str) -> None:
    """Each pre-RFC Appendix D example matches teep-pre-rfc.cddl."""
    check(pre_rfc_schema, vectors.pre_rfc(name), name, root)


@pytest.mark.parametrize("code", list(ErrCode))
@pytest.mark.parametrize("dialect", [FINAL, PRE_RFC], ids=lambda d: d.name)
def test_every_error_code_valid(
    final_schema: Validator, pre_rfc_schema: Validator, code: ErrCode, dialect: Dialect
) -> None:
    """Every defined err-code is encoded as a value err-code-values allows."""
    schema = final_schema if dialect is FINAL else pre_rfc_schema
    data = codec.encode(Error(err_code=code, token=TOKEN), dialect)
    check(schema, data, "error", "teep-message")


@pytest.mark.parametrize("dialect", [FINAL, PRE_RFC], ids=lambda d: d.name)
def test_minimal_messages_valid(
    final_schema: Validator, pre_rfc_schema: Validator, dialect: Dialect
) -> None:
    """Messages with no options at all (defaults only) match the CDDL."""
    schema = final_schema if dialect is FINAL else pre_rfc_schema
    for message in (QueryRequest(), QueryResponse(), Update(), Success(), Error()):
        result = schema.validate(codec.encode(message, dialect), "teep-message")
        assert result.valid, result.format()


def test_empty_tc_list_and_ext_list_are_a_cddl_deviation(
    final_schema: Validator, pre_rfc_schema: Validator
) -> None:
    """An empty tc-list / ext-list is refused by the CDDL but sent by teep (P8).

    teep-protocol 5.2 says a QueryResponse MUST carry tc-list when the
    trusted-components bit is set and ext-list when the extensions bit is set,
    while the CDDL types them ``[+ ...]``.  An Agent with no Trusted Component
    installed, or one that supports no extension (none are defined), cannot
    meet both; teep keeps the MUST, sends ``[]`` and accepts it on receipt.
    """
    response = QueryResponse(token=TOKEN, tc_list=(), ext_list=())
    for dialect, schema in ((FINAL, final_schema), (PRE_RFC, pre_rfc_schema)):
        data = codec.encode(response, dialect)
        assert codec.decode(data, dialect) == response
        assert rejects(schema, data)
        for only in (QueryResponse(tc_list=()), QueryResponse(ext_list=())):
            assert rejects(schema, codec.encode(only, dialect))
