"""Hyper-parameter search: samplers, spec errors, refine, and sweeps of tiny trials run by a
local process pool and by a dask LocalCluster (worker processes)."""

import csv
import json
import math
import os
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

import dl2424.cli.search_cmd  # noqa: F401  (adds the `search` command)
from dl2424.cli import app
from dl2424.errors import UserError
from dl2424.search import execute, plot, sample, spec, sweep
from dl2424.search.execute import LocalPool, TrialTask, cpu_count, open_backend
from dl2424.search.plot import plot_sweep

from .fixtures import write_cifar_python

BASE = {
    "name": "tiny", "seed": 0, "dtype": "float64",
    "data": {"type": "cifar10", "split": "all", "n_val": 20},
    "model": {"type": "mlp", "hidden": [6], "l2": 0.0},
    "schedule": {"type": "cyclic", "eta_min": 1.0e-4, "eta_max": 2.0e-2, "n_s": 4},
    "train": {"batch_size": 20, "cycles": 1},
}


def make_spec(**over) -> dict:
    raw = {"base": BASE, "space": {"model.l2": {"log_grid": {"lo": 1e-4, "hi": 1e-1, "n": 3}}},
           "method": "grid", "metric": "val_loss"}
    return raw | over


def search_of(raw: dict) -> spec.Search:
    return spec.Search(spec.validate_spec(raw, "test"), raw["base"], "test")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cifar_python(root, n_per_batch=20)  # 5 x 20 images: 80 train, 20 val
    return root


# ---------------------------------------------------------------------------- samplers

def draws(dist, n=4000, seed=0, key="k"):
    return [sample.from_unit(dist, u) for u in sample.unit_draws(seed, key, n)]


def dist(d):
    return spec._distribution(d)


def test_uniform_and_int_uniform_stay_in_bounds_and_hit_both_ends():
    u = np.array(draws(dist({"uniform": [-2.0, 3.0]})))
    assert u.min() >= -2.0 and u.max() < 3.0
    assert u.min() < -1.9 and u.max() > 2.9
    i = draws(dist({"int_uniform": [2, 5]}))
    assert set(i) == {2, 3, 4, 5}
    counts = np.bincount(i)[2:]
    assert stats.chisquare(counts).pvalue > 1e-3  # each integer equally likely


def test_log_uniform_is_uniform_in_log10_not_in_value():
    lo, hi = 1e-5, 1e-1
    v = np.array(draws(dist({"log_uniform": [lo, hi]})))
    assert v.min() >= lo and v.max() <= hi
    logs = np.log10(v)
    assert stats.kstest(logs, stats.uniform(loc=-5, scale=4).cdf).pvalue > 1e-3
    # uniform in value would put ~90% of draws above 1e-2; log-uniform puts 25% there
    assert abs(np.mean(v > 1e-2) - 0.25) < 0.03
    assert stats.kstest(v, stats.uniform(loc=lo, scale=hi - lo).cdf).pvalue < 1e-6


def test_log_grid_is_the_courses_eight_values():
    values = sample.finite_values(dist({"log_grid": {"lo": 1e-5, "hi": 1e-1, "n": 8}}))
    assert len(values) == 8
    assert values[0] == pytest.approx(1e-5, rel=1e-12)
    assert values[-1] == pytest.approx(1e-1, rel=1e-12)
    np.testing.assert_allclose(np.diff(np.log10(values)), 4 / 7, rtol=1e-12)


def test_grid_is_the_complete_cartesian_product():
    s = spec.validate_spec({"base": {}, "method": "grid", "space": {
        "a": {"grid": [1, 2, 3]}, "b": {"choice": ["x", "y"]}, "c": {"int_uniform": [0, 1]}}},
        "t")
    points = sample.plan_trials(s)
    assert len(points) == 12
    combos = {(p["a"], p["b"], p["c"]) for p in points}
    assert combos == {(a, b, c) for a in (1, 2, 3) for b in "xy" for c in (0, 1)}
    assert [p["c"] for p in points[:2]] == [0, 1]  # the last key varies fastest


def test_random_plan_is_deterministic_under_the_seed():
    raw = {"base": {}, "trials": 20, "seed": 7, "space": {
        "model.l2": {"log_uniform": [1e-5, 1e-1]}, "train.batch_size": {"choice": [50, 100]}}}
    a = sample.plan_trials(spec.validate_spec(raw, "t"))
    assert a == sample.plan_trials(spec.validate_spec(raw, "t"))
    assert a != sample.plan_trials(spec.validate_spec(raw | {"seed": 8}, "t"))
    # more trials keep the first ones; another key leaves this key's values alone
    more = sample.plan_trials(spec.validate_spec(raw | {"trials": 30}, "t"))
    assert more[:20] == a
    wider = raw | {"space": raw["space"] | {"model.hidden": {"choice": [[50], [100]]}}}
    assert ([p["model.l2"] for p in sample.plan_trials(spec.validate_spec(wider, "t"))]
            == [p["model.l2"] for p in a])


