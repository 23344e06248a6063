"""How a training run looks in the terminal: a rich progress bar, or plain lines in a pipe."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..trainer import Reporter


def _fmt_row(row: dict) -> str:
    if "smooth_loss" in row:  # a text model's row (dl2424/seqtrain.py)
        val = f"  val loss {row['val_loss']:.4f}" if row.get("val_loss") == row.get(
            "val_loss") and "val_loss" in row else ""
        return (f"step {row['step']:>7}  epoch {row['epoch']:7.3f}  lr {row['lr']:.2e}  "
                f"loss {row['loss']:.4f}  smooth loss {row['smooth_loss']:.4f}{val}")
    return (f"step {row['step']:>6}  epoch {row['epoch']:7.2f}  lr {row['lr']:.2e}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}")


class RichReporter(Reporter):
    def __init__(self, console: Console, quiet: bool = False):
        self.console, self.quiet = console, quiet
        self.progress = None
        self.last_val = float("nan")

    def on_start(self, setup, start_step):
        e = setup.exp
        self.console.print(
            f"[bold]{e.name}[/]: {e.model.type} on {e.data.type}, {setup.total_steps} updates "
            f"({setup.steps_per_epoch}/epoch, batch {e.train.batch_size}), "
            f"{setup.model.n_params():,} params, {e.dtype}"
            + (f", resuming at step {start_step}" if start_step else ""), highlight=False)
        if self.console.is_terminal and not self.quiet:
            self.progress = Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                console=self.console, transient=False)
            self.task = self.progress.add_task("training", total=setup.total_steps,
                                               completed=start_step, stats="")
            self.progress.start()

    def on_step(self, step, lr, loss):
        if self.progress is not None:
            self.progress.update(self.task, completed=step,
                                 stats=f"lr {lr:.2e} loss {loss:.3f} val acc {self.last_val:.3f}")

    def on_eval(self, row):
        self.last_val = row.get("val_acc", row.get("smooth_loss"))
        if self.progress is None and not self.quiet:
            self.console.print(_fmt_row(row), highlight=False, soft_wrap=True)

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_end(self, summary):
        self.close()
