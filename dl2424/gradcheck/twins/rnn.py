"""Torch twins of the recurrent models (dl2424/models/rnn.py): the cells written step by step
in torch, the language model's sequence loss built here, the classifier's through ctx.cost."""

import numpy as np

from ..torch_ref import TWINS, TwinContext


def _states(ctx: TwinContext, model, X, P):
    """The hidden states h_1..h_T (a list of (B, m) tensors) from a zero state."""
    torch = ctx.torch
    B, T = X.shape
    m = model.m
    h = c = torch.zeros(B, m, dtype=torch.float64)
    idx = torch.as_tensor(np.asarray(X, dtype=np.int64))
    out = []
    for t in range(T):
        a = P["U"][idx[:, t]] + h @ P["W"] + P["b"]
        if model.cell == "rnn":
            h = torch.tanh(a)
        else:
            i, f, o = (torch.sigmoid(a[:, k * m:(k + 1) * m]) for k in range(3))
            c = f * c + i * torch.tanh(a[:, 3 * m:])
            h = o * torch.tanh(c)
        out.append(h)
    return out


@TWINS.register("rnn")
def rnn_twin(ctx: TwinContext, model, X, P):
    """Character language model: cell over the sequence, softmax cross-entropy per step."""
    torch = ctx.torch
    H = torch.stack(_states(ctx, model, X, P))  # (T, B, m)
    logp = torch.log_softmax(H @ P["V"] + P["c"], dim=2)
    y = torch.as_tensor(np.asarray(ctx.problem.target, dtype=np.int64).T)  # (T, B)
    mask = (y >= 0).to(torch.float64)
    nll = -(logp.gather(2, y.clamp(min=0)[..., None])[..., 0] * mask).sum()
    loss = nll / (mask.sum() if model.reduction == "mean" else X.shape[0])
    return loss + ctx.penalty()


@TWINS.register("rnn_classifier")
def rnn_classifier_twin(ctx: TwinContext, model, X, P):
    """Surname classifier: the hidden state after each name's last character, then V, c."""
    torch = ctx.torch
    H = torch.stack(_states(ctx, model, np.minimum(X, model.d - 1), P))
    last = np.maximum((X < model.d).sum(axis=1) - 1, 0)
    h = H[torch.as_tensor(last), torch.arange(X.shape[0])]
    return ctx.cost(h @ P["V"] + P["c"])
