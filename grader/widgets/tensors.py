"""Lesson 01: the parameter memory table and the activation-scale picture."""

from __future__ import annotations

import ipywidgets as w
import matplotlib.pyplot as plt
import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def memory_rows(hidden: int = 128, dtype: torch.dtype = torch.float32,
                inputs: int = 784, classes: int = 10) -> list[tuple[str, tuple[int, ...], int, int]]:
    """One row per tensor of the inputs-hidden-classes MLP: (name, shape, number of values, bytes)."""
    if hidden < 1:
        raise ValueError(f"hidden must be at least 1, got {hidden}")
    size = torch.empty((), dtype=dtype).element_size()
    shapes = [("W1", (inputs, hidden)), ("b1", (hidden,)), ("W2", (hidden, classes)), ("b2", (classes,))]
    rows = []
    for name, shape in shapes:
        n = 1
        for s in shape:
            n *= s
        rows.append((name, shape, n, n * size))
    return rows


def _kb(nbytes: int) -> str:
    return f"{nbytes / 1000:,.2f} KB"


def memory_html(hidden: int = 128, dtype: torch.dtype = torch.float32) -> str:
    rows = memory_rows(hidden, dtype)
    total_n = sum(r[2] for r in rows)
    total_b = sum(r[3] for r in rows)
    body = "".join(
        f"<tr><td>{name}</td><td>{list(shape)}</td><td style='text-align:right'>{n:,}</td>"
        f"<td style='text-align:right'>{_kb(b)}</td><td style='text-align:right'>{100 * n / total_n:.1f}%</td></tr>"
        for name, shape, n, b in rows)
    return ("<table><tr><th>tensor</th><th>shape</th><th>values</th><th>memory</th><th>share</th></tr>"
            f"{body}<tr><td><b>total</b></td><td></td><td style='text-align:right'><b>{total_n:,}</b></td>"
            f"<td style='text-align:right'><b>{_kb(total_b)}</b></td><td></td></tr></table>")


def memory_widget() -> w.VBox:
    """Hidden width and dtype on controls; the table of the four tensors updates."""
    hidden = w.IntSlider(value=128, min=1, max=1024, description="hidden", continuous_update=True)
    dtype = w.Dropdown(options=list(DTYPES), value="float32", description="dtype")
    table = w.HTML(memory_html())

    def redraw(_=None):
        table.value = memory_html(hidden.value, DTYPES[dtype.value])

    hidden.observe(redraw, names="value")
    dtype.observe(redraw, names="value")
    return w.VBox([w.HBox([hidden, dtype]), table])


def activation_stds(scale: float | str, depth: int = 10, width: int = 256, batch: int = 512,
                    seed: int = 0) -> list[float]:
    """Standard deviation of the activations after each of ``depth`` Linear+ReLU layers.

    ``scale`` multiplies ``randn`` weights: a number, or ``"kaiming"`` for ``sqrt(2 / fan_in)``.
    The input is standard normal, ``[batch, width]``.
    """
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, width, generator=g)
    stds = []
    for _ in range(depth):
        s = (2.0 / width) ** 0.5 if scale == "kaiming" else float(scale)
        h = torch.clamp(h @ (torch.randn(width, width, generator=g) * s), min=0)
        stds.append(float(h.std()))
    return stds


def plot_activation_stds(depth: int = 10, width: int = 256):
    """Log-scale plot: activations explode with std-1 weights, vanish with small ones, stay put with Kaiming."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for scale, label in [(1.0, "randn (std 1)"), (0.01, "randn * 0.01"), ("kaiming", "randn * sqrt(2/fan_in)")]:
        ax.plot(range(1, depth + 1), activation_stds(scale, depth, width), marker="o", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel("std of activations")
    ax.set_title(f"{depth} Linear+ReLU layers of width {width}")
    ax.legend()
    fig.tight_layout()
    return fig
