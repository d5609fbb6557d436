"""The meta-learning engine: pure functions over ``(params, buffers, task tensors)``.

A model is a ``module`` called with :func:`torch.func.functional_call` on a dict of
parameter tensors, so an inner loop is an ordinary function of those tensors and
second-order MAML is the gradient of a function that itself takes gradients.

Task tensors are batched: ``X_support`` is ``[n_tasks, n_support, *input_shape]``,
``y_support`` is ``[n_tasks, n_support, ...]``, and likewise for the query set.

Execution strategies compute the same numbers (tested against each other, against a
textbook per-task loop and against finite differences):

``"vmap"``
    the *forward* pass of one task is :func:`torch.func.vmap`-ped over the meta-batch,
    with each task's weights stacked along a leading dimension, and every gradient is
    taken by plain :func:`torch.autograd.grad` on the sum of the per-task losses (the
    tasks are independent, so that gradient is each task's own). Fast for small
    networks, where a per-task Python loop is dominated by overhead, and 1.3-1.7x as
    fast as ``grad`` of ``vmap`` of ``grad`` (functorch's nested transforms).
``"loop"``
    a Python loop over tasks with ``torch.autograd.grad(create_graph=True)``, that
    accumulates per-task meta-gradients. Faster for convolutional networks on the CPU
    and needs the memory of one task at a time.
``"vmap+compile"``, ``"loop+compile"``
    opt-in: the same computations written with nested ``torch.func`` transforms and
    compiled once with :func:`torch.compile` (seconds to minutes of compilation, then
    several times faster on the CPU: see ``docs/performance.md``).

Inside a ``torch.func`` transform, or when ``params`` themselves require gradients,
the eager strategies fall back to their nested-``torch.func`` form, which computes the
same values and stays composable.

New algorithms are small additions to :class:`InnerLoop` rather than forks: a learned
per-parameter learning rate (Meta-SGD) is a ``lr`` dict of tensors, adapting only the
head (ANIL) is ``adapt_names``, and per-step losses (MAML++) can read the trajectory
that :func:`inner_loop` returns.
"""

import weakref
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Tuple, Union

import torch
import torch.utils.checkpoint
from torch.func import functional_call, grad, vmap

from . import networks

