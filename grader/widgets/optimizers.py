"""Lesson 05: three optimizers racing down a valley, and a hand-written optimizer run beside torch.optim.

* :func:`valley` is the loss surface, a long narrow ditch; :func:`race` runs ``torch.optim``'s
  SGD, SGD with momentum and Adam on it from one starting point and returns their paths;
  :func:`plot_race` and :func:`plot_race_losses` draw them; :func:`race_widget` puts the
  learning rates, the momentum and the number of steps on sliders.
* :func:`problem` builds small seeded training problems (a noisy quadratic bowl, a tiny tanh
  network) whose gradients come from ``torch.autograd``; :func:`side_by_side` feeds the same
  gradients to a hand-written optimizer step and to ``torch.optim`` and records, after every
  step, how far apart the two are; :func:`plot_side_by_side` draws that record.
* :func:`plot_bias_correction`: why Adam divides its running averages by ``1 - beta**t``.

Nothing here waits for a click: the widget draws its first picture at once.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from grader import reference, tripwire

NAMES = ("SGD", "momentum", "Adam")
COLOURS = {"SGD": "#d62728", "momentum": "#e6a700", "Adam": "#12897f"}
#: the valley's curvature along x (its floor) and along y (across its walls)
CURVATURE = (1 / 25, 4.0)
BOX = ((-10.0, 10.0), (-3.0, 3.0))          # the region the pictures show
DIVERGED = 1e6                               # a path whose coordinates pass this has left for good


# --- the valley and the race ----------------------------------------------------------------

def valley(x, y):
    """``0.5 * (x**2 / 25 + 4 * y**2)``: a ditch 100 times steeper across (y) than along (x).

    Works on Python numbers, numpy arrays and torch tensors alike. Its minimum is 0 at (0, 0).
    """
    return 0.5 * (CURVATURE[0] * x ** 2 + CURVATURE[1] * y ** 2)


def _check_race_args(lr: float, mu: float, steps: int, start, adam_lr: float) -> tuple[float, float]:
    for name, value in (("lr", lr), ("adam_lr", adam_lr)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not isinstance(mu, (int, float)) or isinstance(mu, bool) or not 0 <= mu < 1:
        raise ValueError(f"mu must be a number in [0, 1), got {mu!r} (mu = 1 never forgets a gradient)")
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or not 1 <= steps <= 10_000:
        raise ValueError(f"steps must be an int between 1 and 10,000, got {steps!r}")
    try:
        x0, y0 = (float(v) for v in start)
    except (TypeError, ValueError):
        raise ValueError(f"start must be two numbers (x, y), got {start!r}") from None
    if not (math.isfinite(x0) and math.isfinite(y0)):
        raise ValueError(f"start must be finite, got {start!r}")
    return x0, y0


def race(lr: float = 0.45, mu: float = 0.6, steps: int = 60, start: Sequence[float] = (-9.0, 2.0),
         adam_lr: float = 0.3) -> dict[str, np.ndarray]:
    """Run SGD, SGD with momentum and Adam from ``start`` on :func:`valley`; return their paths.

    The steps are ``torch.optim``'s own (``SGD(lr)``, ``SGD(lr, momentum=mu)``,
    ``Adam(adam_lr)``), in float64, the gradient by ``torch.autograd``. Adam gets its own
    learning rate because its steps are measured in parameter units (about ``adam_lr`` per
    coordinate), while SGD's are ``lr`` times the gradient.

    Returns:
        ``{"SGD": points, "momentum": points, "Adam": points}``, each a float64 array of
        shape ``[steps + 1, 2]``: row 0 is ``start``, row k the point after step k. A path
        that diverges (a coordinate beyond 1e6 in size) is cut there: its later rows are NaN.
    """
    x0, y0 = _check_race_args(lr, mu, steps, start, adam_lr)
    paths = {}
    for name in NAMES:
        p = torch.tensor([x0, y0], dtype=torch.float64, requires_grad=True)
        if name == "SGD":
            opt = torch.optim.SGD([p], lr=lr)
        elif name == "momentum":
            opt = torch.optim.SGD([p], lr=lr, momentum=mu)
        else:
            opt = torch.optim.Adam([p], lr=adam_lr)
        points = np.full((steps + 1, 2), np.nan)
        points[0] = (x0, y0)
        for k in range(1, steps + 1):
            opt.zero_grad()
            valley(p[0], p[1]).backward()
            opt.step()
            now = p.detach().numpy()
            if not np.all(np.isfinite(now)) or np.abs(now).max() > DIVERGED:
                break
            points[k] = now
        paths[name] = points
    return paths


def race_losses(paths: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The valley's loss at every point of every path (NaN where a path was cut)."""
    return {name: valley(pts[:, 0], pts[:, 1]) for name, pts in paths.items()}


