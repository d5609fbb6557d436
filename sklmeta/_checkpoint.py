"""Checkpoints of a meta-training run: written atomically, read without running code.

A checkpoint holds what continuing a run exactly needs and nothing that is code:
the meta-learned tensors, the optimiser's state, the iteration count and history,
the state of the task sampler's and torch's random generators, and the early-stopping
record. It is a ``torch.save`` file of tensors and plain data, so
``torch.load(path, weights_only=True)`` reads it. The network itself is rebuilt from
the estimator's parameters, which must be those the checkpoint was written with.
"""

import numbers
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import torch

FORMAT = "sklmeta-checkpoint-1"

# hyper-parameters free to differ between the run that wrote a checkpoint and the one
# that resumes it: they do not change the mathematics of the remaining iterations
_FREE_TO_DIFFER = {
    "max_iter", "verbose", "device", "warm_start", "checkpoint_path", "checkpoint_every",
    "strategy", "random_state", "module",
}


def config_of(estimator):
    """The hyper-parameters a resumed run must share, as plain comparable values."""
    return {name: _plain(value) for name, value in estimator.get_params(deep=False).items()
            if name not in _FREE_TO_DIFFER}


def _plain(value):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, numbers.Number, str)):
        return value
    return repr(value)  # anything else is compared by its description


def rng_state(rng):
    """A numpy Generator's state as plain data (arrays become tensors)."""
    return _encode(rng.bit_generator.state)


def rng_from_state(state):
    state = _decode(state)
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _encode(obj):
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _decode(obj):
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    return obj


def write(path, payload):
    """Write a checkpoint of ``payload`` to ``path`` atomically (:func:`atomic_save`)."""
    atomic_save({"format": FORMAT, **payload}, path)


def atomic_save(obj, path):
    """``torch.save(obj)`` to ``path`` atomically: to a temporary file in the same folder,
    flushed to disk, then renamed over the old file, so a kill at any moment leaves
    either the old file or the new one, whole. The file gets the permissions ``open``
    would give it (``mkstemp`` creates it 0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read(path):
    """The checkpoint at ``path``, loaded with ``weights_only=True`` on the CPU."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ValueError(
            f"checkpoint_path {str(path)!r} is not a readable sklmeta checkpoint "
            f"({type(exc).__name__}); nothing from it was run. Move it away or set "
            "warm_start=False to start afresh (which overwrites it)."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint_path {str(path)!r} is not a checkpoint written by sklmeta's "
            f"meta_fit (format {FORMAT!r})."
        )
    return payload


def check_matches(payload, estimator, path):
    """Refuse a checkpoint of another estimator class or configuration, naming what
    differs (the tensor shapes are checked where the network is rebuilt)."""
    name = type(estimator).__name__
    if payload["estimator"] != name:
        raise ValueError(
            f"checkpoint_path {str(path)!r} was written by {payload['estimator']}, not "
            f"{name}: it cannot be resumed by another algorithm. Use another "
            "checkpoint_path, or warm_start=False to start afresh (which overwrites it)."
        )
    ours, theirs = config_of(estimator), payload["config"]
    differing = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if differing:
        details = ", ".join(f"{k}={theirs.get(k)!r} there, {ours.get(k)!r} here"
                            for k in differing)
        raise ValueError(
            f"checkpoint_path {str(path)!r} was written with other hyper-parameters "
            f"({details}): resuming would not continue that run. Set them back, use "
            "another checkpoint_path, or warm_start=False to start afresh."
        )


def check_shapes(saved, expected, path):
    saved = {k: tuple(v.shape) for k, v in saved.items()}
    expected = {k: tuple(v.shape) for k, v in expected.items()}
    if saved != expected:
        differing = sorted(k for k in saved.keys() | expected.keys()
                           if saved.get(k) != expected.get(k))
        details = ", ".join(f"{k}: {saved.get(k)} there, {expected.get(k)} here"
                            for k in differing)
        raise ValueError(
            f"checkpoint_path {str(path)!r} holds tensors of other shapes than this "
            f"network's ({details}). Use the module and tasks it was written for, "
            "another checkpoint_path, or warm_start=False to start afresh."
        )
