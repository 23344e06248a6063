"""The text trainer has no path: what it keeps reaches the run folder only through its
reporter's hooks (rundir.Recorder), as Trainer's does."""

import json

import numpy as np

from dl2424.build import build
from dl2424.config import validate
from dl2424.hooks import Reporter
from dl2424.rundir import read_rows, read_samples
from dl2424.seqtrain import TextTrainer

from .test_seqtrain import config, train


class Collector(Reporter):
    def __init__(self):
        self.calls = []

    def on_metrics(self, rows, val_confusion):
        self.calls.append(("metrics", [dict(r) for r in rows], val_confusion))

    def on_samples(self, samples):
        self.calls.append(("samples", [dict(s) for s in samples]))

    def on_checkpoint(self, kind, model, optimizer, meta):
        params = {k: v.copy() for k, v in model.params.items()}
        self.calls.append(("checkpoint", kind, optimizer is None, dict(meta), params))


def test_text_trainer_writes_nothing_itself_and_hands_the_run_folder_to_its_hooks(tmp_path):
    cfg = config(tmp_path)
    (tmp_path / "cli").mkdir()
    run = train(tmp_path / "cli", cfg)
    before = sorted(tmp_path.rglob("*"))
    setup = build(validate(cfg, "test"), tmp_path)
    hooks = Collector()
    trainer = TextTrainer(setup, hooks)
    trainer.fit()
    assert sorted(tmp_path.rglob("*")) == before  # no file written without a Recorder

    lasts = [c for c in hooks.calls if c[:2] == ("checkpoint", "last")]
    assert [c[3]["step"] for c in lasts] == [0, 10, 20, 30, 40]
    assert not any(c[2] for c in lasts)  # the last checkpoint keeps the optimizer state
    bests = [c for c in hooks.calls if c[:2] == ("checkpoint", "best")]
    assert bests and all(c[2] for c in bests)  # best.npz: parameters only
    assert bests[-1][3]["step"] == trainer.best["step"]
    # each save hands over rows, then samples, then (when improved) best, then last
    kinds = [c[0] if c[0] != "checkpoint" else c[1] for c in hooks.calls]
    assert kinds[:3] == ["metrics", "samples", "last"]
    assert all(c[2] is None for c in hooks.calls if c[0] == "metrics")  # no confusion

    # what the hooks got last is what the run folder made by `train` holds
    rows = [c for c in hooks.calls if c[0] == "metrics"][-1][1]
    samples = [c for c in hooks.calls if c[0] == "samples"][-1][1]
    assert repr(rows) == repr(read_rows(run / "metrics.csv"))  # repr: nan == nan
    assert samples == read_samples(run) == json.loads((run / "samples.json").read_text())
    with np.load(run / "best.npz") as z:
        for k, v in bests[-1][4].items():
            np.testing.assert_array_equal(z[f"params/{k}"], v)
