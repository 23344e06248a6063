"""`report`: run folders fabricated in the trainer's exact format -> figures, report.md,
index.html; and the reading rules (truncated metrics, empty runs, non-run folders)."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import dl2424.cli.report_cmd  # noqa: F401  (adds report/compare/runs to the app)
from dl2424 import checkpoint, rundir
from dl2424.atomic import write_json, write_text
from dl2424.cli import app
from dl2424.errors import UserError
from dl2424.report import figures, make_report, read_run, require_metrics
from dl2424.report.tables import fmt

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]
NAMES_CLASSES = ["Arabic", "Chinese", "Czech", "Dutch", "English"]

# The resolved config the trainer writes for a linear CIFAR classifier (Experiment.dump()).
CIFAR_CONFIG = {
    "name": "a1-linear", "seed": 0, "dtype": "float32",
    "data": {"type": "cifar10", "format": "auto", "split": "course", "n_val": 1000,
             "n_train": None, "preprocess": "zscore", "augment": None},
    "model": {"type": "mlp", "loss": {"type": "softmax_ce"}, "l2": 0.1,
              "init": {"type": "gaussian", "std": 0.01}, "hidden": [], "activation": "relu",
              "leaky_slope": 0.02, "keep": 1.0},
    "optimizer": {"type": "sgd", "lr": 0.001},
    "schedule": {"type": "constant"},
    "sampler": {"type": "shuffle"},
    "train": {"batch_size": 100, "epochs": 4, "steps": None, "cycles": None,
              "eval_every": None, "eval_train_subset": None, "checkpoint_every": None,
              "on_nan": "stop", "class_weighted": False, "label_smoothing": 0.0,
              "keep_confusions": True},
}
NAMES_CONFIG = copy.deepcopy(CIFAR_CONFIG) | {
    "name": "names-cnn",
    "data": {"type": "names", "n_len": 19},
    "model": {"type": "charcnn", "loss": {"type": "softmax_ce"}, "l2": 0.0,
              "init": {"type": "he"}, "bias": False, "keep": 1.0,
              "layers": [{"filters": 20, "width": 5, "stride": 1, "padding": 0},
                         {"filters": 20, "width": 3, "stride": 1, "padding": 0}]},
    "sampler": {"type": "balanced"},
}


def with_changes(config: dict, **dotted) -> dict:
    """A copy of config with 'a__b=v' setting config['a']['b'] = v."""
    out = copy.deepcopy(config)
    for key, value in dotted.items():
        node, parts = out, key.split("__")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    return out


def metric_rows(n_evals: int, steps_per_epoch: int, l2: float, seed: int = 0) -> list[dict]:
    """Plausible learning curves: loss falls, accuracy rises, cost = loss + penalty."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_evals):
        step = i * steps_per_epoch
        loss_tr = 2.3 * np.exp(-0.3 * i) + 0.8 + 0.01 * rng.random()
        loss_va = loss_tr + 0.1 * i / max(n_evals - 1, 1)
        rows.append({"step": step, "epoch": round(step / steps_per_epoch, 6), "lr": 0.001,
                     "train_loss": loss_tr, "train_cost": loss_tr + 0.5 * l2 * 10,
                     "train_acc": 0.1 + 0.05 * i, "val_loss": loss_va,
                     "val_cost": loss_va + 0.5 * l2 * 10, "val_acc": 0.1 + 0.04 * i})
    return rows


def confusion(K: int, correct: float, n: int, rng) -> np.ndarray:
    """K x K counts with about `correct` of each class's n examples on the diagonal."""
    m = rng.integers(0, max(1, int(n * (1 - correct) / K) + 1), size=(K, K))
    np.fill_diagonal(m, int(n * correct))
    return m


