"""grader.reference answers with PyTorch's own machinery; a few facts pin it down."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from grader import checks, reference


def test_init_params_is_kaiming_and_deterministic():
    W1, b1, W2, b2 = reference.init_params(seed=0)
    assert W1.shape == (784, 128) and W2.shape == (128, 10)
    assert abs(W1.std().item() - math.sqrt(2 / 784)) < 1e-3
    assert abs(W2.std().item() - math.sqrt(2 / 128)) < 1e-2
    assert all(p.is_leaf and p.requires_grad for p in (W1, b1, W2, b2))
    torch.manual_seed(0)
    drawn = torch.randn(784, 128) * math.sqrt(2 / 784)
    checks.assert_close(W1.detach(), drawn, "W1", atol=1e-6)
    assert reference.count_params((W1, b1, W2, b2)) == 101_770
    assert reference.param_bytes((W1, b1, W2, b2)) == 407_080


def test_forward_and_model_agree():
    params = [p.detach() for p in reference.init_params(seed=1, hidden=16)]
    x = checks.seeded(0, 5, 784)
    out = reference.forward(x, *params)
    manual = torch.clamp(x @ params[0] + params[1], min=0) @ params[2] + params[3]
    checks.assert_close(out, manual, "forward", atol=1e-5)
    model = reference.torch_model(*params)
    checks.assert_close(model(x).detach(), out, "model", atol=1e-5)  # another matmul kernel: [out, in] copy vs a transposed view
    for a, b in zip(reference.from_torch_model(model), params):
        checks.assert_equal(a, b, "round trip")


def test_gradients():
    logits = checks.seeded(2, 8, 10)
    targets = torch.arange(8) % 10
    expected = (torch.softmax(logits, 1) - F.one_hot(targets, 10)) / 8
    checks.assert_close(reference.cross_entropy_grad(logits, targets), expected, "dlogits", atol=1e-7)
    g = reference.gradient(lambda z: (z ** 3).sum(), torch.tensor([1.0, 2.0]))
    checks.assert_close(g, torch.tensor([3.0, 12.0], dtype=torch.float64), "grad", atol=1e-12)


def test_optimizer_trajectory_matches_plain_sgd():
    p0 = [torch.tensor([1.0, -2.0])]
    traj = reference.optimizer_trajectory("sgd", p0, lambda step, ps: [2 * ps[0]], steps=3, lr=0.1)
    checks.assert_close(traj[-1][0], torch.tensor([1.0, -2.0]) * 0.8 ** 3, "sgd", atol=1e-6)


def test_batches():
    g = torch.Generator().manual_seed(0)
    batches = reference.index_batches(10, 4, g)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert torch.equal(torch.cat(batches), torch.randperm(10, generator=torch.Generator().manual_seed(0)))
    assert reference.num_batches(60000, 64) == 938 and reference.num_batches(0, 64) == 0
    assert reference.dropout_scale(0.5) == 2.0
