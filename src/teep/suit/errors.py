"""The exceptions of the SUIT layer.

Every error derives from :class:`SuitError`, itself a
:class:`teep.errors.TeepError`.  Each class names the SUIT_Report reason
(draft-ietf-suit-report section 4) it stands for, so the processor can put
the right ``suit-report-result-reason`` in the report it attaches as
``.report`` before raising.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from teep.errors import DecodeError, TeepError, VerifyError
from teep.suit.registry import SuitReportReason

if TYPE_CHECKING:
    from teep.suit.report import SuitRecord


class SuitError(TeepError):
    """Base class of every SUIT failure.

    ``report`` is filled in by :class:`teep.suit.processor.SuitProcessor`
    with the encoded SUIT_Report describing the failure, ready to go into a
    TEEP Error message; it is None when raised by the codecs alone.
    ``record`` says which command failed, when a command did.
    """

    reason: SuitReportReason = SuitReportReason.operation_failed

    def __init__(self, message: str, *, reason: SuitReportReason | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.report: bytes | None = None
        self.record: SuitRecord | None = None


class SuitDecodeError(SuitError, DecodeError):
    """An envelope, manifest or report is not well-formed."""

    reason = SuitReportReason.cbor_parse


class SuitAuthError(SuitError, VerifyError):
    """The authentication wrapper or a digest did not verify."""

    reason = SuitReportReason.unauthorised


class SuitUnsupportedError(SuitError):
    """The manifest uses a feature teep does not implement.

    The instance's ``reason`` says which kind (command, parameter, COSE
    structure, algorithm, severing, component).
    """

    reason = SuitReportReason.command_unsupported


class SuitRollbackError(SuitError):
    """The sequence number is not greater than the installed manifest's."""

    reason = SuitReportReason.unauthorised


class SuitConditionFailedError(SuitError):
    """A condition failed outside any try-each or soft-failure scope."""

    reason = SuitReportReason.condition_failed


class SuitAbortError(SuitError):
    """A directive could not be carried out (directives never soft-fail)."""

    reason = SuitReportReason.operation_failed


class SuitSeveredMemberError(SuitError):
    """A severed member the procedure needs is not in the envelope.

    teep supports severing, so this is not reason 9 (severing unsupported,
    which the SUIT digest keeps for processors without severing): the
    procedure cannot be carried out and fails as an operation.
    """

    reason = SuitReportReason.operation_failed


class SuitDecryptionError(SuitAbortError):
    """An encrypted payload could not be decrypted: no key fits a recipient,
    or the ciphertext failed authentication."""


class SuitNotInstalledError(SuitError):
    """No manifest with the given manifest-component-id is installed."""

    reason = SuitReportReason.component_unsupported
