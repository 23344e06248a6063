"""Shared by the reliability tests: a small config that exercises every piece of training state,
and checks that two run folders hold bit-identical results.

    RICH: a config with batch-norm state, dropout and augmentation (step RNGs), momentum,
      a cyclic schedule with end-of-cycle snapshots (steps 12 and 24), a training-eval subset,
      label smoothing, and checkpoints (every 3) not aligned with evaluations (every 4);
      5 updates per epoch on write_cifar_python(40).
    arrays(npz) -> {name: array}; meta(npz) -> dict
    assert_same_run(ref, run): metrics, checkpoints, best, confusions, summary all equal
    assert_resumable(run): what a killed run must leave (loadable checkpoint, complete rows)
    snapshot(folder) -> {relative path: bytes}, to show a failed command changed nothing
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from dl2424 import checkpoint

RICH = {
    "name": "rich", "seed": 7,
    "data": {"type": "cifar10", "split": "course", "preprocess": "zscore",
             "augment": {"flip": 0.5, "translate": 2}},
    "model": {"type": "mlp", "hidden": [12], "l2": 0.001, "init": "he", "batchnorm": True,
              "keep": 0.8},
    "optimizer": {"type": "momentum", "rho": 0.9},
    "schedule": {"type": "cyclic", "eta_min": 0.001, "eta_max": 0.05, "n_s": 6},
    "train": {"batch_size": 8, "steps": 26, "eval_every": 4, "checkpoint_every": 3,
              "eval_train_subset": 20, "label_smoothing": 0.1, "snapshots": True},
}


def arrays(npz: Path) -> dict[str, np.ndarray]:
    with np.load(npz, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}


def meta(npz: Path) -> dict:
    with np.load(npz, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def assert_same_arrays(a: Path, b: Path) -> None:
    x, y = arrays(a), arrays(b)
    assert sorted(x) == sorted(y), (a, b)
    for k in x:
        assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, k
        assert x[k].tobytes() == y[k].tobytes(), f"{b}: {k} differs from {a}"


def assert_same_run(ref: Path, run: Path) -> None:
    """Bit for bit what an uninterrupted run leaves (npz zip timestamps aside)."""
    assert (ref / "metrics.csv").read_bytes() == (run / "metrics.csv").read_bytes()
    for name in ("checkpoint.npz", "best.npz"):
        assert_same_arrays(ref / name, run / name)
        assert meta(ref / name) == meta(run / name), name
    for name in ("confusion_val.csv", "confusion_test.csv", "class_counts.json"):
        assert (ref / name).is_file() == (run / name).is_file(), name
        if (ref / name).is_file():  # names data has no test split
            assert (ref / name).read_bytes() == (run / name).read_bytes(), name
    if (ref / "confusion").is_dir():
        files = sorted(f.name for f in (ref / "confusion").iterdir())
        assert files == sorted(f.name for f in (run / "confusion").iterdir())
        for f in files:
            assert (ref / "confusion" / f).read_bytes() == (run / "confusion" / f).read_bytes()
    snaps = sorted(f.name for f in (ref / "snapshots").glob("*.npz")) if (
        ref / "snapshots").is_dir() else []
    assert snaps == (sorted(f.name for f in (run / "snapshots").glob("*.npz"))
                     if (run / "snapshots").is_dir() else [])
    for f in snaps:
        assert_same_arrays(ref / "snapshots" / f, run / "snapshots" / f)
    s_ref, s_run = (json.loads((r / "summary.json").read_text()) for r in (ref, run))
    assert s_run["status"] == "completed", s_run
    for k in ("steps", "checkpoint_step", "final", "best", "test", "test_at_best",
              "skipped_batches", "config_hash"):
        assert json.dumps(s_ref.get(k)) == json.dumps(s_run.get(k)), k  # NaN-safe, exact
    assert not list(run.rglob("*.tmp")), "temp files left behind"


def complete_rows(file: Path) -> list[list[str]]:
    """The data rows of metrics.csv; asserts every row is whole and numeric."""
    text = file.read_text()
    assert text.endswith("\n"), "last row cut short"
    rows = list(csv.reader(text.splitlines()))
    header, body = rows[0], rows[1:]
    assert header[0] == "step"
    for r in body:
        assert len(r) == len(header), r
        [float(v) for v in r]  # every cell a number
    return body


def assert_resumable(run: Path, eval_every: int) -> int:
    """A stopped run's folder: a loadable checkpoint, whole metrics rows, and a row for every
    evaluation up to the checkpoint's step. Returns that step."""
    ckpt = checkpoint.load(run / "checkpoint.npz")
    step = ckpt.meta["step"]
    for k, v in ckpt.params.items():
        assert np.isfinite(v).all(), k
    steps = [int(r[0]) for r in complete_rows(run / "metrics.csv")]
    assert steps == sorted(steps)
    assert set(range(0, step + 1, eval_every)) <= set(steps), (step, steps)
    return step


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes()
            for f in sorted(folder.rglob("*")) if f.is_file()}
