"""Config composition: `base:` files, several config files, component-aware --set."""

import json
from pathlib import Path

import pytest
import yaml

from dl2424.config import compose, load_experiment, validate
from dl2424.errors import UserError

ROOT = Path(__file__).parent.parent
# The shipped configs as they were written out in full before they were collapsed onto
# bases (configs/bases/): each must still resolve to the very same experiment.
BEFORE = json.loads((Path(__file__).parent / "data" / "configs_before_bases.json").read_text())


@pytest.mark.parametrize("stem", sorted(BEFORE))
def test_collapsed_configs_resolve_as_before(stem):
    exp = load_experiment(ROOT / "configs" / f"{stem}.yaml")
    before = validate(BEFORE[stem], stem)
    assert exp.dump() == before.dump()
    assert exp.digest() == before.digest()  # old checkpoints still match their configs


def test_collapsed_family_differs_in_one_line():
    text = (ROOT / "configs" / "cifar_a3_3layer_bn.yaml").read_text()
    body = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert body == ["base: cifar_a3_3layer.yaml", "name: cifar_a3_3layer_bn",
                    "model: {batchnorm: true}"]


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {"seed": 3, "data": {"type": "cifar10", "split": "course"},
        "model": {"type": "mlp", "hidden": [8, 8], "l2": 0.1},
        "optimizer": {"type": "momentum", "lr": 0.01, "rho": 0.5},
        "train": {"batch_size": 10, "epochs": 2}}


def test_base_chain_merges_mappings_and_replaces_lists(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "root.yaml", BASE)
    _write(tmp_path / "sub" / "mid.yaml", {"base": "root.yaml", "model": {"hidden": [4]}})
    child = _write(tmp_path / "child.yaml", {"base": "sub/mid.yaml", "name": "c",
                                             "optimizer": {"lr": 0.5}})
    exp = load_experiment(child)
    assert exp.model.params.hidden == [4] and exp.model.params.l2 == 0.1
    assert (exp.optimizer.type, exp.optimizer.params.lr, exp.optimizer.params.rho) == \
        ("momentum", 0.5, 0.5)
    assert exp.seed == 3 and exp.train.epochs == 2


def test_base_loop_is_one_clear_error(tmp_path):
    _write(tmp_path / "a.yaml", {"base": "b.yaml", "name": "a"})
    _write(tmp_path / "b.yaml", {"base": "a.yaml"})
    with pytest.raises(UserError, match="loops back"):
        compose(tmp_path / "a.yaml")
    _write(tmp_path / "c.yaml", {"base": "missing.yaml"})
    with pytest.raises(UserError, match="c.yaml: base: missing.yaml: no such file"):
        compose(tmp_path / "c.yaml")


def test_several_configs_merge_left_to_right(tmp_path):
    a = _write(tmp_path / "a.yaml", BASE | {"name": "a"})
    b = _write(tmp_path / "b.yaml", {"name": "b", "train": {"steps": 7}, "seed": 9})
    c = _write(tmp_path / "c.yaml", {"seed": 11})
    exp = load_experiment([a, b, c])
    assert (exp.name, exp.seed, exp.train.steps, exp.train.epochs) == ("b", 11, 7, None)


def test_length_override_replaces_the_other_length(tmp_path):
    a = _write(tmp_path / "a.yaml", BASE | {"name": "a"})
    exp = load_experiment(a, ["train.steps=200"])
    assert (exp.train.steps, exp.train.epochs) == (200, None)


@pytest.mark.parametrize("item", ["optimizer.type=adam", "optimizer=adam"])
def test_switching_optimizer_keeps_accepted_keys(tmp_path, item):
    a = _write(tmp_path / "a.yaml", BASE | {"name": "a"})
    notices = []
    exp = load_experiment(a, [item], notify=notices.append)
    assert exp.optimizer.type == "adam"
    assert exp.optimizer.params.lr == 0.01  # kept
    assert exp.optimizer.params.beta1 == 0.9  # default filled
    assert notices == ["optimizer: momentum → adam drops rho (adam has no such key)"]


def test_switching_schedule_sampler_and_loss(tmp_path):
    a = _write(tmp_path / "a.yaml", BASE | {"name": "a", "schedule": {
        "type": "step", "gamma": 0.5}, "model": BASE["model"] | {"loss": "softmax_ce"}})
    notices = []
    exp = load_experiment(a, ["schedule=cyclic", "train.cycles=1", "sampler=balanced",
                              "model.loss=svm"], notify=notices.append)
    assert exp.schedule.type == "cyclic" and exp.schedule.params.n_s == 500
    assert exp.optimizer.params.lr is None  # the cyclic schedule sets the lr itself
    assert exp.sampler.type == "balanced" and exp.model.params.loss.type == "svm"
    assert exp.train.cycles == 1 and exp.train.epochs is None
    assert notices == ["schedule: step → cyclic drops gamma (cyclic has no such key)",
                       "optimizer: schedule cyclic sets the learning rate itself; drops lr"]


def test_cli_merges_configs_and_prints_switch_notice(env):
    from typer.testing import CliRunner

    from dl2424.cli import app

    a = _write(env / "a.yaml", BASE | {"name": "a"})
    b = _write(env / "b.yaml", {"name": "b", "train": {"steps": 3}})
    r = CliRunner().invoke(app, ["train", str(a), "--config", str(b), "--set",
                                 "optimizer=sgd", "--quiet", "--runs-dir", str(env / "runs")])
    assert r.exit_code == 0, r.output
    assert "note: optimizer: momentum → sgd drops rho (sgd has no such key)" in r.output
    (run,) = (env / "runs").iterdir()
    assert run.name.endswith("-b")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["steps"] == 3 and saved["train"]["epochs"] is None


def test_a_search_spec_base_may_itself_have_a_base(tmp_path):
    from dl2424.search.spec import load_spec

    _write(tmp_path / "root.yaml", BASE | {"name": "r"})
    _write(tmp_path / "mid.yaml", {"base": "root.yaml", "model": {"hidden": [3]}})
    _write(tmp_path / "s.yaml", {"base": "mid.yaml",
                                 "method": "grid", "space": {"model.l2": {"grid": [0.1, 0.2]}}})
    search = load_spec(tmp_path / "s.yaml")
    assert search.base["model"]["hidden"] == [3] and search.base["seed"] == 3
    assert "base" not in search.base
