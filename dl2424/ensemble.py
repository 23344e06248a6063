"""Ensembles of trained runs, or of the snapshots one run saved at the end of each cycle:
majority vote and probability averaging on the test set (A1 bonus (h), A2 bonus (c))."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint, rundir
from .build import build_model
from .data import load_dataset
from .errors import UserError
from .rundir import load_info, load_run_config


@dataclass
class EnsembleResult:
    split: str
    members: list[tuple[str, float]]  # (run [snapshot], accuracy alone)
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


def members_of(runs: list[Path], weights: str, snapshots: bool) -> list[tuple[Path, Path]]:
    """(run, parameter file) per member: each run's best or last checkpoint, or with
    snapshots every end-of-cycle snapshot the runs saved (train.snapshots)."""
    if not snapshots:
        return [(r, rundir.weights_file(r, weights)) for r in runs]
    members = [(r, f) for r in runs for f in rundir.snapshot_files(r)]
    if not members:
        raise UserError(f"no snapshots/cycle<k>.npz in {', '.join(map(str, runs))}; train "
                        "with train.snapshots: true and a cyclic schedule")
    return members


def evaluate_ensemble(runs: list[Path], data_dir: Path, weights: str = "best",
                      snapshots: bool = False) -> EnsembleResult:
    members = members_of(runs, weights, snapshots)
    if len(members) < 2:
        raise UserError("an ensemble needs at least two members: give two or more run "
                        "folders, or a run with several snapshots (--snapshots)")
    exps = {r: load_run_config(r) for r in runs}
    first = exps[runs[0]]
    if any(e.data != first.data for e in exps.values()):
        raise UserError("the runs were trained on different data configs; an ensemble needs "
                        "the same dataset, split and preprocessing for every member")
    data = load_dataset(first.data, data_dir, np.dtype(first.dtype))
    split_name, split = ("test", data.test) if data.test is not None else ("val", data.val)
    probs, accs = [], []
    for run, file in members:
        model = build_model(exps[run], load_info(run))
        checkpoint.restore(checkpoint.load(file), model, where=str(file))
        p = model.proba(split.X)
        probs.append(p)
        label = f"{run} {file.stem}" if snapshots else str(run)
        accs.append((label, float(np.mean(p.argmax(axis=1) == split.y))))
    probs = np.stack(probs)
    vote = majority_vote(probs)
    mean = probs.mean(axis=0).argmax(axis=1)
    return EnsembleResult(split_name, accs, float(np.mean(vote == split.y)),
                          float(np.mean(mean == split.y)))
