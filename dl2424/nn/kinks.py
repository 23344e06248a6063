"""Where a network is not differentiable: the branch choices of non-smooth layers.

ReLU, LeakyReLU, max-pooling and the hinge (SVM) loss are piecewise smooth: an input that
crosses 0, or a window whose maximum changes hands, switches the piece. A finite difference
whose two points J(theta + h) and J(theta - h) lie on different pieces is not a derivative,
whatever the backward pass does.

Each such layer reports the discrete choice of its forward pass here: `note_sign` for a
"which side of 0" choice, `note_choice` for "which element won". Outside a `recording()`
block a report costs one global lookup. The gradient check (dl2424.gradcheck) records both
evaluations of every finite difference and compares the choices: a difference means the
step crossed a kink of that kind. A new non-smooth layer must report its choices too (and
add its kind to KINDS), or the check cannot tell its kinks from bugs.
"""

from __future__ import annotations

import contextlib

import numpy as np

KINDS = ("relu", "maxpool", "hinge")  # LeakyReLU reports as "relu": the same kind of kink

_log: list | None = None


@contextlib.contextmanager
def recording():
    """Collect the choices of every forward pass run inside the block, in call order.

    Yields the list of (kind, choice) pairs; choice is a bool array or a tuple of arrays.
    """
    global _log
    previous, _log = _log, []
    try:
        yield _log
    finally:
        _log = previous


def recording_active() -> bool:
    """True inside a `recording()` block (layers that split work over threads then keep
    their reports in call order)."""
    return _log is not None


def note_sign(kind: str, x) -> None:
    """Report the sides of 0 of x (the input of a ReLU, the margins of a hinge)."""
    if _log is not None:
        _log.append((kind, x > 0))


def note_choice(kind: str, *winners) -> None:
    """Report which elements won (max-pool argmax or winner masks); the arrays are copied."""
    if _log is not None:
        _log.append((kind, tuple(np.array(w, copy=True) for w in winners)))


def crossed(a: list, b: list) -> set[str]:
    """The kinds whose choices differ between two recordings of the same network."""
    if len(a) != len(b):
        raise ValueError("the two recordings come from different networks")
    kinds = set()
    for (kind, ca), (_, cb) in zip(a, b, strict=True):
        if kind in kinds:
            continue
        same = (np.array_equal(ca, cb) if isinstance(ca, np.ndarray)
                else all(np.array_equal(x, y) for x, y in zip(ca, cb, strict=True)))
        if not same:
            kinds.add(kind)
    return kinds
