"""`dl2424 predict` on a tiny run trained on fixture surnames."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from dl2424.cli import app

from .fixtures import write_names_course

runner = CliRunner()

CONFIG = {
    "name": "tiny_names", "seed": 1, "data": {"type": "names"},
    "model": {"type": "charcnn", "layers": [{"filters": 8, "width": 3}], "init": "he"},
    "optimizer": {"type": "adam", "lr": 0.01}, "sampler": "balanced",
    "train": {"batch_size": 20, "steps": 300, "eval_every": 100},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    write_names_course(root / "data", val_per_class=5)
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    res = runner.invoke(app, ["train", str(cfg), "--data-dir", str(root / "data"),
                              "--runs-dir", str(root / "runs"), "--quiet"])
    assert res.exit_code == 0, res.output
    return root / "runs"


def predict(runs, *args):
    return runner.invoke(app, ["predict", "--runs-dir", str(runs), *args])


def test_predicts_the_language_each_class_is_made_of(trained):
    res = predict(trained, "--name", "Bacadov", "--name", "Ghfijez", "--name", "Klomski",
                  "--name", "Prqtson", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [p["prediction"] for p in out["predictions"]] == ["Arabic", "Chinese", "Czech",
                                                             "Dutch"]
    for p in out["predictions"]:
        probs = list(p["probabilities"].values())
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert probs == sorted(probs, reverse=True)


def test_table_output_and_top(trained):
    res = predict(trained, "--name", "Bacadov", "--top", "2")
    assert res.exit_code == 0, res.output
    assert "'Bacadov' → Arabic" in res.output
    assert "│ 2 │" in res.output and "│ 3 │" not in res.output


def test_unknown_characters_are_named(trained):
    res = predict(trained, "--name", "Xiong")
    assert res.exit_code == 2
    assert "'x'" in res.output and "Traceback" not in res.output
    res = predict(trained, "--name", "Xiong", "--drop-unknown", "--json")
    assert res.exit_code == 0
    p = json.loads(res.output)["predictions"][0]
    assert p["read_as"] == "iong" and "dropped" in p["notice"]


def test_overlong_name_is_cut_with_a_notice(trained):
    long = "Bacadov" * 3  # 21 characters; the fixture's longest name is much shorter
    res = predict(trained, "--name", long, "--json")
    assert res.exit_code == 0, res.output
    p = json.loads(res.output)["predictions"][0]
    assert long.lower().startswith(p["read_as"]) and len(p["read_as"]) < 21
    assert "kept the first" in p["notice"]
    res = predict(trained, "--name", long, "--truncate", "last", "--json")
    assert long.lower().endswith(json.loads(res.output)["predictions"][0]["read_as"])


@pytest.mark.parametrize("bad", ["", "   ", "x" * 10_000, "caf\udcff"])
def test_bad_names_are_clean_errors(trained, bad):
    res = predict(trained, "--name", bad)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output


def test_no_run_says_how_to_train(tmp_path):
    res = predict(tmp_path, "--name", "Xiong")
    assert res.exit_code == 2
    assert "dl2424 train configs/names_convnet.yaml" in res.output


def test_run_that_is_not_a_names_run(tmp_path):
    (tmp_path / "r").mkdir()
    res = runner.invoke(app, ["predict", "--run", str(tmp_path / "r"), "--name", "Xiong"])
    assert res.exit_code == 2 and "Traceback" not in res.output
