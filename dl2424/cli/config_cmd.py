"""`config show`: the keys of every config section and registered component."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..atomic import write_text
from ..config_docs import choices, describe, markdown, splice, summary
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
        "--markdown", help="Markdown tables, one per component.")] = False,
    readme: Annotated[Path | None, typer.Option(
        help="Rewrite the key table between the markers of this file (README.md).")] = None,
):
    """Every key of a config section or component: type, default, description."""
    with user_errors():
        docs = describe(what)
        if not docs:
            raise UserError(f"config show {what!r}: no such section, kind or type; one of: "
                            + ", ".join(choices()))
        if readme is not None:
            write_text(readme, splice(readme.read_text(encoding="utf-8"), summary(docs)))
            console.print(f"{readme}: key table of {len(docs)} components written")
            return
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
