"""grader.tripwire catches each shortcut whichever way it is reached, even when the student's
code swallows the exception, and leaves honest code and the library itself alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from grader import tripwire
from grader.tripwire import ShortcutUsed, forbid

x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
y = torch.tensor([0, 1, 2, 3])

SHORTCUTS = {
    "softmax": [lambda: torch.softmax(x, 1), lambda: x.softmax(1), lambda: F.softmax(x, 1),
                lambda: torch.special.softmax(x, 1), lambda: F.log_softmax(x, 1), lambda: x.logsumexp(1),
                lambda: F.cross_entropy(x, y), lambda: F.nll_loss(x, y), lambda: torch.nn.CrossEntropyLoss()(x, y),
                lambda: torch.ops.aten._softmax(x, 1, False), lambda: torch._C._nn.cross_entropy_loss(x, y)],
    "linear": [lambda: F.linear(x, torch.ones(2, 5)), lambda: torch.nn.Linear(5, 2)(x)],
    "relu": [lambda: torch.relu(x), lambda: F.relu(x), lambda: x.relu(), lambda: torch.nn.ReLU()(x),
             lambda: torch.ops.aten.relu(x), lambda: F.threshold(x, 0.0, 0.0)],
    "autograd": [lambda: (x.clone().requires_grad_(True) ** 2).sum().backward(),
                 lambda: torch.autograd.grad((x.clone().requires_grad_(True) ** 2).sum(),
                                             [x.clone().requires_grad_(True)], allow_unused=True)],
    "optim": [lambda: torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
              lambda: torch.optim.Adam([torch.zeros(1, requires_grad=True)])],
    "data": [lambda: torch.utils.data.DataLoader(list(range(5))),
             lambda: list(torch.utils.data.RandomSampler(range(5)))],
    "dropout": [lambda: F.dropout(x, 0.5), lambda: torch.nn.Dropout(0.5)(x)],
    "module": [lambda: torch.nn.Module(), lambda: torch.nn.Sequential()],
}


@pytest.mark.parametrize("job,index", [(j, i) for j, fs in SHORTCUTS.items() for i in range(len(fs))])
def test_each_shortcut_is_caught(job, index):
    with pytest.raises(ShortcutUsed, match="already does this exercise's job"):
        with forbid(job, what="mine"):
            SHORTCUTS[job][index]()


def test_swallowing_the_exception_does_not_help():
    def sneaky(z):
        try:
            return torch.softmax(z, 1)
        except BaseException:
            e = torch.exp(z - z.max(1, keepdim=True).values)
            return e / e.sum(1, keepdim=True)

    with pytest.raises(ShortcutUsed, match="sneaky called softmax()"):
        tripwire.call(sneaky, x, job="softmax")


def test_honest_code_passes_and_library_is_restored():
    def honest(z):
        e = torch.exp(z - z.max(1, keepdim=True).values)
        return e / e.sum(1, keepdim=True)

    out = tripwire.call(honest, x, job="softmax")
    torch.testing.assert_close(out, torch.softmax(x, 1))
    for job in tripwire.JOBS:
        with forbid(job):
            pass
    # everything patched is back
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    list(torch.utils.data.DataLoader(list(range(3))))
    torch.nn.Linear(2, 2)(torch.ones(1, 2)).sum().backward()
    assert torch.equal(torch.clamp(x, min=0), torch.relu(x))


def test_allowed_helpers_are_not_caught():
    with forbid("linear"):
        torch.addmm(torch.zeros(2), x, torch.ones(5, 2))
        _ = x @ torch.ones(5, 2) + 1
    with forbid("relu"):
        torch.clamp(x, min=0)
        torch.where(x > 0, x, torch.zeros_like(x))
    with forbid("softmax"):
        F.one_hot(y, 5)
        torch.exp(x).sum(1, keepdim=True).log()
    with forbid("autograd"):
        _ = torch.zeros(1, requires_grad=True).grad


def test_the_students_own_exception_is_not_hidden():
    def broken(z):
        raise ShortcutUsed("made up")

    with pytest.raises(ShortcutUsed, match="made up"):
        tripwire.call(broken, x, job="softmax")
    with pytest.raises(ValueError, match="unknown job"):
        with forbid("nope"):
            pass


@pytest.mark.parametrize("job", sorted(tripwire.JOBS))
def test_a_students_error_carries_no_tripwire_context(job):
    """A stub's NotImplementedError must read as the student's own: no 'During handling of the
    above exception' pointing into the tripwire (a guarded name missing from this torch did that)."""
    with pytest.raises(NotImplementedError) as raised:
        with forbid(job):
            raise NotImplementedError()
    assert raised.value.__context__ is None, f"{job}: the student's error carries {raised.value.__context__!r}"
