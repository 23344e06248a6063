"""The LR range test (Smith 2015, section 3.3): train once while the learning rate grows
from lr_min to lr_max, then read good cyclical bounds off the accuracy curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import rundir
from .atomic import write_json
from .config import Experiment, validate
from .experiment import RunFailed, start


def range_experiment(exp: Experiment, lr_min: float, lr_max: float, steps: int,
                     spacing: str, evals: int = 50) -> Experiment:
    raw = exp.dump()
    raw["name"] = f"{exp.name}-lr_range"
    raw["schedule"] = {"type": "range_test", "lr_min": lr_min, "lr_max": lr_max,
                       "spacing": spacing}
    raw["optimizer"].pop("lr", None)
    train = {k: v for k, v in raw["train"].items() if k not in ("epochs", "steps", "cycles")}
    train |= {"steps": steps, "eval_every": max(1, steps // evals)}
    raw["train"] = train
    return validate(raw, "lr-range")


def suggest(rows: list[dict]) -> dict:
    """eta_max: the lr at which validation accuracy peaks (before it falls or turns ragged);
    eta_min: the lr at which accuracy has made a tenth of its climb from the start."""
    lr = np.array([r["lr"] for r in rows])
    acc = np.array([r["val_acc"] for r in rows])
    peak = int(np.argmax(acc))
    rise = acc[0] + 0.1 * (acc[peak] - acc[0])
    first = int(np.argmax(acc[: peak + 1] >= rise))
    eta_min, eta_max = float(lr[first]), float(lr[peak])
    if eta_min >= eta_max:  # no visible climb: fall back to a decade below the peak
        eta_min = eta_max / 10
    return {"eta_min": eta_min, "eta_max": eta_max, "peak_val_acc": float(acc[peak]),
            "lr_at_min_train_loss": float(lr[int(np.argmin([r["train_loss"] for r in rows]))])}


def run_range_test(exp: Experiment, overrides: list[str], data_dir: Path, runs_dir: Path,
                   reporter=None, stop=None) -> tuple[Path, dict]:
    try:
        run, _ = start(exp, overrides, data_dir, runs_dir, reporter, stop)
        note = "completed"
    except RunFailed as e:  # the loss blowing up at the top of the sweep is expected
        run, note = e.run, f"stopped early: {e}"
    rows = rundir.read_rows(run / rundir.METRICS)
    result = suggest(rows) | {"note": note, "lr_min": exp.schedule.params.lr_min,
                              "lr_max": exp.schedule.params.lr_max,
                              "spacing": exp.schedule.params.spacing}
    write_json(run / "lr_range.json", result)
    return run, result
