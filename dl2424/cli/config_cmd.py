"""`config show`: the keys of every config section and registered component."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..config_docs import choices, describe, markdown
from ..errors import UserError
from . import app, console, user_errors
from .shell import Commands

config_app = typer.Typer(cls=Commands, help="What can go in a config: keys, types, defaults.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def show(
    what: Annotated[str | None, typer.Argument(
        metavar="TYPE", autocompletion=choices,
        help="A section (train), a kind (optimizer) or a registered type (adam, "
             "optimizer/adam); all of them when left out.")] = None,
    as_markdown: Annotated[bool, typer.Option(
        "--markdown", help="Markdown tables (the README's key tables).")] = False,
):
    """Every key of a config section or component: type, default, description."""
    with user_errors():
        docs = describe(what)
        if not docs:
            raise UserError(f"config show {what!r}: no such section, kind or type; one of: "
                            + ", ".join(choices()))
    if as_markdown:
        typer.echo(markdown(docs))
        return
    for d in docs:
        title = d.name if d.kind == "section" else f"{d.kind} {d.name}"
        t = Table(title=f"[bold]{title}[/]" + (f": {d.help}" if d.help else ""),
                  title_justify="left", show_lines=False)
        for col in ("key", "type", "default", "description"):
            t.add_column(col, overflow="fold")
        for k in d.keys:
            t.add_row(k.name, k.type, k.default, k.description)
        if not d.keys:
            t.add_row("(no keys)", "", "", "")
        console.print(t)
