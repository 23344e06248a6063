"""`search` and its processes (issue 12, category 3): pool workers and the multiprocessing
resource tracker die with the sweep process however it ends (kill -9 included); SIGTERM
stops a sweep as ^C does (trials checkpoint, exit 143, nothing left "running"); and
--resume continues the run folder of a trial that was in flight instead of starting a
second one (or removes it when it holds nothing to continue)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import dl2424.cli.search_cmd  # noqa: F401  (adds the `search` command)
from dl2424 import rundir
from dl2424.cli import app
from dl2424.search import sweep as sweeps
from dl2424.search.spec import Search, validate_spec

runner = CliRunner()

BASE = {"name": "lt", "seed": 0, "data": {"type": "names"},
        "model": {"type": "charcnn", "layers": [{"filters": 4, "width": 3}]},
        "optimizer": {"type": "sgd", "lr": 0.05},
        "train": {"batch_size": 20, "steps": 4000, "eval_every": 500, "checkpoint_every": 25}}
SPEC = {"base": BASE, "method": "grid", "space": {"seed": {"grid": [1, 2, 3]}}}


def group(pgid: int) -> list[int]:
    """Processes of a process group (the sweep, its workers, the resource tracker)."""
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.getpgid(int(p)) == pgid:
                    found.append(int(p))
            except ProcessLookupError:
                pass
    return found


def start_sweep(tmp_path, fixture_data, *extra):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    cmd = [sys.executable, "-c", "from dl2424.cli import run; run()", "search",
           str(tmp_path / "s.yaml"), "--workers", "2", "--sweeps-dir", str(tmp_path / "sw"),
           *extra]
    env = os.environ | {"DL2424_DATA_DIR": str(fixture_data)}
    return subprocess.Popen(cmd, start_new_session=True, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_checkpoints(tmp_path, n: int, proc, timeout=240):
    """Until n trial runs have a checkpoint past step 0 and before the last step (both
    workers are mid-trial; on a loaded machine one worker may finish a trial before the
    other has started one)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        steps = []
        for f in tmp_path.glob("sw/*/runs/*/checkpoint.json"):
            try:
                steps.append(json.loads(f.read_text())["step"])
            except (OSError, ValueError, KeyError):
                pass
        if sum(0 < s < BASE["train"]["steps"] for s in steps) >= n:
            return
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.2)
    raise AssertionError("the trials did not start")


def wait_gone(pgid: int, timeout=20) -> list[int]:
    t0 = time.monotonic()
    while (left := group(pgid)) and time.monotonic() - t0 < timeout:
        time.sleep(0.2)
    for p in left:  # do not leave them running, whatever the test says
        os.kill(p, signal.SIGKILL)
    return left


