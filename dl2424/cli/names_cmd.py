"""Commands for the surname ConvNet (Assignment 3): `convcheck`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from . import app, console, user_errors


@app.command()
def convcheck(
    path: Annotated[Path, typer.Argument(help="The course's DebugInfo.mat.")],
    tol: Annotated[float, typer.Option(help="Largest max |difference| that passes.")] = 1e-10,
):
    """Check MF·x and MX·vec(F) against the expected response in DebugInfo.mat.

    Exit status 0 when both reproduce vecS and S within TOL, 1 otherwise.
    """
    from ..convcheck import check_debug_file

    with user_errors():
        result = check_debug_file(path)
    table = Table(title=f"{path}  (d={result.d}, k={result.k}, n_f={result.n_f}, "
                        f"n_len={result.n_len})")
    for col in ("product", "expected", "max |difference|", "status"):
        table.add_column(col, justify="right" if col == "max |difference|" else "left")
    for product, expected, diff in result.rows():
        status = "[green]ok[/]" if diff <= tol else "[red]FAIL[/]"
        table.add_row(product, expected, f"{diff:.3e}", status)
    console.print(table)
    raise typer.Exit(0 if result.ok(tol) else 1)
