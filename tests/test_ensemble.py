"""Ensembles: the vote rule, and `dl2424 ensemble` on tiny trained runs."""

import json
import re

import numpy as np
import yaml
from typer.testing import CliRunner

from dl2424.cli import app
from dl2424.ensemble import majority_vote

from .fixtures import write_cifar_python

runner = CliRunner()


def test_majority_vote_counts_and_breaks_ties_by_probability():
    p = np.array([
        [[0.6, 0.4, 0.0], [0.1, 0.2, 0.7]],
        [[0.5, 0.5, 0.0], [0.0, 0.9, 0.1]],
        [[0.2, 0.8, 0.0], [0.3, 0.0, 0.7]],
    ])
    # example 0: votes 0, 0 (tie 0.5/0.5 goes to argmax = 0), 1 -> class 0
    # example 1: votes 2, 1, 2 -> class 2
    np.testing.assert_array_equal(majority_vote(p), [0, 2])
    tie = np.array([[[0.6, 0.4]], [[0.1, 0.9]]])  # one vote each; mean prob favours class 1
    np.testing.assert_array_equal(majority_vote(tie), [1])


def test_ensemble_cli(tmp_path):
    write_cifar_python(tmp_path / "data", n_per_batch=40)
    base = {"name": "m", "data": {"type": "cifar10"},
            "model": {"type": "mlp", "hidden": [8], "init": "xavier"},
            "optimizer": {"type": "sgd", "lr": 0.05}, "train": {"batch_size": 10, "epochs": 4}}
    for seed in (1, 2, 3):
        cfg = tmp_path / f"c{seed}.yaml"
        cfg.write_text(yaml.safe_dump({**base, "seed": seed}))
        res = runner.invoke(app, ["train", str(cfg), "--data-dir", str(tmp_path / "data"),
                                  "--runs-dir", str(tmp_path / "runs"), "--quiet"])
        assert res.exit_code == 0, res.output
    runs = sorted(str(p) for p in (tmp_path / "runs").iterdir())
    res = runner.invoke(app, ["ensemble", *runs, "--data-dir", str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    assert "majority vote" in res.output and "mean probability" in res.output
    accs = re.findall(r"│\s+([01]\.\d{4}) │", res.output)
    assert len(accs) == 5  # three members and two ensemble rows
    assert all(float(a) > 0.5 for a in accs)  # the fixture is learnable; chance is 0.1
    res = runner.invoke(app, ["ensemble", runs[0], "--data-dir", str(tmp_path / "data")])
    assert res.exit_code == 2 and "at least two" in res.output


def test_cycle_snapshots_make_an_ensemble(tmp_path):
    write_cifar_python(tmp_path / "data", n_per_batch=40)
    cfg = {"name": "snap", "seed": 1, "data": {"type": "cifar10"},
           "model": {"type": "mlp", "hidden": [8], "init": "xavier"},
           "schedule": {"type": "cyclic", "eta_min": 0.001, "eta_max": 0.1, "n_s": 4},
           "train": {"batch_size": 10, "cycles": 3, "snapshots": True}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--data-dir",
                              str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs"),
                              "--quiet"])
    assert res.exit_code == 0, res.output
    (run,) = (tmp_path / "runs").iterdir()
    snaps = sorted((run / "snapshots").glob("cycle*.npz"))
    assert [s.name for s in snaps] == ["cycle1.npz", "cycle2.npz", "cycle3.npz"]
    # one snapshot at the end of each cycle of 2 n_s = 8 updates
    assert [json.loads(s.with_suffix(".json").read_text())["step"] for s in snaps] == [8, 16, 24]
    res = runner.invoke(app, ["ensemble", str(run), "--snapshots", "--data-dir",
                              str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    assert "ensemble of 3 members" in res.output and "cycle3" in res.output
    cfg["schedule"] = {"type": "constant"}
    cfg["optimizer"] = {"type": "sgd", "lr": 0.1}
    cfg["train"] = {"batch_size": 10, "epochs": 2, "snapshots": True}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--data-dir",
                              str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs2")])
    assert res.exit_code == 2 and "train.snapshots needs schedule.type: cyclic" in res.output
