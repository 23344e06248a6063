"""`dl2424 predict` on a tiny run trained on fixture surnames."""

import csv
import io
import json
import shutil
from pathlib import Path

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
                  "--name", "Prqtson", "--json", "--top", "4")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [p["prediction"] for p in out["predictions"]] == ["Arabic", "Chinese", "Czech",
                                                             "Dutch"]
    for p in out["predictions"]:
        probs = list(p["probabilities"].values())
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert probs == sorted(probs, reverse=True)


def test_table_output_and_top(trained):
    res = predict(trained, "--name", "Bacadov", "--top", "2")
    assert res.exit_code == 0, res.output
    assert "#2" in res.output and "#3" not in res.output
    assert res.output.index("Bacadov") < res.output.index("Arabic")


def test_json_top_lists_only_the_top_classes(trained):
    res = predict(trained, "--name", "Bacadov", "--json", "--top", "2")
    assert res.exit_code == 0, res.output
    probs = json.loads(res.stdout)["predictions"][0]["probabilities"]
    assert len(probs) == 2 and next(iter(probs)) == "Arabic"


def test_unknown_characters_are_named(trained):
    res = predict(trained, "--name", "Xiong")
    assert res.exit_code == 2
    assert "'x'" in res.output and "Traceback" not in res.output
    assert "--drop-unknown" in res.output
    res = predict(trained, "--name", "Xiong", "--drop-unknown", "--json")
    assert res.exit_code == 0
    p = json.loads(res.stdout)["predictions"][0]
    assert p["read_as"] == "iong" and "dropped" in p["notice"]


def test_overlong_name_is_cut_with_a_notice(trained):
    long = "Bacadov" * 3  # 21 characters; the fixture's longest name is much shorter
    res = predict(trained, "--name", long, "--json")
    assert res.exit_code == 0, res.output
    p = json.loads(res.stdout)["predictions"][0]
    assert long.lower().startswith(p["read_as"]) and len(p["read_as"]) < 21
    assert "kept the first" in p["notice"]
    res = predict(trained, "--name", long, "--truncate", "last", "--json")
    assert long.lower().endswith(json.loads(res.stdout)["predictions"][0]["read_as"])


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


# ---------------------------------------------------------------------------- name lists

LIST = """# friends, with their languages
Bacadov Arabic
Ghfijez 2
Klomski  czech
Prqtson\tArabic

Bacadøv
"""


def test_labelled_list_gives_rows_and_accuracy(trained, tmp_path):
    (tmp_path / "friends.txt").write_text(LIST, encoding="utf-8")
    res = predict(trained, "--from", str(tmp_path / "friends.txt"), "--json", "--top", "4")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    rows = out["predictions"]
    assert [r["name"] for r in rows] == ["Bacadov", "Ghfijez", "Klomski", "Prqtson", "Bacadøv"]
    assert [r.get("label") for r in rows] == ["Arabic", "Chinese", "Czech", "Arabic", None]
    # Prqtson is made of Dutch letters; Arabic is labelled wrongly on purpose
    assert [r["correct"] for r in rows[:4]] == [True, True, True, False]
    assert out["labelled"] == 4 and out["correct"] == 3 and out["accuracy"] == 0.75
    full = json.loads(predict(trained, "--name", "Prqtson", "--json", "--top", "4").stdout)
    ranking = list(full["predictions"][0]["probabilities"])
    assert rows[3]["rank"] == ranking.index("Arabic") + 1 > 1
    assert rows[3]["p_label"] == pytest.approx(full["predictions"][0]["probabilities"]
                                               ["Arabic"])
    assert out["top4_accuracy"] == (3 + (rows[3]["rank"] <= 4)) / 4
    assert rows[4]["read_as"] == "bacadov" and rows[4]["prediction"] == "Arabic"


def test_list_from_stdin_as_table_and_csv(trained):
    res = runner.invoke(app, ["predict", "--runs-dir", str(trained), "--from", "-"],
                        input=LIST)
    assert res.exit_code == 0, res.output
    assert "rank of true" in res.output and "read as" in res.output
    assert "accuracy: 3/4 = 75.0%" in res.output
    res = runner.invoke(app, ["predict", "--runs-dir", str(trained), "--from", "-", "--csv",
                              "--top", "2"], input=LIST)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 5 and rows[0]["label"] == "Arabic" and rows[0]["rank"] == "1"
    assert rows[4]["label"] == "" and rows[4]["read_as"] == "bacadov"
    assert {"class_2", "p_2"} <= set(rows[0]) and "class_3" not in rows[0]
    assert float(rows[3]["p_label"]) < float(rows[3]["p_prediction"])


@pytest.mark.parametrize("line, message", [("Bacadov 19", "line 1: '19'"),
                                           ("Bacadov, Martian", "line 1: 'Martian'")])
def test_bad_labels_name_the_line(trained, tmp_path, line, message):
    (tmp_path / "l.txt").write_text(line + "\n")
    res = predict(trained, "--from", str(tmp_path / "l.txt"))
    assert res.exit_code == 2 and message in res.output and "1..4" in res.output


def test_letters_outside_the_alphabet_are_transliterated(trained):
    res = predict(trained, "--name", "Klømski", "--name", "Ghfĳez", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["predictions"]
    assert [r["read_as"] for r in rows] == ["klomski", "ghfijez"]
    assert [r["prediction"] for r in rows] == ["Czech", "Chinese"]


# ---------------------------------------------------------------------------- which run

def _copy_run(trained: Path, dest: Path, name: str, val_acc: float, status: str) -> Path:
    src = next(trained.iterdir())
    run = dest / name
    shutil.copytree(src, run)
    summary = json.loads((run / "summary.json").read_text())
    summary["best"]["val_acc"], summary["status"] = val_acc, status
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_default_run_is_the_best_completed_one(trained, tmp_path):
    _copy_run(trained, tmp_path, "20250101-000000-good", 0.8, "completed")
    _copy_run(trained, tmp_path, "20250102-000000-smoke", 0.3, "completed")  # newest
    _copy_run(trained, tmp_path, "20250103-000000-live", 0.9, "running")
    res = predict(tmp_path, "--name", "Bacadov")
    assert res.exit_code == 0, res.output
    line = res.output.splitlines()[0]
    assert "20250101-000000-good" in line and "80.0% validation accuracy" in line
    assert "best completed surname run" in line and "warning" not in res.output
    res = predict(tmp_path, "--name", "Bacadov", "--json")  # the line goes to stderr
    assert json.loads(res.stdout)["run"].endswith("good")
    assert "20250101-000000-good" in res.stderr


def test_an_unfinished_run_is_warned_about(trained, tmp_path):
    live = _copy_run(trained, tmp_path, "20250103-000000-live", 0.9, "interrupted")
    res = runner.invoke(app, ["predict", "--run", str(live), "--name", "Bacadov"])
    assert res.exit_code == 0, res.output
    assert "given with --run; 90.0%" in res.output
    assert "warning:" in res.output and "interrupted, not completed" in res.output
    res = predict(tmp_path, "--name", "Bacadov")  # nothing completed: the best there is
    assert "20250103-000000-live" in res.output and "warning:" in res.output
