"""The default networks against textbook versions written with torch.nn layers."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sklmeta import _engine
from sklmeta.networks import BatchNorm2d, Conv4


def textbook_conv4(n_outputs, n_filters=8):
    """Finn et al.'s network as most code writes it: conv, BatchNorm, ReLU, then pool."""
    blocks, channels = [], 1
    for _ in range(4):
        blocks += [nn.Conv2d(channels, n_filters, 3, padding=1),
                   nn.BatchNorm2d(n_filters, track_running_stats=False),
                   nn.ReLU(), nn.MaxPool2d(2)]
        channels = n_filters
    net = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(n_filters, n_outputs))
    return net.double()


def same_weights(ours, textbook):
    """Copy ``ours``' parameters into ``textbook`` (pool and ReLU swap places)."""
    convs = [m for m in ours.modules() if isinstance(m, (nn.Conv2d, BatchNorm2d, nn.Linear))]
    theirs = [m for m in textbook.modules()
              if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    with torch.no_grad():
        for a, b in zip(convs, theirs, strict=True):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)


def test_batchnorm_fused_and_primitive_forms_agree(monkeypatch):
    torch.manual_seed(0)
    bn = BatchNorm2d(4).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(6, 4, 5, 5, dtype=torch.float64)
    fused = bn(x)
    from sklmeta import networks
    monkeypatch.setattr(networks, "_plain_autograd", lambda: False)
    primitive = bn(x)
    torch.testing.assert_close(fused, primitive, rtol=1e-10, atol=1e-10)
    # under vmap the primitive form runs (the fused kernel's nested gradients are wrong)
    batched = torch.func.vmap(bn)(torch.stack([x, 2 * x]))
    torch.testing.assert_close(batched[0], primitive, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("second_order", [True, False])
def test_conv4_meta_gradient_equals_the_textbook_network(second_order):
    """Pool-before-ReLU and channels-last change nothing the engine computes."""
    torch.manual_seed(0)
    ours = Conv4(n_outputs=3, image_size=16, n_filters=8).double()
    textbook = textbook_conv4(3)
    same_weights(ours, textbook)
    x = torch.rand(2, 3, 1, 16, 16, dtype=torch.float64)  # 2 tasks, 3 images each
    y = torch.tensor([[0, 1, 2], [2, 1, 0]])
    batch = (x, y, x.flip(1), y.flip(1))
    config = _engine.InnerLoop(lr=0.3, steps=2, first_order=not second_order)
    grads = {}
    for name, net in (("ours", ours), ("textbook", textbook)):
        params = {k: v.detach() for k, v in net.named_parameters()}
        loss = _engine.make_loss(net, F.cross_entropy)
        g, _, _ = _engine.maml_meta_gradient(loss, params, {}, batch, config, "loop")
        grads[name] = torch.cat([v.flatten() for v in g.values()])
    torch.testing.assert_close(ours(x[0]), textbook(x[0]), rtol=1e-10, atol=1e-10)
    # parameters come in the same order in both networks
    torch.testing.assert_close(grads["ours"], grads["textbook"], rtol=1e-8, atol=1e-10)
