"""Lesson 08: the two-spirals toy task, the parity plots and the optimizer explorer.

Nothing here trains a network: the notebook's own harness (the student's
``compare_training``) produces a *result*, a dict with the per-step losses of both
pipelines and the largest parameter difference after each step; the functions below
check, draw and tabulate such results. The explorer widget takes the training function
as an argument, so this module holds no solution to any exercise.

A result, as the notebook's harness returns it::

    {"loss_hand": [float] * steps, "loss_torch": [float] * steps,
     "max_diff": [float] * (steps + 1),      # max_diff[0]: before the first step
     ...}
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch

#: where an exactly-zero difference is drawn on a log axis (log(0) does not exist)
ZERO_FLOOR = 1e-12
OPTIMIZERS = ("sgd", "momentum", "adam")


# --- the toy task -----------------------------------------------------------------------

def spirals(n_per_class: int = 200, turns: float = 1.5, noise: float = 0.08,
            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals in the plane, one per class.

    Point ``i`` of class ``c`` sits at radius ``r = i / n_per_class`` (from near 0 to 1)
    and angle ``2 pi turns r + pi c``, plus Gaussian noise of standard deviation
    ``noise`` on each coordinate; the second spiral is the first turned by half a turn.

    Args:
        n_per_class: points per spiral, at least 1.
        turns: how many times each arm winds around the centre (> 0).
        noise: standard deviation of the jitter (>= 0).
        seed: seeds a private ``torch.Generator``: same seed, same points; the global
            random state is neither used nor changed.

    Returns:
        ``(X, y)``: ``X`` float32 ``[2 * n_per_class, 2]``, ``y`` int64 ``[2 * n_per_class]``
        with the classes 0 and 1 (all of class 0 first).
    """
    if int(n_per_class) != n_per_class or n_per_class < 1:
        raise ValueError(f"n_per_class must be a whole number >= 1, got {n_per_class!r}")
    if not turns > 0:
        raise ValueError(f"turns must be > 0, got {turns!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    n = int(n_per_class)
    g = torch.Generator().manual_seed(seed)
    r = (torch.arange(n, dtype=torch.float64) + 1) / n
    points, labels = [], []
    for c in (0, 1):
        angle = 2 * math.pi * turns * r + math.pi * c
        xy = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1)
        xy = xy + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
        points.append(xy)
        labels.append(torch.full((n,), c, dtype=torch.long))
    return torch.cat(points).float(), torch.cat(labels)


def decision_map(predict: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, steps: int = 150,
                 margin: float = 0.25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The class a model picks at every point of a ``steps x steps`` grid covering ``X``.

    Args:
        predict: maps a float32 ``[N, 2]`` batch of points to ``[N, classes]`` logits
            (it runs under ``torch.no_grad()``).
        X: the data ``[N, 2]``; the grid spans its range plus ``margin`` on each side.
        steps: grid points per axis, at least 2.

    Returns:
        ``(xx, yy, classes)``, three ``[steps, steps]`` NumPy arrays: the grid's
        coordinates and the argmax class at each point.
    """
    if X.dim() != 2 or X.shape[1] != 2:
        raise ValueError(f"decision_map draws 2-D inputs: X must be [N, 2], got {list(X.shape)}")
    if int(steps) != steps or steps < 2:
        raise ValueError(f"steps must be a whole number >= 2, got {steps!r}")
    lo = X.min(dim=0).values - margin
    hi = X.max(dim=0).values + margin
    xs = torch.linspace(float(lo[0]), float(hi[0]), int(steps))
    ys = torch.linspace(float(lo[1]), float(hi[1]), int(steps))
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    with torch.no_grad():
        logits = predict(grid)
    if logits.dim() != 2 or logits.shape[0] != grid.shape[0]:
        raise ValueError(f"predict must return [N, classes] logits for N={grid.shape[0]} points, "
                         f"got shape {list(logits.shape)}")
    classes = logits.argmax(dim=1).reshape(int(steps), int(steps))
    return xx.numpy(), yy.numpy(), classes.numpy()


def disagreement(classes_a: np.ndarray, classes_b: np.ndarray) -> int:
    """How many grid points two decision maps classify differently."""
    a, b = np.asarray(classes_a), np.asarray(classes_b)
    if a.shape != b.shape:
        raise ValueError(f"the two maps have different shapes: {a.shape} and {b.shape}")
    return int((a != b).sum())


def plot_boundaries(X: torch.Tensor, y: torch.Tensor,
                    maps: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Side-by-side decision regions, one panel per named map, with the data on top."""
    if not maps:
        raise ValueError("maps is empty: give at least one {title: decision_map(...)}")
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 4), squeeze=False)
    colours = np.array(["#d95f02", "#1b9e77"])
    for ax, (title, (xx, yy, classes)) in zip(axes[0], maps.items()):
        ax.contourf(xx, yy, classes, levels=[-0.5, 0.5, 1.5], colors=["#fbd5b5", "#b9e4d6"])
        ax.contour(xx, yy, classes, levels=[0.5], colors="k", linewidths=1)
        ax.scatter(X[:, 0].numpy(), X[:, 1].numpy(), c=colours[y.numpy() % 2], s=8, edgecolors="none")
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# --- results of the harness -------------------------------------------------------------

