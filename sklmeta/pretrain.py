"""The joint-pretraining baseline of Finn et al. (2017): no inner loop at meta-training."""

from numbers import Real

import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from . import _engine
from .algorithms import JointPretraining
from .base import BaseMetaEstimator, MetaClassifierMixin, MetaRegressorMixin
from .maml import _COMMON_PARAMS_DOC, _TAIL_PARAMS_DOC

__all__ = ["PretrainedRegressor", "PretrainedClassifier"]


class _PretrainBase(BaseMetaEstimator):
    _parameter_constraints = {
        **BaseMetaEstimator._parameter_constraints,
        "meta_lr": [Interval(Real, 0, None, closed="neither")],
        # no inner loop to compile: pre-training is one forward and backward pass
        "strategy": [StrOptions({"auto", "vmap", "loop"})],
    }

    def _make_meta_update(self, module, params, schedule):
        optimizer = torch.optim.Adam(list(params.values()), lr=self.meta_lr)
        algorithm = JointPretraining()

        def update(loss, params, buffers, batch, strategy, iteration, processes=None):
            grads, task_losses, norms = _engine.meta_gradient(
                algorithm, loss, params, buffers, batch, strategy, processes
            )
            for name, p in params.items():
                p.grad = grads[name]
            optimizer.step()
            return task_losses, norms

        update.optimizer = optimizer  # its state is kept for warm_start
        return update


_PRETRAIN_NOTES = """
    ``meta_fit`` trains one network with Adam on the pooled support and query data of
    each meta-batch, with no inner loop: the baseline MAML is compared against in
    Finn et al. (2017). :meth:`adapt` then fine-tunes it with ``adapt_steps`` plain
    gradient steps of size ``inner_lr``, exactly as the meta-learners adapt.
"""


class PretrainedRegressor(MetaRegressorMixin, RegressorMixin, _PretrainBase):
    __doc__ = (
        """Joint pre-training on all tasks, then fine-tuning: the baseline for regression.
"""
        + _PRETRAIN_NOTES
        + """
    Parameters
    ----------"""
        + _COMMON_PARAMS_DOC.format(inner_lr=0.01, inner_steps=1)
        + """    meta_lr : float, default=0.001
        Adam learning rate of pre-training."""
        + _TAIL_PARAMS_DOC.format(meta_batch_size=25, max_iter=1000)
        + """
    Examples
    --------
    >>> from sklmeta import PretrainedRegressor
    >>> from sklmeta.tasks import SinusoidTasks
    >>> tasks = SinusoidTasks(k_support=10, k_query=10)
    >>> base = PretrainedRegressor(max_iter=50, device="cpu", random_state=0).meta_fit(tasks)
    >>> task = tasks.sample(1, random_state=1)[0]
    >>> base.adapt(task.X_support, task.y_support).predict(task.X_query).shape
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


class PretrainedClassifier(MetaClassifierMixin, ClassifierMixin, _PretrainBase):
    __doc__ = (
        """Joint pre-training on all tasks, then fine-tuning: the baseline for classification.
"""
        + _PRETRAIN_NOTES
        + """
    Episode labels are arbitrary per task, so the pooled model learns features and a
    head that fine-tuning re-purposes; it is the baseline, not a competitor.

    Parameters
    ----------"""
        + _COMMON_PARAMS_DOC.format(inner_lr=0.4, inner_steps=1)
        + """    meta_lr : float, default=0.001
        Adam learning rate of pre-training."""
        + _TAIL_PARAMS_DOC.format(meta_batch_size=32, max_iter=1000)
        + """    n_way_ : int
        Number of output units.
    classes_ : ndarray
        Labels of the support set of the last :meth:`adapt`.
    """
    )

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
