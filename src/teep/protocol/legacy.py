"""Recognising the dialects teep does not speak, to refuse them by name.

Before the TEEP Protocol settled on ``[type, {options}, ...]`` arrays, peers
spoke OTrP (JSON with JOSE), TEEP over JSON (2019-2020), the map-era CBOR of
drafts -00/-01 and early CBOR drafts whose second array element was a uint
token.  teep refuses all of them; this module only says which one a peer used
so the refusal is useful (legacy/VERSIONS.md 2.2-2.4 and 3.2).

:func:`sniff` classifies a raw body: it skips a UTF-8 BOM and ASCII white
space, reads a leading ``{`` as JSON even when strict JSON parsing fails (the
OTrP spec samples wrap base64 across lines and carry comments), applies the
JSON rules of 2.3 (JWS payloads are decoded and classified in turn) and, for
CBOR, the map-era and array rules of 2.2 and 2.4 after unwrapping COSE.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from teep import cbor

__all__ = [
    "DRAFT_01_CBOR",
    "DRAFT_02_04",
    "JOSE_ENCRYPTED",
    "JOSE_SIGNED",
    "OTHER_JSON",
    "OTRP_V1",
    "TEEP_JSON",
    "Verdict",
    "looks_like_json",
    "recognise",
    "recognise_bytes",
    "refusal_for_body",
    "refusal_for_media",
    "refusal_text",
    "sniff",
]


@dataclass(frozen=True)
class Verdict:
    """A recognised older dialect."""

    id: str
    """The dialect's letter in legacy/VERSIONS.md 1 (``A``, ``C``, ``D``, ``E``...)."""
    name: str
    """What the peer speaks, for a one-line refusal."""


OTRP_V1 = Verdict(
    "A",
    "OTrP v1 (JSON/JOSE, draft-ietf-teep-opentrustprotocol,"
    " application/otrp+json; abandoned by the IETF in 2019)",
)
TEEP_JSON = Verdict(
    "C",
    "TEEP over JSON (2019-2020 drafts, draft-ietf-teep-protocol-00,"
    " application/teep+json; JSON was removed in draft -01)",
)
TEEP_JSON_SLIDES = Verdict(
    "C",
    "TEEP over JSON (2019-2020 drafts, IETF 106 lower-case or numeric-string"
    " spellings; also OTrP v2)",
)
JOSE_SIGNED = Verdict("A/C", "a JOSE-signed JSON dialect (OTrP or TEEP over JSON)")
JOSE_ENCRYPTED = Verdict(
    "A/C", "a JOSE-encrypted JSON dialect (OTrP or TEEP over JSON)"
)
OTHER_JSON = Verdict(
    "JSON", "JSON that names no OTrP or TEEP-over-JSON message (TEEP is CBOR)"
)
DRAFT_01_CBOR = Verdict(
    "D",
    "TEEP draft-ietf-teep-protocol-00/-01 CBOR (Outer_Wrapper map with text keys,"
    " 2019-2020)",
)
DRAFT_02_04 = Verdict(
    "E", "TEEP Protocol draft -02 to -04 (uint token in the message array)"
)
PRE_DRAFT_2020 = Verdict("E", "a 2020 pre-draft TEEP CBOR encoding (byte-string token)")
DRAFT_05_10 = Verdict(
    "F-early", "TEEP Protocol draft -05 to -10 (cipher suites as an option)"
)
DRAFT_11 = Verdict("F-early", "TEEP Protocol draft -11 (no SUIT COSE profiles)")

# Media types of the JSON dialects (legacy/VERSIONS.md 2.1).
_LEGACY_MEDIA = {
    "application/otrp+json": OTRP_V1,
    "application/teep+json": TEEP_JSON,
    "application/otrpv2+json": TEEP_JSON_SLIDES,
    "application/otrpv2+cbor": TEEP_JSON_SLIDES,
}

