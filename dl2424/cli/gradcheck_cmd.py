"""`gradcheck`: analytic gradients against finite differences or torch autograd."""

from __future__ import annotations

import math
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..atomic import write_json
from ..config import apply_overrides, load_experiment, read_yaml, validate
from ..data import load_dataset
from ..errors import UserError
from ..gradcheck import Options
from ..gradcheck import gradcheck as run_gradcheck
from ..gradcheck.table import report_table
from ..search.spec import load_spec
from . import app, console, notice, user_errors
from .options import Configs, DataDir, MoreConfigs, Overrides, configs_of, settings


def _experiment(paths: list[Path], overrides: list[str]):
    """The experiment of config files, or the base experiment of one search spec."""
    if len(paths) == 1 and "space" in (read_yaml(paths[0]) or {}):
        search = load_spec(paths[0])
        console.print(f"{paths[0]} is a search spec: checking its base experiment", highlight=False)
        return validate(apply_overrides(dict(search.base), overrides, notice), str(paths[0]))
    return load_experiment(paths, overrides, notice)


class _LateProgress:
    """A progress bar that appears once a check has run for a second (most take less)."""

    def __init__(self, delay: float = 1.0):
        self.start, self.delay, self.bar, self.task = time.monotonic(), delay, None, None

    def __call__(self, done: int, total: int, name: str):
        if self.bar is None:
            if time.monotonic() - self.start < self.delay or not console.is_terminal:
                return
            self.bar = Progress(TextColumn("checking {task.fields[param]}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                transient=True)
            self.task = self.bar.add_task("check", total=total, param=name)
            self.bar.start()
        self.bar.update(self.task, completed=done, param=name)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def _check_options(**values) -> None:
    """Numbers of the command line that would make the check meaningless or crash."""
    def finite(v):
        return v is None or 0 < v < math.inf

    rules = {"n": (lambda v: v is None or v >= 1, "1 or more"),
             "dims": (lambda v: v >= 0, "0 (all) or more"),
             "crop": (lambda v: v >= 0, "0 (whole images) or more"),
             "h": (finite, "a positive finite step, e.g. 1e-5"),
             "tol": (finite, "a positive finite number"),
             "eps": (finite, "a positive finite number"),
             "atol": (lambda v: v is None or 0 <= v < math.inf, "0 or a positive number"),
             "max_entries": (lambda v: v is None or v >= 0, "0 (all) or more")}
    for name, value in values.items():
        ok, need = rules[name]
        if not ok(value):
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag}: {value:g} is not allowed; give {need}")


class Against(StrEnum):
    numerical = "numerical"
    torch = "torch"


class At(StrEnum):
    generic = "generic"
    init = "init"


class Method(StrEnum):
    centred = "centred"
    forward = "forward"


@app.command()
def gradcheck(
    config: Configs = None,
    set_: Overrides = None,
    more: MoreConfigs = None,
    against: Annotated[Against, typer.Option(
        help="numerical (finite differences) or torch (PyTorch autograd in float64, "
             "needs the torch extra).")] = Against.numerical,
    n: Annotated[int | None, typer.Option(
        "--n", help="Examples in the batch; default 2, or 4 with batch norm (on two examples "
                    "BN is ill-conditioned), 8 against torch.")] = None,
    dims: Annotated[int, typer.Option(
        help="Keep the first DIMS input dimensions of flat inputs (0 = all).")] = 20,
    crop: Annotated[int, typer.Option(
        help="Centre crop of CROP x CROP pixels for image ConvNets, or the smallest larger "
             "one the network accepts; whole images (also with 0) when the crop would "
             "change how a layer computes, as for Winograd's layers.")] = 8,
    at: Annotated[At, typer.Option(
        help="generic: move exact zeros and ties of the initial weights by a small seeded "
             "jitter, off the kinks; init: the initial weights as they are.")] = At.generic,
    method: Annotated[Method, typer.Option(
        help="centred (ComputeGradsNumSlow) or forward (ComputeGradsNum).")] = Method.centred,
    h: Annotated[float | None, typer.Option(
        "--h", help="Finite-difference step for every parameter; default: per parameter, "
                    "1e-3 of its size, at most 1e-5.")] = None,
    tol: Annotated[float | None, typer.Option(
        help="Largest acceptable relative error; default 1e-6 against finite differences, "
             "1e-10 against torch.")] = None,
    eps: Annotated[float, typer.Option(help="Floor of the relative error's denominator.")] = 1e-8,
    atol: Annotated[float | None, typer.Option(
        help="Differences up to this count as agreement; default: the float64 noise floor, "
             "8 eps max(1, |J|) / h.")] = None,
    max_entries: Annotated[int | None, typer.Option(
        help="Check at most this many random entries per parameter (0 = all); default: "
             "all of small parameters, a sample of about 400 entries in all.")] = None,
    save: Annotated[Path | None, typer.Option(
        help="Also write the report as JSON: to RUN/gradcheck.json for a run folder (the "
             "report shows it), else to this file.")] = None,
    data_dir: DataDir = None,
):
    """Compare analytic gradients of the cost with finite differences (or torch), per
    parameter; exit 1 when a parameter disagrees."""
    progress = _LateProgress()
    with user_errors():
        _check_options(n=n, dims=dims, crop=crop, h=h, tol=tol, eps=eps, atol=atol,
                       max_entries=max_entries)
        exp = _experiment(configs_of(config, more), set_ or [])
        data = load_dataset(exp.data, settings(data_dir).data_dir, np.float64)
        opts = Options(method=method.value, h=h, tol=tol, eps=eps, atol=atol,
                       max_entries=max_entries, at=at.value)
        try:
            reports = run_gradcheck(exp, data, n=n, dims=dims or None, crop=crop or None,
                                    against=against.value, opts=opts, progress=progress)
        finally:
            progress.close()
    for rep in reports:
        console.print(report_table(rep))
        console.print(rep.summary(), highlight=False)
    if save is not None:
        file = save / "gradcheck.json" if save.is_dir() else save
        with user_errors():
            write_json(file, [rep.to_json() for rep in reports])
        console.print(f"saved: {file}", highlight=False, markup=False)
    if not all(rep.passed for rep in reports):
        raise typer.Exit(1)
