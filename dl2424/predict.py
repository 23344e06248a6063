"""Classify new names with a trained run: only its config, data.json and checkpoint are read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint, rundir
from .build import build_model
from .data.names import Encoder, normalize
from .errors import UserError
from .experiment import load_info, load_run_config


@dataclass
class Prediction:
    name: str  # as given
    read_as: str  # what the model saw (normalised, cut to n_len)
    ranking: list[tuple[str, float]]  # classes by decreasing probability
    notice: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "read_as": self.read_as, "prediction": self.ranking[0][0],
                "probabilities": dict(self.ranking), "notice": self.notice}


def newest_run(runs_dir: Path) -> Path:
    """The most recent completed run that has a character encoder (a names model)."""
    candidates = sorted((p for p in Path(runs_dir).glob("*") if (p / "data.json").is_file()),
                        reverse=True)
    for run in candidates:
        try:
            done = rundir.read_summary(run).get("status") == "completed"
            has_encoder = load_info(run).encoder is not None
        except (OSError, ValueError, KeyError):
            continue
        if done and has_encoder:
            return run
    raise UserError(f"no completed surname run under {runs_dir}/; train one first, e.g. "
                    "dl2424 train configs/names_convnet.yaml, or give --run RUN_DIR")


class Predictor:
    def __init__(self, run: Path, weights: str = "best"):
        if not (run / "data.json").is_file() or not (run / "config.yaml").is_file():
            raise UserError(f"{run}: not a run folder (no data.json/config.yaml); give a "
                            "folder under runs/ made by dl2424 train")
        info = load_info(run)
        if info.encoder is None:
            raise UserError(f"{run}: this run's dataset has no character encoder; predict "
                            "needs a run trained on names")
        exp = load_run_config(run)
        self.encoder = Encoder.from_json(info.encoder)
        self.model = build_model(exp, info)
        file = run / ("best.npz" if weights == "best" else "checkpoint.npz")
        if not file.is_file():
            file = run / "checkpoint.npz"
        checkpoint.restore(checkpoint.load(file), self.model, where=str(file))
        self.run = run

    def __call__(self, names: list[str], truncate: str = "first",
                 drop_unknown: bool = False) -> list[Prediction]:
        for i, name in enumerate(names):
            if not normalize(name):
                raise UserError(f"--name #{i + 1} is empty; give a surname such as Xiong")
        X = self.encoder.encode(names, truncate=truncate, drop_unknown=drop_unknown)
        P = self.model.proba(X)
        classes = self.encoder.class_names
        out = []
        for name, x, p in zip(names, X, P, strict=True):
            order = np.argsort(-p, kind="stable")
            read_as = self.encoder.decode(x[None])[0]
            n = len(normalize(name))
            notice = None
            if n > self.encoder.n_len:
                notice = (f"{n} characters; the model reads {self.encoder.n_len}, kept the "
                          f"{truncate} {self.encoder.n_len}")
            elif drop_unknown and len(read_as) < n:
                notice = "characters outside the alphabet were dropped"
            out.append(Prediction(name, read_as, [(classes[k], float(p[k])) for k in order],
                                  notice))
        return out
