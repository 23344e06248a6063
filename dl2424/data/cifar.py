"""CIFAR-10 from the official python-pickle or MATLAB batches: splits, preprocessing, augmentation.

Rows of X keep the CIFAR order: 1024 red values, then green, then blue, each 32x32 row-major.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.io
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from ..errors import UserError
from ..registry import DATASETS, Params
from .bundle import DataBundle, DataInfo, Split
from .paths import Found, search_dirs

NAME = "cifar10"
FOLDERS = {"python": "cifar-10-batches-py", "matlab": "cifar-10-batches-mat"}
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
META = "batches.meta"
IMAGE_SHAPE = (3, 32, 32)
D = 3 * 32 * 32


class Augment(Params):
    """Random changes to each training mini-batch (course A2 bonus: flips and translations)."""

    flip: float = Field(0.0, ge=0.0, le=1.0)  # probability of a horizontal flip
    translate: NonNegativeInt = Field(0, le=31)  # shifts drawn from [-t, t] per axis, zero fill


class CifarParams(Params):
    format: Literal["auto", "python", "matlab"] = "auto"
    # course: data_batch_1 / data_batch_2 / test_batch; all: 5 batches, the last n_val for val
    split: Literal["course", "all"] = "course"
    n_val: PositiveInt = 1000
    n_train: PositiveInt | None = None  # keep only the first n training images
    preprocess: Literal["zscore", "scale", "center", "scale_center"] = "zscore"
    augment: Augment | None = None

    @model_validator(mode="after")
    def _n_val_needs_all(self):
        # Compare with the default, not with the keys given: a resolved config written to a
        # run folder spells out every default and must validate again on resume.
        if self.split == "course" and self.n_val != 1000:
            raise ValueError("n_val applies to split: all (split: course validates on "
                             "data_batch_2)")
        return self


# ---------------------------------------------------------------------------- finding files

def batch_file(found: Found, batch: str) -> Path:
    """The file of one batch (or batches.meta) in the python or matlab folder."""
    return found.folder / (batch + ".mat" if found.format == "matlab" else batch)


def _formats(fmt: str) -> list[str]:
    return ["python", "matlab"] if fmt == "auto" else [fmt]


def search_places(data_dir: Path, fmt: str = "auto") -> list[str]:
    """Where `locate` looks, in order, as printable paths and glob patterns."""
    fmts = _formats(fmt)
    return ([str(data_dir / FOLDERS[f]) for f in fmts]
            + [str(data_dir / "*" / FOLDERS[f]) for f in fmts])


def locate(data_dir: Path, fmt: str = "auto") -> Found | None:
    """The first batches folder under data_dir (directly, then one level deeper), or None."""
    found = [Found(d, f) for f in _formats(fmt) for d in search_dirs(data_dir, FOLDERS[f])]
    found.sort(key=lambda c: len(c.folder.relative_to(data_dir).parts))  # stable: direct first
    return found[0] if found else None


def _locate_or_fail(data_dir: Path, fmt: str) -> Found:
    found = locate(data_dir, fmt)
    if found is None:
        places = "\n".join(f"  {s}" for s in search_places(data_dir, fmt))
        raise UserError(
            f"CIFAR-10 batches not found under the data dir {data_dir}. Looked in:\n{places}\n"
            "Download them with `dl2424 data fetch cifar10` (add --format matlab for the .mat "
            "batches), or point --data-dir / DL2424_DATA_DIR at the folder that holds "
            "cifar-10-batches-py/.")
    return found


# ---------------------------------------------------------------------------- reading files

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file must not run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_python(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # a corrupt pickle can raise almost any exception type
        raise UserError(f"{path}: not a readable CIFAR-10 python batch "
                        f"({type(e).__name__}: {e}); delete it and fetch the data again") from e
    if not isinstance(d, dict):
        raise UserError(f"{path}: expected a pickled dict, found {type(d).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _read_matlab(path: Path) -> dict:
    try:
        return scipy.io.loadmat(path)
    except Exception as e:  # scipy raises ValueError, MatReadError, OSError, ... on bad files
        raise UserError(f"{path}: not a readable CIFAR-10 .mat batch "
                        f"({type(e).__name__}: {e}); delete it and fetch the data again") from e


def _read(path: Path, fmt: str) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: file missing from the CIFAR-10 folder {path.parent}; "
                        f"fetch the data again with `dl2424 data fetch cifar10`")
    return _read_matlab(path) if fmt == "matlab" else _read_python(path)


def _as_str(x) -> str:
    if isinstance(x, bytes):
        return x.decode()
    if isinstance(x, np.ndarray):  # a MATLAB cell holds a 1-element char array
        return _as_str(x.ravel()[0]) if x.size else ""
    return str(x).rstrip()


def read_class_names(found: Found) -> list[str]:
    """The label names from batches.meta (python) or batches.meta.mat (MATLAB)."""
    path = batch_file(found, META)
    d = _read(path, found.format)
    if "label_names" not in d:
        raise UserError(f"{path}: no 'label_names' entry (keys: {sorted(map(str, d))})")
    names = [_as_str(x) for x in np.asarray(d["label_names"], dtype=object).ravel()]
    if len(names) < 2 or not all(names):
        raise UserError(f"{path}: 'label_names' should list the class names, got {names}")
    return names


def read_batch(path: Path, fmt: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch file, checked.

    Returns:
    - X: (n, 3072) uint8 images, CIFAR row order
    - y: (n,) int64 labels in 0..n_classes-1
    """
    d = _read(path, fmt)
    missing = [k for k in ("data", "labels") if k not in d]
    if missing:
        raise UserError(f"{path}: missing {', '.join(repr(k) for k in missing)} "
                        f"(keys present: {sorted(map(str, d))})")
    X, y = d["data"], np.asarray(d["labels"])
    if not (isinstance(X, np.ndarray) and X.dtype == np.uint8 and X.ndim == 2
            and X.shape[1] == D):
        desc = f"{X.dtype} {X.shape}" if isinstance(X, np.ndarray) else type(X).__name__
        raise UserError(f"{path}: 'data' must be an N x {D} uint8 array, found {desc}")
    if fmt == "matlab" and y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path}: 'labels' must hold {X.shape[0]} integers (one per image), "
                        f"found {y.dtype} {y.shape}")
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{path}: label {int(y[i])} of image {i} is outside 0..{n_classes - 1}")
    return X, y.astype(np.int64)


