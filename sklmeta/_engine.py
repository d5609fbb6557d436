"""The meta-learning engine: execution strategies applied to any algorithm.

A model is a ``module`` called with :func:`torch.func.functional_call` on a dict of
parameter tensors, so an inner loop is an ordinary function of those tensors and
second-order MAML is the gradient of a function that itself takes gradients.

Algorithms (:mod:`sklmeta.algorithms`) state their per-task mathematics once, against a
*context* that says how a task's loss is evaluated and differentiated. The engine
applies every execution strategy to any algorithm, here and only here:

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

Across processes (``torchrun``), each of them runs data-parallel: every process computes
its share of the meta-batch with the strategy, and one all-reduce gives all of them the
mean over the whole batch (``processes=``, :mod:`sklmeta._distributed`).

Inside a ``torch.func`` transform, or when the meta-learned tensors themselves require
gradients, the eager strategies fall back to their nested-``torch.func`` form, which
computes the same values and stays composable.

Task tensors are batched: ``X_support`` is ``[n_tasks, n_support, *input_shape]``,
``y_support`` is ``[n_tasks, n_support, ...]``, and likewise for the query set. All
strategies compute the same numbers (tested against each other, against a textbook
per-task loop and against finite differences).
"""

import weakref

import torch
import torch.utils.checkpoint
from torch.func import functional_call, grad, vmap

from . import networks
from .algorithms import MAML, InnerLoop, JointPretraining, Reptile, sgd_adapt, split_adapted

__all__ = [
    "InnerLoop",
    "TaskLoss",
    "make_loss",
    "inner_loop",
    "meta_gradient",
    "meta_direction",
    "maml_meta_gradient",
    "reptile_direction",
    "pooled_gradient",
    "has_builtin_batchnorm",
    "has_convolution",
    "choose_strategy",
]


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
                "batch_norm_stats='support' needs the BatchNorm layers of sklmeta.networks: "
                "convert torch.nn.BatchNorm1d/2d/3d layers with "
                "sklmeta.networks.convert_batchnorm, or use batch_norm_stats='transductive' "
                "for other kinds of batch normalisation."
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

    def embedding(self, params, buffers, X, layer):
        """The input of the submodule ``layer`` when the network is called on ``X``
        (the penultimate representation when ``layer`` is the head), flattened."""
        captured = []
        hook = self.module.get_submodule(layer).register_forward_pre_hook(
            lambda module, args: captured.append(args[0]))
        try:
            functional_call(self.module, (params, buffers), (X,))
        finally:
            hook.remove()
        return captured[0].flatten(1)

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


# ---------------------------------------------------------------- contexts
# How an algorithm's per-task mathematics is evaluated. Algorithms only call these
# methods, so one algorithm runs under every strategy.


class _Autograd:
    """One task at a time (``n_tasks=None``) or all at once, on plain ``torch.autograd``.

    Batched, ``fast`` tensors carry a leading task dimension and losses are vmapped
    over it (the forward pass only); gradients of the summed losses are each task's.
    """

    def __init__(self, loss, buffers, n_tasks=None):
        self._loss, self.buffers, self.n_tasks = loss, buffers, n_tasks

    def task_view(self, tensors):
        if self.n_tasks is None:
            return dict(tensors)
        # a view: no copy, and the meta-gradient flows back through the expand
        return {k: v.expand(self.n_tasks, *v.shape) for k, v in tensors.items()}

    def _per_task(self, fn, fast, *data):
        if self.n_tasks is None:
            return fn(fast, *data)
        return vmap(fn)(fast, *data)

    def loss(self, fast, shared, X, y):
        return self._per_task(
            lambda f, X, y: self._loss({**shared, **f}, self.buffers, X, y), fast, X, y)

    def query_loss(self, fast, shared, Xs, Xq, yq):
        return self._per_task(
            lambda f, Xs, Xq, yq: self._loss.query({**shared, **f}, self.buffers, Xs, Xq, yq),
            fast, Xs, Xq, yq)

    def embedding(self, fast, shared, X, layer):
        return self._per_task(
            lambda f, X: self._loss.embedding({**shared, **f}, self.buffers, X, layer), fast, X)

    def pooled_loss(self, shared, Xs, ys, Xq, yq):
        def pooled(_, Xs, ys, Xq, yq):
            return self._loss.pooled(shared, self.buffers, Xs, ys, Xq, yq)

        return self._per_task(pooled, {}, Xs, ys, Xq, yq)

    def gradients(self, fn, weights, create_graph, differentiable=True):
        names = list(weights)
        if differentiable:
            inputs = list(weights.values())
            value = fn(weights)
        else:  # values only (Reptile): no graph is kept from one step to the next
            with torch.enable_grad():
                inputs = [w.detach().requires_grad_(True) for w in weights.values()]
                value = fn(dict(zip(names, inputs)))
        with torch.enable_grad():
            # retain_graph: the weights may share a graph with the meta-objective (a
            # head built from prototypes) that a first-order step must not free
            grads = torch.autograd.grad(value.sum(), inputs, create_graph=create_graph,
                                        retain_graph=differentiable, materialize_grads=True)
        return dict(zip(names, grads))

    def squared_norm(self, grads):
        if self.n_tasks is None:
            return sum((g.detach() ** 2).sum() for g in grads.values())
        return sum((g.detach() ** 2).reshape(self.n_tasks, -1).sum(1) for g in grads.values())

    def zero_norm(self, X):
        return X.new_zeros(() if self.n_tasks is None else (self.n_tasks,),
                           dtype=torch.get_default_dtype() if not X.is_floating_point()
                           else X.dtype)

    def checkpoint(self, step, *args):
        return torch.utils.checkpoint.checkpoint(step, *args, use_reentrant=False)


