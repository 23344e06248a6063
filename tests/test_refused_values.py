"""Values that must be refused before anything trains (issue 12, category 6): infinite or
overflowing learning rates and L2 (they trained and 'diverged' with exit 1), true/false where
a number is wanted (read as 1), duplicate YAML keys (silently last-wins), `lr-range --max inf`,
an infinite search range, and a search metric the data cannot give (found after every trial)."""

import pytest
import yaml
from typer.testing import CliRunner

from dl2424.cli import app

runner = CliRunner()

NAMES = """name: refuse
data: {type: names}
model: {type: charcnn, layers: [{filters: 2, width: 3}], bias: true}
optimizer: {type: sgd, lr: 0.05}
train: {batch_size: 8, steps: 2, keep_confusions: false}
"""
MLP = """name: refuse
data: {type: cifar10, split: course}
model: {type: mlp, hidden: [4]}
optimizer: {type: sgd, lr: 0.05}
train: {batch_size: 8, steps: 2}
"""


def train(env, text, *extra):
    (env / "c.yaml").write_text(text)
    return runner.invoke(app, ["train", str(env / "c.yaml"), "--quiet", "--runs-dir",
                               str(env / "runs"), *extra])


def refused(res, *words):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    for w in words:
        assert w in res.output, res.output


@pytest.mark.parametrize("old,new,where", [
    ("lr: 0.05", "lr: .inf", "optimizer.lr"),
    ("lr: 0.05", "lr: 1.0e400", "optimizer.lr"),
    ("lr: 0.05", "lr: 1e400", "optimizer.lr"),  # a string to YAML 1.1, inf to float()
    ("lr: 0.05", "lr: .nan", "optimizer.lr"),
    ("bias: true", "bias: true, l2: .inf", "model.l2"),
    ("bias: true", "bias: true, l2: -.inf", "model.l2"),
])
def test_infinite_rates_are_bad_input_not_divergence(env, old, new, where):
    res = train(env, NAMES.replace(old, new))
    refused(res, where, "finite")
    assert not (env / "runs").exists()


@pytest.mark.parametrize("where,text,path", [
    ("train.batch_size", "batch_size: 8", "batch_size: true"),
    ("seed", "name: refuse", "name: refuse\nseed: true"),
    ("train.steps", "steps: 2", "steps: false"),
])
def test_true_false_is_not_a_number(env, where, text, path):
    res = train(env, NAMES.replace(text, path))
    refused(res, where, "true/false")


def test_true_false_inside_a_list_of_numbers(env):
    res = train(env, MLP.replace("hidden: [4]", "hidden: [4, true]"))
    refused(res, "model.hidden", "true/false")


def test_true_false_stays_fine_where_it_belongs(env):
    res = train(env, NAMES.replace("keep_confusions: false", "keep_confusions: true"))
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("text", [
    NAMES + "optimizer: {type: sgd, lr: 0.5}\n",  # a whole section twice
    NAMES.replace("lr: 0.05", "lr: 0.05, lr: 0.5"),  # a key twice in a flow mapping
    NAMES.replace("train: {", "train:\n  steps: 3\n  batch_size: 8\n  steps: 2\n#{"),
])
def test_duplicate_keys_are_refused(env, text):
    res = train(env, text)
    refused(res, "duplicate key")
    assert not (env / "runs").exists()


def test_duplicate_keys_in_a_set_value(env):
    res = train(env, NAMES, "--set", "optimizer={type: sgd, lr: 0.1, lr: 0.2}")
    refused(res, "duplicate key")


@pytest.mark.parametrize("args", [["--max", "inf"], ["--max", "nan"], ["--min", "nan"]])
def test_lr_range_needs_finite_bounds(env, args):
    (env / "c.yaml").write_text(NAMES)
    res = runner.invoke(app, ["lr-range", str(env / "c.yaml"), "--runs-dir", str(env / "runs"),
                              "--quiet", *args])
    refused(res, "--min/--max")
    assert not (env / "runs").exists()


def _search(env, spec):
    (env / "base.yaml").write_text(NAMES)
    (env / "s.yaml").write_text(yaml.safe_dump(spec | {"base": "base.yaml"}))
    return runner.invoke(app, ["search", str(env / "s.yaml"), "--workers", "1",
                               "--sweeps-dir", str(env / "sweeps")])


@pytest.mark.parametrize("dist", [{"uniform": [0, float("inf")]},
                                  {"log_uniform": [1e-3, float("inf")]},
                                  {"uniform": [float("nan"), 1]}])
def test_search_ranges_must_be_finite(env, dist):
    res = _search(env, {"space": {"optimizer.lr": dist}, "trials": 2})
    refused(res, "space.optimizer.lr", "finite")
    assert not (env / "sweeps").exists()


def test_an_unknown_search_metric_is_refused_before_any_trial(env):
    res = _search(env, {"space": {"optimizer.lr": {"grid": [0.01, 0.02]}}, "method": "grid",
                        "metric": "val_foo_acc"})
    refused(res, "val_foo_acc", "val_unseen_acc")
    assert not (env / "sweeps").exists()


def test_a_metric_the_dataset_gives_is_accepted(env, monkeypatch):
    """val_unseen_acc exists for surnames: the check reads the data, it does not guess."""
    from dl2424.search import sweep

    calls = []
    real = sweep.check_metric
    monkeypatch.setattr(sweep, "check_metric", lambda *a: calls.append(real(*a)))
    res = _search(env, {"space": {"optimizer.lr": {"grid": [0.01]}}, "method": "grid",
                        "metric": "val_unseen_acc"})
    assert res.exit_code == 0, res.output
    assert calls == [None]
