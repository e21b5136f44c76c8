"""Recognising the dialects teep does not speak, to refuse them by name.

Before the TEEP Protocol settled on ``[type, {options}, ...]`` arrays, peers
spoke OTrP (JSON with JOSE), TEEP over JSON (2019-2020) and early CBOR drafts
whose second array element was a uint token.  teep refuses all of them; this
module only says which one a peer used so the refusal is useful.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "recognise",
    "recognise_bytes",
    "refusal_for_body",
    "refusal_for_media",
    "refusal_text",
]

# Media types of the JSON dialects (legacy/VERSIONS.md 3.2).
_LEGACY_MEDIA = {
    "application/otrp+json": "OTrP v1 (JSON)",
    "application/teep+json": "TEEP over JSON (2019-2020 drafts)",
}

_OTRP_NAME = re.compile(
    r"^[A-Z][A-Za-z]*(TBS)?(Request|Response|Notifications?|Error)$"
)


def recognise(value: Any) -> str | None:
    """Name the legacy CBOR dialect of a decoded message, if it is one."""
    if not isinstance(value, list) or len(value) < 2:
        return None
    second = value[1]
    if isinstance(second, int) and not isinstance(second, bool):
        return "TEEP Protocol draft -02 to -04 (uint token in the message array)"
    if isinstance(second, bytes):
        return "a 2020 pre-draft TEEP CBOR encoding (byte-string token)"
    if isinstance(second, dict) and value[0] == 1 and len(value) == 3:
        return "TEEP Protocol draft -05 to -10 (cipher suites as an option)"
    if isinstance(second, dict) and value[0] == 1 and len(value) == 4:
        return "TEEP Protocol draft -11 (no SUIT COSE profiles)"
    return None


def recognise_bytes(data: bytes) -> str | None:
    """Name the legacy dialect of a raw body that is not CBOR TEEP, if any."""
    text = data.lstrip()[:1]
    if text not in (b"{", b"["):
        return None
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(value, dict):
        if "payload" in value and ("signature" in value or "signatures" in value):
            return "a JOSE-signed JSON dialect (OTrP or TEEP over JSON)"
        if len(value) == 1 and _OTRP_NAME.match(next(iter(value))):
            return "OTrP v1 (JSON)"
        if "TYPE" in value or "type" in value:
            return "TEEP over JSON (2019-2020 drafts)"
    return None


def refusal_text(dialect: str) -> str:
    """The one-line refusal shown to a peer speaking ``dialect``."""
    return (
        f"unsupported protocol: the peer speaks {dialect}; this endpoint speaks"
        " only TEEP (draft-ietf-teep-protocol-26) over application/teep+cbor"
    )


def refusal_for_media(media_types: str) -> str | None:
    """The refusal for an Accept or Content-Type naming a legacy media type."""
    for part in media_types.split(","):
        dialect = _LEGACY_MEDIA.get(part.split(";", 1)[0].strip().lower())
        if dialect is not None:
            return refusal_text(dialect)
    return None


def refusal_for_body(content_type: str, body: bytes) -> str | None:
    """The refusal for a body that is not ``application/teep+cbor``.

    The body names the dialect when it can (JSON shapes); the media type
    otherwise.  None when neither says anything.
    """
    dialect = recognise_bytes(body)
    if dialect is not None:
        return refusal_text(dialect)
    return refusal_for_media(content_type)
