"""Update rules. Each optimizer updates params in place from grads and keeps its own state.

State is a flat dict of arrays keyed "<slot>.<param>" (plus scalars as 0-d arrays), so a
checkpoint can store it as it is. The learning rate comes from the schedule every step.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from .nn import parallel
from .registry import OPTIMIZERS, Params


class SGDParams(Params):
    lr: float | None = Field(None, gt=0, description="base learning rate (constant/step schedules)")


class MomentumParams(SGDParams):
    rho: float = Field(0.9, ge=0, lt=1)


class AdamParams(SGDParams):
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)


class AdaGradParams(SGDParams):
    eps: float = Field(1e-8, gt=0, description="added under the square root (A4: 1e-8)")


class RMSPropParams(AdaGradParams):
    gamma: float = Field(0.9, ge=0, lt=1, description="decay of the squared-gradient average")


class Optimizer:
    """An update rule; a subclass registers itself in OPTIMIZERS, built as Cls(params)."""

    def __init__(self, p):
        self.p = p
        self.state: dict[str, np.ndarray] = {}

    def slot(self, name: str, key: str, like: np.ndarray) -> np.ndarray:
        """The state array `name` of parameter `key`, laid out in memory as the parameter is
        (np.zeros_like; a slot restored from a checkpoint is copied into that layout)."""
        k = f"{name}.{key}"
        slot = self.state.get(k)
        if slot is None:
            slot = self.state[k] = np.zeros_like(like)
        elif slot.strides != like.strides:
            self.state[k] = np.empty_like(like)
            self.state[k][...] = slot
            slot = self.state[k]
        return slot

    def step(self, params: dict, grads: dict, lr: float) -> None:
        for k, w in params.items():
            self.update(k, w, grads[k], w.dtype.type(lr))

    def update(self, key: str, w: np.ndarray, dw: np.ndarray, lr) -> None:
        raise NotImplementedError


@OPTIMIZERS.register("sgd", SGDParams)
class SGD(Optimizer):
    """Plain mini-batch gradient descent: w <- w - lr dw."""

    def update(self, key, w, dw, lr):
        w -= lr * dw


@OPTIMIZERS.register("momentum", MomentumParams)
class Momentum(Optimizer):
    """SGD with momentum rho: v <- rho v + lr dw, w <- w - v."""

    # (A2 2017 hand-out form)
    def update(self, key, w, dw, lr):
        v = self.slot("v", key, w)
        v *= w.dtype.type(self.p.rho)
        v += lr * dw
        w -= v


@OPTIMIZERS.register("nesterov", MomentumParams)
class Nesterov(Optimizer):
    """Nesterov accelerated gradient with momentum rho."""

    # Sutskever et al. 2013 in the "look-ahead" form of CS231n's optim.py:
    # v' = rho v - lr dw;  w <- w - rho v + (1 + rho) v'
    def update(self, key, w, dw, lr):
        v = self.slot("v", key, w)
        rho = w.dtype.type(self.p.rho)
        v_prev = v.copy()
        v *= rho
        v -= lr * dw
        w += (1 + rho) * v - rho * v_prev


@OPTIMIZERS.register("adam", AdamParams)
class Adam(Optimizer):
    """Adam (beta1, beta2, eps) with bias correction."""

    # Kingma & Ba 2015, Algorithm 1, bias-corrected moments, eps added to sqrt(v) (their
    # "more efficient" ordering, eps scaled by the correction).
    BLOCK = 1 << 15  # elements per block: w, dw, m, v and two scratch rows stay in L2

    def step(self, params, grads, lr):
        t = self.state.setdefault("t", np.zeros((), dtype=np.int64))
        t += 1
        super().step(params, grads, lr)

    def update(self, key, w, dw, lr):
        m, v = self.slot("m", key, w), self.slot("v", key, w)
        b1, b2 = self.p.beta1, self.p.beta2
        t = int(self.state["t"])
        step = w.dtype.type(lr * np.sqrt(1 - b2**t) / (1 - b1**t))
        c = [w.dtype.type(x) for x in (b1, 1 - b1, b2, 1 - b2, self.p.eps)]
        flat = [memory_order(a, w) for a in (w, dw, m, v)]
        if not all(np.shares_memory(f, a) for f, a in ((flat[0], w), (flat[2], m), (flat[3], v))):
            # w is not a permuted contiguous array: one pass per operation on the whole
            _adam_block(w, dw, m, v, step, c, np.empty_like(w), np.empty_like(w))
            return
        # Block by block, so that the eleven passes below read each block from the cache
        # (one pass over the whole arrays each is ~1.5x slower on a 9M-parameter model);
        # the blocks are cut in two halves run on two threads (nn.parallel): each element's
        # update is independent, so the thread count changes nothing.
        size, block = w.size, min(w.size, self.BLOCK)
        halves = parallel.parts(-(-size // block))

        def run(i):
            bufs = self._bufs(i, block, w.dtype)
            for s in range(halves[i].start * block, min(halves[i].stop * block, size), block):
                part = slice(s, min(s + block, size))
                _adam_block(*(a[part] for a in flat), step, c,
                            *(b[: part.stop - s] for b in bufs))

        parallel.map_parts(run, range(len(halves)))

    def _bufs(self, i, size, dtype):
        """Scratch rows of part i (each thread has its own)."""
        scratch = self.__dict__.setdefault("_scratch", {})
        b = scratch.get(i)
        if b is None or b[0].size < size or b[0].dtype != dtype:
            b = scratch[i] = (np.empty(size, dtype), np.empty(size, dtype))
        return b


def memory_order(a, like):
    """a's entries as a flat array in the order `like` holds its entries in memory: a view
    when a is laid out as `like` is (the image ConvNet keeps its filters (F, C, kh, kw)
    with C innermost in memory), else a copy (only ever read)."""
    order = sorted(range(like.ndim), key=lambda d: -like.strides[d])
    return a.transpose(order).reshape(-1)


def _adam_block(w, dw, m, v, step, c, buf, buf2):
    """One block of the Adam update, in place, in the operation order of
        m <- b1 m + (1 - b1) dw;  v <- b2 v + (1 - b2) dw dw;  w <- w - step m / (sqrt(v) + eps)
    (step = lr sqrt(1 - b2^t) / (1 - b1^t)); c = (b1, 1 - b1, b2, 1 - b2, eps)."""
    b1, c1, b2, c2, eps = c
    m *= b1
    np.multiply(dw, c1, out=buf)
    m += buf
    v *= b2
    np.multiply(dw, c2, out=buf)
    buf *= dw
    v += buf
    np.sqrt(v, out=buf)
    buf += eps
    np.multiply(m, step, out=buf2)
    np.divide(buf2, buf, out=buf)
    w -= buf


def _scaled_step(w, dw, m, lr, eps, buf):
    """w <- w - lr dw / sqrt(m + eps), through one scratch buffer (no temporaries)."""
    np.add(m, eps, out=buf)
    np.sqrt(buf, out=buf)
    np.divide(dw, buf, out=buf)
    buf *= lr
    w -= buf


@OPTIMIZERS.register("adagrad", AdaGradParams)
class AdaGrad(Optimizer):
    """AdaGrad (A4): per-weight steps lr / sqrt(sum of squared gradients + eps)."""

    # A4 hand-out: m <- m + g^2;  w <- w - lr g / sqrt(m + eps)
    def update(self, key, w, dw, lr):
        m, buf = self.slot("m", key, w), self._buf(w)
        np.multiply(dw, dw, out=buf)
        m += buf
        _scaled_step(w, dw, m, lr, w.dtype.type(self.p.eps), buf)

    def _buf(self, w):
        b = getattr(self, "_scratch", None)
        if b is None or b.shape != w.shape or b.dtype != w.dtype:
            b = self._scratch = np.empty_like(w)
        return b


@OPTIMIZERS.register("rmsprop", RMSPropParams)
class RMSProp(AdaGrad):
    """RMSProp: steps lr / sqrt(running average of squared gradients (gamma) + eps)."""

    # m <- gamma m + (1 - gamma) g^2;  w <- w - lr g / sqrt(m + eps)
    def update(self, key, w, dw, lr):
        m, buf = self.slot("m", key, w), self._buf(w)
        m *= w.dtype.type(self.p.gamma)
        np.multiply(dw, dw, out=buf)
        buf *= w.dtype.type(1 - self.p.gamma)
        m += buf
        _scaled_step(w, dw, m, lr, w.dtype.type(self.p.eps), buf)
