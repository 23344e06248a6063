"""Live curves: TensorBoard event files in the run folder, read back; progress lines with
elapsed time and updates per second in a terminal."""

import io
import re

import numpy as np
import pytest
import yaml
from PIL import Image
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from dl2424 import experiment, rundir
from dl2424.cli import app
from dl2424.cli.progress import RichReporter
from dl2424.config import load_experiment
from dl2424.tblog import TensorBoardReporter

CONFIG = {
    "name": "tiny_names", "seed": 1, "data": {"type": "names"},
    "model": {"type": "charcnn", "layers": [{"filters": 4, "width": 3}], "init": "he"},
    "optimizer": {"type": "adam", "lr": 0.01}, "sampler": "balanced",
    "train": {"batch_size": 20, "steps": 60, "eval_every": 20},
}
SCALARS = {"loss/train", "loss/val", "cost/train", "cost/val", "accuracy/train",
           "accuracy/val", "lr"}


def _events(run) -> EventAccumulator:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def run(tmp_path_factory, fixture_data):
    root = tmp_path_factory.mktemp("tb")
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    res = CliRunner().invoke(app, ["train", str(cfg), "--data-dir", str(fixture_data),
                                   "--runs-dir", str(root / "runs"), "--quiet"])
    assert res.exit_code == 0, res.output
    return next((root / "runs").iterdir())


def test_event_file_holds_every_evaluation_and_the_confusion_image(run):
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    acc = _events(run)
    tags = acc.Tags()
    assert SCALARS <= set(tags["scalars"])
    assert set(tags["images"]) == {"confusion/val"}  # the surname data has no test set
    rows = rundir.read_rows(run / "metrics.csv")
    for t, column in (("accuracy/val", "val_acc"), ("loss/train", "train_loss"),
                      ("lr", "lr"), ("cost/val", "val_cost")):
        events = acc.Scalars(t)
        assert [e.step for e in events] == [r["step"] for r in rows] == [0, 20, 40, 60]
        np.testing.assert_allclose([e.value for e in events], [r[column] for r in rows],
                                   rtol=1e-6)
    (image,) = acc.Images("confusion/val")
    assert image.step == 60
    png = Image.open(io.BytesIO(image.encoded_image_string))
    assert png.size == (image.width, image.height) and min(png.size) > 200


def test_a_resumed_run_replaces_the_steps_after_its_checkpoint(tmp_path):
    first = TensorBoardReporter(tmp_path)
    first.on_start(None, 0)
    for step in (0, 10, 20):
        first.on_eval({"step": step, "val_acc": 0.1 * step})
    first.close()
    again = TensorBoardReporter(tmp_path)  # resumed from the checkpoint of step 10
    again.on_start(None, 10)
    for step in (10, 20, 30):
        again.on_eval({"step": step, "val_acc": 0.5})
    again.close()
    events = _events(tmp_path).Scalars("accuracy/val")
    assert [(e.step, e.value) for e in events] == [(0, 0.0), (10, 0.5), (20, 0.5), (30, 0.5)]


def test_tensorboard_can_be_turned_off(tmp_path, fixture_data, monkeypatch):
    monkeypatch.setenv("DL2424_TENSORBOARD", "0")
    exp = load_experiment_from(CONFIG, tmp_path)
    run, _ = experiment.start(exp, [], fixture_data, tmp_path / "runs")
    assert not list(run.glob("events.out.tfevents.*"))


def load_experiment_from(config: dict, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return load_experiment(cfg, [])


def test_terminal_progress_prints_a_line_per_evaluation(tmp_path, fixture_data):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=220, color_system=None)
    exp = load_experiment_from(CONFIG, tmp_path)
    run, _ = experiment.start(exp, [], fixture_data, tmp_path / "runs",
                              RichReporter(console))
    lines = [ln for ln in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", out.getvalue()).splitlines()
             if re.match(r"step +\d+ +epoch", ln.strip())]
    steps = [int(ln.split()[1]) for ln in lines]
    assert steps == [r["step"] for r in rundir.read_rows(run / "metrics.csv")]
    for ln in lines:
        assert re.search(r"\d:\d\d:\d\d +(\d+\.\d|–) upd/s$", ln.strip()), ln
    assert re.search(r"\d+\.\d upd/s", lines[-1])  # after the first updates, a real rate
