"""NaN/inf in the loss or the parameters: a clear message (step, which quantity), the run
marked failed, exit status 1, and a last checkpoint that holds only finite numbers; or, with
`train.on_nan: skip_batch`, the bad mini-batches skipped and counted."""

import json
import os
import re
import warnings

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dl2424 import experiment, rundir
from dl2424.build import build
from dl2424.cli import app
from dl2424.config import validate
from dl2424.rng import Stream, generator
from dl2424.settings import read as read_settings
from dl2424.trainer import Trainer

from .runcheck import arrays, complete_rows, meta

runner = CliRunner()

BASE = {
    "name": "div", "seed": 5,
    "data": {"type": "cifar10", "split": "course", "preprocess": "zscore"},
    "model": {"type": "mlp", "hidden": [16], "init": "he"},
    "optimizer": {"type": "sgd", "lr": 0.01},
    "train": {"batch_size": 8, "steps": 60, "eval_every": 4, "checkpoint_every": 3},
}
MESSAGE = re.compile(r"diverged: step (\d+): (training loss is (nan|inf)|parameter \w+ "
                     r"contains NaN or inf|evaluation gave \w+ (nan|inf))")


@pytest.fixture(autouse=True)
def no_numpy_warnings(monkeypatch):
    """Overflow is the point here, and the trainer reports it in one message: a NumPy
    RuntimeWarning printed before it would be an error."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield



def train(env, cfg):
    file = env / "cfg.yaml"
    file.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["train", str(file), "--runs-dir", str(env / "runs"), "--quiet"])
    (run,) = (env / "runs").iterdir()
    return res, run


def assert_failed_cleanly(res, run):
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    found = MESSAGE.search(res.output)
    assert found, res.output
    failed_at = int(found.group(1))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"].startswith("diverged: step")
    saved = meta(run / "checkpoint.npz")["step"]
    assert summary["checkpoint_step"] == saved <= failed_at
    assert f"The last good checkpoint (step {saved}) is in {run}" in res.output
    for name in ("checkpoint.npz", "best.npz"):
        for k, v in arrays(run / name).items():
            assert np.isfinite(v).all(), (name, k)
    for row in complete_rows(run / "metrics.csv"):
        assert all(np.isfinite(float(v)) for v in row), row
    return found, saved


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_learning_rate_stops_with_the_step_and_quantity(env, dtype):
    res, run = train(env, {**BASE, "dtype": dtype, "optimizer": {"type": "sgd", "lr": 1e6}})
    found, saved = assert_failed_cleanly(res, run)
    assert saved > 0  # it trained a few steps before blowing up: a real checkpoint was kept


def test_nan_parameters_never_reach_a_checkpoint(env):
    """With a checkpoint after every update, the update that makes the weights infinite is
    caught by the parameter check before the write; the checkpoint stays at the step before."""
    cfg = {**BASE, "optimizer": {"type": "sgd", "lr": 1e39},  # inf in float32
           "train": {**BASE["train"], "checkpoint_every": 1}}
    res, run = train(env, cfg)
    found, saved = assert_failed_cleanly(res, run)
    assert "parameter" in found.group(2)
    assert saved == int(found.group(1)) - 1


def test_resuming_a_diverged_run_fails_the_same_way(env):
    res, run = train(env, {**BASE, "optimizer": {"type": "sgd", "lr": 1e6}})
    first = MESSAGE.search(res.output).group(0)
    again = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert again.exit_code == 1 and MESSAGE.search(again.output).group(0) == first


def poisoned_setup(env, on_nan):
    """A training set with one image of inf pixels, kept out of the training-eval subset:
    every mini-batch that holds it has a NaN loss, the others are fine."""
    cfg = {**BASE, "sampler": "shuffle",
           "train": {**BASE["train"], "steps": 26, "eval_train_subset": 30, "on_nan": on_nan}}
    exp = validate(cfg)
    setup = build(exp, read_settings().data_dir)  # the fixture data, via DL2424_DATA_DIR
    n = len(setup.data.train)
    subset = generator(exp.seed, Stream.EVAL).choice(n, 30, False)
    bad = int(np.setdiff1d(np.arange(n), subset)[0])
    setup.data.train.X[bad] = np.inf
    return setup, bad


def batches_with(setup, bad):
    """Update steps whose mini-batch holds example `bad`, from the sampler's epoch orders."""
    B, spe = setup.exp.train.batch_size, setup.steps_per_epoch
    steps = []
    for t in range(setup.total_steps):
        epoch, j = divmod(t, spe)
        order = setup.sampler.epoch_order(generator(setup.exp.seed, Stream.EPOCH, epoch))
        if bad in order[j * B:(j + 1) * B]:
            steps.append(t)
    return steps


def test_skip_batch_skips_and_counts(env):
    setup, bad = poisoned_setup(env, "skip_batch")
    expected = batches_with(setup, bad)
    assert len(expected) >= 3
    run = rundir.create(env / "runs", "skip")
    trainer = Trainer(setup, experiment.recording(setup, run, None))
    summary = experiment.execute(setup, run, trainer)
    assert summary["status"] == "completed"
    assert summary["skipped_batches"] == len(expected)
    assert all(np.isfinite(v).all() for v in arrays(run / "checkpoint.npz").values())


def test_stop_is_the_default_and_names_the_first_bad_step(env):
    setup, bad = poisoned_setup(env, "stop")
    first = batches_with(setup, bad)[0]
    run = rundir.create(env / "runs", "stop")
    with pytest.raises(experiment.RunFailed) as e:
        experiment.execute(setup, run, Trainer(setup, experiment.recording(setup, run)))
    assert e.value.summary["error"].startswith(f"diverged: step {first}: training loss is nan")
    assert e.value.summary["skipped_batches"] == 0


def test_skip_batch_with_a_huge_rate_still_fails_rather_than_skip_forever(env):
    cfg = {**BASE, "optimizer": {"type": "sgd", "lr": 1e6},
           "train": {**BASE["train"], "on_nan": "skip_batch"}}
    res, run = train(env, cfg)
    assert_failed_cleanly(res, run)
    assert json.loads((run / "summary.json").read_text())["skipped_batches"] > 0
