"""Protocol errors, one class per TEEP err-code.

An Agent answers a message it cannot accept with an Error carrying the
``err_code`` of the exception raised while processing it; a TAM, which never
sends Error, drops the message or reports the code in an Update.
"""

from __future__ import annotations

from typing import ClassVar

from teep.errors import TeepError
from teep.protocol.registry import ErrCode

__all__ = [
    "AttestationRequired",
    "BadCertificate",
    "CertificateExpired",
    "LegacyDialect",
    "MalformedMessage",
    "ManifestProcessingFailed",
    "PermanentError",
    "ProtocolError",
    "TemporaryError",
    "UnknownPeer",
    "UnsupportedCipherSuites",
    "UnsupportedExtension",
    "UnsupportedFreshness",
    "UnsupportedSuitReport",
    "UnsupportedVersion",
]


class ProtocolError(TeepError):
    """A TEEP message could not be accepted; ``err_code`` says why on the wire."""

    err_code: ClassVar[ErrCode] = ErrCode.ERR_PERMANENT_ERROR


class PermanentError(ProtocolError):
    """Wrong or inconsistent fields (ERR_PERMANENT_ERROR)."""


class MalformedMessage(PermanentError):
    """The bytes are not a valid TEEP message of the expected numbering."""


class LegacyDialect(PermanentError):
    """The peer speaks an older dialect (OTrP, TEEP JSON, early CBOR drafts)."""


class UnknownPeer(PermanentError):
    """The message is signed by no key this endpoint trusts."""


class UnsupportedExtension(ProtocolError):
    """An extension the message needs is not supported."""

    err_code = ErrCode.ERR_UNSUPPORTED_EXTENSION


class UnsupportedFreshness(ProtocolError):
    """None of the offered freshness mechanisms is supported."""

    err_code = ErrCode.ERR_UNSUPPORTED_FRESHNESS_MECHANISMS


class UnsupportedVersion(ProtocolError):
    """None of the offered protocol versions is supported."""

    err_code = ErrCode.ERR_UNSUPPORTED_MSG_VERSION


class UnsupportedCipherSuites(ProtocolError):
    """None of the offered cipher suites is supported."""

    err_code = ErrCode.ERR_UNSUPPORTED_CIPHER_SUITES


class BadCertificate(ProtocolError):
    """A certificate or key could not be processed."""

    err_code = ErrCode.ERR_BAD_CERTIFICATE


class AttestationRequired(ProtocolError):
    """The peer must attest before this endpoint continues."""

    err_code = ErrCode.ERR_ATTESTATION_REQUIRED


class UnsupportedSuitReport(ProtocolError):
    """A SUIT Report uses a COSE profile this endpoint does not support."""

    err_code = ErrCode.ERR_UNSUPPORTED_SUIT_REPORT


class CertificateExpired(ProtocolError):
    """A certificate has expired or is not yet valid."""

    err_code = ErrCode.ERR_CERTIFICATE_EXPIRED


class TemporaryError(ProtocolError):
    """A transient problem; the peer should retry later."""

    err_code = ErrCode.ERR_TEMPORARY_ERROR


class ManifestProcessingFailed(ProtocolError):
    """One or more SUIT manifests failed; carries their SUIT Reports."""

    err_code = ErrCode.ERR_MANIFEST_PROCESSING_FAILED

    def __init__(self, message: str, reports: tuple[bytes, ...] = ()) -> None:
        super().__init__(message)
        self.reports = reports
