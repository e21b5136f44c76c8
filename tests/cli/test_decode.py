"""teep decode: spec vectors, signatures, numbering and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teep import cbor, cose
from teep.cli.decode import inspect
from teep.errors import TeepError
from teep.keys import KeyKind, PrivateKey
from teep.protocol import codec
from teep.protocol.messages import Message, Success, Update
from teep.protocol.registry import PRE_RFC

from .conftest import VECTORS, Run, assert_one_line_error

MESSAGES = {
    "query_request": "QueryRequest",
    "query_response": "QueryResponse",
    "update": "Update",
    "success": "Success",
    "error": "Error",
}
TOKEN = bytes(range(16))


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_final_vector(run: Run, name: str) -> None:
    """Each final-numbering spec message decodes, names its type, exits 0."""
    result = run("decode", str(VECTORS / f"{name}.hex"))
    assert result.exit_code == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith(f"{MESSAGES[name]} (TEEP message, final numbering")
    assert "unsigned" in first
    assert "/ type /" in rest[1]


def test_update_shows_nested_envelope(run: Run) -> None:
    """The manifest-list entry is unwrapped down to the SUIT manifest."""
    out = run("decode", str(VECTORS / "update.hex")).stdout
    assert "/ manifest-list / 9: [" in out
    assert "<< / SUIT_Envelope / {" in out
    assert "/ suit-manifest-sequence-number / 2: 3" in out
    assert '"https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta"' in out


def test_raw_binary_input(run: Run, tmp_path: Path) -> None:
    """Raw CBOR is accepted as well as hex."""
    raw = tmp_path / "error.cbor"
    raw.write_bytes(bytes.fromhex((VECTORS / "error.hex").read_text().strip()))
    result = run("decode", str(raw))
    assert result.exit_code == 0, result.stderr
    assert "ERR_MANIFEST_PROCESSING_FAILED" in result.stdout


def test_stdin(run: Run) -> None:
    """'-' reads standard input."""
    result = run("decode", "-", input=(VECTORS / "success.hex").read_bytes())
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Success")


def test_json_output(run: Run) -> None:
    """--json gives the type, the numbering and the named value."""
    result = run("decode", "--json", str(VECTORS / "error.hex"))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["type"], data["numbering"], data["signed"]) == ("Error", "final", None)
    assert data["value"][2] == {"value": 11, "name": "ERR_MANIFEST_PROCESSING_FAILED"}


def _signed(tmp_path: Path, key: PrivateKey, message: Message) -> Path:
    payload = codec.encode(message)
    path = tmp_path / "signed.cbor"
    path.write_bytes(cose.sign1(payload, key))
    return path


def test_signed_with_right_key(run: Run, tmp_path: Path) -> None:
    """A COSE_Sign1 message verifies with its signer's key and exits 0."""
    key = PrivateKey.generate()
    (tmp_path / "k.pub.pem").write_bytes(key.public.to_pem())
    path = _signed(tmp_path, key, Success(token=TOKEN))
    result = run("decode", "--key", str(tmp_path / "k.pub.pem"), str(path))
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert "COSE_Sign1 signed by kid " + key.kid.hex() in first
    assert "verified with " + key.kid.hex() in first
    assert "/ payload / << [" in result.stdout


def test_signed_with_wrong_key(run: Run, tmp_path: Path) -> None:
    """A signature checked with another key fails with one line naming it."""
    key, other = PrivateKey.generate(), PrivateKey.generate()
    (tmp_path / "other.pem").write_bytes(other.public.to_pem())
    path = _signed(tmp_path, key, Success(token=TOKEN))
    line = assert_one_line_error(
        run("decode", "--key", str(tmp_path / "other.pem"), str(path))
    )
    assert line == f"teep: error: signature does not verify with {other.kid.hex()}"