def test_narrow_log_and_linear_ranges():
    log = sample.narrow(dist({"log_uniform": [1e-5, 1e-1]}), 1e-3, 2.0)
    assert log.log_uniform == pytest.approx((5e-4, 2e-3))
    edge = sample.narrow(dist({"log_uniform": [1e-5, 1e-1]}), 1e-1, 2.0)
    assert edge.log_uniform[1] == pytest.approx(0.2)  # may pass the coarse edge
    lin = sample.narrow(dist({"uniform": [0.0, 1.0]}), 0.9, 4.0)
    assert lin.uniform == pytest.approx((0.775, 1.0))  # 0.9 ± 0.125, clipped at 1


def test_refined_trials_spread_round_robin_over_the_centres():
    raw = {"base": {}, "trials": 9, "space": {"model.l2": {"log_uniform": [1e-5, 1e-1]}},
           "refine": {"top_k": 3, "factor": 1.5}}
    centres = [{"model.l2": 1e-4}, {"model.l2": 1e-2}, {"model.l2": 1e-3}]
    trials = sample.plan_trials(spec.validate_spec(raw, "t"), centres)
    for i, t in enumerate(trials):
        c = centres[i % 3]["model.l2"]
        assert c / 1.5 <= t["model.l2"] <= c * 1.5


def test_format_value_round_trips_through_yaml():
    for v in [1e-5, 3.727593720314938e-05, 0.1, 7, True, None, "relu", "true", [50, 50]]:
        assert yaml.safe_load(sweep.format_value(v)) == v


# ---------------------------------------------------------------------------- spec errors

@pytest.mark.parametrize("bad, where", [
    ({"space": {"model.l2": {"log_uniform": [1e-5, 1e-1]}}}, "method: grid needs finite"),
    ({"space": {"model.l2": {"log_unifrm": [1e-5, 1e-1]}}}, "space.model.l2: expected one"),
    ({"space": {"model.l2": {"log_uniform": [1e-1, 1e-5]}}, "method": "random", "trials": 2},
     "space.model.l2: lo (0.1) must be below hi"),
    ({"typo": 1}, "typo: unknown key"),
    ({"method": "random"}, "method: random needs trials"),
    ({"metric": "accuracy"}, "metric: 'accuracy' is not a metrics.csv column"),
])
def test_spec_errors_name_the_key(bad, where):
    with pytest.raises(UserError, match="spec.yaml: invalid config") as e:
        spec.validate_spec(make_spec() | bad, "spec.yaml")
    assert where in str(e.value)


def test_direction_follows_the_metric_unless_given():
    assert spec.validate_spec(make_spec(metric="val_acc"), "t").direction == "max"
    assert spec.validate_spec(make_spec(metric="val_loss"), "t").direction == "min"
    assert spec.validate_spec(make_spec(direction="max"), "t").direction == "max"


def test_a_bad_space_key_fails_before_anything_runs(tmp_path):
    raw = make_spec(space={"model.hiden": {"grid": [[4], [8]]}})
    with pytest.raises(UserError) as e:
        sweep.create(search_of(raw), tmp_path / "sweeps")
    assert "model.hiden: unknown key" in str(e.value)
    assert not (tmp_path / "sweeps").exists() or not any((tmp_path / "sweeps").iterdir())


def test_spec_file_with_base_path_relative_to_it(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "cfg" / "s.yaml").write_text(yaml.safe_dump(make_spec(base="base.yaml")))
    s = spec.load_spec(tmp_path / "cfg" / "s.yaml")
    assert s.base == BASE and s.spec.name == "s"


# ---------------------------------------------------------------------------- refine from a sweep

