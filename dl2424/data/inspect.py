"""Facts about a dataset that `dl2424 data inspect` prints: sizes, overlaps, oddities."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cifar, names


@dataclass
class NamesFacts:
    folder: Path
    format: str  # "course" | "tutorial"
    class_names: list[str]
    train_counts: np.ndarray  # (K,) names per class in the training part
    val_counts: np.ndarray  # (K,)
    alphabet: str
    n_len: int
    length_counts: dict[int, int]  # name length -> number of names
    duplicates: list[tuple[str, str, int]]  # (name, class, count): same name and label, count > 1
    multi_label: list[tuple[str, list[str]]]  # names that carry more than one label
    val_in_train: list[tuple[str, str]]  # (name, class) of validation names seen in training
    dropped_chars: dict[str, int]  # tutorial: non-ASCII characters removed, with counts
    dropped_names: int


def inspect_names(data_dir: Path, p: names.NamesParams | None = None) -> NamesFacts:
    """Read the names data as `load` would and collect what is worth knowing about it."""
    t = names.read_table(p or names.NamesParams(), data_dir)
    K, cls = len(t.class_names), t.class_names
    pairs = Counter(zip(t.names, t.labels.tolist(), strict=True))
    labels_of = defaultdict(set)
    for name, label in pairs:
        labels_of[name].add(label)
    train_names = {n for n, v in zip(t.names, t.is_val, strict=True) if not v}
    val_idx = np.flatnonzero(t.is_val)
    return NamesFacts(
        folder=t.found.folder,
        format=t.found.format,
        class_names=cls,
        train_counts=np.bincount(t.labels[~t.is_val], minlength=K),
        val_counts=np.bincount(t.labels[t.is_val], minlength=K),
        alphabet="".join(sorted(set("".join(t.names)))),
        n_len=max(map(len, t.names)),
        length_counts=dict(sorted(Counter(map(len, t.names)).items())),
        duplicates=sorted((n, cls[k], c) for (n, k), c in pairs.items() if c > 1),
        multi_label=sorted((n, [cls[k] for k in sorted(ks)])
                           for n, ks in labels_of.items() if len(ks) > 1),
        val_in_train=[(t.names[i], cls[t.labels[i]]) for i in val_idx
                      if t.names[i] in train_names],
        dropped_chars=dict(t.dropped_chars.most_common()),
        dropped_names=t.dropped_names,
    )


@dataclass
class CifarSplitFacts:
    split: str
    n: int
    class_counts: np.ndarray  # (K,)
    channel_mean: np.ndarray  # (3,) R, G, B on the 0..255 scale
    channel_std: np.ndarray  # (3,)


@dataclass
class CifarFacts:
    folder: Path
    format: str  # "python" | "matlab"
    class_names: list[str]
    splits: list[CifarSplitFacts]


def _channel_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std of uint8 images (n, 3072), from exact sums."""
    n, s1, s2 = cifar.pixel_sums(X)
    N = n * 1024
    S1 = [int(v) for v in s1.reshape(3, -1).sum(axis=1)]
    S2 = [int(v) for v in s2.reshape(3, -1).sum(axis=1)]
    mean = np.array([a / N for a in S1])
    var = np.array([(N * b - a * a) / N**2 for a, b in zip(S1, S2, strict=True)])  # exact ints
    return mean, np.sqrt(var)


def inspect_cifar(data_dir: Path, p: cifar.CifarParams | None = None) -> CifarFacts:
    """Class counts and raw pixel statistics of each split."""
    raw = cifar.read_splits(p or cifar.CifarParams(), data_dir)
    K = len(raw.class_names)
    splits = []
    for split, (X, y) in (("train", raw.train), ("val", raw.val), ("test", raw.test)):
        mean, std = _channel_stats(X)
        splits.append(CifarSplitFacts(split, len(y), np.bincount(y, minlength=K), mean, std))
    return CifarFacts(raw.found.folder, raw.found.format, raw.class_names, splits)
