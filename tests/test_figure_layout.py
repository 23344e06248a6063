"""Every figure of a surname, an A1, an A2-cyclic, an LR-range, a UvA and a sweep report is
drawn without text cut off by the figure's edge; and the fixes an examiner asked for."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from dl2424 import rundir
from dl2424.report import figures, make_report, read_run
from dl2424.report.compare import compare
from dl2424.search import spec, sweep
from dl2424.search.plot import plot_sweep

from .figcheck import clipped, recording
from .fixtures import COURSE_LANGUAGES
from .test_report import CIFAR_CONFIG, NAMES_CONFIG, fabricate_run, with_changes

A2_CYCLIC = with_changes(CIFAR_CONFIG, name="cifar_a2_cyclic_1", model__hidden=[50],
                         model__l2=0.01, optimizer={"type": "sgd"},
                         schedule={"type": "cyclic", "eta_min": 1e-5, "eta_max": 1e-1,
                                   "n_s": 200, "double_every_cycle": False})
LR_RANGE = with_changes(A2_CYCLIC, name="cifar_a2-lr_range", optimizer={"type": "sgd"},
                        schedule={"type": "range_test", "lr_min": 1e-5, "lr_max": 1.0,
                                  "spacing": "exp"})
UVA = with_changes(CIFAR_CONFIG, name="uva_mlp", model__hidden=[100], model__l2=0.0)


def _surname(root: Path) -> list[Path]:
    counts = {"train": {c: 100 + 40 * i for i, c in enumerate(COURSE_LANGUAGES)},
              "sampled": {c: 1000 for c in COURSE_LANGUAGES}}
    return [fabricate_run(root, NAMES_CONFIG, classes=COURSE_LANGUAGES, n_evals=15, spe=1350,
                          test=False, extras={"class_counts.json": counts})]


def _lr_range(root: Path) -> list[Path]:
    run = fabricate_run(root, LR_RANGE, n_evals=30, spe=10, montage=False,
                        extras={"lr_range.json": {"eta_min": 1e-4, "eta_max": 3e-2}})
    rows = rundir.read_rows(run / "metrics.csv")
    for i, r in enumerate(rows):  # the sweep's lr; the loss explodes over the last evaluations
        r["lr"] = 1e-5 * 10 ** (5 * i / (len(rows) - 1))
        if i >= len(rows) - 4:
            r["train_loss"] = r["val_loss"] = 2.3 * 4 ** (i - len(rows) + 5)
    rundir.write_rows(run / "metrics.csv", rows)
    return [run]


def _several(root: Path) -> list[Path]:
    """Three sweep trials, and an older run still running whose config lacks a key."""
    runs = [fabricate_run(root, with_changes(A2_CYCLIC, name=f"lam{lam}", model__l2=lam),
                          folder=f"2025-lam{lam}", keep_confusions=False)
            for lam in (1e-5, 1e-3, 1e-1)]
    config = with_changes(A2_CYCLIC, name="older")
    del config["data"]["n_train"]  # absent here, null (its default) in the others: same
    runs.append(fabricate_run(root, config, folder="2025-older", status="running",
                              test=False, keep_confusions=False))
    return runs


REPORTS = {
    "surname": (_surname, {"loss.png", "accuracy.png", "confusion_val.png",
                           "confusion_strip.png", "per_class.png", "class_counts.png"}),
    "a1": (lambda root: [fabricate_run(root, CIFAR_CONFIG)],
           {"weights.png", "confidence.png", "confusion_test.png"}),
    "a2_cyclic": (lambda root: [fabricate_run(root, A2_CYCLIC, montage=False)], {"lr.png"}),
    "lr_range": (_lr_range, {"lr_range.png", "lr.png"}),
    "uva": (lambda root: [fabricate_run(root, UVA, montage=False)], {"uva_curves.png"}),
    "sweep_runs": (_several, {"loss.png", "lr.png", "confusion_val.png", "confidence.png"}),
}


class Reports(dict):
    """kind -> (run folders, index.html, {file name: Saved}), each report written (under
    umask 022) the first time a test asks for it."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp = tmp_path_factory

    def __missing__(self, kind):
        root = self.tmp.mktemp(kind)
        runs = REPORTS[kind][0](root)
        old = os.umask(0o022)
        try:
            with recording() as saved:
                index = make_report(runs, name=kind if len(runs) > 1 else None,
                                    reports_dir=root / "reports")
        finally:
            os.umask(old)
        self[kind] = (runs, index, {s.file: s for s in saved})
        return self[kind]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    return Reports(tmp_path_factory)


# The surname, A1 and several-run reports are also used below; the others only here.
KINDS = [k if k in ("surname", "a1", "sweep_runs") else pytest.param(k, marks=pytest.mark.slow)
         for k in REPORTS]


