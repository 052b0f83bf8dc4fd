"""Lesson 09: counting the work of the network and timing matrix products on each device."""

from __future__ import annotations

import ipywidgets as w
import matplotlib.pyplot as plt
import torch


def mlp_flops(batch: int = 64, sizes: tuple[int, ...] = (784, 128, 10)) -> dict[str, int]:
    """Multiply-adds of one training step of an MLP, by phase.

    forward: one ``[batch, a] @ [a, b]`` product per layer (``batch * a * b`` multiply-adds);
    backward: two products per layer (the weight gradient ``x.T @ d`` and the input gradient
    ``d @ W.T``), so about twice the forward. Biases, ReLU and the loss are lower-order terms.
    """
    if batch < 1 or len(sizes) < 2:
        raise ValueError("need batch >= 1 and at least two layer sizes")
    forward = sum(batch * a * b for a, b in zip(sizes, sizes[1:]))
    return {"first layer": batch * sizes[0] * sizes[1], "forward": forward, "backward": 2 * forward,
            "step": 3 * forward}


def epoch_flops(n: int = 60_000, batch: int = 64, sizes: tuple[int, ...] = (784, 128, 10)) -> int:
    """Multiply-adds of one epoch: every sample goes forward and backward once."""
    return 3 * n * sum(a * b for a, b in zip(sizes, sizes[1:]))


def matmul_gflops(n: int, device, timer, repeats: int = 5) -> float:
    """Throughput of an ``n x n`` float32 matrix product: ``2 n^3`` flops over the time ``timer`` reports.

    ``timer(fn, device, repeats) -> seconds`` is the lesson's ``time_op``.
    """
    if n < 1:
        raise ValueError(f"matrix size must be positive, got {n}")
    g = torch.Generator().manual_seed(n)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    return 2 * n ** 3 / timer(lambda: a @ b, device, repeats) / 1e9


def throughput_curve(sizes, devices, timer) -> dict[str, list[float]]:
    """GFLOP/s against matrix size, one list per device."""
    return {str(d): [matmul_gflops(n, d, timer) for n in sizes] for d in devices}


def plot_throughput(sizes, curves: dict[str, list[float]]):
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for device, values in curves.items():
        ax.plot(sizes, values, marker="o", label=device)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("matrix size n (n x n @ n x n)")
    ax.set_ylabel("GFLOP/s (median)")
    ax.set_title("Matrix product throughput")
    ax.legend()
    fig.tight_layout()
    return fig


def flops_widget(timer=None) -> w.VBox:
    """Batch size on a slider: the multiply-adds of one step and of an epoch and, given the lesson's
    ``time_op`` as ``timer``, this CPU's time for the first layer's product."""
    batch = w.IntSlider(value=64, min=1, max=1024, description="batch")
    out = w.HTML()

    def redraw(_=None):
        f = mlp_flops(batch.value)
        steps = -(-60_000 // batch.value)
        rows = "".join(f"<tr><td>{k}</td><td style='text-align:right'>{v / 1e6:,.1f} M</td></tr>" for k, v in f.items())
        text = (f"<table><tr><th>one step, batch {batch.value}</th><th>multiply-adds</th></tr>{rows}"
                f"<tr><td>one epoch ({steps} steps)</td><td style='text-align:right'>"
                f"{epoch_flops(batch=batch.value) / 1e9:,.1f} G</td></tr></table>")
        if timer is not None:
            g = torch.Generator().manual_seed(0)
            x, W = torch.randn(batch.value, 784, generator=g), torch.randn(784, 128, generator=g)
            sec = timer(lambda: x @ W, torch.device("cpu"), 5)
            text += (f"<p>x @ W1 on this CPU: {sec * 1e3:.3f} ms "
                     f"({2 * f['first layer'] / sec / 1e9:.1f} GFLOP/s)</p>")
        out.value = text

    batch.observe(redraw, names="value")
    redraw()
    return w.VBox([batch, out])
