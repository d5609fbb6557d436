"""The meta-learning engine: pure functions over ``(params, buffers, task tensors)``.

Everything here is built on :mod:`torch.func`. A model is a ``module`` called with
:func:`torch.func.functional_call` on a dict of parameter tensors, so an inner loop is
an ordinary function of those tensors and second-order MAML is just ``grad`` of a
function that itself calls ``grad``.

Task tensors are batched: ``X_support`` is ``[n_tasks, n_support, *input_shape]``,
``y_support`` is ``[n_tasks, n_support, ...]``, and likewise for the query set.

Two execution strategies compute the same numbers (tested against each other and
against finite differences):

``"vmap"``
    one task's computation is :func:`torch.func.vmap`-ped over the meta-batch. Fast
    for small networks, where a per-task Python loop is dominated by overhead.
``"loop"``
    a Python loop over tasks that accumulates per-task meta-gradients. Faster for
    convolutional networks on the CPU and needs the memory of one task at a time.

New algorithms are small additions to :class:`InnerLoop` rather than forks: a learned
per-parameter learning rate (Meta-SGD) is a ``lr`` dict of tensors, adapting only the
head (ANIL) is ``adapt_names``, and per-step losses (MAML++) can read the trajectory
that :func:`inner_loop` returns.
"""

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Tuple, Union

import torch
from torch.func import functional_call, grad, vmap

__all__ = [
    "InnerLoop",
    "make_loss",
    "inner_loop",
    "maml_meta_gradient",
    "reptile_direction",
    "pooled_gradient",
    "has_builtin_batchnorm",
    "has_convolution",
    "choose_strategy",
]


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
    """

    lr: Union[float, Mapping[str, torch.Tensor]]
    steps: int
    first_order: bool = False
    adapt_names: Optional[Tuple[str, ...]] = None


def make_loss(module, loss_fn):
    """Return ``loss(params, buffers, X, y)``: ``loss_fn`` of the module's output."""

    def loss(params, buffers, X, y):
        return loss_fn(functional_call(module, (params, buffers), (X,)), y)

    return loss


def inner_loop(loss, params, buffers, X, y, config):
    """Adapt ``params`` to one task's support set ``(X, y)``.

    Parameters
    ----------
    loss : callable
        ``loss(params, buffers, X, y) -> scalar`` as made by :func:`make_loss`.
    params, buffers : dict of str to Tensor
        Starting parameters (the meta-learned initialisation) and module buffers.
    X, y : Tensor
        One task's support set.
    config : InnerLoop

    Returns
    -------
    adapted : dict of str to Tensor
        Parameters after ``config.steps`` steps. Differentiable with respect to
        ``params`` (to second order unless ``config.first_order``).
    first_grad_norm : Tensor
        Frobenius norm of the first step's gradient (over all adapted tensors).
    """
    names = tuple(params) if config.adapt_names is None else config.adapt_names
    frozen = {k: v for k, v in params.items() if k not in names}

    def support_loss(fast):
        return loss({**frozen, **fast}, buffers, X, y)

    grad_fn = grad(support_loss)
    fast = {k: params[k] for k in names}
    first_grad_norm = None
    for _ in range(config.steps):
        grads = grad_fn(fast)
        if config.first_order:
            grads = {k: g.detach() for k, g in grads.items()}
        if first_grad_norm is None:
            first_grad_norm = torch.sqrt(
                sum((g.detach() ** 2).sum() for g in grads.values())
            )
        fast = {k: fast[k] - _lr_for(config.lr, k) * grads[k] for k in fast}
    if first_grad_norm is None:  # steps == 0
        first_grad_norm = torch.zeros((), device=next(iter(params.values())).device)
    return {**frozen, **fast}, first_grad_norm


def _lr_for(lr, name):
    return lr[name] if isinstance(lr, Mapping) else lr