_OTRP_NAME = re.compile(
    r"^[A-Z][A-Za-z]*(TBS)?(Request|Response|Notifications?|Error)$"
)
# OTrP v1 names the generic pattern misses (VERSIONS.md 2.3 rule 2), and the
# Device State Information document the OTrP samples show on its own.
_OTRP_OTHER_NAMES = frozenset(
    {"TAQuery", "TAInformation", "TAInformationTBS", "OTrPBrokerError", "dsi"}
)
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
# COSE_Sign1, COSE_Sign, COSE_Mac0, COSE_Mac (VERSIONS.md 2.2).
_COSE_TAGS = frozenset({18, 98, 17, 97})
_MAX_DEPTH = 4


def _strip(data: bytes) -> bytes:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    return data.lstrip(_WHITESPACE)


def looks_like_json(data: bytes) -> bool:
    """Whether a body is JSON by its first byte (VERSIONS.md 2.2).

    A leading ``{`` (after a BOM and white space) or a compact JOSE string
    means JSON, whatever a strict parser thinks of the rest.
    """
    head = _strip(data)
    return head[:1] == b"{" or head[:4] == b'"eyJ'


def sniff(data: bytes) -> Verdict | None:
    """Name the older dialect of a raw body, or None if it is none of them.

    A TEEP message of the final or pre-RFC numbering is not a verdict here
    (:func:`teep.protocol.codec.classify` tells those apart).
    """
    return _sniff(data, 0)


def _sniff(data: bytes, depth: int) -> Verdict | None:
    if depth > _MAX_DEPTH:
        return None
    head = _strip(data)
    if head[:1] == b"{":
        return _json_body(head, depth) or OTHER_JSON
    if head[:4] == b'"eyJ':
        return _compact_jose(head, depth)
    if head[:1] == b"[":
        value = _json_loads(head)
        if isinstance(value, list):
            return _json_array(value, depth)
    try:
        value = cbor.loads(data, tags=_COSE_TAGS)
    except cbor.CBORDecodeError:
        return None
    return _recognise(_unwrap(value))


def _unwrap(value: Any) -> Any:
    """The payload of a COSE structure (VERSIONS.md 2.2), else ``value``."""
    if (
        isinstance(value, cbor.CBORTag)
        and value.tag in _COSE_TAGS
        and isinstance(value.value, list)
        and len(value.value) >= 3
        and isinstance(value.value[2], bytes)
    ):
        try:
            return cbor.loads(value.value[2])
        except cbor.CBORDecodeError:
            return None
    return value


# -- JSON (VERSIONS.md 2.3) ------------------------------------------------------


def _json_loads(data: bytes) -> Any:
    try:
        # strict=False: raw line breaks inside strings are allowed.
        return json.loads(data.decode("utf-8"), strict=False)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _json_body(data: bytes, depth: int) -> Verdict | None:
    value = _json_loads(data)
    if isinstance(value, dict):
        return _json_object(value, depth)
    # Not strict JSON (comments, wrapped strings, missing commas): the member
    # names still say which dialect it is.
    return _by_names(_top_level_names(data.decode("utf-8", "replace")))


def _json_array(value: list[Any], depth: int) -> Verdict | None:
    verdicts = [_json_object(v, depth) for v in value if isinstance(v, dict)]
    found = [v for v in verdicts if v is not None]
    return found[0] if found else None


def _json_object(value: dict[str, Any], depth: int) -> Verdict | None:
    # Rule 1: a JWS is classified by its payload; a JWE cannot be seen into.
    if "payload" in value and ("signature" in value or "signatures" in value):
        payload = value["payload"]
        inner = _b64url(payload) if isinstance(payload, str) else None
        found = _sniff(inner, depth + 1) if inner is not None else None
        return found if found not in (None, OTHER_JSON) else JOSE_SIGNED
    if "ciphertext" in value and ("iv" in value or "tag" in value):
        return JOSE_ENCRYPTED
    return _by_names(list(value))


def _by_names(names: list[str]) -> Verdict | None:
    # Rule 2: one member named like an OTrP message.
    if len(names) == 1 and (
        _OTRP_NAME.match(names[0]) or names[0] in _OTRP_OTHER_NAMES
    ):
        return OTRP_V1
    # Rule 3: upper-case CDDL names (TYPE is an integer 1..6 in the drafts;
    # hackathon code also wrote the type's name).
    if "TYPE" in names:
        return TEEP_JSON
    # Rule 4: the IETF 106 slide spellings.
    if {"type", "token"} & set(names) or {"1", "2"} <= set(names):
        return TEEP_JSON_SLIDES
    return None


