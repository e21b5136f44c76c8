"""The ``teep`` command: a click group and its error handling.

Every failure ends the same way: one line ``teep: error: <message>`` on
stderr and exit status 1 (2 for a usage error), never a traceback unless
``--verbose`` asked for one.  That is done once, in :meth:`TeepGroup.main`,
so it holds for the console script, ``python -m teep`` and click's test
runner alike.

A command group lives in its own module under :mod:`teep.cli` and is
registered at the bottom of this file with one ``cli.add_lazy`` line (or,
for a group that is cheap to import, an import and ``cli.add_command``).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from teep import __version__
from teep.errors import TeepError

__all__ = ["TeepGroup", "cli", "main"]

EXIT_ERROR = 1
EXIT_USAGE = 2
_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)


class TeepGroup(click.Group):
    """A click group that reports every failure as one line."""

    verbosity: int = 0
    """How many ``-v`` the current invocation got (set by the callback)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy: dict[str, str] = {}

    def add_lazy(self, name: str, target: str) -> None:
        """Register the command ``module:attribute`` under ``name``, imported
        only when it is run or listed (the TAM and device groups pull in
        SQLAlchemy and wasmtime, which ``teep decode`` should not wait for).
        """
        self._lazy[name] = target

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, loaded or not."""
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command called ``cmd_name``, importing it on first use."""
        target = self._lazy.get(cmd_name)
        if target is not None and cmd_name not in self.commands:
            module, _, attr = target.partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        """Run the command line and exit with its status."""
        self.verbosity = 0
        argv = list(sys.argv[1:] if args is None else args)
        prog_name = prog_name or "teep"
        try:
            # click's own main() would turn ^C into an Abort after printing
            # a blank line; running the context here keeps stderr to one line.
            self._main_shell_completion(extra, prog_name, complete_var)
            with self.make_context(prog_name, argv, **extra) as ctx:
                result = self.invoke(ctx)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(EXIT_USAGE)
        except click.UsageError as exc:
            self._report(_usage_message(exc), exc)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            self._report(exc.format_message(), exc)
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt) as exc:
            self._report("interrupted", exc)
            sys.exit(EXIT_ERROR)
        except TeepError as exc:
            self._report(str(exc) or type(exc).__name__, exc)
            sys.exit(EXIT_ERROR)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                sys.exit(EXIT_ERROR)  # the reader went away; nobody to tell
            self._report(_os_message(exc), exc)
            sys.exit(EXIT_ERROR)
        except Exception as exc:
            # A bug, not bad input: still one line, with a pointer to more.
            message = f"internal error: {type(exc).__name__}: {exc}"
            if not self.verbosity:
                message += " (run with --verbose for details)"
            self._report(message, exc)
            sys.exit(EXIT_ERROR)
        sys.exit(result if isinstance(result, int) else 0)

    def _report(self, message: str, exc: BaseException) -> None:
        if self.verbosity:
            traceback.print_exception(exc, file=sys.stderr)
        first = " ".join(message.split())
        click.echo(f"teep: error: {first}", err=True)


def _usage_message(exc: click.UsageError) -> str:
    message = exc.format_message()
    if exc.ctx is not None:
        message += f" (see '{exc.ctx.command_path} --help')"
    return message


def _os_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


@click.group(cls=TeepGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More output: -v for progress, -vv for debugging; tracebacks on errors.",
)
@click.version_option(__version__, "--version", prog_name="teep")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """teep: TEEP (RFC 9397) TAM, device, and tools."""
    group = ctx.command
    if isinstance(group, TeepGroup):
        group.verbosity = verbose
    level = _LEVELS[min(verbose, len(_LEVELS) - 1)]
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", force=True
    )
    logging.getLogger("teep").setLevel(level)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console-script entry point."""
    try:
        cli.main(args=argv, prog_name="teep")
    except SystemExit as done:
        wasm = sys.modules.get("teep.device.wasm")
        if wasm is not None and wasm.stopped_mid_run():
            # A component stopped mid-call can leave wasmtime unable to shut
            # down cleanly (see stopped_mid_run); end with the status the
            # command chose, after flushing what it printed.
            sys.stdout.flush()
            sys.stderr.flush()
            code = done.code
            os._exit(code if isinstance(code, int) else 0 if code is None else 1)
        raise


# --- command groups -------------------------------------------------------------
# One line per group: its name and where it lives (imported when used).
cli.add_lazy("demo", "teep.cli.demo:demo")
cli.add_lazy("tam", "teep.cli.tam:tam")
cli.add_lazy("device", "teep.cli.device:device")
cli.add_lazy("keys", "teep.cli.keys:keys")
cli.add_lazy("manifest", "teep.cli.manifest:manifest")
cli.add_lazy("decode", "teep.cli.decode:decode")
cli.add_lazy("verifier", "teep.cli.verifier:verifier")

if __name__ == "__main__":
    main()
