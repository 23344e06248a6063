"""Read run folders for reports: tolerant of runs still being written, strict about non-runs.

`read_run` never fails on a real run folder, however early or broken the run; `require_metrics`
is what `report` adds on top, since a report needs at least one evaluation to show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .. import checkpoint, limits, rundir
from ..build import build_model
from ..data.bundle import DataInfo
from ..errors import UserError
from ..rundir import is_run, is_stale, read_metrics

__all__ = ["Run", "is_run", "read_metrics", "read_run", "require_metrics"]


@dataclass
class Run:
    """One run folder as the report sees it. `rows` are the complete rows of metrics.csv."""

    path: Path
    config: dict
    summary: dict  # {} when summary.json is missing
    info: dict  # data.json, {} when missing
    rows: list[dict]
    truncated: bool = False  # metrics.csv ended in a partial line (dropped)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.summary.get("name") or self.id)

    @property
    def status(self) -> str:
        """The summary's status; `running` whose process is gone (kill -9) shows as
        `stale`: resume it with `dl2424 train --resume`."""
        if is_stale(self.summary):
            return "stale"
        return self.summary.get("status", "unknown")

    @property
    def dataset(self) -> str:
        return _type_of(self.config.get("data")) or self.summary.get("dataset") or "?"

    @property
    def model(self) -> str:
        return _type_of(self.config.get("model")) or self.summary.get("model") or "?"

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """The complete rows of metrics.csv as a table, a column per metric."""
        return pd.DataFrame(self.rows)

    @property
    def final(self) -> dict | None:
        return self.rows[-1] if self.rows else None

    @property
    def best(self) -> dict | None:
        """The first row with the highest validation accuracy (the trainer's best.npz); for
        a language model, the lowest smooth loss."""
        if self.is_language_model:
            return min(self.rows, key=lambda r: r["smooth_loss"])
        return max(self.rows, key=lambda r: r["val_acc"]) if self.rows else None

    @property
    def is_language_model(self) -> bool:
        """A text run: its rows hold the smooth loss, not a validation accuracy."""
        return bool(self.rows) and "smooth_loss" in self.rows[0]

    def lowest(self, metric: str) -> float | None:
        """The lowest value of a metric over the rows that have it (a language model's
        val_loss is measured only every val_every updates); None when none has."""
        values = [v for r in self.rows if (v := r.get(metric)) is not None and np.isfinite(v)]
        return min(values) if values else None

    @property
    def steps_per_epoch(self) -> int | None:
        r = next((r for r in reversed(self.rows) if r["epoch"] > 0), None)
        return round(r["step"] / r["epoch"]) if r else None

    @cached_property
    def class_names(self) -> list[str]:
        if self.info.get("class_names"):
            return list(self.info["class_names"])
        conf = self.confusion("val")
        return conf[0] if conf else []

    def file(self, name: str) -> Path:
        return self.path / name

    def confusion(self, split: str) -> tuple[list[str], np.ndarray] | None:
        """(class names, K x K counts) of confusion_<split>.csv, or None."""
        f = rundir.confusion_file(self.path, split)
        return _read_confusion(f) if f.is_file() else None

    def confusion_at(self, step: int) -> np.ndarray | None:
        """The kept validation confusion of evaluation step `step`, or None."""
        f = rundir.kept_confusion_file(self.path, step)
        return _read_confusion(f)[1] if f.is_file() else None

    def confusions_over_training(self) -> list[tuple[int, np.ndarray]]:
        """(step, K x K counts) of every kept confusion/val_step<k>.csv, by step."""
        return [(step, _read_confusion(f)[1]) for step, f in rundir.kept_confusions(self.path)]

    def extra(self, name: str):
        """A JSON file some runs add (lr_range.json, gradcheck.json, class_counts.json)."""
        f = self.file(name)
        return _read_json(f) if f.is_file() else None

    def linear_weights(self) -> tuple[np.ndarray, str] | None:
        """(W of shape (3072, K), source file) for a linear CIFAR classifier, else None. The
        model decides: a linear classifier is one whose only weight (its `decay` list)
        maps the flat image to the K scores."""
        image = (self.info.get("meta") or {}).get("image_shape")
        saved = [n for n in (rundir.CHECKPOINT, rundir.BEST) if self.file(n).is_file()]
        if image != [3, 32, 32] or not saved:
            return None
        try:
            model = build_model(rundir.load_run_config(self.path), rundir.load_info(self.path))
        except (UserError, OSError, ValueError, KeyError, TypeError):
            return None
        K = len(self.class_names)
        if len(model.decay) != 1 or model.params[model.decay[0]].shape != (3 * 32 * 32, K):
            return None
        return checkpoint.load(self.file(saved[0])).params[model.decay[0]], saved[0]


def _type_of(section) -> str | None:
    return section.get("type") if isinstance(section, dict) else section


def _read_json(f: Path):
    try:
        return json.loads(limits.read_text(f, f.name))
    except (ValueError, RecursionError) as e:  # JSON, UTF-8
        raise UserError(f"{f}: not valid JSON ({e}); the file is corrupt") from None


def _read_mapping(f: Path, parse) -> dict:
    """A JSON or YAML file of the run folder that must hold a mapping ({} when empty)."""
    try:
        value = parse(limits.read_text(f, f.name)) or {}
    except (ValueError, RecursionError, yaml.YAMLError) as e:  # ValueError: UTF-8, JSON
        raise UserError(f"{f}: unreadable ({str(e).splitlines()[0]}); the file is corrupt"
                        ) from None
    if not isinstance(value, dict):
        raise UserError(f"{f}: a {type(value).__name__}, not a mapping; the file is corrupt")
    return value


def _read_confusion(f: Path) -> tuple[list[str], np.ndarray]:
    try:
        names, matrix = rundir.read_confusion(f)
    except (ValueError, IndexError) as e:
        raise UserError(f"{f}: not a labelled confusion matrix ({e})") from None
    if matrix.shape != (len(names), len(names)):
        raise UserError(f"{f}: expected a {len(names)} x {len(names)} matrix after the header "
                        f"row, found {matrix.shape[0]} rows; the file is truncated or corrupt")
    return names, matrix


SECTIONS = ("data", "model", "optimizer", "schedule", "sampler", "train")


def _sections(config: dict, f: Path) -> dict:
    """Every section as a mapping (`optimizer: sgd` → {type: sgd}), as the report reads it."""
    out = dict(config)
    for key in SECTIONS:
        value = out.get(key)
        if isinstance(value, str) and key != "train":
            out[key] = {"type": value}
        elif value is not None and not isinstance(value, dict):
            raise UserError(f"{f}: {key} is a {type(value).__name__}, not a mapping; the file "
                            "is corrupt")
    return out


def read_run(path: Path) -> Run:
    """Everything a report or a table needs from one run folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such folder; list the runs with `dl2424 runs`")
    if not path.is_dir():
        raise UserError(f"{path}: is a file, not a run folder; give a folder under runs/")
    if not is_run(path):
        raise UserError(f"{path}: not a run folder (it has no config.yaml or summary.json); "
                        "give a folder that `dl2424 train` made, e.g. runs/<time>-<name>")
    config = {}
    if (path / rundir.CONFIG).is_file():
        config = _sections(_read_mapping(path / rundir.CONFIG, yaml.safe_load),
                           path / rundir.CONFIG)
    summary = rundir.read_summary(path) if (path / rundir.SUMMARY).is_file() else {}
    info = {}
    if (path / rundir.DATA).is_file():
        info = _read_mapping(path / rundir.DATA, json.loads)
        DataInfo.from_json(info, str(path / rundir.DATA))  # damage is a UserError here
    rows, truncated = [], False
    if (path / rundir.METRICS).is_file():
        rows, truncated = read_metrics(path / rundir.METRICS)
    return Run(path, config, summary, info, rows, truncated)


def require_metrics(run: Run) -> Run:
    """A report needs at least one evaluation; say clearly why a run has none."""
    f = run.file(rundir.METRICS)
    if not f.is_file():
        raise UserError(f"{run.path}: no metrics.csv yet (status: {run.status}); the run has "
                        "not reached its first evaluation. Wait for it, or train again")
    if not run.rows:
        raise UserError(f"{f}: no complete row (the file is empty or truncated); nothing to "
                        "report. Resume the run with `dl2424 train --resume` or train again")
    return run
