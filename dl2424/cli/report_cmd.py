"""`report`, `compare` and `runs`: look at what runs left behind."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from . import app, console, user_errors
from .options import RunsDir, settings


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(
        metavar="RUN", help="One run folder, or several to compare.")],
    name: Annotated[str | None, typer.Option(
        help="Title; with several runs also the folder name under reports/.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Where to write (default RUN/report/, or reports/<name>/ for several runs).")
    ] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open index.html in a browser.")] = False,
):
    """Figures and tables of one run, or of several side by side: report.md and index.html."""
    with user_errors():
        from ..report import make_report  # matplotlib loads only when a report is made

        index = make_report(runs, name, out)
    console.print(f"report written: [bold]{index}[/] (and report.md beside it)")
    if open_:
        webbrowser.open(index.resolve().as_uri())


@app.command()
def compare(
    patterns: Annotated[list[str], typer.Argument(
        metavar="PATTERN", help="Run folders, folders of runs, or quoted globs such as "
        "'runs/*names*'.")],
    sort: Annotated[str | None, typer.Option(
        help="Sort by this column, best first (e.g. val_acc, val_loss, test_acc).")] = None,
    best: Annotated[bool, typer.Option(
        "--best/--final", help="Metrics at the best validation accuracy, or at the end.")
    ] = True,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the table as CSV.")
                   ] = None,
    markdown: Annotated[Path | None, typer.Option(
        "--markdown", help="Also write the table as Markdown.")] = None,
):
    """One row per run: the config keys that differ, then best or final metrics."""
    with user_errors():
        from ..report import compare as compare_runs

        table = compare_runs(patterns, "best" if best else "final", sort, csv, markdown)
    console.print(table.to_rich())


@app.command("runs")
def list_runs(
    runs_dir: RunsDir = None,
):
    """List runs: name, date, status, dataset, model, best validation accuracy."""
    with user_errors():
        from ..report import runs_table

        table = runs_table(settings(runs_dir=runs_dir).runs_dir)
    console.print(table.to_rich())
