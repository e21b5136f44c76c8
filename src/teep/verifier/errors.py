"""Why the Verifier service refused a request.

Each class carries the HTTP status the adapter answers with, so the
sans-I/O core never needs to know about HTTP and the adapter never needs a
table of its own.
"""

from __future__ import annotations

from typing import ClassVar

from teep.errors import TeepError

__all__ = [
    "BadRequest",
    "SessionStateError",
    "UnknownSession",
    "UnsupportedMediaType",
    "VerifierServiceError",
    "VerifierUnavailable",
]


class VerifierServiceError(TeepError):
    """A request to the Verifier service was refused."""

    http_status: ClassVar[int] = 500
    """The HTTP status the adapter answers with."""
    title: ClassVar[str] = "Verifier failure"
    """The problem title (RFC 7807) the adapter answers with."""


class BadRequest(VerifierServiceError):
    """The request's parameters or body are malformed."""

    http_status = 400
    title = "Bad Request"


class UnknownSession(VerifierServiceError):
    """No live session has this id (never created, deleted or expired)."""

    http_status = 404
    title = "Not Found"


class SessionStateError(VerifierServiceError):
    """The session already received Evidence: a nonce is used once."""

    http_status = 409
    title = "Conflict"


class UnsupportedMediaType(VerifierServiceError):
    """The Evidence's media type is not one the Verifier appraises."""

    http_status = 415
    title = "Unsupported Media Type"


class VerifierUnavailable(TeepError):
    """A client could not get an answer from a remote Verifier."""
