"""Lesson 07: the two-spirals toy task, live training plots, and the pictures of a trained MNIST network.

The logic is in plain functions that the tests call directly (:func:`spirals`,
:func:`decision_grid`, :func:`confusion_matrix`, :func:`confident_mistakes`,
:func:`top_confusions`, :func:`redraw_epochs`, :func:`smooth`); the figures and the
widget only draw what they return. Nothing here trains a network by itself: the
training functions are the student's, passed in as arguments.
"""

from __future__ import annotations

import io
import math
import time
from typing import Callable, Sequence

import ipywidgets as w
import matplotlib
import torch
from IPython.display import Image, display
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

SPIRAL_COLOURS = ("#1f77b4", "#ff7f0e")


# --- plain functions ---------------------------------------------------------------------

def spirals(n: int = 200, turns: float = 1.5, noise: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spiral arms in the plane, one per class.

    Each point sits at radius ``r`` in (0, 1] and angle ``r * turns * 2 pi`` (plus ``pi`` for
    class 1, so that the second arm is the first turned half a circle), with
    ``r = sqrt(u)``, ``u`` uniform, so that points are spread evenly along the arms; then
    Gaussian noise of standard deviation ``noise`` is added to both coordinates.

    Args:
        n: points per class, at least 1.
        turns: how many full turns each arm makes, > 0.
        noise: standard deviation of the added noise, >= 0.
        seed: seeds a private ``torch.Generator``; the global random state is not touched.

    Returns:
        ``(X, y)``: ``X`` float32 ``[2n, 2]``, ``y`` int64 ``[2n]``; the first ``n`` rows are
        class 0, the next ``n`` class 1.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n (points per class) must be a positive integer, got {n!r}")
    if not turns > 0:
        raise ValueError(f"turns must be > 0, got {turns!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    n = int(n)
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(2 * n, generator=g, dtype=torch.float64).sqrt().clamp_min(1e-3)
    y = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    angle = r * turns * 2 * math.pi + y.double() * math.pi
    X = torch.stack([r * angle.cos(), r * angle.sin()], dim=1)
    X = X + noise * torch.randn(2 * n, 2, generator=g, dtype=torch.float64)
    return X.float(), y


def decision_grid(logits_fn: Callable[[torch.Tensor], torch.Tensor], lim: float = 1.3,
                  steps: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Evaluate a 2-D classifier on a ``steps x steps`` grid covering ``[-lim, lim]^2``.

    Args:
        logits_fn: maps float32 points ``[M, 2]`` (columns x, y) to logits ``[M, C]``, C >= 2.
            It is called once, under ``torch.no_grad()``.
        lim: half the side of the square, > 0.
        steps: grid points per side, at least 2.

    Returns:
        ``(xs, ys, probs)``: ``xs``, ``ys`` float32 ``[steps]`` (``linspace(-lim, lim)``) and
        ``probs`` float32 ``[steps, steps, C]``, the softmax of the logits, where
        ``probs[i, j]`` is at the point ``(xs[j], ys[i])`` (the layout ``contourf(xs, ys, .)`` wants).
    """
    if int(steps) != steps or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if not lim > 0:
        raise ValueError(f"lim must be > 0, got {lim!r}")
    steps = int(steps)
    xs = torch.linspace(-lim, lim, steps)
    ys = torch.linspace(-lim, lim, steps)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        logits = logits_fn(points)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != points.shape[0] \
            or logits.shape[1] < 2:
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits_fn must map [M, 2] points to [M, C] logits with C >= 2; for M = "
                         f"{points.shape[0]} it returned {got}")
    probs = torch.softmax(logits.detach().float(), dim=1)
    return xs, ys, probs.reshape(steps, steps, -1)


def _check_labels(t: torch.Tensor, name: str, num_classes: int) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 1:
        raise ValueError(f"{name} must be a 1-D tensor of class indices, got "
                         f"{list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must hold integer class indices, got dtype {t.dtype}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"{name} holds values from {int(t.min())} to {int(t.max())}; "
                         f"expected 0 to {num_classes - 1}")


def confusion_matrix(predicted: torch.Tensor, targets: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Count how often each true class was predicted as each class.

    Args:
        predicted, targets: int tensors ``[N]`` of class indices in ``[0, num_classes)``.
        num_classes: C, at least 1.

    Returns:
        int64 ``[C, C]``: entry ``[i, j]`` is the number of samples of true class ``i``
        predicted as ``j``. Rows sum to the class counts, the diagonal holds the correct ones.
    """
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    _check_labels(predicted, "predicted", num_classes)
    _check_labels(targets, "targets", num_classes)
    if predicted.shape != targets.shape:
        raise ValueError(f"predicted {list(predicted.shape)} and targets {list(targets.shape)} differ in length")
    flat = targets.long() * num_classes + predicted.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def top_confusions(cm: torch.Tensor, k: int = 5) -> list[tuple[int, int, int]]:
    """The ``k`` largest off-diagonal entries of a confusion matrix, as ``(true, predicted, count)``.

    Sorted by count, largest first (ties: smaller true class, then smaller predicted class
    first); entries of 0 are left out, so fewer than ``k`` may come back.
    """
    if not isinstance(cm, torch.Tensor) or cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square [C, C] tensor, got "
                         f"{list(cm.shape) if isinstance(cm, torch.Tensor) else type(cm).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    c = cm.shape[0]
    entries = [(int(cm[i, j]), i, j) for i in range(c) for j in range(c) if i != j and int(cm[i, j]) > 0]
    entries.sort(key=lambda e: (-e[0], e[1], e[2]))
    return [(i, j, n) for n, i, j in entries[:k]]


def confident_mistakes(probs: torch.Tensor, targets: torch.Tensor, k: int = 12) -> torch.Tensor:
    """Indices of the wrongly classified samples the model was most sure about.

    Args:
        probs: float ``[N, C]`` class probabilities (each row sums to 1).
        targets: int ``[N]`` true classes.
        k: at most this many indices, >= 0.

    Returns:
        int64 ``[m]`` with ``m = min(k, number of mistakes)``: the indices ``i`` where
        ``probs[i].argmax() != targets[i]``, ordered by ``probs[i].max()``, largest first
        (ties: smaller index first).
    """
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2:
        raise ValueError(f"probs must be a [N, C] tensor, got "
                         f"{list(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__}")
    _check_labels(targets, "targets", probs.shape[1])
    if targets.shape[0] != probs.shape[0]:
        raise ValueError(f"probs has {probs.shape[0]} rows but targets has {targets.shape[0]} entries")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    confidence, predicted = probs.detach().max(dim=1)
    wrong = (predicted != targets).nonzero().reshape(-1)
    order = torch.sort(confidence[wrong], descending=True, stable=True).indices
    return wrong[order[:k]]


def redraw_epochs(epochs: int, redraws: int) -> list[int]:
    """The epochs (counting from 1) after which a live plot redraws: about evenly spaced, the last one always.

    ``redraw_epochs(100, 4) == [25, 50, 75, 100]``; never more than ``epochs`` entries.
    """
    if epochs < 1 or redraws < 1:
        raise ValueError(f"epochs and redraws must be at least 1, got {epochs} and {redraws}")
    r = min(redraws, epochs)
    return sorted({max(1, round(epochs * (i + 1) / r)) for i in range(r)})


def best_schedule(candidates: dict) -> str:
    """The name of the candidate whose last validation accuracy is highest (the first such, on a tie).

    ``candidates`` maps a name to its list of validation accuracies, one per epoch, each list
    non-empty; the choice looks at nothing but these numbers.
    """
    if not candidates:
        raise ValueError("no candidates to choose from")
    for name, accs in candidates.items():
        if not len(accs):
            raise ValueError(f"candidate {name!r} has no validation accuracy")
    return max(candidates, key=lambda name: candidates[name][-1])


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average: entry ``i`` is the mean of ``values[max(0, i - window + 1) : i + 1]``."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


# --- figures -----------------------------------------------------------------------------

def to_image(fig: Figure, dpi: int = 90) -> Image:
    """The figure rendered as a PNG image object (displays the same in JupyterLab and in a saved notebook)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return Image(data=buffer.getvalue(), format="png")


def show(fig: Figure) -> None:
    """Display a figure made here (they are not pyplot figures, so nothing else would show them)."""
    display(to_image(fig))


def weight_mosaic(W1: torch.Tensor, ncols: int = 16, gap: int = 2, side: int = 28) -> torch.Tensor:
    """The columns of ``W1`` ``[side*side, H]`` as ``side x side`` tiles in one picture, ``ncols`` tiles a row.

    Each tile is divided by its own largest absolute value (so it lies in [-1, 1]); the
    ``gap`` pixels between tiles, and the unused tiles of the last row, are NaN.
    Returns float32 ``[rows * (side + gap) - gap, ncols * (side + gap) - gap]``.
    """
    if W1.dim() != 2 or W1.shape[0] != side * side:
        raise ValueError(f"W1 must be [{side * side}, H], got {list(W1.shape)}")
    if ncols < 1 or gap < 0:
        raise ValueError(f"ncols must be >= 1 and gap >= 0, got {ncols} and {gap}")
    W = W1.detach().cpu().float()
    h = W.shape[1]
    rows = math.ceil(h / ncols)
    step = side + gap
    out = torch.full((rows * step - gap, ncols * step - gap), float("nan"))
    scale = W.abs().amax(dim=0).clamp_min(1e-12)
    for k in range(h):
        r, c = divmod(k, ncols)
        out[r * step:r * step + side, c * step:c * step + side] = (W[:, k] / scale[k]).reshape(side, side)
    return out

def draw_spiral_state(fig: Figure, X: torch.Tensor, y: torch.Tensor, grid, history: dict, title: str = "") -> Figure:
    """Left: the decision regions of ``grid`` (from :func:`decision_grid`) and the points; right: the losses."""
    fig.clear()
    ax, ax_loss = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    xs, ys, probs = grid
    cmap = LinearSegmentedColormap.from_list("spiral", [SPIRAL_COLOURS[0], "white", SPIRAL_COLOURS[1]])
    ax.contourf(xs.numpy(), ys.numpy(), probs[:, :, 1].numpy(), levels=[0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0],
                cmap=cmap, alpha=0.45, vmin=0, vmax=1)
    ax.contour(xs.numpy(), ys.numpy(), probs[:, :, 1].numpy(), levels=[0.5], colors="k", linewidths=1)
    for c in (0, 1):
        pts = X[y == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=7, color=SPIRAL_COLOURS[c], label=f"class {c}")
    ax.set_aspect("equal")
    ax.set_xlim(float(xs[0]), float(xs[-1]))
    ax.set_ylim(float(ys[0]), float(ys[-1]))
    ax.set_title(title or "decision regions")
    steps = history.get("step_losses", [])
    if steps:
        ax_loss.plot(range(1, len(steps) + 1), steps, color="0.75", lw=0.6, label="per step")
        per_epoch = len(steps) / max(1, len(history["train_loss"]))
        ax_loss.plot([per_epoch * (e + 1) for e in range(len(history["train_loss"]))], history["train_loss"],
                     color="C0", label="train (epoch mean)")
        ax_loss.plot([per_epoch * (e + 1) for e in range(len(history["val_loss"]))], history["val_loss"],
                     color="C3", label="held out")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_ylim(bottom=0)
    ax_loss.legend(loc="upper right", fontsize=8)
    acc = history.get("val_acc", [])
    ax_loss.set_title(f"held-out accuracy {acc[-1]:.1%}" if acc else "loss")
    fig.tight_layout()
    return fig


class LiveHistory:
    """A loss / accuracy figure that redraws in place after each epoch (in the cell's own output).

    ``update(history)`` takes the dict that ``train`` builds (``train_loss``, ``val_loss``,
    ``val_acc``, ``step_losses``) and redraws; it works in JupyterLab and when a notebook
    runs headless, because it replaces one display rather than adding outputs.
    """

    def __init__(self, epochs: int, steps_per_epoch: int, smooth_window: int = 50, marks: Sequence[tuple] = ()):
        """``marks``: ``(epoch, label)`` pairs drawn as dotted vertical lines (e.g. where the learning rate changes)."""
        self.epochs, self.steps_per_epoch, self.window = epochs, steps_per_epoch, smooth_window
        self.marks = list(marks)
        self.fig = Figure(figsize=(10, 3.4))
        self.handle = None

    def draw(self, history: dict) -> Figure:
        fig = self.fig
        fig.clear()
        ax_loss, ax_acc = fig.subplots(1, 2)
        steps = history["step_losses"]
        x_epochs = [e + 1 for e in range(len(history["train_loss"]))]
        if steps:
            ax_loss.plot([(i + 1) / self.steps_per_epoch for i in range(len(steps))], smooth(steps, self.window),
                         color="0.7", lw=0.8, label=f"train, per step (mean of {self.window})")
        ax_loss.plot(x_epochs, history["train_loss"], "o-", color="C0", label="train, epoch mean")
        ax_loss.plot(x_epochs, history["val_loss"], "o-", color="C3", label="validation")
        ax_loss.set_xlim(0, self.epochs)
        ax_loss.set_yscale("log")
        ax_loss.set_ylim(0.01, 3)
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("cross-entropy (log scale)")
        ax_loss.legend(fontsize=8)
        ax_acc.plot(x_epochs, [100 * a for a in history["val_acc"]], "o-", color="C2")
        ax_acc.axhline(98.0, color="0.5", ls="--", lw=1)
        ax_acc.set_xlim(0, self.epochs)
        ax_acc.set_ylim(94, 99)
        ax_acc.set_xlabel("epoch")
        ax_acc.set_ylabel("validation accuracy (%)")
        if history["val_acc"]:
            ax_acc.set_title(f"after epoch {len(history['val_acc'])}: {history['val_acc'][-1]:.2%}")
        for epoch, label in self.marks:
            for ax in (ax_loss, ax_acc):
                ax.axvline(epoch, color="0.4", ls=":", lw=1)
            ax_acc.text(epoch, 94.2, f" {label}", fontsize=8, color="0.3")
        fig.tight_layout()
        return fig

    def update(self, history: dict) -> None:
        image = to_image(self.draw(history))
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


def plot_schedules(candidates: dict, chosen: str | None = None) -> Figure:
    """Validation accuracy per epoch of each candidate schedule (name -> list of accuracies); ``chosen`` drawn bold."""
    fig = Figure(figsize=(6.5, 3.4))
    ax = fig.subplots()
    for k, (name, accs) in enumerate(candidates.items()):
        epochs = range(1, len(accs) + 1)
        ax.plot(list(epochs), [100 * a for a in accs], "o-", color=f"C{k}", ms=3,
                lw=2.5 if name == chosen else 1.2, label=name + ("  (chosen)" if name == chosen else ""))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(96, 98.6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("candidate schedules, judged on the validation images")
    fig.tight_layout()
    return fig


def plot_confusion(cm: torch.Tensor) -> Figure:
    """The confusion matrix as a picture: rows are true digits, columns predicted, counts written in."""
    c = cm.shape[0]
    fig = Figure(figsize=(5.6, 4.8))
    ax = fig.subplots()
    shown = cm.double().log1p()
    im = ax.imshow(shown.numpy(), cmap="Blues")
    for i in range(c):
        for j in range(c):
            n = int(cm[i, j])
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.6 * shown.max() else "black")
    ax.set_xticks(range(c))
    ax.set_yticks(range(c))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (colour: log of the count)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def plot_mistakes(images: torch.Tensor, probs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor,
                  ncols: int = 6) -> Figure:
    """The images ``images[indices]`` (``[N, 784]``) titled with predicted digit, its probability and the truth."""
    n = len(indices)
    rows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(1.7 * ncols, 1.95 * rows))
    axes = fig.subplots(rows, ncols, squeeze=False)
    for k, ax in enumerate(axes.reshape(-1)):
        ax.axis("off")
        if k < n:
            i = int(indices[k])
            p, pred = probs[i].max(dim=0)
            ax.imshow(images[i].reshape(28, 28).numpy(), cmap="gray_r")
            ax.set_title(f"said {int(pred)} ({float(p):.0%})\ntrue {int(targets[i])}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_weights(W1: torch.Tensor, ncols: int = 16) -> Figure:
    """Each column of ``W1`` ``[784, H]`` as a 28x28 image (red positive, blue negative, each scaled on its own)."""
    mosaic = weight_mosaic(W1, ncols)
    h = W1.shape[1]
    fig = Figure(figsize=(ncols * 0.62, math.ceil(h / ncols) * 0.62 + 0.45))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    ax.imshow(mosaic.numpy(), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.axis("off")
    ax.set_title(f"the {h} columns of W1, one per hidden unit (red: ink there pushes the unit up)", fontsize=10)
    fig.tight_layout()
    return fig


# --- the spiral widget -------------------------------------------------------------------

def train_spirals(train: Callable, init_params: Callable, forward: Callable, hidden: int = 128, lr: float = 0.03,
                  epochs: int = 100, batch_size: int = 64, seed: int = 0, redraws: int = 5,
                  on_redraw: Callable | None = None) -> tuple[tuple, dict]:
    """Train a 2 -> hidden -> 2 network on the spirals with the student's ``train``; returns ``(params, history)``.

    ``init_params(seed=, hidden=, inputs=2, classes=2)`` makes the network; the training data
    is ``spirals(seed=seed)``, the held-out data ``spirals(seed=seed + 1)``. After each epoch of
    :func:`redraw_epochs` ``on_redraw(epoch, grid, history)`` is called with the current
    :func:`decision_grid`.
    """
    X, y = spirals(seed=seed)
    Xt, yt = spirals(seed=seed + 1)
    params = init_params(seed=seed, hidden=hidden, inputs=2, classes=2)
    marks = set(redraw_epochs(epochs, redraws))

    def callback(epoch, history):
        if on_redraw is not None and epoch in marks:
            on_redraw(epoch, decision_grid(lambda pts: forward(pts, *params)), history)

    history = train(params, X, y, Xt, yt, epochs, batch_size=batch_size, lr=lr, seed=seed, callback=callback)
    return params, history


def spiral_widget(train: Callable, init_params: Callable, forward: Callable, hidden: int = 128, lr: float = 0.03,
                  epochs: int = 100, seed: int = 0, redraws: int = 5) -> None:
    """Show sliders for the hidden width, the learning rate and the epochs, and a button that trains again.

    The widget displays itself and the first training runs at once (nothing waits for a
    click); the figure redraws ``redraws`` times while the network learns.
    """
    hidden_s = w.IntSlider(value=hidden, min=2, max=256, description="hidden")
    lr_s = w.FloatLogSlider(value=lr, base=10, min=-4, max=-0.5, step=0.25, description="lr", readout_format=".4f")
    epochs_s = w.IntSlider(value=epochs, min=10, max=500, step=10, description="epochs")
    button = w.Button(description="Train again", icon="play")
    status = w.HTML()
    out = w.Output()
    fig = Figure(figsize=(10, 4.2))
    X, y = spirals(seed=seed)

    def run(_=None):
        button.disabled = True
        start = time.perf_counter()

        def on_redraw(epoch, grid, history):
            draw_spiral_state(fig, X, y, grid, history,
                              title=f"hidden {hidden_s.value}, lr {lr_s.value:.4f}: epoch {epoch}/{epochs_s.value}")
            image = to_image(fig)
            with out:
                out.clear_output(wait=True)
                display(image)

        try:
            _, history = train_spirals(train, init_params, forward, hidden_s.value, lr_s.value, epochs_s.value,
                                       seed=seed, redraws=redraws, on_redraw=on_redraw)
            status.value = (f"{len(history['step_losses'])} steps in {time.perf_counter() - start:.1f} s; "
                            f"final held-out accuracy {history['val_acc'][-1]:.1%}")
        finally:
            button.disabled = False

    button.on_click(run)
    box = w.VBox([w.HBox([hidden_s, lr_s]), w.HBox([epochs_s, button]), status, out])
    display(box)
    run()
