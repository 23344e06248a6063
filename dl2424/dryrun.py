"""`train --dry-run`: build everything a run needs, time a few updates, write nothing.

What it reports is measured, not guessed: the array sizes of the data, parameters and
optimizer state after the timed updates, the peak of the memory NumPy allocates during one
update (tracemalloc sees NumPy's buffers), and an ETA from the timed updates and one timed
evaluation.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np

from .build import build
from .config import Experiment
from .trainer import float_errors_ignored, trainer_for


def _nbytes(*arrays) -> int:
    return sum(int(a.nbytes) for a in arrays if isinstance(a, np.ndarray))


def _timed(trainer, n: int) -> tuple[int, float, float]:
    """(traced memory peak of an update, seconds per update over n, seconds per
    evaluation), after a warm-up update (first-touch allocations, optimizer state)."""
    trainer.train_step()
    tracemalloc.start()
    try:
        trainer.train_step()
        _, step_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.train_step()
    per_step = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    trainer.evaluate_now()
    return step_peak, per_step, time.perf_counter() - t0


def dry_run(exp: Experiment, data_dir: Path, timed_steps: int = 5) -> dict:
    setup = build(exp, data_dir)  # raises UserError on anything wrong, like train does
    trainer = trainer_for(setup)(setup, None)  # no run folder: nothing is written
    d = setup.data
    with float_errors_ignored():
        step_peak, per_step, per_eval = _timed(trainer, max(1, min(timed_steps,
                                                                   setup.total_steps)))
    n_evals = setup.total_steps // setup.eval_every + 1
    splits = {k: s for k, s in (("train", d.train), ("val", d.val), ("test", d.test))
              if s is not None}
    data_bytes = sum(_nbytes(s.X, s.y, s.T) for s in splits.values())
    state = [v for v in setup.optimizer.state.values()] if hasattr(setup.optimizer, "state") \
        else []
    return {
        "name": exp.name,
        "examples": {k: len(s) for k, s in splits.items()},
        "input_shape": list(d.info.input_shape), "classes": d.info.n_classes,
        "params": setup.model.n_params(),
        "updates": setup.total_steps, "steps_per_epoch": setup.steps_per_epoch,
        "evaluations": n_evals,
        "memory": {"data": data_bytes, "params": _nbytes(*setup.model.params.values()),
                   "optimizer": _nbytes(*state), "update_peak": int(step_peak)},
        "seconds_per_update": per_step, "seconds_per_evaluation": per_eval,
        "eta_s": setup.total_steps * per_step + n_evals * per_eval,
    }