__all__ = [
    "InnerLoop",
    "TaskLoss",
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


class TaskLoss:
    """A network's loss on a task's data, and how the network normalises query data.

    ``loss(params, buffers, X, y)`` is ``loss_fn`` of the module's output on one set of
    examples (normalised with that set's own BatchNorm statistics): the support loss
    of the inner loop. :meth:`query` is the loss on the query set as the estimators
    predict it: with ``batch_norm_stats="support"`` (and BatchNorm layers of
    :mod:`sklmeta.networks`), query examples are normalised with the support set's
    statistics; with ``"transductive"``, with the query batch's own.

    Parameters
    ----------
    module : torch.nn.Module
    loss_fn : callable
        ``loss_fn(output, y) -> scalar``.
    batch_norm_stats : {"transductive", "support"}, default="transductive"
    """

    def __init__(self, module, loss_fn, batch_norm_stats="transductive"):
        if batch_norm_stats not in ("transductive", "support"):
            raise ValueError(
                "batch_norm_stats must be 'transductive' or 'support', got "
                f"{batch_norm_stats!r}."
            )
        if batch_norm_stats == "support" and has_builtin_batchnorm(module):
            raise ValueError(
                "batch_norm_stats='support' needs the BatchNorm layers of sklmeta.networks; "
                "convert torch.nn.BatchNorm layers with sklmeta.networks.convert_batchnorm."
            )
        self.module = module
        self.loss_fn = loss_fn
        self.batch_norm_stats = batch_norm_stats
        self.support_statistics = (
            batch_norm_stats == "support" and networks.uses_reference_rows(module)
        )

    def __call__(self, params, buffers, X, y):
        return self.loss_fn(functional_call(self.module, (params, buffers), (X,)), y)

    def query(self, params, buffers, X_support, X_query, y_query):
        """Loss on the query set after adaptation, normalised as at prediction."""
        if not self.support_statistics:
            return self(params, buffers, X_query, y_query)
        out = networks.forward_with_reference(self.module, params, buffers, X_query, X_support)
        return self.loss_fn(out, y_query)

    def pooled(self, params, buffers, X_support, y_support, X_query, y_query):
        """Loss on a task's support and query sets together (joint pre-training)."""
        X = torch.cat([X_support, X_query])
        y = torch.cat([y_support, y_query])
        if not self.support_statistics:
            return self(params, buffers, X, y)
        with networks.reference_rows(X_support.shape[0]):
            return self(params, buffers, X, y)


def make_loss(module, loss_fn, batch_norm_stats="transductive"):
    """Return a :class:`TaskLoss`: ``loss(params, buffers, X, y)`` and its ``query`` form."""
    return TaskLoss(module, loss_fn, batch_norm_stats)


def inner_loop(loss, params, buffers, X, y, config):
    """Adapt ``params`` to one task's support set ``(X, y)``.

    Parameters
    ----------
    loss : TaskLoss
        As made by :func:`make_loss`.
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
        query_loss = loss.query(adapted, buffers, Xs, Xq, yq)
        return query_loss, (query_loss.detach(), norm)

    return objective


STRATEGIES = ("vmap", "loop", "vmap+compile", "loop+compile")


def _check_strategy(strategy):
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")


def _autograd_ok(params):
    """Whether plain ``torch.autograd`` may be used instead of nested ``torch.func``.

    Not inside a ``torch.func`` transform (``grad``/``vmap`` of an engine function),
    and not when ``params`` are part of an outer autograd graph: there the nested
    ``torch.func`` form is used, which composes with both.
    """
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return False
    return not (torch.is_grad_enabled() and any(v.requires_grad for v in params.values()))


def _split(params, config):
    names = tuple(params) if config.adapt_names is None else tuple(config.adapt_names)
    frozen = {k: v for k, v in params.items() if k not in names}
    return names, frozen


def _batched_loss(loss, frozen, buffers):
    """``f(fast, X, y) -> [n_tasks]``: each task's loss with its own ``fast`` weights.

    Only the forward pass is vmapped; gradients are taken with ``torch.autograd`` on
    ``f(...).sum()``, which is each task's gradient because tasks share no weights.
    """
    return vmap(_task_loss(loss, frozen, buffers))


def _batched_query_loss(loss, frozen, buffers):
    """``f(fast, Xs, Xq, yq) -> [n_tasks]``: each task's query loss (:meth:`TaskLoss.query`)."""

    def task_query_loss(fast, Xs, Xq, yq):
        return loss.query({**frozen, **fast}, buffers, Xs, Xq, yq)

    return vmap(task_query_loss)


def _grads(output, inputs, create_graph):
    return torch.autograd.grad(
        output, inputs, create_graph=create_graph, materialize_grads=True
    )


def _adapt(f, fast, X, y, config, differentiable, batched=True):
    """Inner loop by ``torch.autograd``, for one task or (``batched``) all at once.

    With ``batched``, ``f`` is :func:`_batched_loss` and ``fast`` holds
    ``[n_tasks, ...]`` weights; otherwise ``f`` is one task's loss. With
    ``differentiable=False`` (Reptile) each step's gradient is taken on detached
    weights, so no graph is kept between steps. With ``config.checkpoint`` (second
    order only) each step's graph is recomputed during the meta-backward pass instead
    of being kept: the same numbers, with the memory of one step.
    """
    n_tasks = X.shape[0] if batched else 1
    names = list(fast)

    def step(want_norm, *weights):
        if differentiable:
            grads = _grads(f(dict(zip(names, weights)), X, y).sum(), weights,
                           not config.first_order)
        else:
            with torch.enable_grad():
                leaves = [w.detach().requires_grad_(True) for w in weights]
                grads = _grads(f(dict(zip(names, leaves)), X, y).sum(), leaves, False)
        # only the first step's gradient norm is recorded (meta_history_)
        squares = (sum((g.detach() ** 2).reshape(n_tasks, -1).sum(1) for g in grads)
                   if want_norm else None)
        new = tuple(w - _lr_for(config.lr, k) * g for k, w, g in zip(names, weights, grads))
        return new, squares

    checkpointed = differentiable and config.checkpoint and not config.first_order
    first_squares = None
    weights = tuple(fast.values())
    for i in range(config.steps):
        if checkpointed:
            weights, squares = torch.utils.checkpoint.checkpoint(
                step, i == 0, *weights, use_reentrant=False
            )
        else:
            weights, squares = step(i == 0, *weights)
        if i == 0:
            first_squares = squares
    if first_squares is None:  # steps == 0
        dtype = weights[0].dtype
        first_squares = X.new_zeros(n_tasks, dtype=dtype)
    first_grad_norm = torch.sqrt(first_squares).reshape(-1 if batched else ())
    return dict(zip(names, weights)), first_grad_norm


def _stacked(params, names, n_tasks):
    """Each adapted tensor repeated along a new leading task dimension (a view)."""
    return {k: params[k].expand(n_tasks, *params[k].shape) for k in names}


def _batched_meta_gradient(loss, params, buffers, batch, config):
    Xs, ys, Xq, yq = batch
    with torch.enable_grad():
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        names, frozen = _split(leaves, config)
        f = _batched_loss(loss, frozen, buffers)
        fast = _stacked(leaves, names, Xs.shape[0])
        adapted, norms = _adapt(f, fast, Xs, ys, config, differentiable=True)
        query_losses = _batched_query_loss(loss, frozen, buffers)(adapted, Xs, Xq, yq)
        grads = _grads(query_losses.mean(), list(leaves.values()), False)
    return dict(zip(leaves, grads)), query_losses.detach(), norms


def _functional_meta_gradient(loss, params, buffers, batch, config):
    """``grad`` of ``vmap`` of ``grad``: composable with outer ``torch.func`` transforms."""
    objective = _maml_task_objective(loss, config)

    def batch_objective(p, buffers, *batch):
        losses, aux = vmap(objective, in_dims=(None, None, 0, 0, 0, 0))(p, buffers, *batch)
        return losses.mean(), aux

    grads, (task_losses, norms) = grad(batch_objective, has_aux=True)(params, buffers, *batch)
    return grads, task_losses, norms


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
    strategy : {"vmap", "loop", "vmap+compile", "loop+compile"}
        See the module docstring; ``"+compile"`` compiles on the first call for each
        ``(loss, config)`` and input shapes, and reuses it afterwards.

    Returns
    -------
    grads : dict of str to Tensor
        Gradient of ``mean_t L_query_t(adapt_t(params))`` with respect to ``params``.
    task_losses : Tensor of shape (n_tasks,)
        Query loss of each task after adaptation (detached).
    first_grad_norms : Tensor of shape (n_tasks,)
        Norm of each task's first inner gradient.
    """
    _check_strategy(strategy)
    if strategy == "vmap+compile":
        fn = _compiled(loss, config, "maml-vmap", _functional_meta_gradient_fn)
        return fn(params, buffers, *batch)
    if strategy == "loop+compile":
        task_grad = _compiled(loss, config, "maml-task", _task_meta_gradient_fn)
        return _accumulate_over_tasks(task_grad, params, buffers, batch)
    if not _autograd_ok(params):
        if strategy == "vmap":
            return _functional_meta_gradient(loss, params, buffers, batch, config)
        task_grad = grad(_maml_task_objective(loss, config), has_aux=True)
        return _accumulate_over_tasks(task_grad, params, buffers, batch)
    if strategy == "vmap":
        return _batched_meta_gradient(loss, params, buffers, batch, config)
    return _loop_meta_gradient(loss, params, buffers, batch, config)


def _task_loss(loss, frozen, buffers):
    def task_loss(fast, X, y):
        return loss({**frozen, **fast}, buffers, X, y)

    return task_loss


def _loop_meta_gradient(loss, params, buffers, batch, config):
    """Per-task loop: accumulate each task's meta-gradient, one task's graph at a time.

    The textbook computation: ``torch.autograd.grad(create_graph=True)`` per inner step.
    """

    def task_grad(p, buffers, Xs, ys, Xq, yq):
        names, frozen = _split(p, config)
        f = _task_loss(loss, frozen, buffers)
        fast = {k: p[k] for k in names}
        adapted, norm = _adapt(f, fast, Xs, ys, config, differentiable=True, batched=False)
        query_loss = loss.query({**frozen, **adapted}, buffers, Xs, Xq, yq)
        grads = _grads(query_loss, list(p.values()), False)
        return dict(zip(p, grads)), (query_loss.detach(), norm)

    with torch.enable_grad():
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        return _accumulate_over_tasks(task_grad, leaves, buffers, batch)


def _accumulate_over_tasks(task_grad, params, buffers, batch):
    """Mean of ``task_grad(params, buffers, *task)`` over the tasks of ``batch``."""
    n_tasks = batch[0].shape[0]
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    task_losses, norms = [], []
    for t in range(n_tasks):
        g, (task_loss, norm) = task_grad(params, buffers, *(b[t] for b in batch))
        for k in total:
            total[k].add_(g[k])
        task_losses.append(task_loss)
        norms.append(norm)
    grads = {k: v / n_tasks for k, v in total.items()}
    return grads, torch.stack(task_losses), torch.stack(norms)


# ---------------------------------------------------------------- torch.compile (opt-in)
# Compiled functions are kept per ``loss`` (weakly) and ``config``: the estimators make
# one ``loss`` per meta_fit and call the engine with it every iteration, so compilation
# happens once (and again only for a new input shape, e.g. a smaller last batch).
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(loss, config, kind, make):
    try:
        cache = _COMPILED.setdefault(loss, {})
    except TypeError:  # a loss that cannot be weakly referenced: compile per call
        cache = {}
    key = (kind, config if not isinstance(config.lr, Mapping) else id(config))
    if key not in cache:
        cache[key] = torch.compile(make(loss, config), dynamic=False)
    return cache[key]


def _functional_meta_gradient_fn(loss, config):
    def fn(params, buffers, *batch):
        return _functional_meta_gradient(loss, params, buffers, batch, config)

    return fn


def _task_meta_gradient_fn(loss, config):
    return grad(_maml_task_objective(loss, config), has_aux=True)


def _reptile_task_fn(loss, config):
    def task_update(p, b, Xs, ys, Xq, yq):
        adapted, norm = inner_loop(loss, p, b, Xs, ys, config)
        delta = {k: adapted[k] - p[k] for k in p}
        return delta, loss.query(adapted, b, Xs, Xq, yq), norm

    return task_update


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
    _check_strategy(strategy)
    config = InnerLoop(config.lr, config.steps, True, config.adapt_names)
    Xs, ys, Xq, yq = batch
    n_tasks = Xs.shape[0]
    with torch.no_grad():
        if strategy.endswith("+compile") or not _autograd_ok(params):
            task_update = _reptile_task_fn(loss, config)
            if strategy.endswith("+compile"):
                task_update = _compiled(loss, config, f"reptile-{strategy}", _reptile_task_fn)
            if strategy.startswith("vmap"):
                deltas, task_losses, norms = vmap(
                    task_update, in_dims=(None, None, 0, 0, 0, 0)
                )(params, buffers, *batch)
                return {k: d.mean(0) for k, d in deltas.items()}, task_losses, norms
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

        names, frozen = _split(params, config)
        if strategy == "vmap":
            f = _batched_loss(loss, frozen, buffers)
            adapted, norms = _adapt(
                f, _stacked(params, names, n_tasks), Xs, ys, config, differentiable=False
            )
            task_losses = _batched_query_loss(loss, frozen, buffers)(adapted, Xs, Xq, yq)
            direction = {
                k: (adapted[k] - params[k]).mean(0) if k in adapted else torch.zeros_like(v)
                for k, v in params.items()
            }
            return direction, task_losses, norms
        f = _task_loss(loss, frozen, buffers)
        total = {k: torch.zeros_like(v) for k, v in params.items()}
        task_losses, norms = [], []
        for t in range(n_tasks):
            fast = {k: params[k] for k in names}
            adapted, norm = _adapt(f, fast, Xs[t], ys[t], config, False, batched=False)
            for k in adapted:
                total[k].add_(adapted[k] - params[k])
            task_losses.append(loss.query({**frozen, **adapted}, buffers, Xs[t], Xq[t], yq[t]))
            norms.append(norm)
        direction = {k: v / n_tasks for k, v in total.items()}
        return direction, torch.stack(task_losses), torch.stack(norms)


def pooled_gradient(loss, params, buffers, batch, strategy="vmap"):
    """Gradient of the mean loss on all of each task's data (joint pre-training).

    The baseline of Finn et al. (2017): one model trained on the pooled data of all
    tasks, with no inner loop. Support and query sets are both used.

    Returns
    -------
    grads : dict of str to Tensor
    task_losses : Tensor of shape (n_tasks,)
    """
    if strategy not in ("vmap", "loop"):
        raise ValueError(f"strategy must be 'vmap' or 'loop', got {strategy!r}.")
    def task_losses(p):
        if strategy == "vmap":
            return vmap(loss.pooled, in_dims=(None, None, 0, 0, 0, 0))(p, buffers, *batch)
        return torch.stack([loss.pooled(p, buffers, *(b[t] for b in batch))
                            for t in range(batch[0].shape[0])])

    if _autograd_ok(params):
        with torch.enable_grad():
            leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            losses = task_losses(leaves)
            grads = _grads(losses.mean(), list(leaves.values()), False)
        return dict(zip(leaves, grads)), losses.detach()

    def objective(p):
        losses = task_losses(p)
        return losses.mean(), losses.detach()

    return grad(objective, has_aux=True)(params)


def has_builtin_batchnorm(module):
    """Whether ``module`` contains one of torch's own BatchNorm layers."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


def has_convolution(module):
    """Whether ``module`` contains a convolution layer."""
    return any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in module.modules())


