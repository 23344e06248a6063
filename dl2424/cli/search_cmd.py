"""`search`: run a hyper-parameter sweep locally or on dask; one line per finished trial."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import UserError
from ..search import sweep as sweeps
from ..search.execute import check_backend, open_backend
from ..search.spec import load_spec
from . import app, console, err_console, user_errors
from .options import DataDir, SweepsDir, settings

STATUS_STYLE = {"ok": "green", "failed": "red", "pending": "yellow", "running": "cyan"}


def _value(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else sweeps.format_value(v)


def _score(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def _trial_line(sw: sweeps.Sweep, t: sweeps.Trial) -> str:
    m = sw.spec.metric
    values = escape("  ".join(f"{k}={_value(v)}" for k, v in t.values.items()))
    style = STATUS_STYLE[t.status]
    line = (f"t{t.id:03d} [{style}]{t.status:<7}[/] {values}  best {m} {_score(t.best) or '–'}"
            f"  final {_score(t.final) or '–'}  {t.wall_s or 0:.1f} s")
    return line + (f"\n     [red]{escape(t.error)}[/]" if t.error and t.status == "failed"
                   else "")


def top_table(sw: sweeps.Sweep, n: int = 5) -> Table:
    m, spec = sw.spec.metric, sw.spec
    t = Table(title=f"top trials by {m} ({spec.metric_from}, {spec.direction})")
    for col in ("rank", "trial", *spec.space, f"best {m}", f"final {m}", "wall s", "run"):
        t.add_column(col, justify="left" if col == "run" else "right")
    for rank, tr in enumerate(sw.ranked()[:n], 1):
        t.add_row(str(rank), str(tr.id), *(escape(_value(tr.values[k])) for k in spec.space),
                  _score(tr.best), _score(tr.final), f"{tr.wall_s or 0:.1f}",
                  escape(str(sw.path / tr.run)) if tr.run else "")  # a path that exists from here
    return t


def _make(spec: Path | None, from_: Path | None, resume: Path | None,
          sweeps_dir: Path, data_dir: Path) -> sweeps.Sweep:
    if resume is not None:
        if spec is not None or from_ is not None:
            raise UserError("--resume continues the sweep as it was planned; do not give "
                            "SPEC or --from with it")
        return sweeps.load(resume)
    if spec is None:
        raise UserError("give a search SPEC file, or --resume SWEEP_DIR")
    coarse = sweeps.load(from_) if from_ is not None else None
    return sweeps.create(load_spec(spec), sweeps_dir, coarse, data_dir)


@app.command()
def search(
    spec: Annotated[Path | None, typer.Argument(help="Search spec YAML file.")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Worker processes (local pool or --cluster local); default: all cores.")] = None,
    from_: Annotated[Path | None, typer.Option(
        "--from", help="A finished sweep folder whose best trials the spec's refine: "
                       "narrows around.")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Run the trials on the dask scheduler at this address (tcp://host:8786).")] = None,
    cluster: Annotated[str | None, typer.Option(
        help="'local': start a dask LocalCluster of worker processes here.")] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Rerun the trials of this sweep folder that are not ok.")] = None,
    fail_fast: Annotated[bool, typer.Option(
        help="Start no new trial once one has failed.")] = False,
    data_dir: DataDir = None,
    sweeps_dir: SweepsDir = None,
):
    """Hyper-parameter search: every trial is a run; results go to sweeps/<time>-<name>/."""
    with user_errors():
        check_backend(workers, scheduler, cluster)
        s = settings(data_dir, sweeps_dir=sweeps_dir)
        root = s.data_dir
        sw = _make(spec, from_, resume, s.sweeps_dir, root)
        todo = sum(t.status != "ok" for t in sw.trials)
        backend = open_backend(workers, scheduler, cluster)
    console.print(f"sweep [bold]{escape(str(sw.path))}[/]: {todo} of {len(sw.trials)} trials "
                  f"to run on {backend.describe()}", highlight=False)
    session = _run(sw, backend, root, fail_fast)
    _results(sw, session)


def _run(sw: sweeps.Sweep, backend, root: Path, fail_fast: bool) -> dict:
    """The sweep, one line per finished trial; ^C or SIGTERM stops it (trials checkpoint)
    with exit 128 + the signal."""
    received = []  # SIGTERM stops the sweep as ^C does: trials checkpoint, exit 143

    def on_signal(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    with user_errors():  # a full disk or a read-only sweep folder: one message, exit 2
        try:
            return sweeps.run(sw, backend, root, fail_fast,
                              on_done=lambda t: console.print(_trial_line(sw, t),
                                                              highlight=False),
                              on_note=lambda s: err_console.print(s, highlight=False,
                                                                  markup=False))
        except sweeps.SweepInterrupted:
            err_console.print(f"interrupted; finish with: dl2424 search --resume {sw.path}",
                              highlight=False, markup=False)
            raise typer.Exit(128 + (received or [signal.SIGINT])[0]) from None
        finally:
            try:
                backend.close()
            finally:
                for s, h in previous.items():
                    signal.signal(s, h)


def _results(sw: sweeps.Sweep, session: dict) -> None:
    """The top trials, the plots, the counts; exit 1 unless every trial is ok."""
    console.print(top_table(sw))
    from ..search.plot import plot_sweep  # matplotlib loads only when plotting

    with user_errors():
        plots = plot_sweep(sw)
    for f in plots:
        console.print(f"plot: {f}", highlight=False, markup=False)
    counts = {s: sum(t.status == s for t in sw.trials) for s in sweeps.STATUSES}
    console.print(f"{counts['ok']} ok, {counts['failed']} failed, {counts['pending']} pending; "
                  f"wall time {session['wall_s']:.1f} s; trials: {sw.path / 'trials.csv'}",
                  highlight=False, markup=False)
    if counts["ok"] != len(sw.trials):
        err_console.print(f"not every trial is ok; rerun the others with: dl2424 search "
                          f"--resume {sw.path}", highlight=False, markup=False)
        raise typer.Exit(1)
