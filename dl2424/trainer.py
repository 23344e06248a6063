"""The training loop: mini-batches from the sampler, updates from the optimizer, evaluations
and checkpoints at fixed steps. It owns the loop, nothing else (CS231n's Solver): what it
produces goes to its reporter's hooks (rundir.Recorder writes the run folder)."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from dataclasses import dataclass, field

import numpy as np

from . import checkpoint
from .build import Setup
from .errors import UserError
from .hooks import Reporter
from .rng import LazyGenerator, Stream, generator

__all__ = ["Diverged", "Interrupted", "Reporter", "StopFlag", "Trainer", "evaluate",
           "float_errors_ignored", "stopping_on"]


class Diverged(Exception):
    """Loss or parameters became NaN/inf; the run is marked failed (exit status 1)."""


def float_errors_ignored():
    """Overflow and NaN in training are the trainer's to detect and report (Diverged, or
    train.on_nan: skip), in one message: NumPy's RuntimeWarnings would only come first."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


@dataclass
class StopFlag:
    """Set by a signal handler; the loop finishes the current update, then stops."""

    signum: int | None = None


@contextlib.contextmanager
def stopping_on(stop: StopFlag, signals=(signal.SIGINT, signal.SIGTERM), notify=None):
    """While inside (in the main thread; elsewhere signals cannot be caught): the first of
    `signals` sets `stop`, so the loop finishes its update, saves a checkpoint and stops;
    a second raises KeyboardInterrupt, to stop at once. notify(signum) hears the first."""

    def handler(signum, frame):
        if stop.signum is not None:
            raise KeyboardInterrupt
        stop.signum = signum
        if notify is not None:
            notify(signum)

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, handler) for s in signals} if main else {}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass
class Evaluation:
    loss: float
    acc: float
    confusion: np.ndarray
    extra: dict = field(default_factory=dict)
    pred: np.ndarray | None = None  # predicted class per example
    p_label: np.ndarray | None = None  # probability the model gives the true class


def evaluate(model, X, y, K: int, masks: dict | None = None) -> Evaluation:
    """Mean loss (unweighted, hard labels), accuracy and K x K confusion of one split."""
    scores = model.scores(X)
    loss, _ = model.loss_fn(scores, y)
    pred = scores.argmax(axis=1)
    conf = np.bincount(y * K + pred, minlength=K * K).reshape(K, K)
    extra = {}
    for name, mask in (masks or {}).items():
        extra[f"{name}_acc"] = float(np.mean(pred[mask] == y[mask])) if mask.any() else math.nan
    p_label = model.loss_fn.proba(scores)[np.arange(len(y)), y]
    return Evaluation(float(loss), float(np.mean(pred == y)), conf, extra, pred, p_label)


BASIC_METRICS = ("train_loss", "train_cost", "train_acc", "val_loss", "val_cost", "val_acc")


def metric_columns(data) -> list[str]:
    """The metric columns of metrics.csv for this data (as evaluate_now writes them)."""
    return [*BASIC_METRICS,
            *(f"val_{k.removeprefix('val_')}_acc" for k in data.masks if k.startswith("val_"))]


def is_better(row: dict, best: dict | None) -> bool:
    """The best evaluation is the first one with the highest validation accuracy."""
    return best is None or row["val_acc"] > best["val_acc"]


def class_weights(y: np.ndarray, K: int, dtype) -> np.ndarray:
    """Per-example weights p_y = 1/(K n_y), scaled by n so that they average to 1 (A3 eq. 47)."""
    counts = np.bincount(y, minlength=K).astype(np.float64)
    return (len(y) / (K * counts[y])).astype(dtype)


def training_targets(setup: Setup):
    """The target the loss sees for each training example: labels, or soft rows."""
    d, t = setup.data.train, setup.exp.train
    K = setup.data.info.n_classes
    if t.label_smoothing == 0:
        return d.T if d.T is not None else d.y
    T = d.T if d.T is not None else np.eye(K, dtype=np.dtype(setup.exp.dtype))[d.y]
    eps = t.label_smoothing
    return ((1 - eps) * T + eps * (1 - T) / (K - 1)).astype(T.dtype)


