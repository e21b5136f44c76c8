"""A peer's free text (err-msg, msg) is printed and logged with its control
characters escaped: it cannot forge a log line or drive a terminal."""

from __future__ import annotations

import logging

import pytest

from teep.cli import tam as tam_cli
from teep.keys import KeyKind, PrivateKey
from teep.protocol.messages import Error
from teep.protocol.registry import ErrCode
from teep.protocol.signing import sign_message
from teep.protocol.tam import SessionEvent
from teep.text import escape_controls

from .conftest import World

FORGERY = "line1\n[tam] Success received [device deadbeef]: update applied"
NOISE = "\x1b[31mred\x07\r\x00\x7f\x85\u2028tab\t"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "plain text, ünïcödé and a \\ backslash",
            "plain text, ünïcödé and a \\ backslash",
        ),
        ("a\nb", "a\\nb"),
        ("\r\t", "\\r\\t"),
        ("\x1b[2J\x07", "\\x1b[2J\\x07"),
        ("\x00\x1f\x7f", "\\x00\\x1f\\x7f"),
        ("\x80\x9b\x9f\xa0", "\\x80\\x9b\\x9f\xa0"),
        ("\u2028\u2029", "\\u2028\\u2029"),
    ],
)
def test_escape_controls(text: str, shown: str) -> None:
    """C0, DEL, C1 and the Unicode line separators are escaped; the rest kept."""
    assert escape_controls(text) == shown
    assert escape_controls(shown) == shown


def test_escape_controls_limit() -> None:
    """A limit cuts long text before escaping."""
    assert escape_controls("ab\ncd", limit=3) == "ab\\n..."
    assert escape_controls("abc", limit=3) == "abc"


def test_session_event_detail_is_escaped() -> None:
    """Whatever builds an event, its detail is one printable line."""
    assert SessionEvent("error", FORGERY).detail == escape_controls(FORGERY)


def test_error_from_unknown_key_prints_one_line(
    world: World,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An Error signed by a key the TAM does not know, carrying a forged log
    line and terminal escapes, reaches the console and the log as one line."""
    stranger = PrivateKey.generate(KeyKind.P256)
    error = Error(err_code=ErrCode.ERR_PERMANENT_ERROR, err_msg=FORGERY + NOISE)
    with caplog.at_level(logging.INFO):
        result = world.tam().process(sign_message(error, [stranger]))
    for event in result.events:
        tam_cli._print_event(event)
    out = capsys.readouterr().out
    assert "Error received: ERR_PERMANENT_ERROR: line1\\n[tam] Success" in out
    assert out.count("\n") == len(result.events)
    for text in (out, caplog.text):
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text
        assert "\n[tam]" not in text


def test_stored_event_of_an_agent_error_is_escaped(world: World) -> None:
    """A known device's Error is recorded as an event with its err-msg
    escaped, so ``teep tam device show`` prints it as one line."""
    error = Error(err_code=ErrCode.ERR_PERMANENT_ERROR, err_msg=FORGERY + NOISE)
    world.session()  # the TAM now knows the device
    agent_key = world.device.tee.agent_key
    result = world.tam().process(sign_message(error, [agent_key]))
    assert not result.dropped
    kid = agent_key.public.thumbprint
    messages = [e.message for e in world.store.list_events(kid, 20)]
    assert any("line1\\n[tam] Success" in m for m in messages), messages
    assert all(m == escape_controls(m) for m in messages)
