"""Resolution of the ``device`` parameter into a :class:`torch.device`."""

import warnings

import torch

__all__ = ["resolve_device"]


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(device):
    """Turn a user's ``device`` argument into an available :class:`torch.device`.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"} or torch.device
        ``"auto"`` picks the first CUDA device when one is present, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the device is not understood or not available on this machine. We never
        fall back silently: a run meant for a GPU that quietly runs on the CPU is a
        bug a user finds hours later.

    Examples
    --------
    >>> from sklmeta._device import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not understood; expected 'auto', 'cpu', 'cuda', "
            f"'cuda:N' or 'mps'."
        ) from exc
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                "machine (torch.cuda.is_available() is False). Use device='cpu' or 'auto'."
            )
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only {torch.cuda.device_count()} "
                "CUDA device(s) are present."
            )
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not _mps_available():
            raise ValueError(
                f"device={device!r} was requested but the MPS backend is not available."
            )
        return dev
    raise ValueError(
        f"device={device!r} is not supported; expected 'auto', 'cpu', 'cuda', 'cuda:N' "
        "or 'mps'."
    )


def fall_back_to_cpu_if_unavailable(estimator):
    """Set ``estimator.device`` to "cpu", with a warning, when its accelerator is missing.

    For estimators unpickled or loaded on another machine (as skorch does): a model
    trained with ``device="cuda"`` then still predicts on a CPU-only laptop.
    """
    device = estimator.__dict__.get("device")
    if device is None:
        return
    try:
        resolve_device(device)
    except ValueError:
        name = str(device)
        if name.startswith(("cuda", "mps")):
            warnings.warn(
                f"{type(estimator).__name__} was saved with device={name!r}, which this "
                "machine does not have: it is set to device='cpu'.",
                UserWarning,
                stacklevel=3,
            )
            estimator.device = "cpu"