# ---------------------------------------------------------------------------- splits

@dataclass
class RawSplits:
    """uint8 images and labels per split, before preprocessing."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    class_names: list[str]
    found: Found


def read_splits(p: CifarParams, data_dir: Path) -> RawSplits:
    """Read the batch files the split scheme needs and cut train / val / test."""
    found = _locate_or_fail(data_dir, p.format)
    class_names = read_class_names(found)

    def batch(name):
        return read_batch(batch_file(found, name), found.format, len(class_names))

    if p.split == "course":
        train, val = batch(TRAIN_BATCHES[0]), batch(TRAIN_BATCHES[1])
    else:
        parts = [batch(b) for b in TRAIN_BATCHES]
        X, y = np.concatenate([x for x, _ in parts]), np.concatenate([t for _, t in parts])
        if p.n_val >= len(y):
            raise UserError(f"cifar10: n_val={p.n_val} leaves no training images "
                            f"({len(y)} in the 5 training batches of {found.folder})")
        cut = len(y) - p.n_val
        train, val = (X[:cut], y[:cut]), (X[cut:], y[cut:])
    if p.n_train is not None:
        if p.n_train > len(train[1]):
            raise UserError(f"cifar10: n_train={p.n_train} but split: {p.split} has only "
                            f"{len(train[1])} training images in {found.folder}")
        train = (train[0][:p.n_train], train[1][:p.n_train])
    return RawSplits(train, val, batch(TEST_BATCH), class_names, found)


def read_test(p: CifarParams, data_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The raw test batch (X uint8 (n, 3072), y) and the class names, nothing else."""
    found = _locate_or_fail(data_dir, p.format)
    class_names = read_class_names(found)
    return (*read_batch(batch_file(found, TEST_BATCH), found.format, len(class_names)), class_names)


# ---------------------------------------------------------------------------- preprocessing

def pixel_sums(X: np.ndarray, chunk: int = 256) -> tuple[int, np.ndarray, np.ndarray]:
    """Exact integer moments of uint8 images, in row chunks to bound the int64 temporaries.

    Inputs: X (n, d) uint8. Returns: n, sum of X (d,) and sum of X**2 (d,), both int64.
    """
    s1 = np.zeros(X.shape[1], np.int64)
    s2 = np.zeros(X.shape[1], np.int64)
    for start in range(0, X.shape[0], chunk):
        c = X[start:start + chunk].astype(np.int64)
        s1 += c.sum(axis=0)
        s2 += (c * c).sum(axis=0)
    return X.shape[0], s1, s2