@pytest.mark.parametrize("kind", [KeyKind.P256, KeyKind.ED25519])
def test_signed_with_cose_key_file(run: Run, tmp_path: Path, kind: KeyKind) -> None:
    """--key takes the COSE_Key that 'teep keys export-cose' writes: the
    signer's verifies (exit 0), another key's exits 1 naming that key."""
    key, other = PrivateKey.generate(kind), PrivateKey.generate(kind)
    for name, private in (("signer", key), ("other", other)):
        (tmp_path / f"{name}.pem").write_bytes(private.to_pem())
        exported = run(
            "keys", "export-cose", str(tmp_path / f"{name}.pem"), str(tmp_path / name)
        )
        assert exported.exit_code == 0, exported.stderr
    assert isinstance(cbor.loads((tmp_path / "signer").read_bytes()), dict)
    path = _signed(tmp_path, key, Update(token=TOKEN))
    result = run("decode", "--key", str(tmp_path / "signer"), str(path))
    assert result.exit_code == 0, result.stderr
    assert "verified with " + key.kid.hex() in result.stdout.splitlines()[0]
    line = assert_one_line_error(
        run("decode", "--key", str(tmp_path / "other"), str(path))
    )
    assert line == f"teep: error: signature does not verify with {other.kid.hex()}"


def test_signed_without_key(run: Run, tmp_path: Path) -> None:
    """Without --key the signer is shown but not verified."""
    key = PrivateKey.generate(KeyKind.ED25519)
    path = _signed(tmp_path, key, Success(token=TOKEN))
    first = run("decode", str(path)).stdout.splitlines()[0]
    assert "with Ed25519: not verified (no --key)" in first


def test_cose_sign_multi_signer(run: Run, tmp_path: Path) -> None:
    """A COSE_Sign verifies with either of its signers."""
    a, b = PrivateKey.generate(), PrivateKey.generate()
    path = tmp_path / "multi.cbor"
    path.write_bytes(cose.sign(codec.encode(Success(token=TOKEN)), [a, b]))
    (tmp_path / "b.pem").write_bytes(b.public.to_pem())
    result = run("decode", "--key", str(tmp_path / "b.pem"), str(path))
    assert result.exit_code == 0, result.stderr
    assert "COSE_Sign signed by" in result.stdout


