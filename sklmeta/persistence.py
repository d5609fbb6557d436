"""Saving and loading estimators without pickle.

``pickle`` and ``joblib`` work on every estimator (fitted tensors are CPU tensors, so a
model trained on a GPU loads on a laptop), but unpickling a file can run arbitrary code:
load pickles only from sources you trust. :func:`save` writes a file that
:func:`load` reads with ``torch.load(..., weights_only=True)``, which only
reconstructs tensors and plain containers, so a downloaded model cannot execute code
when loaded. The file holds the estimator's class name and parameters and its fitted
tensors; the network's *code* is not stored: the default networks are rebuilt from
the parameters, and a custom ``module`` must be passed to :func:`load`.
"""

import copy
import numbers

import numpy as np
import torch

from . import maml, pretrain, reptile
from .base import _configure_for_engine

__all__ = ["save", "load"]

_FORMAT = "sklmeta-safe-1"
_CLASSES = {
    cls.__name__: cls
    for cls in (
        maml.MAMLRegressor, maml.MAMLClassifier, reptile.ReptileRegressor,
        reptile.ReptileClassifier, pretrain.PretrainedRegressor, pretrain.PretrainedClassifier,
    )
}
_TENSOR_STATE = ("meta_params_", "adapted_params_", "buffers_")
_PLAIN_STATE = ("n_iter_", "strategy_", "meta_interrupted_", "n_features_in_", "n_outputs_",
                "n_way_", "_y_ndim")


def _plain_params(est):
    params = {}
    for name, value in est.get_params(deep=False).items():
        if name == "module":
            continue
        if name == "random_state" and not (value is None or isinstance(value, numbers.Integral)):
            value = None  # a RandomState object is not plain data; reproducibility is lost
        elif name == "hidden_layer_sizes":
            value = [int(v) for v in np.atleast_1d(value)]
        elif isinstance(value, torch.device):
            value = str(value)
        elif isinstance(value, (np.integer, np.floating, np.bool_)):
            value = value.item()
        params[name] = value
    return params


def save(estimator, path):
    """Write an estimator to ``path`` in a format that loads without running code.

    Parameters
    ----------
    estimator : sklmeta estimator
        Unfitted, meta-fitted or adapted.
    path : str or path-like

    Examples
    --------
    >>> import tempfile, os
    >>> from sklmeta import MAMLRegressor
    >>> from sklmeta.persistence import save, load
    >>> from sklmeta.tasks import SinusoidTasks
    >>> maml = MAMLRegressor(max_iter=5, device="cpu", random_state=0).meta_fit(SinusoidTasks())
    >>> path = os.path.join(tempfile.mkdtemp(), "maml.pt")
    >>> save(maml, path)
    >>> load(path).n_iter_
    5
    """
    name = type(estimator).__name__
    if _CLASSES.get(name) is not type(estimator):
        raise TypeError(f"save supports the sklmeta estimators {sorted(_CLASSES)}; got {name}.")
    state = {}
    for key in _TENSOR_STATE:
        if hasattr(estimator, key):
            state[key] = {k: v.detach().cpu() for k, v in getattr(estimator, key).items()}
    for key in _PLAIN_STATE:
        if hasattr(estimator, key):
            value = getattr(estimator, key)
            state[key] = value.item() if isinstance(value, np.generic) else value
    if hasattr(estimator, "input_shape_"):
        state["input_shape_"] = [int(s) for s in estimator.input_shape_]
    if hasattr(estimator, "meta_history_"):
        state["meta_history_"] = {
            k: torch.as_tensor(np.asarray(v, dtype=np.float64))
            for k, v in estimator.meta_history_.items()
        }
    if hasattr(estimator, "classes_"):
        classes = estimator.classes_
        state["classes_"] = {"values": classes.tolist(), "dtype": classes.dtype.str
                             if classes.dtype.kind != "O" else "object"}
    payload = {
        "format": _FORMAT,
        "class": name,
        "params": _plain_params(estimator),
        "custom_module": estimator.module is not None,
        "state": state,
    }
    torch.save(payload, path)


def load(path, module=None):
    """Load an estimator written by :func:`save`, without executing code from the file.

    Parameters
    ----------
    path : str or path-like
    module : torch.nn.Module, default=None
        The network, when the estimator was saved with a custom ``module``; its
        structure must match the saved tensors (its parameter values are replaced).

    Returns
    -------
    estimator : sklmeta estimator
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{path!s} is not a file written by sklmeta.persistence.save.")
    cls = _CLASSES.get(payload["class"])
    if cls is None:
        raise ValueError(f"Unknown estimator class {payload['class']!r} in {path!s}.")
    params = dict(payload["params"])
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    if payload["custom_module"] and module is None:
        raise ValueError(
            f"{path!s} was saved from an estimator with a custom module: pass the same "
            "network architecture as module= to load it."
        )
    est = cls(module=module if payload["custom_module"] else None, **params)
    state = payload["state"]
    if "meta_params_" not in state and "adapted_params_" not in state:
        return est
    input_shape = tuple(state["input_shape_"])
    for key, value in state.items():
        if key == "input_shape_":
            value = input_shape
        elif key == "meta_history_":
            value = {k: v.numpy() for k, v in value.items()}
        elif key == "classes_":
            value = np.asarray(value["values"], dtype=value["dtype"])
        setattr(est, key, value)
    if payload["custom_module"]:
        net = module
    else:
        target_info = state.get("n_way_", state.get("n_outputs_"))
        net = est._default_module(input_shape, target_info)
    net = _configure_for_engine(copy.deepcopy(net).cpu())
    expected = {k: tuple(v.shape) for k, v in net.named_parameters()}
    saved = state.get("meta_params_", state.get("adapted_params_"))
    if expected != {k: tuple(v.shape) for k, v in saved.items()}:
        raise ValueError(
            "The module's parameters do not match the saved tensors: expected "
            f"{ {k: tuple(v.shape) for k, v in saved.items()} }, the module has {expected}."
        )
    est.module_ = net
    return est
