"""Ensembles of trained runs: majority vote and probability averaging on the test set
(A1 bonus (h), the A2 snapshot-ensemble bonus)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint
from .build import build_model
from .data import load_dataset
from .errors import UserError
from .experiment import load_info, load_run_config


@dataclass
class EnsembleResult:
    split: str
    members: list[tuple[str, float]]  # (run, accuracy alone)
    vote_acc: float
    mean_acc: float


def majority_vote(probs: np.ndarray) -> np.ndarray:
    """probs (m, n, K) -> (n,) the class most members predict; ties go to the tied class
    with the highest mean probability."""
    m, n, K = probs.shape
    votes = np.zeros((n, K))
    np.add.at(votes, (np.arange(n)[None, :].repeat(m, 0), probs.argmax(axis=2)), 1)
    tie_break = probs.mean(axis=0) / (m + 1)  # < 1 vote: only decides among equal counts
    return (votes + tie_break).argmax(axis=1)


def evaluate_ensemble(runs: list[Path], data_dir: Path, weights: str = "best"
                      ) -> EnsembleResult:
    if len(runs) < 2:
        raise UserError("an ensemble needs at least two run folders")
    exps = [load_run_config(r) for r in runs]
    if any(e.data != exps[0].data for e in exps[1:]):
        raise UserError("the runs were trained on different data configs; an ensemble needs "
                        "the same dataset, split and preprocessing for every member")
    data = load_dataset(exps[0].data, data_dir, np.dtype(exps[0].dtype))
    split_name, split = ("test", data.test) if data.test is not None else ("val", data.val)
    probs, members = [], []
    for run, exp in zip(runs, exps, strict=True):
        model = build_model(exp, load_info(run))
        file = run / ("best.npz" if weights == "best" else "checkpoint.npz")
        checkpoint.restore(checkpoint.load(file), model, where=str(file))
        p = model.proba(split.X)
        probs.append(p)
        members.append((str(run), float(np.mean(p.argmax(axis=1) == split.y))))
    probs = np.stack(probs)
    vote = majority_vote(probs)
    mean = probs.mean(axis=0).argmax(axis=1)
    return EnsembleResult(split_name, members, float(np.mean(vote == split.y)),
                          float(np.mean(mean == split.y)))
