"""Image runs save their normalisation; `predict --image` and `--from-test` on a tiny CIFAR run."""

import json

import matplotlib.image
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from dl2424 import rundir
from dl2424.cli import app
from dl2424.data import cifar
from dl2424.data.cifar import CifarParams, Normalisation
from dl2424.predict_image import read_image

runner = CliRunner()

CONFIG = {"name": "tiny_cifar", "seed": 0, "data": {"type": "cifar10"},
          "model": {"type": "mlp", "hidden": [], "init": "xavier"},
          "optimizer": {"type": "sgd", "lr": 0.02},
          "train": {"batch_size": 10, "epochs": 6}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fixture_data):
    root = tmp_path_factory.mktemp("cifar")
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    res = runner.invoke(app, ["train", str(cfg), "--data-dir", str(fixture_data),
                              "--runs-dir", str(root / "runs"), "--quiet"])
    assert res.exit_code == 0, res.output
    return next((root / "runs").iterdir())


def predict(*args):
    return runner.invoke(app, ["predict", *map(str, args)])


def test_saved_normalisation_reproduces_the_training_inputs(trained, fixture_data):
    for how in ("zscore", "scale", "center", "scale_center"):
        p = CifarParams(preprocess=how)
        bundle = cifar.load(p, fixture_data, np.dtype(np.float32))
        again = Normalisation.from_arrays(bundle.normalisation.to_arrays())
        X, _, _ = cifar.read_test(p, fixture_data)
        np.testing.assert_array_equal(again(X, np.dtype(np.float32)), bundle.test.X)
    saved = rundir.read_normalisation(trained)
    assert str(saved["how"]) == "zscore" and saved["mean"].shape == saved["std"].shape == (3072,)


def _write_enlarged(img_row: np.ndarray, path, mode="RGB") -> None:
    """The 32x32 image blown up 3x (nearest), with 16-pixel noise bands left and right."""
    hwc = img_row.reshape(3, 32, 32).transpose(1, 2, 0).repeat(3, axis=0).repeat(3, axis=1)
    band = np.random.default_rng(0).integers(0, 256, (96, 16, 3), dtype=np.uint8)
    Image.fromarray(np.concatenate([band, hwc, band], axis=1)).convert(mode).save(path)


def test_image_files_are_read_as_cifar_rows(tmp_path, fixture_data):
    X, _, _ = cifar.read_test(CifarParams(), fixture_data)
    _write_enlarged(X[3], tmp_path / "a.png")
    row, size = read_image(tmp_path / "a.png")
    assert size == (128, 96) and row.shape == (3072,) and row.dtype == np.uint8
    np.testing.assert_array_equal(row, X[3])  # the centre square, averaged back to 32x32
    _write_enlarged(X[3], tmp_path / "g.png", mode="L")  # grey: three equal planes
    grey, _ = read_image(tmp_path / "g.png")
    planes = grey.reshape(3, 1024)
    assert (planes[0] == planes[1]).all() and (planes[1] == planes[2]).all()


def test_predict_image_gives_the_class_of_the_test_image(trained, tmp_path, fixture_data):
    X, y, names = cifar.read_test(CifarParams(), fixture_data)
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["test"]["acc"] > 0.5  # the fixture classes are learnable
    files = []
    for i in range(6):
        files.append(tmp_path / f"img{i}.png")
        _write_enlarged(X[i], files[-1])
    res = predict("--run", trained, "--image", *files, "--json", "--top", "2")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["predictions"]
    assert [r["name"] for r in rows] == [str(f) for f in files]
    assert all(len(r["probabilities"]) == 2 for r in rows)
    assert rows[0]["read_as"] == "128×96, centre square → 32×32"
    right = sum(r["prediction"] == names[t] for r, t in zip(rows, y[:6], strict=True))
    assert right >= 4
    res = predict("--runs-dir", trained.parent, "--image", files[0], files[1])
    assert res.exit_code == 0, res.output
    assert "best completed image run" in res.output
    assert res.output.count("centre square") == 2  # a row per file


@pytest.mark.slow
def test_from_test_draws_the_figure_and_matches_the_test_accuracy(trained, tmp_path,
                                                                  fixture_data):
    out = tmp_path / "t.png"
    res = predict("--run", trained, "--from-test", 40, "--out", out, "--weights", "last",
                  "--data-dir", fixture_data)
    assert res.exit_code == 0, res.output
    acc = json.loads((trained / "summary.json").read_text())["test"]["acc"]
    assert f"({round(40 * acc)}/40 test images right)" in res.output
    img = matplotlib.image.imread(out)
    assert img.shape[1] > 1000 and img.shape[0] > 5 * 100  # 8 columns, 5 rows


def test_image_runs_and_files_that_cannot_answer(trained, tmp_path):
    (tmp_path / "x.png").write_text("not a png")
    res = predict("--run", trained, "--image", tmp_path / "x.png")
    assert res.exit_code == 2 and "not an image" in res.output
    res = predict("--run", trained, "--name", "Xiong")
    assert res.exit_code == 2 and "no character encoder" in res.output
    old = tmp_path / "old"  # a run from before normalisation.npz was saved
    old.mkdir()
    for f in trained.iterdir():
        if f.is_file() and f.name != "normalisation.npz":
            (old / f.name).write_bytes(f.read_bytes())
    _write_enlarged(np.zeros(3072, np.uint8), tmp_path / "z.png")
    res = predict("--run", old, "--image", tmp_path / "z.png")
    assert res.exit_code == 2 and "no normalisation.npz" in res.output
    res = predict("--runs-dir", tmp_path, "--image", tmp_path / "z.png")
    assert res.exit_code == 2 and "no image run" in res.output
