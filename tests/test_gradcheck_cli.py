"""`dl2424 gradcheck` from the command line, on tiny fixtures in the real format."""

import json
import re

import yaml
from typer.testing import CliRunner

from dl2424.cli import app

runner = CliRunner()

BASE = {
    "name": "tiny", "seed": 3,
    "data": {"type": "cifar10", "split": "course", "preprocess": "zscore"},
    "model": {"type": "mlp", "hidden": [20, 16], "l2": 0.1, "init": "xavier"},
    "optimizer": {"type": "momentum", "lr": 0.01, "rho": 0.9},
    "train": {"batch_size": 10, "epochs": 3},
}


def write_config(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_gradcheck_passes_and_prints_every_param(env):
    cfg = write_config(env / "g.yaml", BASE)
    res = runner.invoke(app, ["gradcheck", str(cfg)])
    assert res.exit_code == 0, res.output
    for p in ("W1", "b1", "W2", "b2", "W3", "b3"):
        assert re.search(rf"│ {p} .*pass", res.output), p
    assert "input (20,)" in res.output and "PASS: 6/6 parameters agree" in res.output
    assert "seeded jitter" in res.output  # the zero biases were moved off the kinks
    res = runner.invoke(app, ["gradcheck", str(cfg), "--save", str(env)])
    [saved] = json.loads((env / "gradcheck.json").read_text())
    assert [c["param"] for c in saved["rows"]] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert saved["rows"][0]["shape"] == [20, 20] and saved["passed"]
    assert saved["jitter"]["moved"] == {"b1": 20, "b2": 16, "b3": 10}
    assert all(r["over"] == 0 and r["h"] > 0 for r in saved["rows"])


def test_gradcheck_fails_on_a_wrong_gradient(env, monkeypatch):
    from dl2424.models import mlp
    cfg = write_config(env / "g.yaml", {**BASE, "model": {"type": "mlp", "hidden": [20],
                                                           "init": "xavier"}})
    real = mlp.MLP.backward

    def wrong(self, dscores, cache):
        grads = real(self, dscores, cache)
        grads["b1"] = grads["b1"] * 1.01  # a 1% error in one gradient
        return grads

    monkeypatch.setattr(mlp.MLP, "backward", wrong)
    res = runner.invoke(app, ["gradcheck", str(cfg), "--method", "forward", "--tol", "1e-4"])
    assert res.exit_code == 1
    assert re.search(r"│ b1 .*FAIL", res.output) and re.search(r"│ W1 .*pass", res.output)
    res = runner.invoke(app, ["gradcheck", str(cfg), "--against", "torch"])
    assert res.exit_code == 1 and re.search(r"│ b1 .*FAIL", res.output)


def test_gradcheck_against_torch_passes(env):
    cfg = write_config(env / "g.yaml", {**BASE, "model": {
        "type": "mlp", "hidden": [12], "batchnorm": True, "keep": 0.5, "l2": 0.1}})
    res = runner.invoke(app, ["gradcheck", str(cfg), "--against", "torch"])
    assert res.exit_code == 0, res.output
    assert "training mode" in res.output and "evaluation mode" in res.output
    assert res.output.count("agree with torch autograd") == 2


def test_bad_options_exit_2(env):
    cfg = write_config(env / "g.yaml", BASE)
    for opt in (["--against", "jax"], ["--at", "zero"], ["--method", "backward"]):
        res = runner.invoke(app, ["gradcheck", str(cfg), *opt])
        assert res.exit_code == 2 and "is not one of" in res.output, opt


def test_progress_appears_only_after_a_second(monkeypatch):
    import io

    from rich.console import Console

    from dl2424.cli import gradcheck_cmd

    out = io.StringIO()
    monkeypatch.setattr(gradcheck_cmd, "console", Console(file=out, force_terminal=True))
    quick = gradcheck_cmd._LateProgress(delay=3600)
    quick(1, 10, "W1")
    assert quick.bar is None
    slow = gradcheck_cmd._LateProgress(delay=0)
    slow(3, 10, "W2")
    assert slow.bar is not None and slow.bar.tasks[0].completed == 3
    slow.close()
    assert "checking W2" in out.getvalue()


def test_saved_report_shows_in_the_run_report(env):
    from dl2424.report.load import Run
    from dl2424.report.tables import gradcheck_table

    cfg = write_config(env / "g.yaml", {**BASE, "model": {"type": "mlp", "hidden": [5]}})
    run = env / "run"
    run.mkdir()
    assert runner.invoke(app, ["gradcheck", str(cfg), "--save", str(run)]).exit_code == 0
    t = gradcheck_table(Run(run, {}, {}, {}, []))
    assert [r[0] for r in t.rows] == ["W1", "b1", "W2", "b2"]
    assert all(r[3] == 0 and r[-1] is True for r in t.rows)  # over tol, passed


def test_a_crop_that_would_change_a_conv_method_checks_whole_images(env):
    """Winograd's layers need maps of 4x4 or more: the default 8x8 crop would send conv3
    (8x8 maps in the whole 32x32 images, 2x2 in the crop) through im2col instead, so the
    check takes whole images; a 16x16 crop keeps every method and is used."""
    model = {"type": "cnn", "layers": [128, "M", 128, "M", 128], "hidden": [],
             "pool": {"kernel": 2, "stride": 2, "padding": 0}}
    cfg = write_config(env / "g.yaml", {**BASE, "model": model})

    def checked(*extra):
        res = runner.invoke(app, ["gradcheck", str(cfg), "--save", str(env), *extra])
        assert res.exit_code == 0, res.output
        return json.loads((env / "gradcheck.json").read_text())[0]["what"]

    whole = checked()
    assert "image 3x32x32" in whole
    assert "conv1 planes/parity, conv2 winograd, conv3 winograd" in whole
    assert "image 3x16x16" in checked("--crop", "16")
    small = {**model, "layers": [8, "M", 8]}  # im2col at every size: the crop serves
    write_config(cfg, {**BASE, "model": small})
    assert "image 3x8x8" in checked()
