"""What every dataset loader returns: arrays per split plus what a model must know."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError


@dataclass
class Split:
    """One split. X is (n, d) float (images: CIFAR plane order R, G, B, each row-major 32x32)
    or (n, n_len) integer character indices (names; padding = the alphabet size).
    y holds integer labels 0..K-1. T, when given, is a soft target matrix (n, K)."""

    X: np.ndarray
    y: np.ndarray
    T: np.ndarray | None = None
    text: list[str] | None = None  # the raw strings, for datasets of names

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class DataInfo:
    """What a model builder and `predict` need, without the arrays (saved as data.json)."""

    input_shape: tuple[int, ...]  # one example as the model receives it
    class_names: list[str]
    meta: dict = field(default_factory=dict)  # e.g. {"image_shape": [3, 32, 32]}, {"vocab": 28}
    encoder: dict | None = None  # names: {"alphabet": ..., "n_len": ...}

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> dict:
        return {"input_shape": list(self.input_shape), "class_names": self.class_names,
                "meta": self.meta, "encoder": self.encoder}

    @classmethod
    def from_json(cls, d, where: str = "data.json") -> DataInfo:
        """Read back to_json(); a field of the wrong type or shape is a UserError naming
        `where` (a run folder is input like any other: it may be damaged or edited)."""
        problems = _problems(d)
        if problems:
            raise UserError(f"{where}: not a valid data description ({'; '.join(problems)}); "
                            "the run folder was damaged or edited; retrain, or restore "
                            "data.json from a copy")
        return cls(tuple(d["input_shape"]), list(d["class_names"]), d.get("meta") or {},
                   d.get("encoder"))


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _problems(d) -> list[str]:
    if not isinstance(d, dict):
        return [f"a mapping was expected, found {type(d).__name__}"]
    out = []
    shape, names = d.get("input_shape"), d.get("class_names")
    if not isinstance(shape, list) or not shape or not all(map(_count, shape)):
        out.append(f"input_shape {shape!r} is not a list of positive sizes")
    if not isinstance(names, list) or not all(isinstance(c, str) and c for c in names):
        out.append("class_names is not a list of names")
    elif len(set(names)) != len(names):
        out.append("class_names repeats a name")
    meta = d.get("meta", {})
    if not isinstance(meta, dict | None):
        out.append(f"meta is a {type(meta).__name__}, not a mapping")
    elif meta:
        image = meta.get("image_shape")
        if image is not None and (not isinstance(image, list) or not all(map(_count, image))
                                  or isinstance(shape, list) and shape != [math.prod(image)]):
            out.append(f"meta image_shape {image!r} does not match input_shape {shape!r}")
        if "vocab" in meta and not _count(meta["vocab"]):
            out.append(f"meta vocab {meta['vocab']!r} is not a positive size")
    if not isinstance(d.get("encoder"), dict | None):
        out.append("encoder is not a mapping")
    return out


@dataclass
class DataBundle:
    train: Split
    val: Split
    test: Split | None
    info: DataInfo
    # augment(X_batch, rng) -> X_batch', applied to training mini-batches only.
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
    # Extra per-split boolean masks worth reporting, e.g. {"val_unseen": mask}.
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    # Images: how raw pixels became X (data.cifar.Normalisation), saved as normalisation.npz.
    normalisation: Any = None
