"""``teep manifest``: make, read, sign, sever and check signed SUIT envelopes."""

from __future__ import annotations

from pathlib import Path

import click

from teep import cbor, components, cose, diag
from teep.cli.common import (
    SHOWN_BYTES,
    console,
    echo,
    fail,
    full_option,
    parse_input,
    read_input,
    write_output,
)
from teep.errors import TeepError
from teep.keys import PrivateKey, PublicKey
from teep.suit.builder import build_envelope, envelope_of, sever_envelope, sign_envelope
from teep.suit.envelope import SuitEnvelope, open_envelope
from teep.suit.registry import SuitManifestKey
from teep.suit.store import ComponentId

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.group("manifest")
def manifest() -> None:
    """Make, show, sign, sever and verify SUIT manifests."""


@manifest.command("create")
@click.argument("description", required=False, type=_FILE)
@click.option("--name", help="Component name (maps to its component id).")
@click.option(
    "--payload",
    type=_FILE,
    help="The component (a WebAssembly module, or .wat source compiled here).",
)
@click.option(
    "--sequence",
    type=click.IntRange(0, 2**63 - 1),
    help="Sequence number (must grow with every version).",
)
@click.option(
    "--any-payload",
    is_flag=True,
    help="Accept a payload that is not a WebAssembly component (e.g. data).",
)
@click.option("--signer", type=_FILE, help="The signer's private key.")
@click.option("-o", "--output", required=True, help="Where to write the envelope.")
def create(
    description: Path | None,
    name: str | None,
    payload: Path | None,
    sequence: int | None,
    any_payload: bool,
    signer: Path | None,
    output: str,
) -> None:
    """Build a signed envelope, from a DESCRIPTION file (TOML, see
    docs/manifests.md) or from --name, --payload and --sequence."""
    if description is not None:
        given = [o for o, v in (("--name", name), ("--payload", payload)) if v]
        given += ["--sequence"] if sequence is not None else []
        given += ["--any-payload"] if any_payload else []
        if given:
            fail(f"{', '.join(given)}: not used with a DESCRIPTION file (it says all)")
        _create_from(description, signer, output)
        return
    if name is None or payload is None or sequence is None or signer is None:
        fail("give a DESCRIPTION file, or --name, --payload, --sequence and --signer")
    data = payload.read_bytes()
    if payload.suffix == ".wat":
        from teep.device.wasm import compile_wat

        data = compile_wat(data.decode())
    if not any_payload:
        from teep.device.wasm import validate_module

        # A Trusted Component must run on the device: check it here, not
        # after every device has installed it.
        validate_module(data)
    envelope = build_envelope(
        manifest_component_id=components.manifest_id(name),
        component_id=components.component_id(name),
        payload=data,
        sequence_number=sequence,
        signer=PrivateKey.load(signer),
    )
    write_output(output, envelope)
    console.print(
        f"envelope for {name} (sequence {sequence}, {len(envelope)} bytes) -> {output}"
    )


def _component_payload(cid: ComponentId, name: str, data: bytes) -> bytes:
    """WebAssembly text is compiled, and a Trusted Component (an id ending in
    'ta') must be a module the device can run."""
    from teep.device.wasm import ComponentError, compile_wat, validate_module

    if name.endswith(".wat"):
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise ComponentError("a .wat file must be UTF-8 text") from None
        data = compile_wat(text)
    if cid and cid[-1] == components.TA_SUFFIX:
        validate_module(data)
    return data


def _create_from(path: Path, signer: Path | None, output: str) -> None:
    from teep.suit.description import load_description

    others: dict[str, str | Path] = {"the output envelope (-o)": output}
    if signer is not None:
        others["the signing key (--signer)"] = signer
    desc = load_description(path, payload_filter=_component_payload, others=others)
    key_file = signer or desc.signer
    if key_file is None:
        fail(f"{path}: no signer: give --signer or a 'signer' field")
    envelope = envelope_of(
        desc.manifest(), PrivateKey.load(key_file), desc.integrated, desc.tagged
    )
    write_output(output, envelope)
    for target, data in desc.detached.items():
        write_output(target, data)
        echo(f"ciphertext to publish -> {target}")
    for cid in desc.encrypted:
        echo(f"encrypted payload for {cid}")
    console.print(
        f"envelope {components.display(desc.manifest_component_id)} "
        f"(sequence {desc.sequence_number}, {len(envelope)} bytes) -> {output}"
    )


