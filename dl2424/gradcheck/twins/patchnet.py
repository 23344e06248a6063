"""Torch twin of the patchify ConvNet (dl2424/models/patchnet.py)."""

from ..torch_ref import TWINS, TwinContext


@TWINS.register("patchnet")
def patchnet_twin(ctx: TwinContext, model, X, P):
    """conv2d with stride f (+ bias) + ReLU, flattened patch-major, affine + ReLU, affine."""
    F = ctx.torch.nn.functional
    x = ctx.tensor(X).reshape(X.shape[0], *model.image_shape)
    w = P["F"].permute(3, 2, 0, 1)  # (f, f, C, nf) -> torch's (nf, C, f, f)
    h = F.relu(F.conv2d(x, w, P.get("bF"), stride=w.shape[-1]))
    h = h.permute(0, 2, 3, 1).reshape(X.shape[0], -1)  # patch-major, filter fastest
    x1 = F.relu(h @ P["W1"] + P["b1"])
    return ctx.cost(x1 @ P["W2"] + P["b2"])
