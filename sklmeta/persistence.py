"""Saving and loading estimators without pickle.

``pickle`` and ``joblib`` work on every estimator (fitted tensors are CPU tensors, so a
model trained on a GPU loads on a laptop), but unpickling a file can run arbitrary code:
load pickles only from sources you trust. :func:`save` writes a file that
:func:`load` reads with ``torch.load(..., weights_only=True)``, which only
reconstructs tensors and plain containers, so a downloaded model cannot execute code
when loaded. The file holds the estimator's class name and parameters, its fitted
tensors (an adapted estimator whose network has BatchNorm layers keeps its support
inputs, ``support_inputs_``: mind what the file then holds) and a SHA-256 checksum of
all of it, so a damaged file is refused rather than loaded with altered weights. The
checksum detects damage, not tampering: anyone can write a file with a valid one. The network's *code* is not stored: the default networks
are rebuilt from the parameters, and a custom ``module`` must be passed to :func:`load`.
"""

import copy
import hashlib
import numbers
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch

from . import maml, presets, pretrain, reptile
from ._device import fall_back_to_cpu_if_unavailable
from ._checkpoint import atomic_save
from .base import split_module_tensors

__all__ = ["save", "load"]

_FORMAT = "sklmeta-safe-2"
_OLD_FORMATS = ("sklmeta-safe-1",)  # no checksum
_CLASSES = {
    cls.__name__: cls
    for cls in (
        maml.MAMLRegressor, maml.MAMLClassifier, presets.MetaSGDRegressor,
        presets.MetaSGDClassifier, presets.ANILRegressor, presets.ANILClassifier,
        presets.MAMLPlusPlusRegressor, presets.MAMLPlusPlusClassifier,
        reptile.ReptileRegressor,
        reptile.ReptileClassifier, pretrain.PretrainedRegressor, pretrain.PretrainedClassifier,
    )
}
_TENSOR_DICTS = ("meta_params_", "adapted_params_", "buffers_", "inner_lrs_")
_PLAIN_STATE = ("n_iter_", "strategy_", "meta_interrupted_", "n_features_in_", "n_outputs_",
                "n_way_", "_y_ndim", "world_size_", "best_validation_score_", "best_iter_")
_KNOWN_STATE = _TENSOR_DICTS + _PLAIN_STATE + (
    "input_shape_", "meta_history_", "classes_", "support_inputs_",
)


def _plain_params(est):
    params = {}
    for name, value in est.get_params(deep=False).items():
        if name == "module":
            continue
        if name == "random_state" and not (value is None or isinstance(value, numbers.Integral)):
            warnings.warn(
                f"random_state={value!r} is a random generator, which the file cannot hold "
                "as data: it is saved as None. Pass an int random_state to keep "
                "reproducibility across save and load.",
                UserWarning,
                stacklevel=3,
            )
            value = None
        elif name == "hidden_layer_sizes":
            value = [int(v) for v in np.atleast_1d(value)]
        elif isinstance(value, torch.device):
            value = str(value)
        elif isinstance(value, os.PathLike):  # checkpoint_path=pathlib.Path(...)
            value = os.fspath(value)
        elif isinstance(value, (np.integer, np.floating, np.bool_)):
            value = value.item()
        params[name] = value
    return params


def _digest(obj, h=None):
    """SHA-256 of a payload of tensors, containers and plain values, in a fixed order."""
    h = hashlib.sha256() if h is None else h
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(f"dict {len(obj)}".encode())
        for key in sorted(obj, key=repr):
            _digest(key, h)
            _digest(obj[key], h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__} {len(obj)}".encode())
        for item in obj:
            _digest(item, h)
    else:
        h.update(f"{type(obj).__name__} {obj!r}".encode())
    return h.hexdigest()


def _module_shapes(module):
    params, buffers = split_module_tensors(module)
    return ({k: tuple(v.shape) for k, v in params.items()},
            {k: tuple(v.shape) for k, v in buffers.items() if v.is_floating_point()})


def _shapes(tensors):
    return {k: tuple(v.shape) for k, v in tensors.items()}


def _check_tensors_fit_module(net, state, where):
    """The saved parameter (and floating buffer) tensors must be those of ``net``."""
    expected_params, expected_buffers = _module_shapes(net)
    for key in ("meta_params_", "adapted_params_"):
        if key in state and _shapes(state[key]) != expected_params:
            raise ValueError(
                f"{where}: the saved {key} do not match the network: the file has "
                f"{_shapes(state[key])}, the network {expected_params}."
            )
    saved_buffers = {k: v for k, v in state.get("buffers_", {}).items()
                     if v.is_floating_point()}
    if _shapes(saved_buffers) != expected_buffers:
        raise ValueError(
            f"{where}: the saved buffers do not match the network: the file has "
            f"{_shapes(saved_buffers)}, the network {expected_buffers}."
        )


