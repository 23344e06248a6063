"""Classify new names with a trained run: only its config, data.json and checkpoint are read.

Which run answers: the one given, else the completed surname run with the best validation
accuracy. Names come one per argument or one per line of a list; a line may end in its true
language (a class name or the course's 1-based index), and then each row says how the model
ranked the truth and the list gets an accuracy.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint, rundir
from .build import build_model
from .data.names import Encoder
from .errors import UserError
from .rundir import load_info, load_run_config


@dataclass
class Prediction:
    name: str  # as given
    read_as: str  # what the model saw (normalised, transliterated, cut to n_len)
    ranking: list[tuple[str, float]]  # classes by decreasing probability
    notice: str | None = None
    label: str | None = None  # the true class, when the list gave one

    @property
    def rank(self) -> int | None:
        """1-based place of the true class in the ranking."""
        if self.label is None:
            return None
        return 1 + [c for c, _ in self.ranking].index(self.label)

    @property
    def p_label(self) -> float | None:
        return None if self.label is None else dict(self.ranking)[self.label]

    @property
    def correct(self) -> bool | None:
        return None if self.label is None else self.rank == 1

    def to_json(self, top: int | None = None) -> dict:
        out = {"name": self.name, "read_as": self.read_as, "prediction": self.ranking[0][0],
               "probabilities": dict(self.ranking[:top]), "notice": self.notice}
        if self.label is not None:
            out |= {"label": self.label, "p_label": self.p_label, "rank": self.rank,
                    "correct": self.correct}
        return out


# ---------------------------------------------------------------------------- which run

@dataclass
class Choice:
    """The run that answers, and why."""

    run: Path
    status: str
    best: dict | None  # the summary's best evaluation (val_acc, step)
    given: bool  # named with --run, rather than picked
    kind: str = "surname"  # surname | image

    def line(self) -> str:
        acc = (f"{100 * self.best['val_acc']:.1f}% validation accuracy at step "
               f"{self.best['step']}" if self.best else "no validation accuracy recorded")
        how = "given with --run" if self.given else f"the best completed {self.kind} run"
        return f"model: {self.run} ({how}; {acc})"

    def warning(self) -> str | None:
        if self.status == "completed":
            return None
        return (f"{self.run} is {self.status}, not completed: its predictions come from the "
                "best parameters saved so far")


def _summary(run: Path) -> dict:
    try:
        return rundir.read_summary(run)
    except (OSError, UserError):
        return {}


def _status(summary: dict) -> str:
    return "stale" if rundir.is_stale(summary) else str(summary.get("status", "unknown"))


def _best(summary: dict) -> dict | None:
    best = summary.get("best")
    ok = isinstance(best, dict) and isinstance(best.get("val_acc"), int | float)
    return best if ok else None


def _kind(run: Path) -> str | None:
    """surname (has a character encoder), image (32x32 images and their saved
    normalisation), or None."""
    try:
        info = load_info(run)
    except UserError:
        return None
    if info.encoder is not None:
        return "surname"
    if info.meta.get("image_shape") and (run / rundir.NORMALISATION).is_file():
        return "image"
    return None


TRAIN_HINT = {"surname": "configs/names_convnet.yaml", "image": "configs/cifar_cnn_small.yaml"}


def best_run(runs_dir: Path, kind: str = "surname") -> Choice:
    """The completed run of this kind with the highest best validation accuracy (the newest
    of equals); when none has completed, the best unfinished one (with a warning)."""
    found = []
    for run in sorted(p for p in Path(runs_dir).glob("*") if (p / rundir.DATA).is_file()):
        summary = _summary(run)
        if (best := _best(summary)) is not None and _kind(run) == kind:
            found.append(Choice(run, _status(summary), best, given=False, kind=kind))
    if not found:
        older = "" if kind != "image" else (
            " (image runs trained before normalisation.npz was saved cannot predict: train "
            "them again)")
        raise UserError(f"no {kind} run under {runs_dir}/{older}; train one first, e.g. "
                        f"dl2424 train {TRAIN_HINT[kind]}, or give --run RUN_DIR")
    done = [c for c in found if c.status == "completed"] or found
    return max(reversed(done), key=lambda c: c.best["val_acc"])


def given_run(run: Path) -> Choice:
    summary = _summary(run)
    return Choice(run, _status(summary), _best(summary), given=True)


# ---------------------------------------------------------------------------- name lists

def read_name_list(text: str, class_names: list[str], where: str
                   ) -> list[tuple[str, str | None]]:
    """(name, true class or None) per line of `text`. A line is `Name` or `Name Label`, the
    label after the last tab, comma or (when it is a class name or a number) space; blank
    lines and lines starting with # are skipped."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(_split_label(line, class_names, f"{where}, line {lineno}"))
    if not out:
        raise UserError(f"{where}: no names in it; give one name per line, optionally "
                        "followed by its language")
    return out


