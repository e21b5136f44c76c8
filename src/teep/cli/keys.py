"""``teep keys``: make signing keys and show them as teep sees them.

Every key is named by its RFC 9679 thumbprint, the ``kid`` teep puts on
what it signs; these commands print it so it can be handed to the other
side (a TAM's trust anchors, a device's).

A key file is PEM, DER or a COSE_Key (raw CBOR, or hex text as ``teep
decode`` reads it).  An X.509 certificate stands for its public key; teep
does not validate the certificate or its chain.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import click

from teep import cbor, diag
from teep.cli.common import CLIError, echo, fail, parse_input, write_output
from teep.errors import KeyLoadError
from teep.keys import KeyKind, PrivateKey, PublicKey, read_key_file

__all__ = ["keys", "public_path"]

COSE_KEY_D = -4
"""The COSE_Key label of the private key (RFC 9053 ``d``, EC2 and OKP alike)."""


@click.group()
def keys() -> None:
    """Generate and inspect ESP256 (P-256) and Ed25519 signing keys."""


def public_path(private: Path) -> Path:
    """Where the public half of ``private`` goes: ``NAME.pem`` -> ``NAME.pub.pem``."""
    stem = (
        private.name[: -len(".pem")] if private.name.endswith(".pem") else private.name
    )
    return private.with_name(f"{stem}.pub.pem")


@keys.command()
@click.option(
    "--type",
    "kind",
    type=click.Choice([kind.value for kind in KeyKind]),
    default=KeyKind.P256.value,
    show_default=True,
    help="Key type: p256 signs with ESP256, ed25519 with Ed25519.",
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def generate(kind: str, force: bool, out: Path) -> None:
    """Write a new private key to OUT (mode 0600) and its public key beside it.

    The public key goes to OUT with ``.pem`` replaced by ``.pub.pem``; the
    key's thumbprint (its kid) is printed in hex.
    """
    pub = public_path(out)
    # Like every other file teep writes: no folder is made for it.
    folder = out.parent
    if not folder.is_dir():
        missing = errno.ENOTDIR if folder.exists() else errno.ENOENT
        fail(f"cannot write {out}: {os.strerror(missing)}")
    for target in (out, pub):
        if target.exists() and not force:
            fail(f"{target} exists (use --force to overwrite)")
    key = PrivateKey.generate(KeyKind(kind))
    try:
        key.save(out)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    write_output(pub, key.public.to_pem())
    echo(key.kid.hex())


def load_any(path: str) -> tuple[PublicKey, bool]:
    """Load a key file: (its public key, whether the file held the private key).

    A COSE_Key may be written as hex text, with ``#`` comments.

    :raises KeyLoadError: if the file holds no usable key.
    """
    data = read_key_file(path)
    try:
        data = parse_input(data)
    except CLIError as exc:
        raise KeyLoadError(f"key file {path}: {exc}") from None
    try:
        return PrivateKey.from_bytes(data).public, True
    except KeyLoadError:
        public = PublicKey.from_bytes(data)
    return public, _cose_key_has_private_part(data)


def _cose_key_has_private_part(data: bytes) -> bool:
    """Whether ``data`` is a COSE_Key map carrying ``d`` (the private key)."""
    try:
        value = cbor.loads(data)
    except cbor.CBORDecodeError:
        return False
    return isinstance(value, dict) and COSE_KEY_D in value


@keys.command()
@click.argument("keyfile", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(keyfile: str, as_json: bool) -> None:
    """Show a key's type, thumbprint (kid), COSE_Key and public PEM.

    KEYFILE is PEM, DER, a COSE_Key (raw or hex) or an X.509 certificate,
    whose public key is shown; the certificate is not validated.
    """
    public, private = load_any(keyfile)
    cose_key = public.cose_key()
    if as_json:
        info = {
            "file": keyfile,
            "private": private,
            "type": public.kind.value,
            "algorithms": sorted(alg.name for alg in public.kind.algs),
            "thumbprint": public.thumbprint.hex(),
            "cose_key": diag.to_json(cose_key, diag.Kind.COSE_KEY),
            "cose_key_cbor": cbor.det_dumps(cose_key).hex(),
            "pem": public.to_pem().decode(),
        }
        echo(json.dumps(info, indent=2))
        return
    # Plain lines, not a table: a thumbprint must survive copy and paste.
    for name, value in (
        ("file", keyfile),
        ("holds", "private key" if private else "public key"),
        ("type", public.kind.value),
        ("algorithm", public.kind.default_alg.name),
        ("thumbprint (kid)", public.thumbprint.hex()),
    ):
        echo(f"{name + ':':<18}{value}")
    echo()
    echo(diag.annotate(cose_key, diag.Kind.COSE_KEY))
    echo()
    echo(public.to_pem().decode().rstrip())


@keys.command(name="export-cose")
@click.argument("keyfile", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False, allow_dash=True))
def export_cose(keyfile: str, out: str) -> None:
    """Write KEYFILE's public key to OUT as a COSE_Key (deterministic CBOR).

    OUT may be ``-`` for standard output.
    """
    public, _private = load_any(keyfile)
    write_output(out, cbor.det_dumps(public.cose_key()))