def fabricate_run(root: Path, config: dict, *, folder: str | None = None, n_evals: int = 5,
                  status: str = "completed", classes=CIFAR_CLASSES, spe: int = 100,
                  test: bool = True, weights: np.ndarray | None = None, montage: bool = True,
                  keep_confusions: bool = True, extras: dict | None = None) -> Path:
    """A run folder exactly as dl2424.experiment writes it (see dl2424/rundir.py)."""
    run = root / (folder or f"20250101-120000-{config['name']}")
    run.mkdir(parents=True)
    rundir.write_config(run, config, ["optimizer.lr=0.001"])
    cifar = config["data"]["type"] == "cifar10"
    info = {"input_shape": [3072] if cifar else [19], "class_names": list(classes),
            "meta": {"image_shape": [3, 32, 32]} if cifar else {"vocab": 28},
            "encoder": None}
    write_json(run / "data.json", info)
    l2 = config["model"]["l2"]
    rows = metric_rows(n_evals, spe, l2)
    rundir.write_rows(run / "metrics.csv", rows)
    rng = np.random.default_rng(1)
    K = len(classes)
    for r in rows:
        m = confusion(K, r["val_acc"], 100, rng)
        rundir.write_confusion(run / "confusion_val.csv", m, list(classes))
        if keep_confusions:
            (run / "confusion").mkdir(exist_ok=True)
            rundir.write_confusion(run / "confusion" / f"val_step{r['step']}.csv", m,
                                   list(classes))
    if test:
        rundir.write_confusion(run / "confusion_test.csv", confusion(K, 0.35, 100, rng),
                               list(classes))
        y, pred = rng.integers(0, K, 100), rng.integers(0, K, 100)
        pred[:35] = y[:35]
        rundir.write_predictions(run / "predictions_test.csv", y, pred, rng.random(100),
                                 list(classes))
    if weights is None and cifar and montage:
        weights = np.random.default_rng(2).normal(size=(3072, K)).astype(np.float32)
    if weights is not None:
        model = SimpleNamespace(params={"W1": weights, "b1": np.zeros(K, np.float32)},
                                state={})
        checkpoint.save(run / "checkpoint.npz", model, None, {"step": rows[-1]["step"]})
        checkpoint.save(run / "best.npz", model, None, {"step": rows[-1]["step"]})
    best = max(rows, key=lambda r: r["val_acc"])
    summary = {
        "name": config["name"], "status": status, "dataset": config["data"]["type"],
        "model": config["model"]["type"], "started": "2025-01-01T12:00:00",
        "finished": None if status == "running" else "2025-01-01T12:01:00",
        "wall_time_s": 61.5, "steps": rows[-1]["step"], "total_steps": (n_evals - 1) * spe,
        "steps_per_sec": 6.5, "n_params": 30730, "seed": config["seed"],
        "config_hash": "0123456789abcdef", "final": rows[-1], "best": best,
        "skipped_batches": 0, "host": "test", "versions": {}, "error":
            "diverged: step 400: training loss is nan (lr 0.1)" if status == "failed" else None,
    }
    if test and status == "completed":
        summary |= {"test": {"loss": 1.91, "acc": 0.3712},
                    "test_at_best": {"loss": 1.93, "acc": 0.3698, "step": best["step"]}}
    rundir.write_summary(run, summary)
    for name, content in (extras or {}).items():
        write_json(run / name, content)
    return run


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG as decoded by matplotlib's reader."""
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img[..., :3].std() > 0.01, f"{path.name} is blank"
    return img.shape[1], img.shape[0]


def embedded_images(page: str) -> dict[str, bytes]:
    """data-file name -> decoded bytes of every base64 <img> in index.html."""
    found = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*'
                       r'data-file="([^"]+)"', page)
    return {name: base64.b64decode(data) for data, name in found}


# ---------------------------------------------------------------------------- one run

@pytest.fixture(scope="module")
def cifar_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    lr_range = {"eta_min": 1e-4, "eta_max": 1e-2}
    counts = {"train": {c: 100 + 10 * i for i, c in enumerate(CIFAR_CLASSES)},
              "sampled": {c: 1000 for c in CIFAR_CLASSES}}
    checks = [{"param": "W1", "shape": [20, 10], "checked": 200, "max_abs": 3e-9,
               "max_rel": 2.5e-7, "passed": True},
              {"param": "b1", "shape": [10], "checked": 10, "max_abs": 1e-10,
               "max_rel": 4e-8, "passed": True}]
    run = fabricate_run(root, CIFAR_CONFIG, extras={
        "lr_range.json": lr_range, "class_counts.json": counts, "gradcheck.json": checks})
    index = make_report([run])
    return run, index


EXPECTED_PNGS = {"loss.png", "accuracy.png", "lr_range.png", "confusion_val.png",
                 "confusion_test.png", "confusion_strip.png", "per_class.png",
                 "class_counts.png", "weights.png", "confidence.png"}


@pytest.mark.slow
def test_single_run_report_writes_every_figure(cifar_report):
    run, index = cifar_report
    out = run / "report"
    assert index == out / "index.html"
    assert (out / "report.md").is_file()
    assert {p.name for p in out.glob("*.png")} == EXPECTED_PNGS
    for png in out.glob("*.png"):
        w, h = png_size(png)
        assert w >= 400 and h >= 250, png.name
    # curve figures are exactly as large as declared (no tight bbox cropping labels)
    declared = tuple(round(v * figures.DPI) for v in figures.CURVE_SIZE)
    for name in ("loss.png", "accuracy.png"):
        assert png_size(out / name) == declared
    # a constant learning rate gets a sentence, not a flat line
    assert "the learning rate was constant, η = 0.001" in (out / "report.md").read_text()


