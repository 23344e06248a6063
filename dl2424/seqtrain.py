"""Training a character language model (DD2424 A4): truncated BPTT through a text.

The hand-out's loop with B = 1 and order sequential: e advances by seq_length, hprev is
carried from one piece to the next and reset (with e) at the end of each epoch; smooth
loss = .999 smooth + .001 loss, logged every eval_every updates (and after update 1);
synth_length characters sampled every synth_every updates from hprev and the piece's first
input; the parameters of the lowest smooth loss are the best ones (best.npz).
Other orders (random locations, shuffled chunks, lines) and B > 1 are the bonus items.

TextTrainer has the interface experiment.execute drives (fit, step, rows, best, ...) and,
like Trainer, no path: what it keeps goes to its reporter's hooks (rundir.Recorder writes
metrics.csv, samples.json, best.npz and checkpoint.npz), so text runs get the same run
folder, summary, lock, signals and resume as every run.
The parameters live in one flat vector (the params dict holds views into it), so
clipping and the optimizer update are a handful of whole-vector operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint
from .build import build_model, build_schedule
from .config import Experiment
from .data.text import TextBundle
from .errors import UserError
from .models.rnn import LanguageModel, sample
from .registry import OPTIMIZERS
from .rng import Stream, generator
from .trainer import Diverged, Interrupted, Reporter, StopFlag

SMOOTH = 0.999
DEFAULT_LOG_EVERY = 100
DEFAULT_CHECKPOINT_EVERY = 5000


# ---------------------------------------------------------------------------- orders

class Sequential:
    """B streams, each a contiguous 1/B of the text, read seq_length at a time in order;
    the state is carried and reset at the start of every epoch (B = 1: the hand-out)."""

    def __init__(self, seq, T, B):
        self.seq, self.T, self.B = seq, T, B
        L = len(seq) // B
        self.starts = np.arange(B)[:, None] * L
        self.span = np.arange(T + 1)
        self.steps_per_epoch = (L - T - 2) // T + 1  # e <= L - T - 2, as the hand-out
        if L - T - 2 < 0:
            raise UserError(f"train.batch_size: {B} streams of the text are shorter than "
                            f"seq_length + 2 characters; use fewer streams or a shorter "
                            "seq_length")

    def batch(self, step):
        j = step % self.steps_per_epoch
        idx = self.starts + (j * self.T) + self.span
        win = self.seq[idx]
        return win[:, :-1], win[:, 1:], None, j == 0


class RandomLocations:
    """B pieces from random locations, each from a zero state (2022 bonus)."""

    def __init__(self, seq, T, B, seed):
        self.seq, self.T, self.B, self.seed = seq, T, B, seed
        self.span = np.arange(T + 1)
        self.steps_per_epoch = max(1, (len(seq) - 1) // (B * T))

    def batch(self, step):
        rng = generator(self.seed, Stream.STEP, step)
        starts = rng.integers(0, len(self.seq) - self.T, self.B)
        win = self.seq[starts[:, None] + self.span]
        return win[:, :-1], win[:, 1:], None, True


class Chunks:
    """The text cut into chunks, shuffled every epoch; B chunks are read side by side in
    order, the state carried within a chunk and reset at its start (2022 bonus)."""

    def __init__(self, seq, T, B, L, seed):
        self.seq, self.T, self.B, self.L, self.seed = seq, T, B, L, seed
        self.n_chunks = (len(seq) - 1) // L
        if self.n_chunks < B:
            raise UserError(f"data.chunk_length: {L} gives {self.n_chunks} chunks, fewer than "
                            f"train.batch_size {B}; use shorter chunks or a smaller batch")
        self.per_chunk = (L - 1) // T
        self.steps_per_epoch = (self.n_chunks // B) * self.per_chunk
        self.span = np.arange(T + 1)
        self._perm, self._epoch = None, -1

    def batch(self, step):
        epoch, j = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._perm = generator(self.seed, Stream.EPOCH, epoch).permutation(self.n_chunks)
            self._epoch = epoch
        g, k = divmod(j, self.per_chunk)
        chunks = self._perm[g * self.B:(g + 1) * self.B]
        win = self.seq[(chunks * self.L + k * self.T)[:, None] + self.span]
        return win[:, :-1], win[:, 1:], None, k == 0


class Lines:
    """B whole lines per update (shuffled every epoch), each from a zero state; padding
    after a line's end-of-sequence character is masked out of the loss."""

    def __init__(self, X, Y, B, seed):
        self.X, self.Y, self.B, self.seed = X, Y, B, seed
        self.steps_per_epoch = len(X) // B
        if self.steps_per_epoch < 1:
            raise UserError(f"train.batch_size: {B} is more than the {len(X)} training lines; "
                            "use a smaller batch")
        self.lengths = (Y >= 0).sum(axis=1)
        self._perm, self._epoch = None, -1
        self.last_idx = None

    def batch(self, step):
        epoch, j = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._perm = generator(self.seed, Stream.EPOCH, epoch).permutation(len(self.X))
            self._epoch = epoch
        idx = self._perm[j * self.B:(j + 1) * self.B]
        self.last_idx = idx
        L = int(self.lengths[idx].max())
        x, y = self.X[idx, :L], self.Y[idx, :L]
        mask = y >= 0
        return x, np.maximum(y, 0), (None if mask.all() else mask), True


