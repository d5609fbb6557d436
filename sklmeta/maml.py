"""MAML (Finn et al., 2017) and first-order MAML estimators."""

from dataclasses import replace
from numbers import Integral, Real

import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval, Options, StrOptions

from . import _engine
from .networks import batch_norm_step, per_step_batchnorm, per_step_parameter_names
from .algorithms import LR_PREFIX, MAML, InnerLoop, multi_step_loss_weights, split_learned_rates
from .base import (
    BaseMetaEstimator,
    MetaClassifierMixin,
    MetaRegressorMixin,
    adapted_parameter_names,
)

__all__ = ["MAMLRegressor", "MAMLClassifier"]

_COMMON_PARAMS_DOC = """
    module : torch.nn.Module, torch.nn.Module subclass or None, default=None
        The network. A class is instantiated with the ``module__<name>`` parameters
        (skorch's convention: ``module=MyNet, module__hidden=64``, which
        ``GridSearchCV`` can search as ``module__hidden``); an instance is copied,
        never modified. Its parameter values are the
        starting point of meta-training. Parameters with ``requires_grad=False`` are
        kept fixed (neither meta-learned nor adapted). It is checked with one forward
        pass on the tasks' inputs: it must output ``(n_examples, n_outputs)`` for
        regression, ``(n_examples, n_way)`` logits for classification. None builds the default: an MLP with
        ``hidden_layer_sizes`` for vector inputs, the 4-layer conv net of the MAML
        paper (:class:`sklmeta.networks.Conv4`) for image inputs. For BatchNorm
        layers see ``batch_norm_stats``.
    **module__params : ``module__<name>=value``
        Keyword arguments of ``module`` when it is a class; listed by ``get_params``.
    hidden_layer_sizes : tuple of int, default=(40, 40)
        Hidden layers of the default MLP (ignored when ``module`` is given).
    inner_lr : float, default={inner_lr}
        Step size of the inner (adaptation) gradient steps, alpha in the papers.
    inner_steps : int, default={inner_steps}
        Inner gradient steps per task during meta-training.
    adapt_steps : int, default=None
        Gradient steps taken by :meth:`adapt`; None means ``inner_steps``. The MAML
        paper meta-trains with one step and evaluates after 1, 5 and 10.
"""

_MAML_PARAMS_DOC = """    first_order : bool, default=False
        Ignore second derivatives in the meta-gradient (FOMAML).
    checkpoint_inner_loop : bool, default=False
        Second order only: recompute each inner step's graph during the meta-backward
        pass instead of storing all ``inner_steps`` of them, so memory stops growing
        with ``inner_steps``, for about one more support forward and backward per
        step. The meta-gradient is the same (eager strategies; ignored by
        "+compile").
    learn_inner_lr : {False, "elementwise", "per_layer_step"}, default=False
        Meta-learn the inner learning rates with the initialisation, starting at
        ``inner_lr``: one per weight element (Meta-SGD, Li et al. 2017) or one per
        parameter tensor and inner step (MAML++'s LSLR, Antoniou et al. 2019; steps of
        :meth:`adapt` beyond ``inner_steps`` use the last step's rate). They are
        ``inner_lrs_``, used by :meth:`adapt`.
    adapt_params : "all", "head" or list of str, default="all"
        Which parameters the inner loop (and :meth:`adapt`) changes: all, the last
        layer's (ANIL, Raghu et al. 2020: the body is meta-learned, then kept fixed for
        each task), or those named (keys of ``meta_params_``).
    multi_step_loss : int, default=0
        MAML++'s multi-step loss (Antoniou et al. 2019): the meta-objective weighs the
        query loss after every inner step, uniformly at first and annealed towards the
        last step over this many meta-iterations (counted across ``warm_start``
        calls). 0 uses the last step's loss only.
    first_order_iters : int, default=0
        MAML++'s derivative-order annealing: first-order meta-gradients for this many
        meta-iterations, then second order.
    meta_lr_schedule : {"constant", "cosine"}, default="constant"
        "cosine" anneals Adam's learning rate from ``meta_lr`` to ``meta_lr / 100``
        over each ``meta_fit`` call's ``max_iter`` (MAML++).
    per_step_bn : bool, default=False
        MAML++'s per-step BatchNorm weights and biases (Antoniou et al., 2019): every
        BatchNorm layer meta-learns one weight and bias per inner step, which the
        inner loop uses at that step (and prediction at the last adaptation step, the
        last learned one beyond ``inner_steps``); they do not adapt. Per-step running
        statistics have no counterpart: the layers normalise with the current support
        set's statistics at every step. No effect on networks without BatchNorm; not
        with the "+compile" strategies."""

