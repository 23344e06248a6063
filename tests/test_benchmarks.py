"""The ConvNet benchmarks still run and print their tables. Their numbers are `make bench`'s
business; here each script runs on one small row and every cell it prints must make sense:
positive times, and for an A/B of this tree against itself a ratio near 1."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _table_rows(script, *args):
    """The body rows of the rich table the script prints, as lists of stripped cells."""
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args],
                         capture_output=True, text=True, timeout=600, cwd=REPO,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    return [[c.strip() for c in line.split("│")[1:-1]] for line in out.stdout.splitlines()
            if line.startswith("│")]


@pytest.mark.slow
def test_bench_cnn_prints_times_and_a_ratio_per_thread_count():
    rows = _table_rows("bench_cnn.py", "--rows", "0", "0", "--repeats", "2",
                       "--threads", "1", "2")
    assert [r[2] for r in rows] == ["1", "2"]
    assert rows[0][0].startswith("small [16,M,32,M,64,M]") and rows[0][1] == "100"
    for *_, ours, theirs, ratio, gflops, peak in rows:
        assert float(ours) > 0 and float(gflops) > 0 and peak.endswith("%")
        try:
            import torch  # noqa: F401
        except ImportError:
            assert theirs == ratio == "-"
        else:
            assert float(theirs) > 0 and 0.05 < float(ratio) < 20


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--eval"]])
def test_ab_cnn_against_this_revision_gives_a_ratio_near_one(mode):
    """HEAD's cnn extracted under another name against the tree's: with no change between
    them (CI runs a clean clone) the median ratio stays near 1."""
    dirty = subprocess.run(["git", "status", "--porcelain", "dl2424"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
    rows = _table_rows("ab_cnn.py", "HEAD", "--rows", "0", "0", "--threads", "1",
                       "--rounds", "3", *mode)
    assert len(rows) == 1
    network, threads, old_ms, new_ms, ratio = rows[0]
    assert network.startswith("small") and threads == "1"
    assert float(old_ms) > 0 and float(new_ms) > 0
    if not dirty:
        assert 0.5 < float(ratio) < 2.0
