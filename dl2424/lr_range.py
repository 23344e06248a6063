"""The LR range test (Smith 2015, section 3.3): train once while the learning rate grows
from lr_min to lr_max, then read good cyclical bounds off the accuracy curve."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import rundir
from .atomic import write_json
from .config import Experiment, validate
from .errors import UserError
from .experiment import RunFailed, start
from .trainer import Diverged, Reporter, float_errors_ignored


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


class StopAtDivergence(Reporter):
    """Smith's stopping rule: the sweep ends once the smoothed training loss exceeds `factor`
    times its lowest value (or a loss is not finite); passes everything on to `inner`."""

    def __init__(self, inner: Reporter | None, factor: float = 4.0, beta: float = 0.98):
        self.inner, self.factor, self.beta = inner or Reporter(), factor, beta
        self.avg, self.n, self.lowest = 0.0, 0, math.inf

    def on_start(self, setup, start_step):
        self.inner.on_start(setup, start_step)

    def on_eval(self, row):
        self.inner.on_eval(row)

    def on_end(self, summary):
        self.inner.on_end(summary)

    def close(self):
        self.inner.close()

    def on_step(self, step, lr, loss):
        self.inner.on_step(step, lr, loss)
        if not math.isfinite(loss):
            raise Diverged(f"the training loss stopped being a finite number at step {step} "
                           f"(lr {lr:.3g})")
        self.n += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smooth = self.avg / (1 - self.beta ** self.n)
        if self.n > 10 and smooth > self.factor * self.lowest:
            raise Diverged(f"the smoothed training loss ({smooth:.3g}) passed {self.factor:g}× "
                           f"its lowest ({self.lowest:.3g}) at step {step} (lr {lr:.3g})")
        self.lowest = min(self.lowest, smooth)


def run_range_test(exp: Experiment, overrides: list[str], data_dir: Path, runs_dir: Path,
                   reporter=None, stop=None) -> tuple[Path, dict]:
    """Sweep the learning rate up until the loss diverges (the expected end of the test);
    the run is recorded as a completed range test either way."""
    with float_errors_ignored():  # divergence is the expected end
        try:
            run, summary = start(exp, overrides, data_dir, runs_dir,
                                 StopAtDivergence(reporter), stop)
            note = "swept the whole range without diverging"
        except RunFailed as e:
            run, summary, note = e.run, e.summary, f"stopped: {e}".replace("diverged: ", "")
    rows = rundir.read_rows(run / rundir.METRICS)
    if not rows:
        raise UserError(f"{run}: the loss diverged before the first evaluation; lower --max")
    result = suggest(rows) | {"note": note, "lr_min": exp.schedule.params.lr_min,
                              "lr_max": exp.schedule.params.lr_max,
                              "spacing": exp.schedule.params.spacing}
    write_json(run / "lr_range.json", result)
    rundir.write_summary(run, summary | {"status": "completed", "kind": "lr_range",
                                         "error": None, "note": note})
    return run, result
