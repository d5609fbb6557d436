"""Reptile (Nichol, Achiam and Schulman, 2018) estimators."""

from dataclasses import replace
from numbers import Real

from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions

from . import _engine
from .algorithms import InnerLoop, Reptile
from .base import BaseMetaEstimator, MetaClassifierMixin, MetaRegressorMixin
from .maml import _COMMON_PARAMS_DOC, _TAIL_PARAMS_DOC

__all__ = ["ReptileRegressor", "ReptileClassifier"]


class _ReptileBase(BaseMetaEstimator):
    _parameter_constraints = {
        **BaseMetaEstimator._parameter_constraints,
        "meta_step_size": [Interval(Real, 0, None, closed="neither")],
        "meta_step_size_final": [Interval(Real, 0, None, closed="left"), None],
        "inner_optimizer": [StrOptions({"sgd", "adam"})],
    }

    def _adaptation_inner_loop(self, module, params, steps, device):
        return replace(super()._adaptation_inner_loop(module, params, steps, device),
                       optimizer=self.inner_optimizer)

    def _make_meta_update(self, module, params, schedule):
        algorithm = Reptile(InnerLoop(self.inner_lr, self.inner_steps, first_order=True,
                                      optimizer=self.inner_optimizer))

        def update(loss, params, buffers, batch, strategy, iteration, processes=None):
            direction, task_losses, norms = _engine.meta_direction(
                algorithm, loss, params, buffers, batch, strategy, processes
            )
            step = self.meta_step_size
            if self.meta_step_size_final is not None:  # linear annealing, as in the paper
                step += ((self.meta_step_size_final - self.meta_step_size)
                         * schedule.progress(iteration))
            for name, p in params.items():
                p.add_(direction[name], alpha=step)
            return task_losses, norms

        return update


_REPTILE_NOTES = """
    Each meta-iteration adapts every task of the meta-batch with ``inner_steps`` plain
    SGD steps on its support set and moves the initialisation a fraction
    ``meta_step_size`` (epsilon in the paper) of the way towards the mean of the
    adapted weights. The query sets are used only to report ``meta_loss``.
"""


_META_STEP_DOC = """    meta_step_size : float, default={meta_step_size}
        Interpolation step of the meta-update, epsilon in the paper.
    meta_step_size_final : float or None, default=None
        Anneal the meta step linearly from ``meta_step_size`` to this value over each
        ``meta_fit`` call's ``max_iter`` (the paper anneals to 0); None keeps it
        constant.
    inner_optimizer : {{"sgd", "adam"}}, default="sgd"
        The inner steps at meta-training and in :meth:`adapt`: plain gradient steps of
        ``inner_lr``, or Adam with learning rate ``inner_lr``, beta1 = 0 and a fresh
        state for every task (the paper's configuration; its Omniglot runs use
        ``inner_lr=0.001``)."""


class ReptileRegressor(MetaRegressorMixin, RegressorMixin, _ReptileBase):
    __doc__ = (
        """Reptile for regression (Nichol et al., 2018).
"""
        + _REPTILE_NOTES
        + """
    Parameters
    ----------"""
        + _COMMON_PARAMS_DOC.format(inner_lr=0.02, inner_steps=5)
        + _META_STEP_DOC.format(meta_step_size=0.1)
        + _TAIL_PARAMS_DOC.format(meta_batch_size=5, max_iter=1000)
        + """
    Examples
    --------
    >>> from sklmeta import ReptileRegressor
    >>> from sklmeta.tasks import SinusoidTasks
    >>> tasks = SinusoidTasks(k_support=10, k_query=10)
    >>> reptile = ReptileRegressor(max_iter=50, device="cpu", random_state=0).meta_fit(tasks)
    >>> task = tasks.sample(1, random_state=1)[0]
    >>> reptile.adapt(task.X_support, task.y_support).predict(task.X_query).shape
    (10,)
    """
    )

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(40, 40),
        inner_lr=0.02,
        inner_steps=5,
        adapt_steps=None,
        meta_step_size=0.1,
        meta_step_size_final=None,
        inner_optimizer="sgd",
        meta_batch_size=5,
        max_iter=1000,
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
        self.meta_step_size = meta_step_size
        self.meta_step_size_final = meta_step_size_final
        self.inner_optimizer = inner_optimizer
        self.meta_batch_size = meta_batch_size
        self.max_iter = max_iter
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


class ReptileClassifier(MetaClassifierMixin, ClassifierMixin, _ReptileBase):
    __doc__ = (
        """Reptile for N-way K-shot classification (Nichol et al., 2018).
"""
        + _REPTILE_NOTES
        + """
    Parameters
    ----------"""
        + _COMMON_PARAMS_DOC.format(inner_lr=0.1, inner_steps=5)
        + _META_STEP_DOC.format(meta_step_size=0.5)
        + _TAIL_PARAMS_DOC.format(meta_batch_size=5, max_iter=1000)
        + """    n_way_ : int
        Number of output units (classes per task at meta-training).
    classes_ : ndarray
        Labels of the support set of the last :meth:`adapt`, in output-unit order.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklmeta import ReptileClassifier
    >>> from sklmeta.tasks import EpisodicTasks
    >>> X, y = load_digits(return_X_y=True)
    >>> tasks = EpisodicTasks(X[y < 7] / 16, y[y < 7], n_way=3, k_shot=5, k_query=5)
    >>> clf = ReptileClassifier(hidden_layer_sizes=(64,), max_iter=20, device="cpu",
    ...                         random_state=0).meta_fit(tasks)
    >>> clf.n_way_
    3
    """
    )

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(40, 40),
        inner_lr=0.1,
        inner_steps=5,
        adapt_steps=None,
        meta_step_size=0.5,
        meta_step_size_final=None,
        inner_optimizer="sgd",
        meta_batch_size=5,
        max_iter=1000,
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
        self.meta_step_size = meta_step_size
        self.meta_step_size_final = meta_step_size_final
        self.inner_optimizer = inner_optimizer
        self.meta_batch_size = meta_batch_size
        self.max_iter = max_iter
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
