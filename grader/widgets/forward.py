"""Lesson 02: the shape tracer, the pictures of why ReLU matters, and the MNIST picture helpers.

The shapes come from PyTorch itself: every stage is run on ``meta`` tensors, which carry
a shape and a dtype but no values, so tracing a batch of 100,000 costs nothing and a
mismatch raises PyTorch's own error. The ReLU pictures are built from ``torch.nn``
layers, so nothing here is a solution of the lesson's exercises.
"""

from __future__ import annotations

import html
from typing import Callable, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

Shape = tuple[int, ...]
STAGES = ("x", "x @ W1", "+ b1", "relu", "@ W2", "+ b2", "argmax")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def trace_shapes(batch_size: int, hidden: int = 128, inputs: int = 784, classes: int = 10) -> list[tuple[str, Shape]]:
    """The shape after each stage of the forward pass of an ``inputs``-``hidden``-``classes`` MLP.

    Returns ``[(stage, shape), ...]`` for the stages of :data:`STAGES`, from the input
    ``x [batch_size, inputs]`` to the predicted classes ``[batch_size]``. Each stage is
    computed by PyTorch on shape-only ``meta`` tensors.
    """
    B = _positive_int(batch_size, "batch_size")
    H = _positive_int(hidden, "hidden")
    D = _positive_int(inputs, "inputs")
    C = _positive_int(classes, "classes")

    def empty(*shape):
        return torch.empty(*shape, device="meta")

    # PyTorch's own functions on shape-only tensors: the shapes, never the lesson's code
    x = empty(B, D)
    a = torch.matmul(x, empty(D, H))
    z = torch.add(a, empty(H))
    h = torch.nn.functional.relu(z)
    s = torch.matmul(h, empty(H, C))
    logits = torch.add(s, empty(C))
    classes_out = torch.argmax(logits, dim=1)
    tensors = (x, a, z, h, s, logits, classes_out)
    return [(stage, tuple(t.shape)) for stage, t in zip(STAGES, tensors)]


def stage_notes(batch_size: int, hidden: int = 128) -> dict[str, str]:
    """One line per stage saying what happens there, for the tracer's table."""
    B, H = _positive_int(batch_size, "batch_size"), _positive_int(hidden, "hidden")
    images = "1 image" if B == 1 else f"{B} images"
    return {
        "x": f"{images}, 784 pixel values each",
        "x @ W1": f"[{B}, 784] @ [784, {H}]: each of the {H} hidden units takes a weighted sum of all 784 pixels",
        "+ b1": f"b1 [{H}] is broadcast to [{B}, {H}]: the same bias added to every image",
        "relu": "negative values become 0; the shape does not change",
        "@ W2": f"[{B}, {H}] @ [{H}, 10]: each of the 10 outputs weighs all {H} hidden units",
        "+ b2": f"b2 [10] is broadcast to [{B}, 10]: these are the logits, one raw score per digit",
        "argmax": "the index of the largest logit in each row: one predicted digit per image",
    }


def _sample_inputs(batch_size: int, hidden: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A seeded batch in [0, 1] and Kaiming-scaled random parameters (no autograd)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, 784, generator=g)
    W1 = torch.randn(784, hidden, generator=g) * (2 / 784) ** 0.5
    W2 = torch.randn(hidden, 10, generator=g) * (2 / hidden) ** 0.5
    return x, W1, torch.zeros(hidden), W2, torch.zeros(10)


def check_forward(forward_fn: Callable | None, batch_size: int, hidden: int = 128) -> tuple[bool | None, str]:
    """Run a student's ``forward`` on a seeded batch and say whether its output has the traced shape.

    Returns ``(ok, message)``: ``ok`` is ``None`` when there is no function yet (``None``,
    or it raises ``NotImplementedError``), ``False`` when it raises or returns the wrong
    shape, ``True`` when it returns ``[batch_size, 10]``. This is a demo, not a grade:
    only the shape is looked at.
    """
    B, H = _positive_int(batch_size, "batch_size"), _positive_int(hidden, "hidden")
    if forward_fn is None:
        return None, "your forward(): not given"
    if not callable(forward_fn):
        raise TypeError(f"forward_fn must be a function, got {type(forward_fn).__name__}")
    want = trace_shapes(B, H)[-2][1]
    try:
        with torch.no_grad():
            out = forward_fn(*_sample_inputs(B, H))
    except NotImplementedError:
        return None, "your forward(): not written yet"
    except Exception as err:  # a demo shows any failure instead of raising it
        return False, f"your forward() raised {type(err).__name__}: {err}"
    if not isinstance(out, torch.Tensor):
        return False, f"your forward() returned {type(out).__name__}, not a tensor"
    got = tuple(out.shape)
    if got != want:
        return False, f"your forward() returned shape {list(got)}, expected {list(want)}"
    return True, f"your forward() returned shape {list(got)}, as traced"


