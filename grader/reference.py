"""What PyTorch itself answers, for each function students write.

Hidden tests compare a student's function with these. Every answer comes from
PyTorch's own machinery (``nn.init``, ``F.linear``, ``F.cross_entropy``,
``torch.autograd``, ``torch.optim``, ``torch.utils.data``, ``nn.Sequential``), never
from a hand-written solution: reading this file teaches the library, not the exercise.

Shapes follow the course's convention: weights are ``[in, out]`` (``x @ W + b``), while
``nn.Linear`` stores ``[out, in]``; the functions here do the transposes.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

Params = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


# --- 01 tensors --------------------------------------------------------------------------

def init_params(seed: int = 0, hidden: int = 128) -> Params:
    """Kaiming-normal weights (``std = sqrt(2 / fan_in)``) drawn by ``nn.init`` after ``manual_seed(seed)``.

    ``kaiming_normal_`` on a ``[in, out]`` tensor with ``mode="fan_out"`` scales by the
    tensor's first dimension, which in the course's layout is the layer's fan-in.
    """
    torch.manual_seed(seed)
    W1 = nn.init.kaiming_normal_(torch.empty(784, hidden), mode="fan_out", nonlinearity="relu")
    W2 = nn.init.kaiming_normal_(torch.empty(hidden, 10), mode="fan_out", nonlinearity="relu")
    params = (W1, torch.zeros(hidden), W2, torch.zeros(10))
    return tuple(p.requires_grad_(True) for p in params)


def count_params(params: Iterable[torch.Tensor]) -> int:
    return sum(p.numel() for p in params)


def param_bytes(params: Iterable[torch.Tensor]) -> int:
    return sum(p.numel() * p.element_size() for p in params)


# --- 02 forward --------------------------------------------------------------------------

def linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``F.linear`` with the course's ``[in, out]`` weight."""
    return F.linear(x, W.t(), b)


def relu(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x)


def torch_model(W1, b1, W2, b2) -> nn.Sequential:
    """``nn.Sequential(Linear, ReLU, Linear)`` holding copies of the four tensors (weights transposed)."""
    model = nn.Sequential(nn.Linear(W1.shape[0], W1.shape[1]), nn.ReLU(), nn.Linear(W2.shape[0], W2.shape[1]))
    with torch.no_grad():
        model[0].weight.copy_(W1.t())
        model[0].bias.copy_(b1)
        model[2].weight.copy_(W2.t())
        model[2].bias.copy_(b2)
    return model.to(W1.device)


def forward(x, W1, b1, W2, b2) -> torch.Tensor:
    return F.linear(F.relu(F.linear(x, W1.t(), b1)), W2.t(), b2)


def predict(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=1)


# --- 03 loss -----------------------------------------------------------------------------

def softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=1)


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, dim=1)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets)


# --- 04 backward -------------------------------------------------------------------------

def cross_entropy_grad(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d F.cross_entropy / d logits, by torch.autograd."""
    z = logits.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(z, targets), z)
    return g


def backward(x, targets, W1, b1, W2, b2) -> Params:
    """Gradients of the mean cross-entropy of the MLP with respect to the four tensors, by torch.autograd."""
    leaves = [p.detach().clone().requires_grad_(True) for p in (W1, b1, W2, b2)]
    loss = F.cross_entropy(forward(x, *leaves), targets)
    return tuple(torch.autograd.grad(loss, leaves))


def gradient(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The exact gradient of a scalar function ``f`` at ``x``, by torch.autograd (float64)."""
    z = x.detach().to(torch.float64).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(z), z)
    return g


# --- 05 optimizers -----------------------------------------------------------------------

def optimizer_trajectory(kind: str, params: Sequence[torch.Tensor], grad_fn: Callable, steps: int,
                         **hyper) -> list[list[torch.Tensor]]:
    """Run ``torch.optim`` for ``steps`` steps and return the parameters after each step.

    Args:
        kind: ``"sgd"``, ``"momentum"`` or ``"adam"``.
        params: starting values (copied; the originals are not touched).
        grad_fn: ``grad_fn(step, params) -> list of gradients`` (step counts from 1),
            so that the caller can feed the very same gradients to a hand-written optimizer.
        hyper: ``lr`` and, for momentum, ``mu``; for Adam ``betas`` and ``eps``.
    """
    return [after for after, _ in optimizer_run(kind, params, grad_fn, steps, **hyper)]


