"""``teep decode``: show a TEEP message, SUIT envelope or EAT, with names.

The input is raw CBOR or its hex form.  A TEEP message (bare, or signed as
a COSE_Sign1 / COSE_Sign) is decoded strictly with :mod:`teep.protocol.codec`
in the numbering given or recognised (:func:`teep.protocol.codec.classify`);
anything wrong with it is reported as one line naming the field.  With
``--key`` the signature is checked and must verify.  A signed claims set is
read with :func:`teep.attestation.inspect.inspect_token`, which tells Evidence
(EAT) from an Attestation Result (EAR).  The output is a header line, then the
whole input in annotated diagnostic notation (:mod:`teep.diag`).

The inspection is a pure function, :func:`inspect`, so it is tested without
click; the command only reads the input and prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import click

from teep import cbor, cose, diag
from teep.attestation.errors import SignatureError
from teep.attestation.inspect import TokenView, inspect_token
from teep.cli.common import (
    SHOWN_BYTES,
    echo,
    fail,
    full_option,
    parse_input,
    read_input,
)
from teep.cli.keys import load_any
from teep.errors import DecodeError, TeepError, VerifyError
from teep.keys import PublicKey
from teep.protocol import codec, legacy
from teep.protocol.errors import LegacyDialect
from teep.protocol.messages import Message
from teep.protocol.registry import DIALECTS, FINAL, Dialect, MessageType
from teep.suit.envelope import SuitEnvelope, verify_envelope

__all__ = ["Inspection", "decode", "inspect", "parse_input"]

_NUMBERINGS = ("auto", "final", "pre-rfc")


@dataclass(frozen=True)
class Inspection:
    """What :func:`inspect` found in an input."""

    value: Any
    """The whole input, decoded."""
    kind: diag.Kind
    """What the content is (the payload's kind for a signed input)."""
    dialect: Dialect
    """The numbering used to read and name a TEEP message."""
    numbering_note: str
    """How the numbering was chosen (``given``, ``recognised``, ``ambiguous``)."""
    cose: cose.COSEMessage | None = None
    """The signed structure, if the input was signed."""
    message: Message | None = None
    """The strictly decoded TEEP message, if it is one."""
    verified_by: PublicKey | None = None
    """The key the signature verified with (only with a key)."""
    token: TokenView | None = None
    """A signed EAT or EAR, as :func:`inspect_token` read it."""


def inspect(
    data: bytes, *, numbering: str = "auto", key: PublicKey | None = None
) -> Inspection:
    """Decode and check an input; see the module docstring.

    :param numbering: ``auto``, ``final`` or ``pre-rfc``.
    :param key: if given, the input must be signed and verify under it.
    :raises TeepError: (a subclass) naming what is wrong.
    """
    value = _load(data)
    signed = _parse_cose(value) if diag.guess_kind(value) is diag.Kind.COSE else None
    content = value if signed is None else _payload(signed)
    kind = _content_kind(content)
    dialect, note = _dialect(content, numbering) if kind is _TEEP else (FINAL, "")
    message = _strict(content, dialect) if kind is _TEEP else None
    if kind is diag.Kind.PLAIN:
        _refuse_legacy(legacy.recognise(content))
        fail(f"not a TEEP message, SUIT envelope or EAT ({_describe(content)})")
    if kind is diag.Kind.SUIT_ENVELOPE and signed is None:
        SuitEnvelope.decode(data)  # strict: raises on a malformed envelope
    if kind is diag.Kind.EAT and signed and signed.tag is cose.COSETag.COSE_Sign1:
        token = _token(data, key)
        return replace(
            Inspection(value, kind, dialect, note, signed, message, token.signer),
            token=token,
        )
    verified = _check_key(key, signed, data, kind)
    return Inspection(value, kind, dialect, note, signed, message, verified)


def _token(data: bytes, key: PublicKey | None) -> TokenView:
    try:
        return inspect_token(data, [key] if key is not None else ())
    except SignatureError:
        assert key is not None  # only raised when a key was given
        fail(f"signature does not verify with {key.kid.hex()}")


_TEEP = diag.Kind.TEEP_MESSAGE


def _load(data: bytes) -> Any:
    # legacy/VERSIONS.md 2.2: a leading "{" is JSON even when it is not
    # strictly valid JSON (nor, by chance, CBOR).
    if legacy.looks_like_json(data):
        _refuse_legacy(legacy.recognise_bytes(data))
    try:
        return cbor.loads(data)
    except cbor.CBORDecodeError as exc:
        _refuse_legacy(legacy.recognise_bytes(data))
        raise DecodeError(f"the input is not valid CBOR: {exc}") from None


def _refuse_legacy(dialect: str | None) -> None:
    """Stop with one line naming an older dialect, if there is one."""
    if dialect is not None:
        fail(f"the input is {dialect}, which teep does not decode")


def _parse_cose(value: Any) -> cose.COSEMessage:
    try:
        return cose.parse(value)
    except DecodeError as exc:
        raise DecodeError(f"COSE: {exc}") from None


def _payload(signed: cose.COSEMessage) -> Any:
    if signed.payload is None:
        fail("the COSE payload is detached; there is nothing to show")
    try:
        return cbor.loads(signed.payload)
    except cbor.CBORDecodeError as exc:
        raise DecodeError(f"COSE payload: not valid CBOR: {exc}") from None


def _content_kind(content: Any) -> diag.Kind:
    # Any array that opens with an unsigned integer is read as a TEEP
    # message, so that older dialects are refused by name rather than shown
    # as CBOR; one that opens with a negative number (a COSE_KDF_Context)
    # is no TEEP message.
    if isinstance(content, list) and content and isinstance(content[0], int):
        return _TEEP if content[0] >= 0 else diag.Kind.PLAIN
    return diag.guess_kind(content)


def _dialect(content: Any, numbering: str) -> tuple[Dialect, str]:
    if numbering != "auto":
        return DIALECTS[numbering], "given"
    found = codec.classify(content)
    if found is None:
        return FINAL, "ambiguous, read as final"
    return found, "recognised"


def _strict(content: Any, dialect: Dialect) -> Message:
    try:
        return codec.decode_value(content, dialect)
    except LegacyDialect as exc:
        # Named without a type label: the type numbers of older drafts differ.
        _refuse_legacy(legacy.recognise(content))
        raise DecodeError(str(exc)) from None
    except TeepError as exc:
        raise type(exc)(_strict_problem(content, dialect, str(exc))) from None


def _strict_problem(content: Any, dialect: Dialect, problem: str) -> str:
    """The one line for a message that does not decode in ``dialect``.

    It opens with the message type (``update: ...``), except for an Error,
    whose name would follow teep's own ``error:``.  A wrong number of
    elements (the codec's first check once the type and options map are
    read) is put in words of this line's own.
    """
    mtype = _message_type(content, dialect)
    counted = None
    if mtype is not None and len(content) > 1 and isinstance(content[1], dict):
        expected = codec.element_count(mtype)
        if len(content) != expected:
            counted = (len(content), expected)
    if mtype is not MessageType.ERROR:
        if counted is not None:
            problem = (
                f"it has {counted[0]} elements, expected {counted[1]}"
                f" ({dialect.name} numbering)"
            )
        return f"{_type_label(content, dialect)}: {problem}"
    if counted is None:
        return f"in the Error message: {problem}"
    return (
        f"as the {dialect.name} numbering's Error (type {content[0]}) it has"
        f" {counted[0]} elements, expected {counted[1]}"
    )


def _message_type(content: Any, dialect: Dialect) -> MessageType | None:
    first = content[0] if isinstance(content, list) and content else None
    return dialect.type_of(first) if isinstance(first, int) and first >= 0 else None


def _type_label(content: Any, dialect: Dialect) -> str:
    mtype = _message_type(content, dialect)
    return "TEEP message" if mtype is None else mtype.name.lower().replace("_", "-")


def _describe(value: Any) -> str:
    if isinstance(value, cbor.CBORTag):
        return f"a CBOR item with tag {value.tag}"
    if isinstance(value, list) and value and isinstance(value[0], int):
        return f"a CBOR item: an array opening with {value[0]}"
    names = {list: "an array", dict: "a map", bytes: "a byte string", str: "a text"}
    for python_type, name in names.items():
        if isinstance(value, python_type):
            return f"a CBOR item: {name}"
    return f"a CBOR item: {type(value).__name__}"


def _check_key(
    key: PublicKey | None,
    signed: cose.COSEMessage | None,
    data: bytes,
    kind: diag.Kind,
) -> PublicKey | None:
    if key is None:
        return None
    if signed is not None:
        try:
            return cose.verify(signed, [key]).key
        except VerifyError:
            fail(f"signature does not verify with {key.kid.hex()}")
    if kind is diag.Kind.SUIT_ENVELOPE:
        return _check_envelope(data, key)
    fail("--key was given but the input is not signed (no COSE_Sign1 or COSE_Sign)")


def _check_envelope(data: bytes, key: PublicKey) -> PublicKey:
    envelope = SuitEnvelope.decode(data)
    tags = {cbor.peek_tag(block) for block in envelope.authentication_blocks}
    if cose.COSETag.COSE_Mac0 in tags and not tags & _SIGNED:
        fail(
            "the envelope is authenticated with COSE_Mac0 (a shared key),"
            " which a public key cannot check"
        )
    try:
        return verify_envelope(envelope, [key])
    except VerifyError:
        fail(f"signature does not verify with {key.kid.hex()}")


_SIGNED = {cose.COSETag.COSE_Sign1, cose.COSETag.COSE_Sign}


# --- presentation -----------------------------------------------------------------


def header(found: Inspection) -> str:
    """The one-line summary printed above the diagnostic notation."""
    if found.message is not None:
        what = (
            f"{type(found.message).__name__} (TEEP message, {found.dialect.name}"
            f" numbering, {found.numbering_note})"
        )
    elif found.token is not None:
        what = _TOKEN_KINDS[found.token.kind]
    else:
        what = found.kind.value
    return f"{what}; {_signature_summary(found)}"


_TOKEN_KINDS = {"EAT": "EAT (Evidence)", "EAR": "EAR (Attestation Result)"}


def _signature_summary(found: Inspection) -> str:
    if found.cose is None:
        if found.verified_by is not None:
            return f"signature verified with {found.verified_by.kid.hex()}"
        if found.kind is diag.Kind.SUIT_ENVELOPE:
            return "signature not verified (no --key)"
        return "unsigned"
    signers = ", ".join(
        f"kid {sig.kid.hex() if sig.kid else '(none)'} with {_alg(sig.alg)}"
        for sig in found.cose.signatures
    )
    text = f"{found.cose.tag.name} signed by {signers}"
    if found.verified_by is None:
        return f"{text}: not verified (no --key)"
    return f"{text}: verified with {found.verified_by.kid.hex()}"


def _alg(alg: Any) -> str:
    return str(getattr(alg, "name", alg))


def as_json(found: Inspection) -> dict[str, Any]:
    """The JSON form of an inspection."""
    signers = [
        {"kid": sig.kid.hex() if sig.kid else None, "alg": _alg(sig.alg)}
        for sig in (found.cose.signatures if found.cose else ())
    ]
    return {
        "kind": found.kind.value,
        "type": type(found.message).__name__ if found.message else None,
        "attestation_token": found.token.kind if found.token else None,
        "numbering": found.dialect.name if found.message else None,
        "signed": found.cose.tag.name if found.cose else None,
        "signers": signers,
        "verified_with": found.verified_by.kid.hex() if found.verified_by else None,
        "value": diag.to_json(found.value, _top_kind(found), found.dialect),
    }


def _top_kind(found: Inspection) -> diag.Kind:
    return diag.Kind.COSE if found.cose is not None else found.kind


@click.command()
@click.argument("file", type=click.Path(allow_dash=True))
@click.option(
    "--key",
    "keyfile",
    type=click.Path(),
    help=(
        "Verify the signature with this key (PEM, DER, COSE_Key, or a"
        " certificate, whose key is used; the certificate is not validated)."
    ),
)
@click.option("--json", "as_json_flag", is_flag=True, help="Print JSON.")
@click.option(
    "--numbering",
    type=click.Choice(_NUMBERINGS),
    default="auto",
    show_default=True,
    help="TEEP numbering: the final RFC's, the drafts' (pre-rfc), or recognise it.",
)
@click.option("--hex", "force_hex", is_flag=True, help="The input is hex text.")
@full_option
def decode(
    file: str,
    keyfile: str | None,
    as_json_flag: bool,
    numbering: str,
    force_hex: bool,
    full: bool,
) -> None:
    """Show FILE (or - for stdin) as annotated CBOR diagnostic notation.

    FILE holds a TEEP message (bare or COSE-signed), a SUIT envelope or an
    EAT, as raw CBOR or hex.  Exits 1 with one line if it is not valid.
    """
    key = load_any(keyfile)[0] if keyfile else None
    data = parse_input(read_input(file), force_hex=force_hex)
    found = inspect(data, numbering=numbering, key=key)
    if as_json_flag:
        echo(json.dumps(as_json(found), indent=2))
        return
    echo(header(found))
    limit = None if full else SHOWN_BYTES
    echo(diag.annotate(found.value, _top_kind(found), found.dialect, max_bytes=limit))
