"""The inner loop shared by the MAML family and Reptile: plain gradient steps."""

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple, Union

import torch

from ..networks import batch_norm_step


@dataclass(frozen=True)
class InnerLoop:
    """How a task adapts: ``steps`` gradient steps of size ``lr`` on its support loss.

    Parameters
    ----------
    lr : float or dict of str to Tensor
        Inner learning rate; a dict gives (possibly learned) rates per parameter
        tensor: of the parameter's shape (one per element, Meta-SGD), a scalar, or,
        with ``lr_per_step``, one per step (MAML++'s per-layer per-step rates).
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
    lr_per_step : bool, default=False
        ``lr`` holds, for each parameter, a vector of per-step rates; steps beyond
        its length use its last rate (adaptation may take more steps than training).
    head_init : {"meta", "zero", "prototypes"}, default="meta"
        Classification: where the output layer starts each task's inner loop: the
        meta-learned values, zero (as in UnicornMAML), or the support set's class
        prototypes in the layer's input (Proto-MAML: weight ``2 c_k``, bias
        ``-||c_k||^2``); the last two make the start independent of label order.
    head : (layer, weight name, bias name), optional
        The output layer, for ``head_init``.
    n_classes : int, optional
        Number of output units, for ``head_init="prototypes"``. A class absent from the
        support set gets a zero prototype (weight and bias 0), which competes like a
        prototype at the origin: give every episode each class in its support set.
    optimizer : {"sgd", "adam"}, default="sgd"
        The inner steps: plain gradient steps, or Adam (``betas``, epsilon 1e-8) with a
        state that starts afresh for every task (Reptile's paper configuration).
    betas : (float, float), default=(0.0, 0.999)
        Adam's moment coefficients; beta1 = 0 as in the Reptile paper.
    per_step_bn : bool, default=False
        The network has per-step BatchNorm weights (MAML++,
        :func:`sklmeta.networks.per_step_batchnorm`): step ``i``'s support loss uses
        row ``i`` of them (:func:`sklmeta.networks.batch_norm_step`).
    """

    lr: Union[float, Mapping[str, torch.Tensor]]
    steps: int
    first_order: bool = False
    adapt_names: Optional[Tuple[str, ...]] = None
    checkpoint: bool = False
    lr_per_step: bool = False
    head_init: str = "meta"
    head: Optional[Tuple[str, str, str]] = None
    n_classes: Optional[int] = None
    optimizer: str = "sgd"
    betas: Tuple[float, float] = (0.0, 0.999)
    per_step_bn: bool = False


def at_step(config, step):
    """The context of inner step ``step`` for the network (per-step BatchNorm weights)."""
    return batch_norm_step(step if config.per_step_bn else None)


def split_adapted(params, adapt_names):
    """``(shared, fast)``: the tensors that stay fixed in the inner loop, and those that adapt."""
    names = tuple(params) if adapt_names is None else tuple(adapt_names)
    shared = {k: v for k, v in params.items() if k not in names}
    return shared, {k: params[k] for k in names}


def init_head(ctx, shared, fast, X, y, config):
    """``fast`` with the output layer set for this task (``config.head_init``)."""
    if config.head_init == "meta":
        return fast
    layer, weight, bias = config.head
    if weight not in fast or bias not in fast:
        raise ValueError("head_init needs the output layer to adapt (adapt_params).")
    if config.head_init == "zero":
        # "* 0" rather than zeros_like: the inner loop differentiates with respect to them
        return {**fast, weight: fast[weight] * 0, bias: fast[bias] * 0}
    # Proto-MAML (Triantafillou et al., 2020): the nearest-prototype classifier as a
    # linear layer, differentiable through the prototypes for the meta-gradient
    with at_step(config, 0):
        embedding = ctx.embedding(fast, shared, X, layer)  # [(tasks,) n, d]
    one_hot = torch.nn.functional.one_hot(y, config.n_classes).to(embedding.dtype)
    counts = one_hot.sum(-2).clamp(min=1).unsqueeze(-1)
    prototypes = one_hot.transpose(-1, -2) @ embedding / counts  # [(tasks,) classes, d]
    # The inner loop must differentiate with respect to the head as a parameter of its
    # own. torch.autograd.grad with respect to a body tensor would also follow the path
    # body -> prototypes -> head (a total derivative, unlike torch.func.grad): so the
    # inner loop gets new nodes for the body, which the prototypes do not depend on.
    body = {k: v.view_as(v) for k, v in fast.items() if k not in (weight, bias)}
    return {**body, weight: 2 * prototypes, bias: -(prototypes ** 2).sum(-1)}