_HEX_OPTION = click.option(
    "--hex", "force_hex", is_flag=True, help="The input is hex text (else detected)."
)


def _read_envelope(file: str, force_hex: bool) -> bytes:
    """The envelope in ``file``: raw CBOR, or hex text as ``teep decode``
    reads it (detected, or forced with --hex)."""
    return parse_input(read_input(file), force_hex=force_hex)


@manifest.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
@_HEX_OPTION
@full_option
@click.argument("file")
def show(as_json: bool, force_hex: bool, full: bool, file: str) -> None:
    """Print an envelope (raw CBOR or hex) in annotated diagnostic notation,
    after a summary: ids, sequence number, digest, signers' key ids, severed
    members."""
    data = _read_envelope(file, force_hex)
    env = SuitEnvelope.decode(data)
    value = cbor.loads(data, tags=frozenset({107}))
    if as_json:
        import json

        echo(json.dumps(diag.to_json(value, diag.Kind.SUIT_ENVELOPE), indent=2))
        return
    for line in _summary(env):
        echo(f"/ {line} /")
    limit = None if full else SHOWN_BYTES
    echo(diag.annotate(value, diag.Kind.SUIT_ENVELOPE, max_bytes=limit))


def _summary(env: SuitEnvelope) -> list[str]:
    m = env.manifest
    mid = m.manifest_component_id
    lines = [
        f"SUIT envelope, {len(env.raw)} bytes{', tagged' if env.tagged else ''}",
        f"manifest id      {components.display(mid) if mid else '-'}",
        f"sequence number  {m.sequence_number}",
        f"manifest digest  {_alg(env.digest.algorithm)} {env.digest.value.hex()}",
    ]
    lines += [f"signer key id    {kid}" for kid in _signer_kids(env)]
    for cid in m.common.components:
        lines.append(f"component        {components.display(cid)}")
    for key, digest in m.severed.items():
        where = "in envelope" if key in env.severable else "removed"
        lines.append(
            f"severed          {SuitManifestKey(key).name} ({where}), "
            f"digest {digest.value.hex()[:16]}.."
        )
    for uri, payload in env.integrated.items():
        lines.append(f"integrated       {uri}: {len(payload)} bytes")
    return lines


def _alg(alg: int) -> str:
    return {-16: "sha-256", -43: "sha-384", -44: "sha-512"}.get(alg, str(alg))


def _signer_kids(env: SuitEnvelope) -> list[str]:
    kids = []
    for block in env.authentication_blocks:
        try:
            message = cose.parse(block)
        except TeepError:  # a block teep cannot parse is shown as such
            kids.append("(unreadable block)")
            continue
        for signature in message.signatures:
            kid = signature.kid
            kids.append(kid.hex() if kid else "(no kid)")
    return kids


def _short_kids(kids: list[str]) -> str:
    """Signers by key id (its first 16 hex digits), joined by commas."""
    plain = {
        "(no kid)": "a key with no kid",
        "(unreadable block)": "an unreadable block",
    }
    shown = [plain.get(kid, f"kid {kid[:16]}..") for kid in kids]
    return ", ".join(shown) if shown else "no one"


@manifest.command("verify")
@click.option(
    "--key",
    "keyfile",
    required=True,
    multiple=True,
    type=_FILE,
    help="A signer's public (or private) key; repeat for several.",
)
@_HEX_OPTION
@click.argument("file")
def verify(keyfile: tuple[Path, ...], force_hex: bool, file: str) -> None:
    """Check an envelope's (raw CBOR or hex) signature and manifest digest;
    exit 1 if wrong."""
    from teep.suit.errors import SuitAuthError

    keys = [PublicKey.load(k) for k in keyfile]
    data = _read_envelope(file, force_hex)
    try:
        env, signer = open_envelope(data, keys)
    except SuitAuthError as exc:
        if not any(t in str(exc) for t in ("does not verify", "no trusted key")):
            raise
        kids = _signer_kids(SuitEnvelope.decode(data))
        given = _short_kids([key.kid.hex() for key in keys])
        fail(
            f"no signature verifies with --key ({given}): the envelope is signed"
            f" by {_short_kids(kids)}"
        )
    console.print(
        f"verified: sequence {env.manifest.sequence_number}, "
        f"signed by {signer.kid.hex()[:16]}.."
    )


