"""Files written through the atomic writer honour the umask like any other program (issue 12,
category 7): 0644 under umask 022, 0600 under 077. Before, every one was 0600 (mkstemp)."""

import os
import stat

import numpy as np
import pytest
from typer.testing import CliRunner

from dl2424 import atomic, checkpoint
from dl2424.cli import app

runner = CliRunner()

CFG = """name: modes
data: {type: names}
model: {type: charcnn, layers: [{filters: 2, width: 3}]}
optimizer: {type: sgd, lr: 0.05}
train: {batch_size: 8, steps: 4, eval_every: 2}
"""


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_umask_is_read_without_changing_it(umask):
    assert atomic.current_umask() == umask
    assert atomic.current_umask() == umask


def test_text_json_and_binary_writes_follow_the_umask(tmp_path, umask):
    atomic.write_text(tmp_path / "a.txt", "x")
    atomic.write_json(tmp_path / "b.json", {"a": 1})
    with atomic.atomic_open(tmp_path / "c.bin", "wb") as f:
        f.write(b"\0")
    with open(tmp_path / "plain.txt", "w") as f:  # what any program gets
        f.write("x")
    want = 0o666 & ~umask
    assert mode(tmp_path / "plain.txt") == want
    for name in ("a.txt", "b.json", "c.bin"):
        assert mode(tmp_path / name) == want, name


@pytest.mark.slow
def test_a_whole_run_folder_and_its_report_are_readable_by_the_team(env):
    old = os.umask(0o022)
    try:
        (env / "c.yaml").write_text(CFG)
        res = runner.invoke(app, ["train", str(env / "c.yaml"), "--quiet",
                                  "--runs-dir", str(env / "runs")])
        assert res.exit_code == 0, res.output
        (run,) = (env / "runs").iterdir()
        res = runner.invoke(app, ["report", str(run)])
        assert res.exit_code == 0, res.output
        files = [f for f in run.rglob("*") if f.is_file()]
        names = {f.name for f in files}
        assert {"config.yaml", "metrics.csv", "summary.json", "checkpoint.npz", "best.npz",
                "index.html", "report.md", "data.json"} <= names
        wrong = {str(f.relative_to(run)): oct(mode(f)) for f in files if mode(f) != 0o644}
        assert not wrong
        ck = checkpoint.load(run / "checkpoint.npz")
        assert all(np.isfinite(v).all() for v in ck.params.values())
    finally:
        os.umask(old)