_LEARNED_RATES_DOC = """    inner_lrs_ : dict of str to torch.Tensor
        With ``learn_inner_lr``: the learned inner learning rates of each adapted
        parameter (CPU tensors; element-wise, or one per inner step).
"""

_TAIL_PARAMS_DOC = """
    meta_batch_size : int, default={meta_batch_size}
        Tasks per meta-iteration.
    max_iter : int, default={max_iter}
        Meta-iterations of :meth:`meta_fit`.
    strategy : {{"auto", "vmap", "loop", "vmap+compile", "loop+compile"}}, \
default="auto"
        How the meta-batch is computed: vectorised over tasks with
        :func:`torch.func.vmap`, or a per-task loop. "auto" picks vmap for small
        networks (from 2 tasks per meta-batch) and the loop for conv nets on the
        CPU, and never a path known to be wrong (see ``docs/engine.md``). The
        "+compile" strategies compile the meta-gradient with :func:`torch.compile`
        on the first iteration (tens of seconds), then run several times faster:
        worth it for long meta-training (``docs/performance.md``); the pre-training
        baselines do not take them. Results are identical up to rounding.
    batch_norm_stats : {{"support", "transductive"}}, default="support"
        Which statistics BatchNorm layers normalise query examples with, at
        meta-training and at prediction alike. "support": the task's support set's
        (the support set itself is normalised with its own), so a prediction depends
        on the support set and on the example only, never on the other examples
        predicted with it. "transductive": the query batch's own, the convention of the
        reference MAML code and of the papers' Omniglot numbers; predict a task's
        query set in one call then. torch's ``BatchNorm1d``/``BatchNorm2d`` layers in
        ``module`` become :class:`sklmeta.networks.BatchNorm1d`/``2d`` (same
        parameters, no running statistics). No effect on networks without BatchNorm.
    device : str or torch.device, default="auto"
        "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N" or "mps".
        Fitted tensors are kept on the CPU, so a pickle loads anywhere.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, task sampling and adaptation.
    verbose : int, default=0
        1 shows a progress bar with the running meta-loss.
    warm_start : bool, default=False
        Continue meta-training from ``meta_params_`` instead of a new initialisation.
        The network must be the same (a changed ``hidden_layer_sizes`` or ``module`` is
        refused). Meta-training continues where it stopped: the tasks drawn are the
        ones that come next, and Adam keeps its moment estimates, so ``max_iter=10``
        twice gives the parameters of ``max_iter=20`` once (on the CPU; with a constant
        ``meta_lr_schedule``, whose cosine restarts at each call from ``meta_lr``).
        A clone, or an estimator loaded by :func:`sklmeta.persistence.save`, keeps the
        initialisation but not this state: it continues with a fresh optimiser and
        draws tasks from ``random_state`` again.
    checkpoint_path : str, path-like or None, default=None
        Write a checkpoint of meta-training to this file every ``checkpoint_every``
        meta-iterations and when :meth:`meta_fit` ends (also by Ctrl-C or divergence):
        the meta-learned tensors, the optimiser's state, the iteration count, the
        history and the random generators' states. It is written atomically (a kill
        during the write leaves the previous checkpoint whole) and holds no code
        (``torch.load(path, weights_only=True)`` reads it). With ``warm_start=True``, an
        estimator that has not been meta-fitted in this process resumes from an
        existing checkpoint: a run it stopped before ``max_iter`` finishes that run
        (ending with the parameters an uninterrupted run would have, bit for bit on the
        CPU), a finished one continues for ``max_iter`` more iterations. Rerunning the
        same script after a crash therefore continues it. A checkpoint written with
        other hyper-parameters, another estimator or other shapes is refused with an
        error naming what differs. With ``warm_start=False`` an existing checkpoint is
        overwritten (with a warning). Under ``torchrun``, only rank 0 writes.
    checkpoint_every : int, default=100
        Meta-iterations between checkpoints (counted over all calls).
    early_stopping : bool, default=False
        Score the meta-learned initialisation on validation tasks every
        ``validation_every`` meta-iterations (with :meth:`score`: adapt to each task's
        support set, score its query set), stop when ``n_iter_no_change`` validations
        in a row have not improved the best score by at least ``tol``, and keep the
        best initialisation. The validation tasks are those passed to
        :meth:`meta_fit` as ``validation_tasks``; else ``validation_fraction`` of a
        finite task collection, set aside (not meta-trained on), or
        ``n_validation_tasks`` drawn once from a task distribution.
    validation_fraction : float, default=0.1
        Share of a finite task collection kept aside for validation (at least one
        task each side), when ``early_stopping`` and no ``validation_tasks``.
    n_validation_tasks : int, default=100
        Validation tasks drawn (once, with their own seed) from a task distribution,
        when ``early_stopping`` and no ``validation_tasks``. Tasks of a distribution
        over a fixed pool (such as classes of Omniglot's training alphabets) share
        that pool with meta-training: pass ``validation_tasks`` from held-out classes
        to measure generalisation to new classes.
    validation_every : int, default=100
        Meta-iterations between validations (counted over all calls).
    n_iter_no_change : int, default=10
        Validations without an improvement of ``tol`` before early stopping.
    tol : float, default=1e-4
        Least improvement of the validation score (R^2 or accuracy) that counts.

    Attributes
    ----------
    meta_params_ : dict of str to torch.Tensor
        The meta-learned initialisation (CPU tensors).
    adapted_params_ : dict of str to torch.Tensor
        Parameters after the last :meth:`adapt`.
    module_ : torch.nn.Module
        The network's structure (its own parameter values are not used).
    meta_history_ : dict of str to ndarray
        Per meta-iteration: ``meta_loss`` (mean query loss after adaptation),
        ``init_grad_norm`` (Frobenius norm of the first inner gradient, averaged over
        the meta-batch) and ``wall_time`` (seconds since the start of meta-training);
        with validation tasks, ``validation_score`` (NaN at iterations not validated).
    n_iter_ : int
        Meta-iterations run so far (with early stopping, including those after the
        best one).
    best_validation_score_ : float
        With ``early_stopping``: the best validation score, whose initialisation
        ``meta_params_`` is.
    best_iter_ : int
        With ``early_stopping``: the meta-iteration count of that initialisation.
    world_size_ : int
        Processes the last :meth:`meta_fit` shared each meta-batch with (1 without
        ``torchrun``).
    strategy_ : str
        The strategy used.
    support_inputs_ : torch.Tensor or None
        The support inputs of the last :meth:`adapt`, kept when the network has
        BatchNorm layers: their statistics normalise what is predicted.
    meta_interrupted_ : bool
        Whether the last ``meta_fit`` was stopped by KeyboardInterrupt.
    input_shape_ : tuple of int
        Shape of one input example as the network sees it.
    n_features_in_ : int
        Number of input values per example seen at :meth:`adapt`.
"""