def _draw_paths(ax, paths: dict[str, np.ndarray]) -> None:
    xs = np.linspace(*BOX[0], 300)
    ys = np.linspace(*BOX[1], 200)
    X, Y = np.meshgrid(xs, ys)
    levels = np.geomspace(0.01, valley(BOX[0][1], BOX[1][1]), 14)
    ax.contour(X, Y, valley(X, Y), levels=levels, colors="#9a9a9a", linewidths=0.7)
    ax.plot([0], [0], marker="*", color="black", markersize=12, linestyle="none")
    for name, pts in paths.items():
        ax.plot(pts[:, 0], pts[:, 1], marker="o", markersize=2.5, linewidth=1.2, color=COLOURS.get(name),
                label=name)
    ax.plot(*next(iter(paths.values()))[0], marker="o", color="black", markersize=6, linestyle="none")
    ax.set_xlim(*BOX[0])
    ax.set_ylim(*BOX[1])
    ax.set_xlabel("x (along the valley floor)")
    ax.set_ylabel("y (across)")


def _draw_losses(ax, paths: dict[str, np.ndarray]) -> None:
    for name, loss in race_losses(paths).items():
        diverged = not np.isfinite(loss[-1]) or loss[-1] > loss[0]
        label = f"{name}: diverged" if diverged else f"{name}: {loss[-1]:.2g}"
        ax.semilogy(np.arange(len(loss)), np.maximum(loss, 1e-12), color=COLOURS.get(name), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)")
    ax.legend(title="loss at the end", fontsize=8, title_fontsize=8)


def plot_race(paths: dict[str, np.ndarray] | None = None):
    """Contour lines of the valley with each optimizer's path (default: :func:`race`'s defaults)."""
    paths = race() if paths is None else paths
    fig, ax = plt.subplots(figsize=(9, 3.4))
    _draw_paths(ax, paths)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{len(next(iter(paths.values()))) - 1} steps from the black dot; the star is the minimum")
    fig.tight_layout()
    return fig


def plot_race_losses(paths: dict[str, np.ndarray] | None = None):
    """The valley's loss against the step for each optimizer (log scale)."""
    paths = race() if paths is None else paths
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    _draw_losses(ax, paths)
    ax.set_title("loss on the valley, step by step")
    fig.tight_layout()
    return fig


def race_png(lr: float = 0.45, mu: float = 0.6, steps: int = 60, adam_lr: float = 0.3,
             start: Sequence[float] = (-9.0, 2.0)) -> bytes:
    """The widget's picture as PNG bytes: the paths on the left, the losses on the right."""
    paths = race(lr=lr, mu=mu, steps=steps, start=start, adam_lr=adam_lr)
    fig = Figure(figsize=(11, 3.6))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.1, 1]})
    _draw_paths(left, paths)
    left.set_title(f"SGD and momentum lr={lr:g}, mu={mu:g}; Adam lr={adam_lr:g}", fontsize=10)
    left.legend(loc="upper right", fontsize=8)
    _draw_losses(right, paths)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def race_widget(lr: float = 0.45, mu: float = 0.6, steps: int = 60, adam_lr: float = 0.3) -> w.VBox:
    """Sliders for the learning rates, the momentum and the number of steps over the race's picture."""
    style = {"description_width": "initial"}
    sliders = {
        "lr": w.FloatSlider(value=lr, min=0.01, max=0.6, step=0.01, description="lr (SGD, momentum)",
                            style=style, continuous_update=False),
        "mu": w.FloatSlider(value=mu, min=0.0, max=0.99, step=0.01, description="momentum mu",
                            style=style, continuous_update=False),
        "adam_lr": w.FloatSlider(value=adam_lr, min=0.01, max=1.5, step=0.01, description="lr (Adam)",
                                 style=style, continuous_update=False),
        "steps": w.IntSlider(value=steps, min=5, max=300, step=5, description="steps", style=style,
                             continuous_update=False),
    }
    image = w.Image(value=race_png(lr=lr, mu=mu, steps=steps, adam_lr=adam_lr), format="png")

    def redraw(_=None):
        image.value = race_png(**{name: s.value for name, s in sliders.items()})

    for s in sliders.values():
        s.observe(redraw, names="value")
    return w.VBox([w.HBox([sliders["lr"], sliders["mu"]]), w.HBox([sliders["adam_lr"], sliders["steps"]]), image])


