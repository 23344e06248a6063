"""`compare` and `runs`: exactly the differing config keys, statuses shown, sorting,
best against final, glob selection, CSV/Markdown export."""

from __future__ import annotations

import copy
import csv
import io

import pytest
from typer.testing import CliRunner

import dl2424.cli
import dl2424.cli.report_cmd  # noqa: F401  (adds report/compare/runs to the app)
from dl2424 import rundir
from dl2424.cli import app
from dl2424.report import compare, read_run, runs_table
from dl2424.report.compare import compare_table
from dl2424.report.tables import differing_keys, flatten, run_labels

from .test_report import CIFAR_CONFIG, NAMES_CLASSES, NAMES_CONFIG, fabricate_run, with_changes


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """CliRunner's terminal is 80 columns; give rich room so cells are not cut."""
    monkeypatch.setattr(dl2424.cli.console, "_width", 250)


def invoke(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def read_csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture
def sweep(tmp_path):
    """Three CIFAR runs that differ in model.l2 and train.batch_size (and name and seed of
    none: those stay equal), plus a failed, a running and a just-started run."""
    root = tmp_path / "runs"
    for i, (lam, bs) in enumerate([(0.0, 100), (0.1, 100), (1.0, 50)]):
        fabricate_run(root, with_changes(CIFAR_CONFIG, name=f"lam{lam}", model__l2=lam,
                                         train__batch_size=bs),
                      folder=f"2025010{i}-120000-lam{lam}", keep_confusions=False)
    return root


def test_flatten_gives_dotted_keys():
    flat = flatten({"model": {"l2": 0.1, "hidden": [50, 50], "init": {"type": "he"},
                              "layers": [{"width": 5}, {"width": 3}]}, "seed": 1})
    assert flat == {"model.l2": 0.1, "model.hidden": [50, 50], "model.init.type": "he",
                    "model.layers[0].width": 5, "model.layers[1].width": 3, "seed": 1}


def test_differing_keys_are_exactly_those_that_differ():
    a = CIFAR_CONFIG
    b = with_changes(a, name="other", model__l2=0.5, model__hidden=[50])
    c = with_changes(a, schedule={"type": "cyclic", "eta_min": 1e-5})
    assert differing_keys([a, a]) == []
    assert differing_keys([a, b]) == ["model.l2", "model.hidden"]  # not name
    assert sorted(differing_keys([a, b, c])) == sorted(
        ["model.l2", "model.hidden", "schedule.type", "schedule.eta_min"])


def test_compare_columns_show_only_the_differing_keys(sweep, tmp_path):
    out_csv, out_md = tmp_path / "c.csv", tmp_path / "c.md"
    result = invoke("compare", sweep, "--csv", out_csv, "--markdown", out_md)
    assert result.exit_code == 0, result.output
    rows = read_csv(out_csv)
    keys = [c for c in rows[0] if "." in c]
    assert keys == ["model.l2", "train.batch_size"]
    assert [r["model.l2"] for r in rows] == ["0.0", "0.1", "1.0"]
    assert [r["train.batch_size"] for r in rows] == ["100", "100", "50"]
    assert "seed" not in rows[0] and "optimizer.lr" not in rows[0]
    md = out_md.read_text()
    assert "| model.l2 | train.batch_size |" in md
    assert "lam0.1" in result.output and "model.l2" in result.output


def test_failed_running_and_empty_runs_are_listed_with_status(sweep):
    fabricate_run(sweep, with_changes(CIFAR_CONFIG, name="div", optimizer__lr=1.0),
                  folder="20250105-120000-div", status="failed", test=False)
    fabricate_run(sweep, with_changes(CIFAR_CONFIG, name="live"),
                  folder="20250106-120000-live", status="running", test=False)
    empty = fabricate_run(sweep, with_changes(CIFAR_CONFIG, name="new"),
                          folder="20250107-120000-new", status="running", test=False)
    (empty / "metrics.csv").unlink()  # started, not evaluated yet
    table = compare([str(sweep)])
    status = {r[0]: r[1] for r in table.rows}
    assert status == {"lam0.0": "completed", "lam0.1": "completed", "lam1.0": "completed",
                      "div": "failed", "live": "running", "new": "running"}
    result = invoke("runs", "--runs-dir", sweep)
    assert result.exit_code == 0, result.output
    for word in ("failed", "running", "completed", "20250107-120000-new"):
        assert word in result.output


def test_sort_by_metric_best_first(sweep, tmp_path):
    # make the middle run clearly best on validation accuracy and loss
    run = sweep / "20250101-120000-lam0.1"
    rows = rundir.read_rows(run / "metrics.csv")
    for r in rows:
        r["val_acc"] += 0.2
        r["val_loss"] -= 0.5
    rundir.write_rows(run / "metrics.csv", rows)
    by_acc = compare([str(sweep)], sort="val_acc")
    assert [r[0] for r in by_acc.rows][0] == "lam0.1"
    by_loss = compare([str(sweep)], sort="val_loss")
    assert [r[0] for r in by_loss.rows][0] == "lam0.1"
    accs = [r[by_acc.columns.index("val_acc")] for r in by_acc.rows]
    assert accs == sorted(accs, reverse=True)
    result = invoke("compare", sweep, "--sort", "val_acc", "--csv", tmp_path / "s.csv")
    assert result.exit_code == 0
    assert read_csv(tmp_path / "s.csv")[0]["run"] == "lam0.1"
    bad = invoke("compare", sweep, "--sort", "val_accuracy")
    assert bad.exit_code == 2 and "val_acc" in bad.output  # lists the valid columns


def test_best_and_final_rows_differ_when_accuracy_peaks_early(tmp_path):
    run = fabricate_run(tmp_path, CIFAR_CONFIG, keep_confusions=False)
    rows = rundir.read_rows(run / "metrics.csv")
    rows[2]["val_acc"] = 0.9  # peak at step 200, final row is step 400
    rundir.write_rows(run / "metrics.csv", rows)
    best = compare_table([read_run(run)], "best")
    final = compare_table([read_run(run)], "final")
    col = best.columns.index("step")
    assert best.rows[0][col] == 200 and final.rows[0][col] == 400
    acc = best.columns.index("test_acc")
    assert best.rows[0][acc] == pytest.approx(0.3698)  # test_at_best
    assert final.rows[0][acc] == pytest.approx(0.3712)  # test of the final parameters
    result = invoke("compare", run, "--final", "--csv", tmp_path / "f.csv")
    assert result.exit_code == 0
    assert read_csv(tmp_path / "f.csv")[0]["step"] == "400"


def test_glob_selection(sweep):
    table = compare([f"{sweep}/*lam1*", f"{sweep}/*lam0.0*"])
    assert [r[0] for r in table.rows] == ["lam1.0", "lam0.0"]
    none = invoke("compare", f"{sweep}/*nothing*")
    assert none.exit_code == 2 and "matches nothing" in none.output
    not_run = invoke("compare", sweep.parent / "missing")
    assert not_run.exit_code == 2 and "no such folder" in not_run.output


def test_run_labels_from_differing_keys(sweep):
    runs = [read_run(p) for p in sorted(sweep.iterdir())]
    assert run_labels(runs) == ["l2=0.0, batch_size=100", "l2=0.1, batch_size=100",
                                "l2=1.0, batch_size=50"]


def test_runs_table_skips_non_runs_and_flags_unreadable(sweep, tmp_path):
    (sweep / "notes").mkdir()
    broken = fabricate_run(sweep, with_changes(CIFAR_CONFIG, name="broken"),
                           folder="20250109-120000-broken", keep_confusions=False)
    (broken / "summary.json").write_text("{not json")
    names = fabricate_run(sweep, NAMES_CONFIG, folder="20250110-120000-names",
                          classes=NAMES_CLASSES, keep_confusions=False)
    t = runs_table(sweep)
    by_run = {r[0]: r for r in t.rows}
    assert "notes" not in by_run
    col = t.columns.index
    assert by_run["20250109-120000-broken"][col("status")] == "unreadable"
    assert "summary.json" in t.note
    assert by_run[names.name][col("dataset"):col("model") + 1] == ["names", "charcnn"]
    best = max(r["val_acc"] for r in rundir.read_rows(names / "metrics.csv"))
    assert by_run[names.name][t.columns.index("best val_acc")] == best
    assert not any(c.startswith("lowest") for c in t.columns)  # no language model here
    missing = invoke("runs", "--runs-dir", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "no such folder" in missing.output


def test_a_missing_value_is_spelled_one_way_in_each_output(tmp_path):
    """A key one run lacks, and a test accuracy one run lacks: '–' in the terminal and in
    Markdown, an empty field in CSV (never '—', 'nan' or 'None')."""
    root = tmp_path / "runs"
    fabricate_run(root, with_changes(CIFAR_CONFIG, name="a"), folder="20250101-120000-a")
    cyclic = with_changes(CIFAR_CONFIG, name="b", schedule={"type": "cyclic", "eta_min": 1e-5})
    fabricate_run(root, cyclic, folder="20250102-120000-b", test=False)
    res = invoke("compare", root, "--csv", tmp_path / "t.csv", "--markdown", tmp_path / "t.md")
    assert res.exit_code == 0, res.output
    rows = {r["run"]: r for r in read_csv(tmp_path / "t.csv")}
    assert rows["a"]["schedule.eta_min"] == "" and rows["b"]["test_acc"] == ""
    assert rows["b"]["schedule.eta_min"] == "1e-05" and float(rows["a"]["test_acc"]) > 0
    md = (tmp_path / "t.md").read_text()
    line_a = next(line for line in md.splitlines() if line.startswith("| a |"))
    assert "| – |" in line_a
    for text in (md, (tmp_path / "t.csv").read_text(), res.output):
        assert "—" not in text and "nan" not in text and "None" not in text


def test_a_key_a_run_lacks_counts_as_its_registry_default(tmp_path):
    from dl2424.report.comparison import setting_labels
    from dl2424.report.load import Run

    text = {"name": "lm", "seed": 0, "data": {"type": "text", "path": "book.txt"},
            "model": {"type": "rnn", "hidden": 100},
            "train": {"steps": 10, "synth_every": 5, "synth_length": 200}}
    older = copy.deepcopy(text)
    del older["train"]["synth_length"]  # a run made before the key existed
    del older["model"]["hidden"]  # ... and one the registry's rnn defaults to 100
    assert differing_keys([text, older]) == []
    longer = with_changes(text, train__synth_length=300, name="long")
    assert differing_keys([older, text, longer]) == ["train.synth_length"]
    runs = [Run(tmp_path / n, c, {}, {}, []) for n, c in
            (("a", older), ("b", text), ("c", longer))]
    assert run_labels(runs) == ["synth_length=200 (a)", "synth_length=200 (b)",
                                "synth_length=300 (c)"]
    assert setting_labels(runs) == ["synth_length=200", "synth_length=200", "synth_length=300"]
    # a key without a registry default (inside a nested component) stays a difference
    gauss = with_changes(text, model__init={"type": "gaussian", "std": 0.01})
    assert differing_keys([text, gauss]) == ["model.init.type", "model.init.std"]
