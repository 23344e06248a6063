"""From a validated experiment to the objects that train: data, model, optimizer, ..."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import limits
from .config import Experiment
from .data import load_dataset
from .data.bundle import DataBundle, DataInfo
from .errors import UserError
from .models.base import Model
from .registry import MODELS, OPTIMIZERS, SAMPLERS, SCHEDULES
from .rng import Stream, generator


@dataclass
class Setup:
    exp: Experiment
    data: DataBundle
    model: Model
    optimizer: object
    schedule: object
    sampler: object
    total_steps: int
    eval_every: int
    checkpoint_every: int

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch


def build_model(exp: Experiment, info: DataInfo, dtype=None) -> Model:
    """The configured model for data `info`, after checking that it fits in memory."""
    dtype = np.dtype(dtype or exp.dtype)
    limits.check_memory(exp.model.params.footprint(info), exp.train.batch_size,
                        dtype.itemsize, f"model {exp.model.type}")
    rng = generator(exp.seed, Stream.INIT)
    return MODELS[exp.model.type].factory(exp.model.params, info, dtype, rng)


def build(exp: Experiment, data_dir: Path, data: DataBundle | None = None) -> Setup:
    """Everything a trainer needs; raises UserError before anything is written."""
    dtype = np.dtype(exp.dtype)
    data = data or load_dataset(exp.data, data_dir, dtype)
    if data.info.meta.get("task") == "lm":  # a character language model (text dataset)
        from .seqtrain import build_text
        return build_text(exp, data)
    n_train, B = len(data.train), exp.train.batch_size
    sampler = SAMPLERS[exp.sampler.type].factory(exp.sampler.params, data.train.y, B)
    if sampler.steps_per_epoch < 1:
        raise UserError(f"train.batch_size: {B} is larger than one epoch of the training data "
                        f"({sampler.epoch_size} examples with sampler {exp.sampler.type!r} "
                        f"of {n_train}); use a smaller batch")
    model = build_model(exp, data.info, dtype)
    optimizer = OPTIMIZERS[exp.optimizer.type].factory(exp.optimizer.params)
    schedule, total = build_schedule(exp, sampler.steps_per_epoch)
    t = exp.train
    eval_every = min(t.eval_every or sampler.steps_per_epoch, total)
    return Setup(exp, data, model, optimizer, schedule, sampler, total, eval_every,
                 t.checkpoint_every or eval_every)


def build_schedule(exp: Experiment, spe: int, total: int | None = None):
    """The learning-rate schedule and the run's total update steps (spe per epoch); with
    `total`, the schedule of a run of that many steps (e.g. before it was made longer)."""
    t = exp.train
    kw = dict(base_lr=getattr(exp.optimizer.params, "lr", None), steps_per_epoch=spe)
    if total is None and t.cycles:
        total = SCHEDULES[exp.schedule.type].factory(exp.schedule.params, total_steps=0, **kw) \
            .cycle_steps(t.cycles)
    elif total is None:
        total = t.steps if t.steps else t.epochs * spe
    limits.check_length(total, min(t.eval_every or spe, total))
    return SCHEDULES[exp.schedule.type].factory(exp.schedule.params, total_steps=total, **kw), total