def trials(sweep: Path) -> list[dict]:
    with open(sweep / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def reference(fixture_data, tmp_path_factory):
    """The same sweep, never stopped (one worker, in process)."""
    root = tmp_path_factory.mktemp("ref")
    (root / "s.yaml").write_text(yaml.safe_dump(SPEC))
    res = runner.invoke(app, ["search", str(root / "s.yaml"), "--workers", "1",
                              "--sweeps-dir", str(root / "sw"), "--data-dir",
                              str(fixture_data)])
    assert res.exit_code == 0, res.output
    (sweep,) = (root / "sw").iterdir()
    return {r["trial"]: (sweep / r["run"] / "metrics.csv").read_bytes() for r in trials(sweep)}


def resume_and_compare(tmp_path, fixture_data, reference):
    (sweep,) = (tmp_path / "sw").iterdir()
    before = sorted(p.name for p in (sweep / "runs").iterdir())
    res = runner.invoke(app, ["search", "--resume", str(sweep), "--workers", "2",
                              "--data-dir", str(fixture_data)])
    assert res.exit_code == 0, res.output
    rows = trials(sweep)
    assert [r["status"] for r in rows] == ["ok"] * 3
    folders = sorted(p.name for p in (sweep / "runs").iterdir())
    assert len(folders) == 3, folders  # one folder per trial: the in-flight ones continued
    assert set(before) <= set(folders)
    for r in rows:  # and bit-identical to the sweep that was never stopped
        assert (sweep / r["run"] / "metrics.csv").read_bytes() == reference[r["trial"]]


@pytest.mark.slow
def test_kill_9_takes_the_workers_and_resource_tracker_along(tmp_path, fixture_data,
                                                            reference):
    proc = start_sweep(tmp_path, fixture_data)
    try:
        wait_for_checkpoints(tmp_path, 2, proc)
        assert len(group(proc.pid)) >= 4  # sweep, resource tracker, two workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        left = wait_gone(proc.pid)
    assert not left, f"still running after the sweep was killed: {left}"
    resume_and_compare(tmp_path, fixture_data, reference)


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c(tmp_path, fixture_data, reference):
    proc = start_sweep(tmp_path, fixture_data)
    try:
        wait_for_checkpoints(tmp_path, 2, proc)
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        left = wait_gone(proc.pid)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert not left and "Traceback" not in out, out
    (sweep,) = (tmp_path / "sw").iterdir()
    rows = trials(sweep)
    assert "running" not in [r["status"] for r in rows]
    stopped = [r for r in rows if r["run"] and r["status"] != "ok"]  # the two in flight
    assert len(stopped) == 2 and all("checkpoint kept" in r["error"] for r in stopped), rows
    for r in stopped:
        assert rundir.read_summary(sweep / r["run"])["status"] == "interrupted"
    resume_and_compare(tmp_path, fixture_data, reference)


def test_a_worker_dies_with_its_parent(tmp_path):
    """die_with_parent in a grandchild: kill -9 its parent, the grandchild is gone too."""
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import os, sys, time; "
        "from dl2424.search.execute import die_with_parent; "
        "die_with_parent(int(sys.argv[1])); time.sleep(120)', str(os.getpid())])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        time.sleep(0.5)
        os.kill(child, 0)  # alive (raises ProcessLookupError if not)
        parent.kill()  # before or after the child got to die_with_parent: it goes too
        parent.wait()
    finally:
        left = wait_gone(parent.pid, timeout=15)
    assert child not in left and not left


def _sweep(tmp_path):
    search = Search(validate_spec(SPEC, "test"), BASE, "test")
    return sweeps.create(search, tmp_path / "sw")


def test_resume_removes_an_in_flight_folder_without_a_checkpoint(tmp_path):
    sw = _sweep(tmp_path)
    t = sw.trials[0]
    orphan = sw.path / "runs" / f"20260101-000000-{sw.run_name(t)}"
    orphan.mkdir()
    (orphan / "config.yaml").write_text("name: x\n")
    t.status = "running"
    assert sweeps._resumable(sw, t) is None
    assert not orphan.exists()


def test_resume_continues_an_in_flight_folder_with_a_checkpoint(tmp_path):
    sw = _sweep(tmp_path)
    t = sw.trials[1]
    run = sw.path / "runs" / f"20260101-000000-{sw.run_name(t)}"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes(b"")
    (run / "summary.json").write_text(json.dumps({"status": "running"}))
    assert sweeps._resumable(sw, t) == str(run.resolve())
    (run / "summary.json").write_text(json.dumps({"status": "completed"}))
    assert sweeps._resumable(sw, t) == str(run.resolve())  # recorded ok, not rerun
    other = sw.trials[2]
    assert sweeps._resumable(sw, other) is None  # nothing of its own
    assert run.exists()


def test_an_in_flight_folder_held_by_a_live_process_is_left_alone(tmp_path):
    sw = _sweep(tmp_path)
    t = sw.trials[0]
    run = sw.path / "runs" / f"20260101-000000-{sw.run_name(t)}"
    run.mkdir()
    rundir.claim(run)
    try:
        assert sweeps._resumable(sw, t) is None and run.exists()
    finally:
        rundir.release(run)