class _Functional:
    """One task, inside ``torch.func`` transforms (composable and compilable).

    The strategies vmap it over tasks themselves; gradients are ``torch.func.grad``.
    """

    def __init__(self, loss, buffers):
        self._loss, self.buffers = loss, buffers

    def task_view(self, tensors):
        return dict(tensors)

    def loss(self, fast, shared, X, y):
        return self._loss({**shared, **fast}, self.buffers, X, y)

    def query_loss(self, fast, shared, Xs, Xq, yq):
        return self._loss.query({**shared, **fast}, self.buffers, Xs, Xq, yq)

    def embedding(self, fast, shared, X, layer):
        return self._loss.embedding({**shared, **fast}, self.buffers, X, layer)

    def pooled_loss(self, shared, Xs, ys, Xq, yq):
        return self._loss.pooled(shared, self.buffers, Xs, ys, Xq, yq)

    def gradients(self, fn, weights, create_graph, differentiable=True):
        grads = grad(fn)(dict(weights))
        if not create_graph:
            grads = {k: g.detach() for k, g in grads.items()}
        return grads

    def squared_norm(self, grads):
        return sum((g.detach() ** 2).sum() for g in grads.values())

    def zero_norm(self, X):
        return X.new_zeros((), dtype=X.dtype if X.is_floating_point()
                           else torch.get_default_dtype())

    def checkpoint(self, step, *args):  # nothing to save memory on without autograd graphs
        return step(*args)


# ---------------------------------------------------------------- strategies

STRATEGIES = ("vmap", "loop", "vmap+compile", "loop+compile")


def _check_strategy(strategy):
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")


def _autograd_ok(meta):
    """Whether plain ``torch.autograd`` may be used instead of nested ``torch.func``.

    Not inside a ``torch.func`` transform (``grad``/``vmap`` of an engine function),
    and not when ``meta`` tensors are part of an outer autograd graph: there the nested
    ``torch.func`` form is used, which composes with both.
    """
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return False
    return not (torch.is_grad_enabled() and any(v.requires_grad for v in meta.values()))


def _leaves(meta):
    return {k: v.detach().requires_grad_(True) for k, v in meta.items()}


