"""Default networks: an MLP for vectors and the 4-layer conv net of the MAML paper.

Any :class:`torch.nn.Module` can be passed to an estimator as ``module=``; these are
only the defaults. The engine calls modules functionally
(:func:`torch.func.functional_call`), so a module's own parameter values are used
only as the starting point of meta-training.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "Conv4", "BatchNorm2d"]


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


class BatchNorm2d(nn.Module):
    """Batch normalisation from primitive ops, always with the current batch's statistics.

    This is the convention of the reference MAML implementation: during adaptation the
    support batch is normalised with its own statistics, at prediction time the query
    batch with its own (transductive). No running statistics are kept.

    It exists because the second-order meta-gradient of the built-in
    :class:`torch.nn.BatchNorm2d` under :func:`torch.func.vmap` is wrong in torch 2.x
    (see ``docs/engine.md``); this version is correct under ``vmap`` and is checked
    against finite differences in the test suite.

    Parameters
    ----------
    num_features : int
        Number of channels.
    eps : float, default=1e-5
        Added to the variance for numerical stability.
    """

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x):
        if _plain_autograd():
            # torch's fused kernel: ~4x faster on the CPU than the ops below, and its
            # double backward is exact in plain autograd (the engine's "loop" strategy)
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        var, mean = torch.var_mean(x, dim=(0, 2, 3), keepdim=True, correction=0)
        x_hat = (x - mean) * torch.rsqrt(var + self.eps)
        return x_hat * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}"


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
