"""Shared fixtures for the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from teep.cli.main import cli

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "cli"


class Run:
    """Runs ``teep`` in-process and keeps stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: bytes | str | None = None) -> Result:
        return self.runner.invoke(cli, list(args), input=input)


@pytest.fixture
def run() -> Run:
    """A function that runs the teep command line."""
    return Run()


def assert_one_line_error(result: Result, code: int = 1) -> str:
    """The run failed with ``code`` and exactly one ``teep: error:`` line."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("teep: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]
