"""The shipped patchify configs train (on tiny fixture batches), and `report` of such runs
draws the comparison figures: accuracy / time bars per setting, loss panels, true-class
probabilities."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import dl2424.cli.report_cmd  # noqa: F401  (adds report to the app)
from dl2424.cli import app
from dl2424.report import make_report, read_run
from dl2424.report.comparison import draw_comparison, groups, setting_labels
from dl2424.rundir import read_rows

CONFIGS = Path(__file__).parent.parent / "configs"
pytestmark = pytest.mark.slow  # trains four runs and draws a report
TINY = ["--set", "data.n_val=40", "--set", "train.steps=6", "--set", "train.eval_every=3",
        "--set", "model.nh=4"]


def train(env, config, name, *sets):
    res = CliRunner().invoke(app, ["train", str(CONFIGS / config), "--runs-dir",
                                   str(env / "runs"), "--quiet", *TINY, "--set",
                                   f"name={name}", *sets])
    assert res.exit_code == 0, res.output
    (run,) = (env / "runs").glob(f"*-{name}")
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fixture_data):
    env = tmp_path_factory.mktemp("patchruns")
    mp = pytest.MonkeyPatch()
    mp.setenv("DL2424_DATA_DIR", str(fixture_data))
    try:
        return {
            "a1": train(env, "cifar_patch_arch4.yaml", "a1", "--set", "model.nf=2"),
            "a2": train(env, "cifar_patch_arch4.yaml", "a2", "--set", "model.nf=2",
                        "--set", "seed=7"),
            "b": train(env, "cifar_patch_arch3.yaml", "b", "--set", "model.nf=3"),
            "smooth": train(env, "cifar_patch_arch5_smooth.yaml", "smooth", "--set",
                            "model.nf=2", "--set", "model.f=16"),
        }
    finally:
        mp.undo()


def test_shipped_configs_train_a_patchnet(runs):
    run = read_run(runs["b"])
    assert run.model == "patchnet" and run.summary["status"] == "completed"
    assert run.config["model"]["f"] == 8 and run.summary["n_params"] == (
        8 * 8 * 3 * 3 + 3 * 16 * 4 + 4 + 4 * 10 + 10)
    assert [r["step"] for r in read_rows(runs["b"] / "metrics.csv")][-1] == 6


def test_runs_differing_only_in_seed_form_one_group(runs):
    found = groups([read_run(runs[k]) for k in ("a1", "a2", "b")])
    assert [(label, len(rs)) for label, rs in found] == [("f=16, nf=2", 2), ("f=8, nf=3", 1)]


def test_report_of_several_runs_draws_the_comparison_figures(runs, tmp_path):
    index = make_report([runs[k] for k in ("a1", "b", "smooth")], name="sweep",
                        reports_dir=tmp_path)
    for png in ("bars.png", "loss_panels.png", "true_class.png"):
        assert (index.parent / png).is_file(), png
    md = (index.parent / "report.md").read_text()
    assert "Runs compared" in md and "Test accuracy and training time" in md


def test_a_single_run_has_nothing_to_compare(runs, tmp_path):
    assert draw_comparison([read_run(runs["b"])], tmp_path) == []
    assert not list(tmp_path.glob("*.png"))


def test_a_key_absent_from_an_older_run_and_null_in_a_newer_one_does_not_label_it():
    old = SimpleNamespace(name="a", config={"seed": 1, "train": {"label_smoothing": 0.0}})
    new = SimpleNamespace(name="b", config={"seed": 1, "train": {"label_smoothing": 0.1,
                                                                 "clip": None}})
    assert setting_labels([old, new]) == ["label_smoothing=0.0", "label_smoothing=0.1"]
    assert [label for label, _ in groups([old, new, new])] == ["label_smoothing=0.0",
                                                               "label_smoothing=0.1"]
