"""`train --resume`: a run stopped at any point and resumed ends bit-identical to one that never
stopped. In process: a reporter hook raises at a chosen moment, which leaves the run folder as a
crash would (rows, confusions and best.npz may be newer than the last checkpoint)."""

import json
import os
import signal

import pytest
import yaml
from typer.testing import CliRunner

from dl2424 import experiment
from dl2424.cli import app
from dl2424.config import validate
from dl2424.rundir import read_rows
from dl2424.trainer import Reporter, StopFlag

from .runcheck import RICH, assert_resumable, assert_same_run, meta

runner = CliRunner()

# Adam (a step counter in its state), data order, float64, class weights, no confusion files;
# 4 updates per epoch, checkpoints every 2, evaluations every 5, 17 steps (last not aligned).
PLAIN = {
    "name": "plain", "seed": 11, "dtype": "float64",
    "data": {"type": "cifar10", "split": "course", "preprocess": "scale_center"},
    "model": {"type": "mlp", "hidden": [10, 6], "activation": "leaky_relu", "init": "xavier"},
    "optimizer": {"type": "adam", "lr": 0.003},
    "sampler": "sequential",
    "train": {"batch_size": 10, "steps": 17, "eval_every": 5, "checkpoint_every": 2,
              "class_weighted": True, "keep_confusions": False},
}
# Surnames: the char ConvNet with input dropout, Nesterov, balanced classes, soft labels,
# class weights; 4 x 27 training names, balanced to 4 x 25 = 100, 12 updates per epoch.
NAMES = {
    "name": "names", "seed": 5,
    "data": {"type": "names", "soft_labels": True},
    "model": {"type": "charcnn", "layers": [{"filters": 4, "width": 3, "pool": 2}],
              "keep": 0.9, "bias": True, "l2": 0.001},
    "optimizer": {"type": "nesterov", "lr": 0.05, "rho": 0.8},
    "sampler": "balanced",
    "train": {"batch_size": 8, "steps": 30, "eval_every": 7, "checkpoint_every": 5,
              "class_weighted": True},
}
CONFIGS = {"rich": RICH, "plain": PLAIN, "names": NAMES}


class Crash(BaseException):
    """Stands in for kill -9: nothing after the raise runs (no checkpoint, no cleanup)."""


class CrashAt(Reporter):
    def __init__(self, step: int, where: str):
        self.step, self.where = step, where

    def on_step(self, step, lr, loss):  # after the update, before its evaluation/checkpoint
        if self.where == "update" and step == self.step:
            raise Crash

    def on_eval(self, row):  # after metrics.csv, confusions and best.npz, before checkpoint
        if self.where == "eval" and row["step"] == self.step:
            raise Crash


@pytest.fixture(scope="module")
def reference(fixture_data, tmp_path_factory):
    """One uninterrupted run per config."""
    root = tmp_path_factory.mktemp("reference")
    return {name: experiment.start(validate(cfg), [], fixture_data, root)[0]
            for name, cfg in CONFIGS.items()}


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """fsync only matters when the machine, not the process, dies; the kill tests in
    test_interrupt.py keep it. Here it would only cost seconds."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)



def crash(cfg, fixture_data, root, step, where):
    with pytest.raises(Crash):
        experiment.start(validate(cfg), [], fixture_data, root, CrashAt(step, where))
    (run,) = root.iterdir()
    return run


def resume(run, *extra):
    res = runner.invoke(app, ["train", "--resume", str(run), "--quiet", *extra])
    assert res.exit_code == 0, res.output
    return res


def eval_steps(cfg):
    t = cfg["train"]
    return sorted({*range(t["eval_every"], t["steps"] + 1, t["eval_every"]), t["steps"]})


CASES = ([("rich", k, "update") for k in range(1, RICH["train"]["steps"] + 1)]
         + [("rich", k, "eval") for k in eval_steps(RICH)]
         + [("plain", k, "update") for k in (1, 2, 3, 4, 5, 6, 9, 16, 17)]
         + [("plain", k, "eval") for k in eval_steps(PLAIN)]
         + [("names", k, "update") for k in (1, 6, 12, 13, 25, 30)]
         + [("names", k, "eval") for k in (14, 28, 30)])


@pytest.mark.slow
@pytest.mark.parametrize("name,step,where", CASES, ids=lambda v: str(v))
def test_crash_anywhere_then_resume_is_bit_identical(env, fixture_data, reference, name, step,
                                                     where):
    cfg = CONFIGS[name]
    run = crash(cfg, fixture_data, env / "runs", step, where)
    saved = assert_resumable(run, cfg["train"]["eval_every"])
    every = cfg["train"]["checkpoint_every"]
    assert saved == (step - 1) // every * every  # the crash came before step's checkpoint
    last_eval = max(k for k in [0, *eval_steps(cfg)] if k <= step - (where == "update"))
    assert read_rows(run / "metrics.csv")[-1]["step"] == last_eval  # rows after the checkpoint
    res = resume(run)
    assert f"resuming at step {saved}" in res.output or saved == 0
    assert_same_run(reference[name], run)


def test_best_newer_than_the_checkpoint_is_replaced(env, fixture_data, reference):
    """Crash right after an evaluation that improved on the best (best.npz written) but before
    the next checkpoint: the resumed run's best.npz and test_at_best equal the reference."""
    rows = read_rows(reference["rich"] / "metrics.csv")
    every = RICH["train"]["checkpoint_every"]
    improving = [r["step"] for i, r in enumerate(rows)
                 if i and r["val_acc"] > max(q["val_acc"] for q in rows[:i]) and r["step"] % every]
    assert improving, "the fixture run should improve at a step without a checkpoint"
    run = crash(RICH, fixture_data, env / "runs", improving[0], "eval")
    assert meta(run / "best.npz")["step"] == improving[0]
    assert meta(run / "checkpoint.npz")["step"] < improving[0]
    resume(run)
    assert_same_run(reference["rich"], run)


