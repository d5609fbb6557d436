"""Shared machinery of the meta-learning estimators.

An estimator holds its hyper-parameters (stored untouched by ``__init__``) and its
fitted state (attributes ending in ``_``); the numerical work is done by the pure
functions of :mod:`sklmeta._engine`. This module validates input, moves arrays to
tensors and back, runs the meta-training loop with progress and interruption, and
makes sure a failed call leaves the estimator as it was.
"""

import copy
import numbers
import sys
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, column_or_1d

from . import _engine
from ._device import fall_back_to_cpu_if_unavailable, resolve_device
from .networks import MLP, BatchNorm1d, Conv4, convert_batchnorm, forward, uses_reference_rows
from .tasks import TaskBatch, TaskSequence
from .tasks._base import Task, as_rng

__all__ = ["BaseMetaEstimator", "MetaRegressorMixin", "MetaClassifierMixin"]


def _is_array_like(obj):
    """Whether ``obj`` is data (an array, a DataFrame or Series, a tensor...), not tasks.

    pandas and polars objects have a ``sample`` method of their own, so having one
    does not make an object a task distribution.
    """
    return (
        isinstance(obj, (np.ndarray, str, bytes, torch.Tensor))
        or hasattr(obj, "__array__")
        or hasattr(obj, "__array_namespace__")
        or hasattr(obj, "__dataframe__")
        or hasattr(obj, "iloc")
    )


def _is_task_distribution(obj):
    return callable(getattr(obj, "sample", None)) and not _is_array_like(obj)


def _is_task_list(obj):
    return isinstance(obj, (list, tuple)) and len(obj) > 0 and all(isinstance(t, Task) for t in obj)


def _as_task_source(tasks):
    """A task distribution (has ``sample``), or a finite sequence of tasks wrapped as one."""
    if isinstance(tasks, TaskBatch) or _is_task_list(tasks):
        return TaskSequence(tasks)
    if _is_task_distribution(tasks):
        return tasks
    hint = (
        " To adapt to a support set (X, y), call adapt(X, y) or fit(X, y)."
        if _is_array_like(tasks) else ""
    )
    raise TypeError(
        "tasks must be a task distribution (an object with a "
        "sample(n_tasks, random_state) method, e.g. sklmeta.tasks.SinusoidTasks), a "
        "TaskBatch, or a non-empty list of sklmeta.tasks.Task; got "
        f"{type(tasks).__name__}.{hint}"
    )


def _is_task_collection(X):
    return isinstance(X, TaskBatch) or _is_task_list(X) or _is_task_distribution(X)


def _as_finite_tasks(X):
    if isinstance(X, TaskBatch) or isinstance(X, (list, tuple)):
        return X
    raise TypeError(
        "score needs a finite collection of tasks (a TaskBatch or a list of Task); "
        f"got {type(X).__name__}. Use tasks.sample(n, random_state) to draw one."
    )


def _as_tensor(array, dtype=None, device=None):
    """``torch.as_tensor`` of array-like data, copying what torch cannot share.

    torch refuses negative strides (``X[::-1]``) and warns on read-only arrays
    (joblib memmaps, pandas copy-on-write columns).
    """
    array = np.asarray(array)
    if not array.flags.writeable or any(stride < 0 for stride in array.strides):
        array = np.array(array)
    return torch.as_tensor(array, dtype=dtype, device=device)


def _to_input_tensor(X, input_shape, device, dtype, n_lead=1):
    """Array of examples -> tensor ``[*lead, *input_shape]`` (flattened images are reshaped)."""
    X = _as_tensor(X)
    return X.reshape(*X.shape[:n_lead], *input_shape).to(device=device, dtype=dtype)


def split_module_tensors(module):
    """``(params, buffers)`` of a module, copied: the parameters that are meta-learned
    and adapted, and the rest.

    Parameters frozen the PyTorch way (``requires_grad=False``) are neither
    meta-learned nor adapted: they travel with the buffers, as constants.
    """
    params, buffers = {}, {}
    for name, value in module.named_parameters():
        (params if value.requires_grad else buffers)[name] = value.detach().clone()
    for name, value in module.named_buffers():
        buffers[name] = value.detach().clone()
    return params, buffers


def _configure_for_engine(module):
    """Put a module copy into the state the engine assumes.

    Dropout and other train-time randomness are off (eval mode). torch's
    ``BatchNorm1d``/``BatchNorm2d`` layers become those of :mod:`sklmeta.networks`
    (same parameters), which normalise with the support set's statistics or the
    current batch's (``batch_norm_stats``) and keep no running statistics: updating
    them in place is not possible inside ``torch.func`` transforms, and would make the
    initialisation depend on the last meta-batch seen.
    """
    module.eval()
    convert_batchnorm(module)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):  # kinds not converted
            m.train()
            m.track_running_stats = False
    return module


