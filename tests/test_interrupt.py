"""Real training processes stopped from outside: SIGKILL at random moments, SIGINT, SIGTERM;
and two trainings started together. Every stopped run must resume to a result bit-identical
to an uninterrupted run with the same seed."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dl2424 import experiment, rundir
from dl2424.cli import app
from dl2424.config import validate

from .runcheck import RICH, assert_resumable, assert_same_run, meta

runner = CliRunner()
pytestmark = pytest.mark.slow  # subprocesses, signals and kills: seconds each

# 400 tiny updates (10 per epoch), a checkpoint every 7, an evaluation every 10: about a
# second of training in which a kill can land in an update, an evaluation or a file write.
LONG = {**RICH, "name": "long",
        "schedule": {"type": "cyclic", "eta_min": 0.001, "eta_max": 0.05, "n_s": 40},
        "train": {**RICH["train"], "batch_size": 4, "steps": 400, "eval_every": 10,
                  "checkpoint_every": 7}}
KILL_SEED = 2424
N_KILLS = 6  # fresh runs killed; every other one is resumed in a process killed again


@pytest.fixture(scope="module")
def reference(fixture_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return {cfg["name"]: experiment.start(validate(cfg), [], fixture_data, root)[0]
            for cfg in (LONG, RICH)}


@pytest.fixture(autouse=True)
def no_fsync_here(monkeypatch):
    """The killed processes fsync as in real use; the resumes and references run in this
    process, where fsync would only cost time."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)



def spawn(env, *args):
    """`dl2424 train ...` in a new Python process."""
    return subprocess.Popen(
        [sys.executable, "-c", "from dl2424.cli import app; app()", "train", *map(str, args),
         "--quiet"],
        cwd=env, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def start(env, cfg):
    file = env / "cfg.yaml"
    file.write_text(yaml.safe_dump(cfg))
    return spawn(env, file, "--runs-dir", env / "runs")


def saved_step(root):
    """The step of the newest checkpoint under root (its JSON copy is written after it)."""
    try:
        (sidecar,) = root.glob("*/checkpoint.json") if root.name == "runs" else [
            root / "checkpoint.json"]
        return json.loads(sidecar.read_text())["step"]
    except (ValueError, FileNotFoundError):
        return -1


def wait_for_step(proc, root, step, timeout=120):
    """Poll until a checkpoint at `step` or later exists; False if the process ended first."""
    t0 = time.monotonic()
    while saved_step(root) < step:
        if proc.poll() is not None:
            return False
        assert time.monotonic() - t0 < timeout, proc.communicate()
        time.sleep(0.002)
    return True


def kill_at(proc, root, step, rng) -> bool:
    """SIGKILL a random 0-25 ms after the checkpoint at `step`; True if it died of it."""
    if wait_for_step(proc, root, step):
        time.sleep(rng.uniform(0, 0.025))
        proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return proc.returncode == -signal.SIGKILL


def resume_here(run):
    res = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert res.exit_code == 0, res.output


def test_sigkill_at_random_moments_then_resume_is_bit_identical(env, reference, capsys):
    rng = np.random.default_rng(KILL_SEED)
    total, every = LONG["train"]["steps"], LONG["train"]["eval_every"]
    kills, identical, stopped_at = 0, 0, []
    for i in range(N_KILLS):
        root = env / f"kill{i}"
        root.mkdir()
        first = int(rng.integers(0, total * 2 // 3))
        if not kill_at(start(root, LONG), root / "runs", first, rng):
            continue  # finished before the kill: not a kill point
        (run,) = (root / "runs").iterdir()
        kills += 1
        stopped_at.append(assert_resumable(run, every))
        if i % 2:  # kill the resuming process too, somewhere after where it restarts
            second = int(rng.integers(stopped_at[-1] + 1, total))
            if kill_at(spawn(root, "--resume", run), run, second, rng):
                kills += 1
                stopped_at.append(assert_resumable(run, every))
        resume_here(run)
        assert_same_run(reference["long"], run)
        identical += 1
    with capsys.disabled():
        print(f"\nSIGKILL: {kills} kill points (checkpoint steps {stopped_at}), "
              f"{identical}/{N_KILLS} runs resumed bit-identical")
    assert kills >= N_KILLS and identical == N_KILLS


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_marks_interrupted_and_resumes(env, reference, sig):
    proc = start(env, LONG)
    assert wait_for_step(proc, env / "runs", 100)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err  # 130 for SIGINT, 143 for SIGTERM
    (run,) = (env / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    step = meta(run / "checkpoint.npz")["step"]
    assert summary["steps"] == summary["checkpoint_step"] == step  # saved where it stopped
    assert 100 <= step < LONG["train"]["steps"]
    assert f"Resume with: dl2424 train --resume {run}" in err
    assert "Traceback" not in err
    assert_resumable(run, LONG["train"]["eval_every"])
    resume_here(run)
    assert_same_run(reference["long"], run)


def test_two_processes_started_together_get_two_folders(env, reference):
    file = env / "cfg.yaml"
    file.write_text(yaml.safe_dump(RICH))
    procs = [spawn(env, file, "--runs-dir", env / "runs") for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    a, b = sorted((env / "runs").iterdir())
    assert a.name != b.name
    for run in (a, b):
        assert_same_run(reference["rich"], run)


def test_same_second_same_name_never_shares_a_folder(env, fixture_data, monkeypatch):
    """Eight trainings in threads, released together, all in one (frozen) second."""
    frozen = time.time()
    monkeypatch.setattr(rundir, "time", types.SimpleNamespace(
        strftime=time.strftime, localtime=lambda now=None: time.localtime(frozen)))
    barrier = threading.Barrier(8)
    runs, errors = [], []

    def train():
        barrier.wait()
        try:
            runs.append(experiment.start(validate(RICH), [], fixture_data, env / "runs")[0])
        except Exception as e:  # noqa: BLE001 — reported below
            errors.append(e)

    threads = [threading.Thread(target=train) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(frozen))
    assert sorted(r.name for r in runs) == sorted(
        [f"{stamp}-rich"] + [f"{stamp}-rich-{i}" for i in range(2, 9)])
    metrics = {(r / "metrics.csv").read_bytes() for r in runs}
    assert len(metrics) == 1  # eight complete, identical runs: none wrote into another's folder


def test_a_run_being_trained_cannot_be_resumed_twice(tmp_path):
    from dl2424 import rundir
    from dl2424.errors import UserError

    run = tmp_path / "r"
    run.mkdir()
    rundir.claim(run)
    with pytest.raises(UserError, match=f"being trained by process {os.getpid()}"):
        rundir.claim(run)
    rundir.release(run)
    rundir.claim(run)  # free again
    rundir.release(run)
    # A lock left by a process that no longer exists is taken over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / rundir.LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    rundir.claim(run)
    assert json.loads((run / rundir.LOCK).read_text())["pid"] == os.getpid()
    rundir.release(run)
    summary = {"status": "running", "host": socket.gethostname(), "pid": dead.pid}
    assert rundir.is_stale(summary)
    assert not rundir.is_stale({**summary, "pid": os.getpid()})
