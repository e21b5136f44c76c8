"""SUIT manifests for TEEP: envelope codec, builder, processor and reports.

* :mod:`teep.suit.registry` - the drafts' code points as IntEnums;
* :mod:`teep.suit.envelope` - :class:`SuitEnvelope` decoding (original bytes
  kept) and :func:`verify_envelope`;
* :mod:`teep.suit.builder` - :func:`build_envelope`, :func:`sign_envelope`;
* :mod:`teep.suit.processor` - :class:`SuitProcessor`, the sans-I/O
  interpreter over a :class:`ComponentStore`;
* :mod:`teep.suit.report` - SUIT_Report encoding and decoding;
* :mod:`teep.suit.errors` - :class:`SuitError` and its subclasses.
"""

from teep.suit.builder import build_envelope, sign_envelope
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
    "SuitEnvelope",
    "SuitError",
    "SuitProcessor",
    "SuitReport",
    "build_envelope",
    "build_report",
    "decode_report",
    "open_envelope",
    "sign_envelope",
    "verify_envelope",
]
