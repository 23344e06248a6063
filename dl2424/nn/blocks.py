"""The blocks the models compose, as forward/backward pairs with explicit caches.

- norm_act: [batch norm before] -> activation -> [batch norm after]; after an affine map
  (MLP hidden layers) or a convolution (image ConvNet), with the activation optional.
- dense: [dropout on its input] -> affine map -> norm_act; the MLP's layers, the image
  ConvNet's fully connected head and the surname ConvNet's output layer.

A block's configuration is a `Block`; its parameters come as arrays (each model names them),
and batch norm as (gamma, beta, state) or None.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import batchnorm, layers


@dataclass(frozen=True)
class Block:
    activation: str | None = None  # "relu" | "leaky_relu" | None (a linear layer)
    slope: float = 0.0  # of leaky_relu
    keep: float = 1.0  # dropout keep probability on the block's input (dense only)
    bn: str = "before"  # where batch norm goes, given its parameters: before/after activation
    bn_eps: float = 1e-5
    bn_alpha: float = 0.9


def norm_act_forward(x, block: Block, bn=None, train: bool = True):
    """bn: (gamma, beta, state) of this layer's batch norm, or None for none."""
    c_bn1 = c_act = c_bn2 = None
    if bn is not None and block.bn == "before":
        x, c_bn1 = batchnorm.batchnorm_forward(x, *bn, train, block.bn_eps, block.bn_alpha)
    if block.activation is not None:
        x, c_act = layers.activation_forward(x, block.activation, block.slope)
    if bn is not None and block.bn == "after":
        x, c_bn2 = batchnorm.batchnorm_forward(x, *bn, train, block.bn_eps, block.bn_alpha)
    return x, (c_bn1, c_act, c_bn2)


def norm_act_backward(dout, cache):
    """Returns (dx, dgamma, dbeta); the last two are None without batch norm."""
    c_bn1, c_act, c_bn2 = cache
    dgamma = dbeta = None
    if c_bn2 is not None:
        dout, dgamma, dbeta = batchnorm.batchnorm_backward(dout, c_bn2)
    if c_act is not None:
        dout = layers.activation_backward(dout, c_act)
    if c_bn1 is not None:
        dout, dgamma, dbeta = batchnorm.batchnorm_backward(dout, c_bn1)
    return dout, dgamma, dbeta


def dense_forward(x, W, b, block: Block, bn=None, train: bool = True, rng=None):
    """Dropout (training only, keep < 1) on x, then x W + b (b may be None), then norm_act."""
    c_drop = None
    if train and block.keep < 1:
        x, c_drop = layers.dropout_forward(x, block.keep, rng)
    x, c_aff = layers.affine_forward(x, W, b)
    x, c_na = norm_act_forward(x, block, bn, train)
    return x, (c_drop, c_aff, c_na)


def dense_backward(dout, cache, input_grad: bool = True):
    """Returns (dx, dW, db, dgamma, dbeta); dx is None without input_grad (a first layer,
    whose input is the data)."""
    c_drop, c_aff, c_na = cache
    ds, dgamma, dbeta = norm_act_backward(dout, c_na)
    if not input_grad:
        dW, db = layers.affine_backward_params(ds, c_aff)
        return None, dW, db, dgamma, dbeta
    dx, dW, db = layers.affine_backward(ds, c_aff)
    if c_drop is not None:
        dx = layers.dropout_backward(dx, c_drop)
    return dx, dW, db, dgamma, dbeta