def _prediction_dtype(input_dtype, params, device):
    """The floating-point type predictions are computed and returned in.

    As scikit-learn's MLP: float32 inputs give float32 outputs and float64 inputs
    float64 outputs. The learned float32 weights are exact in float64, so a float64
    prediction is the same function computed more precisely, and each row's result is
    then independent of the batch it is computed in to float64 rounding (float32
    matrix-product kernels sum in other orders for other batch sizes and CPUs). A
    float64 network always predicts in float64; MPS devices have no float64.
    """
    dtype = torch.promote_types(
        torch.float64 if input_dtype == np.float64 else torch.float32,
        next(iter(params.values())).dtype,
    )
    return torch.float32 if device.type == "mps" else dtype


def _cast_float(tensor, device, dtype):
    return tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)


# features or targets of larger mean or spread than this get a warning at meta_fit
_UNSCALED = 100.0
_SCALE_SAMPLE = 100_000


def _warn_if_single_example_support(module, n_support, batch_norm_stats):
    """One support example has zero BatchNorm1d variance: support statistics then scale
    new examples by 1/sqrt(eps) (about 316)."""
    if n_support == 1 and batch_norm_stats == "support" and any(
        isinstance(m, BatchNorm1d) for m in module.modules()
    ):
        warnings.warn(
            "The support set has one example, and BatchNorm1d statistics of one example "
            "have zero variance: batch_norm_stats='support' then multiplies what is "
            "predicted by about 1/sqrt(eps). Use at least two support examples, a network "
            "without BatchNorm1d, or batch_norm_stats='transductive'.",
            UserWarning,
            stacklevel=3,
        )


def _check_float32_range(array, name):
    """Refuse values that float32, the networks' precision, turns into infinity."""
    array = np.asarray(array)
    # float32 arrays cannot hold such values (and infinity is refused elsewhere)
    if array.dtype.itemsize > 4 and array.dtype.kind == "f" and array.size and (
        np.abs(array).max() > _FLOAT32_MAX
    ):
        raise ValueError(
            f"{name} has values beyond float32's range (|value| > {_FLOAT32_MAX:.3g}), "
            "which the network would see as infinity; standardise the data."
        )


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _all_finite(*tensors):
    """Whether every tensor is free of NaN and infinity (one device sync in all)."""
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