class _MAMLBase(BaseMetaEstimator):
    _parameter_constraints = {
        **BaseMetaEstimator._parameter_constraints,
        "meta_lr": [Interval(Real, 0, None, closed="neither")],
        "first_order": ["boolean"],
        "checkpoint_inner_loop": ["boolean"],
        "learn_inner_lr": [StrOptions({"elementwise", "per_layer_step"}), Options(bool, {False})],
        "adapt_params": [StrOptions({"all", "head"}), list, tuple],
        "multi_step_loss": [Interval(Integral, 0, None, closed="left")],
        "first_order_iters": [Interval(Integral, 0, None, closed="left")],
        "meta_lr_schedule": [StrOptions({"constant", "cosine"})],
        "per_step_bn": ["boolean"],
    }

    def _second_order(self):
        return not self.first_order

    def _adapt_names(self, module, params):
        names = adapted_parameter_names(module, params, self.adapt_params)
        per_step = set(per_step_parameter_names(module))
        if not per_step:
            return names
        if not isinstance(self.adapt_params, str) and per_step & set(names):
            raise ValueError(
                "adapt_params names per-step BatchNorm parameters "
                f"{sorted(per_step & set(names))}: with per_step_bn=True they are "
                "meta-learned for each step and do not adapt."
            )
        # MAML++: the per-step BatchNorm weights are meta-learned, not adapted
        return tuple(k for k in (params if names is None else names) if k not in per_step)

    def _engine_module(self, module):
        module = super()._engine_module(module)
        if self.per_step_bn:
            per_step_batchnorm(module, self.inner_steps)
        return module

    def _prediction_context(self):
        steps = self.inner_steps if self.adapt_steps is None else self.adapt_steps
        return batch_norm_step(max(steps, 1) - 1)

    def _extra_meta_tensors(self, module, params, warm):
        if not self.learn_inner_lr:
            return {}
        names = self._adapt_names(module, params) or tuple(params)
        if self.learn_inner_lr == "elementwise":  # Meta-SGD: one rate per weight
            rates = {k: torch.full_like(params[k], self.inner_lr) for k in names}
        else:  # MAML++'s LSLR: one rate per parameter tensor and inner step
            rates = {k: torch.full((self.inner_steps,), float(self.inner_lr),
                                   dtype=params[k].dtype) for k in names}
        if warm and getattr(self, "inner_lrs_", None) is not None:
            fitted = {k: tuple(v.shape) for k, v in self.inner_lrs_.items()}
            if fitted != {k: tuple(v.shape) for k, v in rates.items()}:
                raise ValueError(
                    "warm_start=True but learn_inner_lr, inner_steps or adapt_params "
                    "changed since the last meta_fit: the learned rates "
                    f"{fitted} cannot continue as {self.learn_inner_lr!r} rates. Set "
                    "warm_start=False to meta-learn afresh."
                )
            rates = self.inner_lrs_
        return {LR_PREFIX + k: v for k, v in rates.items()}

    def _commit_extra_meta_tensors(self, meta):
        params, rates = split_learned_rates(meta)
        if rates:
            self.inner_lrs_ = rates
        else:
            self.__dict__.pop("inner_lrs_", None)
        return params

    def _adaptation_inner_loop(self, module, params, steps, device):
        rates = getattr(self, "inner_lrs_", None)
        head = self._head_config(module, params)
        if not self.learn_inner_lr or rates is None:
            return replace(super()._adaptation_inner_loop(module, params, steps, device),
                           per_step_bn=self.per_step_bn, **head)
        # the kind of rates is what they were learned as (their shapes), whatever
        # learn_inner_lr says now: per-step rates are vectors, element-wise ones have
        # their parameter's shape
        per_step = any(tuple(v.shape) != tuple(params[k].shape) for k, v in rates.items())
        return InnerLoop({k: v.to(device) for k, v in rates.items()}, steps, first_order=True,
                         adapt_names=tuple(rates), lr_per_step=per_step,
                         per_step_bn=self.per_step_bn, **head)

    def _head_config(self, module, params):
        """InnerLoop options for ``head_init`` (classifiers; "meta" elsewhere)."""
        head_init = getattr(self, "head_init", "meta")
        if head_init == "meta":
            return {}
        names = adapted_parameter_names(module, params, "head")
        weights = [n for n in names if n.endswith("weight")]
        biases = [n for n in names if n.endswith("bias")]
        if len(weights) != 1 or len(biases) != 1:
            raise ValueError(
                f"head_init={head_init!r} needs a last layer with a weight and a bias; "
                f"the network's last layer has {list(names)}."
            )
        adapted = self._adapt_names(module, params)
        if adapted is not None and not set(names) <= set(adapted):
            raise ValueError(f"head_init={head_init!r} needs adapt_params to include the head.")
        return {"head_init": head_init,
                "head": (weights[0].rsplit(".", 1)[0], weights[0], biases[0]),
                # one prototype per output unit; a class absent from a support set gets
                # a zero prototype (weight and bias 0): at adapt its unit is never read
                # (classes_ maps the present ones), at meta-training every episode
                # should have each class in its support set
                "n_classes": int(params[weights[0]].shape[0])}

    def _check_strategy(self, strategy):
        if strategy.endswith("+compile") and self.per_step_bn:
            raise ValueError(
                f"strategy={strategy!r} cannot run per_step_bn (the BatchNorm weights of "
                "each step are chosen by Python state that compiled code does not see). "
                "Use an eager strategy ('auto', 'vmap' or 'loop')."
            )
        if strategy.endswith("+compile") and (self.multi_step_loss or self.first_order_iters):
            raise ValueError(
                f"strategy={strategy!r} cannot run multi_step_loss or first_order_iters: "
                "their per-iteration changes would recompile every iteration. Use an "
                "eager strategy ('auto', 'vmap' or 'loop')."
            )

    def _make_meta_update(self, module, params, schedule):
        optimizer = torch.optim.Adam(list(params.values()), lr=self.meta_lr)
        network = {k: v for k, v in params.items() if not k.startswith(LR_PREFIX)}
        inner = InnerLoop(
            self.inner_lr, self.inner_steps, self.first_order,
            adapt_names=self._adapt_names(module, network),
            checkpoint=self.checkpoint_inner_loop,
            lr_per_step=self.learn_inner_lr == "per_layer_step",
            per_step_bn=self.per_step_bn,
            **self._head_config(module, network),
        )

        def update(loss, params, buffers, batch, strategy, iteration, processes=None):
            # MAML++: first order for the first iterations, weighted per-step losses
            first_order = self.first_order or iteration < self.first_order_iters
            weights = (multi_step_loss_weights(self.inner_steps, iteration,
                                               self.multi_step_loss)
                       if self.multi_step_loss else None)
            algorithm = MAML(replace(inner, first_order=first_order), step_weights=weights)
            grads, task_losses, norms = _engine.meta_gradient(
                algorithm, loss, params, buffers, batch, strategy, processes
            )
            for name, p in params.items():
                p.grad = grads[name]
            if self.meta_lr_schedule == "cosine":
                # MAML++: cosine annealing over this call's max_iter, in closed form so
                # that a run resumed from a checkpoint takes the same steps
                for group in optimizer.param_groups:
                    group["lr"] = schedule.cosine(self.meta_lr, iteration)
            optimizer.step()
            return task_losses, norms

        update.optimizer = optimizer  # its state is kept for warm_start
        return update


