"""``teep manifest``: descriptions, show, verify, sign, sever."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from teep.device.components import demo_component_source, demo_component_wasm
from teep.errors import TeepError
from teep.keys import PrivateKey
from teep.suit.envelope import SuitEnvelope, open_envelope
from teep.suit.processor import SuitProcessor
from teep.suit.store import MemoryComponentStore

from .conftest import Run, assert_one_line_error

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The documented examples, with a signer, a device key and a module."""
    for name in ("hello.toml", "config.toml", "config.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    # The example points into the source tree; here the module sits beside it.
    hello = tmp_path / "hello.toml"
    hello.write_text(
        re.sub(
            r'payload = "[^"]*"', 'payload = "hello.wasm"', hello.read_text(), count=1
        )
    )
    (tmp_path / "hello.wasm").write_bytes(demo_component_wasm())
    PrivateKey.generate().save(tmp_path / "signer.pem")
    device = PrivateKey.generate()
    device.save(tmp_path / "device-kek.pem")
    (tmp_path / "device-kek.pub.pem").write_bytes(device.public.to_pem())
    return tmp_path


def create(run: Run, folder: Path, name: str) -> Path:
    out = folder / f"{name}.suit"
    result = run(
        "manifest",
        "create",
        str(folder / f"{name}.toml"),
        "--signer",
        str(folder / "signer.pem"),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    return out


def test_documented_examples_install(run: Run, folder: Path) -> None:
    """The example descriptions build envelopes that install: the TA, then
    its encrypted Personalization Data, which depends on it."""
    create(run, folder, "hello")
    config = create(run, folder, "config")
    signer = PrivateKey.load(folder / "signer.pem")
    store = MemoryComponentStore()
    proc = SuitProcessor(
        store,
        [signer.public],
        decryption_keys=[PrivateKey.load(folder / "device-kek.pem")],
    )
    proc.install((folder / "hello.suit").read_bytes())
    result = proc.install(config.read_bytes())
    installed = (b"TEEP-Device", b"SecureFS", b"hello", b"config")
    assert store.read(installed) == (folder / "config.json").read_bytes()
    assert installed in result.manifest.components
    assert not any(c[-1] == b"encrypted" for c in result.manifest.components)


def test_show_summary_and_diag(run: Run, folder: Path) -> None:
    """show prints the digest, the signer's kid and annotated notation."""
    envelope = create(run, folder, "hello")
    result = run("manifest", "show", str(envelope))
    assert result.exit_code == 0, result.stderr
    kid = PrivateKey.load(folder / "signer.pem").kid.hex()
    assert f"signer key id    {kid}" in result.stdout
    assert "suit-manifest-sequence-number" in result.stdout
    assert "manifest digest  sha-256" in result.stdout


def test_show_cuts_a_long_payload_unless_full(run: Run, folder: Path) -> None:
    """The integrated payload (the demo module, over 256 bytes) shows its
    first bytes and its length; --full shows all of it."""
    envelope = create(run, folder, "hello")
    cut = run("manifest", "show", str(envelope))
    assert cut.exit_code == 0, cut.stderr
    assert "bytes, the first 256 shown" in cut.stdout
    full = run("manifest", "show", "--full", str(envelope))
    assert full.exit_code == 0, full.stderr
    assert "shown" not in full.stdout and len(full.stdout) > len(cut.stdout)


def test_sever_then_verify(run: Run, folder: Path) -> None:
    """sever moves the text out (install is too short to gain anything) and
    leaves its digest; the result verifies."""
    envelope = create(run, folder, "hello")
    severed = folder / "severed.suit"
    key = str(folder / "signer.pem")
    result = run("manifest", "sever", "--key", key, "-o", str(severed), str(envelope))
    assert result.exit_code == 0, result.stderr
    env, _ = open_envelope(
        severed.read_bytes(), [PrivateKey.load(folder / "signer.pem").public]
    )
    assert set(env.manifest.severed) == {23}
    assert run("manifest", "verify", "--key", key, str(severed)).exit_code == 0
    shown = run("manifest", "show", str(severed)).stdout
    assert "severed          text (in envelope)" in shown


def test_sign_adds_a_signature(run: Run, folder: Path) -> None:
    """sign --add keeps the first signature and adds one by another key."""
    envelope = create(run, folder, "hello")
    other = folder / "other.pem"
    PrivateKey.generate().save(other)
    out = folder / "two.suit"
    args = ["manifest", "sign", "--add", "--key", str(other), "-o", str(out)]
    assert run(*args, str(envelope)).exit_code == 0
    for key in ("signer.pem", "other.pem"):
        assert (
            run("manifest", "verify", "--key", str(folder / key), str(out)).exit_code
            == 0
        )


def test_sign_add_refuses_a_key_already_signing(run: Run, folder: Path) -> None:
    """sign --add with a key that already signed is one line, nothing written."""
    envelope = create(run, folder, "hello")
    other = folder / "other.pem"
    PrivateKey.generate().save(other)
    two, three = folder / "two.suit", folder / "three.suit"
    for key, source in ((other, two), (folder / "signer.pem", envelope)):
        if key == other:
            args = ["manifest", "sign", "--add", "--key", str(key), "-o", str(two)]
            assert run(*args, str(envelope)).exit_code == 0
        again = ["manifest", "sign", "--add", "--key", str(key), "-o", str(three)]
        line = assert_one_line_error(run(*again, str(source)))
        kid = PrivateKey.load(key).kid.hex()
        assert f"the envelope is already signed by key id {kid}" in line
        assert not three.exists()


def test_create_missing_description_is_clean(run: Run, folder: Path) -> None:
    """A missing description file is named with the plain reason, no errno."""
    missing = folder / "nonexist.toml"
    line = assert_one_line_error(
        run("manifest", "create", str(missing), "-o", str(folder / "x.suit"))
    )
    assert line.endswith(f"cannot read {missing}: No such file or directory")


def test_verify_wrong_key_fails(run: Run, folder: Path) -> None:
    """verify with another key exits 1 with one error line."""
    envelope = create(run, folder, "hello")
    other = folder / "other.pem"
    PrivateKey.generate().save(other)
    assert_one_line_error(run("manifest", "verify", "--key", str(other), str(envelope)))


BAD = [
    ('name = "x"\nsequence-number = -1\n', 2, "sequence-number"),
    ('sequence-number = 1\n[[component]]\npayload = "hello.wasm"\n', 1, "name"),
    ('name = "x"\nsequence-number = 1\n', 1, "component"),
    (
        'name = "x"\nsequence-number = 1\n[[component]]\npayload = "nope.bin"\n',
        4,
        "component[0].payload",
    ),
    (
        'name = "x"\nsequence-number = 1\n[[component]]\npayload = "hello.wasm"\n'
        '\n[[component]]\npayload = "hello.wasm"\ncolour = 1\n',
        8,
        "component[1].colour",
    ),
    (
        'name = "x"\nsequence-number = 1\n[[component]]\npayload = "hello.wasm"\n'
        '[encryption]\nkek = "00"\n',
        6,
        "encryption.kek",
    ),
    *(
        (f'name = "x"\nsequence-number = {seq}\n', 2, "sequence-number")
        for seq in ("99999999999999999999999", "9223372036854775808", "true", "1.0")
    ),
    (
        "manifest-component-id = []\nsequence-number = 1\n[[component]]\n"
        'id = ["a"]\npayload = "hello.wasm"\n',
        1,
        "manifest-component-id",
    ),
    (
        'manifest-component-id = [{ hex = "00", colour = 1 }]\n',
        1,
        "manifest-component-id",
    ),
    (
        'name = "x"\nsequence-number = 1\n[[component]]\npayload = "hello.wasm"\n'
        "id = []\n",
        5,
        "component[0].id",
    ),
    *(
        (
            'name = "x"\nsequence-number = 1\n[[component]]\npayload = "hello.wasm"\n'
            f"uri = {uri}\n",
            5,
            "component[0].uri",
        )
        for uri in (
            '"not a uri at all \\n"',
            '"not-a-uri"',
            '"https://tam.example/a b"',
            '"#"',
            '"#tc\\t"',
            '""',
        )
    ),
    (
        'name = "x"\nsequence-number = 1\n[[component]]\npayload = "hello.wasm"\n'
        'uri = "#tc"\n\n[[component]]\nid = ["y"]\npayload = "hello.wasm"\n'
        'uri = "#tc"\n',
        10,
        "component[1].uri",
    ),
    *(
        (
            f'name = "x"\nsequence-number = 1\nreference-uri = {uri}\n'
            '[[component]]\npayload = "hello.wasm"\n',
            3,
            "reference-uri",
        )
        for uri in (
            '"not a uri"',
            '"manifests/x.suit"',
            '"#x"',
            '""',
            '"https://tam.example/a\\tb"',
        )
    ),
]


@pytest.mark.parametrize(("text", "line", "field"), BAD)
def test_description_errors_name_line_and_field(
    run: Run, folder: Path, text: str, line: int, field: str
) -> None:
    """A wrong description fails with one line naming file, line and field."""
    path = folder / "bad.toml"
    path.write_text(text)
    result = run(
        "manifest",
        "create",
        str(path),
        "--signer",
        str(folder / "signer.pem"),
        "-o",
        str(folder / "out.suit"),
    )
    message = assert_one_line_error(result)
    assert f"bad.toml:{line}: {field}:" in message


def _create_bad(run: Run, folder: Path, text: str) -> str:
    path = folder / "bad.toml"
    path.write_text(text)
    result = run(
        "manifest", "create", str(path), "--signer", str(folder / "signer.pem"),
        "-o", str(folder / "out.suit"),
    )  # fmt: skip
    message = assert_one_line_error(result)
    assert not (folder / "out.suit").exists()
    return message


def test_duplicate_integrated_name_names_both_places(run: Run, folder: Path) -> None:
    """Two components under one #name: the error points at the second and
    names the first, even when the second has the name by default."""
    message = _create_bad(
        run,
        folder,
        'name = "x"\nsequence-number = 1\n[[component]]\npayload = "hello.wasm"\n'
        'uri = "#tc1"\n[[component]]\nid = ["y"]\npayload = "hello.wasm"\n',
    )
    assert "bad.toml:6: component[1].uri: '#tc1' (the default)" in message
    assert "component[0].uri at line 5" in message


def test_dependency_sharing_a_component_name_refused(run: Run, folder: Path) -> None:
    """A dependency integrated under a component's #name is refused."""
    _hello(run, folder)
    message = _create_bad(
        run,
        folder,
        'name = "x"\nsequence-number = 1\n[[component]]\npayload = "hello.wasm"\n'
        'uri = "#tc"\n[dependency]\nenvelope = "hello.suit"\nuri = "#tc"\n',
    )
    assert "bad.toml:8: dependency.uri: '#tc' is already used by" in message
    assert "component[0].uri at line 5" in message


KEK = f'[encryption]\nkek = "{"61" * 16}"\n'


def _two(first: str, second: str, *, payload: str = "config.json") -> str:
    """A description of component ``a`` (header on line 3, ``first`` from
    line 6) then component ``b`` (``second`` after its payload line)."""
    return (
        'manifest-component-id = ["m"]\nsequence-number = 1\n'
        f'[[component]]\nid = ["a"]\npayload = "config.json"\n{first}'
        f'[[component]]\nid = ["b"]\npayload = "{payload}"\n{second}'
    )


def _create_ok(run: Run, folder: Path, text: str) -> None:
    (folder / "good.toml").write_text(text)
    create(run, folder, "good")


def test_default_ciphertext_files_collide(run: Run, folder: Path) -> None:
    """Two fetched encrypted payloads from one file would both write
    FILE.enc: refused, naming both components."""
    message = _create_bad(
        run,
        folder,
        _two(
            'uri = "https://tam.example/a.enc"\n',
            'uri = "https://tam.example/b.enc"\n',
        )
        + KEK,
    )
    assert (
        "bad.toml:7: component[1].ciphertext: 'config.json.enc' (the default) "
        "is already the ciphertext file of component[0].ciphertext at line 3 "
        "(its default)"
    ) in message
    assert not (folder / "config.json.enc").exists()


def test_explicit_ciphertext_files_collide(run: Run, folder: Path) -> None:
    """Two spellings of one ciphertext file are one file."""
    message = _create_bad(
        run,
        folder,
        _two(
            'uri = "https://tam.example/a.enc"\nciphertext = "a.enc"\n',
            'uri = "https://tam.example/b.enc"\nciphertext = "./a.enc"\n',
        )
        + KEK,
    )
    assert (
        "bad.toml:12: component[1].ciphertext: './a.enc' is already the "
        "ciphertext file of component[0].ciphertext at line 7:"
    ) in message


def test_own_ciphertext_files_are_written(run: Run, folder: Path) -> None:
    """Each fetched encrypted payload given its own file gets it."""
    _create_ok(
        run,
        folder,
        _two(
            'uri = "https://tam.example/a.enc"\nciphertext = "a.enc"\n',
            'uri = "https://tam.example/b.enc"\nciphertext = "b.enc"\n',
        )
        + KEK,
    )
    a, b = (folder / "a.enc").read_bytes(), (folder / "b.enc").read_bytes()
    assert a and b and a != b


def _one(ciphertext: str, after: str = "", *, top: str = "") -> str:
    """Component ``a``, encrypted and fetched, its ``ciphertext`` on line 7
    (plus the lines of ``top``), then ``after`` (from line 10, inside
    ``[encryption]`` until another table starts)."""
    return (
        f'{top}manifest-component-id = ["m"]\nsequence-number = 1\n'
        '[[component]]\nid = ["a"]\npayload = "config.json"\n'
        f'uri = "https://tam.example/a.enc"\nciphertext = "{ciphertext}"\n'
        f"{KEK}{after}"
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _refused_untouched(run: Run, folder: Path, text: str) -> str:
    """Create from ``text``: refused, and no file written or changed."""
    (folder / "bad.toml").write_text(text)
    before = _files(folder)
    message = _create_bad(run, folder, text)
    assert _files(folder) == before
    return message


@pytest.mark.parametrize(
    ("top", "ciphertext", "after", "line", "what"),
    [
        ("", "config.json", "", 7, "the file of component[0].payload at line 5"),
        (
            "",
            "hello.wasm",
            '[[component]]\nid = ["b"]\npayload = "hello.wasm"\n',
            7,
            "the file of component[1].payload at line 12",
        ),
        (
            "",
            "hello.suit",
            '[dependency]\nenvelope = "hello.suit"\n',
            7,
            "the file of dependency.envelope at line 11",
        ),
        (
            "",
            "device-kek.pub.pem",
            'recipient = "device-kek.pub.pem"\n',
            7,
            "the file of encryption.recipient at line 10",
        ),
        ('signer = "own.pem"\n', "own.pem", "", 8, "the file of signer at line 1"),
        ("", "signer.pem", "", 7, "the signing key (--signer)"),
        ("", "out.suit", "", 7, "the output envelope (-o)"),
        ("", "bad.toml", "", 7, "the description itself"),
    ],
)
def test_ciphertext_overwriting_a_file_refused(
    run: Run, folder: Path, top: str, ciphertext: str, after: str, line: int, what: str
) -> None:
    """A ciphertext file that is an input (any component's payload, a key,
    the dependency, the description) or the output envelope would destroy
    it: refused, naming it, before anything is written."""
    _hello(run, folder)
    message = _refused_untouched(run, folder, _one(ciphertext, after, top=top))
    assert (
        f"bad.toml:{line}: component[0].ciphertext: '{ciphertext}' would "
        f"overwrite {what}: give the ciphertext a file of its own"
    ) in message


@pytest.mark.parametrize("hard", [False, True])
def test_ciphertext_through_a_link_refused(run: Run, folder: Path, hard: bool) -> None:
    """Another name for a payload file (a symbolic or a hard link) is the
    same file."""
    link = folder / "link.json"
    if hard:
        link.hardlink_to(folder / "config.json")
    else:
        link.symlink_to("config.json")
    message = _refused_untouched(run, folder, _one("link.json"))
    assert (
        "component[0].ciphertext: 'link.json' would overwrite the file of "
        "component[0].payload at line 5"
    ) in message


def test_default_ciphertext_overwriting_a_payload_refused(
    run: Run, folder: Path
) -> None:
    """The default PAYLOAD.enc is refused too when another payload is it."""
    (folder / "config.json.enc").write_bytes(b"another payload")
    message = _refused_untouched(
        run,
        folder,
        _two('uri = "https://tam.example/a.enc"\n', "", payload="config.json.enc")
        + KEK,
    )
    assert (
        "bad.toml:3: component[0].ciphertext: 'config.json.enc' (the default) "
        "would overwrite the file of component[1].payload at line 9"
    ) in message


@pytest.mark.parametrize(
    ("uri", "kek", "line", "why"),
    [
        ('uri = "https://tam.example/a"\n', "", 7, "the payload is not encrypted"),
        ('uri = "#tc"\n', KEK, 7, "the payload is integrated ('#tc'), not fetched"),
        ("", KEK, 6, "the payload is integrated ('#tc'), not fetched"),
    ],
)
def test_ciphertext_where_it_does_not_apply_refused(
    run: Run, folder: Path, uri: str, kek: str, line: int, why: str
) -> None:
    """A ciphertext on a payload that is not encrypted, or that rides in
    the envelope, would be ignored: refused, saying when it applies."""
    text = (
        'manifest-component-id = ["m"]\nsequence-number = 1\n[[component]]\n'
        f'id = ["a"]\npayload = "config.json"\n{uri}ciphertext = "a.enc"\n{kek}'
    )
    message = _refused_untouched(run, folder, text)
    assert f"bad.toml:{line}: component[0].ciphertext: {why}" in message
    assert "applies only with" in message


def test_one_uri_two_payloads_refused(run: Run, folder: Path) -> None:
    """A device cannot fetch two different payloads from one URI."""
    uri = 'uri = "https://tam.example/x"\n'
    message = _create_bad(run, folder, _two(uri, uri, payload="hello.wasm"))
    assert (
        "bad.toml:10: component[1].uri: 'https://tam.example/x' is already "
        "fetched by component[0].uri at line 6 and the payloads differ"
    ) in message


def test_one_uri_one_payload_accepted(run: Run, folder: Path) -> None:
    """The same bytes fetched from one URI for two components is fine."""
    uri = 'uri = "https://tam.example/x"\n'
    _create_ok(run, folder, _two(uri, uri))


def test_one_uri_two_encryptions_refused(run: Run, folder: Path) -> None:
    """Encrypting one payload twice gives two ciphertexts: one URI cannot
    serve both."""
    message = _create_bad(
        run,
        folder,
        _two(
            'uri = "https://tam.example/x"\nciphertext = "a.enc"\n',
            'uri = "https://tam.example/x"\nciphertext = "b.enc"\n',
        )
        + KEK,
    )
    assert (
        "bad.toml:11: component[1].uri: 'https://tam.example/x' is already "
        "fetched by component[0].uri at line 6 and each encrypted payload has "
        "its own ciphertext"
    ) in message


def test_dependency_fetched_from_a_component_uri_refused(
    run: Run, folder: Path
) -> None:
    """The dependency and a component fetched from one URI are refused."""
    _hello(run, folder)
    message = _create_bad(
        run,
        folder,
        'name = "x"\nsequence-number = 1\n[[component]]\npayload = "hello.wasm"\n'
        'uri = "https://tam.example/x"\n[dependency]\nenvelope = "hello.suit"\n'
        'uri = "https://tam.example/x"\n',
    )
    assert "bad.toml:8: dependency.uri: 'https://tam.example/x' is already" in message
    assert "component[0].uri at line 5" in message


def test_description_sequence_number_bounds(run: Run, folder: Path) -> None:
    """0 and 2^63-1 are accepted and written as plain integers."""
    for seq in (0, 2**63 - 1):
        edit(
            folder,
            "hello",
            "bounds",
            (r"^sequence-number = 1", f"sequence-number = {seq}"),
        )
        out = create(run, folder, "bounds")
        assert SuitEnvelope.decode(out.read_bytes()).manifest.sequence_number == seq


def test_description_with_flags_refused(run: Run, folder: Path) -> None:
    """Flags a DESCRIPTION file makes meaningless are refused, not ignored."""
    path = folder / "any.toml"
    path.write_text('name = "x"\n')
    result = run(
        "manifest", "create", str(path), "--name", "hello", "--sequence", "3",
        "--signer", str(folder / "signer.pem"), "-o", str(folder / "out.suit"),
    )  # fmt: skip
    message = assert_one_line_error(result)
    assert "--name, --sequence: not used with a DESCRIPTION file" in message


def test_flag_form_still_works(run: Run, folder: Path) -> None:
    """The --name/--payload/--sequence/--signer form (used by the demo) works."""
    out = folder / "flag.suit"
    result = run(
        "manifest",
        "create",
        "--name",
        "data",
        "--payload",
        str(folder / "config.json"),
        "--any-payload",
        "--sequence",
        "2",
        "--signer",
        str(folder / "signer.pem"),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    assert SuitEnvelope.decode(out.read_bytes()).manifest.sequence_number == 2


def test_tam_device_reports(run: Run, tmp_path: Path) -> None:
    """teep tam device reports decodes stored reports: result, failing record."""
    from teep import cbor
    from teep.suit.envelope import SuitDigest
    from teep.suit.report import SuitRecord, SuitReportFailure, build_report
    from teep.tam.home import TAMHome

    home = tmp_path / "tam"
    assert run("tam", "init", "--dir", str(home)).exit_code == 0
    device = PrivateKey.generate().public
    image = cbor.dumps([-16, b"\xab" * 32])
    record = SuitRecord((), 20, 67, 0, {3: image})
    failure = build_report(
        manifest_digest=SuitDigest.of(b"m"),
        manifest_uri="https://tam.example/x.suit",
        failure=SuitReportFailure(21, record, 10),
        records=[record],
    )
    store = TAMHome.open(home).open_store()
    try:
        store.upsert_device(device.kid, cose_key=cbor.dumps(device.cose_key()), now=1.0)
        store.record_suit_report(device.kid, report=failure, ok=False, now=2.0)
        store.record_suit_report(device.kid, report=b"\xff", ok=True, now=3.0)
    finally:
        store.close()
    kid = device.kid.hex()[:16]
    result = run("tam", "device", "reports", "--dir", str(home), kid)
    assert result.exit_code == 0, result.stderr
    assert "condition-failed at install offset 67" in result.stdout
    assert "(component 0, the manifest itself)" in result.stdout
    assert f"'image-digest': 'sha-256:{'ab' * 32}'" in result.stdout
    assert f"digest sha-256:{SuitDigest.of(b'm').value.hex()}" in result.stdout
    assert "undecodable" in result.stdout
    as_json = run("tam", "device", "reports", "--dir", str(home), "--json", kid)
    assert '"reason": "condition-failed"' in as_json.stdout


def test_description_payload_checked_as_component(run: Run, folder: Path) -> None:
    """A Trusted Component payload that is not a WebAssembly module is refused
    with the line of its payload field; WebAssembly text is compiled."""
    (folder / "junk.bin").write_bytes(b"not a module")
    bad = folder / "bad.toml"
    bad.write_text(
        'name = "x"\nsequence-number = 1\n[[component]]\npayload = "junk.bin"\n'
    )
    result = run(
        "manifest",
        "create",
        str(bad),
        "--signer",
        str(folder / "signer.pem"),
        "-o",
        str(folder / "x.suit"),
    )
    assert_one_line_error(result)
    assert "bad.toml:4" in result.stderr
    (folder / "hello.wat").write_text(demo_component_source())
    good = folder / "wat.toml"
    good.write_text(
        'name = "w"\nsequence-number = 1\n[[component]]\npayload = "hello.wat"\n'
    )
    out = folder / "w.suit"
    result = run(
        "manifest",
        "create",
        str(good),
        "--signer",
        str(folder / "signer.pem"),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    env = SuitEnvelope.decode(out.read_bytes())
    assert demo_component_wasm() in env.integrated.values()


# What the tools produce matches the SUIT CDDL (manifest + trust-domains +
# firmware-encryption), checked with cddl-verifier as the vectors are.


@pytest.fixture(scope="module")
def envelope_schema() -> Any:
    import cddl_verifier

    from suit.vectors import ENVELOPE_CDDL, cddl

    return cddl_verifier.Validator(cddl(*ENVELOPE_CDDL))


def assert_valid_envelope(schema: Any, data: bytes) -> None:
    """``data`` is a SUIT_Envelope by the CDDL, and so is every integrated
    dependency it carries."""
    from teep import cbor

    value = cbor.loads(data, tags=frozenset({107}))
    if isinstance(value, cbor.CBORTag):
        assert value.tag == 107
        value = value.value
    result = schema.validate(value, "SUIT_Envelope")
    assert result.valid, result.diagnostics
    for key, member in SuitEnvelope.decode(data).integrated.items():
        try:
            SuitEnvelope.decode(member)
        except TeepError:
            continue  # a payload, not a dependency
        assert_valid_envelope(schema, member)
        assert key.startswith("#")


def edit(folder: Path, name: str, new: str, *changes: tuple[str, str]) -> None:
    """Write ``new.toml``: ``name.toml`` with each (pattern, replacement)."""
    text = (folder / f"{name}.toml").read_text()
    for pattern, replacement in changes:
        text, count = re.subn(pattern, replacement, text, count=1, flags=re.M)
        assert count == 1, pattern
    (folder / f"{new}.toml").write_text(text)


def _hello(run: Run, folder: Path) -> Path:
    return create(run, folder, "hello")


def _config(run: Run, folder: Path) -> Path:
    """Encrypted (ECDH-ES, A128CTR), with an integrated dependency."""
    _hello(run, folder)
    return create(run, folder, "config")


def _severed(run: Run, folder: Path) -> Path:
    out = folder / "severed.suit"
    key = str(folder / "signer.pem")
    source = str(_config(run, folder))
    result = run("manifest", "sever", "--key", key, "-o", str(out), source)
    assert result.exit_code == 0, result.stderr
    assert SuitEnvelope.decode(out.read_bytes()).manifest.severed
    return out


def _signed_twice(run: Run, folder: Path) -> Path:
    other = folder / "other.pem"
    PrivateKey.generate().save(other)
    out = folder / "two.suit"
    source = str(_hello(run, folder))
    result = run(
        "manifest", "sign", "--add", "--key", str(other), "-o", str(out), source
    )
    assert result.exit_code == 0, result.stderr
    return out


def _by_uri(run: Run, folder: Path) -> Path:
    """The payload is fetched from an https URI; the envelope is tagged."""
    edit(
        folder,
        "hello",
        "remote",
        (r'^uri = "#tc"', 'uri = "https://tam.example/hello.wasm"'),
        (r"^sequence-number = 1", "sequence-number = 1\ntagged = true"),
    )
    out = create(run, folder, "remote")
    assert not SuitEnvelope.decode(out.read_bytes()).integrated
    return out


def _encrypted_remote(run: Run, folder: Path) -> Path:
    """AES-KW and ECDH-ES recipients, AES-GCM, the ciphertext and the
    dependency both fetched by URI."""
    _hello(run, folder)
    edit(
        folder,
        "config",
        "remote-config",
        (r'^uri = "#config"', 'uri = "https://tam.example/config.json.enc"'),
        (r'^algorithm = "A128CTR"', f'algorithm = "A128GCM"\nkek = "{"61" * 16}"'),
        (r'^uri = "#hello.suit"', 'uri = "https://tam.example/hello.suit"'),
    )
    out = create(run, folder, "remote-config")
    assert not SuitEnvelope.decode(out.read_bytes()).integrated
    return out


def _flags(run: Run, folder: Path) -> Path:
    out = folder / "flag.suit"
    result = run(
        "manifest", "create", "--name", "data", "--payload",
        str(folder / "config.json"), "--any-payload", "--sequence", "2",
        "--signer", str(folder / "signer.pem"), "-o", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return out


PRODUCED = {
    "hello": _hello,
    "config": _config,
    "severed": _severed,
    "sign-add": _signed_twice,
    "uri-fetch": _by_uri,
    "encrypted-uri-dependency": _encrypted_remote,
    "flag-form": _flags,
}


def test_every_documented_example_is_checked() -> None:
    """Each description in docs/examples has a CDDL case."""
    assert {p.stem for p in EXAMPLES.glob("*.toml")} <= set(PRODUCED)


@pytest.mark.parametrize("case", sorted(PRODUCED))
def test_tool_output_matches_the_cddl(
    run: Run, folder: Path, envelope_schema: Any, case: str
) -> None:
    """What ``teep manifest create`` / ``sever`` / ``sign --add`` write is a
    SUIT_Envelope by the drafts' CDDL."""
    assert_valid_envelope(envelope_schema, PRODUCED[case](run, folder).read_bytes())


def test_cddl_check_sees_a_broken_command(
    run: Run, folder: Path, envelope_schema: Any
) -> None:
    """The CDDL check looks inside the bstr-wrapped manifest and sequences:
    an unknown command label in install fails it."""
    from teep import cbor
    from teep.suit.builder import envelope_of

    env = SuitEnvelope.decode(_hello(run, folder).read_bytes())
    manifest = cbor.loads(env.manifest.raw)
    install = cbor.loads(manifest[20])
    manifest[20] = cbor.dumps([*install, 999, 15])
    signer = PrivateKey.load(folder / "signer.pem")
    bad = envelope_of(cbor.det_dumps(manifest), signer, env.integrated)
    with pytest.raises(AssertionError):
        assert_valid_envelope(envelope_schema, bad)


# show and verify read hex as teep decode does.

SUIT_VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "suit"
EXAMPLE_KEY = SUIT_VECTORS / "keys" / "suit-example-p256-public.pem"


def test_show_reads_a_hex_vector(run: Run) -> None:
    """show detects a hex file (the drafts' vectors) and decodes it."""
    result = run("manifest", "show", str(SUIT_VECTORS / "teep-suit_uri.hex"))
    assert result.exit_code == 0, result.stderr
    assert "/ SUIT envelope, 387 bytes /" in result.stdout
    assert "sequence number  3" in result.stdout


def test_verify_reads_a_hex_vector(run: Run) -> None:
    """verify detects a hex file and checks its signature."""
    vector = str(SUIT_VECTORS / "manifest-ex2-severed.hex")
    result = run("manifest", "verify", "--key", str(EXAMPLE_KEY), vector)
    assert result.exit_code == 0, result.stderr
    assert "verified: sequence 2" in result.stdout
    other = SUIT_VECTORS / "keys" / "fwenc-dependent-p256-public.pem"
    assert_one_line_error(run("manifest", "verify", "--key", str(other), vector))


def test_show_and_verify_hex_from_stdin(run: Run, folder: Path) -> None:
    """--hex reads hex text with an 0x prefix and line breaks, from stdin;
    the raw envelope still reads as before."""
    envelope = create(run, folder, "hello")
    raw = envelope.read_bytes()
    text = "0x" + "\n".join(raw.hex()[i : i + 64] for i in range(0, len(raw) * 2, 64))
    shown = run("manifest", "show", "--hex", "-", input=text)
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout == run("manifest", "show", str(envelope)).stdout
    key = str(folder / "signer.pem")
    checked = run("manifest", "verify", "--hex", "--key", key, "-", input=text)
    assert checked.exit_code == 0, checked.stderr
    assert run("manifest", "verify", "--key", key, str(envelope)).exit_code == 0


def test_hex_flag_refuses_binary(run: Run, folder: Path) -> None:
    """--hex on a raw envelope fails with one line, as teep decode does."""
    envelope = str(create(run, folder, "hello"))
    message = assert_one_line_error(run("manifest", "show", "--hex", envelope))
    assert "not valid hex" in message
    key = str(folder / "signer.pem")
    assert_one_line_error(run("manifest", "verify", "--hex", "--key", key, envelope))


def test_verify_wrong_key_names_both_kids(run: Run, folder: Path) -> None:
    """verify with a key that did not sign names the signer's kid and the
    given key's kid, 16 hex digits each."""
    envelope = create(run, folder, "hello")
    other = folder / "other.pem"
    PrivateKey.generate().save(other)
    line = assert_one_line_error(
        run("manifest", "verify", "--key", str(other), str(envelope))
    )
    signer = PrivateKey.load(folder / "signer.pem").kid.hex()[:16]
    given = PrivateKey.load(other).kid.hex()[:16]
    assert line == (
        f"teep: error: no signature verifies with --key (kid {given}..):"
        f" the envelope is signed by kid {signer}.."
    )


def test_sever_names_the_dropped_signers(run: Run, folder: Path) -> None:
    """sever on an envelope with two signatures says which signers the
    output, signed by --key alone, no longer carries."""
    two = _signed_twice(run, folder)
    key = folder / "signer.pem"
    out = folder / "severed.suit"
    result = run("manifest", "sever", "--key", str(key), "-o", str(out), str(two))
    assert result.exit_code == 0, result.stderr
    kept = PrivateKey.load(key).kid.hex()[:16]
    dropped = PrivateKey.load(folder / "other.pem").kid.hex()[:16]
    assert (
        f"note: dropped the signatures by kid {dropped}..; the output is signed by"
        f" kid {kept}.. alone" in result.stdout
    )
    one = run(
        "manifest", "sever", "--key", str(key), "-o", str(out), str(_hello(run, folder))
    )
    assert one.exit_code == 0, one.stderr
    assert "note:" not in one.stdout
