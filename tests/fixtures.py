"""Tiny datasets written in the real on-disk formats, for tests.

Every writer takes a root folder (a pytest tmp_path) and returns the folder it wrote. The data
are learnable: CIFAR classes have their own mean image, name classes their own letters and
suffix, so an end-to-end test can assert that training beats chance.

    write_cifar_python(root, n_per_batch=20, seed=0) -> root/cifar-10-batches-py
    write_cifar_matlab(root, n_per_batch=20, seed=0) -> root/cifar-10-batches-mat
    cifar_arrays(n_per_batch=20, seed=0) -> {"data_batch_1": (X uint8, y), ...}: what both wrote
    write_names_course(root, rows=None, ...) -> root/names (ascii_names.txt, ...)
    write_names_tutorial(root, by_language=None) -> root/data/names (<Language>.txt)
    real_data_dir() -> Path of the shared real data ($DL2424_DATA_DIR), or the test FAILS
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
COURSE_LANGUAGES = ["Arabic", "Chinese", "Czech", "Dutch", "English", "French", "German",
                    "Greek", "Irish", "Italian", "Japanese", "Korean", "Polish", "Portuguese",
                    "Russian", "Scottish", "Spanish", "Vietnamese"]
_SUFFIXES = ["ov", "ez", "ski", "son", "ini", "aki", "eau", "er", "opoulos", "an", "oglu", "ic",
             "sen", "escu", "ova", "ino", "dze", "uk"]


# ---------------------------------------------------------------------------- CIFAR

def cifar_arrays(n_per_batch: int = 20, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The images both CIFAR writers store: batch name -> (X (n, 3072) uint8, y (n,) int64).

    Class c has its own random mean image; each image is that mean plus noise (std 30),
    labels cycle through the classes in a shuffled order.
    """
    rng = np.random.default_rng(seed)
    means = rng.uniform(50, 205, size=(len(CIFAR_CLASSES), 3072))
    out = {}
    for name in CIFAR_BATCHES:
        y = rng.permutation(np.arange(n_per_batch) % len(CIFAR_CLASSES))
        X = np.clip(np.rint(means[y] + rng.normal(0, 30, (n_per_batch, 3072))), 0, 255)
        out[name] = (X.astype(np.uint8), y.astype(np.int64))
    return out


