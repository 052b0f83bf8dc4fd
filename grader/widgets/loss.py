"""Lesson 03: logits on sliders, the softmax probabilities as bars, and the loss.

Everything is computed with PyTorch's own ``torch.log_softmax`` (in float64), so the
demo is right for logits of any size and holds no solution of the exercises.

    >>> probs, loss = loss_view([2.0, 0.5, -1.0], target=0)
"""

from __future__ import annotations

import math
import operator
from typing import Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import torch

TEAL = "#1a9e8f"
GREY = "#9aa5b1"

#: name -> (ten logits, target class): starting points for the widget
PRESETS: dict[str, tuple[list[float], int]] = {
    "all equal (knows nothing)": ([0.0] * 10, 3),
    "confident and right": ([0.0, 0.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 3),
    "confident and wrong": ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 8.0, 0.0], 3),
    "torn between 3 and 8": ([0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0], 3),
    "a random network": ([0.3, -0.5, 0.1, 0.6, -0.2, 0.4, -0.7, 0.2, -0.1, 0.5], 3),
}


def _as_logits(logits) -> torch.Tensor:
    """Validate and convert one row of logits to a float64 vector."""
    try:
        z = torch.as_tensor(logits, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"logits must be a sequence of numbers, got {type(logits).__name__}") from err
    if z.dim() != 1:
        raise ValueError(f"logits must be one row of scores (1-D), got shape {list(z.shape)}")
    if z.numel() == 0:
        raise ValueError("logits must hold at least one class, got an empty row")
    if not torch.isfinite(z).all():
        raise ValueError(f"logits must be finite numbers, got {z.tolist()}")
    return z


def _as_target(target, classes: int) -> int:
    if isinstance(target, torch.Tensor):
        if target.numel() != 1 or target.is_floating_point():
            raise ValueError(f"target must be one integer class index, got a tensor {target}")
        target = int(target.item())
    if isinstance(target, bool):
        raise ValueError(f"target must be an integer class index, got {target!r}")
    try:
        target = operator.index(target)
    except TypeError:
        raise ValueError(f"target must be an integer class index, got {target!r}") from None
    if not 0 <= target < classes:
        raise ValueError(f"target {target} is out of range for {classes} classes (0 to {classes - 1})")
    return target


def loss_view(logits: Sequence[float] | torch.Tensor, target: int) -> tuple[torch.Tensor, float]:
    """Softmax probabilities and cross-entropy loss of one row of logits.

    Args:
        logits: C finite numbers (a list or a 1-D tensor), any size (1e4 is fine).
        target: the correct class, an int in ``[0, C)``.

    Returns:
        ``(probs, loss)``: ``probs`` a float64 tensor ``[C]`` summing to 1, ``loss`` the
        float ``-log(probs[target])``, computed from ``log_softmax`` so that it stays
        finite even where ``probs[target]`` rounds to 0.
    """
    z = _as_logits(logits)
    t = _as_target(target, z.numel())
    log_probs = torch.log_softmax(z, dim=0)
    return log_probs.exp(), float(-log_probs[t])


def bars_html(probs: Sequence[float] | torch.Tensor, target: int, loss: float, height: int = 160) -> str:
    """An HTML bar chart of the probabilities, the target's bar in teal, with the loss below."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.dim() != 1 or p.numel() == 0:
        raise ValueError(f"probs must be a non-empty 1-D sequence, got shape {list(p.shape)}")
    t = _as_target(target, p.numel())
    columns = []
    for i, value in enumerate(p.tolist()):
        colour = TEAL if i == t else GREY
        bar = max(1, round(value * height))
        weight = "bold" if i == t else "normal"
        columns.append(
            f"<div style='display:flex;flex-direction:column;justify-content:flex-end;align-items:center;"
            f"width:44px;height:{height + 40}px'>"
            f"<div style='font-size:11px'>{value:.3f}</div>"
            f"<div class='bar' style='width:30px;height:{bar}px;background:{colour}'></div>"
            f"<div style='font-weight:{weight}'>{i}</div></div>")
    explain = (f"loss = &minus;log p[{t}] = &minus;log {p[t].item():.4g} = <b>{loss:.4f}</b>"
               f" &nbsp; (uniform guess over {p.numel()} classes: ln {p.numel()} = {math.log(p.numel()):.4f})")
    return (f"<div style='display:flex;gap:2px;align-items:flex-end'>{''.join(columns)}</div>"
            f"<div style='margin-top:6px;color:{TEAL if loss < 0.1 else '#333'}'>{explain}</div>")


def logits_widget(logits: Sequence[float] | None = None, target: int = 3, classes: int = 10,
                  span: float = 10.0) -> w.VBox:
    """Ten logit sliders, a target picker and presets; the bars and the loss update as you drag."""
    if classes < 1:
        raise ValueError(f"classes must be at least 1, got {classes}")
    start = list(_as_logits(logits if logits is not None else [0.0] * classes).tolist())
    if len(start) != classes:
        raise ValueError(f"expected {classes} starting logits, got {len(start)}")
    _as_target(target, classes)
    sliders = [w.FloatSlider(value=v, min=-span, max=span, step=0.1, description=str(i),
                             orientation="vertical", readout_format=".1f",
                             layout=w.Layout(width="44px", height="180px"))
               for i, v in enumerate(start)]
    picker = w.Dropdown(options=list(range(classes)), value=target, description="correct class")
    presets = w.Dropdown(options=["(choose a preset)"] + (list(PRESETS) if classes == 10 else []),
                         value="(choose a preset)", description="preset")
    chart = w.HTML()

    def redraw(_=None):
        probs, loss = loss_view([s.value for s in sliders], picker.value)
        chart.value = bars_html(probs, picker.value, loss)

    def load_preset(change):
        if change["new"] not in PRESETS:
            return
        values, tgt = PRESETS[change["new"]]
        for s, v in zip(sliders, values):
            s.value = v
        picker.value = tgt
        redraw()

    for s in sliders:
        s.observe(redraw, names="value")
    picker.observe(redraw, names="value")
    presets.observe(load_preset, names="value")
    redraw()
    return w.VBox([w.HBox([picker, presets]), chart, w.HBox(sliders)])


def plot_neg_log(marks: Sequence[float] = (0.9, 0.5, 0.1, 0.01)):
    """The curve -log(p) for p in (0, 1], with a few probabilities marked."""
    p = torch.linspace(0.002, 1.0, 500, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(p, -torch.log(p), color=TEAL)
    for m in marks:
        ax.plot([m], [-math.log(m)], "o", color="#333")
        ax.annotate(f"p={m:g}: {-math.log(m):.2f}", (m, -math.log(m)), textcoords="offset points",
                    xytext=(8, 6) if m < 0.8 else (-40, 14))
    ax.set_xlabel("probability given to the correct class, p")
    ax.set_ylabel("loss  -log(p)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 6.5)
    ax.set_title("-log(p): zero when sure and right, without bound when sure and wrong")
    fig.tight_layout()
    return fig


def plot_probs(logits: Sequence[float] | torch.Tensor, target: int, ax=None, title: str | None = None):
    """A matplotlib bar chart of softmax(logits) with the target's bar highlighted; returns the axes."""
    probs, loss = loss_view(logits, target)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 2.6))
    colours = [TEAL if i == target else GREY for i in range(probs.numel())]
    ax.bar(range(probs.numel()), probs.tolist(), color=colours)
    ax.set_xticks(range(probs.numel()))
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(title if title is not None else f"target {target}: loss {loss:.3f}")
    return ax