def _maml_task_objective(loss, config):
    def objective(params, buffers, Xs, ys, Xq, yq):
        adapted, norm = inner_loop(loss, params, buffers, Xs, ys, config)
        query_loss = loss(adapted, buffers, Xq, yq)
        return query_loss, (query_loss.detach(), norm)

    return objective


def maml_meta_gradient(loss, params, buffers, batch, config, strategy="vmap"):
    """Meta-gradient of the mean query loss after adaptation, over a task batch.

    Parameters
    ----------
    loss : callable
        As made by :func:`make_loss`.
    params, buffers : dict of str to Tensor
        The initialisation being meta-learned, and the module's buffers.
    batch : tuple of Tensor
        ``(X_support, y_support, X_query, y_query)``, each ``[n_tasks, ...]``.
    config : InnerLoop
    strategy : {"vmap", "loop"}

    Returns
    -------
    grads : dict of str to Tensor
        Gradient of ``mean_t L_query_t(adapt_t(params))`` with respect to ``params``.
    task_losses : Tensor of shape (n_tasks,)
        Query loss of each task after adaptation (detached).
    first_grad_norms : Tensor of shape (n_tasks,)
        Norm of each task's first inner gradient.
    """
    objective = _maml_task_objective(loss, config)
    if strategy == "vmap":

        def batch_objective(p):
            losses, aux = vmap(objective, in_dims=(None, None, 0, 0, 0, 0))(
                p, buffers, *batch
            )
            return losses.mean(), aux

        grads, (task_losses, norms) = grad(batch_objective, has_aux=True)(params)
        return grads, task_losses, norms
    if strategy == "loop":
        return _loop_meta_gradient(loss, params, buffers, batch, config)
    raise ValueError(f"strategy must be 'vmap' or 'loop', got {strategy!r}.")


def _inner_loop_autograd(loss, params, buffers, X, y, config):
    """:func:`inner_loop` with ``torch.autograd`` instead of ``torch.func.grad``.

    The per-task loop uses it: outside ``vmap`` the plain autograd graph has less
    overhead per task than nested functorch transforms (measured ~2.4x on the sinusoid
    MLP), and it is how the textbook loop computes the same numbers.
    """
    names = tuple(params) if config.adapt_names is None else config.adapt_names
    fast = dict(params)
    first_grad_norm = None
    for _ in range(config.steps):
        grads = torch.autograd.grad(
            loss(fast, buffers, X, y), [fast[k] for k in names],
            create_graph=not config.first_order,
        )
        if first_grad_norm is None:
            first_grad_norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads))
        for k, g in zip(names, grads):
            fast[k] = fast[k] - _lr_for(config.lr, k) * g
    if first_grad_norm is None:
        first_grad_norm = torch.zeros((), device=next(iter(params.values())).device)
    return fast, first_grad_norm


def _loop_meta_gradient(loss, params, buffers, batch, config):
    """Per-task loop: accumulate each task's meta-gradient, one task's graph at a time."""
    n_tasks = batch[0].shape[0]
    with torch.enable_grad():
        p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        total = {k: torch.zeros_like(v) for k, v in params.items()}
        task_losses, norms = [], []
        for t in range(n_tasks):
            Xs, ys, Xq, yq = (b[t] for b in batch)
            adapted, norm = _inner_loop_autograd(loss, p, buffers, Xs, ys, config)
            query_loss = loss(adapted, buffers, Xq, yq)
            grads = torch.autograd.grad(query_loss, list(p.values()), allow_unused=True)
            for k, g in zip(p, grads):
                if g is not None:
                    total[k].add_(g)
            task_losses.append(query_loss.detach())
            norms.append(norm)
    grads = {k: v / n_tasks for k, v in total.items()}
    return grads, torch.stack(task_losses), torch.stack(norms)