def write_cifar_python(root: Path, n_per_batch: int = 20, seed: int = 0,
                       folder: str = "cifar-10-batches-py", filenames: bool = False) -> Path:
    """Python-pickle batches as the official archive has them (protocol 2, bytes keys)."""
    out = Path(root) / folder
    out.mkdir(parents=True, exist_ok=True)
    for name, (X, y) in cifar_arrays(n_per_batch, seed).items():
        d = {b"batch_label": f"{name} (fixture)".encode(), b"labels": y.tolist(), b"data": X}
        if filenames:
            d[b"filenames"] = [f"img_{i}.png".encode() for i in range(len(y))]
        with open(out / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
    meta = {b"num_cases_per_batch": n_per_batch, b"num_vis": 3072,
            b"label_names": [c.encode() for c in CIFAR_CLASSES]}
    with open(out / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return out


def write_cifar_matlab(root: Path, n_per_batch: int = 20, seed: int = 0,
                       folder: str = "cifar-10-batches-mat") -> Path:
    """MATLAB batches as the official archive has them: data N x 3072 uint8, labels N x 1."""
    out = Path(root) / folder
    out.mkdir(parents=True, exist_ok=True)
    for name, (X, y) in cifar_arrays(n_per_batch, seed).items():
        scipy.io.savemat(out / f"{name}.mat", {"data": X, "labels": y[:, None].astype(np.uint8),
                                               "batch_label": f"{name} (fixture)"})
    label_names = np.empty((len(CIFAR_CLASSES), 1), dtype=object)  # a 10 x 1 cell array
    label_names[:, 0] = CIFAR_CLASSES
    scipy.io.savemat(out / "batches.meta.mat", {"label_names": label_names})
    return out


# ---------------------------------------------------------------------------- names

def synthetic_names(n_per_class: int = 30, n_classes: int = 4,
                    seed: int = 0) -> list[tuple[str, int]]:
    """(Surname, 1-based label) rows; class k draws letters from its own 5-letter pool and
    ends in its own suffix, so the classes are learnable from characters."""
    rng = np.random.default_rng(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    rows = []
    for k in range(n_classes):
        pool = [letters[(5 * k + i) % 26] for i in range(5)]
        for _ in range(n_per_class):
            stem = "".join(rng.choice(pool, size=rng.integers(2, 6)))
            rows.append(((stem + _SUFFIXES[k % len(_SUFFIXES)]).capitalize(), k + 1))
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def write_names_course(root: Path, rows: list[tuple[str, int]] | None = None,
                       val_inds: list[int] | None = None, categories: list[str] | None = None,
                       val_per_class: int = 3, seed: int = 0, folder: str = "names") -> Path:
    """The course's three files.

    rows: (surname, 1-based label); a surname with a trailing space gives the real file's
    double space before the label. Default: synthetic_names(seed=seed).
    val_inds: 1-based line numbers; default the first val_per_class lines of each class.
    categories: class names; default the course languages up to the largest label.
    """
    rows = synthetic_names(seed=seed) if rows is None else rows
    categories = categories or COURSE_LANGUAGES[:max(label for _, label in rows)]
    if val_inds is None:
        taken: dict[int, int] = {}
        val_inds = []
        for i, (_, label) in enumerate(rows, 1):
            if taken.get(label, 0) < val_per_class:
                taken[label] = taken.get(label, 0) + 1
                val_inds.append(i)
    out = Path(root) / folder
    out.mkdir(parents=True, exist_ok=True)
    (out / "ascii_names.txt").write_text("".join(f"{n} {k}\n" for n, k in rows))
    (out / "category_labels.txt").write_text(
        "".join(f"{i} {c}\n" for i, c in enumerate(categories, 1)))
    (out / "Validation_Inds.txt").write_text(" ".join(map(str, val_inds)) + " ")
    return out


def write_names_tutorial(root: Path, by_language: dict[str, list[str]] | None = None,
                         folder: str = "data/names") -> Path:
    """The PyTorch tutorial's folder: <Language>.txt, one UTF-8 surname per line.

    Default: 4 languages x 20 synthetic names, with accents on every third name (é, ü, ñ)
    that loading folds away.
    """
    if by_language is None:
        by_language = {lang: [] for lang in COURSE_LANGUAGES[:4]}
        for i, (name, label) in enumerate(synthetic_names(n_per_class=20, seed=1)):
            if i % 3 == 0:
                name = name.replace("e", "é").replace("u", "ü").replace("n", "ñ")
            by_language[COURSE_LANGUAGES[label - 1]].append(name)
    out = Path(root) / folder
    out.mkdir(parents=True, exist_ok=True)
    for lang, names in by_language.items():
        (out / f"{lang}.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")
    return out


# ---------------------------------------------------------------------------- real data

def real_data_dir() -> Path:
    """The shared real data ($DL2424_DATA_DIR). Tests that need it FAIL, never skip, without it."""
    value = os.environ.get("DL2424_DATA_DIR")
    if not value:
        pytest.fail("DL2424_DATA_DIR is not set; real-data tests need it, e.g. "
                    "DL2424_DATA_DIR=../shared/datasets")
    root = Path(value)
    if not (root / "names" / "ascii_names.txt").is_file() or not list(
            root.glob("*/cifar-10-batches-py/data_batch_1")):
        pytest.fail(f"DL2424_DATA_DIR={value} lacks names/ascii_names.txt or "
                    "*/cifar-10-batches-py/ (expected the shared datasets folder)")
    return root
