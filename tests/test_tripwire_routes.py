"""Every route in torch 2.13 to each job's forbidden work, public or private, is caught by the tripwire:
the implementation is trapped by code object, so another name (``torch.optim._functional.adam``), a
private variant (``_single_tensor_adam``), a method borrowed by a class that is not an ``nn.Module``,
or a C entry point (the autograd engine's ``run_backward``) does not get through. Honest code of
each job still runs untouched."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from grader import tripwire
from grader.tripwire import ShortcutUsed, forbid

x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
y = torch.tensor([0, 1, 2, 3])
adam_mod = importlib.import_module("torch.optim.adam")
sgd_mod = importlib.import_module("torch.optim.sgd")
functional = importlib.import_module("torch.optim._functional")


def _adam_state():
    p, g = torch.ones(3), torch.full((3,), 0.5)
    return [p], [g], [torch.zeros(3)], [torch.zeros(3)], [], [torch.tensor(0.0)]


ADAM_KW = dict(amsgrad=False, beta1=0.9, beta2=0.999, lr=1e-3, weight_decay=0.0, eps=1e-8, maximize=False)
SGD_KW = dict(weight_decay=0.0, momentum=0.9, lr=0.1, dampening=0.0, nesterov=False, maximize=False)


def _sgd_args():
    return [torch.ones(3)], [torch.full((3,), 0.5)], [None]


class Borrowed:
    """Not an nn.Module, but with nn.Module's registry methods borrowed as class attributes."""
    named_parameters = torch.nn.Module.named_parameters
    _named_members = torch.nn.Module._named_members
    named_modules = torch.nn.Module.named_modules
    parameters = torch.nn.Module.__dict__["parameters"]
    state_dict = torch.nn.Module.state_dict
    _save_to_state_dict = torch.nn.Module._save_to_state_dict

    def __init__(self):
        self._parameters, self._modules, self._buffers = {"w": torch.ones(2)}, {}, {}
        self._non_persistent_buffers_set, self._state_dict_hooks, self._state_dict_pre_hooks = set(), {}, {}


def _engine_backward():
    leaf = torch.ones(3, requires_grad=True)
    loss = (leaf * 2).sum()
    engine = torch.autograd.variable.Variable._execution_engine
    engine.run_backward((loss,), (torch.ones(()),), False, False, (), True, True)


ROUTES = {
    "optim": {
        "torch.optim._functional.adam": lambda: functional.adam(*_adam_state(), foreach=False, **ADAM_KW),
        "torch.optim.adam._single_tensor_adam": lambda: adam_mod._single_tensor_adam(
            *_adam_state(), grad_scale=None, found_inf=None, has_complex=False, capturable=False,
            differentiable=False, decoupled_weight_decay=False, **ADAM_KW),
        "torch.optim.adam._multi_tensor_adam": lambda: adam_mod._multi_tensor_adam(
            *_adam_state(), grad_scale=None, found_inf=None, has_complex=False, capturable=False,
            differentiable=False, decoupled_weight_decay=False, **ADAM_KW),
        "torch.optim._functional.sgd": lambda: functional.sgd(*_sgd_args(), foreach=False, **SGD_KW),
        "torch.optim.sgd._single_tensor_sgd": lambda: sgd_mod._single_tensor_sgd(
            *_sgd_args(), grad_scale=None, found_inf=None, has_sparse_grad=False, **SGD_KW),
        "torch.optim.sgd._multi_tensor_sgd": lambda: sgd_mod._multi_tensor_sgd(
            *_sgd_args(), grad_scale=None, found_inf=None, has_sparse_grad=False, **SGD_KW),
        "torch.optim.adamw.adamw": lambda: importlib.import_module("torch.optim.adamw").adamw(
            *_adam_state(), foreach=False, **ADAM_KW),
    },
    "module": {
        "Module.named_parameters borrowed": lambda: list(Borrowed().named_parameters()),
        "Module.parameters borrowed": lambda: list(Borrowed().parameters()),
        "Module.named_modules borrowed": lambda: list(Borrowed().named_modules()),
        "Module.state_dict borrowed": lambda: Borrowed().state_dict(),
        "Module._named_members borrowed": lambda: list(Borrowed()._named_members(lambda m: m._parameters.items())),
        "nn.Sequential under its module's name": lambda: importlib.import_module(
            "torch.nn.modules.container").Sequential(),
    },
    "data": {
        "torch.utils.data.dataset.random_split": lambda: importlib.import_module(
            "torch.utils.data.dataset").random_split(range(10), [5, 5]),
        "torch.utils.data.sampler.RandomSampler": lambda: list(importlib.import_module(
            "torch.utils.data.sampler").RandomSampler(range(5))),
        "torch.utils.data.sampler.BatchSampler": lambda: list(importlib.import_module(
            "torch.utils.data.sampler").BatchSampler(range(5), 2, False)),
        "torch.utils.data.dataloader.DataLoader": lambda: importlib.import_module(
            "torch.utils.data.dataloader").DataLoader(list(range(5))),
    },
    "autograd": {
        "the engine's run_backward": _engine_backward,
        "torch.autograd.functional.vjp": lambda: torch.autograd.functional.vjp(lambda t: (t ** 2).sum(), x),
        "torch.func.grad": lambda: torch.func.grad(lambda t: (t ** 2).sum())(x),
        "torch.autograd.backward": lambda: torch.autograd.backward([(x.clone().requires_grad_(True) ** 2).sum()]),
    },
    "linear": {
        "torch._C._nn.linear": lambda: torch._C._nn.linear(x, torch.ones(2, 5)),
        "torch.ops.aten.linear": lambda: torch.ops.aten.linear(x, torch.ones(2, 5)),
        "nn.Linear.forward unbound": lambda: torch.nn.modules.linear.Linear.forward(torch.nn.Linear(5, 2), x),
    },
    "relu": {
        "torch.relu_": lambda: torch.relu_(x.clone()),
        "torch.nn.functional.relu6": lambda: F.relu6(x),
        "torch.ops.aten.threshold": lambda: torch.ops.aten.threshold(x, 0.0, 0.0),
        "torch._C._nn.leaky_relu": lambda: torch._C._nn.leaky_relu(x, 0.0),
    },
    "softmax": {
        "torch._softmax": lambda: torch._softmax(x, 1, False),
        "torch.special.log_softmax": lambda: torch.special.log_softmax(x, 1),
        "torch.ops.aten._log_softmax": lambda: torch.ops.aten._log_softmax(x, 1, False),
        "torch._C._nn.nll_loss_nd": lambda: torch._C._nn.nll_loss_nd(x, y),
        "torch.ops.aten.logsumexp": lambda: torch.ops.aten.logsumexp(x, [1]),
    },
    "dropout": {
        "torch.dropout": lambda: torch.dropout(x, 0.5, True),
        "torch._VF.dropout": lambda: torch._VF.dropout(x, 0.5, True),
        "torch.native_dropout": lambda: torch.native_dropout(x, 0.5, True),
        "torch.ops.aten.native_dropout": lambda: torch.ops.aten.native_dropout(x, 0.5, True),
        "nn.modules.dropout.Dropout": lambda: importlib.import_module("torch.nn.modules.dropout").Dropout(0.5)(x),
    },
}