# --- Adam's bias correction -----------------------------------------------------------------

def plot_bias_correction(betas: tuple[float, float] = (0.9, 0.999), steps: int = 3000):
    """What a running average that starts at 0 holds after t steps of a constant gradient 1: ``1 - beta**t``.

    Left: the two averages (m with beta1, v with beta2) against the truth, 1. Right: the size
    of Adam's first steps relative to ``lr`` with and without the correction.
    """
    t = np.arange(1, steps + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.3))
    for beta, name, colour in ((betas[0], "m", "#1f77b4"), (betas[1], "v", "#9467bd")):
        left.semilogx(t, 1 - beta ** t, color=colour, label=f"{name}: 1 - {beta}**t")
    left.axhline(1, color="black", linewidth=0.8, linestyle="--")
    left.set_xlabel("step t (log scale)")
    left.set_ylabel("running average / true value")
    left.set_title("an average started at 0 is too small at first", fontsize=10)
    left.legend(fontsize=8)
    raw = (1 - betas[0] ** t) / np.sqrt(1 - betas[1] ** t)
    right.semilogx(t, raw, color="#d62728", label="m / sqrt(v), uncorrected")
    right.plot(t, np.ones_like(t, dtype=float), color="#12897f", label="m_hat / sqrt(v_hat), corrected")
    right.set_xlabel("step t (log scale)")
    right.set_ylabel("step size / lr")
    right.set_title("constant gradient: size of each step", fontsize=10)
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- small training problems, and a hand-written optimizer beside torch.optim ---------------

GradFn = Callable[[int, list], list]