def make_order(data: TextBundle, B: int, seed: int):
    p, tr = data.params, data.train
    if p.mode == "lines":
        return Lines(tr.X_lines, tr.Y_lines, B, seed)
    if p.order == "random":
        return RandomLocations(tr.seq, p.seq_length, B, seed)
    if p.order == "chunks":
        return Chunks(tr.seq, p.seq_length, B, p.chunk_length, seed)
    return Sequential(tr.seq, p.seq_length, B)


# ---------------------------------------------------------------------------- setup

@dataclass
class TextSetup:
    exp: Experiment
    data: TextBundle
    model: LanguageModel
    optimizer: object
    schedule: object
    order: object
    total_steps: int
    eval_every: int
    checkpoint_every: int
    val_every: int

    @property
    def steps_per_epoch(self) -> int:
        return self.order.steps_per_epoch

    @property
    def trainer(self):
        return TextTrainer


def build_text(exp: Experiment, data: TextBundle) -> TextSetup:
    """The text counterpart of build.build: model, optimizer, schedule, batch order."""
    if exp.model.type != "rnn":
        raise UserError(f"model.type: the text dataset trains a language model (rnn), not "
                        f"{exp.model.type!r}")
    t = exp.train
    if t.clip is not None and t.clip_norm is not None:
        raise UserError("train.clip and train.clip_norm: give one way of clipping, not both")
    order = make_order(data, t.batch_size, exp.seed)
    model = build_model(exp, data.info)
    optimizer = OPTIMIZERS[exp.optimizer.type].factory(exp.optimizer.params)
    schedule, total = build_schedule(exp, order.steps_per_epoch)
    eval_every = min(t.eval_every or DEFAULT_LOG_EVERY, total)
    ckpt_every = t.checkpoint_every or max(eval_every, min(DEFAULT_CHECKPOINT_EVERY, total))
    return TextSetup(exp, data, model, optimizer, schedule, order, total, eval_every,
                     ckpt_every, t.val_every or ckpt_every)


def validation_loss(model: LanguageModel, data: TextBundle, reduction: str,
                    streams: int = 64) -> float:
    """Loss on the held-out part, on the training loss's scale (per seq_length piece for
    sum over a book, per line for sum over lines, per character for mean)."""
    p, va = data.params, data.val
    nll = n = 0.0
    if p.mode == "book":
        L = (len(va.seq) - 1) // streams
        if L < 1:
            streams, L = 1, len(va.seq) - 1
        base = np.arange(streams)[:, None] * L
        state = model.zero_state(streams)
        for e in range(0, L, p.seq_length):
            k = min(p.seq_length, L - e)
            idx = base + e + np.arange(k + 1)
            win = va.seq[idx]
            s, c, state = model.seq_nll(win[:, :-1], win[:, 1:], state)
            nll, n = nll + s, n + c
        per_char = nll / n
        return per_char if reduction == "mean" else per_char * p.seq_length
    for i in range(0, len(va.X_lines), 256):
        x, y = va.X_lines[i:i + 256], va.Y_lines[i:i + 256]
        L = int((y >= 0).sum(axis=1).max())
        x, y = x[:, :L], y[:, :L]
        s, c, _ = model.seq_nll(x, np.maximum(y, 0), model.zero_state(len(x)), y >= 0)
        nll, n = nll + s, n + c
    return nll / n if reduction == "mean" else nll / len(va.X_lines)


# ---------------------------------------------------------------------------- trainer

