"""Text from peers, made safe to print or log.

A peer's free text (an err-msg, a Success msg, a bad request line) reaches
terminals and log files.  Left as it is, a newline in it forges a log line
and an escape sequence drives the operator's terminal.  :func:`escape_controls`
writes every control character as a visible escape instead.
"""

from __future__ import annotations

import re

__all__ = ["escape_controls"]

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph
# separators (some log viewers break lines on them).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str, limit: int | None = None) -> str:
    """``text`` with each control character written as ``\\n``, ``\\x1b``...

    Other characters, backslashes included, are kept, so escaping twice
    changes nothing more.  With ``limit``, text longer than that many
    characters is cut and ends with ``...``.
    """
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return _CONTROLS.sub(_escape, text)
