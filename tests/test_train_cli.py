"""`dl2424 train` from the command line, on tiny fixtures in the real format."""

import csv
import json
import re

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dl2424.cli import app
from dl2424.rundir import read_confusion, read_rows

runner = CliRunner()

BASE = {
    "name": "tiny", "seed": 3,
    "data": {"type": "cifar10", "split": "course", "preprocess": "zscore"},
    "model": {"type": "mlp", "hidden": [8], "l2": 0.001, "init": "xavier"},
    "optimizer": {"type": "momentum", "lr": 0.01, "rho": 0.9},
    "train": {"batch_size": 10, "epochs": 3, "eval_every": 2},
}



def write_config(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(env, cfg, *extra):
    cfgfile = write_config(env / "cfg.yaml", cfg)
    res = runner.invoke(app, ["train", str(cfgfile), "--runs-dir", str(env / "runs"),
                              "--quiet", *extra])
    return res


def only_run(env):
    runs = sorted((env / "runs").iterdir()) if (env / "runs").exists() else []
    assert len(runs) == 1, runs
    return runs[0]


def test_train_writes_a_complete_run_folder(env):
    res = train(env, BASE)
    assert res.exit_code == 0, res.output
    run = only_run(env)
    assert re.fullmatch(r"\d{8}-\d{6}-tiny", run.name)
    for f in ("config.yaml", "overrides.yaml", "data.json", "metrics.csv", "confusion_val.csv",
              "confusion_test.csv", "checkpoint.npz", "checkpoint.json", "summary.json"):
        assert (run / f).is_file(), f
    rows = read_rows(run / "metrics.csv")
    # 40 images / batch 10 = 4 steps per epoch, 3 epochs = 12 steps, evaluated every 2 + step 0
    assert [r["step"] for r in rows] == [0, 2, 4, 6, 8, 10, 12]
    assert rows[-1]["epoch"] == 3.0
    for r in rows:
        assert r["train_cost"] >= r["train_loss"]  # cost = loss + a non-negative penalty
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 12
    assert summary["best"]["val_acc"] == max(r["val_acc"] for r in rows)
    names, conf = read_confusion(run / "confusion_test.csv")
    assert names[0] == "airplane" and conf.sum() == 40
    assert conf.trace() / 40 == pytest.approx(summary["test"]["acc"])
    with open(run / "predictions_test.csv") as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == 40
    assert all(0 <= float(p["p_label"]) <= 1 for p in preds)
    right = sum(p["label"] == p["pred"] for p in preds)
    assert right / 40 == pytest.approx(summary["test"]["acc"])
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["optimizer"] == {"type": "momentum", "lr": 0.01, "rho": 0.9}
    assert saved["schedule"] == {"type": "constant"}  # defaults are written out resolved
    assert not list(run.glob(".*.tmp"))  # no temp files left behind


def test_overrides_are_applied_and_recorded(env):
    res = train(env, BASE, "--set", "train.epochs=1", "--set", "optimizer.lr=0.05")
    assert res.exit_code == 0, res.output
    run = only_run(env)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 1 and saved["optimizer"]["lr"] == 0.05
    assert yaml.safe_load((run / "overrides.yaml").read_text()) == [
        "train.epochs=1", "optimizer.lr=0.05"]
    assert read_rows(run / "metrics.csv")[-1]["step"] == 4


def test_same_seed_same_metrics(env):
    assert train(env, BASE).exit_code == 0
    assert train(env, BASE).exit_code == 0
    a, b = sorted((env / "runs").iterdir())
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    other = train(env, {**BASE, "seed": 4})
    assert other.exit_code == 0
    c = [r for r in sorted((env / "runs").iterdir()) if r not in (a, b)][0]
    assert (a / "metrics.csv").read_bytes() != (c / "metrics.csv").read_bytes()


def test_training_learns_the_fixture(env):
    cfg = {**BASE, "train": {"batch_size": 10, "epochs": 15}}
    assert train(env, cfg).exit_code == 0
    summary = json.loads((only_run(env) / "summary.json").read_text())
    assert summary["test"]["acc"] > 0.5  # 10 classes: chance is 0.1


BAD = [
    ({"model": {"type": "mlp", "hiden": [8]}}, "model.hiden: unknown key"),
    ({"model": {"type": "mlpp"}}, "unknown model 'mlpp'; registered:"),
    ({"model": {"type": "mlp", "l2": -0.1}}, "model.l2: Input should be greater than or equal"),
    ({"train": {"batch_size": "ten", "epochs": 1}}, "train.batch_size: Input should be a valid"),
    ({"train": {"batch_size": 10}}, "train: give exactly one of epochs, steps or cycles"),
    ({"train": {"batch_size": 1000, "epochs": 1}}, "train.batch_size: 1000 is larger"),
    ({"optimizer": {"type": "sgd"}}, "optimizer.lr is required"),
    ({"data": {"type": "cifar10", "split": "everything"}}, "data.split: Input should be"),
    ({"optimizer": {"type": "adamw", "lr": 0.1}},
     "registered: adagrad, adam, momentum, nesterov, rmsprop, sgd"),
    ({"colour": "blue"}, "colour: unknown key"),
]


@pytest.mark.parametrize("change,message", BAD)
def test_bad_config_is_one_clear_error(env, change, message):
    res = train(env, {**BASE, **change})
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output
    assert not (env / "runs").exists() or not list((env / "runs").iterdir())


def test_bad_override_and_missing_file(env):
    res = runner.invoke(app, ["train", str(env / "nope.yaml"), "--runs-dir", str(env / "runs")])
    assert res.exit_code == 2 and "config file not found" in res.output
    res = train(env, BASE, "--set", "optimizer.lr")
    assert res.exit_code == 2 and "expected dotted.key=value" in res.output


def test_missing_data_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("DL2424_DATA_DIR", str(tmp_path / "empty"))
    res = train(tmp_path, BASE)
    assert res.exit_code == 2
    assert "dl2424 data fetch cifar10" in res.output and str(tmp_path / "empty") in res.output
    assert not (tmp_path / "runs").exists()


def test_version_and_help():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and "dl2424" in res.output
    res = runner.invoke(app, ["--help"])
    for cmd in ("train", "gradcheck", "data"):
        assert cmd in res.output


def test_float64_run_keeps_float64(env):
    assert train(env, {**BASE, "dtype": "float64"}).exit_code == 0
    with np.load(only_run(env) / "checkpoint.npz") as z:
        assert z["params/W1"].dtype == np.float64


def test_set_indexes_into_lists():
    from dl2424.config import apply_overrides
    from dl2424.errors import UserError

    raw = {"model": {"layers": [{"filters": 20, "width": 5}, {"filters": 20, "width": 3}]}}
    apply_overrides(raw, ["model.layers.1.width=4", "model.layers.0=null"])
    assert raw["model"]["layers"] == [None, {"filters": 20, "width": 4}]
    with pytest.raises(UserError, match="is a list of 2; use an index 0..1"):
        apply_overrides(raw, ["model.layers.2.width=4"])
    with pytest.raises(UserError, match="is a list of 2"):
        apply_overrides(raw, ["model.layers.first.width=4"])
