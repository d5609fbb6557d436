"""The inner loop shared by the MAML family and Reptile: plain gradient steps."""

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple, Union

import torch


@dataclass(frozen=True)
class InnerLoop:
    """How a task adapts: ``steps`` gradient steps of size ``lr`` on its support loss.

    Parameters
    ----------
    lr : float or dict of str to Tensor
        Inner learning rate; a dict gives one (possibly learned) rate per parameter
        tensor, as in Meta-SGD.
    steps : int
        Number of gradient steps.
    first_order : bool, default=False
        Treat the inner gradients as constants (first-order MAML): the meta-gradient
        ignores second derivatives.
    adapt_names : tuple of str or None, default=None
        Names of the parameters that adapt (None: all). ANIL adapts only the head.
    checkpoint : bool, default=False
        Second-order meta-gradients only, eager strategies: recompute each inner
        step's graph during the meta-backward pass (:mod:`torch.utils.checkpoint`)
        instead of keeping all ``steps`` graphs. Exact; the memory of the inner loop
        no longer grows with ``steps``, for about one more support forward and
        backward per step.
    """

    lr: Union[float, Mapping[str, torch.Tensor]]
    steps: int
    first_order: bool = False
    adapt_names: Optional[Tuple[str, ...]] = None
    checkpoint: bool = False


def split_adapted(params, adapt_names):
    """``(shared, fast)``: the tensors that stay fixed in the inner loop, and those that adapt."""
    names = tuple(params) if adapt_names is None else tuple(adapt_names)
    shared = {k: v for k, v in params.items() if k not in names}
    return shared, {k: params[k] for k in names}


def _lr_for(lr, name):
    return lr[name] if isinstance(lr, Mapping) else lr


def sgd_adapt(ctx, shared, fast, X, y, config, differentiable=True):
    """``config.steps`` gradient steps on the support loss, from ``fast``.

    Parameters
    ----------
    ctx : engine context
    shared : dict of str to Tensor
        Tensors the network uses but the inner loop does not change.
    fast : dict of str to Tensor
        Starting values of the adapted tensors (one per task: ``ctx.task_view``).
    X, y : Tensor
        The support set.
    config : InnerLoop
    differentiable : bool, default=True
        Keep the graph from ``fast`` to the adapted tensors (MAML's meta-gradient);
        False for Reptile, whose update needs the values only.

    Returns
    -------
    adapted : dict of str to Tensor
    first_grad_norm : Tensor
        Norm of the first step's gradient (per task), for ``meta_history_``.
    """
    names = list(fast)

    def support_loss(weights):
        return ctx.loss(weights, shared, X, y)

    def step(want_norm, *weights):
        current = dict(zip(names, weights))
        grads = ctx.gradients(support_loss, current, create_graph=not config.first_order,
                              differentiable=differentiable)
        squares = ctx.squared_norm(grads) if want_norm else None
        new = tuple(current[k] - _lr_for(config.lr, k) * grads[k] for k in names)
        return new, squares

    checkpointed = differentiable and config.checkpoint and not config.first_order
    weights, first_squares = tuple(fast.values()), None
    for i in range(config.steps):
        if checkpointed:
            weights, squares = ctx.checkpoint(step, i == 0, *weights)
        else:
            weights, squares = step(i == 0, *weights)
        if i == 0:
            first_squares = squares
    if first_squares is None:  # steps == 0
        first_squares = ctx.zero_norm(X)
    return dict(zip(names, weights)), torch.sqrt(first_squares)