@pytest.mark.slow
def test_html_embeds_every_image_and_is_offline(cifar_report):
    run, index = cifar_report
    page = index.read_text()
    images = embedded_images(page)
    assert set(images) == EXPECTED_PNGS
    for name, data in images.items():
        assert data == (run / "report" / name).read_bytes()
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    md = (run / "report" / "report.md").read_text()
    for name in EXPECTED_PNGS:
        assert f"]({name})" in md


@pytest.mark.slow
def test_html_and_markdown_hold_the_table_values(cifar_report):
    run, index = cifar_report
    page, md = index.read_text(), (run / "report" / "report.md").read_text()
    rows = rundir.read_rows(run / "metrics.csv")
    final, best = rows[-1], max(rows, key=lambda r: r["val_acc"])
    for text in (page, md):
        assert f"{100 * final['val_acc']:.2f}%" in text
        assert f"{final['train_loss']:.4f}" in text
        assert f"{best['val_cost']:.4f}" in text
        assert "37.12%" in text and "36.98%" in text  # test acc, final and at best
        assert "model.l2" in text and "0.1" in text  # hyper-parameters
        assert "2.50e-07" in text  # gradient-check max relative error of W1
        assert "--set optimizer.lr=0.001" in text
    # per-class accuracy of the last validation confusion
    names, m = rundir.read_confusion(run / "confusion_val.csv")
    for k in (0, 9):
        assert f"{100 * m[k, k] / m[k].sum():.2f}%" in page
        assert names[k] in page


def test_class_templates_follow_cifar_pixel_order():
    """Class 0 weights only the red plane, class 1 the green, class 2 the blue top row."""
    W = np.zeros((3072, 3))
    W[:1024, 0] = 1.0
    W[1024:2048, 1] = 1.0
    W[2048:2048 + 32, 2] = 1.0  # first image row of the blue plane
    T = figures.class_templates(W)
    assert T.shape == (3, 32, 32, 3)
    assert T.min() >= 0 and T.max() <= 1
    np.testing.assert_array_equal(T[0, ..., 0], 1.0)
    np.testing.assert_array_equal(T[0, ..., 1:], 0.0)
    np.testing.assert_array_equal(T[1, ..., 1], 1.0)
    np.testing.assert_array_equal(T[2, 0, :, 2], 1.0)
    assert T[2, 1:, :, 2].max() == 0


def test_lr_schedule_is_replayed_from_the_config(tmp_path):
    config = with_changes(CIFAR_CONFIG, schedule={"type": "cyclic", "eta_min": 1e-5,
                                                  "eta_max": 1e-1, "n_s": 200,
                                                  "double_every_cycle": False},
                          optimizer={"type": "sgd"})
    run = read_run(fabricate_run(tmp_path, config, n_evals=5))
    steps, lr = figures.schedule_curve(run)
    assert steps[0] == 0 and steps[-1] == 399  # total_steps = 4 evaluations x 100 steps
    assert lr[0] == pytest.approx(1e-5) and lr.max() == pytest.approx(1e-1)
    assert lr[list(steps).index(200)] == pytest.approx(1e-1)  # peak after n_s steps


# ---------------------------------------------------------------------------- several runs

@pytest.mark.slow
def test_several_runs_report_side_by_side(tmp_path):
    runs = [fabricate_run(tmp_path, with_changes(CIFAR_CONFIG, name=f"lam{lam}",
                                                 model__l2=lam), folder=f"2025-lam{lam}",
                          keep_confusions=False, test=False)
            for lam in (0.0, 0.1, 1.0)]
    index = make_report(runs, name="lambda-sweep", reports_dir=tmp_path / "reports")
    assert index == tmp_path / "reports" / "lambda-sweep" / "index.html"
    page = index.read_text()
    for lam in (0.0, 0.1, 1.0):
        assert f"l2={lam}" in page  # legend / column labels from the differing key
    assert "hyper-parameters that differ" in page
    assert set(embedded_images(page)) == {p.name for p in index.parent.glob("*.png")}
    w, h = png_size(index.parent / "weights.png")
    assert h > w / 5  # one montage row per run, not one thin strip


