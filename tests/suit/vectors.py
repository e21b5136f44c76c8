"""Locate the SUIT test vectors kept next to the tests."""

from __future__ import annotations

from pathlib import Path

from teep.keys import PrivateKey, PublicKey

ROOT = Path(__file__).resolve().parent.parent / "vectors" / "suit"


def hexfile(name: str) -> bytes:
    """The bytes of ``ROOT/name.hex``."""
    return bytes.fromhex((ROOT / f"{name}.hex").read_text().strip())


def names(prefix: str = "") -> list[str]:
    """Vector names (file stems) starting with ``prefix``."""
    return sorted(p.stem for p in ROOT.glob(f"{prefix}*.hex"))


def example_key() -> PublicKey:
    """The P-256 example key of the SUIT drafts."""
    return PublicKey.load(ROOT / "keys" / "suit-example-p256-public.pem")


def dependent_key() -> PublicKey:
    """The firmware-encryption dependency example's outer signer."""
    return PublicKey.load(ROOT / "keys" / "fwenc-dependent-p256-public.pem")


def cddl(*files: str) -> str:
    """The concatenated CDDL files, with the stand-ins the drafts leave open."""
    text = "".join((ROOT / "cddl" / f).read_text() + "\n" for f in files)
    return text + "start = SUIT_Envelope\nCOSE_Messages = any\n"


ENVELOPE_CDDL = (
    "manifest.cddl",
    "trust-domains.cddl",
    "firmware-encryption.cddl",
    "cose-stub-NOT-RFC9052.cddl",
)
REPORT_CDDL = (*ENVELOPE_CDDL, "report.cddl", "mti.cddl")


LIBCSUIT = ROOT / "libcsuit"
"""libcsuit's test files (see the README next to the vectors)."""
KEK = b"a" * 16
"""The firmware-encryption drafts' AES-KW KEK (kid 'kid-1')."""


def encryption_hex(name: str) -> bytes:
    """The bytes of ``ROOT/encryption/name.hex``."""
    return bytes.fromhex((ROOT / "encryption" / f"{name}.hex").read_text().strip())


def device_kek() -> PrivateKey:
    """The ECDH-ES recipient key of the firmware-encryption and TEEP drafts."""
    return PrivateKey.load(ROOT / "keys" / "fwenc-kid2-p256-private.pem")


def libcsuit_key() -> PublicKey:
    """libcsuit's trust anchor (signs its .suit files)."""
    return PublicKey.load(LIBCSUIT / "key" / "trust_anchor_secp256r1_pub.pem")