def _lr_for(config, name, step):
    lr = config.lr
    if not isinstance(lr, Mapping):
        return lr
    if config.lr_per_step:
        return lr[name][min(step, lr[name].shape[0] - 1)]
    return lr[name]


def sgd_adapt(ctx, shared, fast, X, y, config, differentiable=True, trajectory=False):
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

    trajectory : bool, default=False
        Return the adapted tensors after every step (a list), not only the last
        (MAML++'s multi-step loss reads them).

    Returns
    -------
    adapted : dict of str to Tensor, or list of them with ``trajectory``
    first_grad_norm : Tensor
        Norm of the first step's gradient (per task), for ``meta_history_``.
    """
    fast = init_head(ctx, shared, fast, X, y, config)
    names = list(fast)

    def support_loss(i):
        def loss(weights):
            # inside the function differentiated (and recomputed by checkpointing)
            with at_step(config, i):
                return ctx.loss(weights, shared, X, y)
        return loss

    def step(i, *weights):
        current = dict(zip(names, weights))
        grads = ctx.gradients(support_loss(i), current, create_graph=not config.first_order,
                              differentiable=differentiable)
        squares = ctx.squared_norm(grads) if i == 0 else None
        new = tuple(current[k] - _lr_for(config, k, i) * grads[k] for k in names)
        return new, squares

    def adam_step(i, *state):
        # Adam with a fresh state per task (the Reptile paper's inner optimiser,
        # beta1 = 0); the state travels with the weights so that steps stay pure
        n = len(names)
        current = dict(zip(names, state[:n]))
        grads = ctx.gradients(support_loss(i), current, create_graph=not config.first_order,
                              differentiable=differentiable)
        squares = ctx.squared_norm(grads) if i == 0 else None
        b1, b2 = config.betas
        m = tuple(b1 * mk + (1 - b1) * grads[k] for k, mk in zip(names, state[n:2 * n]))
        v = tuple(b2 * vk + (1 - b2) * grads[k] ** 2 for k, vk in zip(names, state[2 * n:]))
        new = tuple(
            current[k] - _lr_for(config, k, i) * (mk / (1 - b1 ** (i + 1)))
            / (torch.sqrt(vk / (1 - b2 ** (i + 1))) + _ADAM_EPS)
            for k, mk, vk in zip(names, m, v)
        )
        return new + m + v, squares

    adam = config.optimizer == "adam"
    update = adam_step if adam else step
    checkpointed = differentiable and config.checkpoint and not config.first_order
    state, first_squares, path = tuple(fast.values()), None, []
    if adam:
        zeros = tuple(torch.zeros_like(w) for w in state)
        state = state + zeros + zeros
    for i in range(config.steps):
        if checkpointed:
            state, squares = ctx.checkpoint(update, i, *state)
        else:
            state, squares = update(i, *state)
        if i == 0:
            first_squares = squares
        if trajectory:
            path.append(dict(zip(names, state)))
    if first_squares is None:  # steps == 0
        first_squares = ctx.zero_norm(X)
    adapted = path if trajectory else dict(zip(names, state))
    return adapted, torch.sqrt(first_squares)


_ADAM_EPS = 1e-8
