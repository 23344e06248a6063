"""A run folder received from elsewhere is input like any other (issue 12, category 2):
data.json, config.yaml and the checkpoint are checked against each other before a model is
built or a prediction made. Before, an enlarged alphabet in data.json made `predict` index
outside the model's one-hot input: garbage answers, and with a 57k-character alphabet a
segfault."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from dl2424 import checkpoint, experiment
from dl2424.cli import app
from dl2424.config import validate

runner = CliRunner()

NAMES = {
    "name": "recv", "seed": 1,
    "data": {"type": "names"},
    "model": {"type": "charcnn", "layers": [{"filters": 3, "width": 3}]},
    "optimizer": {"type": "momentum", "lr": 0.05},
    "train": {"batch_size": 8, "steps": 6, "eval_every": 3},
}


@pytest.fixture(scope="module")
def trained(fixture_data, tmp_path_factory):
    run, _ = experiment.start(validate(NAMES), [], fixture_data,
                              tmp_path_factory.mktemp("runs"))
    return run


@pytest.fixture
def run(trained, tmp_path, monkeypatch, fixture_data):
    monkeypatch.setenv("DL2424_DATA_DIR", str(fixture_data))
    copy = tmp_path / trained.name
    shutil.copytree(trained, copy)
    return copy


def edit_info(run, change):
    d = json.loads((run / "data.json").read_text())
    change(d)
    (run / "data.json").write_text(json.dumps(d))


def predict(run, *names):
    return runner.invoke(app, ["predict", "--run", str(run), *(a for n in names
                                                               for a in ("--name", n))])


def refused(res, *words):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    for w in words:
        assert w in res.output, res.output


def test_the_untouched_run_predicts(run):
    res = predict(run, "abc")
    assert res.exit_code == 0, res.output


def _enlarge(d, extra):
    d["encoder"]["alphabet"] = sorted(set(d["encoder"]["alphabet"]) | set(extra))


def test_an_enlarged_alphabet_is_refused(run):
    edit_info(run, lambda d: _enlarge(d, "0123456789"))
    refused(predict(run, "abc"), "data.json", "vocabulary")


def test_a_57k_character_alphabet_is_refused_not_a_segfault(run):
    edit_info(run, lambda d: _enlarge(d, [chr(c) for c in range(0x4E00, 0x4E00 + 57000)
                                          if not 0xD800 <= c < 0xE000]))
    res = subprocess.run([sys.executable, "-c", "from dl2424.cli import run; run()",
                          "predict", "--run", str(run), "--name", "abc"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "vocabulary" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("what,change,words", [
    ("n_len", lambda d: d["encoder"].update(n_len=d["encoder"]["n_len"] + 4), ["n_len"]),
    ("vocab", lambda d: d["meta"].update(vocab=d["meta"]["vocab"] + 1), ["vocabulary"]),
    ("classes", lambda d: d["encoder"].update(class_names=d["encoder"]["class_names"][::-1]),
     ["class_names"]),
    ("alphabet order", lambda d: d["encoder"].update(alphabet=d["encoder"]["alphabet"][::-1]),
     ["sorted"]),
    ("alphabet strings", lambda d: d["encoder"].update(alphabet=["ab", "c"]), ["alphabet"]),
    ("n_len bool", lambda d: d["encoder"].update(n_len=True), ["n_len"]),
    ("vocab bool", lambda d: d["meta"].update(vocab=True), ["vocab"]),
    ("shape", lambda d: d.update(input_shape=[-3]), ["input_shape"]),
    ("shape str", lambda d: d.update(input_shape="19"), ["input_shape"]),
    ("class numbers", lambda d: d.update(class_names=[1, 2]), ["class_names"]),
    ("twice", lambda d: d.update(class_names=["x", "x"] + d["class_names"][2:]),
     ["repeats"]),
    ("meta list", lambda d: d.update(meta=[1]), ["meta"]),
    ("encoder str", lambda d: d.update(encoder="abc"), ["encoder"]),
])
def test_an_encoder_that_disagrees_with_the_model_is_refused(run, what, change, words):
    edit_info(run, change)
    refused(predict(run, "abc"), "data.json", *words)


def test_more_classes_in_data_json_than_the_checkpoint_has(run):
    """Consistent data.json, but for another model: the checkpoint's shapes decide."""
    def more(d):
        d["class_names"] = d["class_names"] + ["Klingon"]
        d["encoder"]["class_names"] = d["class_names"]
    edit_info(run, more)
    refused(predict(run, "abc"), "shape")


def test_a_longer_name_length_everywhere(run):
    def longer(d):
        d["input_shape"] = [d["input_shape"][0] + 3]
        d["encoder"]["n_len"] = d["input_shape"][0]
    edit_info(run, longer)
    refused(predict(run, "abc"), "shape")


def _rewrite_checkpoint(file, change):
    with np.load(file, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(file, **arrays)


@pytest.mark.parametrize("name,change,words", [
    ("best.npz", lambda a: a.update({"params/W": a["params/W"].astype(np.int64)}), ["int64"]),
    ("best.npz", lambda a: a.update({"params/W": a["params/W"].astype("<U3")}), ["U3"]),
    ("best.npz", lambda a: a.update({"params/F1": a["params/F1"][:1]}), ["shape"]),
    ("best.npz", lambda a: a.pop("params/F1"), ["do not match"]),
])
def test_a_checkpoint_that_disagrees_with_the_model_is_refused(run, name, change, words):
    _rewrite_checkpoint(run / name, change)
    refused(predict(run, "abc"), *words)


def _interrupted(run):
    """Make the copied run resumable (as if killed at its last checkpoint)."""
    s = json.loads((run / "summary.json").read_text())
    s["status"] = "interrupted"
    (run / "summary.json").write_text(json.dumps(s))


@pytest.mark.parametrize("change,words", [
    (lambda a: a.update({"optim/v.W": a["optim/v.W"][:, :1]}), ["optimizer state v.W"]),
    (lambda a: a.update({"optim/v.W": a["optim/v.W"].astype("<U2")}), ["optimizer state v.W"]),
    (lambda a: a.update({"optim/v.W": a["optim/v.W"].astype(np.float64)}), ["v.W"]),
    (lambda a: a.update({"params/W": a["params/W"].astype(np.int32)}), ["int32"]),
])
def test_resume_refuses_optimizer_state_of_another_model(run, change, words):
    _interrupted(run)
    _rewrite_checkpoint(run / "checkpoint.npz", change)
    res = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    refused(res, *words)


def test_the_checks_accept_what_training_writes(trained):
    info = experiment.load_info(trained)
    assert info.encoder is not None and info.meta["vocab"] == len(info.encoder["alphabet"])
    ck = checkpoint.load(trained / "checkpoint.npz")
    assert ck.meta["step"] == NAMES["train"]["steps"]