def snapshot_steps(setup: Setup) -> list[int]:
    """The update steps at which the cycles of a cyclic schedule end (train.snapshots)."""
    if not setup.exp.train.snapshots:
        return []
    steps, k = [], 1
    while (end := setup.schedule.cycle_steps(k)) <= setup.total_steps:
        steps.append(end)
        k += 1
    return steps


class Trainer:
    def __init__(self, setup: Setup, reporter: Reporter | None = None,
                 stop: StopFlag | None = None):
        self.s = setup
        self.reporter = reporter or Reporter()
        self.stop = stop or StopFlag()
        self.rows: list[dict] = []
        self.best: dict | None = None
        self.step = 0
        data, exp = setup.data, setup.exp
        self.K = data.info.n_classes
        self.targets = training_targets(setup)
        self.weights = (class_weights(data.train.y, self.K, exp.dtype)
                        if exp.train.class_weighted else None)
        n_sub = exp.train.eval_train_subset
        self.train_eval_idx = (
            np.sort(generator(exp.seed, Stream.EVAL).choice(len(data.train), n_sub, False))
            if n_sub and n_sub < len(data.train) else None)
        self.skipped = 0
        self.saved_step: int | None = None  # step of the last checkpoint.npz written
        self._order, self._order_epoch = None, -1
        self.sampled = np.zeros(self.K, dtype=np.int64)  # class counts the sampler drew
        self.snapshot_steps = snapshot_steps(setup)

    # -- bookkeeping ------------------------------------------------------------------
    def _meta(self) -> dict:
        return {"step": self.step, "total_steps": self.s.total_steps,
                "config_hash": self.s.exp.digest(), "seed": self.s.exp.seed,
                "best": self.best, "skipped_batches": self.skipped,
                "sampled": self.sampled.tolist(),
                "rng": {"scheme": "PCG64([seed, stream, key])", "epoch": self.epoch()}}

    def epoch(self) -> int:
        return self.step // self.s.steps_per_epoch

    def save_checkpoint(self, kind: str = "last") -> None:
        self.reporter.on_checkpoint(kind, self.s.model, self.s.optimizer, self._meta())
        if kind == "last":
            self.saved_step = self.step

    def resume_from(self, ckpt: checkpoint.Checkpoint, rows: list[dict], where: str) -> None:
        """Continue from a checkpoint: restore every array and counter, and keep the
        metrics rows up to its step (the caller cuts the run folder back to them), so the
        steps after it are recomputed exactly as an uninterrupted run does them."""
        checkpoint.restore(ckpt, self.s.model, self.s.optimizer, where)
        self.step = self.saved_step = int(ckpt.meta["step"])
        self.skipped = int(ckpt.meta.get("skipped_batches", 0))
        self.sampled = np.array(ckpt.meta["sampled"], dtype=np.int64)
        self.rows = [r for r in rows if r["step"] <= self.step]
        every = self.s.eval_every
        want = list(range(0, self.step + 1, every)) + (
            [self.step] if self.step == self.s.total_steps and self.step % every else [])
        got = [r["step"] for r in self.rows]
        if got != want:
            odd = sorted(set(want) ^ set(got)) or got
            raise UserError(f"{where}: the run's metrics rows up to its step {self.step} "
                            f"are not the evaluations of this run (see steps {odd[:5]}); the "
                            "run folder was changed by hand")
        self.best = None
        for r in self.rows:  # the same rule evaluate_now applies, over the kept rows
            if is_better(r, self.best):
                self.best = dict(r)

    # -- evaluation -------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """The learning rate an evaluation at `step` records (the last update's at the end)."""
        return self.s.schedule(min(step, self.s.total_steps - 1))

    def evaluate_now(self) -> dict:
        s, data = self.s, self.s.data
        tr = data.train
        Xt, yt = ((tr.X, tr.y) if self.train_eval_idx is None
                  else (tr.X[self.train_eval_idx], tr.y[self.train_eval_idx]))
        pen = s.model.penalty()
        ev_tr = evaluate(s.model, Xt, yt, self.K)
        ev_va = evaluate(s.model, data.val.X, data.val.y, self.K,
                         {k.removeprefix("val_"): m for k, m in data.masks.items()
                          if k.startswith("val_")})
        row = {"step": self.step, "epoch": round(self.step / s.steps_per_epoch, 6),
               "lr": self.lr_at(self.step),
               "train_loss": ev_tr.loss, "train_cost": ev_tr.loss + pen, "train_acc": ev_tr.acc,
               "val_loss": ev_va.loss, "val_cost": ev_va.loss + pen, "val_acc": ev_va.acc}
        row |= {f"val_{k}": v for k, v in ev_va.extra.items()}
        bad = [f"{k} {v}" for k, v in row.items()
               if k.endswith(("loss", "cost")) and not math.isfinite(v)]
        if bad:
            raise Diverged(f"step {self.step}: evaluation gave {', '.join(bad)}")
        self.rows.append(row)
        self.reporter.on_metrics(self.rows, ev_va.confusion)
        if is_better(row, self.best):
            self.best = dict(row)
            self.save_checkpoint("best")
        self.reporter.on_eval(row)
        return row

    # -- the loop ---------------------------------------------------------------------
    def train_step(self) -> tuple[float, float]:
        """One update from the mini-batch of step `self.step`. Returns (lr, loss)."""
        s, t = self.s, self.s.exp.train
        B, spe = t.batch_size, s.steps_per_epoch
        epoch, j = divmod(self.step, spe)
        if epoch != self._order_epoch:
            self._order = s.sampler.epoch_order(generator(s.exp.seed, Stream.EPOCH, epoch))
            self._order_epoch = epoch
        idx = self._order[j * B:(j + 1) * B]
        self.sampled += np.bincount(s.data.train.y[idx], minlength=self.K)
        rng = LazyGenerator(s.exp.seed, Stream.STEP, self.step)
        Xb = s.data.train.X[idx]
        if s.data.augment is not None:
            Xb = s.data.augment(Xb, rng)
        w = None if self.weights is None else self.weights[idx]
        loss, _, grads = s.model.loss(Xb, self.targets[idx], w, train=True, rng=rng,
                                      with_penalty=False)
        lr = s.schedule(self.step)
        if not math.isfinite(loss):
            if t.on_nan == "stop":
                raise Diverged(f"step {self.step}: training loss is {loss} (lr {lr:.3g})")
            self.skipped += 1
        else:
            s.optimizer.step(s.model.params, grads, lr)
        self.step += 1
        return lr, loss

    def fit(self) -> None:
        s = self.s
        self.reporter.on_start(s, self.step)
        if self.step == 0 and not self.rows:
            self.evaluate_now()
            self.save_checkpoint()  # from here on, a killed run can always be resumed
        while self.step < s.total_steps:
            lr, loss = self.train_step()
            self.reporter.on_step(self.step, lr, loss)
            signum = self.stop.signum  # read once: a signal during the writes waits a step
            last = self.step == s.total_steps
            evaluating = self.step % s.eval_every == 0 or last
            saving = self.step % s.checkpoint_every == 0 or last or signum is not None
            if evaluating or saving:
                self._check_params()  # before any write: a checkpoint never holds NaN
            if evaluating:
                self.evaluate_now()
            if self.step in self.snapshot_steps:  # before the checkpoint of the same step,
                self._check_params()  # so a resume from that checkpoint never misses it
                self.save_checkpoint(f"cycle{self.snapshot_steps.index(self.step) + 1}")
            if saving:
                self.save_checkpoint()  # after the evaluation rows of the same step
            if signum is not None:
                raise Interrupted(signum)

    def class_counts(self) -> dict:
        """Training-set class sizes and what the sampler actually drew, by class name."""
        names = self.s.data.info.class_names
        train = np.bincount(self.s.data.train.y, minlength=self.K)
        return {"train": dict(zip(names, train.tolist(), strict=True)),
                "sampled": dict(zip(names, self.sampled.tolist(), strict=True))}

    def _check_params(self) -> None:
        model = self.s.model
        for what, arrays in (("parameter", model.params), ("model state", model.state)):
            for k, v in arrays.items():
                if not np.isfinite(v).all():
                    raise Diverged(f"step {self.step}: {what} {k} contains NaN or inf")


def trainer_for(setup):
    """The trainer class of a setup: Trainer, or the one the setup names (text models:
    seqtrain.TextTrainer)."""
    return getattr(setup, "trainer", Trainer)