class TextTrainer:
    def __init__(self, setup: TextSetup, reporter: Reporter | None = None,
                 stop: StopFlag | None = None):
        self.s = setup
        self.reporter = reporter or Reporter()
        self.stop = stop or StopFlag()
        self.rows: list[dict] = []
        self.samples: list[dict] = []
        self.best: dict | None = None
        self.best_params: np.ndarray | None = None
        self.best_saved = True
        self.step = 0
        self.skipped = 0
        self.saved_step: int | None = None
        self.smooth: float | None = None
        model = setup.model
        self.B = setup.exp.train.batch_size
        model.state = {f"state{i}": a for i, a in enumerate(model.zero_state(self.B))}
        self.sampled = np.zeros(setup.data.info.n_classes, np.int64)
        self._pack()

    def _pack(self) -> None:
        """Move the parameters into one flat vector; params[k] become views of it."""
        params = self.s.model.params
        self.keys = list(params)
        self.flat = np.concatenate([params[k].ravel() for k in self.keys])
        i = 0
        for k in self.keys:
            n = params[k].size
            params[k] = self.flat[i:i + n].reshape(params[k].shape)
            i += n

    def epoch(self) -> int:
        return self.step // self.s.steps_per_epoch

    # -- one update -------------------------------------------------------------------
    def train_step(self) -> tuple[float, float]:
        s, t, model = self.s, self.s.exp.train, self.s.model
        x, y, mask, reset = s.order.batch(self.step)
        if isinstance(s.order, Lines) and len(self.sampled):
            self.sampled += np.bincount(s.data.train.labels[s.order.last_idx],
                                        minlength=len(self.sampled))
        state = model.zero_state(len(x)) if reset else tuple(model.state.values())
        loss, grads, state = model.seq_loss(x, y, state, mask)
        g = np.concatenate([grads[k].ravel() for k in self.keys])
        if t.clip is not None:
            np.clip(g, -t.clip, t.clip, out=g)
        elif t.clip_norm is not None:
            norm = float(np.sqrt(g @ g))
            if norm > t.clip_norm:
                g *= t.clip_norm / norm
        lr = s.schedule(self.step)
        if not math.isfinite(loss):
            if t.on_nan == "stop":
                raise Diverged(f"step {self.step}: training loss is {loss} (lr {lr:.3g})")
            self.skipped += 1
            state = model.zero_state(len(x))
        else:
            s.optimizer.step({"theta": self.flat}, {"theta": g}, lr)
            self.smooth = loss if self.smooth is None else SMOOTH * self.smooth + (
                1 - SMOOTH) * loss
        model.state = {f"state{i}": a for i, a in enumerate(state)}
        self.step += 1
        return lr, loss

    # -- what is logged ----------------------------------------------------------------
    def log_row(self, lr: float, loss: float, with_val: bool) -> dict:
        s = self.s
        row = {"step": self.step, "epoch": round(self.step / s.steps_per_epoch, 6), "lr": lr,
               "loss": loss, "smooth_loss": self.smooth}
        if s.data.val is not None:
            row["val_loss"] = (validation_loss(s.model, s.data, s.model.reduction)
                               if with_val else math.nan)
        self.rows.append(row)
        if self.smooth is not None and (self.best is None
                                        or self.smooth < self.best["smooth_loss"]):
            self.best = dict(row)
            self.best_params = self.flat.copy()
            self.best_saved = False
        self.reporter.on_eval(row)
        return row

    def lr_at(self, step: int) -> float:
        """The learning rate a metrics row at `step` records: that of the update before it."""
        return self.s.schedule(max(step - 1, 0))

    def evaluate_now(self) -> dict:
        """A metrics row now, with the validation loss (train --dry-run times this)."""
        return self.log_row(self.s.schedule(self.step), math.nan, True)

    def synthesize(self) -> None:
        """synth_length characters from the current state (the hand-out: h0 = hprev, x0 =
        the first input of the piece about to be read), recorded with the update number."""
        s = self.s
        data, model, vocab = s.data, s.model, s.data.vocab
        rng = generator(s.exp.seed, Stream.SAMPLE, self.step)
        cls = None
        if data.params.mode == "lines":
            cls = vocab.classes[rng.integers(len(vocab.classes))] if vocab.classes else None
            x0, state, stop = vocab.start(cls), model.zero_state(1), vocab.chars.index("\n")
        else:
            x, _, _, reset = s.order.batch(self.step)
            x0 = int(x[0, 0])
            state = model.zero_state(1) if reset else tuple(a[:1] for a in model.state.values())
            stop = None
        out = sample(model, x0, state, s.exp.train.synth_length, rng, stop=stop)
        self.samples.append({"step": self.step, "epoch": round(self.epoch_float(), 6),
                             "smooth_loss": self.smooth, "class": cls,
                             "text": vocab.decode(out)})

    def epoch_float(self) -> float:
        return self.step / self.s.steps_per_epoch

    # -- files ------------------------------------------------------------------------
    def _meta(self) -> dict:
        return {"step": self.step, "total_steps": self.s.total_steps,
                "config_hash": self.s.exp.digest(), "seed": self.s.exp.seed,
                "best": self.best, "smooth_loss": self.smooth, "skipped_batches": self.skipped,
                "sampled": self.sampled.tolist(),
                "rng": {"scheme": "PCG64([seed, stream, key])", "epoch": self.epoch()}}

    def save_checkpoint(self) -> None:
        """metrics.csv, samples.json and (when it improved) best.npz, then checkpoint.npz,
        all through the reporter's hooks (rundir.Recorder writes them)."""
        self.reporter.on_metrics(self.rows, None)
        self.reporter.on_samples(self.samples)
        if not self.best_saved and self.best_params is not None:
            current = self.flat.copy()
            self.flat[:] = self.best_params
            meta = self._meta() | {"step": self.best["step"]}
            self.reporter.on_checkpoint("best", self.s.model, None, meta)
            self.flat[:] = current
            self.best_saved = True
        self.reporter.on_checkpoint("last", self.s.model, self.s.optimizer, self._meta())
        self.saved_step = self.step

    def resume_from(self, ckpt: checkpoint.Checkpoint, rows: list[dict], samples: list[dict],
                    best_file: Path | None, where: str) -> None:
        """Continue from a checkpoint: restore the arrays, the smooth loss and the carried
        state, and keep the metrics rows and samples up to its step; the best parameters
        so far come from best_file (best.npz), when the run has one."""
        model = self.s.model
        checkpoint.restore(ckpt, model, self.s.optimizer, where)
        self._pack()
        meta = ckpt.meta
        self.step = self.saved_step = int(meta["step"])
        self.smooth, self.best = meta.get("smooth_loss"), meta.get("best")
        self.skipped = int(meta.get("skipped_batches", 0))
        self.sampled = np.array(meta["sampled"], dtype=np.int64)
        self.rows = [r for r in rows if r["step"] <= self.step]
        self.samples = [r for r in samples if r["step"] <= self.step]
        if self.best is not None and best_file is not None:
            best = checkpoint.load(best_file).params
            if set(best) != set(self.keys) or any(
                    best[k].shape != model.params[k].shape for k in self.keys):
                raise UserError(f"{best_file}: its parameters do not match the model; the run "
                                "folder was changed by hand")
            self.best_params = np.concatenate([best[k].ravel() for k in self.keys])

    # -- the loop ---------------------------------------------------------------------
    def fit(self) -> None:
        s, t = self.s, self.s.exp.train
        self.reporter.on_start(s, self.step)
        if self.step == 0 and not self.rows:
            if t.synth_every:
                self.synthesize()
            self.save_checkpoint()
        while self.step < s.total_steps:
            lr, loss = self.train_step()
            step = self.step
            self.reporter.on_step(step, lr, loss)
            signum = self.stop.signum
            last = step == s.total_steps
            saving = step % s.checkpoint_every == 0 or last or signum is not None
            if step % s.eval_every == 0 or step == 1 or last:
                self.log_row(lr, loss, step % s.val_every == 0 or last)
            if t.synth_every and step % t.synth_every == 0:
                self.synthesize()
            if saving:
                self._check_params()
                self.save_checkpoint()
            if signum is not None:
                raise Interrupted(signum)

    def _check_params(self) -> None:
        if not np.isfinite(self.flat).all():
            raise Diverged(f"step {self.step}: the parameters contain NaN or inf")

    def class_counts(self) -> dict:
        data = self.s.data
        if data.params.mode == "lines" and data.vocab.classes:
            names = list(data.vocab.classes)
            train = np.bincount(data.train.labels, minlength=len(names))
            return {"train": dict(zip(names, train.tolist(), strict=True)),
                    "sampled": dict(zip(names, self.sampled.tolist(), strict=True))}
        seq = data.train.seq if data.train.seq is not None else \
            data.train.Y_lines[data.train.Y_lines >= 0]
        counts = np.bincount(seq, minlength=data.vocab.K)
        return {"characters": dict(zip(data.vocab.chars, counts.tolist(), strict=True))}

    def test_metrics(self) -> dict:
        return {}
