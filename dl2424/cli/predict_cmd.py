"""`predict`: the language of surnames, from a trained run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import UserError
from ..rundir import RUNS_DIR
from . import app, console, err_console, user_errors


@app.command()
def predict(
    name: Annotated[list[str], typer.Option("--name", help="A surname; repeat for several.")],
    run: Annotated[Path | None, typer.Option(
        help="Run folder to use; default: the newest completed surname run.")] = None,
    top: Annotated[int, typer.Option(help="Show the TOP most likely classes.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    drop_unknown: Annotated[bool, typer.Option(
        help="Drop characters outside the alphabet instead of failing.")] = False,
    truncate: Annotated[str, typer.Option(
        help="Names longer than the model's n_len keep their first or last characters.")
    ] = "first",
    weights: Annotated[str, typer.Option(
        help="best (best validation accuracy) or last (final checkpoint).")] = "best",
    runs_dir: Annotated[Path, typer.Option(help="Where run folders are.")] = RUNS_DIR,
):
    """Predict the language of surnames: dl2424 predict --name Xiong --name Gagos."""
    from ..predict import Predictor, newest_run

    with user_errors():
        if truncate not in ("first", "last"):
            raise UserError(f"--truncate: {truncate!r} is not one of first, last")
        if weights not in ("best", "last"):
            raise UserError(f"--weights: {weights!r} is not one of best, last")
        if top < 1:
            raise UserError(f"--top: must be at least 1, got {top}")
        run = run or newest_run(runs_dir)
        predictor = Predictor(run, weights)
        results = predictor(name, truncate=truncate, drop_unknown=drop_unknown)
    if as_json:
        print(json.dumps({"run": str(run), "predictions": [r.to_json() for r in results]},
                         indent=2))
        return
    console.print(f"run: {run}", highlight=False)
    for r in results:
        t = Table(title=f"{r.name!r} → [bold]{r.ranking[0][0]}[/]", title_justify="left")
        t.add_column("#", justify="right")
        t.add_column("language")
        t.add_column("probability", justify="right")
        for i, (cls, p) in enumerate(r.ranking[:top], start=1):
            t.add_row(str(i), cls, f"{p:.3f}")
        console.print(t)
        if r.notice:
            err_console.print(f"note: {r.name[:40]!r}: {r.notice}", highlight=False)
