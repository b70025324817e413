"""How the `hill` command reports a user's mistake: one line on stderr, exit code 2.

Click (under Typer) would print a usage block and a boxed message for a bad option, and a
traceback for anything raised inside a command. A :class:`hill_core.errors.HillError` or a
usage error is the user's to fix, so it gets one line that names what is wrong, as does a server
that did not start or stopped answering (``pipelines.servers.failure_line``); any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

try:  # Typer 0.2x vendors its own copy of click, whose exceptions are not click's
    from typer._click import exceptions as clicks
except ImportError:  # pragma: no cover - older Typer on plain click
    from click import exceptions as clicks

from hill_core.errors import HillError

USAGE_EXIT = 2  # what click uses for usage errors; hill uses it for every HillError


class OneLineErrors(TyperGroup):
    """The root command group: runs as click would, but prints user errors as one line."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            super().main(*args, standalone_mode=False, **kwargs)
        except HillError as err:
            fail(str(err))
        except clicks.NoArgsIsHelpError:
            sys.exit(USAGE_EXIT)  # `hill` alone: the help is printed already, as click does
        except clicks.UsageError as err:
            where = f" (see `{err.ctx.command_path} --help`)" if err.ctx else ""
            fail(f"{err.format_message()}{where}")
        except clicks.ClickException as err:
            fail(err.format_message())
        except typer.Exit as done:
            sys.exit(done.exit_code)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        except Exception as err:
            from pipelines.servers import failure_line

            line = failure_line(err)  # a server that did not start or stopped answering
            if line is None:
                raise  # anything else is a bug: its traceback
            fail(line)
        sys.exit(0)


def fail(message: str) -> None:
    """Print ``hill: <message>`` (first line only) to stderr and exit with code 2."""
    first = message.strip().splitlines()[0] if message.strip() else "invalid input"
    typer.echo(f"hill: {first}", err=True)
    sys.exit(USAGE_EXIT)
