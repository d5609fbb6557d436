"""Shared machinery of the meta-learning estimators.

An estimator holds its hyper-parameters (stored untouched by ``__init__``) and its
fitted state (attributes ending in ``_``); the numerical work is done by the pure
functions of ``sklmeta._engine``. This module validates input, moves arrays to
tensors and back, runs the meta-training loop with progress and interruption, and
makes sure a failed call leaves the estimator as it was.
"""

import contextlib
import copy
import math
import numbers
import os
import sys
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_array

from . import _checkpoint, _distributed, _early_stopping, _engine
from ._device import fall_back_to_cpu_if_unavailable, resolve_device
from ._targets import MetaClassifierMixin, MetaRegressorMixin
from ._validation import (
    _all_finite,
    _as_task_source,
    _as_tensor,
    _check_float32_range,
    _is_task_collection,
    _to_input_tensor,
)
from .networks import (
    MLP,
    AdaptedNetwork,
    BatchNorm1d,
    Conv4,
    batch_norm_step,
    convert_batchnorm,
    forward,
    per_step_parameter_names,
    uses_reference_rows,
)
from .tasks import TaskBatch
from .tasks._base import as_rng

__all__ = ["BaseMetaEstimator", "MetaRegressorMixin", "MetaClassifierMixin"]


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
# features or targets of larger mean or spread than this get a warning at meta_fit
_UNSCALED = 100.0
_SCALE_SAMPLE = 100_000


def _same_target_state(a, b):
    """Whether two support sets' targets are encoded alike (same outputs, same classes)."""
    if a.keys() != b.keys():
        return False
    return all(np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k]
               for k in a)


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


def _matches(optimizer_state, params):
    """Whether a saved optimiser state is for tensors of these shapes (a warm start with
    ``learn_inner_lr`` switched on or off meta-learns other tensors: a fresh optimiser)."""
    if not optimizer_state:
        return False
    (group,) = optimizer_state["param_groups"]
    if len(group["params"]) != len(params):
        return False
    shapes = [tuple(v.shape) for v in params.values()]
    return all(tuple(s["exp_avg"].shape) == shapes[i] if "exp_avg" in s else True
               for i, s in optimizer_state["state"].items())


class _CallSchedule:
    """The span of one ``meta_fit`` call, over which schedules run (MAML++'s cosine meta
    learning rate, Reptile's annealed meta step): the iteration count it started at and
    its ``max_iter``. A run resumed from a checkpoint has its original span."""

    def __init__(self, start, length):
        self.start, self.length = start, length

    def progress(self, iteration):
        return (iteration - self.start) / self.length

    def cosine(self, lr, iteration, floor=0.01):
        """Cosine annealing from ``lr`` to ``floor * lr`` (torch's CosineAnnealingLR)."""
        low = floor * lr
        return low + (lr - low) * (1 + math.cos(math.pi * self.progress(iteration))) / 2


def _extend_history(history, n_before, new):
    """``history`` (``n_before`` iterations) followed by ``new``; a record that one of
    them lacks (validation scores of calls that did not validate) is NaN there."""
    n_new = len(next(iter(new.values())))
    out = {}
    for key in list(history) + [k for k in new if k not in history]:
        before = list(history.get(key, [math.nan] * n_before))
        after = new[key].tolist() if key in new else [math.nan] * n_new
        out[key] = before + after
    return out


def _restore(params, saved):
    """Put the values of ``saved`` back into the (optimised, in-place) ``params``."""
    with torch.no_grad():
        for k, v in params.items():
            v.copy_(saved[k])


def _cpu_state(state):
    """An optimiser's state dict with CPU tensor copies (pickles load anywhere)."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu().clone()
    if isinstance(state, dict):
        return {k: _cpu_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_cpu_state(v) for v in state]
    return copy.deepcopy(state)


def adapted_parameter_names(module, params, adapt_params):
    """The names of the parameters that adapt, from an ``adapt_params`` value.

    "all": every meta-learned parameter (None); "head": those of the last layer that
    has parameters of its own (ANIL, Raghu et al. 2020); a list: those names.
    """
    if isinstance(adapt_params, str) and adapt_params == "all":
        return None
    if isinstance(adapt_params, str):  # "head"
        head = ()
        for prefix, layer in module.named_modules():
            own = tuple(f"{prefix}.{n}" if prefix else n
                        for n, _ in layer.named_parameters(recurse=False))
            own = tuple(n for n in own if n in params)
            head = own or head
        return head
    names = tuple(adapt_params)
    unknown = [n for n in names if n not in params]
    if unknown or not names:
        raise ValueError(
            f"adapt_params names parameters the network does not meta-learn: {unknown}; "
            f"its parameters are {list(params)}." if unknown else
            "adapt_params must name at least one parameter."
        )
    return names


class BaseMetaEstimator(BaseEstimator):
    """Base class of the meta-learning estimators; not for direct use.

    Subclasses define ``__init__`` (explicit keyword arguments, as scikit-learn
    requires), ``_make_meta_update`` (returns the function that performs one
    meta-iteration on a task batch) and mix in
    :class:`MetaRegressorMixin` or :class:`MetaClassifierMixin` for targets.
    """

    _parameter_constraints = {
        "module": [None, torch.nn.Module, type],
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
        "checkpoint_path": [None, str, os.PathLike],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_validation_tasks": [Interval(Integral, 1, None, closed="left")],
        "validation_every": [Interval(Integral, 1, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
    }

    # ------------------------------------------------------------------ meta-training
    def meta_fit(self, tasks, validation_tasks=None):
        """Meta-learn the initialisation from a task distribution or a set of tasks.

        Parameters
        ----------
        tasks : task distribution, TaskBatch or list of Task
            A distribution is any object with ``sample(n_tasks, random_state)``
            returning a :class:`~sklmeta.tasks.TaskBatch`; a finite collection of
            tasks of identical shapes is sampled ``meta_batch_size`` at a time.
        validation_tasks : TaskBatch, list of Task, task distribution or None, \