def meta_gradient(algorithm, loss, meta, buffers, batch, strategy="vmap", processes=None):
    """Gradient of the mean per-task objective of a *gradient* algorithm.

    Parameters
    ----------
    algorithm : object with ``task_objective`` (see :mod:`sklmeta.algorithms`)
    loss : TaskLoss
        As made by :func:`make_loss`.
    meta : dict of str to Tensor
        The meta-learned tensors (the initialisation, and any others the algorithm
        learns).
    buffers : dict of str to Tensor
        The module's buffers (and frozen parameters).
    batch : tuple of Tensor
        ``(X_support, y_support, X_query, y_query)``, each ``[n_tasks, ...]``.
    strategy : {"vmap", "loop", "vmap+compile", "loop+compile"}
        See the module docstring; ``"+compile"`` compiles on the first call for each
        ``(loss, algorithm)`` and input shapes, and reuses it afterwards.
    processes : sklmeta._distributed.Processes or None
        Share the batch with these processes (data parallelism); None computes it all.

    Returns
    -------
    grads : dict of str to Tensor
        Gradient of ``mean_t objective_t(meta)`` with respect to ``meta``.
    task_losses : Tensor of shape (n_tasks,)
        Each task's reported loss (the query loss after adaptation), detached.
    first_grad_norms : Tensor of shape (n_tasks,)
        Norm of each task's first inner gradient.
    """
    _check_strategy(strategy)
    if processes is not None:
        return processes.run(
            lambda share: meta_gradient(algorithm, loss, meta, buffers, share, strategy), batch)
    if strategy == "vmap+compile":
        return _compiled(loss, algorithm, "gradient-vmap", _functional_gradient_fn)(
            meta, buffers, *batch)
    if strategy == "loop+compile":
        task_grad = _compiled(loss, algorithm, "gradient-task", _functional_task_gradient)
        return _accumulate_over_tasks(task_grad, meta, buffers, batch)
    if not _autograd_ok(meta):
        if strategy == "vmap":
            return _functional_gradient(algorithm, loss, meta, buffers, batch)
        task_grad = _functional_task_gradient(loss, algorithm)
        return _accumulate_over_tasks(task_grad, meta, buffers, batch)
    if strategy == "vmap":
        with torch.enable_grad():
            leaves = _leaves(meta)
            ctx = _Autograd(loss, buffers, n_tasks=batch[0].shape[0])
            objectives, (task_losses, norms) = algorithm.task_objective(ctx, leaves, *batch)
            grads = torch.autograd.grad(objectives.mean(), list(leaves.values()),
                                        materialize_grads=True)
        return dict(zip(leaves, grads)), task_losses, norms

    def task_grad(leaves, buffers, *task):
        objective, aux = algorithm.task_objective(_Autograd(loss, buffers), leaves, *task)
        grads = torch.autograd.grad(objective, list(leaves.values()), materialize_grads=True)
        return dict(zip(leaves, grads)), aux

    with torch.enable_grad():
        return _accumulate_over_tasks(task_grad, _leaves(meta), buffers, batch)


def _functional_objective(loss, algorithm, buffers):
    def objective(meta, Xs, ys, Xq, yq):
        return algorithm.task_objective(_Functional(loss, buffers), meta, Xs, ys, Xq, yq)

    return objective


def _functional_gradient(algorithm, loss, meta, buffers, batch):
    """``grad`` of ``vmap`` of the task objective: composable with outer transforms."""
    objective = _functional_objective(loss, algorithm, buffers)

    def batch_objective(meta):
        objectives, aux = vmap(objective, in_dims=(None, 0, 0, 0, 0))(meta, *batch)
        return objectives.mean(), aux

    grads, (task_losses, norms) = grad(batch_objective, has_aux=True)(meta)
    return grads, task_losses, norms


def _functional_gradient_fn(loss, algorithm):
    def fn(meta, buffers, *batch):
        return _functional_gradient(algorithm, loss, meta, buffers, batch)

    return fn


def _functional_task_gradient(loss, algorithm):
    def task_grad(meta, buffers, *task):
        return grad(_functional_objective(loss, algorithm, buffers), has_aux=True)(meta, *task)

    return task_grad


def _accumulate_over_tasks(task_fn, meta, buffers, batch):
    """Mean of ``task_fn(meta, buffers, *task)``'s first output over the tasks."""
    n_tasks = batch[0].shape[0]
    total = {k: torch.zeros_like(v) for k, v in meta.items()}
    task_losses, norms = [], []
    for t in range(n_tasks):
        values, (task_loss, norm) = task_fn(meta, buffers, *(b[t] for b in batch))
        for k, v in values.items():
            total[k].add_(v)
        task_losses.append(task_loss)
        norms.append(norm)
    means = {k: v / n_tasks for k, v in total.items()}
    return means, torch.stack(task_losses), torch.stack(norms)