def save(estimator, path):
    """Write an estimator to ``path`` in a format that loads without running code.

    The file is written to a temporary file in the same folder and renamed into
    place, so an interrupted save never leaves half a file at ``path``.

    Parameters
    ----------
    estimator : sklmeta estimator
        Unfitted, meta-fitted or adapted.
    path : str or path-like
        The folder must exist.

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
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"path: cannot save to {str(path)!r}: the folder {str(path.parent)!r} does not exist."
        )
    state = {}
    for key in _TENSOR_DICTS:
        if hasattr(estimator, key):
            state[key] = {k: v.detach().cpu() for k, v in getattr(estimator, key).items()}
    for key in _PLAIN_STATE:
        if hasattr(estimator, key):
            value = getattr(estimator, key)
            state[key] = value.item() if isinstance(value, np.generic) else value
    if getattr(estimator, "support_inputs_", None) is not None:
        state["support_inputs_"] = estimator.support_inputs_.detach().cpu()
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
    if estimator.module is None and "input_shape_" in state:
        # the file rebuilds the default network from the parameters: they must still
        # describe the fitted one (set_params after fitting would make it unloadable)
        target_info = state.get("n_way_", state.get("n_outputs_"))
        net = estimator._engine_module(
            estimator._default_module(tuple(state["input_shape_"]), target_info)
        )
        _check_tensors_fit_module(
            net, state,
            "save: hidden_layer_sizes was changed after fitting (set_params), so the file "
            "could not be loaded; restore it or meta_fit again",
        )
    payload = {
        "format": _FORMAT,
        "class": name,
        "params": _plain_params(estimator),
        "custom_module": estimator.module is not None,
        "state": state,
    }
    payload["sha256"] = _digest(payload)
    atomic_save(payload, path)


def _read(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no sklmeta model file at {str(path)!r}.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, which would run the file's
        # code: say what happened instead, and hide that advice
        raise ValueError(
            f"{str(path)!r} was refused: it is not a file written by "
            "sklmeta.persistence.save (damaged, another kind of file, or holding objects "
            "other than tensors and plain data). Nothing from it was run. Do not load it "
            "another way unless you trust its source."
        ) from None
    except Exception as exc:  # truncated or random bytes: torch raises many types
        raise ValueError(
            f"{str(path)!r} is not a readable sklmeta model file (damaged, truncated or "
            f"another kind of file): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") not in (_FORMAT,) + _OLD_FORMATS:
        raise ValueError(f"{str(path)!r} is not a file written by sklmeta.persistence.save.")
    if payload["format"] == _FORMAT:
        digest = payload.pop("sha256", None)
        if digest != _digest(payload):
            raise ValueError(
                f"{str(path)!r} is corrupted: its contents do not match the checksum "
                "written by save. It was not loaded."
            )
    return payload


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

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not one :func:`save` wrote, is damaged (checksum), holds
        anything but tensors and plain data, or does not fit ``module``.
    """
    payload = _read(path)
    where = str(path)
    cls = _CLASSES.get(payload["class"])
    if cls is None:
        raise ValueError(f"Unknown estimator class {payload['class']!r} in {where}.")
    params = dict(payload["params"])
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    if payload["custom_module"] and module is None:
        raise ValueError(
            f"{where} was saved from an estimator with a custom module: pass the same "
            "network architecture as module= to load it."
        )
    if payload["format"] in _OLD_FORMATS:  # sklmeta 0.1 meta-trained transductively
        params.setdefault("batch_norm_stats", "transductive")
    unknown = sorted(k for k in set(params) - set(cls().get_params())
                     if not k.startswith("module__"))
    if unknown:
        raise ValueError(
            f"{where} has parameters {unknown} that {cls.__name__} does not take (written "
            "by another version of sklmeta?)."
        )
    est = cls(module=module if payload["custom_module"] else None, **params)
    state = {k: v for k, v in payload["state"].items() if k in _KNOWN_STATE}
    if "meta_params_" not in state and "adapted_params_" not in state:
        return est
    fall_back_to_cpu_if_unavailable(est)
    input_shape = tuple(state["input_shape_"])
    if payload["custom_module"]:
        net = est._custom_module()
    else:
        target_info = state.get("n_way_", state.get("n_outputs_"))
        net = est._default_module(input_shape, target_info)
    net = est._engine_module(copy.deepcopy(net).cpu())
    _check_tensors_fit_module(net, state, where)
    for key, value in state.items():
        if key == "input_shape_":
            value = input_shape
        elif key == "meta_history_":
            value = {k: v.numpy() for k, v in value.items()}
        elif key == "classes_":
            value = np.asarray(value["values"], dtype=value["dtype"])
        setattr(est, key, value)
    if "adapted_params_" in state and "support_inputs_" not in state:
        est.support_inputs_ = None
    est.module_ = net
    return est