def check_result(result: Mapping, name: str = "result") -> int:
    """Check that ``result`` has the harness's shape; returns its number of steps.

    Raises ``ValueError`` naming what is missing or inconsistent: ``loss_hand`` and
    ``loss_torch`` hold one loss per step, ``max_diff`` one entry more (before step 1).
    """
    if not isinstance(result, Mapping):
        raise ValueError(f"{name} must be a dict from compare_training, got {type(result).__name__}")
    missing = [k for k in ("loss_hand", "loss_torch", "max_diff") if k not in result]
    if missing:
        raise ValueError(f"{name} has no {', '.join(missing)}: is it what compare_training returns?")
    steps = len(result["loss_hand"])
    if len(result["loss_torch"]) != steps:
        raise ValueError(f"{name}: loss_hand has {steps} entries but loss_torch has {len(result['loss_torch'])}; "
                         f"both need one loss per step")
    if len(result["max_diff"]) != steps + 1:
        raise ValueError(f"{name}: max_diff has {len(result['max_diff'])} entries for {steps} steps; it needs "
                         f"{steps + 1}: one before the first step, then one after each step")
    return steps


def on_log_axis(values: Sequence[float], floor: float = ZERO_FLOOR) -> np.ndarray:
    """``values`` ready for a log axis: exact zeros (and anything below ``floor``) drawn at ``floor``.

    NaN and inf are kept, so a diverged run stays visible as a gap or a clipped line.
    """
    if not floor > 0:
        raise ValueError(f"floor must be > 0 on a log axis, got {floor!r}")
    a = np.asarray(values, dtype=np.float64)
    return np.where(a < floor, floor, a)