def test_refine_centres_on_the_best_trials_of_the_coarse_sweep(tmp_path):
    coarse_raw = make_spec(metric="val_acc", space={
        "model.l2": {"log_grid": {"lo": 1e-5, "hi": 1e-1, "n": 5}}})
    coarse = sweep.create(search_of(coarse_raw), tmp_path)
    for t, acc in zip(coarse.trials, [0.30, 0.50, 0.45, 0.20, 0.10], strict=True):
        t.status, t.best, t.final = "ok", acc, acc
    coarse.trials[4].status, coarse.trials[4].best = "failed", None
    coarse.write_trials()
    fine_raw = make_spec(method="random", trials=6, metric="val_acc",
                         space={"model.l2": {"log_uniform": [1e-5, 1e-1]}},
                         refine={"top_k": 2, "factor": 2.0})
    fine = sweep.create(search_of(fine_raw), tmp_path, sweep.load(coarse.path))
    assert [c["trial"] for c in fine.refined_from["centres"]] == [1, 2]
    for t in fine.trials:
        c = coarse.trials[[1, 2][t.id % 2]].values["model.l2"]
        assert c / 2 <= t.values["model.l2"] <= c * 2
    saved = yaml.safe_load((fine.path / "sweep.yaml").read_text())
    assert saved["refined_from"]["sweep"] == str(coarse.path)
    with pytest.raises(UserError, match="give --from"):
        sweep.create(search_of(fine_raw), tmp_path)


@pytest.mark.slow
def test_plots_use_a_log_axis_for_log_keys_and_rows_for_lists(tmp_path):
    raw = make_spec(space={"model.l2": {"log_grid": {"lo": 1e-4, "hi": 1e-1, "n": 2}},
                           "model.hidden": {"grid": [[4], [8, 8]]},
                           "train.batch_size": {"grid": [10, 20]}})
    sw = sweep.create(search_of(raw), tmp_path)
    for t in sw.trials:
        t.status, t.best, t.final = "ok", 0.1 * t.id, 0.0
    files = plot_sweep(sw)
    assert [f.name for f in files] == ["val_loss_vs_model.l2.png",
                                       "val_loss_vs_model.hidden.png",
                                       "val_loss_vs_train.batch_size.png"]
    assert all(f.stat().st_size > 1000 for f in files)
    assert plot._figure(sw, "model.l2").axes[0].get_xscale() == "log"
    assert plot._figure(sw, "train.batch_size").axes[0].get_xscale() == "linear"
    rows = plot._figure(sw, "model.hidden").axes[0].get_yticklabels()
    assert [r.get_text() for r in rows] == ["[4]", "[8, 8]"]


# ---------------------------------------------------------------------------- running sweeps

def results(sw):
    return [(t.id, t.values, t.status, t.best, t.final) for t in sw.trials]


def failing_spec():
    # batch 1000 > the 80 training images: passes validation, raises when the run is built
    return make_spec(space={"model.l2": {"log_grid": {"lo": 1e-4, "hi": 1e-1, "n": 3}},
                            "train.batch_size": {"grid": [20, 1000]}})


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("local")
    sw = sweep.create(search_of(failing_spec()), root)
    pool = open_backend(workers=2)
    try:
        seen = []
        sweep.run(sw, pool, data_dir, on_done=seen.append)
    finally:
        pool.close()
    return sw, seen


@pytest.mark.slow
def test_two_workers_run_every_trial_and_record_failures(local_sweep):
    sw, seen = local_sweep
    assert sorted(t.id for t in seen) == list(range(6))
    for t in sw.trials:
        if t.values["train.batch_size"] == 1000:
            assert t.status == "failed" and "larger than one epoch" in t.error
            assert t.best is None
        else:
            assert t.status == "ok" and t.error == ""
    rows = read_csv(sw.path / "trials.csv")
    assert [r["status"] for r in rows] == [t.status for t in sw.trials]
    assert set(rows[0]) >= {"trial", "model.l2", "train.batch_size", "status",
                            "best_val_loss", "final_val_loss", "run", "error"}


@pytest.mark.slow
def test_each_ok_trial_is_an_ordinary_run_with_its_values(local_sweep):
    sw, _ = local_sweep
    for t in sw.trials:
        if t.status != "ok":
            continue
        run = sw.path / t.run
        assert run.parent == sw.path / "runs"
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["model"]["l2"] == t.values["model.l2"]
        assert config["name"] == f"tiny-t{t.id:03d}"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert t.best == summary["best"]["val_loss"]
        assert t.final == summary["final"]["val_loss"]
    losses = {t.best for t in sw.trials if t.status == "ok"}
    assert len(losses) == 3  # l2 changes the result: the trials really differ


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_results(local_sweep, tmp_path, data_dir):
    sw_local, _ = local_sweep
    sw = sweep.create(search_of(failing_spec()), tmp_path)
    cluster = open_backend(workers=2, cluster="local")
    try:
        assert cluster.slots() == 2
        sweep.run(sw, cluster, data_dir)
    finally:
        cluster.close()
    assert results(sw) == results(sw_local)