@manifest.command("sign")
@click.option("--key", "keyfile", required=True, type=_FILE, help="Private key.")
@click.option(
    "--add", is_flag=True, help="Keep the current signatures and add this one."
)
@click.option("-o", "--output", required=True, help="Where to write the envelope.")
@click.argument("file")
def sign(keyfile: Path, add: bool, output: str, file: str) -> None:
    """Sign an envelope (or a bare manifest) again, or add a signature."""
    envelope = sign_envelope(
        read_input(file), PrivateKey.load(keyfile), keep_existing=add
    )
    write_output(output, envelope)
    console.print(f"signed envelope ({len(envelope)} bytes) -> {output}")


@manifest.command("sever")
@click.option(
    "--key", "keyfile", required=True, type=_FILE, help="Key to sign again with."
)
@click.option("-o", "--output", required=True, help="Where to write the envelope.")
@click.argument("file")
def sever(keyfile: Path, output: str, file: str) -> None:
    """Move text and severable sequences out of the manifest, leaving their
    digests; the envelope carries them until a distributor removes them.
    The manifest changes, so it is signed again with --key."""
    data, key = read_input(file), PrivateKey.load(keyfile)
    envelope, moved = sever_envelope(data, key)
    if not moved:
        fail("nothing to sever (no severable member large enough)")
    write_output(output, envelope)
    severed = ", ".join(SuitManifestKey(k).name for k in moved)
    console.print(f"severed {severed} ({len(envelope)} bytes) -> {output}")
    # The manifest changed, so every old signature is void; with several, say
    # which signers the output no longer carries.
    kids = _signer_kids(SuitEnvelope.decode(data))
    dropped = [kid for kid in kids if kid != key.kid.hex()]
    if len(kids) > 1 and dropped:
        console.print(
            f"note: dropped the signatures by {_short_kids(dropped)}; the output"
            f" is signed by kid {key.kid.hex()[:16]}.. alone (add them back with"
            " sign --add)"
        )


def print_reports(reports: list[tuple[float, bool, bytes]], as_json: bool) -> None:
    """Print stored SUIT Reports (when, ok, bytes as received), decoded.

    Used by ``teep tam device reports``.  A report that does not decode is
    listed with the reason, never dropped.
    """
    import json
    import time

    from teep.suit.report import decode_report

    entries: list[dict[str, object]] = []
    for at, ok, data in reports:
        entry: dict[str, object] = {"at": at, "ok": ok, "size": len(data)}
        try:
            entry["report"] = decode_report(_report_payload(data)).to_json()
        except TeepError as exc:
            entry["error"] = str(exc)
        entries.append(entry)
    if as_json:
        echo(json.dumps(entries, indent=2))
        return
    for entry in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(entry["at"])))  # type: ignore[arg-type]
        echo(
            f"{when}  {'success' if entry['ok'] else 'FAILURE'}  ({entry['size']} bytes)"
        )
        report = entry.get("report")
        if not isinstance(report, dict):
            echo(f"  undecodable: {entry.get('error')}")
            continue
        for line in _report_lines(report):
            echo(f"  {line}")


def _report_payload(data: bytes) -> bytes:
    # suit-report 4: a report may come inside a COSE_Sign1; the TAM has
    # checked the TEEP message around it, so only the payload is shown.
    if cbor.peek_tag(data) == cose.COSETag.COSE_Sign1:
        payload = cose.parse(data).payload
        if payload is not None:
            return payload
    return data


def _report_lines(report: dict[str, object]) -> list[str]:
    digest = report["manifest-digest"]
    lines = [
        f"manifest {report['manifest-uri'] or '(no reference-uri)'} digest {digest}",
    ]
    if report.get("nonce"):
        lines.append(f"nonce    {report['nonce']}")
    result = report["result"]
    if isinstance(result, dict):
        record = result["record"]
        path = record["manifest-id"]
        # suit-record-manifest-id is the path through dependencies, not an id.
        where = (
            "the manifest itself"
            if not path
            else "dependency " + ".".join(str(i) for i in path)
        )
        lines.append(
            f"result   {result['reason']} at {record['section']} offset "
            f"{record['offset']} (component {record['component-index']}, "
            f"{where})"
        )
        if record["properties"]:
            lines.append(f"measured {record['properties']}")
    else:
        lines.append(f"result   {result}")
    records = report.get("records")
    for item in records if isinstance(records, list) else []:
        lines.append(f"record   {item}")
    return lines
