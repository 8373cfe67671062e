"""The ``avlab`` command line: a Typer app that parses and delegates.

One module per command group; each command calls one library function. Errors
derived from :class:`avlab.errors.AvlabError` are shown as one red line with
their hint and end the process with the error's exit code; no traceback unless
``--debug`` is given.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.logging import RichHandler

from avlab import __version__, set_log_level
from avlab.errors import AvlabError

__all__ = ["app", "main"]

app = typer.Typer(
    name="avlab",
    help="Multimodal lab sessions for hearing research.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"avlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Multimodal lab sessions for hearing research."""
    _state["debug"] = debug
    level = logging.DEBUG if verbose > 1 or debug else logging.INFO if verbose else logging.WARNING
    handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=debug)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
    set_log_level(level)


def _register() -> None:
    # Command modules register themselves on ``app``; imported here so that the
    # import of avlab.cli stays cheap for `--help` and errors stay local.
    from avlab.cli import commands  # noqa: F401


def main() -> None:
    """Entry point of the ``avlab`` console script."""
    _register()
    try:
        # Standalone mode: Typer itself reports usage errors (exit code 2),
        # handles --help and typer.Exit; everything else reaches us.
        app()
    except AvlabError as exc:
        if _state["debug"]:
            err_console.print_exception()
        msg = exc.message + (f" [bold]Fix:[/bold] {exc.hint}" if exc.hint else "")
        err_console.print(f"[red]error:[/red] {msg}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[red]error:[/red] interrupted.")
        sys.exit(130)
    except Exception as exc:  # anything unexpected: one line, unless --debug
        if _state["debug"]:
            raise
        err_console.print(
            f"[red]error:[/red] unexpected {type(exc).__name__}: {exc}. "
            "Run again with --debug for the traceback and report it.",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
