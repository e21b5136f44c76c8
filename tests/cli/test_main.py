"""The teep group: version, verbosity and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from teep.cli import main as main_module
from teep.errors import ConfigError

from .conftest import Run, assert_one_line_error


def test_version(run: Run) -> None:
    """--version prints the package version and exits 0."""
    result = run("--version")
    assert result.exit_code == 0
    assert "0.1.0" in result.stdout


def test_help_lists_groups(run: Run) -> None:
    """--help lists the registered command groups."""
    result = run("--help")
    assert result.exit_code == 0
    assert "decode" in result.stdout and "keys" in result.stdout


def test_unknown_option_is_usage_error(run: Run) -> None:
    """A bad option is one line on stderr and exit status 2."""
    line = assert_one_line_error(run("decode", "--bogus", "x"), code=2)
    assert "--bogus" in line


def test_unknown_command_is_usage_error(run: Run) -> None:
    """An unknown subcommand is one line and exit status 2."""
    assert_one_line_error(run("frobnicate"), code=2)


def test_missing_argument_is_usage_error(run: Run) -> None:
    """A missing argument is one line and exit status 2."""
    assert_one_line_error(run("keys", "show"), code=2)


@pytest.fixture
def failing_command() -> object:
    """Registers a hidden command that raises what the test asks for."""
    raised: list[BaseException] = []

    @click.command(name="boom", hidden=True)
    def boom() -> None:
        raise raised[0]

    main_module.cli.add_command(boom)
    yield raised
    main_module.cli.commands.pop("boom")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConfigError("bad config"), "teep: error: bad config"),
        (FileNotFoundError(2, "No such file", "x.pem"), "teep: error: x.pem: No such"),
        (KeyboardInterrupt(), "teep: error: interrupted"),
        (RuntimeError("bug"), "teep: error: internal error: RuntimeError: bug"),
    ],
)
def test_exceptions_become_one_line(
    run: Run, failing_command: list[BaseException], exc: BaseException, expected: str
) -> None:
    """teep errors, OSError, ^C and bugs all end as one line and exit 1."""
    failing_command.append(exc)
    line = assert_one_line_error(run("boom"))
    assert line.startswith(expected)


def test_verbose_shows_traceback(
    run: Run, failing_command: list[BaseException]
) -> None:
    """With --verbose the traceback is shown before the error line."""
    failing_command.append(ConfigError("bad config"))
    result = run("-v", "boom")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1] == "teep: error: bad config"


def test_console_script_one_line_error(tmp_path: Path) -> None:
    """The real entry point prints one line for a missing file, no traceback."""
    missing = tmp_path / "nothing.cbor"
    proc = subprocess.run(
        [sys.executable, "-m", "teep", "decode", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"teep: error: cannot read {missing}: No such file or directory"
    ]


def test_print_table_plain_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    """Off a terminal a table is aligned plain text and long cells are whole."""
    from teep.cli.common import print_table

    kid = "ab" * 32
    print_table(("kid", "label"), [(kid, "tam"), ("x", "device")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["kid", "label"]
    assert lines[1] == f"{kid}  tam"
    assert lines[2].startswith("x ") and lines[2].endswith("device")