default=None
            Tasks to validate on every ``validation_every`` meta-iterations (recorded
            in ``meta_history_["validation_score"]``), and, with ``early_stopping``,
            to stop on; a distribution is drawn from once (``n_validation_tasks``).
            None: with ``early_stopping``, validation tasks are set aside from
            ``tasks`` (see ``early_stopping``); without, no validation.

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
        ``KeyboardInterrupt`` propagates. A process that is killed keeps nothing, but
        ``checkpoint_path`` lets a rerun resume from the last checkpoint.

        If the meta-loss or the meta-parameters become NaN or infinite, meta-training
        stops with a ``RuntimeWarning`` and keeps the last finite initialisation (a
        ``ValueError`` if that happens at the first iteration). The first meta-batch
        is checked for data far from unit scale (a warning), every meta-batch for
        shapes, labels and values, and a custom ``module`` with one forward pass.

        Launched by ``torchrun --nproc_per_node=N``, the N processes share each
        meta-batch of ``meta_batch_size`` tasks (data parallelism, see
        ``docs/long-runs.md``) and end with identical parameters.
        """
        self._validate_params()
        self._check_hidden_layer_sizes()
        self._check_checkpoint_folder()
        source = _as_task_source(tasks)
        device = resolve_device(self.device)
        processes = _distributed.current_processes(device)
        device = _distributed.local_device(device, processes)
        lead = processes is None or processes.rank == 0  # writes checkpoints, shows progress
        checkpoint = self._checkpoint_to_resume(processes)
        in_memory = checkpoint is None and self.warm_start and hasattr(self, "meta_params_")
        if checkpoint is not None:
            rng = _checkpoint.rng_from_state(checkpoint["rng"])
            torch.set_rng_state(checkpoint["torch_rng"])
        elif in_memory and getattr(self, "_meta_rng", None) is not None:
            # continuing is continuing: a warm start draws the tasks that come next (the
            # generator is kept), not the same sequence again
            rng = copy.deepcopy(self._meta_rng)
        else:
            rng = as_rng(self.random_state)
        validating = self.early_stopping or validation_tasks is not None
        validation_seed = (checkpoint["validation_seed"] if checkpoint is not None else
                           getattr(self, "_validation_seed", None) if in_memory else None)
        if validating and validation_seed is None:
            validation_seed = self._new_validation_seed()
        if processes is not None:
            # every process draws the same meta-batches and validation tasks: rank 0's
            state = processes.broadcast((_checkpoint.rng_state(rng), validation_seed))
            rng, validation_seed = _checkpoint.rng_from_state(state[0]), state[1]
        if validating:
            source, validation_batch = _early_stopping.validation_split(
                source, validation_tasks, self, validation_seed)
        rng_before_first = copy.deepcopy(rng)  # put back if no iteration runs
        first = self._sample_batch(source, rng)
        input_shape, target_info = self._infer_task_shapes(first, source)
        if validating:
            self._check_validation_batch(validation_batch, first)
        self._warn_if_unscaled(first)

        if checkpoint is not None:
            module, params, buffers, extras = self._state_from_checkpoint(
                checkpoint, input_shape, target_info)
            history = {k: v.tolist() for k, v in checkpoint["history"].items()}
            n_iter_done = checkpoint["n_iter"]
            optimizer_state = checkpoint["optimizer"]
            call = checkpoint["call"]
            # a run the checkpoint stopped half-way is finished; a finished one continues
            call_start = n_iter_done if call["finished"] else call["start"]
            record_state = None if call["finished"] else checkpoint["early_stopping"]
        elif in_memory:
            if input_shape != self.input_shape_ or target_info != self._target_info():
                raise ValueError(
                    "warm_start=True but the tasks' input shape or outputs "
                    f"({input_shape}, {target_info}) differ from those the estimator was "
                    f"meta-fitted on ({self.input_shape_}, {self._target_info()})."
                )
            self._check_architecture_unchanged(input_shape, target_info)
            module, params, buffers = self.module_, self.meta_params_, self.buffers_
            extras = self._extra_meta_tensors(module, params, True)
            history = {k: list(v) for k, v in self.meta_history_.items()}
            n_iter_done = call_start = self.n_iter_
            optimizer_state, record_state = self._meta_optimizer_state(), None
        else:
            module, params, buffers = self._init_model(input_shape, target_info, rng)
            extras = self._extra_meta_tensors(module, params, False)
            history = {"meta_loss": [], "init_grad_norm": [], "wall_time": []}
            n_iter_done = call_start = 0
            optimizer_state = record_state = None
        schedule = _CallSchedule(call_start, self.max_iter)
        n_run = max(0, call_start + self.max_iter - n_iter_done)
        self._check_module_output(module, params, buffers, first.X_support[0], input_shape,
                                  target_info)
        _warn_if_single_example_support(module, np.shape(first.X_support)[1],
                                        self.batch_norm_stats)
        n_local = len(first) if processes is None else processes.count(len(first))
        strategy = _engine.choose_strategy(
            self.strategy, module, device, second_order=self._second_order(), n_tasks=n_local)
        self._check_strategy(strategy)
        self._adapt_names(module, params)  # names a bad adapt_params before any work
        # what is meta-learned: the initialisation, and what the algorithm adds to it
        params = {k: v.detach().to(device).clone() for k, v in {**params, **extras}.items()}
        buffers = {k: v.to(device) for k, v in buffers.items()}
        loss = _engine.make_loss(module, self._loss_fn(None), self.batch_norm_stats)
        update = self._make_meta_update(module, params, schedule)
        optimizer = getattr(update, "optimizer", None)
        if optimizer is not None and _matches(optimizer_state, params):
            # and keeps the optimiser's moments (Adam's), as if it had not stopped (a
            # copy: the optimiser updates its state in place, and a failed call must
            # leave the estimator's as it was). The learning rate is today's meta_lr.
            optimizer.load_state_dict(copy.deepcopy(optimizer_state))
            for group in optimizer.param_groups:
                group["lr"] = self.meta_lr
        record = (_early_stopping.EarlyStopping(self.tol, self.n_iter_no_change)
                  if self.early_stopping else None)
        if record is not None and record_state is not None:
            record.load_state_dict(record_state, device)

        losses = torch.zeros(n_run, device=device)
        norms = torch.zeros(n_run, device=device)
        wall = np.zeros(n_run)
        scores = np.full(n_run, np.nan)
        offset = history["wall_time"][-1] if history["wall_time"] else 0.0

        def new_history():
            new = {"meta_loss": losses[:done].cpu().numpy(),
                   "init_grad_norm": norms[:done].cpu().numpy(),
                   "wall_time": wall[:done] + offset}
            if validating:
                new["validation_score"] = scores[:done]
            return _extend_history(history, n_iter_done, new)

        def write_checkpoint(finished):
            _checkpoint.write(self.checkpoint_path, {
                "estimator": type(self).__name__,
                "config": _checkpoint.config_of(self),
                "input_shape": list(input_shape),
                "target_info": target_info,
                "n_iter": n_iter_done + done,
                "call": {"start": call_start, "max_iter": self.max_iter,
                         "finished": bool(finished)},
                "meta_params": {k: v.detach().cpu() for k, v in params.items()},
                "buffers": {k: v.detach().cpu() for k, v in buffers.items()},
                "optimizer": (_cpu_state(optimizer.state_dict())
                              if optimizer is not None and consistent else None),
                "history": {k: torch.as_tensor(np.asarray(v, dtype=np.float64))
                            for k, v in new_history().items()},
                "rng": _checkpoint.rng_state(rng),
                "torch_rng": torch.get_rng_state(),
                "validation_seed": validation_seed,
                "early_stopping": record.state_dict() if record is not None else None,
            })

        progress = self._progress_bar(n_run) if lead else None
        start = time.perf_counter()
        last_report = start
        done = 0
        interrupted = diverged = mid_update = stopped_early = False
        consistent = True  # the optimiser's state is that of the parameters kept
        last_finite = last_score = None
        try:
            batch = first
            for it in range(n_run):
                if it > 0:
                    batch = self._sample_batch(source, rng)
                    self._check_batch_like(batch, first)
                    self._check_task_targets(batch, target_info)
                tensors = self._batch_to_tensors(batch, input_shape, device, params)
                # the parameters after `done` updates: restored if this update diverges
                # or is interrupted half-way (a Ctrl-C can land inside optimizer.step)
                last_finite = {k: v.clone() for k, v in params.items()}
                task_losses, task_norms = update(loss, params, buffers, tensors, strategy,
                                                 iteration=n_iter_done + it,
                                                 processes=processes)
                if not _all_finite(task_losses, *params.values()):
                    _restore(params, last_finite)  # keep the last finite initialisation
                    diverged = True
                    break
                losses[it] = task_losses.mean()
                norms[it] = task_norms.mean()
                # one statement: no signal is handled between these two stores
                done, last_finite = it + 1, None
                now = time.perf_counter()
                wall[it] = now - start
                total = n_iter_done + done
                if validating and total % self.validation_every == 0:
                    scores[it] = last_score = self._validation_score(
                        module, params, buffers, input_shape, target_info, validation_batch,
                        processes, strategy)
                    if record is not None:
                        stopped_early = record.update(last_score, params, total)
                if lead and self.checkpoint_path is not None and (
                        total % self.checkpoint_every == 0):
                    write_checkpoint(finished=stopped_early or done == n_run)
                if progress is not None and (now - last_report > 0.5 or done == n_run
                                             or stopped_early):
                    window = losses[max(0, it - 49) : done].mean().item()  # one sync / report
                    shown = {"meta_loss": f"{window:.4g}"}
                    if last_score is not None:
                        shown["validation"] = f"{last_score:.4g}"
                    progress.set_postfix(shown, refresh=False)
                    progress.update(done - progress.n)
                    last_report = now
                if stopped_early:
                    break
        except KeyboardInterrupt:
            interrupted = True
            if last_finite is not None:
                mid_update = True
                _restore(params, last_finite)
        finally:
            if progress is not None:
                progress.close()

        if done == 0 and interrupted:
            # nothing was learned: the estimator stays exactly as it was
            raise KeyboardInterrupt("meta_fit was interrupted before its first update.")
        if diverged:
            message = (
                f"meta_fit diverged at iteration {n_iter_done + done + 1}: the meta-loss "
                f"or the meta-parameters became NaN or infinite ({self._step_sizes()}). "
                "Lower the step sizes, or standardise the data (features and targets of "
                "order 1: see docs/sklearn.md)."
            )
            if done == 0:
                raise ValueError(message + " Nothing was learned; the estimator is unchanged.")
            warnings.warn(
                message + f" The estimator keeps the initialisation of iteration "
                f"{n_iter_done + done}.",
                RuntimeWarning,
                stacklevel=2,
            )
        if interrupted:
            warnings.warn(
                f"meta_fit interrupted after {done} of {n_run} iterations; the "
                "estimator keeps the initialisation learned so far (meta_interrupted_ is "
                "True). To run the remaining iterations, call "
                f"set_params(warm_start=True, max_iter={n_run - done}).meta_fit(...)"
                + (" or rerun the script with warm_start=True: it resumes from "
                   "checkpoint_path." if self.checkpoint_path is not None else ""),
                UserWarning,
                stacklevel=2,
            )
        if n_run == 0:
            rng = rng_before_first  # the batch drawn to check the tasks was not used
        # the optimiser's state only when it matches the parameters kept (a diverged or
        # half-done update has moved it, and early stopping goes back to the best)
        consistent = optimizer is not None and not diverged and not mid_update
        if lead and self.checkpoint_path is not None and interrupted:
            # the state to resume from: where training stood, not the best so far
            write_checkpoint(finished=False)
        if record is not None and record.best_params is not None:
            _restore(params, record.best_params)
            consistent = consistent and record.best_iter == n_iter_done + done
        full_history = new_history()

        # commit the new state in one place, so a failure above leaves self untouched
        for name in ("adapted_params_", "support_inputs_", "classes_", "n_features_in_",
                     "best_validation_score_", "best_iter_", "_y_ndim"):
            self.__dict__.pop(name, None)
        self.module_ = module.cpu()
        cpu_params = {k: v.detach().cpu() for k, v in params.items()}
        self.meta_params_ = self._commit_extra_meta_tensors(cpu_params)
        self.buffers_ = {k: v.detach().cpu() for k, v in buffers.items()}
        self.input_shape_ = input_shape
        self._set_target_info(target_info)
        self.meta_history_ = {k: np.asarray(v) for k, v in full_history.items()}
        self.n_iter_ = n_iter_done + done
        self.strategy_ = strategy
        self.meta_interrupted_ = interrupted
        self.world_size_ = 1 if processes is None else processes.world_size
        if record is not None and record.best_params is not None:
            self.best_validation_score_ = record.best_score
            self.best_iter_ = record.best_iter
        self._meta_rng = rng
        self._validation_seed = validation_seed
        self._meta_optimizer = _cpu_state(optimizer.state_dict()) if consistent else None
        if lead and self.checkpoint_path is not None and not interrupted:
            write_checkpoint(finished=True)
        return self

    def _new_validation_seed(self):
        """A seed of its own for validation tasks, so that validating does not change
        the meta-batches drawn (an int random_state gives the same seed every time)."""
        entropy = self.random_state if isinstance(self.random_state, numbers.Integral) else None
        return int(np.random.default_rng([entropy, 1] if entropy is not None else None)
                   .integers(2**31 - 1))

    def _check_validation_batch(self, batch, first):
        for name, a, b in (("X_support", batch.X_support, first.X_support),
                           ("X_query", batch.X_query, first.X_query)):
            if np.shape(a)[2:] != np.shape(b)[2:]:
                raise ValueError(
                    f"The validation tasks' {name} examples have shape {np.shape(a)[2:]}, "
                    f"those meta-trained on {np.shape(b)[2:]}."
                )

    def _validation_score(self, module, params, buffers, input_shape, target_info, batch,
                          processes, strategy):
        """The task-collection :meth:`score` of the current initialisation (on rank 0,
        shared with the other processes)."""
        score = None
        if processes is None or processes.rank == 0:
            worker = copy.copy(self)
            for name in ("adapted_params_", "support_inputs_", "classes_", "n_features_in_"):
                worker.__dict__.pop(name, None)
            worker.module_, worker.input_shape_ = module, input_shape
            worker.strategy_ = strategy  # vmapped meta-training: the tasks adapt together
            worker.buffers_ = {k: v.detach().cpu() for k, v in buffers.items()}
            worker._set_target_info(target_info)
            worker.meta_params_ = worker._commit_extra_meta_tensors(
                {k: v.detach().cpu().clone() for k, v in params.items()})
            with warnings.catch_warnings():
                # a diverged adaptation is a bad score, not a warning per task
                warnings.simplefilter("ignore", RuntimeWarning)
                try:
                    score = float(worker.score(batch))
                except ValueError as exc:
                    if "NaN" not in str(exc) and "infinity" not in str(exc):
                        raise
                    score = math.nan  # non-finite predictions: never an improvement
        if processes is not None:
            score = processes.broadcast(score)
        return score

    def _check_checkpoint_folder(self):
        if self.checkpoint_path is None:
            return
        folder = os.path.dirname(os.path.abspath(os.fspath(self.checkpoint_path)))
        if not os.path.isdir(folder):
            raise ValueError(
                f"checkpoint_path={str(self.checkpoint_path)!r}: the folder {folder!r} does "
                "not exist."
            )
        if os.path.isdir(self.checkpoint_path):
            raise ValueError(
                f"checkpoint_path={str(self.checkpoint_path)!r} is a folder; give a file name."
            )

    def _checkpoint_to_resume(self, processes):
        """The checkpoint ``meta_fit`` resumes from, or None.

        Only with ``warm_start=True``, and only when this estimator holds no
        meta-training of its own (what is in memory is at least as recent).
        """
        path = self.checkpoint_path
        if path is None or (self.warm_start and hasattr(self, "meta_params_")):
            return None
        payload = None
        if processes is None or processes.rank == 0:
            exists = os.path.exists(path)
            if exists and not self.warm_start:
                warnings.warn(
                    f"checkpoint_path={str(path)!r} exists and warm_start=False: "
                    "meta-training starts afresh and overwrites it. Set warm_start=True "
                    "to resume from it instead.",
                    UserWarning,
                    stacklevel=3,
                )
            if exists and self.warm_start:
                payload = _checkpoint.read(path)
        if processes is not None:
            payload = processes.broadcast(payload)
        if payload is not None:
            _checkpoint.check_matches(payload, self, path)
        return payload

    def _state_from_checkpoint(self, payload, input_shape, target_info):
        """``(module, params, buffers, extra meta-learned tensors)`` of a checkpoint,
        after checking that they fit the tasks and the network."""
        path = self.checkpoint_path
        saved = (tuple(payload["input_shape"]), payload["target_info"])
        if saved != (input_shape, target_info):
            raise ValueError(
                f"checkpoint_path {str(path)!r} was written for tasks of input shape and "
                f"outputs {saved}; these tasks have {(input_shape, target_info)}."
            )
        module, fresh, fresh_buffers = self._init_model(input_shape, target_info, as_rng(0))
        expected = {**fresh, **self._extra_meta_tensors(module, fresh, False)}
        _checkpoint.check_shapes(payload["meta_params"], expected, path)
        _checkpoint.check_shapes(payload["buffers"], fresh_buffers, path)
        meta = payload["meta_params"]
        params = {k: v for k, v in meta.items() if k in fresh}
        extras = {k: v for k, v in meta.items() if k not in fresh}
        return module, params, payload["buffers"], extras

    def _progress_bar(self, total):
        if not self.verbose:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=total, desc=f"{type(self).__name__}.meta_fit", file=sys.stderr,
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

    def _meta_optimizer_state(self):
        return getattr(self, "_meta_optimizer", None)

    def _check_strategy(self, strategy):
        """Refuse a strategy that cannot run this estimator's options."""

    # ---- hooks of algorithms that meta-learn more than the initialisation, or adapt less
    def _extra_meta_tensors(self, module, params, warm):
        """Tensors meta-learned besides the initialisation (named apart from it)."""
        return {}

    def _commit_extra_meta_tensors(self, meta):
        """Store the extra meta-learned tensors; return the initialisation alone."""
        return meta

    def _adapt_names(self, module, params):
        """Names of the parameters that adapt (None: all of them)."""
        return None

    def _engine_module(self, module):
        """``module`` (a copy, changed in place) in the form the engine runs."""
        return _configure_for_engine(module)

    def _prediction_context(self):
        """The network's context at prediction (MAML++: the last step's BatchNorm)."""
        return contextlib.nullcontext()

    def _adaptation_inner_loop(self, module, params, steps, device):
        return _engine.InnerLoop(self.inner_lr, steps, first_order=True,
                                 adapt_names=self._adapt_names(module, params))

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
                module = self._custom_module()
            else:
                module = self._default_module(input_shape, target_info)
        module = self._engine_module(module.cpu())
        params, buffers = split_module_tensors(module)
        if not params:
            raise ValueError(
                "module has no parameters to meta-learn (none, or all with "
                "requires_grad=False)."
            )
        return module, params, buffers

    # ---- skorch's convention: module=MyNet (a class) with module__<name>=value parameters
    def _module_kwargs(self):
        return {k[len("module__"):]: v for k, v in self.__dict__.items()
                if k.startswith("module__")}

    def _custom_module(self):
        """A fresh copy of ``module``: the instance copied, or the class instantiated
        with the ``module__`` parameters."""
        kwargs = self._module_kwargs()
        if isinstance(self.module, type):
            if not issubclass(self.module, torch.nn.Module):
                raise ValueError(
                    f"module must be a torch.nn.Module or a subclass of it; got the class "
                    f"{self.module.__name__}."
                )
            try:
                return self.module(**kwargs)
            except TypeError as exc:
                raise ValueError(
                    f"module={self.module.__name__} could not be built from the module__ "
                    f"parameters {kwargs}: {exc}"
                ) from exc
        if kwargs:
            raise ValueError(
                f"module__ parameters ({sorted(kwargs)}) need module to be a class (e.g. "
                "module=MyNet, module__hidden=64), not an instance."
            )
        return copy.deepcopy(self.module)

    def get_params(self, deep=True):
        """Parameters of this estimator, with the ``module__`` ones (skorch's convention:
        they are passed to ``module`` when it is a class)."""
        params = super().get_params(deep=deep)
        params.update({k: v for k, v in self.__dict__.items() if k.startswith("module__")})
        return params

    def set_params(self, **params):
        for key in [k for k in params if k.startswith("module__")]:
            setattr(self, key, params.pop(key))
        return super().set_params(**params)

    def _set_module_params(self, module_params):
        """``__init__``'s ``**module__params``: ``module__<name>`` keywords only, as a
        fixed signature would refuse any other."""
        for key, value in module_params.items():
            if not key.startswith("module__"):
                raise TypeError(
                    f"{type(self).__name__}.__init__() got an unexpected keyword argument "
                    f"{key!r} (only module__<name> parameters are passed through to module)."
                )
            setattr(self, key, value)

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
    def adapt(self, X, y, sample_weight=None):
        """Adapt the meta-learned initialisation to a support set.

        Takes ``adapt_steps`` (default ``inner_steps``) gradient steps of size
        ``inner_lr`` on the support loss, starting from ``meta_params_``. An
        estimator that was never meta-fitted starts from a random initialisation.

        Parameters
        ----------
        X : array-like of shape ``(n_samples, *input_shape)``
            Support inputs. Images may be given as ``(n, H, W)``, ``(n, C, H, W)`` or
            flattened to ``(n, C*H*W)``.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Support targets (any hashable class labels for classifiers).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the support examples: the support loss is their
            weighted mean (scikit-learn's convention: an integer weight acts as that
            many copies of the example, only the ratios matter). They weigh the loss
            only: BatchNorm layers take their statistics from the unweighted support
            set, a classifier's ``classes_`` include the labels of zero-weight
            examples, and ``head_init="prototypes"`` refuses weights. Meta-training has no
            weights (its tasks come from ``meta_fit``).

        Returns
        -------
        self : object
            The adapted estimator.
        """
        X, y, target_state, weight = self._validate_support_set(X, y, sample_weight)
        module, params, buffers, input_shape = self._adaptation_start(X, target_state)
        device = resolve_device(self.device)
        dtype = next(iter(params.values())).dtype
        X_t = _to_input_tensor(X, input_shape, device, dtype)
        y_t = self._encode_targets(y, target_state, device, dtype)
        if weight is None:
            loss_fn = self._loss_fn(target_state)
        else:
            # scaled by the largest first: a sum of huge weights must not overflow to inf
            weight = weight / weight.max()
            loss_fn = self._weighted_loss_fn(
                target_state, torch.as_tensor(weight / weight.sum(), dtype=dtype, device=device))
        adapt_one = self._support_adaptation(module, params, buffers, loss_fn, device)
        adapted, support_out = adapt_one(X_t, y_t)
        self._warn_if_diverged(_all_finite(support_out, *adapted.values()))
        self._commit_adaptation(module, buffers, input_shape, adapted, X, target_state)
        return self

    # tasks adapted together by adapted_copies: bounds the memory of a long collection
    _ADAPT_CHUNK = 64

    def _adapted_copies(self, tasks):
        """Yield ``(task, copy)``: a copy of this estimator adapted to each task's support
        set, as ``copy.copy(self).adapt(task.X_support, task.y_support)`` would give; this
        estimator is left as it was.

        A meta-fitted estimator whose meta-training ran vmapped adapts tasks of one
        shape and label set together, ``vmap``-ped over tasks (3 to 7 times faster on
        the sinusoid and digit benchmarks of ``benchmarks/bench_task_scoring.py``, equal
        up to float rounding); anything else adapts one task at a time.
        """
        tasks = list(tasks)
        prepared = self._batched_support_sets(tasks)
        if prepared is None:
            worker = copy.copy(self)
            for task in tasks:
                yield task, worker.adapt(task.X_support, task.y_support)
            return
        target_state = prepared[0][2]  # the same for every task
        module, params, buffers, input_shape = self._adaptation_start(prepared[0][0],
                                                                      target_state)
        device = resolve_device(self.device)
        dtype = next(iter(params.values())).dtype
        adapt_one = self._support_adaptation(
            module, params, buffers, self._loss_fn(target_state), device)
        adapt_all = torch.func.vmap(adapt_one)
        n_diverged = 0
        for first in range(0, len(tasks), self._ADAPT_CHUNK):
            chunk = prepared[first:first + self._ADAPT_CHUNK]
            X_t = torch.stack([_to_input_tensor(X, input_shape, device, dtype)
                               for X, _, _ in chunk])
            y_t = torch.stack([self._encode_targets(y, target_state, device, dtype)
                               for _, y, _ in chunk])
            adapted, support_out = adapt_all(X_t, y_t)
            finite = [_all_finite(support_out[i], *(v[i] for v in adapted.values()))
                      for i in range(len(chunk))]
            n_diverged += finite.count(False)
            for i, (X, _, state) in enumerate(chunk):
                worker = copy.copy(self)
                # a copy of each task's row: a view would keep the whole chunk alive
                worker._commit_adaptation(
                    module, buffers, input_shape,
                    {k: v[i].clone() for k, v in adapted.items()}, X, state)
                yield tasks[first + i], worker
        self._warn_if_diverged(n_diverged == 0, n_diverged)

    def _batched_support_sets(self, tasks):
        """The checked ``(X, y, target_state)`` of each task's support set when the tasks
        can adapt together (see :meth:`_adapted_copies`), else None."""
        if (len(tasks) < 2 or not hasattr(self, "meta_params_")
                or not str(getattr(self, "strategy_", "loop")).startswith("vmap")):
            return None
        self._validate_params()  # once: the same for every task
        prepared = []
        for task in tasks:
            X, y, state, _ = self._validate_support_set(task.X_support, task.y_support, None,
                                                        check_params=False)
            prepared.append((X, y, state))
        first_X, first_y, first_state = prepared[0]
        for X, y, state in prepared[1:]:
            if (X.shape != first_X.shape or y.shape != first_y.shape
                    or not _same_target_state(state, first_state)):
                return None
        return prepared

    def _validate_support_set(self, X, y, sample_weight, check_params=True):
        """The checked support set: ``(X, y, target_state, weight)``."""
        if check_params:
            self._validate_params()
        self._check_hidden_layer_sizes()
        if y is None:
            raise ValueError(
                f"y is required: adapt(X, y) adapts {type(self).__name__} to the support "
                "set (X, y); got y=None."
            )
        X = self._validate_X(X, reset=not hasattr(self, "meta_params_"))
        y, target_state = self._validate_adapt_targets(y, X.shape[0])
        weight = self._validate_sample_weight(sample_weight, X)
        _check_float32_range(X, "X")
        _check_float32_range(y, "y")
        return X, y, target_state, weight

    def _adaptation_start(self, X, target_state):
        """``(module, params, buffers, input_shape)`` adaptation starts from: the
        meta-learned initialisation, or a random one for an estimator never meta-fitted."""
        if hasattr(self, "meta_params_"):
            return self.module_, self.meta_params_, self.buffers_, self.input_shape_
        input_shape = self._model_input_shape(X.shape[1:])
        rng = as_rng(self.random_state)
        target_info = self._unfitted_target_info(target_state)
        module, params, buffers = self._init_model(input_shape, target_info, rng)
        self._check_module_output(module, params, buffers, X, input_shape, target_info,
                                  exact=False)
        return module, params, buffers, input_shape

    def _support_adaptation(self, module, params, buffers, loss_fn, device):
        """``adapt_one(X, y) -> (adapted params, support outputs)``: the inner loop on one
        support set, without a graph; pure, so that it vmaps over tasks."""
        steps = self.inner_steps if self.adapt_steps is None else self.adapt_steps
        params_d = {k: v.to(device) for k, v in params.items()}
        buffers_d = {k: v.to(device) for k, v in buffers.items()}
        loss = _engine.make_loss(module, loss_fn)
        config = self._adaptation_inner_loop(module, params, steps, device)

        def adapt_one(X_t, y_t):
            with torch.no_grad():
                adapted, _ = _engine.inner_loop(loss, params_d, buffers_d, X_t, y_t, config)
                # parameters can be finite (1e27) and still give infinite outputs
                support_out = torch.func.functional_call(module, (adapted, buffers_d), (X_t,))
            return adapted, support_out

        return adapt_one

    def _warn_if_diverged(self, finite, n_diverged=None):
        if finite:
            return
        steps = self.inner_steps if self.adapt_steps is None else self.adapt_steps
        which = "" if n_diverged is None else f" on {n_diverged} task(s)"
        warnings.warn(
            f"Adaptation diverged{which} (NaN or infinite parameters or outputs on the "
            f"support set) with inner_lr={self.inner_lr} and {steps} steps; lower inner_lr "
            "or adapt_steps, or standardise the data. Predictions will not be finite.",
            RuntimeWarning,
            stacklevel=3,
        )

    def _commit_adaptation(self, module, buffers, input_shape, adapted, X, target_state):
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

    def _validate_sample_weight(self, sample_weight, X):
        if sample_weight is None:
            return None
        if getattr(self, "head_init", "meta") == "prototypes":
            raise ValueError(
                "sample_weight cannot be used with head_init='prototypes': the class "
                "prototypes are unweighted means of the support embeddings. Pass "
                "sample_weight=None, or use head_init='meta' or 'zero'."
            )
        weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                      ensure_non_negative=True)
        if not weight.sum() > 0:
            raise ValueError("sample_weight must not be all zero: the support loss would "
                             "have no examples.")
        return weight

    def fit(self, X, y=None, sample_weight=None):
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
        X : array-like of shape ``(n_samples, *input_shape)``, or task collection
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), or None
            Must be None when ``X`` is a task collection.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the support examples (see :meth:`adapt`); None for a task
            collection.

        Returns
        -------
        self : object
        """
        if _is_task_collection(X):
            if y is not None or sample_weight is not None:
                raise ValueError(
                    f"{'y' if y is not None else 'sample_weight'} must be None when X "
                    "is a collection of tasks: each task carries its own targets, and "
                    "meta-training takes no example weights."
                )
            return self.meta_fit(X)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "fit(X, y) adapts to the support set (X, y). Pass a TaskBatch or a list "
                "of Task to meta-fit instead."
            )
        return self.adapt(X, y, sample_weight=sample_weight)

    # ------------------------------------------------------------------ scikit-learn protocol
    _META_STATE = (
        "module_", "meta_params_", "buffers_", "input_shape_", "meta_history_", "n_iter_",
        "strategy_", "meta_interrupted_", "inner_lrs_", "world_size_", "best_validation_score_",
        "best_iter_",
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
                if hasattr(self, name):
                    value = getattr(self, name)
                    setattr(new, name, dict(value) if isinstance(value, dict) else value)
        return new

    def __sklearn_is_fitted__(self):
        # fitted, for scikit-learn, means ready to predict: adapted, or meta-fitted where
        # the initialisation predicts on its own (regression: zero-shot)
        return hasattr(self, "adapted_params_") or (
            hasattr(self, "meta_params_") and self._zero_shot_refusal() is None)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags

    def _validate_X(self, X, reset):
        self._refuse_task_collection(X)
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

    def to_module(self, adapted=True):
        """The network with its learned weights, as an ordinary ``torch.nn.Module`` (CPU).

        Parameters
        ----------
        adapted : bool, default=True
            The adapted network of the last :meth:`adapt` (what :meth:`predict` uses
            after it), or, with False, the meta-learned initialisation (what a
            meta-fitted regressor predicts with before any :meth:`adapt`).

        Returns
        -------
        module : torch.nn.Module
            A copy, independent of the estimator, in eval mode. Its output is what
            :meth:`predict` computes from (the logits, for classifiers; output unit
            ``i`` is ``classes_[i]``). A network with BatchNorm layers, or with
            MAML++'s per-step ones, is returned wrapped in
            :class:`sklmeta.networks.AdaptedNetwork`, which normalises with the support
            set's statistics (``batch_norm_stats="support"``) and uses the last
            adaptation step's weights, as :meth:`predict` does; its ``.module`` is the
            bare network.

        Examples
        --------
        >>> import torch
        >>> from sklmeta import MAMLRegressor
        >>> from sklmeta.tasks import SinusoidTasks
        >>> tasks = SinusoidTasks()
        >>> maml = MAMLRegressor(max_iter=20, device="cpu", random_state=0).meta_fit(tasks)
        >>> task = tasks.sample(1, random_state=1)[0]
        >>> net = maml.adapt(task.X_support, task.y_support).to_module()
        >>> net(torch.as_tensor(task.X_query)).shape
        torch.Size([10, 1])
        """
        key = "adapted_params_" if adapted else "meta_params_"
        if not hasattr(self, key):
            raise NotFittedError(
                f"to_module(adapted={adapted}) needs {type(self).__name__}."
                + ("adapt(X, y) first" + ("; to_module(adapted=False) gives the "
                                          "meta-learned initialisation."
                                          if hasattr(self, "meta_params_") else ".")
                   if adapted else "meta_fit(tasks) first.")
            )
        module = copy.deepcopy(self.module_).cpu()
        state = {**getattr(self, key), **self.buffers_}
        with torch.no_grad():
            for name, tensor in {**dict(module.named_parameters()),
                                 **dict(module.named_buffers())}.items():
                tensor.copy_(state[name])
        module.eval()
        support = getattr(self, "support_inputs_", None) if adapted else None
        if self.batch_norm_stats != "support":
            support = None
        per_step = bool(per_step_parameter_names(module))
        if support is None and not per_step:
            return module
        step = None
        if per_step:
            steps = self.inner_steps if self.adapt_steps is None else self.adapt_steps
            step = max(steps, 1) - 1 if adapted else 0
        return AdaptedNetwork(module, support, step)

    def _refuse_task_collection(self, X):
        if _is_task_collection(X):
            raise TypeError(
                f"X is a collection of tasks, which {type(self).__name__} cannot predict "
                "as one array: score(tasks) adapts to each task and scores its query set, "
                "and sklmeta.metrics.make_task_scorer(metric) gives any scikit-learn "
                "metric the same way (as scoring= of GridSearchCV or cross_val_score)."
            )

    def _zero_shot_refusal(self):
        """Why this estimator cannot predict from its meta-learned initialisation
        (None when it can: :meth:`_forward` before any :meth:`adapt`)."""
        return "its classes are set by the support set."

    def _forward(self, X):
        self._refuse_task_collection(X)
        zero_shot = not hasattr(self, "adapted_params_")
        if zero_shot:
            reason = self._zero_shot_refusal() if hasattr(self, "meta_params_") else None
            if reason is not None or not hasattr(self, "meta_params_"):
                raise NotFittedError(
                    f"This {type(self).__name__} has not been adapted yet: call adapt(X, y) "
                    "(or fit) on a support set before predicting"
                    + (f"; it cannot predict from its meta-learned initialisation alone: "
                       f"{reason}" if reason else ".")
                )
        params = self.meta_params_ if zero_shot else self.adapted_params_
        X = self._validate_X(X, reset=False)
        device = resolve_device(self.device)
        dtype = _prediction_dtype(X.dtype, params, device)
        X_t = _to_input_tensor(X, self.input_shape_, device, dtype)
        params = {k: _cast_float(v, device, dtype) for k, v in params.items()}
        buffers = {k: _cast_float(v, device, dtype) for k, v in self.buffers_.items()}
        reference = None
        if self.batch_norm_stats == "support" and getattr(self, "support_inputs_", None) is not None:
            reference = self.support_inputs_.to(device=device, dtype=dtype)
        # zero-shot: the initialisation is the network before the first inner step
        context = batch_norm_step(0) if zero_shot else self._prediction_context()
        with torch.no_grad(), context:
            out = forward(self.module_, params, buffers, X_t, X_reference=reference)
        if not _all_finite(out):
            cause = ("meta-training diverged" if zero_shot
                     else f"the adaptation diverged (inner_lr={self.inner_lr})")
            warnings.warn(
                f"The model's outputs contain NaN or infinity: {cause} or X is far "
                "outside the scale of the data it was trained on.",
                RuntimeWarning,
                stacklevel=3,
            )
        return out.cpu()

    def __setstate__(self, state):
        # estimators pickled by sklmeta 0.1 were meta-trained transductively
        state.setdefault("batch_norm_stats", "transductive")
        if "adapted_params_" not in state:
            # older meta_fit left the output shape of a previous adapt behind; without an
            # adaptation, zero-shot predictions take the default shape
            state.pop("_y_ndim", None)
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