def trace_html(batch_size: int, hidden: int = 128, forward_fn: Callable | None = None) -> str:
    """The tracer's table: stage, shape (batch dimension highlighted), and what happens."""
    rows = trace_shapes(batch_size, hidden)
    notes = stage_notes(batch_size, hidden)
    body = []
    for stage, shape in rows:
        dims = [f"<b style='color:#b3261e'>{shape[0]}</b>"] + [str(s) for s in shape[1:]]
        body.append(f"<tr><td><code>{html.escape(stage)}</code></td><td><code>[{', '.join(dims)}]</code></td>"
                    f"<td style='text-align:left'>{html.escape(notes[stage])}</td></tr>")
    table = ("<table><tr><th>stage</th><th>shape</th><th style='text-align:left'>what happens</th></tr>"
             + "".join(body) + "</table>")
    if forward_fn is not None:
        ok, message = check_forward(forward_fn, batch_size, hidden)
        colour = {True: "#1b7f3b", False: "#b3261e", None: "#666"}[ok]
        table += f"<p style='color:{colour}'>{html.escape(message)}</p>"
    return table


def shape_tracer(forward_fn: Callable | None = None) -> w.VBox:
    """Batch size and hidden width on sliders; the shapes of every stage update.

    With ``forward_fn`` (your ``forward``), the last line says whether it returns the traced shape.
    """
    batch = w.IntSlider(value=64, min=1, max=512, description="batch size", continuous_update=True,
                        style={"description_width": "initial"})
    hidden = w.IntSlider(value=128, min=1, max=512, description="hidden", continuous_update=True)
    table = w.HTML(trace_html(batch.value, hidden.value, forward_fn))

    def redraw(_=None):
        table.value = trace_html(batch.value, hidden.value, forward_fn)

    batch.observe(redraw, names="value")
    hidden.observe(redraw, names="value")
    return w.VBox([w.HBox([batch, hidden]), table])


# --- why ReLU ----------------------------------------------------------------------------

def random_curves(n_nets: int = 4, hidden: int = 16, seed: int = 0,
                  xs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Outputs of ``n_nets`` random 1-``hidden``-1 networks on a grid, without and with ReLU.

    The two versions of each network share their weights; only the ReLU between the
    layers differs. Returns ``(xs, linear [n_nets, len(xs)], with_relu [n_nets, len(xs)])``.
    """
    _positive_int(n_nets, "n_nets")
    _positive_int(hidden, "hidden")
    xs = torch.linspace(-3, 3, 301) if xs is None else xs
    torch.manual_seed(seed)
    lin, bent = [], []
    with torch.no_grad():
        for _ in range(n_nets):
            first, second = nn.Linear(1, hidden), nn.Linear(hidden, 1)
            lin.append(second(first(xs[:, None]))[:, 0])
            bent.append(nn.Sequential(first, nn.ReLU(), second)(xs[:, None])[:, 0])
    return xs, torch.stack(lin), torch.stack(bent)


def plot_relu(seed: int = 0):
    """Three panels: ReLU itself; random two-layer networks without ReLU (straight lines); the same with ReLU (bent)."""
    xs, lin, bent = random_curves(seed=seed)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    axes[0].plot(xs, nn.ReLU()(xs), color="k")
    axes[0].axhline(0, color="0.8", lw=0.8)
    axes[0].axvline(0, color="0.8", lw=0.8)
    axes[0].set_title("relu(z) = max(z, 0)")
    axes[0].set_xlabel("z")
    for curve in lin:
        axes[1].plot(xs, curve)
    axes[1].set_title("random 1→16→1 networks, no ReLU")
    for curve in bent:
        axes[2].plot(xs, curve)
    axes[2].set_title("the same weights, ReLU between")
    for ax in axes[1:]:
        ax.set_xlabel("input")
    fig.tight_layout()
    return fig


def two_rings(n: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2-D toy problem: class 0 near the centre, class 1 on a ring around it. ``X [n, 2]``, ``y [n]`` int64."""
    _positive_int(n, "n")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    radius = torch.where(y == 0, 0.5, 1.5) + 0.2 * torch.randn(n, generator=g)
    angle = 2 * torch.pi * torch.rand(n, generator=g)
    X = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    return X, y


def hinge_network(n_hinges: int = 8, radius: float = 1.0) -> nn.Sequential:
    """A 2-``n_hinges``-2 ReLU network whose weights are set by hand, not trained.

    Hidden unit k is a hinge ``relu(u_k . x)`` facing direction ``u_k``, the directions
    evenly spread around the circle. Their sum grows with the distance from the centre
    (on average ``n_hinges / pi`` times it), so the logit of class 1 (far) is that sum
    minus its value at ``radius``, and the logit of class 0 (near) is 0.
    """
    _positive_int(n_hinges, "n_hinges")
    angles = torch.arange(n_hinges) * 2 * torch.pi / n_hinges
    model = nn.Sequential(nn.Linear(2, n_hinges), nn.ReLU(), nn.Linear(n_hinges, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.stack([angles.cos(), angles.sin()], dim=1))
        model[0].bias.zero_()
        model[2].weight.zero_()
        model[2].weight[1] = 1.0
        model[2].bias.copy_(torch.tensor([0.0, -radius * n_hinges / torch.pi]))
    return model


def best_linear(X: torch.Tensor, y: torch.Tensor) -> nn.Linear:
    """The linear classifier ``nn.Linear(2, 2)`` fitted to one-hot targets by least squares (no training loop)."""
    A = torch.cat([X, torch.ones(len(X), 1)], dim=1)
    solution = torch.linalg.lstsq(A, F.one_hot(y, 2).float()).solution      # [3, 2]
    model = nn.Linear(X.shape[1], 2)
    with torch.no_grad():
        model.weight.copy_(solution[:-1].T)
        model.bias.copy_(solution[-1])
    return model


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(X).argmax(dim=1) == y).float().mean())