# --- 06 batching -------------------------------------------------------------------------

def index_batches(n: int, batch_size: int, generator: torch.Generator | None = None,
                  shuffle: bool = True) -> list[torch.Tensor]:
    """The index batches ``torch.utils.data`` draws for one epoch: ``BatchSampler(RandomSampler)``."""
    from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler
    sampler = RandomSampler(range(n), generator=generator) if shuffle else SequentialSampler(range(n))
    return [torch.tensor(b, dtype=torch.long) for b in BatchSampler(sampler, batch_size, drop_last=False)]


def num_batches(n: int, batch_size: int) -> int:
    """``len(DataLoader)`` for ``n`` samples without ``drop_last``."""
    from torch.utils.data import BatchSampler, SequentialSampler
    return len(BatchSampler(SequentialSampler(range(n)), batch_size, drop_last=False))


# --- 07 loop -----------------------------------------------------------------------------

def mlp_model(*params: torch.Tensor) -> nn.Sequential:
    """``nn.Sequential(Linear, ReLU, ..., ReLU, Linear)`` holding copies of ``(W1, b1, ..., Wk, bk)``.

    Any number ``k >= 1`` of layers, weights in the course's ``[in, out]`` layout (transposed
    into ``nn.Linear``'s); for four tensors it is :func:`torch_model`.
    """
    if len(params) < 2 or len(params) % 2:
        raise ValueError(f"expected (W1, b1, ..., Wk, bk), an even number of tensors; got {len(params)}")
    layers: list[nn.Module] = []
    for k in range(0, len(params), 2):
        W, b = params[k], params[k + 1]
        linear = nn.Linear(W.shape[0], W.shape[1])
        with torch.no_grad():
            linear.weight.copy_(W.t())
            linear.bias.copy_(b)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1]).to(params[0].device)


def from_mlp_model(model: nn.Sequential) -> tuple[torch.Tensor, ...]:
    """The course tensors ``(W1, b1, ..., Wk, bk)`` held by the ``nn.Linear`` layers of ``model``, in order."""
    out: list[torch.Tensor] = []
    for m in model:
        if isinstance(m, nn.Linear):
            out += [m.weight.detach().t().clone(), m.bias.detach().clone()]
    return tuple(out)


@torch.no_grad()
def evaluate(params: Sequence[torch.Tensor], X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in [0, 1]) of the MLP (any depth) on the whole of ``X``, by ``nn.Sequential``."""
    logits = mlp_model(*params)(X)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def train_losses(params: Sequence[torch.Tensor], batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 lr: float = 1e-3, eps: float = 1e-8) -> tuple[list[float], list[torch.Tensor]]:
    """Train ``nn.Sequential`` + ``torch.optim.Adam`` on the given batches; the loss of each step and the final tensors.

    ``params`` is ``(W1, b1, ..., Wk, bk)`` of an MLP of any depth (see :func:`mlp_model`).
    """
    model = mlp_model(*params)
    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=eps)
    losses = []
    for xb, yb in batches:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, from_mlp_model(model)


# --- 08 parity ---------------------------------------------------------------------------

def from_torch_model(model: nn.Sequential) -> Params:
    """The four course tensors ``(W1, b1, W2, b2)`` held by ``Sequential(Linear, ReLU, Linear)``."""
    return (model[0].weight.detach().t().clone(), model[0].bias.detach().clone(),
            model[2].weight.detach().t().clone(), model[2].bias.detach().clone())


def adam_first_update(g: torch.Tensor, lr: float = 1e-3, eps: float = 1e-8) -> torch.Tensor:
    """What ``torch.optim.Adam`` (default betas) adds to a parameter at its first step when its gradient is ``g``.

    Computed in float64 on a parameter of ``g``'s shape starting at zero; ``g`` is not touched.
    """
    p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=lr, eps=eps)
    p.grad = g.detach().to(torch.float64).clone()
    opt.step()
    return p.detach().clone()


def adam_update_sensitivity(g: torch.Tensor, lr: float = 1e-3, eps: float = 1e-8) -> torch.Tensor:
    """``|d update / d g|`` of :func:`adam_first_update`, by central differences in float64.

    The difference step is ``1e-4 * (|g| + eps)`` per entry, small against the scale on which
    the update bends; the result is good to about 1e-4 relative.
    """
    g = g.detach().to(torch.float64)
    h = 1e-4 * (g.abs() + eps)
    return ((adam_first_update(g + h, lr, eps) - adam_first_update(g - h, lr, eps)) / (2 * h)).abs()


# --- 10 nn -------------------------------------------------------------------------------

def dropout_scale(p: float) -> float:
    """What ``nn.Dropout(p)`` multiplies a kept value by in training mode."""
    x = torch.ones(1, 10_000)
    torch.manual_seed(0)
    y = nn.Dropout(p).train()(x)
    kept = y[y != 0]
    return float(kept[0]) if kept.numel() else float("inf")


# --- 04 backward: any small graph ---------------------------------------------------------

def gradients(f: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Gradients of the scalar ``f(*inputs)`` with respect to every input, by torch.autograd.

    The inputs are copied (same dtype), so they are not touched and gain no ``.grad``.
    """
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    return tuple(torch.autograd.grad(f(*leaves), leaves))


