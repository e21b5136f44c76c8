"""``teep manifest``: make, read and check signed SUIT envelopes."""

from __future__ import annotations

from pathlib import Path

import click

from teep import components
from teep.cli.common import console, write_output
from teep.keys import PrivateKey, PublicKey
from teep.suit.builder import build_envelope
from teep.suit.envelope import SuitEnvelope, open_envelope


@click.group("manifest")
def manifest() -> None:
    """Make, show and verify SUIT manifests for Trusted Components."""


@manifest.command("create")
@click.option(
    "--name", required=True, help="Component name (maps to its component id)."
)
@click.option(
    "--payload",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The component (a WebAssembly module, or .wat source compiled here).",
)
@click.option(
    "--sequence",
    type=click.IntRange(0, 2**63 - 1),
    required=True,
    help="Sequence number (must grow with every version).",
)
@click.option(
    "--any-payload",
    is_flag=True,
    help="Accept a payload that is not a WebAssembly component (e.g. data).",
)
@click.option(
    "--signer",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Trusted Component signer's private key.",
)
@click.option("-o", "--output", required=True, help="Where to write the envelope.")
def create(
    name: str,
    payload: Path,
    sequence: int,
    any_payload: bool,
    signer: Path,
    output: str,
) -> None:
    """Build a signed envelope that installs PAYLOAD as component NAME."""
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


@manifest.command("show")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def show(file: Path) -> None:
    """Describe an envelope: ids, sequence number, digest, payloads."""
    env = SuitEnvelope.decode(file.read_bytes())
    m = env.manifest
    mid = (
        components.display(m.manifest_component_id) if m.manifest_component_id else "-"
    )
    console.print(
        f"SUIT envelope, {len(env.raw)} bytes{' (tagged)' if env.tagged else ''}"
    )
    console.print(f"  manifest id      {mid}")
    console.print(f"  sequence number  {m.sequence_number}")
    console.print(f"  manifest digest  sha-256 {env.digest.value.hex()}")
    for cid in m.common.components:
        console.print(f"  component        {components.display(cid)}")
    for uri, data in env.integrated.items():
        console.print(f"  integrated       {uri}: {len(data)} bytes")


@manifest.command("verify")
@click.option(
    "--key",
    "keyfile",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The signer's public (or private) key.",
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def verify(keyfile: Path, file: Path) -> None:
    """Check an envelope's signature and manifest digest; exit 1 if wrong."""
    env, signer = open_envelope(file.read_bytes(), [PublicKey.load(keyfile)])
    console.print(
        f"verified: sequence {env.manifest.sequence_number}, signed by {signer.kid.hex()[:16]}.."
    )
