"""Torch twin of the fully connected network (dl2424/models/mlp.py)."""

from ..torch_ref import TWINS, TwinContext


@TWINS.register("mlp")
def mlp_twin(ctx: TwinContext, model, X, P):
    """affine -> [BN] -> activation -> [BN] -> dropout per hidden layer, affine scores."""
    p, x = model.p, ctx.tensor(X)
    for l in range(1, model.n_layers):
        x = x @ P[f"W{l}"] + (P[f"b{l}"] if f"b{l}" in P else 0)
        if p.batchnorm and p.bn_placement == "before":
            x = ctx.batchnorm(x, f"bn{l}", P[f"gamma{l}"], P[f"beta{l}"], p.bn_eps)
        x = ctx.activation(x, p.activation, p.leaky_slope)
        if p.batchnorm and p.bn_placement == "after":
            x = ctx.batchnorm(x, f"bn{l}", P[f"gamma{l}"], P[f"beta{l}"], p.bn_eps)
        x = ctx.dropout(x, p.keep)
    L = model.n_layers
    return ctx.cost(x @ P[f"W{L}"] + P[f"b{L}"])
