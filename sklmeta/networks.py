"""Default networks: an MLP for vectors and the 4-layer conv net of the MAML paper.

Any :class:`torch.nn.Module` can be passed to an estimator as ``module=``; these are
only the defaults. The engine calls modules functionally
(:func:`torch.func.functional_call`), so a module's own parameter values are used
only as the starting point of meta-training.
"""

import contextlib
import threading

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

__all__ = ["MLP", "Conv4", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "reference_rows",
           "convert_batchnorm", "batch_norm_step", "per_step_batchnorm", "AdaptedNetwork"]


class MLP(nn.Sequential):
    """Fully connected network with ReLU hidden layers.

    Parameters
    ----------
    n_inputs : int
        Number of input features.
    n_outputs : int
        Number of outputs (1 for scalar regression, ``n_way`` for classification).
    hidden_layer_sizes : tuple of int, default=(40, 40)
        Width of each hidden layer, as in scikit-learn's ``MLPRegressor``. The default
        is the sinusoid network of Finn et al. (2017).

    Examples
    --------
    >>> import torch
    >>> from sklmeta.networks import MLP
    >>> net = MLP(1, 1)
    >>> net(torch.zeros(5, 1)).shape
    torch.Size([5, 1])
    """

    def __init__(self, n_inputs, n_outputs, hidden_layer_sizes=(40, 40)):
        layers = []
        width = n_inputs
        for size in hidden_layer_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, n_outputs))
        super().__init__(*layers)


def _plain_autograd():
    """Whether no ``torch.func`` transform is active and nothing is being compiled.

    Under ``grad`` of ``vmap`` the fused batch-norm kernel's second-order gradient is
    wrong (``docs/engine.md``); compiled code fuses the primitive ops by itself.
    """
    return (
        torch._C._functorch.peek_interpreter_stack() is None
        and not torch.compiler.is_compiling()
    )


# How many leading rows of its input a normalisation layer takes its statistics from
# (None: all of them). Set only by :func:`reference_rows`; read by the layers. Not a
# forward argument, so that any network containing the layers (a user's
# ``nn.Sequential`` too) works unchanged; per thread, so that concurrent calls (a
# predict in one thread, a meta_fit in another) do not see each other's.
_STATE = threading.local()


def _reference_rows():
    return getattr(_STATE, "n_rows", None)


@contextlib.contextmanager
def reference_rows(n_rows):
    """Within the block, :class:`BatchNorm1d`/:class:`BatchNorm2d` layers normalise every
    row of their input with the statistics of its first ``n_rows`` rows.

    The engine and the estimators call a network on ``[support; query]`` with
    ``n_rows`` the size of the support set: query rows are normalised with the support
    set's statistics, so a query row's output depends on the support set and on
    itself only, never on the other query rows.
    """
    previous, _STATE.n_rows = _reference_rows(), int(n_rows)
    try:
        yield
    finally:
        _STATE.n_rows = previous


def _batch_norm_step():
    return getattr(_STATE, "step", None)


@contextlib.contextmanager
def batch_norm_step(step):
    """Within the block, BatchNorm layers with per-step weights (:func:`per_step_batchnorm`)
    use those of inner step ``step`` (the last ones beyond their number; None: no change).

    Set by the inner loop around each step's support loss, around the query loss after
    ``k`` steps (step ``k - 1``), and by ``predict`` (the last adaptation step).
    """
    if step is None:
        yield
        return
    previous, _STATE.step = _batch_norm_step(), int(step)
    try:
        yield
    finally:
        _STATE.step = previous


def per_step_batchnorm(module, n_steps):
    """Give the BatchNorm layers of ``module`` (ours) a weight and bias per inner step, in place.

    MAML++'s per-step BatchNorm weights and biases (Antoniou et al., 2019, "BNWB"):
    each layer's ``weight`` and ``bias`` become ``(n_steps, num_features)``, every row
    starting at the layer's values; :func:`batch_norm_step` picks the row. (Its per-step
    running statistics, "BNRS", have no counterpart here: the layers keep no running
    statistics, and normalise with the current support set's at every step.) Returns
    the names of the parameters made per-step.
    """
    names = []
    for prefix, layer in module.named_modules():
        if isinstance(layer, _BatchNorm) and layer.affine and layer.weight.dim() == 1:
            layer.weight = nn.Parameter(layer.weight.detach().repeat(n_steps, 1))
            layer.bias = nn.Parameter(layer.bias.detach().repeat(n_steps, 1))
            names += [f"{prefix}.weight" if prefix else "weight",
                      f"{prefix}.bias" if prefix else "bias"]
    return names


def per_step_parameter_names(module):
    """Names of the per-step BatchNorm parameters of ``module``."""
    return [f"{prefix}.{n}" if prefix else n
            for prefix, layer in module.named_modules()
            if isinstance(layer, _BatchNorm) and layer.affine and layer.weight.dim() == 2
            for n in ("weight", "bias")]


