"""convcheck on DebugInfo.mat files made here in the course's layout."""

import re

import numpy as np
import pytest
from scipy import sparse
from scipy.io import savemat
from typer.testing import CliRunner

from dl2424.cli import app
from dl2424.convcheck import check_debug_file
from dl2424.errors import UserError

ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"  # d = 28
N_LEN, K, N_F = 19, 5, 4


def debug_info(name="o'sullivan", seed=0):
    """The fields of the hand-out's DebugInfo.mat, S from the definition of the conv."""
    d = len(ALPHABET)
    X = np.zeros((d, N_LEN))
    X[[ALPHABET.index(ch) for ch in name], np.arange(len(name))] = 1
    F = np.random.default_rng(seed).standard_normal((d, K, N_F))
    S = np.array([[np.sum(X[:, j:j + K] * F[:, :, i]) for j in range(N_LEN - K + 1)]
                  for i in range(N_F)])
    col = lambda A: A.reshape(-1, 1, order="F")  # noqa: E731  (MATLAB's A(:))
    return {"X_input": X, "x_input": col(X), "F": F, "vecF": col(F), "S": S, "vecS": col(S)}


def write(tmp_path, fields, name="DebugInfo.mat"):
    path = tmp_path / name
    savemat(path, fields)
    return path


def test_a_correct_file_reproduces(tmp_path):
    fields = debug_info()
    assert fields["S"].shape == (N_F, N_LEN - K + 1)
    result = check_debug_file(write(tmp_path, fields))
    assert (result.d, result.k, result.n_f, result.n_len) == (28, K, N_F, N_LEN)
    assert result.ok()
    assert max(diff for _, _, diff in result.rows()) < 1e-12


def test_matlab_sparse_and_logical_fields_are_read(tmp_path):
    fields = debug_info()
    fields["X_input"] = sparse.csc_matrix(fields["X_input"])  # as MATLAB may store it
    fields["x_input"] = fields["x_input"].astype(bool)
    assert check_debug_file(write(tmp_path, fields)).ok()


def test_a_wrong_S_is_reported(tmp_path):
    fields = debug_info()
    fields["S"] = fields["S"].copy()
    fields["S"][2, 3] += 0.5
    result = check_debug_file(write(tmp_path, fields))
    assert not result.ok()
    assert result.mf_vs_S == pytest.approx(0.5) and result.mx_vs_S == pytest.approx(0.5)
    assert result.mf_vs_vecS < 1e-12 and result.mx_vs_vecS < 1e-12


def test_wrong_filters_fail_both_products(tmp_path):
    fields = debug_info()
    fields["vecF"] = fields["vecF"] * 1.01  # MX uses vecF, MF uses F
    result = check_debug_file(write(tmp_path, fields))
    assert result.mx_vs_vecS > 1e-3 and result.mf_vs_vecS < 1e-12 and not result.ok()


@pytest.mark.parametrize("field", ["vecS", "F", "x_input"])
def test_a_missing_field_is_a_user_error(tmp_path, field):
    fields = debug_info()
    del fields[field]
    path = write(tmp_path, fields)
    with pytest.raises(UserError, match=re.escape(str(path)) + ".*" + field):
        check_debug_file(path)


def test_a_field_of_the_wrong_shape_is_a_user_error(tmp_path):
    fields = debug_info()
    fields["S"] = fields["S"][:, :-1]
    with pytest.raises(UserError, match="field S should be 4 x 15"):
        check_debug_file(write(tmp_path, fields))


def test_missing_and_corrupt_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="nothere.mat: no such file"):
        check_debug_file(tmp_path / "nothere.mat")
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file, but then garbage" + bytes(range(256)))
    with pytest.raises(UserError, match="bad.mat: not a readable MATLAB .mat file"):
        check_debug_file(bad)


def test_cli_exit_codes(tmp_path):
    runner = CliRunner()
    good = write(tmp_path, debug_info(), "good.mat")
    res = runner.invoke(app, ["convcheck", str(good)])
    assert res.exit_code == 0, res.output
    assert "MX · vecF" in res.output and "FAIL" not in res.output

    fields = debug_info()
    fields["vecS"] = fields["vecS"] + 1e-6
    res = runner.invoke(app, ["convcheck", str(write(tmp_path, fields, "wrong.mat"))])
    assert res.exit_code == 1 and "FAIL" in res.output
    # ... which a looser tolerance accepts
    res = runner.invoke(app, ["convcheck", str(tmp_path / "wrong.mat"), "--tol", "1e-5"])
    assert res.exit_code == 0

    res = runner.invoke(app, ["convcheck", str(tmp_path / "missing.mat")])
    assert res.exit_code == 2 and "no such file" in res.output
    assert "Traceback" not in res.output
