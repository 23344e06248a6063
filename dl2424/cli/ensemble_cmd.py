"""`ensemble`: several trained runs voting together."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from . import app, console, user_errors
from .options import DataDir, Weights, WeightsOption, settings


@app.command()
def ensemble(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (two or more).")],
    weights: WeightsOption = Weights.best,
    snapshots: Annotated[bool, typer.Option(
        help="Use every end-of-cycle snapshot the runs saved (train.snapshots: true).")
    ] = False,
    data_dir: DataDir = None,
):
    """Majority vote and probability averaging of several runs (or of one run's cycle
    snapshots) on the test set."""
    from ..ensemble import evaluate_ensemble

    with user_errors():
        result = evaluate_ensemble(runs, settings(data_dir).data_dir, weights.value, snapshots)
    t = Table(title=f"ensemble of {len(result.members)} members on the {result.split} set")
    t.add_column("member", overflow="fold")
    t.add_column("accuracy", justify="right")
    for run, acc in result.members:
        t.add_row(run, f"{acc:.4f}")
    t.add_row("[bold]majority vote[/]", f"[bold]{result.vote_acc:.4f}[/]")
    t.add_row("[bold]mean probability[/]", f"[bold]{result.mean_acc:.4f}[/]")
    console.print(t)