def test_libteep_pre_rfc_signed(run: Run) -> None:
    """libteep's signed pre-RFC Error is recognised as pre-rfc and verifies."""
    result = run(
        "decode",
        "--key",
        str(VECTORS / "libteep_teep_agent_prime256v1_pub.pem"),
        str(VECTORS / "libteep_teep_error_cose.hex"),
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(
        "Error (TEEP message, pre-rfc numbering, recognised)"
    )
    assert "/ err-code / 17 / ERR_MANIFEST_PROCESSING_FAILED /" in result.stdout


def test_numbering_forced_wrong(run: Run) -> None:
    """A final Error read as pre-RFC fails with one line naming the type."""
    line = assert_one_line_error(
        run("decode", "--numbering", "pre-rfc", str(VECTORS / "error.hex"))
    )
    assert line.startswith("teep: error: success:")


def test_pre_rfc_numbering_given(run: Run, tmp_path: Path) -> None:
    """--numbering pre-rfc reads a pre-RFC message."""
    path = tmp_path / "s.cbor"
    path.write_bytes(codec.encode(Success(token=TOKEN), PRE_RFC))
    result = run("decode", "--numbering", "pre-rfc", str(path))
    assert result.exit_code == 0, result.stderr
    assert "pre-rfc numbering, given" in result.stdout


def test_malformed_field_named(run: Run, tmp_path: Path) -> None:
    """A wrongly typed option is reported with the message, option and label."""
    path = tmp_path / "bad.cbor"
    path.write_bytes(cbor.dumps([3, {19: TOKEN, 9: "not an array"}]))
    line = assert_one_line_error(run("decode", "--numbering", "final", str(path)))
    assert line == (
        "teep: error: update: manifest-list (label 9): expected an array of bstr"
    )


def test_suit_envelope(run: Run) -> None:
    """A SUIT envelope is recognised and its signature checked with --key."""
    result = run(
        "decode",
        "--key",
        str(VECTORS / "suit_signer_p256_public.pem"),
        str(VECTORS / "suit_integrated.hex"),
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("SUIT envelope; signature verified with ")
    assert '/ "Hello, Secure World!" /' in result.stdout


def test_suit_envelope_wrong_key(run: Run, tmp_path: Path) -> None:
    """A SUIT envelope does not verify with an unrelated key."""
    (tmp_path / "k.pem").write_bytes(PrivateKey.generate().public.to_pem())
    assert_one_line_error(
        run("decode", "--key", str(tmp_path / "k.pem"), str(VECTORS / "suit_uri.hex"))
    )


def test_eat(run: Run, tmp_path: Path) -> None:
    """A signed EAT claims set is shown with claim names."""
    key = PrivateKey.generate()
    claims = {10: b"n" * 16, 256: b"\x01" + bytes(16), 258: b"abc", 265: "urn:x"}
    path = tmp_path / "eat.cbor"
    path.write_bytes(cose.sign1(cbor.dumps(claims), key))
    result = run("decode", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("EAT (Evidence); COSE_Sign1 signed by")
    assert "/ ueid / 256:" in result.stdout
    assert "/ eat-profile / 265:" in result.stdout


def test_key_on_unsigned_input(run: Run, tmp_path: Path) -> None:
    """--key with an unsigned message is an error."""
    (tmp_path / "k.pem").write_bytes(PrivateKey.generate().public.to_pem())
    line = assert_one_line_error(
        run("decode", "--key", str(tmp_path / "k.pem"), str(VECTORS / "success.hex"))
    )
    assert "not signed" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the input is empty"),
        (b"\n  \n", "the input is empty"),
        (b"\xff\x00garbage", "not valid CBOR"),
        (bytes.fromhex("8305a21350a0a1a2"), "not valid CBOR"),  # truncated
        (b"8305a2", "not valid CBOR"),  # truncated, as hex
        (cbor.dumps(7), "not a TEEP message"),
        (cbor.dumps([9, {}]), "unknown message type 9"),
        (cbor.dumps([1, 1234, {}, 3]), "draft -02 to -04"),
        (b'{"TYPE": "QueryRequest"}', "TEEP over JSON"),
        (cbor.dumps(cbor.CBORTag(18, [b"", {}, b"x", b""])), "COSE"),
        (cbor.dumps(cbor.CBORTag(18, [b"\xa1\x01&", {}, b"\xff", b"s"])), "payload"),
    ],
)
def test_bad_input_one_line(
    run: Run, tmp_path: Path, content: bytes, expected: str
) -> None:
    """Garbage, empty and truncated input fail with one line and no traceback."""
    path = tmp_path / "input"
    path.write_bytes(content)
    line = assert_one_line_error(run("decode", str(path)))
    assert expected in line


def test_bad_forced_hex(run: Run, tmp_path: Path) -> None:
    """--hex with non-hex text fails with one line."""
    path = tmp_path / "input"
    path.write_bytes(b"zz")
    assert "not valid hex" in assert_one_line_error(run("decode", "--hex", str(path)))


def test_missing_file(run: Run, tmp_path: Path) -> None:
    """A missing input file is one line naming it."""
    line = assert_one_line_error(run("decode", str(tmp_path / "nope.cbor")))
    assert "nope.cbor" in line


def test_update_built_here(run: Run, tmp_path: Path) -> None:
    """An Update this code base encodes decodes back with its manifest count."""
    envelope = bytes.fromhex((VECTORS / "suit_uri.hex").read_text().strip())
    path = tmp_path / "u.cbor"
    path.write_bytes(codec.encode(Update(token=TOKEN, manifest_list=(envelope,))))
    result = run("decode", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("<< / SUIT_Envelope /") == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_inspect_raises_only_teep_errors(data: bytes) -> None:
    """Whatever the bytes, inspection succeeds or raises a TeepError."""
    try:
        inspect(data)
    except TeepError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(MESSAGES)), st.data())
def test_truncated_vectors(name: str, data: st.DataObject) -> None:
    """Every proper prefix of a spec message fails with a TeepError."""
    raw = bytes.fromhex((VECTORS / f"{name}.hex").read_text().strip())
    cut = data.draw(st.integers(1, len(raw) - 1))
    with pytest.raises(TeepError):
        inspect(raw[:cut])


LEGACY_EXAMPLES = VECTORS.parent / "teep" / "legacy-examples"
# What the one error line says for each verdict of verdicts.tsv.
LEGACY_WORDS = {
    "A": "the input is OTrP v1",
    "C": "the input is TEEP over JSON",
    "D": "the input is TEEP draft-ietf-teep-protocol-00/-01 CBOR",
    "E": "the input is TEEP Protocol draft -02 to -04",
    "unknown": "the input is not valid CBOR",
}


