"""`lr-range`: stops where the loss diverges, prints readable numbers, leaks no NumPy
warning, and leaves a run that `runs` lists as a completed range test."""

import json
import re
import warnings

import yaml
from typer.testing import CliRunner

from dl2424.cli import app

runner = CliRunner()
CFG = {"name": "rng", "seed": 0, "data": {"type": "cifar10"},
       "model": {"type": "mlp", "hidden": [8]}, "optimizer": {"type": "sgd", "lr": 0.01},
       "train": {"batch_size": 8, "epochs": 1}}


def test_lr_range_stops_at_divergence_and_is_completed(env):
    (env / "c.yaml").write_text(yaml.safe_dump(CFG))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked NumPy RuntimeWarning fails the test
        r = runner.invoke(app, ["lr-range", str(env / "c.yaml"), "--min", "1e-4", "--max",
                                "1e6", "--steps", "200", "--runs-dir", str(env / "runs")],
                          env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "RuntimeWarning" not in r.output and "overflow" not in r.output
    assert not re.search(r"\d{9,}", r.output.replace(str(env), "")), r.output  # no 29 digits
    assert "suggested cyclical bounds" in r.output and "stopped:" in r.output
    (run,) = (env / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["kind"]) == ("completed", "lr_range")
    assert summary["steps"] < 200  # it stopped at the divergence, not at the end of the sweep
    result = json.loads((run / "lr_range.json").read_text())
    assert 1e-4 <= result["eta_min"] < result["eta_max"] <= 1e6
    listed = runner.invoke(app, ["runs", "--runs-dir", str(env / "runs"), "--columns",
                                 "status"])
    assert "completed" in listed.output and "failed" not in listed.output
