"""Datasets: each module registers one loader in DATASETS; `load_dataset` runs one by spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..registry import DATASETS, Spec
from . import cifar, names, text  # noqa: F401  (registers cifar10, names, text)
from .bundle import DataBundle, DataInfo, Split

__all__ = ["DataBundle", "DataInfo", "Split", "load_dataset"]


def load_dataset(spec: Spec, data_dir: Path, dtype: np.dtype | str) -> DataBundle:
    """Load the dataset a config's `data:` section names (a resolved `component(DATASETS)`)."""
    return DATASETS[spec.type].factory(spec.params, Path(data_dir), np.dtype(dtype))
