"""SUIT manifests for TEEP: envelope codec, builder, processor and reports.

* :mod:`teep.suit.registry` - the drafts' code points as IntEnums;
* :mod:`teep.suit.envelope` - :class:`SuitEnvelope` decoding (original bytes
  kept) and :func:`verify_envelope`;
* :mod:`teep.suit.builder` - :func:`build_envelope`, :func:`compose_manifest`,
  :func:`sign_envelope`, :func:`sever_envelope`;
* :mod:`teep.suit.encryption` - encrypted payloads (AES-KW, ECDH-ES);
* :mod:`teep.suit.description` - TOML manifest descriptions for the tools;
* :mod:`teep.suit.processor` - :class:`SuitProcessor`, the sans-I/O
  interpreter over a :class:`ComponentStore`, with its command handlers in
  :mod:`teep.suit.commands` and streamed hashing in :mod:`teep.suit.measure`;
* :mod:`teep.suit.report` - SUIT_Report encoding and decoding;
* :mod:`teep.suit.errors` - :class:`SuitError` and its subclasses.
"""

from teep.suit.builder import (
    build_envelope,
    compose_manifest,
    sever_envelope,
    sign_envelope,
)
from teep.suit.encryption import SuitEncryptionInfo, SymmetricKEK, encrypt_payload
from teep.suit.envelope import SuitDigest, SuitEnvelope, open_envelope, verify_envelope
from teep.suit.errors import SuitError
from teep.suit.processor import ProcessResult, SuitProcessor
from teep.suit.report import SuitReport, build_report, decode_report
from teep.suit.store import ComponentId, ComponentStore, InstalledManifest

__all__ = [
    "ComponentId",
    "ComponentStore",
    "InstalledManifest",
    "ProcessResult",
    "SuitDigest",
    "SuitEncryptionInfo",
    "SuitEnvelope",
    "SuitError",
    "SuitProcessor",
    "SuitReport",
    "SymmetricKEK",
    "build_envelope",
    "build_report",
    "compose_manifest",
    "decode_report",
    "encrypt_payload",
    "open_envelope",
    "sever_envelope",
    "sign_envelope",
    "verify_envelope",
]
