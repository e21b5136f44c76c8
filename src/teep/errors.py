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
