"""Loading the TEEP Protocol test vectors of ``tests/vectors/teep``."""

from __future__ import annotations

from pathlib import Path

from teep.keys import PublicKey

ROOT = Path(__file__).resolve().parent.parent / "vectors" / "teep"
FINAL_DIR = ROOT / "final"
PRE_RFC_DIR = ROOT / "pre-rfc"
LIBTEEP_DIR = ROOT / "interop-libteep"
LEGACY_04_DIR = ROOT / "legacy-draft-04"
CDDL_DIR = ROOT / "cddl"

# The five Appendix D messages, named as in final/ and pre-rfc/.
MESSAGES = ("query_request", "query_response", "update", "success", "error")


def read_hex(path: Path) -> bytes:
    """The bytes of a ``.hex`` vector (one line of hex, whitespace ignored)."""
    return bytes.fromhex("".join(path.read_text().split()))


def final(name: str) -> bytes:
    """An Appendix D message in the final (draft -26) numbering."""
    return read_hex(FINAL_DIR / f"{name}.hex")


def pre_rfc(name: str) -> bytes:
    """An Appendix D message in the pre-RFC (drafts -05 to -25) numbering."""
    return read_hex(PRE_RFC_DIR / f"{name}.hex")


def libteep(name: str) -> bytes:
    """A libteep test file (COSE-signed when the name ends in ``_cose``)."""
    return read_hex(LIBTEEP_DIR / f"{name}.hex")


def libteep_key(name: str) -> PublicKey:
    """One of libteep's published test keys (public part)."""
    return PublicKey.load(LIBTEEP_DIR / "keys" / f"{name}.pem")


def libteep_keys() -> list[PublicKey]:
    """Every libteep test key."""
    return [PublicKey.load(p) for p in sorted((LIBTEEP_DIR / "keys").glob("*.pem"))]


def cddl(*names: str) -> str:
    """The concatenated text of CDDL files from ``cddl/``."""
    return "\n".join((CDDL_DIR / name).read_text() for name in names)


def all_vectors() -> dict[str, bytes]:
    """Every binary vector, keyed ``folder/name``, for the mutation tests."""
    out: dict[str, bytes] = {}
    for folder in (FINAL_DIR, PRE_RFC_DIR, LIBTEEP_DIR, LEGACY_04_DIR):
        for path in sorted(folder.glob("*.hex")):
            out[f"{folder.name}/{path.stem}"] = read_hex(path)
    return out
