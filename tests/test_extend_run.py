"""Making a finished run longer: `train --resume RUN --set train.steps=N` continues from its
checkpoint to the same numbers a run trained that long from the start gives."""

import json

import yaml
from typer.testing import CliRunner

from dl2424.cli import app

from .runcheck import RICH, assert_same_run

runner = CliRunner()


def _train(env, cfg: dict, name: str, runs: str = "runs"):
    (env / f"{name}.yaml").write_text(yaml.safe_dump(cfg | {"name": name}))
    r = runner.invoke(app, ["train", str(env / f"{name}.yaml"), "--quiet",
                            "--runs-dir", str(env / runs)])
    assert r.exit_code == 0, r.output
    return next(p for p in (env / runs).iterdir() if p.name.endswith(f"-{name}"))


def test_extending_a_completed_run_equals_training_that_long(env):
    reference = _train(env, RICH, "short", "reference")  # 26 steps
    short = _train(env, RICH | {"train": RICH["train"] | {"steps": 12}}, "short")
    assert json.loads((short / "summary.json").read_text())["status"] == "completed"
    r = runner.invoke(app, ["train", "--resume", str(short), "--set", "train.steps=26",
                            "--quiet"])
    assert r.exit_code == 0, r.output
    assert_same_run(reference, short)
    config = yaml.safe_load((short / "config.yaml").read_text())
    assert config["train"]["steps"] == 26
    assert yaml.safe_load((short / "overrides.yaml").read_text()) == ["train.steps=26"]


def test_a_length_in_other_units_replaces_the_old_one(env):
    cfg = RICH | {"schedule": "constant", "optimizer": {"type": "sgd", "lr": 0.01},
                  "train": {"batch_size": 8, "epochs": 1, "eval_every": 5}}
    run = _train(env, cfg, "epochs")
    r = runner.invoke(app, ["train", "--resume", str(run), "--set", "train.steps=9", "--quiet"])
    assert r.exit_code == 0, r.output
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["steps"]) == ("completed", 9)
    train = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert (train["steps"], train["epochs"]) == (9, None)


def test_only_the_length_and_only_when_the_schedule_allows(env):
    run = _train(env, RICH | {"train": RICH["train"] | {"steps": 12}}, "short")
    before = (run / "config.yaml").read_text()
    for args, message in (
            (["--set", "seed=1"], "only the length of a run can change"),
            (["--set", "train.steps=6"], "does not go past the checkpoint at step 12"),
    ):
        r = runner.invoke(app, ["train", "--resume", str(run), *args])
        assert r.exit_code == 2 and message in r.output, r.output
    linear = _train(env, RICH | {"schedule": "linear", "optimizer": {"type": "sgd", "lr": 0.1},
                                 "train": {"batch_size": 8, "steps": 8}}, "linear")
    r = runner.invoke(app, ["train", "--resume", str(linear), "--set", "train.steps=16"])
    assert r.exit_code == 2 and "schedule linear depends on the run's length" in r.output
    assert (run / "config.yaml").read_text() == before  # a refused extension changes nothing
    r = runner.invoke(app, ["train", "--resume", str(run)])
    assert r.exit_code == 2 and "--set train.steps=N" in r.output