def _compact_jose(data: bytes, depth: int) -> Verdict | None:
    text = _json_loads(data)
    if not isinstance(text, str):
        return JOSE_SIGNED
    parts = text.split(".")
    if len(parts) == 5:
        return JOSE_ENCRYPTED
    inner = _b64url(parts[1]) if len(parts) == 3 else None
    found = _sniff(inner, depth + 1) if inner is not None else None
    return found if found not in (None, OTHER_JSON) else JOSE_SIGNED


def _b64url(text: str) -> bytes | None:
    compact = re.sub(r"\s+", "", text)
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.urlsafe_b64decode(compact.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        return None


def _top_level_names(text: str) -> list[str]:
    """Member names of the outermost JSON object, tolerating broken JSON.

    A small scanner: strings (with escapes, possibly spanning lines), ``//``
    comments outside strings, and nesting; a string at depth 1 followed by
    ``:`` is a member name.
    """
    names: list[str] = []
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            string = text[i + 1 : end]
            i = end + 1
            rest = text[i:].lstrip()
            if depth == 1 and rest.startswith(":"):
                names.append(string)
            continue
        if char == "/" and text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth <= 0:
                break
        i += 1
    return names


# -- CBOR (VERSIONS.md 2.2 and 2.4) ----------------------------------------------


def _recognise(value: Any) -> Verdict | None:
    if isinstance(value, dict):
        return _map_era(value)
    if not isinstance(value, list) or len(value) < 2:
        return None
    second = value[1]
    if isinstance(second, int) and not isinstance(second, bool):
        return DRAFT_02_04
    if isinstance(second, bytes):
        return PRE_DRAFT_2020
    if isinstance(second, dict) and value[0] == 1 and len(value) == 3:
        return DRAFT_05_10
    if isinstance(second, dict) and value[0] == 1 and len(value) == 4:
        return DRAFT_11
    return None


def _map_era(value: dict[Any, Any]) -> Verdict | None:
    """Drafts -00/-01: ``{1: COSE-or-nil, 2: {"TYPE": n, ...}}`` or the body."""
    if "TYPE" in value:
        return DRAFT_01_CBOR
    if set(value) == {1, 2} and not isinstance(value[1], int):
        # A COSE_Key has an integer kty under 1; the Outer_Wrapper never does.
        return DRAFT_01_CBOR
    return None


def recognise(value: Any) -> str | None:
    """Name the legacy CBOR dialect of a decoded message, if it is one."""
    verdict = _recognise(value)
    return None if verdict is None else verdict.name


def recognise_bytes(data: bytes) -> str | None:
    """Name the legacy dialect of a raw body that is not CBOR TEEP, if any."""
    verdict = sniff(data)
    return None if verdict is None else verdict.name


def refusal_text(dialect: str) -> str:
    """The one-line refusal shown to a peer speaking ``dialect``."""
    return (
        f"unsupported protocol: the peer speaks {dialect}; this endpoint speaks"
        " only TEEP (draft-ietf-teep-protocol-26) over application/teep+cbor"
    )


def refusal_for_media(media_types: str) -> str | None:
    """The refusal for an Accept or Content-Type naming a legacy media type."""
    for part in media_types.split(","):
        verdict = _LEGACY_MEDIA.get(part.split(";", 1)[0].strip().lower())
        if verdict is not None:
            return refusal_text(verdict.name)
    return None


def refusal_for_body(content_type: str, body: bytes) -> str | None:
    """The refusal for a body that is not a TEEP message.

    The body names the dialect when it can; the media type otherwise.  None
    when neither says anything.
    """
    verdict = sniff(body)
    if verdict is not None and verdict is not OTHER_JSON:
        return refusal_text(verdict.name)
    return refusal_for_media(content_type) or (
        None if verdict is None else refusal_text(verdict.name)
    )
