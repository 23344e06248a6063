"""The benchmarks still run and print their tables. Their numbers are `make bench`'s
business; here each script runs briefly and every cell it prints must make sense: positive
times, each ratio column the quotient of the time columns it names, and for an A/B of this
tree against itself a ratio near 1. (bench_mlp, ~1 minute even with one repeat, is left to
`make bench`.)"""

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


def _torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _number(cell):
    """A table cell as a float: '1,234' -> 1234.0, '1.78x' -> 1.78."""
    return float(cell.replace(",", "").rstrip("x%"))


def _check_quotient(shown, top, bottom, rel=0.03):
    """A ratio cell equals the quotient of the two time cells, up to their display rounding."""
    assert _number(top) > 0 and _number(bottom) > 0
    assert _number(shown) == pytest.approx(_number(top) / _number(bottom), rel=rel, abs=0.051)


# (script, columns of the times, [(ratio column, numerator column, denominator column)])
TABLES = {
    "bench_patchnet.py": ([5, 6], [(7, 6, 5)]),
    "bench_rnn.py": ([2, 3], [(4, 3, 2)]),
    "bench_charcnn.py": ([2, 3, 4], [(5, 2, 3), (6, 4, 3)]),
}


@pytest.mark.slow
@pytest.mark.parametrize("script", TABLES)
def test_benchmark_tables_are_consistent(script):
    times, ratios = TABLES[script]
    rows = _table_rows(script, "--repeats", "1")
    assert rows
    for row in rows:
        for col in times:
            if row[col] == "-":  # only a PyTorch column, and only without torch
                assert not _torch(), row
            else:
                assert _number(row[col]) > 0, row
        for shown, top, bottom in ratios:
            if "-" not in (row[shown], row[top], row[bottom]):
                _check_quotient(row[shown], row[top], row[bottom])
            else:
                assert not _torch(), row


@pytest.mark.slow
def test_bench_cnn_prints_times_and_a_ratio_per_thread_count():
    rows = _table_rows("bench_cnn.py", "--rows", "0", "0", "--repeats", "2",
                       "--threads", "1", "2")
    assert [r[2] for r in rows] == ["1", "2"]
    assert rows[0][0].startswith("small [16,M,32,M,64,M]") and rows[0][1] == "100"
    for *_, ours, theirs, ratio, quartiles, gflops, peak in rows:
        assert float(ours) > 0 and float(gflops) > 0 and peak.endswith("%")
        if _torch():  # a median of within-round ratios: near, not equal to, ours / theirs
            assert float(theirs) > 0 and 0.05 < float(ratio) < 20
            low, high = (float(q) for q in quartiles.split("-"))
            assert low <= float(ratio) <= high
        else:
            assert theirs == ratio == quartiles == "-"


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
    network, threads, old_ms, new_ms, ratio, quartiles = rows[0]
    assert network.startswith("small") and threads == "1"
    assert float(old_ms) > 0 and float(new_ms) > 0
    low, high = (float(q) for q in quartiles.split("-"))
    assert low <= float(ratio) <= high
    if not dirty:
        assert 0.5 < float(ratio) < 2.0


def test_paired_ratios_cancel_drift_between_rounds_and_give_quartiles():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from common import paired_ratios

    old = [10.0, 20.0, 14.0, 30.0, 12.0]  # the host's speed drifting from round to round
    assert paired_ratios([1.1 * t for t in old], old) == pytest.approx((1.1, 1.1, 1.1))
    new = [10.0, 24.0, 14.0, 33.0, 10.8]  # ratios 1.0, 1.2, 1.0, 1.1, 0.9
    median, low, high = paired_ratios(new, old)
    assert median == pytest.approx(1.0) and low == pytest.approx(1.0)
    assert high == pytest.approx(1.1)
    assert paired_ratios([3.0], [2.0]) == (1.5, 1.5, 1.5)


@pytest.mark.slow
def test_bench_winograd_prints_every_layer_with_the_rule_that_picks_it():
    from dl2424.nn import winograd

    rows = _table_rows("bench_winograd.py", "--repeats", "2")
    assert len(rows) == 12
    for _, n, side, channels, im2col, wino, ratio, quartiles, pays in rows:
        assert _number(im2col) > 0 and _number(wino) > 0
        low, high = (float(q) for q in quartiles.split("-"))
        assert low <= float(ratio) <= high
        h = int(side.split("x")[0])
        C, F = (int(c) for c in channels.split("->"))
        assert pays == ("yes" if winograd.pays((int(n), h, h, C), (F, C, 3, 3)) else "no")
    assert {r[-1] for r in rows} == {"yes", "no"}
