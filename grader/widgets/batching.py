"""Lesson 06: shuffling and batching made visible, and two small measurements behind the prose.

The batches shown here come from ``torch.utils.data`` itself (``BatchSampler`` over a
``SequentialSampler`` or a seeded ``RandomSampler``): the widget shows what the library
does, the lesson has the student rebuild it.

    >>> batch_colours([0, 0, 1, 1, 2, 2], batch_size=4, shuffle=False)
    [[0, 0, 1, 1], [2, 2]]
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

#: one colour per class (matplotlib's tab10), so that class 3 is always the same red
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def _check_labels(labels) -> list[int]:
    if isinstance(labels, torch.Tensor):
        if labels.dim() != 1 or labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"labels must be a 1-D integer tensor, got shape {list(labels.shape)} "
                             f"and dtype {labels.dtype}")
        labels = labels.tolist()
    labels = list(labels)
    for value in labels:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"labels must be integers, got {value!r}")
        if not 0 <= value < len(PALETTE):
            raise ValueError(f"labels must lie in 0..{len(PALETTE) - 1} (one colour each), got {value}")
    return labels


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def sorted_labels(n: int = 60, classes: int = 10) -> list[int]:
    """``n`` labels sorted by class, ``n // classes`` of each (the rest go to the last classes)."""
    if n < 0 or not 1 <= classes <= len(PALETTE):
        raise ValueError(f"need n >= 0 and 1 <= classes <= {len(PALETTE)}, got n={n}, classes={classes}")
    return [i * classes // n for i in range(n)] if n else []


def batch_colours(labels, batch_size: int, shuffle: bool, seed: int = 0) -> list[list[int]]:
    """The labels grouped into the batches of one epoch, as ``torch.utils.data`` would draw them.

    Args:
        labels: a sequence (or 1-D integer tensor) of class labels, each in 0..9.
        batch_size: positive int; the last batch holds what is left.
        shuffle: False keeps the order; True permutes with ``torch.Generator().manual_seed(seed)``.
        seed: the seed of the permutation (ignored when ``shuffle`` is False).

    Returns:
        list of batches, each a list of labels; together they hold every label exactly once.
    """
    labels = _check_labels(labels)
    batch_size = _check_batch_size(batch_size)
    if not labels:
        return []
    if shuffle:
        sampler = RandomSampler(range(len(labels)), generator=torch.Generator().manual_seed(int(seed)))
    else:
        sampler = SequentialSampler(range(len(labels)))
    return [[labels[i] for i in batch] for batch in BatchSampler(sampler, batch_size, drop_last=False)]


def classes_per_batch(batches: Sequence[Sequence[int]]) -> list[int]:
    """How many different classes each batch holds (1 means a single-coloured batch)."""
    return [len(set(batch)) for batch in batches]


def _square(label: int, size: int = 26) -> str:
    return (f"<span style='display:inline-block;width:{size}px;height:{size}px;margin:1px;"
            f"background:{PALETTE[label]};color:white;font:bold 12px monospace;text-align:center;"
            f"line-height:{size}px;border-radius:3px'>{label}</span>")


def grid_html(batches: Sequence[Sequence[int]], sliced: bool = True, per_row: int = 20) -> str:
    """HTML squares coloured by class: one row per batch when ``sliced``, else one long strip."""
    if sliced:
        rows = []
        for i, (batch, k) in enumerate(zip(batches, classes_per_batch(batches))):
            squares = "".join(_square(label) for label in batch)
            rows.append(f"<div style='margin:3px 0'><span style='display:inline-block;width:70px;"
                        f"font:12px monospace'>batch {i + 1}</span>{squares}"
                        f"<span style='font:12px monospace;margin-left:8px'>{k} class{'es' if k > 1 else ''}"
                        f"</span></div>")
        return "".join(rows)
    flat = [label for batch in batches for label in batch]
    lines = ["".join(_square(label) for label in flat[i:i + per_row]) for i in range(0, len(flat), per_row)]
    return "".join(f"<div>{line}</div>" for line in lines)


def summary(batches: Sequence[Sequence[int]]) -> str:
    """One line: the number of batches and the mean number of classes per batch."""
    counts = classes_per_batch(batches)
    if not counts:
        return "no samples"
    return (f"{len(batches)} batches; classes per batch: mean {sum(counts) / len(counts):.1f}, "
            f"min {min(counts)}, max {max(counts)}")


def shuffle_widget(labels=None, batch_size: int = 8, seed: int = 0) -> w.VBox:
    """60 class-sorted squares; toggles to shuffle and to slice into batches, a button for a new shuffle."""
    labels = _check_labels(sorted_labels() if labels is None else labels)
    shuffle = w.ToggleButton(value=False, description="shuffle", icon="random")
    sliced = w.ToggleButton(value=False, description="slice into batches", icon="th-list")
    size = w.IntSlider(value=_check_batch_size(batch_size), min=1, max=max(1, len(labels)),
                       description="batch size")
    again = w.Button(description="new shuffle")
    state = {"seed": int(seed)}
    view = w.HTML()
    line = w.HTML()

    def redraw(_=None):
        batches = batch_colours(labels, size.value, shuffle.value, state["seed"])
        view.value = grid_html(batches, sliced=sliced.value)
        line.value = (f"<code>{'shuffled (seed ' + str(state['seed']) + ')' if shuffle.value else 'in file order'}"
                      f"; {summary(batches) if sliced.value else str(len(labels)) + ' samples'}</code>")

    def reshuffle(_=None):
        state["seed"] += 1
        shuffle.value = True        # triggers redraw when it was off
        redraw()

    for control in (shuffle, sliced, size):
        control.observe(redraw, names="value")
    again.on_click(reshuffle)
    redraw()
    return w.VBox([w.HBox([shuffle, sliced, again]), size, line, view])


# --- the measurements behind the prose ---------------------------------------------------

@contextmanager
def _one_thread() -> Iterator[None]:
    """Run small tensor operations on one thread (they gain nothing from more on a shared machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def gradient_agreement(X: torch.Tensor, y: torch.Tensor, batch_sizes: Sequence[int], trials: int = 20,
                       seed: int = 0) -> dict[int, tuple[float, float]]:
    """How well a mini-batch gradient points where the full-data gradient points.

    A linear classifier ``X @ W`` with small random weights; for each batch size, the mean
    cosine similarity between the gradient of the batch's mean cross-entropy and the
    gradient on all of ``X``, over ``trials`` random batches, and the mean seconds one
    batch gradient took. By ``torch.autograd``.

    Returns:
        ``{batch_size: (mean cosine similarity, seconds per gradient)}``
    """
    if X.dim() != 2 or y.dim() != 1 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"need X [N, D] and y [N] with N > 0, got {list(X.shape)} and {list(y.shape)}")
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    g = torch.Generator().manual_seed(seed)
    W = (torch.randn(X.shape[1], int(y.max()) + 1, generator=g) * 0.01).requires_grad_(True)

    def grad(xb, yb):
        (gW,) = torch.autograd.grad(F.cross_entropy(xb @ W, yb), W)
        return gW.reshape(-1)

    for bs in batch_sizes:
        _check_batch_size(bs)
    out = {}
    with _one_thread():
        full = grad(X, y)
        for bs in batch_sizes:
            cosines, seconds = [], []
            for _ in range(trials):
                idx = torch.randint(0, X.shape[0], (bs,), generator=g)
                start = time.perf_counter()
                cosines.append(float(F.cosine_similarity(grad(X[idx], y[idx]), full, dim=0)))
                seconds.append(time.perf_counter() - start)
            out[bs] = (sum(cosines) / trials, min(seconds))
    return out


def plot_gradient_agreement(result: dict[int, tuple[float, float]], n: int = 60000):
    """Cosine similarity to the full gradient (left) and the time of an epoch of gradients (right) by batch size.

    An epoch over ``n`` samples takes ``ceil(n / batch_size)`` gradients of the measured duration.
    """
    sizes = sorted(result)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(sizes, [result[s][0] for s in sizes], marker="o")
    a.set_xscale("log")
    a.set_ylim(0, 1.05)
    a.set_xlabel("batch size")
    a.set_ylabel("cosine with full gradient")
    a.set_title("how well one batch points the way")
    b.plot(sizes, [result[s][1] * -(-n // s) for s in sizes], marker="o", color="#d62728")
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("batch size")
    b.set_ylabel("seconds")
    b.set_title(f"gradients for one epoch of {n:,} samples")
    for ax in (a, b):
        ax.axvline(64, color="#999", lw=0.8, ls="--")
    fig.tight_layout()
    return fig


def train_on_batches(X: torch.Tensor, y: torch.Tensor, batches, X_eval: torch.Tensor, y_eval: torch.Tensor,
                     lr: float = 0.5) -> tuple[list[float], list[float], torch.Tensor]:
    """Train a linear classifier ``X @ W + b`` (from zeros) with plain gradient steps on the given index batches.

    The gradients come from ``torch.autograd.grad``; each step moves ``W`` and ``b`` by
    ``-lr`` times their gradient.

    Returns:
        ``(batch_losses, eval_losses, predictions)``: the loss of each step's batch; after
        each step the loss on the fixed evaluation set ``(X_eval, y_eval)``, which is what
        the model has really learnt; and the trained model's predicted class for every
        evaluation sample (int64 ``[len(X_eval)]``).
    """
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    classes = int(max(y.max(), y_eval.max())) + 1
    W = torch.zeros(X.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    batch_losses, eval_losses = [], []
    with _one_thread():
        for idx in batches:
            idx = torch.as_tensor(idx, dtype=torch.long)
            loss = F.cross_entropy(X[idx] @ W + b, y[idx])
            gW, gb = torch.autograd.grad(loss, (W, b))
            with torch.no_grad():
                W.sub_(lr * gW)
                b.sub_(lr * gb)
                eval_losses.append(F.cross_entropy(X_eval @ W + b, y_eval).item())
            batch_losses.append(loss.item())
        with torch.no_grad():
            predictions = (X_eval @ W + b).argmax(dim=1)
    return batch_losses, eval_losses, predictions


def plot_order_effect(runs: dict[str, tuple], y_sorted=None, batch_size: int = 64):
    """Batch loss (left) and held-out loss (right) per step, one line per run of :func:`train_on_batches`."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4), sharex=True)
    colours = {"class-sorted": "#d62728", "shuffled": "#1f77b4"}
    for name, (batch_losses, eval_losses, *_) in runs.items():
        a.plot(batch_losses, label=name, color=colours.get(name))
        b.plot(eval_losses, label=name, color=colours.get(name))
    if y_sorted is not None:            # mark where the class changes in the sorted run
        changes = (torch.nonzero(y_sorted[1:] != y_sorted[:-1]).flatten() + 1) / batch_size
        for step in changes.tolist():
            for ax in (a, b):
                ax.axvline(step, color="#d62728", alpha=0.2, lw=0.8)
    a.set_title("loss on the step's own batch")
    b.set_title("loss on 1,000 held-out test images")
    for ax in (a, b):
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy")
        ax.legend()
    fig.tight_layout()
    return fig