def _split_label(line: str, class_names: list[str], where: str) -> tuple[str, str | None]:
    by_name = {c.lower(): c for c in class_names}
    sep = max(line.rfind("\t"), line.rfind(","))
    if sep >= 0:  # an explicit separator: what follows must be a label
        name, label = line[:sep].strip(), line[sep + 1:].strip()
        return name, _label(label, by_name, class_names, where)
    parts = line.rsplit(None, 1)
    if len(parts) == 2 and (parts[1].isdigit() or parts[1].lower() in by_name):
        return parts[0], _label(parts[1], by_name, class_names, where)
    return line, None


def _label(text: str, by_name: dict, class_names: list[str], where: str) -> str:
    if text.isdigit() and 1 <= int(text) <= len(class_names):
        return class_names[int(text) - 1]
    if text.lower() in by_name:
        return by_name[text.lower()]
    raise UserError(f"{where}: {text!r} is not a language of this model; give a name "
                    f"({', '.join(class_names)}) or its number 1..{len(class_names)}")


# ---------------------------------------------------------------------------- the model

def load_model(run: Path, weights: str = "best"):
    """(model with the run's best or last parameters, DataInfo, Experiment)."""
    if not (run / rundir.DATA).is_file() or not (run / rundir.CONFIG).is_file():
        raise UserError(f"{run}: not a run folder (no data.json/config.yaml); give a "
                        "folder under runs/ made by dl2424 train")
    info = load_info(run)
    exp = load_run_config(run)
    model = build_model(exp, info)
    file = rundir.weights_file(run, weights)
    checkpoint.restore(checkpoint.load(file), model, where=str(file))
    return model, info, exp


class Predictor:
    def __init__(self, run: Path, weights: str = "best"):
        self.model, info, _ = load_model(run, weights)
        if info.encoder is None:
            raise UserError(f"{run}: this run's dataset has no character encoder; predict "
                            "--name needs a run trained on names (--image takes image runs)")
        self.encoder = Encoder.of(info, str(run / rundir.DATA))
        self.run = run

    @property
    def class_names(self) -> list[str]:
        return list(self.encoder.class_names)

    def __call__(self, names: list[str], truncate: str = "first", drop_unknown: bool = False,
                 labels: list[str | None] | None = None) -> list[Prediction]:
        for i, name in enumerate(names):
            if not name.strip():
                raise UserError(f"name #{i + 1} is empty; give a surname such as Xiong")
        X = self.encoder.encode(names, truncate=truncate, drop_unknown=drop_unknown)
        P = self.model.proba(X)
        classes = self.class_names
        labels = labels or [None] * len(names)
        out = []
        for name, x, p, label in zip(names, X, P, labels, strict=True):
            order = np.argsort(-p, kind="stable")
            read_as = self.encoder.decode(x[None])[0]
            n = len(self.encoder.read(name))
            notice = None
            if n > self.encoder.n_len:
                notice = (f"{n} characters; the model reads {self.encoder.n_len}, kept the "
                          f"{truncate} {self.encoder.n_len}")
            elif drop_unknown and len(read_as) < n:
                notice = "characters outside the alphabet were dropped"
            out.append(Prediction(name, read_as, [(classes[k], float(p[k])) for k in order],
                                  notice, label))
        return out


# ---------------------------------------------------------------------------- results

def accuracy(results: list[Prediction], top: int = 1) -> tuple[int, int]:
    """(labelled names whose true class is among the `top` first, labelled names)."""
    ranks = [r.rank for r in results if r.label is not None]
    return sum(k <= top for k in ranks), len(ranks)


def to_json(choice: Choice, results: list[Prediction], top: int) -> dict:
    out = {"run": str(choice.run), "run_status": choice.status,
           "run_val_acc": choice.best["val_acc"] if choice.best else None,
           "predictions": [r.to_json(top) for r in results]}
    right, n = accuracy(results)
    if n:
        out |= {"labelled": n, "correct": right, "accuracy": right / n,
                f"top{top}_accuracy": accuracy(results, top)[0] / n}
    return out


CSV_COLUMNS = ["name", "read_as", "label", "prediction", "p_prediction", "p_label", "rank",
               "correct"]


def to_csv(results: list[Prediction], top: int) -> str:
    """One row per name; the `top` most likely classes and their probabilities after the
    fixed columns. Unlabelled names leave the label columns empty."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS + [f"{what}_{i}" for i in range(1, top + 1)
                              for what in ("class", "p")])
    for r in results:
        ranked = [v for c, p in r.ranking[:top] for v in (c, f"{p:.6g}")]
        opt = ["" if v is None else v for v in
               (r.label, f"{r.p_label:.6g}" if r.label else None, r.rank, r.correct)]
        w.writerow([r.name, r.read_as, opt[0], r.ranking[0][0], f"{r.ranking[0][1]:.6g}",
                    *opt[1:], *ranked])
    return buf.getvalue()