def epoch_index_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of ``BatchSampler(RandomSampler(range(n), generator=generator))``, drawing one permutation.

    Exactly the ``n`` indices the sampler hands out for the epoch are taken, then batched
    by ``BatchSampler``. Unlike :func:`index_batches`, which exhausts the sampler (and
    ``RandomSampler.__iter__`` then draws a trailing ``randperm(n)`` it keeps none of),
    the generator advances by exactly one ``randperm(n)``: call this once per epoch with
    one generator to follow ``get_batches`` over several epochs.
    """
    import itertools
    from torch.utils.data import BatchSampler, RandomSampler
    order = list(itertools.islice(iter(RandomSampler(range(n), generator=generator)), n))
    return [torch.tensor(b, dtype=torch.long) for b in BatchSampler(order, batch_size, drop_last=False)]


# --- 05 optimizers: the optimizer's state as well -------------------------------------------

def optimizer_run(kind: str, params: Sequence[torch.Tensor], grad_fn: Callable, steps: int,
                  **hyper) -> list[tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]]:
    """Like :func:`optimizer_trajectory`, with ``torch.optim``'s own state after each step too.

    Returns one ``(params, states)`` pair per step: copies of the parameters, and per
    parameter a dict of the optimizer's state tensors: ``{"momentum_buffer": v}`` for
    ``"momentum"`` (``v = mu * v + grad``), ``{"exp_avg": m, "exp_avg_sq": v}`` for
    ``"adam"`` (the running averages before bias correction), ``{}`` for ``"sgd"`` (and for
    ``"momentum"`` with ``mu=0``, where torch keeps no buffer).
    """
    ps = [p.detach().clone().requires_grad_(True) for p in params]
    if kind == "sgd":
        opt, keys = torch.optim.SGD(ps, lr=hyper["lr"]), ()
    elif kind == "momentum":
        opt, keys = torch.optim.SGD(ps, lr=hyper["lr"], momentum=hyper.get("mu", 0.9)), ("momentum_buffer",)
    elif kind == "adam":
        opt = torch.optim.Adam(ps, lr=hyper.get("lr", 1e-3), betas=hyper.get("betas", (0.9, 0.999)),
                               eps=hyper.get("eps", 1e-8))
        keys = ("exp_avg", "exp_avg_sq")
    else:
        raise ValueError(f"kind must be 'sgd', 'momentum' or 'adam', got {kind!r}")
    out = []
    for step in range(1, steps + 1):
        for p, g in zip(ps, grad_fn(step, [q.detach() for q in ps])):
            p.grad = g.detach().clone()
        opt.step()
        out.append(([p.detach().clone() for p in ps],
                    [{k: opt.state[p][k].detach().clone() for k in keys if opt.state[p].get(k) is not None}
                     for p in ps]))
    return out