def _legacy_cases() -> list[Any]:
    cases = []
    for line in (LEGACY_EXAMPLES / "verdicts.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, verdict = line.split("\t")
            cases.append(pytest.param(name, verdict, id=name))
    return cases


@pytest.mark.parametrize(("name", "verdict"), _legacy_cases())
def test_legacy_example_refused_by_name(run: Run, name: str, verdict: str) -> None:
    """Every example of legacy/VERSIONS.md 4 exits 1 with one line naming its
    dialect (the -04 annotated hex dumps are fed as plain hex on stdin)."""
    path = LEGACY_EXAMPLES / name
    if name.startswith("teep-cbor-draft04/"):
        hex_text = re.sub(r"#[^\n]*", "", path.read_text())
        result = run("decode", "--hex", "-", input=hex_text)
    else:
        result = run("decode", str(path))
    line = assert_one_line_error(result)
    assert LEGACY_WORDS[verdict] in line
    if verdict == "unknown":
        assert "OTrP" not in line and "draft" not in line


def test_commented_hex(run: Run, tmp_path: Path) -> None:
    """Hex with ``#`` comments and line breaks, as people annotate vectors."""
    digits = (VECTORS / "error.hex").read_text().strip()
    path = tmp_path / "error.hex"
    lines = ["# an Error message", f"{digits[:10]}  # the first bytes", digits[10:]]
    path.write_text("\n".join([*lines, "# end", ""]))
    result = run("decode", str(path))
    assert result.exit_code == 0, result.stderr
    assert "ERR_MANIFEST_PROCESSING_FAILED" in result.stdout


def test_binary_with_a_hash_byte_is_not_hex(run: Run, tmp_path: Path) -> None:
    """Raw CBOR holding a ``#`` byte is read as CBOR, not as commented hex."""
    path = tmp_path / "text.cbor"
    path.write_bytes(cbor.dumps("#0a"))
    result = run("decode", str(path))
    assert "hex" not in result.stdout + result.stderr


def test_diagnostic_byte_string(run: Run, tmp_path: Path) -> None:
    """``h'...'`` (as diagnostic notation writes bytes) is read as hex."""
    digits = (VECTORS / "error.hex").read_text().strip()
    path = tmp_path / "error.diag"
    path.write_text(f"h'{digits}'\n")
    result = run("decode", str(path))
    assert result.exit_code == 0, result.stderr
    assert "ERR_MANIFEST_PROCESSING_FAILED" in result.stdout


def test_odd_length_hex_says_so(run: Run, tmp_path: Path) -> None:
    """Hex with a digit missing is named as such, not as trailing CBOR."""
    digits = (VECTORS / "error.hex").read_text().strip()
    path = tmp_path / "error.hex"
    path.write_text(digits[:-1])
    line = assert_one_line_error(run("decode", str(path)))
    assert "odd number of digits" in line


def test_only_comments(run: Run, tmp_path: Path) -> None:
    """A hex file with nothing but comments says so."""
    path = tmp_path / "empty.hex"
    path.write_text("# nothing here yet\n")
    assert "only comments" in assert_one_line_error(run("decode", str(path)))


def test_directory_is_an_unreadable_file(run: Run, tmp_path: Path) -> None:
    """A folder given as FILE or --key is a failed read (exit 1), like a
    missing file, not a usage error."""
    line = assert_one_line_error(run("decode", str(tmp_path)))
    assert line == f"teep: error: cannot read {tmp_path}: Is a directory"
    line = assert_one_line_error(run("decode", "--key", str(tmp_path), "-"))
    assert line == f"teep: error: cannot read key file {tmp_path}: Is a directory"


def test_input_larger_than_the_limit_is_refused(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file or standard input over the input limit is refused once the
    limit is passed, not read whole; an endless device file stops there."""
    from teep.cli import common

    monkeypatch.setattr(common, "MAX_INPUT", 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(b"\x00" * (1024 * 1024 + 1))
    line = assert_one_line_error(run("decode", str(path)))
    assert line == f"teep: error: {path} is larger than 1 MiB: not read"
    line = assert_one_line_error(run("decode", "-", input=b"\x00" * (2 * 1024 * 1024)))
    assert line == "teep: error: standard input is larger than 1 MiB: not read"
    line = assert_one_line_error(run("decode", "/dev/zero"))
    assert line == "teep: error: /dev/zero is larger than 1 MiB: not read"
    line = assert_one_line_error(run("manifest", "show", "/dev/zero"))
    assert "larger than 1 MiB" in line


def test_input_at_the_limit_is_read(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly the limit is still read (and here refused as not CBOR)."""
    from teep.cli import common

    monkeypatch.setattr(common, "MAX_INPUT", 64)
    line = assert_one_line_error(run("decode", "-", input=b"\xff" * 64))
    assert "larger than" not in line


def test_long_byte_strings_are_cut_unless_full(run: Run, tmp_path: Path) -> None:
    """A long byte string (a payload) shows its first bytes and its length;
    --full shows every byte."""
    from teep import components
    from teep.suit.builder import build_envelope

    payload = bytes(range(256)) * 20
    path = tmp_path / "long.suit"
    path.write_bytes(
        build_envelope(
            manifest_component_id=components.manifest_id("long"),
            component_id=components.component_id("long"),
            payload=payload,
            sequence_number=1,
            signer=PrivateKey.generate(KeyKind.P256),
        )
    )
    cut = run("decode", str(path))
    assert cut.exit_code == 0, cut.stderr
    assert f"h'{payload[:256].hex()}' / 5120 bytes, the first 256 shown /" in cut.stdout
    assert payload[:257].hex() not in cut.stdout
    full = run("decode", "--full", str(path))
    assert full.exit_code == 0, full.stderr
    assert f"h'{payload.hex()}'" in full.stdout and "shown" not in full.stdout


TESTS = Path(__file__).resolve().parents[1]


def test_array_opening_with_a_negative_number_is_not_teep(run: Run) -> None:
    """A COSE_KDF_Context ([-3, ...]) is no TEEP message: it is named as
    other unknown items are, not as a malformed TEEP message."""
    vector = TESTS / "vectors" / "suit" / "encryption" / "fwenc-a128kw_kdf_context.hex"
    line = assert_one_line_error(run("decode", str(vector)))
    assert line == (
        "teep: error: not a TEEP message, SUIT envelope or EAT"
        " (a CBOR item: an array opening with -3)"
    )


def test_error_element_count_reads_once(run: Run) -> None:
    """A pre-RFC Success (type 5) read in the final numbering is an Error
    with too few elements; "error:" is not doubled."""
    vector = TESTS / "vectors" / "teep" / "pre-rfc" / "success.hex"
    line = assert_one_line_error(run("decode", "--numbering", "final", str(vector)))
    assert line == (
        "teep: error: as the final numbering's Error (type 5) it has 2 elements,"
        " expected 3"
    )


def test_error_field_problem_not_doubled(run: Run, tmp_path: Path) -> None:
    """Any other fault in an Error names it without a second "error:"."""
    path = tmp_path / "bad.cbor"
    path.write_bytes(cbor.dumps([5, {}, "not a code"]))
    line = assert_one_line_error(run("decode", "--numbering", "final", str(path)))
    assert not line.startswith("teep: error: error:")
    assert line.startswith("teep: error: in the Error message: ")


def test_mac0_envelope_with_a_public_key(run: Run, tmp_path: Path) -> None:
    """--key on an envelope authenticated with COSE_Mac0 says a public key
    cannot check it."""
    key = tmp_path / "k.pem"
    key.write_bytes(PrivateKey.generate().public.to_pem())
    vector = TESTS / "vectors" / "suit" / "fwenc-suit-manifest-aes-kw.hex"
    line = assert_one_line_error(run("decode", "--key", str(key), str(vector)))
    assert line == (
        "teep: error: the envelope is authenticated with COSE_Mac0 (a shared key),"
        " which a public key cannot check"
    )


def test_key_from_certificate_and_hex_cose_key(run: Run) -> None:
    """--key takes a certificate's public key, or a COSE_Key in hex; a key
    that did not sign is named by its kid."""
    for name in (
        "teep_device_tam_teep_p256_cert.pem",
        "personalization_kek_p256.cose_key.hex",
    ):
        line = assert_one_line_error(
            run("decode", "--key", str(VECTORS / name), str(VECTORS / "suit_uri.hex"))
        )
        assert "signature does not verify with" in line