def test_crash_again_while_resuming(env, fixture_data, reference, monkeypatch):
    """Four crashes in one run, each resume crashing later; the last resume finishes it."""
    run = crash(RICH, fixture_data, env / "runs", 5, "update")
    for step, where in ((8, "eval"), (14, "update"), (23, "update")):
        with pytest.raises(Crash):
            experiment.resume(run, fixture_data, CrashAt(step, where))
        assert_resumable(run, RICH["train"]["eval_every"])
    resume(run)
    assert_same_run(reference["rich"], run)


@pytest.mark.parametrize("step", [1, 4, 12, 26])
def test_graceful_stop_then_resume(env, fixture_data, reference, step):
    """What SIGINT does, without a signal: the flag is set during update `step`."""
    stop = StopFlag()

    class SetFlag(Reporter):
        def on_step(self, s, lr, loss):
            if s == step:
                stop.signum = signal.SIGTERM

    with pytest.raises(experiment.RunInterrupted) as e:
        experiment.start(validate(RICH), [], fixture_data, env / "runs", SetFlag(), stop)
    run = e.value.run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["checkpoint_step"] == step
    assert meta(run / "checkpoint.npz")["step"] == step  # a checkpoint at the stop itself
    resume(run)
    assert_same_run(reference["rich"], run)


def test_resume_takes_no_config_and_refuses_a_finished_run(env, reference):
    cfg = env / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(RICH))
    run = reference["rich"]
    res = runner.invoke(app, ["train", str(cfg), "--resume", str(run)])
    assert res.exit_code == 2 and "uses the config stored in the run folder" in res.output
    res = runner.invoke(app, ["train", "--resume", str(run), "--set", "seed=1"])
    assert res.exit_code == 2 and "only the length of a run can change" in res.output
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 2 and "already completed" in res.output
    assert "Traceback" not in res.output


def test_resume_cuts_confusions_and_rows_after_the_checkpoint(env, fixture_data):
    run = crash(RICH, fixture_data, env / "runs", 17, "update")  # checkpoint 15, rows up to 16
    assert (run / "confusion" / "val_step16.csv").is_file()
    stop = StopFlag()

    class StopAtOnce(Reporter):
        def on_start(self, setup, start_step):
            assert start_step == 15
            # resume_from has already cut the folder back to the checkpoint's step
            assert [r["step"] for r in read_rows(run / "metrics.csv")][-1] == 12
            assert not (run / "confusion" / "val_step16.csv").exists()
            stop.signum = signal.SIGINT

    with pytest.raises(experiment.RunInterrupted):
        experiment.resume(run, fixture_data, StopAtOnce(), stop)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == 16


def test_double_signal_marks_the_run_interrupted(env, fixture_data, reference):
    """A second Ctrl-C stops at once (KeyboardInterrupt from the handler); the summary says
    interrupted and points at the last periodic checkpoint, from which resume works."""

    class SecondSignal(Reporter):
        def on_step(self, step, lr, loss):
            if step == 8:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as e:  # callers of start() still see a Ctrl-C
        experiment.start(validate(RICH), [], fixture_data, env / "runs", SecondSignal())
    s = e.value.summary
    assert s["status"] == "interrupted" and s["steps"] == 8 and s["checkpoint_step"] == 6
    assert e.value.signum == signal.SIGINT
    assert meta(e.value.run / "checkpoint.npz")["step"] == 6
    resume(e.value.run)
    assert_same_run(reference["rich"], e.value.run)


def test_resume_deletes_the_temp_files_of_writes_a_kill_cut_short(env, fixture_data, reference):
    run = crash(RICH, fixture_data, env / "runs", 10, "update")
    partial = [run / ".metrics.csv.k3j2.tmp", run / ".checkpoint.npz.x9.tmp",
               run / "confusion" / ".val_step8.csv.q1.tmp"]
    for f in partial:
        f.write_bytes(b"half a fi")
    resume(run)
    assert not any(f.exists() for f in partial)
    assert_same_run(reference["rich"], run)


def test_an_atomic_write_cut_short_leaves_the_old_file(tmp_path):
    from dl2424.atomic import atomic_open

    file = tmp_path / "metrics.csv"
    file.write_text("step,val_acc\n0,0.1\n")
    with pytest.raises(KeyboardInterrupt), atomic_open(file) as f:
        f.write("step,val_acc\n0,0.1\n4,0.")
        raise KeyboardInterrupt  # e.g. a second Ctrl-C in the middle of the write
    assert file.read_text() == "step,val_acc\n0,0.1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_double_signal_on_the_command_line_exits_130_with_the_resume_command(env, monkeypatch):
    from dl2424.cli import train_cmd

    class SecondSignal(train_cmd.RichReporter):
        def on_step(self, step, lr, loss):
            if step == 8:
                raise KeyboardInterrupt  # what the handler raises on a second Ctrl-C

    monkeypatch.setattr(train_cmd, "RichReporter", SecondSignal)
    cfg = env / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(RICH))
    res = runner.invoke(app, ["train", str(cfg), "--runs-dir", str(env / "runs"), "--quiet"])
    (run,) = (env / "runs").iterdir()
    assert res.exit_code == 130, res.output
    assert f"checkpoint saved at step 6. Resume with: dl2424 train --resume {run}" in res.output
