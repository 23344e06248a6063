"""Commands for the Assignment 3 ConvNets: `convcheck` (surname DebugInfo.mat, patchify
debug_conv_info.npz)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from . import app, console, user_errors


@app.command()
def convcheck(
    path: Annotated[Path, typer.Argument(
        help="The course's DebugInfo.mat (surname ConvNet) or debug_conv_info.npz (patchify "
             "ConvNet, 2026).")],
    tol: Annotated[float, typer.Option(help="Largest max |difference| that passes.")] = 1e-10,
):
    """Check the hand-out's convolution matrices against the course's debug file.

    DebugInfo.mat: MF·x and MX·vec(F) against vecS and S. debug_conv_info.npz: MX·F_all
    against conv_outputs (keys X 3072 x n, Fs f x f x 3 x nf, conv_outputs; optional
    conv_flat; W1, b1, W2, b2 for X1 and P; Y for grad_Fs_flat, grad_W1, grad_b1, grad_W2,
    grad_b2). Exit status 0 when every array is reproduced within TOL, 1 otherwise.
    """
    from ..convcheck import check_debug_file

    with user_errors():
        result = check_debug_file(path)
    table = Table(title=f"{path}  ({result.describe()})")
    for col in ("product", "expected", "max |difference|", "status"):
        table.add_column(col, justify="right" if col == "max |difference|" else "left")
    for product, expected, diff in result.rows():
        status = "[green]ok[/]" if diff <= tol else "[red]FAIL[/]"
        table.add_row(product, expected, f"{diff:.3e}", status)
    console.print(table)
    raise typer.Exit(0 if result.ok(tol) else 1)
