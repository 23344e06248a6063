"""A refused `train --resume` changes nothing (issue 12, category 1): the run folder's lock is
taken before anything reads, trims or deletes in it. Before, a second resume of a live run cut
metrics.csv back, deleted newer confusions and best.npz, and only then found the lock."""

import json
import os
import socket

import pytest
from typer.testing import CliRunner

from dl2424 import experiment, rundir
from dl2424.cli import app
from dl2424.config import validate
from dl2424.trainer import Reporter

from .runcheck import assert_same_run, snapshot

runner = CliRunner()

# Evaluations (and confusions, and a best.npz) every 2 steps, one checkpoint at step 0 only
# until the end: everything after step 0 is what a resume would cut back.
CFG = {
    "name": "locked", "seed": 3,
    "data": {"type": "names"},
    "model": {"type": "charcnn", "layers": [{"filters": 4, "width": 3, "pool": 2}]},
    "optimizer": {"type": "sgd", "lr": 0.05},
    "train": {"batch_size": 8, "steps": 16, "eval_every": 2, "checkpoint_every": 1000},
}


class Crash(BaseException):
    pass


class CrashAt(Reporter):
    def __init__(self, step):
        self.step = step

    def on_eval(self, row):
        if row["step"] == self.step:
            raise Crash


@pytest.fixture
def no_fsync(monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def killed_run(fixture_data, root):
    """A run 'killed' at step 10: rows, confusions and best.npz newer than its checkpoint."""
    with pytest.raises(Crash):
        experiment.start(validate(CFG), [], fixture_data, root, CrashAt(10))
    (run,) = root.iterdir()
    rundir.release(run)  # the lock a kill -9 leaves is that of a dead process; see below
    assert (run / "confusion" / "val_step10.csv").is_file() and (run / "best.npz").is_file()
    return run


def resume_cli(run):
    return runner.invoke(app, ["train", "--resume", str(run), "--quiet"])


@pytest.mark.parametrize("holder", ["this-host", "other-host"])
def test_a_refused_resume_changes_nothing(env, fixture_data, no_fsync, holder):
    run = killed_run(fixture_data, env / "runs")
    host = socket.gethostname() if holder == "this-host" else "elsewhere.example"
    (run / rundir.LOCK).write_text(json.dumps({"host": host, "pid": os.getpid()}))
    before = snapshot(run)
    res = resume_cli(run)
    assert res.exit_code == 2, res.output
    assert "being trained by process" in res.output and "Traceback" not in res.output
    assert snapshot(run) == before


def test_a_lock_that_is_a_folder_is_refused_and_nothing_changes(env, fixture_data, no_fsync):
    run = killed_run(fixture_data, env / "runs")
    (run / rundir.LOCK).mkdir()
    before = snapshot(run)
    res = resume_cli(run)
    assert res.exit_code == 2 and "not a lock file" in res.output, res.output
    assert snapshot(run) == before and (run / rundir.LOCK).is_dir()


def test_a_second_resume_during_training_leaves_the_live_run_whole(env, fixture_data, no_fsync,
                                                                   tmp_path_factory):
    """The issue's scenario, in one process: while the run trains (step 13 of 16), a second
    `train --resume` of it is refused, changes nothing, and the first run ends exactly as an
    undisturbed one (best.npz and every confusion file there)."""
    ref_root = tmp_path_factory.mktemp("ref")
    reference = experiment.start(validate(CFG), [], fixture_data, ref_root)[0]
    root = env / "runs"
    seen = {}

    class SecondResume(Reporter):
        def on_step(self, step, lr, loss):
            if step == 13:
                (run,) = root.iterdir()
                seen["before"] = snapshot(run)
                seen["res"] = resume_cli(run)
                seen["after"] = snapshot(run)

    run = experiment.start(validate(CFG), [], fixture_data, root, SecondResume())[0]
    assert seen["res"].exit_code == 2 and "being trained by process" in seen["res"].output
    assert seen["after"] == seen["before"]
    assert_same_run(reference, run)
    assert not (run / rundir.LOCK).exists()


def test_a_run_killed_with_its_lock_resumes(env, fixture_data, no_fsync, tmp_path_factory):
    """The lock of a dead process (kill -9) is taken over; the resume is bit-identical."""
    import subprocess
    import sys

    ref = experiment.start(validate(CFG), [], fixture_data, tmp_path_factory.mktemp("ref"))[0]
    run = killed_run(fixture_data, env / "runs")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / rundir.LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    res = resume_cli(run)
    assert res.exit_code == 0, res.output
    assert_same_run(ref, run)


def test_the_lock_file_appears_whole(tmp_path, monkeypatch):
    """Written aside and linked into place: no moment where another process could read an
    empty lock, judge it broken and take the run over."""
    seen = []
    real_link = os.link

    def link(src, dst):
        seen.append(json.loads(open(src).read()))  # complete before it becomes the lock
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", link)
    rundir.claim(tmp_path)
    assert seen == [{"host": socket.gethostname(), "pid": os.getpid()}]
    assert json.loads((tmp_path / rundir.LOCK).read_text())["pid"] == os.getpid()
    assert [p.name for p in tmp_path.iterdir()] == [rundir.LOCK]
    rundir.release(tmp_path)
