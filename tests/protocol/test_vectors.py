"""The TEEP Protocol examples, in both numberings, and libteep's signed messages."""

from __future__ import annotations

import pytest

from teep import cbor, cose
from teep.errors import VerifyError
from teep.protocol import codec
from teep.protocol.errors import LegacyDialect, MalformedMessage
from teep.protocol.messages import (
    Error,
    QueryRequest,
    QueryResponse,
    Success,
    Update,
)
from teep.protocol.registry import FINAL, PRE_RFC, ErrCode

from . import vectors

CLASSES = {
    "query_request": QueryRequest,
    "query_response": QueryResponse,
    "update": Update,
    "success": Success,
    "error": Error,
}

messages = pytest.mark.parametrize("name", vectors.MESSAGES)


@messages
def test_final_vector_round_trips(name: str) -> None:
    """A final-numbering example decodes in FINAL and re-encodes byte for byte."""
    data = vectors.final(name)
    message = codec.decode(data, FINAL)
    assert type(message) is CLASSES[name]
    assert codec.encode(message, FINAL) == data


@messages
def test_pre_rfc_vector_round_trips(name: str) -> None:
    """A pre-RFC example decodes in PRE_RFC and re-encodes byte for byte."""
    data = vectors.pre_rfc(name)
    message = codec.decode(data, PRE_RFC)
    assert type(message) is CLASSES[name]
    assert codec.encode(message, PRE_RFC) == data


@messages
def test_final_vector_refused_in_pre_rfc(name: str) -> None:
    """A final-numbering message is refused, not misread, by a pre-RFC decoder."""
    with pytest.raises(MalformedMessage):
        codec.decode(vectors.final(name), PRE_RFC)


@messages
def test_pre_rfc_vector_refused_in_final(name: str) -> None:
    """A pre-RFC message is refused, not misread, by a final decoder."""
    with pytest.raises(MalformedMessage):
        codec.decode(vectors.pre_rfc(name), FINAL)


@messages
def test_numberings_mean_the_same_message(name: str) -> None:
    """The two numberings of an example decode to the same message (19)."""
    final = codec.decode(vectors.final(name), FINAL)
    assert codec.decode(vectors.pre_rfc(name), PRE_RFC) == final
    assert codec.encode(final, PRE_RFC) == vectors.pre_rfc(name)


@messages
def test_classify_final_vector(name: str) -> None:
    """classify() names the final numbering for each final example (13)."""
    assert codec.classify(cbor.loads(vectors.final(name))) is FINAL


@messages
def test_classify_pre_rfc_vector(name: str) -> None:
    """classify() names the pre-RFC numbering for each pre-RFC example (13)."""
    assert codec.classify(cbor.loads(vectors.pre_rfc(name))) is PRE_RFC


def test_error_vector_code_moves_between_numberings() -> None:
    """ERR_MANIFEST_PROCESSING_FAILED is 11 on the final wire and 17 before."""
    final = codec.decode(vectors.final("error"), FINAL)
    assert isinstance(final, Error)
    assert final.err_code is ErrCode.ERR_MANIFEST_PROCESSING_FAILED
    assert cbor.loads(vectors.final("error"))[2] == 11
    assert cbor.loads(vectors.pre_rfc("error"))[2] == 17


def test_challenge_only_query_request_is_neutral() -> None:
    """A QueryRequest with neither token nor freshness list has no numbering."""
    request = QueryRequest(challenge=b"\x01" * 32)
    value = cbor.loads(codec.encode(request, FINAL))
    assert codec.classify(value) is None
    assert codec.decode_value(value, PRE_RFC) == codec.decode_value(value, FINAL)


# libteep: (signed file, signer key or None, what its payload is in PRE_RFC)
LIBTEEP = {
    "query_request_cose": ("tam_prime256v1_pub", QueryRequest),
    "update_cose": ("tam_prime256v1_pub", Update),
    "query_response_cose": ("teep_agent_prime256v1_pub", QueryResponse),
    "teep_success_cose": ("teep_agent_prime256v1_pub", Success),
    "teep_error_cose": ("teep_agent_prime256v1_pub", Error),
    "evidence_cose": ("teep_agent_prime256v1_pub", MalformedMessage),
    "attestation_results_cose": ("verifier_prime256v1_pub", MalformedMessage),
    "query_request_err1_cose": (None, LegacyDialect),
    "query_request_err2_cose": (None, LegacyDialect),
    "query_request_err3_cose": (None, LegacyDialect),
}
# The unsigned payload file that each signed TEEP message carries.
LIBTEEP_PAYLOADS = {
    "query_request_cose": "query_request",
    "update_cose": "update",
    "query_response_cose": "query_response",
    "teep_success_cose": "teep_success",
    "teep_error_cose": "teep_error",
}
libteep_files = pytest.mark.parametrize("name", sorted(LIBTEEP))


@libteep_files
def test_libteep_signature(name: str) -> None:
    """Each libteep signed message verifies under the key that signed it."""
    signer, _ = LIBTEEP[name]
    data = vectors.libteep(name)
    keys = vectors.libteep_keys()
    if signer is None:
        # The err* files are libteep's negative examples, signed by a key
        # it does not ship (vectors README, interop-libteep).
        with pytest.raises(VerifyError):
            cose.verify(data, keys)
        return
    verified = cose.verify(data, keys)
    expected = vectors.libteep_key(signer)
    assert verified.key.thumbprint == expected.thumbprint
    # libteep's kid is the RFC 9679 thumbprint of the signing key.
    assert verified.message.signatures[0].kid == expected.thumbprint
    assert cose.verify(data, [expected]).payload == verified.payload


@libteep_files
def test_libteep_payload_decodes_pre_rfc(name: str) -> None:
    """A libteep payload is a pre-RFC TEEP message, or refused with the reason."""
    _, expected = LIBTEEP[name]
    payload = cose.parse(vectors.libteep(name)).payload
    assert payload is not None
    if issubclass(expected, Exception):
        # evidence and attestation results are EAT claims sets, not TEEP
        # messages; err1..3 use the draft-08 QueryRequest layout.
        with pytest.raises(expected):
            codec.decode(payload, PRE_RFC)
        return
    message = codec.decode(payload, PRE_RFC)
    assert type(message) is expected
    assert payload == vectors.libteep(LIBTEEP_PAYLOADS[name])
    assert codec.classify(cbor.loads(payload)) is PRE_RFC


@pytest.mark.parametrize("name", sorted(LIBTEEP_PAYLOADS))
def test_libteep_payload_refused_in_final(name: str) -> None:
    """libteep speaks the pre-RFC numbering: a final decoder refuses it."""
    payload = cose.parse(vectors.libteep(name)).payload
    assert payload is not None
    with pytest.raises(MalformedMessage):
        codec.decode(payload, FINAL)


def test_libteep_query_response_keeps_old_label_5() -> None:
    """libteep's selected-teep-cipher-suite (pre-RFC label 5) is an extension."""
    payload = vectors.libteep("query_response")
    message = codec.decode(payload, PRE_RFC)
    assert isinstance(message, QueryResponse)
    assert message.extensions == {5: [[18, -7]]}
    assert message.selected_version == 0
