"""The root of teep's exception tree.

Protocol errors that map to a TEEP err-code live in
:mod:`teep.protocol.errors`; SUIT and attestation errors in their packages.
Everything teep raises on purpose derives from :class:`TeepError`.
"""

from __future__ import annotations


class TeepError(Exception):
    """Base class of every error teep raises on purpose."""


class DecodeError(TeepError):
    """Bytes from outside could not be decoded (malformed or over a limit)."""


class VerifyError(TeepError):
    """A signature, digest or binding did not verify."""


class KeyLoadError(TeepError):
    """A key could not be loaded, or is of an unsupported kind."""


class ConfigError(TeepError):
    """Local configuration or usage is wrong (a local fault, not the peer's)."""


class StoreError(TeepError):
    """Persistent state could not be read or written."""


def reason(exc: BaseException) -> str:
    """Why ``exc`` happened, for a one-line message.

    An :class:`OSError` gives its ``strerror`` ("No such file or directory"),
    not its ``str()`` ("[Errno 2] No such file or directory: 'x'"), since the
    message already names the file; any other exception gives its ``str()``.
    """
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
