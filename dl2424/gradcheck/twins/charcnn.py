"""Torch twin of the surname ConvNet (dl2424/models/charcnn.py): conv1d over one-hot names."""

import numpy as np

from ..torch_ref import TWINS, TwinContext


@TWINS.register("charcnn")
def charcnn_twin(ctx: TwinContext, model, X, P):
    """conv1d (stride, padding, dilation, bias) -> ReLU -> max-pool per layer, dropout, W."""
    F = ctx.torch.nn.functional
    onehot = np.eye(model.d + 1)[X][:, :, :model.d]  # padding index d: an all-zero column
    h = ctx.tensor(onehot).transpose(1, 2)  # (n, d, n_len): channels first, as torch wants
    for l, spec in enumerate(model.specs, 1):
        weight = P[f"F{l}"].permute(2, 1, 0)  # (k, c_in, c_out) -> (c_out, c_in, k)
        h = F.conv1d(h, weight, P.get(f"b{l}"), spec.stride, spec.pad, spec.dilation)
        h = F.relu(h)
        if spec.pool > 1:
            h = F.max_pool1d(h, spec.pool, spec.pool_step)
    flat = h.transpose(1, 2).reshape(h.shape[0], -1)  # position-major, filter fastest
    flat = ctx.dropout(flat, model.keep)
    scores = flat @ P["W"] + (P["bW"] if "bW" in P else 0)
    return ctx.cost(scores)
