"""Check the MF / MX construction against the course's DebugInfo.mat (Assignment 3, 2020).
(A .npz file is the 2026 patchify ConvNet's debug_conv_info.npz: see dl2424.patchcheck.)

The file holds one name X_input (d, n_len) one-hot and x_input = vec(X_input), filters
F (d, k, n_f) and vecF = vec(F), and the expected response S (n_f, n_len - k + 1) and
vecS = vec(S). Both MF x_input and MX vecF must give vecS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .nn.charconv_ref import make_mf_matrix, make_mx_matrix, vec

FIELDS = ("X_input", "x_input", "F", "vecF", "S", "vecS")


@dataclass(frozen=True)
class ConvCheck:
    """Max absolute differences of each product from each expected response."""

    path: Path
    d: int
    k: int
    n_f: int
    n_len: int
    mf_vs_vecS: float
    mf_vs_S: float
    mx_vs_vecS: float
    mx_vs_S: float

    def rows(self):
        """(product, expected, max |difference|) for each comparison."""
        return [("MF · x_input", "vecS", self.mf_vs_vecS), ("MF · x_input", "vec(S)", self.mf_vs_S),
                ("MX · vecF", "vecS", self.mx_vs_vecS), ("MX · vecF", "vec(S)", self.mx_vs_S)]

    def ok(self, tol: float = 1e-10) -> bool:
        return all(diff <= tol for _, _, diff in self.rows())

    def describe(self) -> str:
        return f"d={self.d}, k={self.k}, n_f={self.n_f}, n_len={self.n_len}"


def _load(path: Path) -> dict:
    from scipy.io import loadmat  # imported here: keeps the CLI quick to start

    if not path.is_file():
        raise UserError(f"{path}: no such file; pass the DebugInfo.mat from the course page")
    try:
        data = loadmat(path)
    except Exception as e:  # scipy raises several types for a damaged or foreign file
        raise UserError(f"{path}: not a readable MATLAB .mat file ({e})") from None
    require(path, data, FIELDS, "field", "a DebugInfo.mat")
    out = {}
    for f in FIELDS:
        a = data[f].toarray() if hasattr(data[f], "toarray") else data[f]  # MATLAB sparse
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf" or a.size == 0:
            raise UserError(f"{path}: field {f} is not a numeric array")
        out[f] = a.astype(np.float64)
    return out


def require(path, data, names, word: str, what: str) -> None:
    """One UserError naming every missing field (key) of a debug file."""
    missing = [k for k in names if k not in data]
    if missing:
        raise UserError(f"{path}: missing {word}(s) {', '.join(missing)}; "
                        f"{what} needs {', '.join(names)}")


def _expect(path, field, ok, what):
    if not ok:
        raise UserError(f"{path}: field {field} {what}")


def check_debug_file(path):
    """Reads DebugInfo.mat and compares MF x_input and MX vecF with vecS and S; a .npz file
    is the 2026 patchify debug file instead (dl2424.patchcheck)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        from .patchcheck import check_patch_file

        return check_patch_file(path)
    a = _load(path)
    F = a["F"] if a["F"].ndim == 3 else a["F"].reshape(*a["F"].shape[:2], 1)  # MATLAB drops n_f = 1
    _expect(path, "F", F.ndim == 3, f"should be d x k x n_f, got shape {a['F'].shape}")
    d, k, n_f = F.shape
    X = a["X_input"]
    _expect(path, "X_input", X.ndim == 2 and X.shape[0] == d and X.shape[1] >= k,
            f"should be {d} x n_len with n_len >= {k} (F is {d}x{k}x{n_f}), got {X.shape}")
    n_len = X.shape[1]
    n_out = n_len - k + 1
    sizes = {"x_input": d * n_len, "vecF": d * k * n_f, "vecS": n_f * n_out}
    for field, size in sizes.items():
        _expect(path, field, a[field].size == size, f"should have {size} entries, "
                f"got shape {a[field].shape}")
    _expect(path, "S", a["S"].shape == (n_f, n_out),
            f"should be {n_f} x {n_out}, got shape {a['S'].shape}")
    x_input, vecF, vecS = a["x_input"].ravel(), a["vecF"].ravel(), a["vecS"].ravel()
    mf = make_mf_matrix(F, n_len) @ x_input
    mx = make_mx_matrix(x_input, d, k, n_f) @ vecF
    S = vec(a["S"])
    return ConvCheck(path, d, k, n_f, n_len,
                     mf_vs_vecS=float(np.abs(mf - vecS).max()),
                     mf_vs_S=float(np.abs(mf - S).max()),
                     mx_vs_vecS=float(np.abs(mx - vecS).max()),
                     mx_vs_S=float(np.abs(mx - S).max()))