class MAMLRegressor(MetaRegressorMixin, RegressorMixin, _MAMLBase):
    __doc__ = (
        """Model-Agnostic Meta-Learning for regression (Finn et al., 2017).

    Meta-learns an initialisation from which a few gradient steps on a small support
    set give a good regressor for a new task. Second-order by default;
    ``first_order=True`` gives first-order MAML.

    Parameters
    ----------"""
        + _COMMON_PARAMS_DOC.format(inner_lr=0.01, inner_steps=1)
        + """    meta_lr : float, default=0.001
        Adam learning rate of the meta-update (beta in the papers).
"""
        + _MAML_PARAMS_DOC
        + _TAIL_PARAMS_DOC.format(meta_batch_size=25, max_iter=1000)
        + _LEARNED_RATES_DOC
        + """
    Examples
    --------
    >>> from sklmeta import MAMLRegressor
    >>> from sklmeta.tasks import SinusoidTasks
    >>> tasks = SinusoidTasks(k_support=10, k_query=10)
    >>> maml = MAMLRegressor(max_iter=50, device="cpu", random_state=0).meta_fit(tasks)
    >>> task = tasks.sample(1, random_state=1)[0]
    >>> maml.adapt(task.X_support, task.y_support).predict(task.X_query).shape
    (10,)
    """
    )

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(40, 40),
        inner_lr=0.01,
        inner_steps=1,
        adapt_steps=None,
        meta_lr=0.001,
        meta_batch_size=25,
        max_iter=1000,
        first_order=False,
        checkpoint_inner_loop=False,
        learn_inner_lr=False,
        adapt_params="all",
        multi_step_loss=0,
        first_order_iters=0,
        meta_lr_schedule="constant",
        per_step_bn=False,
        strategy="auto",
        batch_norm_stats="support",
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        checkpoint_path=None,
        checkpoint_every=100,
        early_stopping=False,
        validation_fraction=0.1,
        n_validation_tasks=100,
        validation_every=100,
        n_iter_no_change=10,
        tol=1e-4,
        **module__params,
    ):
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.adapt_steps = adapt_steps
        self.meta_lr = meta_lr
        self.meta_batch_size = meta_batch_size
        self.max_iter = max_iter
        self.first_order = first_order
        self.checkpoint_inner_loop = checkpoint_inner_loop
        self.learn_inner_lr = learn_inner_lr
        self.adapt_params = adapt_params
        self.multi_step_loss = multi_step_loss
        self.first_order_iters = first_order_iters
        self.meta_lr_schedule = meta_lr_schedule
        self.per_step_bn = per_step_bn
        self.strategy = strategy
        self.batch_norm_stats = batch_norm_stats
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_validation_tasks = n_validation_tasks
        self.validation_every = validation_every
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self._set_module_params(module__params)


