"""The sinusoid regression tasks of Finn et al. (2017), and the other wave families."""

import numbers

import numpy as np

from ._base import TaskBatch, as_rng

__all__ = ["SinusoidTasks"]

_WAVEFORMS = ("sine", "square", "sawtooth")


class SinusoidTasks:
    """Distribution of 1-D regression tasks ``y = A * wave(x - phase)``.

    The default is the setting of Finn et al. (2017): amplitude uniform in
    [0.1, 5], phase uniform in [0, pi], inputs uniform in [-5, 5].

    Parameters
    ----------
    k_support : int, default=10
        Support examples per task (the K of K-shot).
    k_query : int, default=10
        Query examples per task.
    waveform : {"sine", "square", "sawtooth"}, default="sine"
        The wave family; ``"square"`` is ``A * sign(sin(x - phase))`` and
        ``"sawtooth"`` rises linearly from -A to A over each period of 2*pi.
    amplitude_range : tuple of float, default=(0.1, 5.0)
    phase_range : tuple of float, default=(0.0, pi)
    x_range : tuple of float, default=(-5.0, 5.0)

    Examples
    --------
    >>> from sklmeta.tasks import SinusoidTasks
    >>> tasks = SinusoidTasks(k_support=5, k_query=20)
    >>> batch = tasks.sample(25, random_state=0)
    >>> batch.X_support.shape, batch.y_query.shape
    ((25, 5, 1), (25, 20))
    """

    n_outputs = 1

    def __init__(
        self,
        k_support=10,
        k_query=10,
        waveform="sine",
        amplitude_range=(0.1, 5.0),
        phase_range=(0.0, np.pi),
        x_range=(-5.0, 5.0),
    ):
        for name, value in (("k_support", k_support), ("k_query", k_query)):
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if waveform not in _WAVEFORMS:
            raise ValueError(f"waveform must be one of {_WAVEFORMS}, got {waveform!r}.")
        for name, value in (
            ("amplitude_range", amplitude_range),
            ("phase_range", phase_range),
            ("x_range", x_range),
        ):
            if len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(f"{name} must be a (low, high) pair, got {value!r}.")
        self.k_support = k_support
        self.k_query = k_query
        self.waveform = waveform
        self.amplitude_range = tuple(amplitude_range)
        self.phase_range = tuple(phase_range)
        self.x_range = tuple(x_range)

    def __repr__(self):
        return (
            f"SinusoidTasks(k_support={self.k_support}, k_query={self.k_query}, "
            f"waveform={self.waveform!r})"
        )

    def wave(self, x, amplitude, phase):
        """Evaluate the task function ``A * wave(x - phase)`` (broadcasting)."""
        z = np.asarray(x) - phase
        if self.waveform == "sine":
            return amplitude * np.sin(z)
        if self.waveform == "square":
            return amplitude * np.sign(np.sin(z))
        return amplitude * (2.0 * np.mod(z / (2 * np.pi), 1.0) - 1.0)

    def sample_functions(self, n_tasks, random_state=None):
        """Draw ``n_tasks`` (amplitude, phase) pairs, as arrays of shape (n_tasks,)."""
        rng = as_rng(random_state)
        amplitude = rng.uniform(*self.amplitude_range, size=n_tasks)
        phase = rng.uniform(*self.phase_range, size=n_tasks)
        return amplitude, phase

    def sample(self, n_tasks, random_state=None):
        """Draw ``n_tasks`` tasks as a :class:`~sklmeta.tasks.TaskBatch`.

        Support and query inputs are drawn independently from ``x_range``.
        """
        rng = as_rng(random_state)
        amplitude, phase = self.sample_functions(n_tasks, rng)
        n = self.k_support + self.k_query
        x = rng.uniform(*self.x_range, size=(n_tasks, n, 1)).astype(np.float32)
        y = self.wave(x[..., 0], amplitude[:, None], phase[:, None]).astype(np.float32)
        k = self.k_support
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])