class _BatchNorm(nn.Module):
    """Batch normalisation without running statistics, exact under ``torch.func``.

    Statistics are those of the current batch, or, inside :func:`reference_rows`, of
    its leading reference rows (the support set), which then normalise the other rows
    too. Outside ``torch.func`` transforms the batch's own normalisation uses torch's
    fused kernel; inside them, primitive ops, whose nested gradients are exact.
    """

    _input_ndim = None  # set by subclasses: the dimensions of one batch of inputs

    def __init__(self, num_features, eps=1e-5, affine=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    @classmethod
    def from_builtin(cls, layer):
        """The same layer as a torch ``nn.BatchNorm1d``/``2d``, sharing its parameters."""
        new = cls(layer.num_features, eps=layer.eps, affine=layer.affine)
        if layer.affine:
            new.weight, new.bias = layer.weight, layer.bias
        return new

    def _step_affine(self):
        """``(weight, bias)``, of the current inner step for per-step layers."""
        if not self.affine or self.weight.dim() == 1:
            return self.weight, self.bias
        step = min(_batch_norm_step() or 0, self.weight.shape[0] - 1)
        return self.weight[step], self.bias[step]

    def _stat_dims(self, x):
        if x.dim() not in self._input_ndim:
            raise ValueError(
                f"{type(self).__name__} expects inputs with {' or '.join(map(str, self._input_ndim))} "
                f"dimensions, got shape {tuple(x.shape)}."
            )
        return (0,) + tuple(range(2, x.dim()))

    def _affine_of(self, mean, var, ndim):
        """``scale``, ``shift`` with ``normalised = x * scale + shift``, broadcastable."""
        weight, bias = self._step_affine()
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * weight
        shift = -mean * scale
        if self.affine:
            shift = shift + bias
        shape = (1, -1) + (1,) * (ndim - 2)
        return scale.reshape(shape), shift.reshape(shape)

    def _own_statistics(self, x):
        dims = self._stat_dims(x)
        n_values = x.numel() // max(x.shape[1], 1)
        if _plain_autograd() and n_values > 1:
            # torch's fused kernel: ~4x faster on the CPU than the ops below, and its
            # double backward is exact in plain autograd (the engine's "loop" strategy)
            weight, bias = self._step_affine()
            return F.batch_norm(x, None, None, weight, bias, True, 0.0, self.eps)
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        scale, shift = self._affine_of(mean, var, x.dim())
        return torch.addcmul(shift, x, scale)

    def forward(self, x):
        n_ref = _reference_rows()
        if n_ref is None or n_ref >= x.shape[0]:
            return self._own_statistics(x)
        # the reference rows normalised with their own statistics are normalised with
        # the reference statistics: one affine map serves every row
        var, mean = torch.var_mean(x[:n_ref], dim=self._stat_dims(x), correction=0)
        scale, shift = self._affine_of(mean, var, x.dim())
        return torch.addcmul(shift, x, scale)

    def extra_repr(self):
        steps = (f", per_step={self.weight.shape[0]}"
                 if self.affine and self.weight.dim() == 2 else "")
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}{steps}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``(n, features)`` or ``(n, channels, length)`` inputs.

    See :class:`BatchNorm2d`; ``torch.nn.BatchNorm1d`` layers of a user's network are
    turned into this layer by the estimators.

    Parameters
    ----------
    num_features : int
    eps : float, default=1e-5
    affine : bool, default=True
    """

    _input_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of images without running statistics, exact under ``torch.func``.

    Statistics come from the current batch, or from the support set when the network
    is called inside :func:`reference_rows` (what the estimators do by default:
    ``batch_norm_stats="support"``): the support set is normalised with its own
    statistics during adaptation, and every query example with the support set's, so
    a prediction does not depend on the other examples predicted with it. With
    ``batch_norm_stats="transductive"`` the query batch is normalised with its own
    statistics, the convention of the reference MAML implementation.

    It exists because the second-order meta-gradient of the built-in
    :class:`torch.nn.BatchNorm2d` under :func:`torch.func.vmap` is wrong in torch 2.x
    (see ``docs/engine.md``); this version is correct under ``vmap`` and is checked
    against finite differences in the test suite. ``torch.nn.BatchNorm2d`` layers of
    a user's network are turned into this layer by the estimators.

    Parameters
    ----------
    num_features : int
        Number of channels.
    eps : float, default=1e-5
        Added to the variance for numerical stability.
    affine : bool, default=True
        Learn a per-channel scale and shift.
    """

    _input_ndim = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalisation of ``(n, channels, depth, height, width)`` inputs.

    See :class:`BatchNorm2d`.

    Parameters
    ----------
    num_features : int
    eps : float, default=1e-5
    affine : bool, default=True
    """

    _input_ndim = (5,)


_CONVERSIONS = ((nn.BatchNorm1d, BatchNorm1d), (nn.BatchNorm2d, BatchNorm2d),
                (nn.BatchNorm3d, BatchNorm3d))


def convert_batchnorm(module):
    """Replace torch's ``nn.BatchNorm1d``/``2d``/``3d`` layers of ``module`` (in place) by ours.

    The replacements share the original layers' parameters (same names, so state
    dicts still match) and drop their running statistics, which the estimators never
    use. Subclasses of torch's layers are converted too (their own ``forward``, if
    any, is not kept). Returns ``module``.
    """
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            for builtin, ours in _CONVERSIONS:
                if isinstance(child, builtin):
                    setattr(parent, name, ours.from_builtin(child))
                    break
    return module


def uses_reference_rows(module):
    """Whether ``module`` has layers that :func:`reference_rows` changes (ours)."""
    return any(isinstance(m, _BatchNorm) for m in module.modules())


def forward(module, params, buffers, X, X_reference=None):
    """``module`` called on ``X`` with ``(params, buffers)``; with ``X_reference``, its
    BatchNorm layers normalise ``X`` with the statistics of ``X_reference``.

    Without such layers ``X_reference`` changes nothing and is not computed. torch's
    own BatchNorm layers cannot take reference statistics: :func:`convert_batchnorm`
    them first.
    """
    if X_reference is None or not uses_reference_rows(module):
        return functional_call(module, (params, buffers), (X,))
    return forward_with_reference(module, params, buffers, X, X_reference)


def forward_with_reference(module, params, buffers, X, X_reference):
    """:func:`forward` for a module known to use reference rows (no checks: hot path)."""
    n_ref = X_reference.shape[0]
    with reference_rows(n_ref):
        out = functional_call(module, (params, buffers), (torch.cat([X_reference, X]),))
    return out[n_ref:]


class AdaptedNetwork(nn.Module):
    """A network as the estimators predict with it: BatchNorm statistics from a support
    set, and the BatchNorm weights of an inner step. Returned by ``to_module``.

    Parameters
    ----------
    module : torch.nn.Module
        The network, with its weights.
    support_inputs : Tensor or None
        Inputs whose statistics the BatchNorm layers normalise with (None: those of the
        batch itself).
    step : int or None
        Inner step whose per-step BatchNorm weights are used (MAML++), or None.
    """

    def __init__(self, module, support_inputs=None, step=None):
        super().__init__()
        self.module = module
        self.register_buffer("support_inputs", support_inputs)
        self.step = step

    def forward(self, x):
        with batch_norm_step(self.step):
            if self.support_inputs is None:
                return self.module(x)
            n_ref = self.support_inputs.shape[0]
            with reference_rows(n_ref):
                out = self.module(torch.cat([self.support_inputs.to(x.dtype), x]))
            return out[n_ref:]


class Conv4(nn.Module):
    """The 4-block convolutional network of Finn et al. (2017) for few-shot images.

    Each block is a 3x3 convolution with ``n_filters`` channels, batch normalisation
    (current-batch statistics, see :class:`BatchNorm2d`), ReLU and 2x2 max-pooling
    (computed as pooling then ReLU: the same function, less work);
    a linear layer maps the flattened features to ``n_outputs`` logits.

    Parameters
    ----------
    in_channels : int, default=1
        Channels of the input images.
    n_outputs : int, default=5
        Number of classes (``n_way``).
    image_size : int or tuple of int, default=28
        Height and width of the input images (used to size the last layer).
    n_filters : int, default=64
        Channels of each convolution.

    Examples
    --------
    >>> import torch
    >>> from sklmeta.networks import Conv4
    >>> Conv4(n_outputs=5)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 5])
    """

    def __init__(self, in_channels=1, n_outputs=5, image_size=28, n_filters=64):
        super().__init__()
        blocks = []
        channels = in_channels
        for _ in range(4):
            blocks += [
                nn.Conv2d(channels, n_filters, kernel_size=3, padding=1),
                BatchNorm2d(n_filters),
                # pooling before the ReLU computes the same function (max commutes
                # with a monotone map) and the same gradients, with a 4x smaller ReLU
                nn.MaxPool2d(2),
                nn.ReLU(),
            ]
            channels = n_filters
        self.features = nn.Sequential(*blocks)
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        for _ in range(4):
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(
                f"image_size={image_size!r} is too small for 4 poolings by 2; "
                "it must be at least 16."
            )
        self.classifier = nn.Linear(n_filters * h * w, n_outputs)

    def forward(self, x):
        channels_last = x.device.type == "cpu" and _plain_autograd()
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == 0 and channels_last:
                # oneDNN's batch norm and max-pool run several times faster on
                # channels-last tensors; the 1-channel input cannot carry that layout
                # (its strides are ambiguous), so convert after the first convolution
                x = x.contiguous(memory_format=torch.channels_last)
        return self.classifier(x.flatten(1))