def problem(kind: str = "quadratic", seed: int = 0, *, shapes: Sequence[Sequence[int]] = ((3,), (4, 5), (), (2, 3, 4)),
            scale: float = 1.0, noise: float = 0.1, hidden: int = 12,
            dtype: torch.dtype = torch.float32) -> tuple[list[torch.Tensor], GradFn]:
    """A seeded training problem: starting parameters and ``grad_fn(step, params) -> gradients``.

    The gradients depend on the current parameters and change from step to step, as in
    training; they come from ``torch.autograd``, never from an optimizer.

    * ``"quadratic"``: one tensor per entry of ``shapes``; the loss is
      ``scale * sum(0.5 * c * (p - target)**2)`` with curvatures ``c`` between 0.1 and 2, and
      each step's gradient gets seeded noise of size ``noise * scale`` (like a minibatch's).
    * ``"mlp"``: the four tensors ``(W1 [5, hidden], b1, W2 [hidden, 3], b2)`` of a tanh
      network; each step's loss is ``scale *`` the cross-entropy of a different seeded
      minibatch of 16 of 64 fixed points.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    g = torch.Generator().manual_seed(seed)
    if kind == "quadratic":
        params = [torch.randn(tuple(s), generator=g, dtype=dtype) for s in shapes]
        curv = [torch.rand(tuple(s), generator=g, dtype=dtype) * 1.9 + 0.1 for s in shapes]
        target = [torch.randn(tuple(s), generator=g, dtype=dtype) for s in shapes]

        def loss_of(step, leaves):
            return scale * sum((0.5 * c * (p - t) ** 2).sum() for p, c, t in zip(leaves, curv, target))

        def extra(step, grads):
            gn = torch.Generator().manual_seed(1_000_003 * seed + step)
            return [gr + noise * scale * torch.randn(gr.shape, generator=gn, dtype=dtype) for gr in grads]
    elif kind == "mlp":
        n, d_in, classes = 64, 5, 3
        X = torch.randn(n, d_in, generator=g, dtype=dtype)
        y = torch.randint(0, classes, (n,), generator=g)
        params = [torch.randn(d_in, hidden, generator=g, dtype=dtype) * 0.5,
                  torch.randn(hidden, generator=g, dtype=dtype) * 0.1,
                  torch.randn(hidden, classes, generator=g, dtype=dtype) * 0.5,
                  torch.randn(classes, generator=g, dtype=dtype) * 0.1]

        def loss_of(step, leaves):
            gn = torch.Generator().manual_seed(1_000_003 * seed + step)
            idx = torch.randperm(n, generator=gn)[:16]
            W1, b1, W2, b2 = leaves
            return scale * F.cross_entropy(torch.tanh(X[idx] @ W1 + b1) @ W2 + b2, y[idx])

        def extra(step, grads):
            return list(grads)
    else:
        raise ValueError(f"kind must be 'quadratic' or 'mlp', got {kind!r}")

    def grad_fn(step: int, current: list) -> list:
        leaves = [p.detach().clone().requires_grad_(True) for p in current]
        loss = loss_of(step, leaves)
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        grads = [torch.zeros_like(p) if gr is None else gr for p, gr in zip(leaves, grads)]
        return [gr.detach() for gr in extra(step, grads)]

    return params, grad_fn


def relative_difference(actual: torch.Tensor, expected: torch.Tensor, floor: float = 1.0) -> float:
    """``max |actual - expected| / max(floor, max |expected|)``; inf for NaN, inf or a wrong shape or dtype."""
    if (not isinstance(actual, torch.Tensor) or tuple(actual.shape) != tuple(expected.shape)
            or actual.dtype != expected.dtype):
        return math.inf
    if expected.numel() == 0:
        return 0.0
    a, e = actual.detach(), expected.detach()
    diff = (a - e).abs().max().item()
    if diff != diff:                                        # NaN
        return math.inf
    return diff / max(floor, e.abs().max().item())


STATE_NAMES = {"sgd": (), "momentum": (("velocities", "momentum_buffer"),),
               "adam": (("ms", "exp_avg"), ("vs", "exp_avg_sq"))}
TORCH_NAMES = {"sgd": "torch.optim.SGD", "momentum": "torch.optim.SGD(momentum=mu)", "adam": "torch.optim.Adam"}


@dataclass
class SideBySide:
    """The record of :func:`side_by_side`: after each step, how far the hand-written run is from torch's.

    ``param_diffs[k - 1]`` is the largest :func:`relative_difference` over the parameters after
    step ``k`` (floor 1: relative to the larger of 1 and the tensor's largest value);
    ``state_diffs[k - 1]`` the same for the optimizer's state (velocities, or ms and vs),
    relative to the largest value that state holds over all the parameters. ``where`` says which
    tensor was worst at each step.
    """
    kind: str
    name: str
    hyper: dict
    param_diffs: list[float] = field(default_factory=list)
    state_diffs: list[float] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    state_where: list[str] = field(default_factory=list)
    did_not_move: bool = False

    @property
    def steps(self) -> int:
        return len(self.param_diffs)

    @staticmethod
    def _first(diffs: list[float], tol: float) -> int | None:
        return next((k + 1 for k, d in enumerate(diffs) if not d <= tol), None)

    def first_bad_step(self, tol: float) -> int | None:
        """The first step after which some parameter is off by more than ``tol`` (None: never)."""
        return self._first(self.param_diffs, tol)

    def first_bad_state_step(self, tol: float) -> int | None:
        return self._first(self.state_diffs, tol)

    def report(self, tol: float, hint: str = "", state: bool = False) -> str:
        """The failure message: the first step beyond ``tol`` and the largest difference, with where it was."""
        diffs, where = (self.state_diffs, self.state_where) if state else (self.param_diffs, self.where)
        first = self._first(diffs, tol)
        if first is None:
            return f"{self.name}: every step within {tol:g}"
        worst = max(range(len(diffs)), key=lambda k: diffs[k] if diffs[k] == diffs[k] else math.inf)
        what = "optimizer state differs" if state else "parameters differ"
        hyper = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        message = (f"{self.name}({hyper}): the {what} from {TORCH_NAMES[self.kind]} fed the same gradients. "
                   f"First step beyond the tolerance {tol:g}: step {first} of {self.steps} "
                   f"({where[first - 1]}, relative difference {diffs[first - 1]:.3g}); largest difference "
                   f"{diffs[worst]:.3g} at step {worst + 1} ({where[worst]}).")
        if diffs[first - 1] == math.inf:
            message += (" At that step a value was NaN or infinite (or a tensor changed shape or dtype): a division by "
                        "zero, such as 1 - beta**t with t = 0?")
        if self.did_not_move and not state:
            message += (" After the first step the parameters still held their starting values: "
                        "was the update applied to a copy (p = p - ...) instead of in place (p -= ...)?")
        if hint:
            message += f"\nHint: {hint}"
        return message


def _record_step(record: SideBySide, k: int, ps: list, start: list, state: dict, expected) -> None:
    """Append step ``k``'s largest differences (parameters, then state) to ``record``."""
    want_params, want_states = expected
    diffs = [relative_difference(a, e) for a, e in zip(ps, want_params)]
    i = max(range(len(diffs)), key=lambda j: diffs[j])
    record.param_diffs.append(diffs[i])
    record.where.append(f"params[{i}] of shape {list(want_params[i].shape)}")
    if k == 1 and all(isinstance(a, torch.Tensor) and a.shape == s.shape and torch.equal(a.detach(), s)
                      for a, s in zip(ps, start)):
        record.did_not_move = not all(torch.equal(s, e) for s, e in zip(start, want_params))
    worst, worst_where = 0.0, "-"
    for label, key in STATE_NAMES[record.kind]:
        pairs = [(i, mine, theirs[key]) for i, (mine, theirs) in enumerate(zip(state[label], want_states))
                 if key in theirs]
        if not pairs:
            continue
        size = max(e.detach().abs().max().item() if e.numel() else 0.0 for _, _, e in pairs)
        for i, mine, theirs in pairs:
            d = relative_difference(mine, theirs, floor=size if size > 0 else 1.0)
            if not d <= worst:
                worst, worst_where = d, f"{label}[{i}] of shape {list(theirs.shape)}"
    record.state_diffs.append(worst)
    record.state_where.append(worst_where)


def side_by_side(kind: str, step_fn: Callable, params: Sequence[torch.Tensor], grad_fn: GradFn, steps: int,
                 name: str | None = None, forbid: bool = True, **hyper) -> SideBySide:
    """Run ``step_fn`` and ``torch.optim`` from the same start, feeding both the same gradients.

    Each step: the gradients ``grad_fn(k, params)`` of the current parameters are put in
    ``p.grad`` (a fresh copy every step) and the hand-written step is called, positionally:

    * ``"sgd"``: ``step_fn(params, lr)``
    * ``"momentum"``: ``step_fn(params, velocities, lr, mu)`` (velocities start as zeros)
    * ``"adam"``: ``step_fn(params, ms, vs, t, lr, betas, eps)`` with ``t = k``, counting from 1

    The lists passed are the same list objects every step, and the parameters compared are
    whatever those lists hold after the step. With ``forbid`` the step runs under
    :func:`grader.tripwire.forbid` ``("optim")``. The reference is
    :func:`grader.reference.optimizer_run`.
    """
    if kind not in STATE_NAMES:
        raise ValueError(f"kind must be 'sgd', 'momentum' or 'adam', got {kind!r}")
    if kind == "sgd":
        hyper = {"lr": hyper["lr"]}
    elif kind == "momentum":
        hyper = {"lr": hyper["lr"], "mu": hyper.get("mu", 0.9)}
    else:
        hyper = {"lr": hyper.get("lr", 1e-3), "betas": tuple(hyper.get("betas", (0.9, 0.999))),
                 "eps": hyper.get("eps", 1e-8)}
    name = name or getattr(step_fn, "__name__", "step")
    expected = reference.optimizer_run(kind, params, grad_fn, steps, **hyper)
    record = SideBySide(kind, name, dict(hyper))
    start = [p.detach().clone() for p in params]
    ps = [p.detach().clone().requires_grad_(True) for p in params]
    state = {label: [torch.zeros_like(p) for p in start] for label, _ in STATE_NAMES[kind]}
    with (tripwire.forbid("optim", what=name) if forbid else contextlib.nullcontext()):
        for k in range(1, steps + 1):
            grads = grad_fn(k, [p.detach() for p in ps])
            for p, g in zip(ps, grads):
                p.grad = g.detach().clone()
            if kind == "sgd":
                step_fn(ps, hyper["lr"])
            elif kind == "momentum":
                step_fn(ps, state["velocities"], hyper["lr"], hyper["mu"])
            else:
                step_fn(ps, state["ms"], state["vs"], k, hyper["lr"], hyper["betas"], hyper["eps"])
            _record_step(record, k, ps, start, state, expected[k - 1])
    return record


def plot_side_by_side(records: Sequence[SideBySide], tol: float = 1e-6):
    """The largest relative difference to torch.optim after each step, one line per record (log scale)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for rec in records:
        ys = np.maximum(np.array(rec.param_diffs, dtype=float), 1e-12)
        same = " (identical)" if max(rec.param_diffs, default=0.0) == 0 else ""
        ax.semilogy(np.arange(1, rec.steps + 1), ys, label=f"{rec.name} vs {TORCH_NAMES[rec.kind]}{same}",
                    color=COLOURS.get({"sgd": "SGD", "momentum": "momentum", "adam": "Adam"}[rec.kind]),
                    linewidth=2.5 if same else 1.5)
    ax.axhline(tol, color="black", linestyle="--", linewidth=0.8, label=f"tolerance {tol:g}")
    ax.set_ylim(3e-13, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("largest relative difference")
    ax.set_title("your optimizers beside torch.optim, same gradients", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
