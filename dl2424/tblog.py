"""TensorBoard event files in the run folder, written as the run trains, when the optional
`tensorboard` package is installed (`pip install 'dl2424[tensorboard]'`): `tensorboard
--logdir runs` then shows every run live. Nothing here is needed to train.

Scalars per evaluation: loss/{train,val}, cost/{train,val}, accuracy/{train,val} (and any
other val_*_acc), lr; at the end of a completed run, the row-normalised confusion matrices
(confusion/val, confusion/test) as images. A resumed run starts its file with TensorBoard's
purge marker, so the steps recomputed after the checkpoint replace the old ones.
DL2424_TENSORBOARD=0 turns it off.
"""

from __future__ import annotations

import importlib.util
import io
import os
import time
from pathlib import Path

import numpy as np

from . import rundir
from .hooks import Reporter, Reporters


def available() -> bool:
    if os.environ.get("DL2424_TENSORBOARD", "1") == "0":
        return False
    return importlib.util.find_spec("tensorboard") is not None


def tag(column: str) -> str | None:
    """metrics.csv column -> TensorBoard tag: train_loss -> loss/train, val_unseen_acc ->
    accuracy/val_unseen; lr -> lr; step and epoch -> None."""
    if column == "lr":
        return "lr"
    split, _, metric = column.rpartition("_")
    name = {"loss": "loss", "cost": "cost", "acc": "accuracy"}.get(metric)
    return f"{name}/{split}" if name and split else None


class TensorBoardReporter(Reporter):
    """Writes the run's evaluations as TensorBoard events (see the module docstring)."""

    def __init__(self, run: Path):
        self.run = run
        self.writer = None

    def on_start(self, setup, start_step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.writer = EventFileWriter(str(self.run), flush_secs=30)
        if start_step:  # hide what the interrupted process logged after its checkpoint
            self.writer.add_event(Event(step=start_step, wall_time=time.time(),
                                        session_log=SessionLog(status=SessionLog.START)))

    def _add(self, step: int, values: list) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        self.writer.add_event(Event(step=step, wall_time=time.time(),
                                    summary=Summary(value=values)))

    def on_eval(self, row: dict) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=t, simple_value=float(v)) for k, v in row.items()
                  if (t := tag(k)) is not None]
        self._add(int(row["step"]), values)
        self.writer.flush()  # live: one evaluation is worth a write

    def on_end(self, summary: dict) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        images = []
        for split in ("val", "test"):
            f = rundir.confusion_file(self.run, split)
            if f.is_file():
                names, matrix = rundir.read_confusion(f)
                png, (h, w) = confusion_png(matrix, names, f"{split}, end of training")
                images.append(Summary.Value(tag=f"confusion/{split}", image=Summary.Image(
                    height=h, width=w, colorspace=4, encoded_image_string=png)))
        if images:
            self._add(int(summary.get("steps") or 0), images)
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def confusion_png(matrix: np.ndarray, names: list[str], title: str
                  ) -> tuple[bytes, tuple[int, int]]:
    """A row-normalised confusion heat map as PNG bytes and its (height, width) in pixels."""
    from matplotlib.figure import Figure

    K = len(names)
    n = matrix.sum(axis=1, keepdims=True)
    pct = 100 * np.divide(matrix, n, out=np.zeros(matrix.shape), where=n > 0)
    side = min(max(4.0, 0.35 * K + 2.2), 9.0)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(K), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(K), names, fontsize=8)
    ax.set(xlabel="predicted class", ylabel="true class", title=f"confusion ({title})")
    fig.colorbar(im, ax=ax, label="% of the true class")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    w, h = (round(v * 80) for v in fig.get_size_inches())
    return buf.getvalue(), (h, w)


def attach(reporter: Reporter | None, run: Path) -> Reporter:
    """`reporter` plus a TensorBoardReporter when tensorboard is installed."""
    reporter = reporter or Reporter()
    return Reporters(reporter, TensorBoardReporter(run)) if available() else reporter
