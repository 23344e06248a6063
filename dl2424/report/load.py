"""Read run folders for reports: tolerant of runs still being written, strict about non-runs.

`read_run` never fails on a real run folder, however early or broken the run; `require_metrics`
is what `report` adds on top, since a report needs at least one evaluation to show.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from .. import checkpoint, limits, rundir
from ..data.bundle import DataInfo
from ..errors import UserError
from ..rundir import is_stale

REQUIRED_COLUMNS = ("step", "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")
TEXT_COLUMNS = ("step", "epoch", "lr", "loss", "smooth_loss")  # language models (seqtrain)
RUN_MARKERS = ("config.yaml", "summary.json")


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

    @property
    def final(self) -> dict | None:
        return self.rows[-1] if self.rows else None

    @property
    def best(self) -> dict | None:
        """The first row with the highest validation accuracy (the trainer's best.npz); for
        a language model, the lowest smooth loss."""
        if self.rows and "smooth_loss" in self.rows[0]:
            return min(self.rows, key=lambda r: r["smooth_loss"])
        return max(self.rows, key=lambda r: r["val_acc"]) if self.rows else None

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
        f = self.file(f"confusion_{split}.csv")
        return _read_confusion(f) if f.is_file() else None

    def confusion_at(self, step: int) -> np.ndarray | None:
        """The kept validation confusion of evaluation step `step`, or None."""
        f = self.file(f"confusion/val_step{step}.csv")
        return _read_confusion(f)[1] if f.is_file() else None

    def confusions_over_training(self) -> list[tuple[int, np.ndarray]]:
        """(step, K x K counts) of every kept confusion/val_step<k>.csv, by step."""
        folder = self.file("confusion")
        if not folder.is_dir():
            return []
        found = []
        for f in folder.glob("val_step*.csv"):
            step = f.stem.removeprefix("val_step")
            if step.isdigit():
                found.append((int(step), _read_confusion(f)[1]))
        return sorted(found, key=lambda t: t[0])

    def extra(self, name: str):
        """A JSON file some runs add (lr_range.json, gradcheck.json, class_counts.json)."""
        f = self.file(name)
        return _read_json(f) if f.is_file() else None

    def linear_weights(self) -> tuple[np.ndarray, str] | None:
        """(W of shape (3072, K), source file) for a linear CIFAR classifier, else None."""
        model = self.config.get("model") or {}
        image = (self.info.get("meta") or {}).get("image_shape")
        if model.get("type") != "mlp" or model.get("hidden") != [] or image != [3, 32, 32]:
            return None
        for name in ("checkpoint.npz", "best.npz"):
            if self.file(name).is_file():
                W = checkpoint.load(self.file(name)).params.get("W1")
                if W is not None and W.shape[0] == 3 * 32 * 32:
                    return W, name
        return None


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


def read_metrics(f: Path) -> tuple[list[dict], bool]:
    """Complete rows of metrics.csv (step as int, the rest float) and whether a partial
    last line was dropped. A row is complete when its line ends in a newline and it has
    every column: the trainer writes the file atomically, other writers might not."""
    try:
        text = limits.read_text(f, "metrics table", limits.TABLE_CAP)
    except UnicodeDecodeError as e:
        raise UserError(f"{f}: not UTF-8 text ({e.reason} at byte {e.start}); the file is "
                        "corrupt") from None
    lines = text.split("\n")
    partial = lines.pop() != ""  # text after the last newline: an unfinished line
    reader = csv.DictReader(lines)
    rows = []
    for lineno, r in enumerate(reader, start=2):
        if None in r or any(v in (None, "") for v in r.values()):
            partial = True
            break
        try:
            rows.append({k: (int(v) if k == "step" else float(v)) for k, v in r.items()})
        except ValueError:
            raise UserError(f"{f}: line {lineno} holds a value that is not a number; the "
                            "file is corrupt (delete the bad line or retrain)") from None
    required = TEXT_COLUMNS if "smooth_loss" in (reader.fieldnames or ()) else REQUIRED_COLUMNS
    missing = [c for c in required if reader.fieldnames and c not in reader.fieldnames]
    if missing:
        raise UserError(f"{f}: missing column(s) {', '.join(missing)}; not a dl2424 "
                        "metrics file")
    return rows, partial


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


def is_run(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in RUN_MARKERS)


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
    if (path / "config.yaml").is_file():
        config = _sections(_read_mapping(path / "config.yaml", yaml.safe_load),
                           path / "config.yaml")
    summary = rundir.read_summary(path) if (path / "summary.json").is_file() else {}
    info = {}
    if (path / "data.json").is_file():
        info = _read_mapping(path / "data.json", json.loads)
        DataInfo.from_json(info, str(path / "data.json"))  # damage is a UserError here
    rows, truncated = [], False
    if (path / "metrics.csv").is_file():
        rows, truncated = read_metrics(path / "metrics.csv")
    return Run(path, config, summary, info, rows, truncated)


def require_metrics(run: Run) -> Run:
    """A report needs at least one evaluation; say clearly why a run has none."""
    f = run.file("metrics.csv")
    if not f.is_file():
        raise UserError(f"{run.path}: no metrics.csv yet (status: {run.status}); the run has "
                        "not reached its first evaluation. Wait for it, or train again")
    if not run.rows:
        raise UserError(f"{f}: no complete row (the file is empty or truncated); nothing to "
                        "report. Resume the run with `dl2424 train --resume` or train again")
    return run