@pytest.mark.slow
def test_fail_fast_then_resume_reruns_only_what_is_not_ok(tmp_path, data_dir):
    raw = make_spec(space={"train.batch_size": {"grid": [20, 1000, 40, 10]}})
    sw = sweep.create(search_of(raw), tmp_path)
    pool = open_backend(workers=1)
    try:
        sweep.run(sw, pool, data_dir, fail_fast=True)
        assert [t.status for t in sw.trials] == ["ok", "failed", "pending", "pending"]
        # pretend trial 0's run was stopped at its (last) checkpoint: resume continues it
        run0 = sw.path / sw.trials[0].run
        summary = json.loads((run0 / "summary.json").read_text())
        (run0 / "summary.json").write_text(json.dumps(summary | {"status": "interrupted"}))
        sw.trials[0].status = "pending"
        sw.write_trials()
        again = sweep.load(sw.path)
        assert [t.status for t in again.trials] == ["pending", "failed", "pending", "pending"]
        sweep.run(again, pool, data_dir)
        assert [t.status for t in again.trials] == ["ok", "failed", "ok", "ok"]
        assert again.trials[0].run == sw.trials[0].run  # continued in place
        sessions = json.loads((sw.path / "sessions.json").read_text())
        assert [s["trials_run"] for s in sessions] == [2, 4]
        once_more = sweep.load(sw.path)
        sweep.run(once_more, pool, data_dir)  # only the failed trial is left to rerun
        sessions = json.loads((sw.path / "sessions.json").read_text())
        assert sessions[-1]["trials_run"] == 1
    finally:
        pool.close()
    assert len(list((sw.path / "runs").iterdir())) == 3  # t000 (once), t002, t003


@pytest.mark.slow
def test_local_pool_sets_blas_threads_per_worker(monkeypatch):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "64")  # more than cores // workers: capped
    pool = LocalPool(workers=2)
    try:
        got = pool.pool.submit(os.getenv, "OPENBLAS_NUM_THREADS").result()
        assert got == str(max(1, cpu_count() // 2)) == str(pool.threads)
        assert pool.pool.submit(os.getenv, "OMP_NUM_THREADS").result() == got
    finally:
        pool.close()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "64"  # this process's setting is restored


def test_threads_per_worker_never_exceed_the_cores_or_what_the_user_asked(monkeypatch):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(execute, "cpu_count", lambda: 8)
    assert [execute.threads_per_worker(w) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert execute.threads_per_worker(1) == 1


@pytest.mark.slow
def test_a_dead_worker_fails_its_trial_and_the_pool_recovers(tmp_path):
    pool = LocalPool(workers=1)
    try:
        dead = pool.pool.submit(os._exit, 3)  # the worker process dies
        with pytest.raises(BrokenProcessPool):
            dead.result()
        task = TrialTask(trial=0, name="x-t000", base={}, overrides=["name=x-t000"],
                         data_dir=str(tmp_path), runs_dir=str(tmp_path / "runs"),
                         metric="val_acc")
        out = pool.submit(task).result()  # a new pool runs the next trial
        assert out["status"] == "failed" and "required key is missing" in out["error"]
    finally:
        pool.close()


# ---------------------------------------------------------------------------- CLI

@pytest.mark.slow
def test_cli_search_and_resume(tmp_path, data_dir):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(make_spec(base="base.yaml")))
    runner = CliRunner()
    r = runner.invoke(app, ["search", str(tmp_path / "s.yaml"), "--workers", "1",
                            "--data-dir", str(data_dir), "--sweeps-dir", str(tmp_path / "sw")])
    assert r.exit_code == 0, r.output
    assert "top trials by val_loss" in r.output and "t002" in r.output
    (path,) = (tmp_path / "sw").iterdir()
    assert len(list((path / "plots").glob("*.png"))) == 1
    rows = read_csv(path / "trials.csv")
    best = min(rows, key=lambda r: float(r["best_val_loss"]))
    assert math.isfinite(float(best["best_val_loss"]))
    r = runner.invoke(app, ["search", "--resume", str(path), "--workers", "1",
                            "--data-dir", str(data_dir)])
    assert r.exit_code == 0 and "0 of 3 trials to run" in r.output


@pytest.mark.parametrize("args, message", [
    (["--scheduler", "tcp://x:1", "--cluster", "local"], "either --scheduler"),
    (["--cluster", "slurm"], "only 'local'"),
    (["--workers", "0"], "at least 1"),
    ([], "give a search SPEC"),
])
def test_cli_rejects_bad_options(args, message):
    r = CliRunner().invoke(app, ["search", *args])
    assert r.exit_code == 2 and message in r.output


def test_missing_dask_says_how_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    with pytest.raises(UserError, match=r"pip install dl2424\[cluster\]"):
        open_backend(cluster="local")