def meta_direction(algorithm, loss, meta, buffers, batch, strategy="vmap", processes=None):
    """Mean over tasks of a *direction* algorithm's per-task deltas (Reptile).

    Same parameters as :func:`meta_gradient`. Tensors the algorithm does not move get a
    zero direction. Returns ``(direction, task_losses, first_grad_norms)``.
    """
    _check_strategy(strategy)
    if processes is not None:
        return processes.run(
            lambda share: meta_direction(algorithm, loss, meta, buffers, share, strategy), batch)
    n_tasks = batch[0].shape[0]
    with torch.no_grad():
        if strategy.endswith("+compile") or not _autograd_ok(meta):
            task_fn = (_compiled(loss, algorithm, f"direction-{strategy}", _functional_direction)
                       if strategy.endswith("+compile") else _functional_direction(loss, algorithm))
            if strategy.startswith("vmap"):
                deltas, (task_losses, norms) = vmap(task_fn, in_dims=(None, None, 0, 0, 0, 0))(
                    meta, buffers, *batch)
                means = {k: d.mean(0) for k, d in deltas.items()}
            else:
                means, task_losses, norms = _accumulate_over_tasks(task_fn, meta, buffers, batch)
        elif strategy == "vmap":
            ctx = _Autograd(loss, buffers, n_tasks=n_tasks)
            deltas, (task_losses, norms) = algorithm.task_direction(ctx, meta, *batch)
            means = {k: d.mean(0) for k, d in deltas.items()}
        else:
            def task_fn(meta, buffers, *task):
                return algorithm.task_direction(_Autograd(loss, buffers), meta, *task)

            means, task_losses, norms = _accumulate_over_tasks(task_fn, meta, buffers, batch)
    direction = {k: means[k] if k in means else torch.zeros_like(v) for k, v in meta.items()}
    return direction, task_losses, norms


def _functional_direction(loss, algorithm):
    def task_fn(meta, buffers, *task):
        return algorithm.task_direction(_Functional(loss, buffers), meta, *task)

    return task_fn


# ---------------------------------------------------------------- torch.compile (opt-in)
# Compiled functions are kept per ``loss`` (weakly) and algorithm: the estimators make
# one ``loss`` per meta_fit and call the engine with it every iteration, so compilation
# happens once (and again only for a new input shape, e.g. a smaller last batch).
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(loss, algorithm, kind, make):
    try:
        cache = _COMPILED.setdefault(loss, {})
    except TypeError:  # a loss that cannot be weakly referenced: compile per call
        cache = {}
    try:
        key = (kind, algorithm, hash(algorithm))
    except TypeError:  # learned rates (tensors) in the algorithm: one entry per object
        key = (kind, id(algorithm))
    if key not in cache:
        cache[key] = torch.compile(make(loss, algorithm), dynamic=False)
    return cache[key]


# ---------------------------------------------------------------- the algorithms by name
# Entry points of 0.1 and the tests' oracles: each is one algorithm under the engine.


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
    shared, fast = split_adapted(params, config.adapt_names)
    adapted, norm = sgd_adapt(_Functional(loss, buffers), shared, fast, X, y, config)
    return {**shared, **adapted}, norm


def maml_meta_gradient(loss, params, buffers, batch, config, strategy="vmap"):
    """Meta-gradient of the mean query loss after adaptation (MAML), over a task batch.

    :func:`meta_gradient` of :class:`sklmeta.algorithms.MAML` ``(config)``.
    """
    return meta_gradient(MAML(config), loss, params, buffers, batch, strategy)


def _functional_meta_gradient(loss, params, buffers, batch, config):
    """MAML's nested-``torch.func`` form (``grad`` of ``vmap`` of ``grad``)."""
    return _functional_gradient(MAML(config), loss, params, buffers, batch)


def reptile_direction(loss, params, buffers, batch, config, strategy="vmap"):
    """Reptile's update direction: mean over tasks of ``adapted - params``.

    Each task takes ``config.steps`` plain SGD steps on its support set; the
    meta-update is ``params + meta_step_size * direction`` (Nichol et al., 2018).
    :func:`meta_direction` of :class:`sklmeta.algorithms.Reptile` ``(config)``.
    """
    return meta_direction(Reptile(config), loss, params, buffers, batch, strategy)


def pooled_gradient(loss, params, buffers, batch, strategy="vmap"):
    """Gradient of the mean loss on all of each task's data (joint pre-training).

    Returns ``(grads, task_losses)``; :func:`meta_gradient` of
    :class:`sklmeta.algorithms.JointPretraining` also returns each task's
    support-gradient norm.
    """
    if strategy not in ("vmap", "loop"):
        raise ValueError(f"strategy must be 'vmap' or 'loop', got {strategy!r}.")
    grads, task_losses, _ = meta_gradient(JointPretraining(), loss, params, buffers, batch,
                                          strategy)
    return grads, task_losses


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
