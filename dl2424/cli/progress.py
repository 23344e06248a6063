"""How a training run looks: one line per evaluation (metrics, elapsed time, updates per
second), and in a terminal a rich progress bar below those lines."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..trainer import Reporter


def _fmt_row(row: dict, elapsed: float, rate: float | None) -> str:
    speed = f"{rate:7.1f} upd/s" if rate is not None else "      – upd/s"
    if "smooth_loss" in row:  # a text model's row (dl2424/seqtrain.py)
        val = row.get("val_loss", float("nan"))
        return (f"step {row['step']:>7}  epoch {row['epoch']:7.3f}  lr {row['lr']:.2e}  "
                f"loss {row['loss']:.4f}  smooth loss {row['smooth_loss']:.4f}"
                + (f"  val loss {val:.4f}" if val == val else "") + f"  {_clock(elapsed)} {speed}")
    return (f"step {row['step']:>6}  epoch {row['epoch']:7.2f}  lr {row['lr']:.2e}  "
            f"train loss {_loss(row['train_loss'])} acc {row['train_acc']:.4f}  "
            f"val loss {_loss(row['val_loss'])} acc {row['val_acc']:.4f}  "
            f"{_clock(elapsed)} {speed}")


def _loss(v: float) -> str:
    """4 decimals, or 3 significant digits once a loss grows huge (1.23e+28, not 29 digits)."""
    return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.3g}"


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


class RichReporter(Reporter):
    def __init__(self, console: Console, quiet: bool = False):
        self.console, self.quiet = console, quiet
        self.progress = None
        self.last_val = float("nan")
        self.t0, self.step0 = time.perf_counter(), 0
        self.last_step = None  # (step, lr, loss, updates/s) of the latest update

    def on_start(self, setup, start_step):
        self.t0, self.step0 = time.perf_counter(), start_step
        e = setup.exp
        self.console.print(
            f"[bold]{e.name}[/]: {e.model.type} on {e.data.type}, {setup.total_steps} updates "
            f"({setup.steps_per_epoch}/epoch, batch {e.train.batch_size}), "
            f"{setup.model.n_params():,} params, {e.dtype}"
            + (f", resuming at step {start_step}" if start_step else ""), highlight=False)
        if self.console.is_terminal and not self.quiet:
            self.progress = Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                TextColumn("<"), TimeRemainingColumn(),
                console=self.console, transient=False)
            self.task = self.progress.add_task("training", total=setup.total_steps,
                                               completed=start_step, stats="")
            self.progress.start()

    def on_step(self, step, lr, loss):
        if self.progress is not None:
            elapsed = time.perf_counter() - self.t0
            self.last_step = (step, lr, loss, (step - self.step0) / elapsed if elapsed else 0.0)
            self._refresh()

    def _refresh(self):
        step, lr, loss, rate = self.last_step
        self.progress.update(self.task, completed=step,
                             stats=f"lr {lr:.2e} loss {_loss(loss)} val acc "
                             f"{self.last_val:.3f} {rate:.0f} upd/s")

    def on_eval(self, row):
        self.last_val = row.get("val_acc", row.get("smooth_loss"))
        if self.progress is not None and self.last_step is not None:
            self._refresh()  # the bar shows this evaluation, not the one before
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.t0
        done = row["step"] - self.step0
        rate = done / elapsed if done > 0 and elapsed > 0 else None
        # with a progress bar, rich prints the line above the bar, which stays at the bottom
        self.console.print(_fmt_row(row, elapsed, rate), highlight=False, soft_wrap=True)

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_end(self, summary):
        self.close()