def plot_separation(seed: int = 0):
    """Decision regions on :func:`two_rings`: the best linear model, and ReLU networks of 3 and 8 hinges."""
    X, y = two_rings(seed=seed)
    grid = torch.linspace(-2.5, 2.5, 150)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    models = [("linear (no ReLU): best straight cut", best_linear(X, y)),
              ("ReLU, 3 hidden units", hinge_network(3)),
              ("ReLU, 8 hidden units", hinge_network(8))]
    fig, axes = plt.subplots(1, 3, figsize=(11, 4), layout="constrained")
    for ax, (name, model) in zip(axes, models):
        with torch.no_grad():
            region = model(points).argmax(dim=1).reshape(gx.shape)
        ax.contourf(gx, gy, region, levels=[-0.5, 0.5, 1.5], colors=["#cfe3f5", "#f8d9c4"])
        ax.scatter(X[y == 0, 0], X[y == 0, 1], s=6, color="#1f77b4", label="class 0")
        ax.scatter(X[y == 1, 0], X[y == 1, 1], s=6, color="#d95f02", label="class 1")
        ax.set_title(f"{name}\naccuracy {accuracy(model, X, y):.0%}", fontsize=10)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="lower left", fontsize=8)
    return fig


# --- MNIST pictures ----------------------------------------------------------------------

def show_digits(images: torch.Tensor, labels: torch.Tensor, preds: torch.Tensor | None = None):
    """One 28x28 panel per image; the title gives the label, and the guess (green if right, red if wrong)."""
    images = images.detach().reshape(-1, 28, 28)
    n = images.shape[0]
    if n < 1 or len(labels) != n or (preds is not None and len(preds) != n):
        raise ValueError(f"need at least one image and as many labels (and predictions) as images; "
                         f"got {n} images, {len(labels)} labels"
                         + ("" if preds is None else f", {len(preds)} predictions"))
    fig, axes = plt.subplots(1, n, figsize=(1.3 * n, 1.8), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(images[i].cpu().numpy(), cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        if preds is None:
            ax.set_title(f"label {int(labels[i])}", fontsize=9)
        else:
            right = int(preds[i]) == int(labels[i])
            ax.set_title(f"label {int(labels[i])}\nguess {int(preds[i])}", fontsize=9,
                         color="#1b7f3b" if right else "#b3261e")
    fig.tight_layout()
    return fig


def show_weights(W1: torch.Tensor, units: Sequence[int] = (0, 1, 2, 3, 4, 5)):
    """The 784 weights of some hidden units, each drawn as a 28x28 picture (red positive, blue negative)."""
    W1 = W1.detach()
    if W1.dim() != 2 or W1.shape[0] != 784:
        raise ValueError(f"W1 must be [784, hidden], got {list(W1.shape)}")
    bad = [u for u in units if not 0 <= u < W1.shape[1]]
    if bad or not units:
        raise ValueError(f"units must be indices of hidden units in 0..{W1.shape[1] - 1}, got {list(units)}")
    fig, axes = plt.subplots(1, len(units), figsize=(1.4 * len(units), 1.8), squeeze=False)
    limit = float(W1[:, list(units)].abs().max())
    for ax, u in zip(axes[0], units):
        ax.imshow(W1[:, u].reshape(28, 28).cpu().numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"unit {u}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def prediction_counts(preds: torch.Tensor, classes: int = 10) -> list[int]:
    """How many times each class was predicted."""
    preds = torch.as_tensor(preds)
    if preds.dim() != 1 or preds.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"preds must be a 1-D integer tensor of classes, got {preds.dtype} {list(preds.shape)}")
    if preds.numel() and (int(preds.min()) < 0 or int(preds.max()) >= classes):
        raise ValueError(f"preds must hold classes 0..{classes - 1}")
    return torch.bincount(preds.long(), minlength=classes).tolist()


def plot_prediction_counts(preds: torch.Tensor, labels: torch.Tensor):
    """Bars: how often each digit is guessed, beside how often it really occurs."""
    guessed, actual = prediction_counts(preds), prediction_counts(labels)
    digits = torch.arange(10)
    fig, ax = plt.subplots(figsize=(6.5, 3))
    ax.bar(digits - 0.2, actual, width=0.4, label="true labels", color="0.7")
    ax.bar(digits + 0.2, guessed, width=0.4, label="untrained network's guesses", color="#d95f02")
    ax.set_xticks(digits.tolist())
    ax.set_xlabel("digit")
    ax.set_ylabel("images")
    ax.legend()
    fig.tight_layout()
    return fig
