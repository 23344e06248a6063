"""What every dataset loader returns: arrays per split plus what a model must know."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
    def from_json(cls, d: dict) -> DataInfo:
        return cls(tuple(d["input_shape"]), list(d["class_names"]), d.get("meta", {}),
                   d.get("encoder"))


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
