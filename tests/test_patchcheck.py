"""convcheck on debug_conv_info.npz files written here in the 2026 hand-out's layout."""

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from dl2424.cli import app
from dl2424.convcheck import check_debug_file
from dl2424.errors import UserError

N, F, NF, NH, K = 5, 4, 2, 6, 10  # the course file: 5 images, f = 4, nf = 2


def debug_conv_info(seed=0):
    """Every array of the hand-out's file, computed the hand-out's way: column-per-image
    layout, a loop over patches for the convolution, then its forward and backward pass."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3072, N))
    Fs = rng.standard_normal((F, F, 3, NF)) / 7
    X_ims = np.transpose(X.reshape((32, 32, 3, N), order="F"), (1, 0, 2, 3))
    conv = np.zeros((32 // F, 32 // F, NF, N))
    for i in range(N):
        for r in range(32 // F):
            for c in range(32 // F):
                patch = X_ims[r * F:(r + 1) * F, c * F:(c + 1) * F, :, i]
                for k in range(NF):
                    conv[r, c, k, i] = np.sum(np.multiply(patch, Fs[:, :, :, k]))
    n_p = (32 // F) ** 2
    conv_flat = np.fmax(conv.reshape((n_p * NF, N), order="C"), 0)
    W1 = rng.standard_normal((NH, n_p * NF)) / 10
    W2, b1, b2 = (rng.standard_normal((K, NH)) / 3, rng.standard_normal((NH, 1)) / 10,
                  rng.standard_normal((K, 1)) / 10)
    X1 = np.maximum(W1 @ conv_flat + b1, 0)
    s = W2 @ X1 + b2
    P = np.exp(s - s.max(axis=0)) / np.exp(s - s.max(axis=0)).sum(axis=0)
    Y = np.eye(K)[:, rng.integers(0, K, N)]
    G = -(Y - P)
    grad_W2, grad_b2 = G @ X1.T / N, G.mean(axis=1, keepdims=True)
    G = (W2.T @ G) * (X1 > 0)
    grad_W1, grad_b1 = G @ conv_flat.T / N, G.mean(axis=1, keepdims=True)
    G = (W1.T @ G) * (conv_flat > 0)
    GG = G.reshape((n_p, NF, N), order="C")
    MX = np.zeros((n_p, F * F * 3, N))
    for i in range(N):
        for l in range(n_p):
            r, c = divmod(l, 32 // F)
            MX[l, :, i] = X_ims[r * F:(r + 1) * F, c * F:(c + 1) * F, :, i].reshape(-1)
    grad_Fs_flat = np.einsum("jin,jln->il", MX, GG) / N
    return dict(X=X, Fs=Fs, conv_outputs=conv, conv_flat=conv_flat, W1=W1, b1=b1, W2=W2,
                b2=b2, X1=X1, P=P, Y=Y, grad_Fs_flat=grad_Fs_flat, grad_W1=grad_W1,
                grad_b1=grad_b1, grad_W2=grad_W2, grad_b2=grad_b2)


def write(tmp_path, arrays, name="debug_conv_info.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_a_correct_file_reproduces_every_array(tmp_path):
    arrays = debug_conv_info()
    result = check_debug_file(write(tmp_path, arrays))
    assert (result.n, result.f, result.nf) == (N, F, NF)
    assert set(result.diffs) == set(arrays) - {"X", "Fs", "W1", "b1", "W2", "b2", "Y"}
    assert result.ok() and max(result.diffs.values()) < 1e-12


def test_only_the_required_keys_check_the_convolution(tmp_path):
    arrays = debug_conv_info()
    result = check_debug_file(write(tmp_path, {k: arrays[k] for k in ("X", "Fs",
                                                                     "conv_outputs")}))
    assert list(result.diffs) == ["conv_outputs"] and result.ok()


def test_a_wrong_conv_output_and_a_wrong_gradient_are_reported(tmp_path):
    arrays = debug_conv_info()
    arrays["conv_outputs"][3, 1, 1, 2] += 0.25
    arrays["grad_W1"] = arrays["grad_W1"] * 1.001
    result = check_debug_file(write(tmp_path, arrays))
    assert result.diffs["conv_outputs"] == pytest.approx(0.25)
    assert result.diffs["grad_W1"] > 1e-8 and result.diffs["grad_W2"] < 1e-12
    assert not result.ok()


def test_a_transposed_patch_order_is_caught(tmp_path):
    """Patches enumerated column-major instead of row-major give other outputs."""
    arrays = debug_conv_info()
    arrays["conv_outputs"] = arrays["conv_outputs"].transpose(1, 0, 2, 3).copy()
    assert check_debug_file(write(tmp_path, arrays)).diffs["conv_outputs"] > 1e-3


def test_a_missing_key_is_a_user_error(tmp_path):
    arrays = debug_conv_info()
    del arrays["Fs"]
    path = write(tmp_path, arrays)
    with pytest.raises(UserError, match=re.escape(str(path)) + ".*missing key.*Fs"):
        check_debug_file(path)


def test_a_key_of_the_wrong_shape_is_a_user_error(tmp_path):
    arrays = debug_conv_info()
    arrays["conv_outputs"] = arrays["conv_outputs"][:, :, :, :3]
    with pytest.raises(UserError, match=r"conv_outputs should be 8 x 8 x 2 x 5"):
        check_debug_file(write(tmp_path, arrays))


def test_cli_prints_the_table_and_exits_by_the_result(tmp_path):
    arrays = debug_conv_info()
    good = write(tmp_path, arrays)
    out = CliRunner().invoke(app, ["convcheck", str(good)])
    assert out.exit_code == 0, out.output
    assert "f=4, nf=2" in out.output and "grad_Fs_flat" in out.output
    arrays["P"] = arrays["P"] + 1e-6
    out = CliRunner().invoke(app, ["convcheck", str(write(tmp_path, arrays, "bad.npz"))])
    assert out.exit_code == 1 and "FAIL" in out.output


def test_cli_on_a_file_that_is_not_npz_exits_2(tmp_path):
    path = tmp_path / "debug_conv_info.npz"
    path.write_text("not an archive")
    out = CliRunner().invoke(app, ["convcheck", str(path)])
    assert out.exit_code == 2 and "not a readable NumPy .npz file" in out.output
    assert "Traceback" not in out.output