def reptile_direction(loss, params, buffers, batch, config, strategy="vmap"):
    """Reptile's update direction: mean over tasks of ``adapted - params``.

    Each task takes ``config.steps`` plain SGD steps on its support set; the
    meta-update is ``params + meta_step_size * direction`` (Nichol et al., 2018).

    Returns
    -------
    direction : dict of str to Tensor
    task_losses : Tensor of shape (n_tasks,)
        Query loss of each task after adaptation.
    first_grad_norms : Tensor of shape (n_tasks,)
    """
    config = InnerLoop(config.lr, config.steps, True, config.adapt_names)

    def task_update(p, b, Xs, ys, Xq, yq):
        adapted, norm = inner_loop(loss, p, b, Xs, ys, config)
        delta = {k: adapted[k] - p[k] for k in p}
        return delta, loss(adapted, b, Xq, yq), norm

    with torch.no_grad():
        if strategy == "vmap":
            deltas, task_losses, norms = vmap(task_update, in_dims=(None, None, 0, 0, 0, 0))(
                params, buffers, *batch
            )
            return {k: d.mean(0) for k, d in deltas.items()}, task_losses, norms
        if strategy == "loop":
            n_tasks = batch[0].shape[0]
            total = {k: torch.zeros_like(v) for k, v in params.items()}
            task_losses, norms = [], []
            for t in range(n_tasks):
                delta, task_loss, norm = task_update(params, buffers, *(b[t] for b in batch))
                for k in total:
                    total[k].add_(delta[k])
                task_losses.append(task_loss)
                norms.append(norm)
            direction = {k: v / n_tasks for k, v in total.items()}
            return direction, torch.stack(task_losses), torch.stack(norms)
    raise ValueError(f"strategy must be 'vmap' or 'loop', got {strategy!r}.")


def pooled_gradient(loss, params, buffers, batch, strategy="vmap"):
    """Gradient of the mean loss on all of each task's data (joint pre-training).

    The baseline of Finn et al. (2017): one model trained on the pooled data of all
    tasks, with no inner loop. Support and query sets are both used.

    Returns
    -------
    grads : dict of str to Tensor
    task_losses : Tensor of shape (n_tasks,)
    """
    Xs, ys, Xq, yq = batch
    X = torch.cat([Xs, Xq], dim=1)
    y = torch.cat([ys, yq], dim=1)

    def objective(p):
        if strategy == "vmap":
            losses = vmap(loss, in_dims=(None, None, 0, 0))(p, buffers, X, y)
        elif strategy == "loop":
            losses = torch.stack([loss(p, buffers, X[t], y[t]) for t in range(X.shape[0])])
        else:
            raise ValueError(f"strategy must be 'vmap' or 'loop', got {strategy!r}.")
        return losses.mean(), losses.detach()

    return grad(objective, has_aux=True)(params)


def has_builtin_batchnorm(module):
    """Whether ``module`` contains one of torch's own BatchNorm layers."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


def has_convolution(module):
    """Whether ``module`` contains a convolution layer."""
    return any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in module.modules())


def choose_strategy(strategy, module, device, second_order):
    """Resolve ``strategy="auto"`` and refuse paths known to be wrong.

    Rules, from measurements on a 2-core CPU with torch 2.13 (``benchmarks/``):
    ``vmap`` runs the sinusoid MLP 5-6x faster than a per-task loop, but vmapped
    convolutions with per-task weights run at half the loop's speed on the CPU and use
    several GB. And the second-order meta-gradient of torch's built-in BatchNorm under
    ``vmap`` is wrong (checked against finite differences), so that path is never
    chosen and cannot be forced.
    """
    vmap_wrong = second_order and has_builtin_batchnorm(module)
    if strategy == "auto":
        if vmap_wrong:
            return "loop"
        if device.type == "cpu" and has_convolution(module):
            return "loop"
        return "vmap"
    if strategy == "vmap" and vmap_wrong:
        raise ValueError(
            "strategy='vmap' cannot be used for second-order meta-gradients of a module "
            "with torch.nn.BatchNorm layers: torch.func.vmap computes them wrongly. Use "
            "strategy='loop' or 'auto', first_order=True, or sklmeta.networks.BatchNorm2d."
        )
    return strategy