def feature_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and population std (ddof=0, as np.std) of uint8 images.

    Inputs: X (n, d) uint8. Returns: mean (d,), std (d,) float64, on the 0..255 scale.
    """
    n, s1, s2 = pixel_sums(X)
    var = (n * s2 - s1 * s1) / n**2  # integer numerator: no cancellation error
    return s1 / n, np.sqrt(var)


@dataclass(frozen=True)
class Normalisation:
    """uint8 (n, d) images -> dtype (n, d) model inputs, with statistics of the training set.

    zscore: (x - mean) / std; scale: x / 255; center: x - mean (raw 0..255, the UvA way);
    scale_center: x / 255 - mean / 255. Saved with every image run (normalisation.npz), so
    that `predict --image` treats new images exactly as the training images were treated.
    """

    how: str
    mean: np.ndarray | None  # (d,), on the scale `how` subtracts it at
    std: np.ndarray | None  # (d,), zscore only

    @classmethod
    def fit(cls, how: str, X_train: np.ndarray) -> Normalisation:
        if how == "scale":
            return cls(how, None, None)
        mean, std = feature_stats(X_train)
        std[std == 0] = 1.0  # a constant pixel would divide by zero; it maps to 0 instead
        return cls(how, mean / 255 if how == "scale_center" else mean,
                   std if how == "zscore" else None)

    def __call__(self, X: np.ndarray, dtype: np.dtype = np.dtype(np.float64)) -> np.ndarray:
        out = X.astype(dtype)  # the one conversion; everything below is in place
        if self.how in ("scale", "scale_center"):
            out /= dtype.type(255)
        if self.mean is not None:
            out -= self.mean.astype(dtype)
        if self.std is not None:
            out /= self.std.astype(dtype)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"how": np.array(self.how)}
        arrays |= {k: v for k, v in (("mean", self.mean), ("std", self.std)) if v is not None}
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> Normalisation:
        return cls(str(arrays["how"]), arrays.get("mean"), arrays.get("std"))


def make_preprocess(how: str, X_train: np.ndarray, dtype: np.dtype):
    """A function uint8 (n, d) -> dtype (n, d), its statistics taken from X_train only."""
    norm = Normalisation.fit(how, X_train)
    return lambda X: norm(X, dtype)


# ---------------------------------------------------------------------------- augmentation

@dataclass(frozen=True)
class Augmenter:
    """augment(X, rng) -> a new (n, 3072) batch: each image is flipped horizontally with
    probability `flip`, then shifted by (dy, dx) drawn uniformly from [-translate, translate]^2,
    uncovered pixels set to 0. A dataclass rather than a closure, so a bundle pickles.

    Output pixel (r, c) reads the flipped image at (r - dy, c - dx): the flipped images are
    copied into a zero border of `translate` pixels, and each output is the 32x32 window of
    its padded image at offset (translate - dy, translate - dx), all gathered in one
    indexing (~4x faster than gathering through per-pixel index maps).
    """

    flip: float
    translate: int

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, t = X.shape[0], self.translate
        flips = rng.random(n) < self.flip
        dy, dx = rng.integers(-t, t + 1, size=(2, n))
        C, H, W = IMAGE_SHAPE
        images = X.reshape(n, C, H, W)
        padded = np.zeros((n, C, H + 2 * t, W + 2 * t), X.dtype)
        inner = padded[:, :, t : t + H, t : t + W]
        inner[~flips] = images[~flips]
        inner[flips] = images[flips, :, :, ::-1]
        windows = sliding_window_view(padded, (H, W), axis=(2, 3))  # (n, C, 2t+1, 2t+1, H, W)
        return windows[np.arange(n), :, t - dy, t - dx].reshape(n, D)


# ---------------------------------------------------------------------------- the loader

@DATASETS.register(NAME, CifarParams, locate=locate, search_places=search_places)
def load(p: CifarParams, data_dir: Path, dtype: np.dtype) -> DataBundle:
    """CIFAR-10 images (python or MATLAB batches) with the course's splits and preprocessing."""
    raw = read_splits(p, data_dir)
    norm = Normalisation.fit(p.preprocess, raw.train[0])
    train, val, test = (Split(norm(X, np.dtype(dtype)), y)
                        for X, y in (raw.train, raw.val, raw.test))
    info = DataInfo(input_shape=(D,), class_names=raw.class_names,
                    meta={"image_shape": list(IMAGE_SHAPE)})
    augment = None
    if p.augment is not None and (p.augment.flip or p.augment.translate):
        augment = Augmenter(p.augment.flip, p.augment.translate)
    return DataBundle(train, val, test, info, augment=augment, normalisation=norm)