def plot_parity(results: Mapping[str, Mapping], tol: float | None = None, title: str = "",
                smooth: int = 1):
    """Two panels: the losses of both pipelines (overlapping if they agree) and the
    largest parameter difference after each step, on a log scale.

    Args:
        results: ``{label: result}``, one or more harness results.
        tol: if given, drawn as a dotted horizontal line on the difference panel.
        smooth: average the losses over this many steps (1: raw), for readability of
            long runs; the differences are never smoothed.
    """
    if not results:
        raise ValueError("results is empty: give at least one {label: result}")
    if int(smooth) != smooth or smooth < 1:
        raise ValueError(f"smooth must be a whole number >= 1, got {smooth!r}")
    fig, (ax_loss, ax_diff) = plt.subplots(1, 2, figsize=(11, 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    kernel = np.ones(int(smooth)) / int(smooth)
    for i, (label, result) in enumerate(results.items()):
        steps = check_result(result, f"results[{label!r}]")
        colour = colours[i % len(colours)]
        x = np.arange(1, steps + 1)
        for key, style, who in (("loss_hand", "-", "by hand"), ("loss_torch", "--", "torch.nn")):
            loss = np.asarray(result[key], dtype=np.float64)
            if smooth > 1 and steps >= smooth:
                loss = np.convolve(loss, kernel, mode="valid")
                xs = x[int(smooth) - 1:]
            else:
                xs = x
            ax_loss.plot(xs, loss, style, color=colour, lw=1.6 if who == "by hand" else 1.2,
                         label=f"{label}, {who}", alpha=0.9)
        ax_diff.plot(np.arange(0, steps + 1), on_log_axis(result["max_diff"]), color=colour, label=label)
    if tol is not None:
        ax_diff.axhline(tol, ls=":", color="k", label=f"tolerance {tol:g}")
    ax_diff.axhline(ZERO_FLOOR, ls="-", color="#bbb", lw=0.8)
    ax_diff.text(0.01, ZERO_FLOOR * 1.6, "exactly equal", transform=ax_diff.get_yaxis_transform(),
                 fontsize=8, color="#888")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss" + (f" (mean of {smooth} steps)" if smooth > 1 else ""))
    ax_loss.set_title("loss: solid by hand, dashed torch.nn")
    ax_loss.legend(fontsize=8)
    ax_diff.set_yscale("log")
    ax_diff.set_xlabel("step")
    ax_diff.set_ylabel("largest |hand - torch| over all parameters")
    ax_diff.set_title("parameter difference (log scale)")
    ax_diff.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_amplification(grads: Mapping[str, torch.Tensor], diffs: Mapping[str, torch.Tensor]):
    """Log-log scatter, one panel per optimizer: each parameter's gradient magnitude at
    step 1 (x) against how far apart the two pipelines put it after that step (y).

    Both mappings are keyed by the same labels; each value is one flat tensor holding
    every parameter. Exact zeros are drawn at :data:`ZERO_FLOOR`.
    """
    if set(grads) != set(diffs) or not grads:
        raise ValueError(f"grads and diffs need the same non-empty labels, got {sorted(grads)} and {sorted(diffs)}")
    fig, axes = plt.subplots(1, len(grads), figsize=(5.2 * len(grads), 3.8), squeeze=False, sharey=True)
    for ax, label in zip(axes[0], grads):
        g = grads[label].detach().reshape(-1).abs().double().numpy()
        d = diffs[label].detach().reshape(-1).abs().double().numpy()
        if g.shape != d.shape:
            raise ValueError(f"{label}: {g.size} gradients but {d.size} differences")
        ax.scatter(on_log_axis(g), on_log_axis(d), s=3, alpha=0.25, edgecolors="none")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("|gradient| at step 1")
        ax.set_title(label)
    axes[0][0].set_ylabel("|hand - torch| after step 1")
    fig.tight_layout()
    return fig


def plot_eps_sweep(eps_values: Sequence[float], predicted_gain: Sequence[float], drift: Sequence[float],
                   loss: Sequence[float], steps: int | None = None):
    """Two panels over Adam's eps (log axis): left, the predicted worst gain and the measured
    parameter difference after the run (both log scale, zeros drawn at :data:`ZERO_FLOOR`);
    right, the loss each run reached. The four sequences are aligned, one entry per eps.
    """
    n = len(eps_values)
    if n == 0 or not (len(predicted_gain) == len(drift) == len(loss) == n):
        raise ValueError(f"need one predicted gain, drift and loss per eps; got {len(eps_values)} eps, "
                         f"{len(predicted_gain)} gains, {len(drift)} drifts and {len(loss)} losses")
    if any(not (e > 0) for e in eps_values):
        raise ValueError(f"eps values must be > 0, got {list(eps_values)}")
    after = f" after {steps} steps" if steps else ""
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax.plot(eps_values, on_log_axis(predicted_gain), "s--", color="C1", label="predicted: largest gain lr / eps")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Adam's eps")
    ax.set_ylabel("predicted gain", color="C1")
    twin = ax.twinx()
    twin.plot(eps_values, on_log_axis(drift), "o-", color="C0", label="measured: largest |hand - torch|" + after)
    twin.set_yscale("log")
    twin.set_ylabel("measured parameter difference", color="C0")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper right")
    ax.set_title("prediction and measurement")
    ax_loss.plot(eps_values, loss, "o-", color="C3")
    ax_loss.set_xscale("log")
    ax_loss.set_xlabel("Adam's eps")
    ax_loss.set_ylabel("training loss" + after)
    ax_loss.set_title("what a large eps costs")
    fig.tight_layout()
    return fig


def table_html(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A small HTML table; floats are written in 3 significant digits, None as 'never'."""
    for i, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"row {i} has {len(row)} cells for {len(headers)} headers")

    def cell(v):
        if v is None:
            return "never"
        if isinstance(v, float):
            return "0" if v == 0 else f"{v:.3g}"
        return str(v)

    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='text-align:right'>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# --- the explorer ------------------------------------------------------------------------

def explorer_settings(optimizer: str, lr: float, same_primitives: bool) -> dict:
    """The keyword arguments the explorer passes to the training function, checked."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    return {"optimizer": optimizer, "lr": float(lr), "same_primitives": bool(same_primitives)}


DEFAULT_LR = {"sgd": 0.3, "momentum": 0.05, "adam": 0.03}


def status_line(result: Mapping, tol: float) -> str:
    """One line about a result: its steps, its final difference and its ``first_divergence``."""
    steps = check_result(result)
    final = float(result["max_diff"][-1])
    beyond = result.get("first_divergence")
    verdict = f"never beyond {tol:g}" if beyond is None else f"first beyond {tol:g} at step <b>{beyond}</b>"
    return f"{steps} steps &nbsp;·&nbsp; final largest difference <b>{final:.3g}</b> &nbsp;·&nbsp; {verdict}"


def parity_explorer(run: Callable[..., Mapping], tol: float = 1e-6, optimizer: str = "adam",
                    lr: float | None = None) -> w.VBox:
    """Pick an optimizer, a learning rate and the primitives; the toy run is redone and drawn.

    ``run(optimizer=..., lr=..., same_primitives=...)`` must return a harness result whose
    ``first_divergence`` was computed with ``tol``. Choosing another optimizer resets the
    learning rate to that optimizer's usual one (:data:`DEFAULT_LR`). The first run happens
    when the widget is built, so the notebook shows a picture without any click.
    """
    settings = explorer_settings(optimizer, DEFAULT_LR.get(optimizer, 0.01) if lr is None else lr, False)
    pick = w.Dropdown(options=list(OPTIMIZERS), value=settings["optimizer"], description="optimizer")
    rate = w.FloatLogSlider(value=settings["lr"], base=10, min=-4, max=0, step=0.05, description="lr",
                            readout_format=".4g", continuous_update=False)
    same = w.Checkbox(value=False, description="torch's own primitives and operation order")
    status = w.HTML()
    out = w.Output()
    busy = {"now": False}

    def redraw(_=None):
        if busy["now"]:
            return
        kwargs = explorer_settings(pick.value, rate.value, same.value)
        result = run(**kwargs)
        status.value = status_line(result, tol)
        out.clear_output(wait=True)
        with out:
            fig = plot_parity({f"{kwargs['optimizer']}, lr {kwargs['lr']:.3g}": result}, tol=tol)
            plt.show()
            plt.close(fig)

    def new_optimizer(change):
        busy["now"] = True
        try:
            rate.value = DEFAULT_LR[change["new"]]
        finally:
            busy["now"] = False
        redraw()

    pick.observe(new_optimizer, names="value")
    rate.observe(redraw, names="value")
    same.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([pick, rate]), same, status, out])