class BaseMetaEstimator(BaseEstimator):
    """Base class of the meta-learning estimators; not for direct use.

    Subclasses define ``__init__`` (explicit keyword arguments, as scikit-learn
    requires), ``_make_meta_update`` (returns the function that performs one
    meta-iteration on a task batch) and mix in
    :class:`MetaRegressorMixin` or :class:`MetaClassifierMixin` for targets.
    """

    _parameter_constraints = {
        "module": [None, torch.nn.Module],
        "hidden_layer_sizes": ["array-like"],
        "inner_lr": [Interval(Real, 0, None, closed="neither")],
        "inner_steps": [Interval(Integral, 1, None, closed="left")],
        "adapt_steps": [Interval(Integral, 0, None, closed="left"), None],
        "meta_batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "strategy": [StrOptions({"auto", "vmap", "loop", "vmap+compile", "loop+compile"})],
        "batch_norm_stats": [StrOptions({"support", "transductive"})],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    # ------------------------------------------------------------------ meta-training
    def meta_fit(self, tasks):
        """Meta-learn the initialisation from a task distribution or a set of tasks.

        Parameters
        ----------
        tasks : task distribution, TaskBatch or list of Task
            A distribution is any object with ``sample(n_tasks, random_state)``
            returning a :class:`~sklmeta.tasks.TaskBatch`; a finite collection of
            tasks of identical shapes is sampled ``meta_batch_size`` at a time.

        Returns
        -------
        self : object
            The meta-fitted estimator; any earlier adaptation is discarded.

        Notes
        -----
        Pressing Ctrl-C (``KeyboardInterrupt``) stops meta-training after the current
        iteration's update; the estimator keeps what was learned so far, warns, and
        records ``meta_interrupted_ = True``. ``warm_start=True`` continues from it.
        Interrupted before its first update, nothing changes and the
        ``KeyboardInterrupt`` propagates.

        If the meta-loss or the meta-parameters become NaN or infinite, meta-training
        stops with a ``RuntimeWarning`` and keeps the last finite initialisation (a
        ``ValueError`` if that happens at the first iteration). The first meta-batch
        is checked for data far from unit scale (a warning), every meta-batch for
        shapes, labels and values, and a custom ``module`` with one forward pass.
        """
        self._validate_params()
        self._check_hidden_layer_sizes()
        source = _as_task_source(tasks)
        device = resolve_device(self.device)
        rng = as_rng(self.random_state)
        first = self._sample_batch(source, rng)
        input_shape, target_info = self._infer_task_shapes(first, source)
        self._warn_if_unscaled(first)

        warm = self.warm_start and hasattr(self, "meta_params_")
        if warm:
            if input_shape != self.input_shape_ or target_info != self._target_info():
                raise ValueError(
                    "warm_start=True but the tasks' input shape or outputs "
                    f"({input_shape}, {target_info}) differ from those the estimator was "
                    f"meta-fitted on ({self.input_shape_}, {self._target_info()})."
                )
            self._check_architecture_unchanged(input_shape, target_info)
            module, params, buffers = self.module_, self.meta_params_, self.buffers_
            history = {k: list(v) for k, v in self.meta_history_.items()}
            n_iter_done = self.n_iter_
        else:
            module, params, buffers = self._init_model(input_shape, target_info, rng)
            history = {"meta_loss": [], "init_grad_norm": [], "wall_time": []}
            n_iter_done = 0
        self._check_module_output(module, params, buffers, first.X_support[0], input_shape,
                                  target_info)
        _warn_if_single_example_support(module, np.shape(first.X_support)[1],
                                        self.batch_norm_stats)
        strategy = _engine.choose_strategy(
            self.strategy, module, device, second_order=self._second_order(),
            n_tasks=len(first),
        )
        params = {k: v.detach().to(device).clone() for k, v in params.items()}
        buffers = {k: v.to(device) for k, v in buffers.items()}
        loss = _engine.make_loss(module, self._loss_fn(None), self.batch_norm_stats)
        update = self._make_meta_update(params)

        losses = torch.zeros(self.max_iter, device=device)
        norms = torch.zeros(self.max_iter, device=device)
        wall = np.zeros(self.max_iter)
        progress = self._progress_bar()
        start = time.perf_counter()
        last_report = start
        done = 0
        interrupted = diverged = False
        last_finite = None
        try:
            batch = first
            for it in range(self.max_iter):
                if it > 0:
                    batch = self._sample_batch(source, rng)
                    self._check_batch_like(batch, first)
                    self._check_task_targets(batch, target_info)
                tensors = self._batch_to_tensors(batch, input_shape, device, params)
                # the parameters after `done` updates: restored if this update diverges
                # or is interrupted half-way (a Ctrl-C can land inside optimizer.step)
                last_finite = {k: v.clone() for k, v in params.items()}
                task_losses, task_norms = update(loss, params, buffers, tensors, strategy)
                if not _all_finite(task_losses, *params.values()):
                    with torch.no_grad():  # keep the last finite initialisation
                        for k, v in params.items():
                            v.copy_(last_finite[k])
                    diverged = True
                    break
                losses[it] = task_losses.mean()
                norms[it] = task_norms.mean()
                # one statement: no signal is handled between these two stores
                done, last_finite = it + 1, None
                now = time.perf_counter()
                wall[it] = now - start
                if progress is not None and (now - last_report > 0.5 or done == self.max_iter):
                    window = losses[max(0, it - 49) : done].mean().item()  # one sync / report
                    progress.set_postfix(meta_loss=f"{window:.4g}", refresh=False)
                    progress.update(done - progress.n)
                    last_report = now
        except KeyboardInterrupt:
            interrupted = True
            if last_finite is not None:
                with torch.no_grad():
                    for k, v in params.items():
                        v.copy_(last_finite[k])
        finally:
            if progress is not None:
                progress.close()

        if done == 0 and interrupted:
            # nothing was learned: the estimator stays exactly as it was
            raise KeyboardInterrupt("meta_fit was interrupted before its first update.")
        if diverged:
            message = (
                f"meta_fit diverged at iteration {done + 1}: the meta-loss or the "
                f"meta-parameters became NaN or infinite ({self._step_sizes()}). Lower "
                "the step sizes, or standardise the data (features and targets of order "
                "1: see docs/sklearn.md)."
            )
            if done == 0:
                raise ValueError(message + " Nothing was learned; the estimator is unchanged.")
            warnings.warn(
                message + f" The estimator keeps the initialisation of iteration {done}.",
                RuntimeWarning,
                stacklevel=2,
            )
        if interrupted:
            warnings.warn(
                f"meta_fit interrupted after {done} of {self.max_iter} iterations; the "
                "estimator keeps the initialisation learned so far (meta_interrupted_ is "
                "True). To run the remaining iterations, call "
                f"set_params(warm_start=True, max_iter={self.max_iter - done}).meta_fit(...)",
                UserWarning,
                stacklevel=2,
            )
        offset = history["wall_time"][-1] if history["wall_time"] else 0.0
        history["meta_loss"] += losses[:done].cpu().tolist()
        history["init_grad_norm"] += norms[:done].cpu().tolist()
        history["wall_time"] += (wall[:done] + offset).tolist()

        # commit the new state in one place, so a failure above leaves self untouched
        for name in ("adapted_params_", "support_inputs_", "classes_", "n_features_in_"):
            self.__dict__.pop(name, None)
        self.module_ = module.cpu()
        self.meta_params_ = {k: v.detach().cpu() for k, v in params.items()}
        self.buffers_ = {k: v.detach().cpu() for k, v in buffers.items()}
        self.input_shape_ = input_shape
        self._set_target_info(target_info)
        self.meta_history_ = {k: np.asarray(v) for k, v in history.items()}
        self.n_iter_ = n_iter_done + done
        self.strategy_ = strategy
        self.meta_interrupted_ = interrupted
        return self

    def _progress_bar(self):
        if not self.verbose:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.max_iter, desc=f"{type(self).__name__}.meta_fit", file=sys.stderr,
            unit="it", dynamic_ncols=True,
        )

    def _sample_batch(self, source, rng):
        batch = source.sample(self.meta_batch_size, random_state=rng)
        if not isinstance(batch, TaskBatch):
            raise TypeError(
                "tasks.sample(n_tasks, random_state) must return a sklmeta.tasks."
                f"TaskBatch; got {type(batch).__name__}."
            )
        if len(batch) == 0:
            raise ValueError(
                f"tasks.sample({self.meta_batch_size}, random_state) returned a TaskBatch of "
                "no tasks."
            )
        for name, array in zip(("X_support", "y_support", "X_query", "y_query"), batch.arrays()):
            array = np.asarray(array)
            if array.dtype.kind not in "biuf":
                raise ValueError(f"tasks produced a non-numeric {name} (dtype {array.dtype}).")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError(f"tasks produced a {name} that contains NaN or infinity.")
            _check_float32_range(array, f"tasks' {name}")
        return batch

    @staticmethod
    def _check_batch_like(batch, first):
        for a, b in zip(batch.arrays(), first.arrays()):
            if np.shape(a)[1:] != np.shape(b)[1:]:
                raise ValueError(
                    "tasks.sample returned batches of changing shapes: "
                    f"{np.shape(b)[1:]} then {np.shape(a)[1:]}."
                )

    def _step_sizes(self):
        names = ("inner_lr", "meta_lr", "meta_step_size")
        return ", ".join(f"{n}={getattr(self, n)}" for n in names if hasattr(self, n))

    def _warn_if_unscaled(self, batch):
        """Warn when features or targets are far from order 1: the default step sizes
        and initialisations assume standardised data, and diverge silently without it."""
        parts = {"features": (batch.X_support, batch.X_query)}
        if self._TARGET_INFO == "n_outputs_":
            parts["targets"] = (batch.y_support, batch.y_query)
        for what, arrays in parts.items():
            # a prefix of each array is enough to see the scale, and bounds the memory
            values = np.concatenate(
                [np.asarray(a).ravel()[:_SCALE_SAMPLE].astype(np.float64) for a in arrays]
            )
            scale = max(abs(values.mean()), values.std())
            if scale > _UNSCALED:
                warnings.warn(
                    f"The tasks' {what} are of order {scale:.3g} (mean or standard "
                    "deviation of the first meta-batch): meta-learning with the default "
                    "step sizes expects standardised data (order 1) and is likely to "
                    "diverge or learn nothing. Standardise features and targets with "
                    "statistics of the meta-training data (docs/sklearn.md, 'Scaling').",
                    UserWarning,
                    stacklevel=3,
                )

    def _check_architecture_unchanged(self, input_shape, target_info):
        """warm_start continues the network it has: refuse one whose parameters changed."""
        _, fresh, _ = self._init_model(input_shape, target_info, as_rng(0))
        fitted = {k: tuple(v.shape) for k, v in self.meta_params_.items()}
        wanted = {k: tuple(v.shape) for k, v in fresh.items()}
        if fitted != wanted:
            raise ValueError(
                "warm_start=True but the network changed since the last meta_fit "
                "(hidden_layer_sizes or module): its parameters would be "
                f"{wanted}, the meta-learned ones are {fitted}. Set warm_start=False to "
                "meta-learn the new network from scratch."
            )

    def _check_module_output(self, module, params, buffers, X, input_shape, target_info,
                             exact=True):
        """One forward pass on a few examples, to name a mismatched ``module`` early."""
        if self.module is None:
            return
        X = _to_input_tensor(np.asarray(X)[:2], input_shape, "cpu",
                             next(iter(params.values())).dtype)
        try:
            with torch.no_grad():
                out = torch.func.functional_call(
                    module, ({k: v.cpu() for k, v in params.items()},
                             {k: v.cpu() for k, v in buffers.items()}), (X,)
                )
        except Exception as exc:  # torch raises many types for a shape mismatch
            raise ValueError(
                f"module cannot take the tasks' inputs: called on examples of shape "
                f"{tuple(input_shape)} (a batch {tuple(X.shape)}), it raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._check_output_shape(out, X.shape[0], target_info, exact)

    def _infer_task_shapes(self, batch, source):
        Xs, ys, Xq, yq = (np.asarray(a) for a in batch.arrays())
        if Xs.ndim < 3 or Xq.ndim < 3:
            raise ValueError(
                "tasks must give X_support and X_query of shape (n_tasks, n_examples, "
                f"*input_shape); got {Xs.shape} and {Xq.shape}."
            )
        if Xs.shape[2:] != Xq.shape[2:]:
            raise ValueError(
                f"X_support and X_query of the tasks differ in input shape: {Xs.shape[2:]} "
                f"and {Xq.shape[2:]}."
            )
        if ys.shape[:2] != Xs.shape[:2] or yq.shape[:2] != Xq.shape[:2]:
            raise ValueError(
                "tasks must give one target per example: X_support, y_support, X_query, "
                f"y_query have shapes {Xs.shape}, {ys.shape}, {Xq.shape}, {yq.shape}."
            )
        input_shape = self._model_input_shape(Xs.shape[2:])
        return input_shape, self._task_target_info(ys, yq, source)

    def _model_input_shape(self, shape):
        # a 2-D input is a single-channel image; the default conv net wants channels
        if len(shape) == 2 and self.module is None:
            return (1,) + tuple(shape)
        return tuple(shape)

    def _init_model(self, input_shape, target_info, rng):
        seed = int(rng.integers(2**31 - 1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.module is not None:
                module = copy.deepcopy(self.module)
            else:
                module = self._default_module(input_shape, target_info)
        module = _configure_for_engine(module.cpu())
        params, buffers = split_module_tensors(module)
        if not params:
            raise ValueError(
                "module has no parameters to meta-learn (none, or all with "
                "requires_grad=False)."
            )
        return module, params, buffers

    def _default_module(self, input_shape, n_outputs):
        if len(input_shape) == 1:
            return MLP(input_shape[0], n_outputs, tuple(self.hidden_layer_sizes))
        if len(input_shape) == 3:
            return Conv4(input_shape[0], n_outputs, image_size=input_shape[1:])
        raise ValueError(
            f"No default network for inputs of shape {input_shape}: pass module=."
        )

    def _check_hidden_layer_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        if not all(isinstance(s, numbers.Integral) and s >= 1 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must be a sequence of positive ints, got "
                f"{self.hidden_layer_sizes!r}."
            )

    def _second_order(self):
        return False

    def _batch_to_tensors(self, batch, input_shape, device, params):
        dtype = next(iter(params.values())).dtype
        Xs, ys, Xq, yq = batch.arrays()
        X = [_to_input_tensor(x, input_shape, device, dtype, n_lead=2) for x in (Xs, Xq)]
        y = [self._to_target_tensor(t, device, dtype, batched=True) for t in (ys, yq)]
        return (X[0], y[0], X[1], y[1])

    # ------------------------------------------------------------------ adaptation
    def adapt(self, X, y):
        """Adapt the meta-learned initialisation to a support set.

        Takes ``adapt_steps`` (default ``inner_steps``) gradient steps of size
        ``inner_lr`` on the support loss, starting from ``meta_params_``. An
        estimator that was never meta-fitted starts from a random initialisation.

        Parameters
        ----------
        X : array-like of shape (n_samples, *input_shape)
            Support inputs. Images may be given as ``(n, H, W)``, ``(n, C, H, W)`` or
            flattened to ``(n, C*H*W)``.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Support targets (any hashable class labels for classifiers).

        Returns
        -------
        self : object
            The adapted estimator.
        """
        self._validate_params()
        self._check_hidden_layer_sizes()
        if y is None:
            raise ValueError(
                f"y is required: adapt(X, y) adapts {type(self).__name__} to the support "
                "set (X, y); got y=None."
            )
        X = self._validate_X(X, reset=not hasattr(self, "meta_params_"))
        y, target_state = self._validate_adapt_targets(y, X.shape[0])
        _check_float32_range(X, "X")
        _check_float32_range(y, "y")
        device = resolve_device(self.device)
        if hasattr(self, "meta_params_"):
            module, params, buffers = self.module_, self.meta_params_, self.buffers_
            input_shape = self.input_shape_
        else:
            input_shape = self._model_input_shape(X.shape[1:])
            rng = as_rng(self.random_state)
            target_info = self._unfitted_target_info(target_state)
            module, params, buffers = self._init_model(input_shape, target_info, rng)
            self._check_module_output(module, params, buffers, X, input_shape, target_info,
                                      exact=False)
        dtype = next(iter(params.values())).dtype
        X_t = _to_input_tensor(X, input_shape, device, dtype)
        y_t = self._encode_targets(y, target_state, device, dtype)
        steps = self.inner_steps if self.adapt_steps is None else self.adapt_steps
        params_d = {k: v.to(device) for k, v in params.items()}
        buffers_d = {k: v.to(device) for k, v in buffers.items()}
        loss = _engine.make_loss(module, self._loss_fn(target_state))
        config = _engine.InnerLoop(self.inner_lr, steps, first_order=True)
        with torch.no_grad():
            adapted, _ = _engine.inner_loop(loss, params_d, buffers_d, X_t, y_t, config)
            # parameters can be finite (1e27) and still give infinite outputs
            support_out = torch.func.functional_call(module, (adapted, buffers_d), (X_t,))
        if not _all_finite(support_out, *adapted.values()):
            warnings.warn(
                f"Adaptation diverged (NaN or infinite parameters or outputs on the support "
                f"set) with inner_lr={self.inner_lr} and {steps} steps; lower inner_lr or "
                "adapt_steps, or standardise the data. Predictions will not be finite.",
                RuntimeWarning,
                stacklevel=2,
            )

        if not hasattr(self, "meta_params_"):
            self.module_, self.buffers_, self.input_shape_ = module, buffers, input_shape
            self._set_target_info(self._unfitted_target_info(target_state))
        self.adapted_params_ = {k: v.detach().cpu() for k, v in adapted.items()}
        # BatchNorm layers normalise what is predicted with the support set's statistics
        # (in the input's precision, as predictions are computed: _prediction_dtype)
        self.support_inputs_ = (
            _to_input_tensor(X, input_shape, "cpu", _as_tensor(X[:0]).dtype)
            if uses_reference_rows(module) else None
        )
        self.n_features_in_ = int(np.prod(X.shape[1:]))
        self._set_adapted_targets(target_state)
        _warn_if_single_example_support(module, X.shape[0], self.batch_norm_stats)
        return self

    def fit(self, X, y=None):
        """Adapt to a support set ``(X, y)``, or meta-fit on a collection of tasks.

        This is the name scikit-learn tools call, and it serves both tuning workflows:

        - ``fit(X, y)`` with arrays is :meth:`adapt`: ``GridSearchCV`` over
          ``inner_lr`` / ``adapt_steps`` on one support set, starting every candidate
          from the meta-learned initialisation (see :meth:`__sklearn_clone__`).
        - ``fit(tasks)`` with a task collection (a ``TaskBatch``, a list of ``Task`` or
          a distribution) is :meth:`meta_fit`: ``GridSearchCV(est, grid, cv=3)
          .fit(task_batch)`` splits *tasks* into folds, meta-trains each candidate on
          the training tasks and scores it with :meth:`score` on the held-out ones.

        Parameters
        ----------
        X : array-like of shape (n_samples, *input_shape), or task collection
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), or None
            Must be None when ``X`` is a task collection.

        Returns
        -------
        self : object
        """
        if _is_task_collection(X):
            if y is not None:
                raise ValueError(
                    "y must be None when X is a collection of tasks: each task carries "
                    "its own targets."
                )
            return self.meta_fit(X)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "fit(X, y) adapts to the support set (X, y). Pass a TaskBatch or a list "
                "of Task to meta-fit instead."
            )
        return self.adapt(X, y)

    # ------------------------------------------------------------------ scikit-learn protocol
    _META_STATE = (
        "module_", "meta_params_", "buffers_", "input_shape_", "meta_history_", "n_iter_",
        "strategy_", "meta_interrupted_",
    )

    def __sklearn_clone__(self):
        """Clone the parameters and keep the meta-learned initialisation.

        ``sklearn.base.clone`` normally returns an unfitted copy. For a meta-fitted
        estimator the meta-learned initialisation plays the part of pre-trained
        weights: the clone keeps it (``meta_params_`` and what describes it) but not
        the adaptation (``adapted_params_``, ``classes_``), so every candidate of a
        ``GridSearchCV`` over ``inner_lr`` or ``adapt_steps`` starts from it. An
        estimator that was never meta-fitted clones as usual. Parameters that shape
        meta-training (``module``, ``hidden_layer_sizes``, ``meta_lr``, ...) take
        effect at the clone's next ``meta_fit``.
        """
        new = super().__sklearn_clone__()
        if hasattr(self, "meta_params_"):
            for name in self._META_STATE + (self._TARGET_INFO,):
                value = getattr(self, name)
                setattr(new, name, dict(value) if isinstance(value, dict) else value)
        return new

    def __sklearn_is_fitted__(self):
        # fitted, for scikit-learn, means ready to predict: adapted
        return hasattr(self, "adapted_params_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags

    def _validate_X(self, X, reset):
        X = check_array(
            X, allow_nd=True, dtype=[np.float32, np.float64], ensure_all_finite=True,
            input_name="X",
        )
        if not reset:
            expected = self.input_shape_
            size = int(np.prod(expected))
            if X.shape[1:] != tuple(expected) and int(np.prod(X.shape[1:])) != size:
                raise ValueError(
                    f"X has {int(np.prod(X.shape[1:]))} features, but "
                    f"{type(self).__name__} is expecting {size} features as input "
                    f"(examples of shape {tuple(expected)}; got {X.shape[1:]})."
                )
        return X

    def _forward(self, X):
        if not hasattr(self, "adapted_params_"):
            raise NotFittedError(
                f"This {type(self).__name__} has not been adapted yet: call adapt(X, y) "
                "(or fit) on a support set before predicting."
            )
        X = self._validate_X(X, reset=False)
        device = resolve_device(self.device)
        dtype = _prediction_dtype(X.dtype, self.adapted_params_, device)
        X_t = _to_input_tensor(X, self.input_shape_, device, dtype)
        params = {k: _cast_float(v, device, dtype) for k, v in self.adapted_params_.items()}
        buffers = {k: _cast_float(v, device, dtype) for k, v in self.buffers_.items()}
        reference = None
        if self.batch_norm_stats == "support" and getattr(self, "support_inputs_", None) is not None:
            reference = self.support_inputs_.to(device=device, dtype=dtype)
        with torch.no_grad():
            out = forward(self.module_, params, buffers, X_t, X_reference=reference)
        if not _all_finite(out):
            warnings.warn(
                "The adapted model's outputs contain NaN or infinity: the adaptation "
                f"diverged (inner_lr={self.inner_lr}) or X is far outside the scale of the "
                "data it was trained on.",
                RuntimeWarning,
                stacklevel=3,
            )
        return out.cpu()

    def __setstate__(self, state):
        # estimators pickled by sklmeta 0.1 were meta-trained transductively
        state.setdefault("batch_norm_stats", "transductive")
        super().__setstate__(state)
        if hasattr(self, "meta_params_") or hasattr(self, "adapted_params_"):
            # a fitted model moved to a machine without its device still predicts;
            # an unfitted one (a copy, a joblib worker's) keeps the device it asks for
            fall_back_to_cpu_if_unavailable(self)

    def __getstate__(self):
        state = self.__dict__.copy()
        # tensors are CPU by construction; make sure of it for user subclasses too
        for key, value in state.items():
            if isinstance(value, dict) and value and all(
                isinstance(v, torch.Tensor) for v in value.values()
            ):
                state[key] = {k: v.detach().cpu() for k, v in value.items()}
        return state


class _TaskScoreMixin:
    """``score`` that also accepts a collection of tasks.

    Placed before scikit-learn's ``RegressorMixin``/``ClassifierMixin`` in the method
    resolution order, and defers to them for arrays.
    """

    def score(self, X, y=None, sample_weight=None):
        """Score the adapted model on ``(X, y)``, or the few-shot score over tasks.

        Parameters
        ----------
        X : array-like of shape (n_samples, *input_shape), or task collection
            With a ``TaskBatch`` or list of ``Task``: adapt a copy of the estimator on
            each task's support set, predict its query set, and score all query
            predictions together (R^2 of the pooled query points for regressors, so
            that tasks with small target variance do not dominate as they would in a
            mean of per-task R^2; accuracy over all query points for classifiers).
            The estimator itself is left as it was.
        y : array-like or None
            Targets of ``X``; None for a task collection.
        sample_weight : array-like of shape (n_samples,), default=None
            Only for arrays.

        Returns
        -------
        score : float
            R^2 for regressors, accuracy for classifiers.
        """
        if _is_task_collection(X):
            if y is not None or sample_weight is not None:
                raise ValueError("y and sample_weight must be None when X is a collection of tasks.")
            tasks = _as_finite_tasks(X)
            worker = copy.copy(self)  # adapts without touching self's adapted state
            y_true, y_pred = [], []
            for task in tasks:
                worker.adapt(task.X_support, task.y_support)
                y_true.append(np.asarray(task.y_query))
                y_pred.append(worker.predict(task.X_query))
            return float(self._pooled_score(np.concatenate(y_true), np.concatenate(y_pred)))
        if y is None:
            raise ValueError("y is required when X is an array.")
        return super().score(X, y, sample_weight=sample_weight)


class MetaRegressorMixin(_TaskScoreMixin):
    """Targets of regression tasks: real values, mean squared error loss."""

    @staticmethod
    def _pooled_score(y_true, y_pred):
        return r2_score(y_true, y_pred)

    _TARGET_INFO = "n_outputs_"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = True
        return tags

    def _loss_fn(self, target_state):
        return F.mse_loss

    def _task_target_info(self, ys, yq, source):
        if ys.dtype.kind not in "biuf":
            raise ValueError("Regression tasks must have numeric targets.")
        if ys.ndim == 2:
            return 1
        if ys.ndim == 3:
            return int(ys.shape[2])
        raise ValueError(
            f"Regression task targets must be (n_tasks, n_examples[, n_outputs]); got {ys.shape}."
        )

    def _target_info(self):
        return self.n_outputs_

    def _check_task_targets(self, batch, n_outputs):
        pass  # shapes are checked for every batch (_check_batch_like)

    @staticmethod
    def _check_output_shape(out, n_examples, n_outputs, exact=True):
        if tuple(out.shape) != (n_examples, n_outputs):
            raise ValueError(
                f"module must output one row of {n_outputs} value(s) per example, shape "
                f"(n_examples, {n_outputs}) for these targets; on {n_examples} examples it "
                f"gave shape {tuple(out.shape)}."
            )

    def _set_target_info(self, info):
        self.n_outputs_ = info

    def _to_target_tensor(self, y, device, dtype, batched=False):
        y = _as_tensor(y, dtype=dtype)
        if y.ndim == (2 if batched else 1):
            y = y.unsqueeze(-1)
        return y.to(device)

    def _validate_adapt_targets(self, y, n_samples):
        y = check_array(y, ensure_2d=False, dtype=[np.float64, np.float32], input_name="y")
        if y.shape[0] != n_samples:
            raise ValueError(
                f"X and y have different numbers of samples: {n_samples} and {y.shape[0]}."
            )
        if y.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}.")
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if hasattr(self, "meta_params_") and n_outputs != self.n_outputs_:
            raise ValueError(
                f"y has {n_outputs} outputs but the estimator was meta-fitted with "
                f"{self.n_outputs_}."
            )
        return y, {"n_outputs": n_outputs, "y_ndim": y.ndim}

    def _unfitted_target_info(self, target_state):
        return target_state["n_outputs"]

    def _encode_targets(self, y, target_state, device, dtype):
        return self._to_target_tensor(y, device, dtype)

    def _set_adapted_targets(self, target_state):
        self._y_ndim = target_state["y_ndim"]

    def predict(self, X):
        """Predict with the adapted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, *input_shape)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            float32 for float32 ``X``, float64 otherwise: the network's float32
            weights are applied in the input's precision, as scikit-learn's MLP
            does. A row's prediction does not depend on the other rows predicted with
            it, up to that precision's rounding (matrix-product kernels sum in other
            orders for other batch sizes and on other CPUs).
        """
        out = self._forward(X).numpy()
        return out[:, 0] if self._y_ndim == 1 else out


def _check_integer_labels(ys, yq, n_way, where):
    """Task labels must be integers in ``0..n_way-1`` (episodes are relabelled per task)."""
    ys, yq = np.asarray(ys), np.asarray(yq)
    if ys.dtype.kind not in "biu" or yq.dtype.kind not in "biu":
        raise ValueError(
            "Classification tasks must give integer labels 0..n_way-1 (episodes are "
            f"relabelled per task); {where} has labels of dtype {ys.dtype} and {yq.dtype}."
        )
    low, high = min(ys.min(), yq.min()), max(ys.max(), yq.max())
    if low < 0 or (n_way is not None and high >= n_way):
        limit = "n_way-1" if n_way is None else f"n_way-1 = 0..{n_way - 1}"
        raise ValueError(
            f"Task labels must lie in 0..{limit}; {where} has labels from {low} to {high}."
        )


class MetaClassifierMixin(_TaskScoreMixin):
    """Targets of classification tasks: ``n_way`` output units, cross-entropy loss.

    The number of output units is fixed at meta-training. At adaptation, the support
    labels can be any values; ``classes_`` (sorted) maps them onto the first
    ``len(classes_)`` units.
    """

    _TARGET_INFO = "n_way_"

    @staticmethod
    def _pooled_score(y_true, y_pred):
        return accuracy_score(y_true, y_pred)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags

    def _loss_fn(self, target_state):
        if target_state is None:
            return F.cross_entropy
        n_classes = len(target_state["classes"])

        def loss(logits, y):
            return F.cross_entropy(logits[..., :n_classes], y)

        return loss

    def _task_target_info(self, ys, yq, source):
        if ys.ndim != 2 or yq.ndim != 2:
            raise ValueError(
                f"Classification task labels must be (n_tasks, n_examples); got {ys.shape}."
            )
        n_way = getattr(source, "n_way", None)
        if n_way is None:
            _check_integer_labels(ys, yq, None, "the first meta-batch")
            n_way = int(max(ys.max(), yq.max())) + 1
        _check_integer_labels(ys, yq, n_way, "the first meta-batch")
        return int(n_way)

    def _target_info(self):
        return self.n_way_

    def _check_task_targets(self, batch, n_way):
        """Every meta-batch, not just the first: integer labels in ``0..n_way-1``."""
        _check_integer_labels(batch.y_support, batch.y_query, n_way, "a later meta-batch")

    @staticmethod
    def _check_output_shape(out, n_examples, n_way, exact=True):
        wrong = out.dim() != 2 or out.shape[0] != n_examples or (
            out.shape[1] != n_way if exact else out.shape[1] < n_way
        )
        if wrong:
            wanted = f"exactly {n_way}" if exact else f"at least {n_way}"
            raise ValueError(
                f"module must output one logit per class, shape (n_examples, n_way) with "
                f"{wanted} columns for {n_way} classes; on {n_examples} examples it gave "
                f"shape {tuple(out.shape)}."
            )

    def _set_target_info(self, info):
        self.n_way_ = info

    def _to_target_tensor(self, y, device, dtype, batched=False):
        return _as_tensor(y, dtype=torch.int64).to(device)

    def _validate_adapt_targets(self, y, n_samples):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim != 1:
            raise ValueError(f"y must be a 1-D array of class labels, got shape {y.shape}.")
        check_classification_targets(y)
        if y.shape[0] != n_samples:
            raise ValueError(
                f"X and y have different numbers of samples: {n_samples} and {y.shape[0]}."
            )
        classes, encoded = np.unique(y, return_inverse=True)
        if hasattr(self, "meta_params_") and len(classes) > self.n_way_:
            raise ValueError(
                f"The support set has {len(classes)} classes but the estimator was "
                f"meta-fitted for n_way={self.n_way_} (its number of output units)."
            )
        return encoded, {"classes": classes}

    def _unfitted_target_info(self, target_state):
        return len(target_state["classes"])

    def _encode_targets(self, y, target_state, device, dtype):
        return _as_tensor(y, dtype=torch.int64, device=device)

    def _set_adapted_targets(self, target_state):
        self.classes_ = target_state["classes"]

    def _logits(self, X):
        return self._forward(X)[:, : len(self.classes_)]

    def predict_proba(self, X):
        """Class probabilities of the adapted model, columns ordered as ``classes_``.

        float32 for float32 ``X``, float64 otherwise (computed in that precision).
        """
        logits = self._logits(X)
        # softmax in float64, then back: rows sum to one to the output type's precision
        return torch.softmax(logits.double(), dim=1).to(logits.dtype).numpy()

    def predict(self, X):
        """Predict class labels (the labels given at ``adapt``)."""
        index = self._logits(X).argmax(dim=1).numpy()
        return self.classes_[index]

    def decision_function(self, X):
        """Logits of the adapted model, columns ordered as ``classes_``.

        With two classes, scikit-learn's convention: one score per sample, positive
        for ``classes_[1]``.
        """
        logits = self._logits(X).numpy()
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits
