"""The `dl2424` command line. Commands parse, call one function, print with rich."""

from __future__ import annotations

import contextlib
import errno
import os
import sys

from ..settings import limit_blas_threads

limit_blas_threads()  # before NumPy loads (see settings.py)

import typer  # noqa: E402  (after the thread setting, as everything below)
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402

from .. import __version__  # noqa: E402
from ..errors import UserError  # noqa: E402
from .shell import Commands  # noqa: E402

app = typer.Typer(
    name="dl2424",
    cls=Commands,  # commands by use, one way of naming arguments, completion
    help="Train and study small NumPy neural networks from YAML experiment configs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Written to a pipe or a file, rich would assume 80 columns and cut tables short; there is
# no screen edge there, so give tables room (COLUMNS, when set, still decides).
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 140
console = Console(width=_PIPE_WIDTH)
err_console = Console(stderr=True, width=_PIPE_WIDTH)


OS_HINTS = {
    errno.ENOSPC: "free some space and run the command again (every file written so far is "
                  "whole; a run continues with dl2424 train --resume RUN_DIR)",
    errno.EDQUOT: "free some space within your quota and run the command again",
    errno.EROFS: "the file system is read-only; give a folder you can write to (e.g. "
                 "--runs-dir)",
    errno.EACCES: "you may not write or read there; give a folder you own (e.g. --runs-dir)",
    errno.EPERM: "you may not write or read there; give a folder you own (e.g. --runs-dir)",
}


def os_error_message(e: OSError) -> str:
    """An OSError (full disk, read-only folder, ...) as one line: where, what, what to do."""
    where = f"{e.filename}: " if e.filename else ""
    hint = OS_HINTS.get(e.errno, "check the path and the disk, then run the command again")
    return f"{where}{e.strerror or type(e).__name__}; {hint}"


@contextlib.contextmanager
def user_errors():
    """Turn a UserError, or an OSError from the file system, into one clear message on
    stderr and exit status 2 (never a traceback; exit 1 means a diverged run)."""
    try:
        yield
    except (UserError, OSError) as e:
        text = os_error_message(e) if isinstance(e, OSError) else str(e)
        for line in text.splitlines():
            err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False,
                              soft_wrap=True)
        raise typer.Exit(UserError.exit_code) from None


def notice(message: str) -> None:
    """A one-line note on stderr (e.g. keys a --set dropped when it switched a component)."""
    err_console.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _version(value: bool):
    if value:
        console.print(f"dl2424 {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
):
    """Train and study small NumPy neural networks from YAML experiment configs."""


def run():  # console-script entry point
    sys.exit(app())


# Each module below adds its commands to `app`.
from . import (  # noqa: E402,F401
    config_cmd,
    data_cmd,
    ensemble_cmd,
    generate_cmd,
    gradcheck_cmd,
    names_cmd,
    predict_cmd,
    report_cmd,
    search_cmd,
    train_cmd,
)