HONEST = {
    "optim": lambda: _honest_adam(),
    "module": lambda: _HonestModule().parameters(),
    "data": lambda: [torch.arange(10)[i:i + 3] for i in torch.randperm(10, generator=torch.Generator().manual_seed(0))],
    "autograd": lambda: 2 * x,
    "linear": lambda: x @ torch.ones(5, 2) + torch.zeros(2),
    "relu": lambda: x.clamp(min=0) + torch.where(x > 0, x, torch.zeros_like(x)),
    "softmax": lambda: (x - x.max(1, keepdim=True).values).exp().div((x - x.max(1, keepdim=True).values).exp().sum(1, True)),
    "dropout": lambda: x * (torch.rand_like(x) > 0.5) / 0.5,
}


def _honest_adam():
    p, g, m, v = torch.ones(3), torch.full((3,), 0.5), torch.zeros(3), torch.zeros(3)
    m.mul_(0.9).add_(0.1 * g)
    v.mul_(0.999).add_(0.001 * g * g)
    p.sub_(1e-3 * (m / 0.1) / ((v / 0.001).sqrt() + 1e-8))
    return p


class _HonestModule:
    def __init__(self):
        object.__setattr__(self, "_params", {"w": torch.ones(2, requires_grad=True)})

    def parameters(self):
        return list(self._params.values())


@pytest.mark.parametrize("job,route", [(job, route) for job, routes in ROUTES.items() for route in routes])
def test_every_route_to_the_forbidden_work_is_caught(job, route):
    with pytest.raises(ShortcutUsed, match="already does this exercise's job"):
        with forbid(job, what="mine"):
            try:
                ROUTES[job][route]()
            except ShortcutUsed:
                raise
            except Exception:                   # noqa: BLE001 - the record decides, whatever the call did
                pass


@pytest.mark.parametrize("job", sorted(HONEST))
def test_honest_code_of_each_job_is_not_caught(job):
    with forbid(job, what="mine") as record:
        HONEST[job]()
    assert record.calls == []


def test_an_alias_taken_before_the_block_is_caught():
    """A name bound before ``forbid`` starts (``from grader.data import parse_idx``) still trips it."""
    from grader.data import parse_idx as mine
    with pytest.raises(ShortcutUsed):
        with forbid("idx", what="read_idx"):
            try:
                mine(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")
            except Exception:                   # noqa: BLE001
                pass


def test_the_library_works_again_after_the_block():
    with pytest.raises(ShortcutUsed):
        with forbid("optim", what="mine"):
            functional.sgd(*_sgd_args(), foreach=False, **SGD_KW)
    params = _sgd_args()
    functional.sgd(*params, foreach=False, **SGD_KW)
    assert torch.allclose(params[0][0], torch.full((3,), 0.95))
    assert len(list(torch.nn.Linear(2, 2).named_parameters())) == 2
    assert tripwire.ACTIVE == []


def test_the_profile_hook_of_the_caller_is_restored():
    import sys
    seen = []

    def mine(frame, event, arg):
        seen.append(event)

    sys.setprofile(mine)
    try:
        with forbid("module", what="mine"):
            _HonestModule().parameters()
        assert sys.getprofile() is mine
    finally:
        sys.setprofile(None)
    assert "call" in seen, "the caller's own profile hook kept receiving events inside the block"
