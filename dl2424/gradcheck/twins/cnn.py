"""Torch twin of the image ConvNet (dl2424/models/cnn.py)."""

from ...models.cnn import PAD
from ..torch_ref import TWINS, TwinContext


@TWINS.register("cnn")
def cnn_twin(ctx: TwinContext, model, X, P):
    """3x3 conv [+ BN] + activation blocks and max-pools, then dropout + affine layers."""
    F, p = ctx.torch.nn.functional, model.p
    h = ctx.tensor(X).reshape(X.shape[0], *model.image_shape)
    for kind, l in model.blocks:
        if kind == "pool":
            h = F.max_pool2d(h, *model.pool)
            continue
        h = F.conv2d(h, P[f"F{l}"], P.get(f"b{l}"), 1, PAD)
        if p.batchnorm:
            h = ctx.batchnorm(h, f"bn{l}", P[f"gamma{l}"], P[f"beta{l}"], p.bn_eps)
        h = ctx.activation(h, p.activation, p.leaky_slope)
    h = h.reshape(h.shape[0], -1)
    for j in range(1, model.n_fc + 1):
        h = ctx.dropout(h, p.keep)
        h = h @ P[f"W{j}"] + P[f"bW{j}"]
        if j < model.n_fc:
            h = ctx.activation(h, p.activation, p.leaky_slope)
    return ctx.cost(h)