class MAMLClassifier(MetaClassifierMixin, ClassifierMixin, _MAMLBase):
    __doc__ = (
        """Model-Agnostic Meta-Learning for N-way K-shot classification (Finn et al., 2017).

    The number of output units, ``n_way_``, is fixed at meta-training from the task
    distribution (its ``n_way`` attribute, or the labels it produces). At
    :meth:`adapt`, support labels may be any values; ``classes_`` maps them onto the
    output units and :meth:`predict` returns them.

    Parameters
    ----------"""
        + _COMMON_PARAMS_DOC.format(inner_lr=0.4, inner_steps=1)
        + """    meta_lr : float, default=0.001
        Adam learning rate of the meta-update.
"""
        + _MAML_PARAMS_DOC
        + "\n"
        + """    head_init : {"meta", "zero", "prototypes"}, default="meta"
        Where the output layer starts each task's adaptation (at meta-training and in
        :meth:`adapt`): the meta-learned values; zero (as in UnicornMAML); or the
        support set's class prototypes ``c_k`` in the last layer's input, as weight
        ``2 c_k`` and bias ``-||c_k||^2`` (Proto-MAML, Triantafillou et al. 2020: with
        ``adapt_steps=0`` it is a nearest-prototype classifier). The last two make the
        start independent of the order of the labels; the body is meta-learned in
        every case."""
        + _TAIL_PARAMS_DOC.format(meta_batch_size=32, max_iter=1000)
        + _LEARNED_RATES_DOC
        + """    n_way_ : int
        Number of output units (classes per task at meta-training).
    classes_ : ndarray
        Labels of the support set of the last :meth:`adapt`, in output-unit order.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklmeta import MAMLClassifier
    >>> from sklmeta.tasks import EpisodicTasks
    >>> X, y = load_digits(return_X_y=True)
    >>> tasks = EpisodicTasks(X[y < 7] / 16, y[y < 7], n_way=3, k_shot=5, k_query=5)
    >>> clf = MAMLClassifier(hidden_layer_sizes=(64,), max_iter=20, device="cpu",
    ...                      random_state=0).meta_fit(tasks)
    >>> new = (y >= 7)  # digits 7, 8, 9 were never seen in meta-training
    >>> clf.adapt(X[new][:30] / 16, y[new][:30]).classes_
    array([7, 8, 9])
    """
    )

    _parameter_constraints = {
        **_MAMLBase._parameter_constraints,
        "head_init": [StrOptions({"meta", "zero", "prototypes"})],
    }

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(40, 40),
        inner_lr=0.4,
        inner_steps=1,
        adapt_steps=None,
        meta_lr=0.001,
        meta_batch_size=32,
        max_iter=1000,
        first_order=False,
        checkpoint_inner_loop=False,
        learn_inner_lr=False,
        adapt_params="all",
        head_init="meta",
        multi_step_loss=0,
        first_order_iters=0,
        meta_lr_schedule="constant",
        per_step_bn=False,
        strategy="auto",
        batch_norm_stats="support",
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        checkpoint_path=None,
        checkpoint_every=100,
        early_stopping=False,
        validation_fraction=0.1,
        n_validation_tasks=100,
        validation_every=100,
        n_iter_no_change=10,
        tol=1e-4,
        **module__params,
    ):
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.adapt_steps = adapt_steps
        self.meta_lr = meta_lr
        self.meta_batch_size = meta_batch_size
        self.max_iter = max_iter
        self.first_order = first_order
        self.checkpoint_inner_loop = checkpoint_inner_loop
        self.learn_inner_lr = learn_inner_lr
        self.adapt_params = adapt_params
        self.head_init = head_init
        self.multi_step_loss = multi_step_loss
        self.first_order_iters = first_order_iters
        self.meta_lr_schedule = meta_lr_schedule
        self.per_step_bn = per_step_bn
        self.strategy = strategy
        self.batch_norm_stats = batch_norm_stats
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_validation_tasks = n_validation_tasks
        self.validation_every = validation_every
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self._set_module_params(module__params)
