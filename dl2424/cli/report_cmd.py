"""`report`, `compare` and `runs`: look at what runs left behind."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .. import rundir
from . import app, console, err_console, user_errors
from .options import RunsDir, settings
from .shell import RunsCommands


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
    console.print(f"report written: [bold]{escape(str(index))}[/] (and report.md beside it)")
    if open_:
        webbrowser.open(index.resolve().as_uri())


Wide = Annotated[bool, typer.Option(
    "--wide", help="Every column, however narrow the terminal (values fold).")]
Columns = Annotated[str | None, typer.Option(
    help="Exactly these columns, comma-separated (the run is always shown).")]


def print_table(table, wide: bool, columns: str | None) -> None:
    """Fit the terminal (columns by priority); --wide shows all, as wide as they need."""
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    shown = table.to_rich(console.width, wide, chosen)
    need = table.needed_width(wide, chosen) if wide or chosen else 0
    console.print(shown, width=max(console.width, need), crop=False)


@app.command()
def compare(
    patterns: Annotated[list[str], typer.Argument(
        metavar="PATTERN", help="Run folders, sweep folders, folders of either, or quoted "
        "globs such as 'runs/*names*' or 'sweeps/*'.")],
    sort: Annotated[str | None, typer.Option(
        help="Sort by this column, best first (e.g. val_acc, val_loss, test_acc).")] = None,
    best: Annotated[bool, typer.Option(
        "--best/--final", help="Metrics at the best validation accuracy, or at the end.")
    ] = True,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the table as CSV.")
                   ] = None,
    markdown: Annotated[Path | None, typer.Option(
        "--markdown", help="Also write the table as Markdown.")] = None,
    wide: Wide = False,
    columns: Columns = None,
):
    """One row per run: the config keys that differ, then best or final metrics."""
    with user_errors():
        from ..report import compare as compare_runs

        table = compare_runs(patterns, "best" if best else "final", sort, csv, markdown)
        print_table(table, wide, columns)


runs_app = typer.Typer(cls=RunsCommands, help="List runs (and sweeps' trials); remove runs.")
app.add_typer(runs_app, name="runs")


@runs_app.command("ls")
def list_runs(
    sources: Annotated[list[str] | None, typer.Argument(
        metavar="RUNS", help="Run or sweep folders, folders of either, or quoted globs; "
        "default: the runs and sweeps folders.")] = None,
    status: Annotated[str | None, typer.Option(
        help="Only runs with this status (completed, failed, interrupted, running, stale).")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="Only runs on this dataset.")] = None,
    name: Annotated[str | None, typer.Option(
        help="Only runs whose name contains this (or matches this glob).")] = None,
    runs_dir: RunsDir = None,
    wide: Wide = False,
    columns: Columns = None,
):
    """List runs: name, status, sweep, dataset, model, best validation accuracy."""
    with user_errors():
        from ..report import runs_table

        # --runs-dir names the one folder to list; by default runs/ and sweeps/ (trials)
        s = settings(runs_dir=runs_dir)
        default = [runs_dir] if runs_dir is not None else \
            [d for d in (s.runs_dir, s.sweeps_dir) if d.is_dir()] or [s.runs_dir]
        table = runs_table(sources or default, status, dataset, name)
        print_table(table, wide, columns)


@runs_app.command("rm")
def remove_runs(
    runs: Annotated[list[str], typer.Argument(
        metavar="RUN", help="Run folders or quoted globs to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
                   ] = False,
):
    """Delete run folders, after showing them and asking."""
    with user_errors():
        from ..report import select

        paths = select(runs)
        rundir.check_removable(paths)
    for p in paths:
        console.print(f"  {p}", highlight=False, markup=False)
    if not yes and not typer.confirm(f"delete these {len(paths)} run folders?", default=False):
        err_console.print("nothing deleted")
        raise typer.Exit(1)
    for p in paths:
        rundir.remove(p)
    console.print(f"deleted {len(paths)} run folder{'s' if len(paths) != 1 else ''}")