# Below this many tasks a meta-batch is cheaper as a loop: vmap's fixed cost (stacking
# weights, batched kernels) is not yet paid back (benchmarks/bench_meta.py, mlp-batch-*).
MIN_VMAP_TASKS = 2


def choose_strategy(strategy, module, device, second_order, n_tasks=None):
    """Resolve ``strategy="auto"`` and refuse paths known to be wrong.

    Rules, from ``benchmarks/bench_meta.py`` on a 2-core CPU with torch 2.13 (see
    ``docs/performance.md``): ``vmap`` runs the sinusoid MLP about 9x faster than a
    per-task loop at 25 tasks, but is slower below :data:`MIN_VMAP_TASKS` tasks; and
    vmapped convolutions with per-task weights (grouped convolutions) run at a
    fraction of the loop's speed on the CPU and use the memory of the whole
    meta-batch. ``auto`` never compiles (compilation takes tens of seconds);
    ``"vmap+compile"`` and ``"loop+compile"`` are opt-in.

    The second-order meta-gradient of torch's built-in BatchNorm under
    ``torch.func.grad`` of ``vmap`` is wrong (checked against finite differences).
    The compiled ``vmap`` path and the eager path inside ``torch.func`` transforms
    take that form, so ``vmap`` is never chosen for such a module and cannot be forced.

    Parameters
    ----------
    strategy : {"auto", "vmap", "loop", "vmap+compile", "loop+compile"}
    module : torch.nn.Module
    device : torch.device
    second_order : bool
        Whether second-order meta-gradients will be taken.
    n_tasks : int, optional
        Tasks per meta-batch, when known.

    Returns
    -------
    strategy : str
        One of ``STRATEGIES``.
    """
    if strategy != "auto":
        _check_strategy(strategy)
    vmap_wrong = second_order and has_builtin_batchnorm(module)
    if strategy == "auto":
        if vmap_wrong:
            return "loop"
        if device.type == "cpu" and has_convolution(module):
            return "loop"
        if n_tasks is not None and n_tasks < MIN_VMAP_TASKS:
            return "loop"
        return "vmap"
    if strategy.startswith("vmap") and vmap_wrong:
        raise ValueError(
            f"strategy={strategy!r} cannot be used for second-order meta-gradients of a "
            "module with torch.nn.BatchNorm layers: torch.func.vmap computes them "
            "wrongly. Use strategy='loop' or 'auto', first_order=True, or "
            "sklmeta.networks.BatchNorm2d."
        )
    return strategy