def test_runs_of_different_datasets_are_refused(tmp_path):
    a = fabricate_run(tmp_path, CIFAR_CONFIG)
    b = fabricate_run(tmp_path, NAMES_CONFIG, classes=NAMES_CLASSES)
    result = CliRunner().invoke(app, ["report", str(a), str(b), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "different datasets" in result.output and "names" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_names_run_report_has_no_montage(tmp_path):
    run = fabricate_run(tmp_path, NAMES_CONFIG, classes=NAMES_CLASSES, keep_confusions=False,
                        test=False)  # the surname data has no test set
    make_report([run])
    pngs = {p.name for p in (run / "report").glob("*.png")}
    assert "weights.png" not in pngs and "per_class.png" in pngs
    md = (run / "report" / "report.md").read_text()
    assert "no class_counts.json" in md
    for name in NAMES_CLASSES:
        assert name in md
    # reporting again after the confusion matrix is gone drops the figures built from it
    (run / "confusion_val.csv").unlink()
    make_report([run])
    pngs = {p.name for p in (run / "report").glob("*.png")}
    assert {"confusion_val.png", "per_class.png"}.isdisjoint(pngs)
    assert set(embedded_images((run / "report" / "index.html").read_text())) == pngs


# ---------------------------------------------------------------------------- robustness

@pytest.mark.slow
def test_truncated_metrics_read_up_to_last_complete_row(tmp_path):
    run = fabricate_run(tmp_path, CIFAR_CONFIG, n_evals=4, status="running", test=False,
                        keep_confusions=False, montage=False)
    f = run / "metrics.csv"
    text, full = f.read_text(), rundir.read_rows(f)
    f.write_text(text + "400,4.0,0.001,1.23")  # a writer died in the middle of a row
    r = read_run(run)
    assert [row["step"] for row in r.rows] == [0, 100, 200, 300]
    assert r.truncated
    f.write_text(text[:-3])  # cut inside the last number: that line is partial too
    assert [row["step"] for row in read_run(run).rows] == [0, 100, 200]
    result = CliRunner().invoke(app, ["report", str(run)])  # writes into the run folder
    assert result.exit_code == 0, result.output
    assert "index.html" in result.output
    page = (run / "report" / "index.html").read_text()
    assert "still running" in page and "incomplete line" in page
    assert 'class="status running"' in page
    assert f"{full[2]['val_loss']:.4f}" in page  # the last complete row is the final one
    assert f"{full[3]['val_loss']:.4f}" not in page


@pytest.mark.parametrize("case", ["missing", "empty", "header_only", "not_a_run", "file",
                                  "no_such"])
def test_unreportable_folders_exit_2_with_a_message(tmp_path, case):
    path = tmp_path / "x"
    if case == "not_a_run":
        path.mkdir()
        (path / "notes.txt").write_text("hello")
    elif case == "file":
        path.write_text("hello")
    elif case != "no_such":
        path = fabricate_run(tmp_path, CIFAR_CONFIG, status="running")
        if case == "missing":
            (path / "metrics.csv").unlink()
        else:
            write_text(path / "metrics.csv", "" if case == "empty" else
                       "step,epoch,lr,train_loss,train_cost,train_acc,val_loss,val_cost,val_acc\n")
    expected = {"missing": "no metrics.csv yet", "empty": "no complete row",
                "header_only": "no complete row", "not_a_run": "not a run folder",
                "file": "not a run folder", "no_such": "no such folder"}[case]
    with pytest.raises(UserError, match=expected):
        require_metrics(read_run(path))
    result = CliRunner().invoke(app, ["report", str(path)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    assert expected in " ".join(result.output.split())


def test_corrupt_metrics_value_is_a_user_error(tmp_path):
    run = fabricate_run(tmp_path, CIFAR_CONFIG)
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace("0.001", "abc", 1)
    (run / "metrics.csv").write_text("".join(lines))
    with pytest.raises(UserError, match="line 3 .* not a number"):
        read_run(run)


def test_format_rules():
    assert fmt("val_acc", 0.41234) == "41.23%"
    assert fmt("l2=0.1 val_acc", 0.5) == "50.00%"
    assert fmt("train_cost", 1.234567) == "1.2346"
    assert fmt("max_rel", 2.5e-7) == "2.50e-07"
    assert fmt("val_acc", None) == fmt("val_loss", float("nan")) == "–"
    assert fmt("step", 300) == "300"


def test_config_written_by_rundir_round_trips(tmp_path):
    run = fabricate_run(tmp_path, CIFAR_CONFIG)
    assert yaml.safe_load((run / "config.yaml").read_text()) == CIFAR_CONFIG
    assert read_run(run).dataset == "cifar10" and read_run(run).model == "mlp"


def test_confidence_reads_the_predictions(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    rundir.write_predictions(run_dir / "predictions_test.csv", np.array([0, 1, 2, 1]),
                             np.array([0, 2, 2, 0]), np.array([0.9, 0.2, 0.55, 0.1]),
                             ["a", "b", "c"])
    p, ok = rundir.read_predictions(run_dir)
    np.testing.assert_allclose(p, [0.9, 0.2, 0.55, 0.1])
    assert ok.tolist() == [True, False, True, False]
