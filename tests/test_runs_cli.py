"""`runs`, `compare` and `search` find each other: sweeps and globs, trials with their sweep,
filters, `runs rm`, printed paths that exist, and tables that fit 80, 100 and 160 columns."""

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dl2424 import cli
from dl2424.cli import app

runner = CliRunner()
TINY = {"seed": 0, "data": {"type": "cifar10", "split": "all", "n_val": 20},
        "model": {"type": "mlp", "hidden": [4]},
        "schedule": {"type": "cyclic", "eta_min": 1e-4, "eta_max": 2e-2, "n_s": 2},
        "train": {"batch_size": 20, "cycles": 1}}


def _invoke(*args, width=160, stdin=None):
    cli.console.width = width  # what a terminal of this many columns gives rich
    r = runner.invoke(app, [str(a) for a in args], input=stdin)
    return r


@pytest.fixture(scope="module")
def world(tmp_path_factory, fixture_data):
    """Two runs under runs/ and a sweep of two trials under sweeps/, trained for real."""
    root = tmp_path_factory.mktemp("world")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("DL2424_DATA_DIR", str(fixture_data))
    old_width = cli.console.width
    for name, override in (("first_cifar_run_with_a_long_name", "seed=1"),
                           ("second", "model.l2=0.01")):
        (root / f"{name}.yaml").write_text(yaml.safe_dump(TINY | {"name": name}))
        r = _invoke("train", f"{name}.yaml", "--set", override, "--quiet")
        assert r.exit_code == 0, r.output
    (root / "base.yaml").write_text(yaml.safe_dump(TINY | {"name": "tiny"}))
    (root / "spec.yaml").write_text(yaml.safe_dump({
        "base": "base.yaml", "name": "lam",
        "space": {"model.l2": {"grid": [0.001, 0.1]}}, "method": "grid"}))
    search = _invoke("search", "spec.yaml", "--workers", "1")
    assert search.exit_code == 0, search.output
    yield root, search.output
    cli.console.width = old_width
    mp.undo()


def test_search_prints_trial_paths_that_exist(world):
    root, output = world
    printed = re.findall(r"(sweeps/\S+-t\d{3})", output)
    assert printed, output
    assert all((root / p).is_dir() for p in printed)


def test_runs_lists_trials_with_their_sweep(world):
    root, _ = world
    r = _invoke("runs")
    assert r.exit_code == 0, r.output
    (sweep,) = (root / "sweeps").iterdir()
    trials = sorted(p.name for p in (sweep / "runs").iterdir())
    for t in trials:
        line = next(ln for ln in r.output.splitlines() if t in ln)
        assert sweep.name in line
    assert "first_cifar_run_with_a_long_name" in r.output and "second" in r.output


def test_runs_and_compare_take_sweeps_and_globs(world):
    root, _ = world
    (sweep,) = (root / "sweeps").iterdir()
    r = _invoke("compare", f"sweeps/{sweep.name}")
    assert r.exit_code == 0, r.output
    assert "2 runs" in r.output and "model.l2" in r.output
    r = _invoke("compare", "runs/*", "sweeps/*")
    assert r.exit_code == 0 and "4 runs" in r.output, r.output
    r = _invoke("runs", "sweeps/*")
    assert r.exit_code == 0 and "second" not in r.output and "-t001" in r.output


def test_runs_filters(world):
    r = _invoke("runs", "--name", "second")
    assert r.exit_code == 0
    assert "second" in r.output and "first_cifar" not in r.output and "-t001" not in r.output
    assert "3 more do not match the filters" in r.output
    r = _invoke("runs", "--name", "*-t00?", "--status", "completed", "--dataset", "cifar10")
    assert "-t000" in r.output and "-t001" in r.output and "second" not in r.output
    r = _invoke("runs", "--status", "failed")
    assert "4 more do not match" in r.output


def _table_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith(("│", "┃"))]


@pytest.mark.parametrize("width", [80, 100, 160])
def test_tables_fit_the_terminal(world, width):
    root, _ = world
    ids = [p.name for p in (root / "runs").iterdir()]
    names = [i.split("-", 2)[2] for i in ids]
    for args, whole in ((["runs"], ids), (["compare", "runs/*", "sweeps/*"], names)):
        r = _invoke(*args, width=width)
        assert r.exit_code == 0, r.output
        lines = _table_lines(r.output)
        assert lines and all(len(ln) <= width for ln in lines), (width, args, r.output)
        header = next(ln for ln in lines if ln.startswith("┃"))
        assert "…" not in header  # no header cut to `st…`
        assert all(i in r.output for i in whole)  # the run id (name) whole
        assert "status" in header
    narrow = _table_lines(_invoke("runs", width=80).output)
    wide = _table_lines(_invoke("runs", width=160).output)
    assert len(narrow[0].split("┃")) < len(wide[0].split("┃"))  # fewer columns when narrow


def test_wide_and_columns(world):
    r = _invoke("runs", "--columns", "status,model", width=80)
    header = next(ln for ln in _table_lines(r.output) if ln.startswith("┃"))
    assert [c.strip() for c in header.strip("┃").split("┃")] == ["run", "status", "model"]
    r = _invoke("runs", "--wide", width=100)
    assert "started" in r.output and "folder" in r.output
    bad = _invoke("runs", "--columns", "nope")
    assert bad.exit_code == 2 and "nope: not a column" in bad.output


def test_runs_rm_asks_first(world):
    root, _ = world
    run = next(p for p in (root / "runs").iterdir() if p.name.endswith("-second"))
    r = _invoke("runs", "rm", f"runs/{run.name}", stdin="n\n")
    assert r.exit_code == 1 and "nothing deleted" in r.output and run.is_dir()
    (sweep,) = (root / "sweeps").iterdir()
    trial = next((sweep / "runs").iterdir())
    r = _invoke("runs", "rm", str(trial.relative_to(root)), "--yes")
    assert r.exit_code == 2 and "delete the whole sweep folder" in r.output and trial.is_dir()
    r = _invoke("runs", "rm", f"runs/{run.name}", stdin="y\n")
    assert r.exit_code == 0 and "deleted 1 run folder" in r.output
    assert not run.exists()
    # the module's other tests may run after this one: put a run back
    (root / "again.yaml").write_text(yaml.safe_dump(TINY | {"name": "second"}))
    assert _invoke("train", "again.yaml", "--quiet").exit_code == 0
    assert Path(root / "runs").is_dir()
