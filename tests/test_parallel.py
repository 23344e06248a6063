"""The image ConvNet's batch parts on threads: order, errors, and the same numbers at 1 and 2
threads."""

import threading

import numpy as np
import pytest

import dl2424.models.cnn  # noqa: F401  (registers the model)
from dl2424.data.bundle import DataInfo
from dl2424.errors import UserError
from dl2424.nn import parallel, winograd
from dl2424.registry import MODELS


@pytest.fixture
def threads():
    yield parallel.set_threads
    parallel.set_threads(None)


def test_parts_cover_the_batch_in_order():
    assert parallel.parts(7) == [slice(0, 3), slice(3, 7)]
    assert parallel.parts(1) == [slice(0, 1)]


def test_map_parts_runs_on_two_threads_in_order(threads):
    threads(2)
    barrier = threading.Barrier(2, timeout=10)  # both parts must be running at once

    def part(i):
        barrier.wait()
        return i, threading.get_ident()

    out = parallel.map_parts(part, range(2))
    assert [i for i, _ in out] == [0, 1]
    assert out[0][1] != out[1][1]


def test_map_parts_raises_a_part_error(threads):
    threads(2)

    def part(i):
        if i == 1:
            raise ValueError("part 1")
        return i

    with pytest.raises(ValueError, match="part 1"):
        parallel.map_parts(part, range(2))


def test_bad_thread_setting_is_a_user_error(monkeypatch):
    monkeypatch.setenv("DL2424_THREADS", "two")
    with pytest.raises(UserError, match="DL2424_THREADS"):
        parallel.default_threads()
    monkeypatch.setenv("DL2424_THREADS", "3")
    assert parallel.default_threads() == 3


@pytest.mark.parametrize("keys", [
    {"layers": [4, "M", 6, "M"], "batchnorm": True},
    {"layers": [4, "M", 5, 3], "pool": {"kernel": 2, "stride": 2, "padding": 0}},
    {"layers": [4, "M"], "batchnorm": True, "activation": "leaky_relu"},
])
@pytest.mark.parametrize("forced", [None, "whole batch dW", "winograd"])
def test_one_and_two_threads_give_the_same_numbers(threads, keys, forced, monkeypatch):
    if forced == "whole batch dW":  # every im2col layer's dW in one product
        monkeypatch.setattr(dl2424.models.cnn, "WHOLE_BATCH_DW", 0)
    if forced == "winograd":  # every conv after the first through Winograd's algorithm
        monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
        monkeypatch.setattr(winograd, "MIN_SIDE", 2)
    info = DataInfo((3 * 8 * 8,), ["a", "b", "c"], {"image_shape": [3, 8, 8]})
    rng = np.random.default_rng(1)
    X = rng.standard_normal((7, 3 * 8 * 8)).astype(np.float32)
    y = rng.integers(0, 3, 7)
    results = []
    for n in (1, 2):
        threads(n)
        p = MODELS["cnn"].params.model_validate(keys)
        model = MODELS["cnn"].factory(p, info, np.dtype(np.float32), np.random.default_rng(0))
        loss, _, grads = model.loss(X, y, train=True)
        results.append((loss, grads, model.scores(X), dict(model.state)))
    (l1, g1, s1, st1), (l2, g2, s2, st2) = results
    assert l1 == l2
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])
    np.testing.assert_array_equal(s1, s2)
    for k in st1:
        np.testing.assert_array_equal(st1[k], st2[k])
