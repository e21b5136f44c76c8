"""How a Trusted Component's short name maps to its SUIT component ids.

teep follows the layout of the TEEP Protocol's examples: a Trusted Component
named ``NAME`` lives at ``['TEEP-Device', 'SecureFS', NAME, 'ta']`` and the
manifest that installs it is ``['TEEP-Device', 'SecureFS', NAME, 'suit']``.
Personalization Data for it is ``[..., NAME, 'config']`` with manifest
``[..., NAME, 'config.suit']``.  A name is 1-64 characters of letters, digits,
``-``, ``_`` and ``.``; component ids made elsewhere (for example a UUID in the
third position) still work and show their third element in hex.
"""

from __future__ import annotations

import re

from teep.errors import ConfigError
from teep.suit.store import ComponentId

__all__ = [
    "PREFIX",
    "component_id",
    "config_id",
    "config_manifest_id",
    "display",
    "manifest_id",
    "name_of",
    "validate_name",
]

PREFIX: ComponentId = (b"TEEP-Device", b"SecureFS")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TA_SUFFIX = b"ta"
MANIFEST_SUFFIX = b"suit"
CONFIG_SUFFIX = b"config"
CONFIG_MANIFEST_SUFFIX = b"config.suit"


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid component name.

    :raises ConfigError: if it is not.
    """
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"invalid component name {name!r}: use 1-64 letters, digits, '.', '-', '_'"
        )
    return name


def _ident(name: str, suffix: bytes) -> ComponentId:
    return (*PREFIX, validate_name(name).encode(), suffix)


def component_id(name: str) -> ComponentId:
    """The component id of the Trusted Component called ``name``."""
    return _ident(name, TA_SUFFIX)


def manifest_id(name: str) -> ComponentId:
    """The id of the manifest that installs ``name``."""
    return _ident(name, MANIFEST_SUFFIX)


def config_id(name: str) -> ComponentId:
    """The component id of ``name``'s Personalization Data."""
    return _ident(name, CONFIG_SUFFIX)


def config_manifest_id(name: str) -> ComponentId:
    """The id of the manifest that installs ``name``'s Personalization Data."""
    return _ident(name, CONFIG_MANIFEST_SUFFIX)


def name_of(ident: ComponentId) -> str | None:
    """The short name in a component or manifest id that follows teep's layout."""
    if len(ident) != 4 or ident[:2] != PREFIX:
        return None
    try:
        name = ident[2].decode()
    except UnicodeDecodeError:
        return None
    return name if _NAME.fullmatch(name) else None


def display(ident: ComponentId) -> str:
    """A readable rendering of any component id, e.g. ``TEEP-Device/SecureFS/hello/ta``."""
    parts = []
    for part in ident:
        try:
            text = part.decode()
        except UnicodeDecodeError:
            text = ""
        # A part holding "/" is shown in hex: as text it would read as two
        # parts, and another id could pass for a familiar one.
        readable = text.isprintable() and text and "/" not in text
        parts.append(text if readable else "h'" + part.hex() + "'")
    return "/".join(parts)
