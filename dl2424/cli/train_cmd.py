"""`train` and `lr-range`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from .. import experiment
from ..config import load_experiment
from ..data.fetch import fetch_missing
from ..errors import UserError
from ..experiment import RunAborted, RunFailed, RunInterrupted
from ..trainer import StopFlag, stopping_on
from . import app, console, err_console, notice, user_errors
from .options import (  # noqa: F401  (Configs ... configs_of: what other commands imported here)
    Configs,
    DataDir,
    MoreConfigs,
    Overrides,
    Quiet,
    RunsDir,
    Spacing,
    configs_of,
    settings,
)
from .progress import RichReporter


def _print_summary(run: Path, summary: dict) -> None:
    console.print(f"[bold]{summary['name']}[/]: {summary['status']}", highlight=False)
    t = Table(show_header=True)
    t.add_column("metric")
    t.add_column("final", justify="right")
    final, best = summary.get("final") or {}, summary.get("best") or {}
    t.add_column("lowest smooth loss" if "smooth_loss" in best else "best val", justify="right")
    for k in ("step", "train_loss", "train_cost", "train_acc", "val_loss", "val_cost", "val_acc",
              "smooth_loss"):  # smooth_loss: text models
        if k not in final and k not in best:
            continue
        fmt = (lambda v: str(v)) if k == "step" else (lambda v: f"{v:.4f}")
        # a text run's best row may fall between validations: its val_loss is NaN, not shown
        t.add_row(k, *("" if row.get(k) is None or row[k] != row[k] else fmt(row[k])
                       for row in (final, best)))
    if "test" in summary:
        t.add_row("test_acc", f"{summary['test']['acc']:.4f}",
                  f"{summary['test_at_best']['acc']:.4f}" if "test_at_best" in summary else "")
    console.print(t)
    console.print(f"wall time {summary['wall_time_s']:.1f} s; run folder: "
                  f"[bold]{escape(str(run))}[/]")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def _inspect(config: list[Path], overrides: list[str], data_dir: Path | None,
             print_config: bool) -> None:
    """--print-config: the resolved YAML; --dry-run: what a run would take, nothing written."""
    with user_errors():
        exp = load_experiment(config, overrides, notice)
        if print_config:
            typer.echo(yaml.safe_dump(exp.dump(), sort_keys=False), nl=False)
            return
        from ..dryrun import dry_run
        from ..trainer import Diverged
        try:
            p = dry_run(exp, settings(data_dir).data_dir)
        except Diverged as e:  # as a run would: exit 1, one line
            err_console.print(f"[bold red]diverged in the timed updates:[/] {escape(str(e))}",
                              highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    mem = p["memory"]
    lines = [
        f"[bold]{p['name']}[/]: dry run, nothing written",
        f"data      {exp.data.type}: " + " / ".join(f"{n:,} {k}" for k, n in p["examples"].items())
        + f"; input {tuple(p['input_shape'])}, {p['classes']} classes",
        f"model     {exp.model.type}: {p['params']:,} parameters",
        f"updates   {p['updates']:,} ({p['steps_per_epoch']:,} per epoch), "
        f"{p['evaluations']:,} evaluations",
        f"memory    data {_size(mem['data'])}, parameters {_size(mem['params'])}, optimizer "
        f"state {_size(mem['optimizer'])}, one update {_size(mem['update_peak'])} at peak; "
        f"about {_size(sum(mem.values()))} in all",
        f"time      {p['seconds_per_update'] * 1e3:.3g} ms per update, "
        f"{p['seconds_per_evaluation']:.3g} s per evaluation: ETA {_duration(p['eta_s'])}",
    ]
    for line in lines:
        console.print(line, highlight=False, markup=False)


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    return f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def _signalled(signum: int) -> None:
    err_console.print(f"\nsignal {signum}: finishing the current update and saving a "
                      "checkpoint (send again to abort at once)")


@contextlib.contextmanager
def _outcome(reporter: RichReporter):
    """A failed run exits 1, an interrupted one 128 + the signal, each with what to do next."""
    try:
        yield
    except RunFailed as e:
        reporter.close()
        saved = e.summary.get("checkpoint_step")
        err_console.print(f"[bold red]run failed:[/] {escape(str(e))}. " + escape(
            f"The last good checkpoint (step {saved}) is in {e.run}" if saved is not None
            else f"No checkpoint was written before it; run folder: {e.run}"),
            highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except (RunInterrupted, RunAborted) as e:
        reporter.close()
        saved = e.summary.get("checkpoint_step")
        err_console.print(f"interrupted at step {e.summary['steps']}; " + (
            f"checkpoint saved at step {saved}. Resume with: dl2424 train --resume {e.run}"
            if saved is not None else
            f"no checkpoint was written yet; start again: dl2424 train {e.run}/config.yaml"),
            highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(128 + e.signum) from None
    finally:
        reporter.close()


@app.command()
def train(
    config: Configs = None,
    set_: Overrides = None,
    more: MoreConfigs = None,
    resume: Annotated[Path | None, typer.Option(
        help="Continue the run in this folder from its last checkpoint.")] = None,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    quiet: Quiet = False,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the resolved config (defaults spelled out) and exit.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Build data and model, time a few updates, print sizes, memory and "
                          "ETA, and exit without a run folder.")] = False,
):
    """Train a model from an experiment config; results go to runs/<time>-<name>/."""
    configs, overrides = configs_of(config, more), set_ or []
    if print_config or dry_run:
        return _inspect(configs, overrides, data_dir, print_config)
    reporter = RichReporter(console, quiet)
    with user_errors(), _outcome(reporter), stopping_on(StopFlag(), notify=_signalled) as stop:
        s = settings(data_dir, runs_dir)
        run, summary = experiment.train(configs, overrides, resume, s.data_dir, s.runs_dir,
                                        reporter, stop, notice)
    _print_summary(run, summary)


@app.command("lr-range")
def lr_range(
    config: Configs = None,
    set_: Overrides = None,
    more: MoreConfigs = None,
    lr_min: Annotated[float, typer.Option("--min", help="First learning rate.")] = 1e-5,
    lr_max: Annotated[float, typer.Option("--max", help="Last learning rate.")] = 1.0,
    steps: Annotated[int, typer.Option(help="Update steps of the sweep.")] = 1000,
    spacing: Annotated[Spacing, typer.Option(help="exp (log-spaced) or linear.")] = Spacing.exp,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    quiet: Quiet = False,
):
    """LR range test: sweep the learning rate over one short run, suggest cyclical bounds."""
    from ..lr_range import range_experiment, run_range_test

    reporter = RichReporter(console, quiet)
    with user_errors():
        if not 0 < lr_min < lr_max < float("inf"):
            raise UserError(f"--min/--max: need 0 < min < max < inf, got {lr_min:g} and "
                            f"{lr_max:g}")
        base = load_experiment(configs_of(config, more), set_ or [], notice)
        s = settings(data_dir, runs_dir)
        fetch_missing(base.data, s.data_dir, notice)
        exp = range_experiment(base, lr_min, lr_max, steps, spacing.value)
        try:
            run, result = run_range_test(exp, set_ or [], s.data_dir, s.runs_dir, reporter)
        finally:
            reporter.close()
    console.print(f"suggested cyclical bounds: eta_min = {result['eta_min']:.2e}, "
                  f"eta_max = {result['eta_max']:.2e} (val acc peaks at "
                  f"{result['peak_val_acc']:.3f}); {result['note']}")
    console.print(f"run folder: [bold]{escape(str(run))}[/]")
