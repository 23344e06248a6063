"""`ensemble`: several trained runs voting together."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..data.paths import resolve_data_dir
from ..errors import UserError
from . import app, console, user_errors


@app.command()
def ensemble(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (two or more).")],
    weights: Annotated[str, typer.Option(
        help="best (best validation accuracy) or last (final checkpoint).")] = "best",
    snapshots: Annotated[bool, typer.Option(
        help="Use every end-of-cycle snapshot the runs saved (train.snapshots: true).")
    ] = False,
    data_dir: Annotated[Path | None, typer.Option(help="Where datasets are.")] = None,
):
    """Majority vote and probability averaging of several runs (or of one run's cycle
    snapshots) on the test set."""
    from ..ensemble import evaluate_ensemble

    with user_errors():
        if weights not in ("best", "last"):
            raise UserError(f"--weights: {weights!r} is not one of best, last")
        result = evaluate_ensemble(runs, resolve_data_dir(data_dir), weights, snapshots)
    t = Table(title=f"ensemble of {len(result.members)} members on the {result.split} set")
    t.add_column("member", overflow="fold")
    t.add_column("accuracy", justify="right")
    for run, acc in result.members:
        t.add_row(run, f"{acc:.4f}")
    t.add_row("[bold]majority vote[/]", f"[bold]{result.vote_acc:.4f}[/]")
    t.add_row("[bold]mean probability[/]", f"[bold]{result.mean_acc:.4f}[/]")
    console.print(t)
