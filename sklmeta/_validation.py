"""Input validation: what a user passes, checked and turned into tensors.

One entry point per kind of input, so that every estimator names the argument and
what was expected in the same way (as :mod:`sklearn.utils.validation` does).
"""

import numpy as np
import torch

from .tasks import TaskBatch, TaskSequence
from .tasks._base import Task

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


_UNSCALED = 100.0
_SCALE_SAMPLE = 100_000


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
    # one flat tensor, one kernel: ~3x cheaper than a check per tensor (per iteration)
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    return bool(torch.isfinite(flat).all())
