"""Classify image files with a trained CIFAR-10 run, and show test images with predictions.

A file of any size becomes one 32x32 CIFAR row: its centre square, resized (area average), in
the plane order R, G, B; then the run's saved normalisation (normalisation.npz) turns it into
the input the model was trained on. Pillow (a matplotlib dependency) decodes the files.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from . import rundir
from .atomic import atomic_open
from .data import cifar
from .data.cifar import Normalisation
from .errors import UserError
from .predict import Prediction, load_model

SIDE = 32


def read_image(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """Inputs: an image file (PNG, JPEG, ... any size and mode).
    Returns: (3072,) uint8 in CIFAR row order, and the file's (width, height)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            size = im.size
            rgb = im.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{path}: not an image Pillow can read ({e}); give a PNG or "
                        "JPEG file") from None
    w, h = size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    # Shrinking averages the pixels each output pixel covers; enlarging a small file
    # interpolates.
    how = Image.Resampling.BOX if s >= SIDE else Image.Resampling.BICUBIC
    small = rgb.resize((SIDE, SIDE), how, box=box)
    return np.asarray(small, dtype=np.uint8).transpose(2, 0, 1).reshape(-1), size


class ImagePredictor:
    def __init__(self, run: Path, weights: str = "best"):
        self.model, self.info, self.exp = load_model(run, weights)
        if self.info.meta.get("image_shape") != [3, SIDE, SIDE]:
            raise UserError(f"{run}: not a run trained on 32x32 colour images; predict "
                            "--image needs a CIFAR-10 run (--name takes surname runs)")
        if not (run / rundir.NORMALISATION).is_file():
            raise UserError(f"{run}: no {rundir.NORMALISATION}; the run was trained before "
                            "image runs saved their pixel statistics. Train it again (or "
                            "resume an unfinished one) to predict images")
        self.norm = Normalisation.from_arrays(rundir.read_normalisation(run))
        self.run = run

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """Inputs: X (n, 3072) uint8 pixels. Returns: (n, K) class probabilities."""
        return self.model.proba(self.norm(X, np.dtype(self.exp.dtype)))

    def __call__(self, files: list[Path]) -> list[Prediction]:
        read = [read_image(f) for f in files]
        P = self.proba(np.stack([x for x, _ in read]))
        out = []
        for f, (_, (w, h)), p in zip(files, read, P, strict=True):
            order = np.argsort(-p, kind="stable")
            how = f"{w}×{h}" + (", centre square" if w != h else "") + f" → {SIDE}×{SIDE}"
            out.append(Prediction(str(f), how, [(self.class_names[k], float(p[k]))
                                                for k in order]))
        return out


def figure_of_test_images(predictor: ImagePredictor, data_dir: Path, n: int,
                          out: Path) -> tuple[int, int]:
    """Draw the first n test images with true and predicted class (green right, red wrong)
    into `out`. Returns (right, n)."""
    from matplotlib.figure import Figure

    X, y, names = cifar.read_test(predictor.exp.data.params, data_dir)
    if names != predictor.class_names:
        raise UserError(f"the test batch's classes {names} are not the run's "
                        f"{predictor.class_names}; point --data-dir at the run's dataset")
    if not 1 <= n <= len(y):
        raise UserError(f"--from-test: give 1..{len(y)} images, got {n}")
    X, y = X[:n], y[:n]
    P = predictor.proba(X)
    pred = P.argmax(axis=1)
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(max(1.45 * cols + 0.2, 5.5), 1.75 * rows + 0.5),
                 layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(X[i].reshape(3, SIDE, SIDE).transpose(1, 2, 0), interpolation="nearest")
        ok = pred[i] == y[i]
        ax.set_title(f"true {names[y[i]]}\npred {names[pred[i]]} {100 * P[i, pred[i]]:.0f}%",
                     fontsize=8, color="tab:green" if ok else "tab:red")
    right = int((pred == y).sum())
    fig.suptitle(f"{predictor.run.name}: first {n} test images, {right}/{n} right",
                 fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    with atomic_open(out, "wb", fsync=False) as f:
        f.write(buf.getvalue())
    return right, n