@pytest.mark.parametrize("kind", KINDS)
def test_no_text_is_cut_off_in_any_report_figure(reports, kind):
    _, index, saved = reports[kind]
    assert REPORTS[kind][1] <= set(saved)
    for name, item in saved.items():
        assert len(item.texts) > 5, name  # the check sees the labels it checks
        assert clipped(item) == [], name
    if kind == "a1":
        assert "lr.png" not in saved  # constant learning rate: a sentence instead


def test_sweep_plots_name_lambda_and_use_percent(tmp_path):
    base = {"name": "tiny", "data": {"type": "cifar10"}, "model": {"type": "mlp",
                                                                   "hidden": [6]},
            "optimizer": {"type": "sgd", "lr": 0.01}, "train": {"batch_size": 20, "epochs": 1}}
    raw = {"base": base, "method": "grid", "metric": "val_acc",
           "space": {"model.l2": {"log_grid": {"lo": 1e-5, "hi": 1e-1, "n": 6}},
                     "model.hidden": {"grid": [[50], [100, 50, 30, 20, 10]]}}}
    sw = sweep.create(spec.Search(spec.validate_spec(raw, "test"), base, "test"), tmp_path)
    for t in sw.trials:
        t.status, t.best, t.final = "ok", 0.30 + 0.01 * t.id, 0.3
    with recording() as saved:
        files = plot_sweep(sw)
    figs = dict(zip([f.name for f in files], saved, strict=True))
    ax = figs["val_acc_vs_model.l2.png"].figure.axes[0]
    assert ax.get_xlabel().startswith("λ") and "%" in ax.get_ylabel()
    y = ax.collections[0].get_offsets()[:, 1]
    assert y.max() == pytest.approx(100 * (0.30 + 0.01 * (len(sw.trials) - 1)))
    for name, item in figs.items():
        assert len(item.texts) > 5 and clipped(item) == [], name


def test_tables_have_readable_headers_and_one_missing_mark(reports, tmp_path):
    runs, index, _ = reports["sweep_runs"]
    page = index.read_text()
    assert "<th>val accuracy</th>" in page and "<th>val_acc</th>" not in page
    assert "<th>wall time (s)</th>" in page
    compare([str(r) for r in runs], csv_file=tmp_path / "c.csv")
    rows = list(csv.reader((tmp_path / "c.csv").open()))
    cells = {c for r in rows for c in r}
    assert not cells & {"—", "–", "null", "None", "nan"}
    header = rows[0]
    assert "data.n_train" not in header  # null three times, absent (= default null) once
    assert rows[4][header.index("test_acc")] == ""  # the running run has no test metrics


def test_report_files_are_readable_by_the_team(reports):
    _, index, _ = reports["a1"]
    for f in index.parent.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name


def test_surname_confusion_numbers_are_legible(reports):
    _, _, saved = reports["surname"]
    texts = [t for t, _ in saved["confusion_val.png"].texts]
    cells = [t for t in texts if t.get_text().isdigit()]
    assert len(cells) >= 2 * 18 * 18  # the counts and the percentages, cell by cell
    assert min(t.get_fontsize() for t in cells) >= 8
    assert [t.get_text() for t in texts].count("true class") == 2
    strip = [t for t, _ in saved["confusion_strip.png"].texts]
    titles = [t.get_text() for t in strip if t.get_text().startswith("step ")]
    assert len(titles) == 4 and not any("e+" in t for t in titles)
    assert "step 18,900 (epoch 14)" in titles
    assert min(t.get_fontsize() for t in strip) >= 8


def test_histograms_name_their_losses_and_uva_curves_show_every_run(tmp_path):
    bce = fabricate_run(tmp_path, with_changes(CIFAR_CONFIG, name="a1_bce",
                                               model__loss={"type": "bce"}), montage=False)
    softmax = fabricate_run(tmp_path, CIFAR_CONFIG, montage=False)
    runs = [read_run(bce), read_run(softmax)]
    with recording() as saved:
        figures.confidence_figure(runs, ["bce", "softmax"], tmp_path)
        assert figures.uva_figure(runs, ["a", "b"], tmp_path) is None  # no UvA run
        uva = read_run(fabricate_run(tmp_path, UVA, montage=False))
        figures.uva_figure([uva, runs[1]], ["uva", "a1"], tmp_path)
    titles = [ax.get_title() for ax in saved[0].figure.axes]
    assert titles[0].startswith("sigmoid + binary cross-entropy (BCE) loss")
    assert titles[1].startswith("softmax + cross-entropy loss")
    loss_ax, acc_ax = saved[1].figure.axes
    assert len(loss_ax.get_lines()) == 4  # training and validation loss of both runs
    stars = [ln for ln in acc_ax.get_lines() if ln.get_marker() == "*"]
    assert len(acc_ax.get_lines()) == 4 and len(stars) == 2  # val accuracy + test, per run
    np.testing.assert_allclose(stars[0].get_ydata(), [100 * 0.3712])
    assert all(clipped(item) == [] for item in saved)
