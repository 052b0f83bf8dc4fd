"""Lesson 04: the backward pass of the MLP one node at a time, and two pictures.

* :func:`backward_steps` lists the nodes of the 784-H-10 network in the order a backward
  pass visits them, each with its gradient's shape and norm (computed by torch.autograd);
  :func:`graph_svg` draws the graph with one node highlighted; :func:`backward_stepper` is
  the Step / Reset widget over both.
* :func:`nudge_losses` and :func:`plot_nudge`: what a gradient means, as the slope of the
  loss when one weight is moved.
* :func:`difference_errors` and :func:`plot_difference_errors`: the error of forward and
  central finite differences in float32 and float64, as a function of the step.

Nothing here waits for a click: the widgets draw their first state at once.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

# --- the graph of the MLP ----------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One value of the forward pass: its name, the values it is computed from, how, and where it is drawn."""
    name: str
    inputs: tuple[str, ...]
    op: str                     # the forward operation, as text
    formula: str                # how the backward pass gets this node's gradient
    meaning: str                # what that gradient says
    col: float
    row: float
    has_grad: bool = True


#: The forward pass, one operation per node, in the order it is computed.
NODES: tuple[Node, ...] = (
    Node("x", (), "the input images", "", "the pixels are data, not parameters: no gradient needed", 0, 1, False),
    Node("y", (), "the target digits", "", "integers: no gradient", 6, 0, False),
    Node("W1", (), "parameter", "x.T @ d[x@W1]", "which pixels were bright when a hidden unit was blamed", 1, 0),
    Node("b1", (), "parameter", "d[h_pre].sum(0)", "the hidden error summed over the batch (b1 was copied to every row)",
         2, 0),
    Node("W2", (), "parameter", "h.T @ d[h@W2]", "which hidden units were active when an output was wrong", 4, 0),
    Node("b2", (), "parameter", "d[logits].sum(0)", "the output error summed over the batch", 5, 0),
    Node("x@W1", ("x", "W1"), "x @ W1", "d[h_pre]", "an addition passes its gradient on unchanged", 1, 1),
    Node("h_pre", ("x@W1", "b1"), "x@W1 + b1", "d[h] * (h_pre > 0)", "the same, blocked where ReLU was off", 2, 1),
    Node("h", ("h_pre",), "relu(h_pre)", "d[h@W2] @ W2.T", "the error sent back to each hidden unit", 3, 1),
    Node("h@W2", ("h", "W2"), "h @ W2", "d[logits]", "an addition passes its gradient on unchanged", 4, 1),
    Node("logits", ("h@W2", "b2"), "h@W2 + b2", "(softmax(logits) - one_hot(y)) / B",
         "how each score of each image should move", 5, 1),
    Node("loss", ("logits", "y"), "cross_entropy(logits, y)", "1", "the start: dL/dL = 1", 6, 1),
)
BY_NAME = {n.name: n for n in NODES}

#: One valid reverse topological order: every node comes after all the nodes that use it.
BACKWARD_ORDER: tuple[str, ...] = ("loss", "logits", "b2", "h@W2", "W2", "h", "h_pre", "b1", "x@W1", "W1")


@dataclass(frozen=True)
class Step:
    """One node of the backward pass: its name, how its gradient is computed, the gradient's shape and norm."""
    name: str
    formula: str
    shape: tuple[int, ...]
    norm: float
    meaning: str


def _check_mlp_inputs(x, targets, W1, b1, W2, b2) -> None:
    tensors = {"x": x, "targets": targets, "W1": W1, "b1": b1, "W2": W2, "b2": b2}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if x.dim() != 2:
        raise ValueError(f"x must be [B, D] (a batch of flattened images), got shape {list(x.shape)}")
    B, D = x.shape
    if B < 1:
        raise ValueError("x holds no images: the batch must have at least one")
    if W1.dim() != 2 or W1.shape[0] != D:
        raise ValueError(f"W1 must be [{D}, H] to multiply x of shape {list(x.shape)}, got {list(W1.shape)}")
    H = W1.shape[1]
    if tuple(b1.shape) != (H,):
        raise ValueError(f"b1 must be [{H}] (one bias per hidden unit), got {list(b1.shape)}")
    if W2.dim() != 2 or W2.shape[0] != H:
        raise ValueError(f"W2 must be [{H}, C], got {list(W2.shape)}")
    C = W2.shape[1]
    if tuple(b2.shape) != (C,):
        raise ValueError(f"b2 must be [{C}], got {list(b2.shape)}")
    if targets.dim() != 1 or targets.shape[0] != B or targets.dtype != torch.long:
        raise ValueError(f"targets must be a LongTensor of shape [{B}], got {targets.dtype} {list(targets.shape)}")
    if targets.numel() and (targets.min() < 0 or targets.max() >= C):
        raise ValueError(f"targets must lie in 0..{C - 1}, got values from {int(targets.min())} to {int(targets.max())}")


def backward_steps(x: torch.Tensor, targets: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor,
                   W2: torch.Tensor, b2: torch.Tensor) -> list[Step]:
    """The nodes of the MLP in backward order, with the gradient of the mean cross-entropy at each.

    The gradients come from torch.autograd on copies of the tensors (the inputs are not
    touched and gain no ``.grad``). Returns one :class:`Step` per node that has a gradient,
    in :data:`BACKWARD_ORDER`.
    """
    _check_mlp_inputs(x, targets, W1, b1, W2, b2)
    leaves = {name: t.detach().clone().requires_grad_(True) for name, t in
              (("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2))}
    values: dict[str, torch.Tensor] = dict(leaves)
    values["x@W1"] = x.detach() @ leaves["W1"]
    values["h_pre"] = values["x@W1"] + leaves["b1"]
    values["h"] = F.relu(values["h_pre"])
    values["h@W2"] = values["h"] @ leaves["W2"]
    values["logits"] = values["h@W2"] + leaves["b2"]
    values["loss"] = F.cross_entropy(values["logits"], targets)
    order = list(BACKWARD_ORDER)
    grads = torch.autograd.grad(values["loss"], [values[name] for name in order])
    return [Step(name, BY_NAME[name].formula, tuple(g.shape), float(g.double().norm()), BY_NAME[name].meaning)
            for name, g in zip(order, grads)]


def _check_index(steps: Sequence[Step], current: int) -> None:
    if not steps:
        raise ValueError("steps is empty: call backward_steps(...) first")
    if not isinstance(current, int) or isinstance(current, bool) or not 0 <= current < len(steps):
        raise ValueError(f"current must be a step index from 0 to {len(steps) - 1}, got {current!r}")


def _shape(shape: tuple[int, ...]) -> str:
    return str(list(shape)) if shape else "scalar"


def graph_svg(steps: Sequence[Step], current: int) -> str:
    """The MLP's graph as SVG: forward edges left to right, nodes done so far in light orange, the current one in orange.

    Each visited node shows its gradient's shape and norm under its name.
    """
    _check_index(steps, current)
    done = {s.name: s for s in steps[:current + 1]}
    now = steps[current].name
    dx, dy, x0, y0, bw, bh = 118, 112, 58, 42, 92, 54

    def centre(node: Node) -> tuple[float, float]:
        return x0 + node.col * dx, y0 + node.row * dy

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * x0 + 6 * dx}" height="{2 * y0 + dy + 20}" '
             'font-family="sans-serif" font-size="12">',
             '<defs><marker id="arr" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
             '<path d="M0,0 L8,4 L0,8 z" fill="#888"/></marker></defs>']
    for node in NODES:
        for src in node.inputs:
            (x1, y1), (x2, y2) = centre(BY_NAME[src]), centre(node)
            if y1 == y2:
                x1, x2 = x1 + bw / 2, x2 - bw / 2
            else:
                y1, y2 = y1 + bh / 2, y2 - bh / 2
            hot = node.name in done and src in done
            colour = "#e07b00" if hot else "#888"
            parts.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="{colour}" '
                         f'stroke-width="{2.5 if hot else 1.2}" marker-end="url(#arr)"/>')
    for node in NODES:
        cx, cy = centre(node)
        if node.name == now:
            fill, stroke, width = "#ff9f1c", "#b35900", 3
        elif node.name in done:
            fill, stroke, width = "#ffe0b2", "#e07b00", 1.5
        elif not node.has_grad:
            fill, stroke, width = "#eeeeee", "#aaaaaa", 1
        else:
            fill, stroke, width = "#ffffff", "#555555", 1
        parts.append(f'<rect x="{cx - bw / 2:.0f}" y="{cy - bh / 2:.0f}" width="{bw}" height="{bh}" rx="8" '
                     f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"><title>{html.escape(node.op)}</title>'
                     f'</rect>')
        parts.append(f'<text x="{cx:.0f}" y="{cy - 8:.0f}" text-anchor="middle" font-weight="bold">'
                     f'{html.escape(node.name)}</text>')
        if node.name in done:
            s = done[node.name]
            parts.append(f'<text x="{cx:.0f}" y="{cy + 7:.0f}" text-anchor="middle">{_shape(s.shape)}</text>')
            parts.append(f'<text x="{cx:.0f}" y="{cy + 21:.0f}" text-anchor="middle">|g| = {s.norm:.3g}</text>')
        elif not node.has_grad:
            parts.append(f'<text x="{cx:.0f}" y="{cy + 12:.0f}" text-anchor="middle" fill="#777">no grad</text>')
    parts.append("</svg>")
    return "".join(parts)


def step_html(steps: Sequence[Step], current: int) -> str:
    """A table of the steps taken so far: node, formula, gradient shape and norm; the current row in bold."""
    _check_index(steps, current)
    rows = []
    for i, s in enumerate(steps[:current + 1]):
        style = " style='background:#ffe0b2; font-weight:bold'" if i == current else ""
        rows.append(f"<tr{style}><td>{i + 1}</td><td>{html.escape(s.name)}</td><td><code>{html.escape(s.formula)}"
                    f"</code></td><td>{_shape(s.shape)}</td><td style='text-align:right'>{s.norm:.4g}</td>"
                    f"<td>{html.escape(s.meaning)}</td></tr>")
    return ("<table><tr><th>step</th><th>node</th><th>its gradient</th><th>shape</th><th>norm</th>"
            f"<th>what it says</th></tr>{''.join(rows)}</table>")


def backward_stepper(x, targets, W1, b1, W2, b2) -> w.VBox:
    """Step / Reset buttons and a slider over the backward pass of the MLP; the graph and the table follow."""
    steps = backward_steps(x, targets, W1, b1, W2, b2)
    slider = w.IntSlider(value=0, min=0, max=len(steps) - 1, description="step", continuous_update=True)
    step_button = w.Button(description="Step", button_style="warning", icon="step-backward")
    reset_button = w.Button(description="Reset", icon="undo")
    picture = w.HTML(graph_svg(steps, 0))
    table = w.HTML(step_html(steps, 0))

    def redraw(_=None):
        picture.value = graph_svg(steps, slider.value)
        table.value = step_html(steps, slider.value)

    def step(_):
        slider.value = min(slider.value + 1, slider.max)

    def reset(_):
        slider.value = 0

    slider.observe(redraw, names="value")
    step_button.on_click(step)
    reset_button.on_click(reset)
    return w.VBox([w.HBox([step_button, reset_button, slider]), picture, table])


# --- what a gradient means ---------------------------------------------------------------


def nudge_losses(loss_fn: Callable[[torch.Tensor], torch.Tensor], tensor: torch.Tensor, index: tuple[int, ...],
                 deltas: Sequence[float]) -> list[float]:
    """``loss_fn`` evaluated with ``tensor[index]`` moved by each of ``deltas`` (the tensor itself is not changed)."""
    if len(index) != tensor.dim() or any(not -s <= i < s for i, s in zip(index, tensor.shape)):
        raise ValueError(f"index {tuple(index)} is not an entry of a tensor of shape {list(tensor.shape)}")
    base = tensor.detach().clone()
    out = []
    with torch.no_grad():
        for d in deltas:
            moved = base.clone()
            moved[tuple(index)] += d
            out.append(float(loss_fn(moved)))
    return out


def plot_nudge(loss_fn, tensor, index, grad_value: float, name: str = "W2", span: float = 0.5, n: int = 41):
    """The loss as one weight is moved, with the tangent line whose slope is the gradient."""
    deltas = torch.linspace(-span, span, n).tolist()
    losses = nudge_losses(loss_fn, tensor, index, deltas)
    base = losses[n // 2]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(deltas, losses, label="loss with the weight moved by δ")
    ax.plot(deltas, [base + grad_value * d for d in deltas], "--", label=f"tangent: slope = gradient = {grad_value:.4f}")
    ax.axvline(0, color="#999", lw=0.8)
    ax.set_xlabel(f"δ added to {name}{list(index)}")
    ax.set_ylabel("mean cross-entropy")
    ax.legend()
    fig.tight_layout()
    return fig


# --- finite differences --------------------------------------------------------------------


def difference_errors(eps_values: Sequence[float], dtype: torch.dtype = torch.float64, central: bool = True,
                      x0: float = 1.0) -> list[float]:
    """Relative error of a finite-difference derivative of ``exp`` at ``x0`` (exact answer ``exp(x0)``), per step.

    The point, the step and the function are all evaluated in ``dtype``, as a careless
    implementation would; ``central`` picks (f(x+e) - f(x-e)) / 2e over (f(x+e) - f(x)) / e.
    """
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    exact = math.exp(x0)
    out = []
    for eps in eps_values:
        if not eps > 0:
            raise ValueError(f"every step must be positive, got {eps}")
        x = torch.tensor(x0, dtype=dtype)
        e = torch.tensor(eps, dtype=dtype)
        if central:
            approx = (torch.exp(x + e) - torch.exp(x - e)) / (2 * e)
        else:
            approx = (torch.exp(x + e) - torch.exp(x)) / e
        out.append(abs(float(approx) - exact) / exact)
    return out


def plot_difference_errors():
    """Log-log: relative error against the step, forward and central differences, float32 and float64."""
    eps = torch.logspace(-10, -0.5, 60, dtype=torch.float64).tolist()
    fig, ax = plt.subplots(figsize=(6.8, 3.8))
    styles = {(torch.float64, True): ("central, float64", "C0", "-"), (torch.float64, False): ("forward, float64", "C0", "--"),
              (torch.float32, True): ("central, float32", "C3", "-"), (torch.float32, False): ("forward, float32", "C3", "--")}
    for (dtype, central), (label, colour, ls) in styles.items():
        errs = [max(e, 1e-17) for e in difference_errors(eps, dtype, central)]
        ax.loglog(eps, errs, ls, color=colour, label=label)
    ax.axvline(1e-3, color="#999", lw=0.8)
    ax.text(1.1e-3, 1e-15, "eps = 1e-3", color="#666")
    ax.set_xlabel("step eps")
    ax.set_ylabel("relative error of d/dx exp(x) at x = 1")
    ax.set_ylim(1e-16, 10)
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    return fig


# --- step by step against PyTorch --------------------------------------------------------------

#: The gradients a backward pass of the MLP computes, in the order it computes them: the name used in
#: the lesson (and in a ``trace`` dict), what it is, and the mistake a wrong one usually points at.
TRACE_STEPS: tuple[tuple[str, str, str], ...] = (
    ("d_out", "at the logits: dL/d(out)",
     "(softmax(out) - one_hot(y)) / B: the 1/B of the mean, and 1 subtracted at each row's own target"),
    ("dW2", "second-layer weights", "h.T @ d_out, with h taken after the ReLU"),
    ("db2", "second-layer bias", "d_out.sum(dim=0): b2 was added to every row"),
    ("d_h", "at the hidden activations h (after ReLU)", "d_out @ W2.T: [B, C] @ [C, H]"),
    ("d_hpre", "before the ReLU: dL/d(h_pre)", "d_h * (h_pre > 0): blocked where the unit was off (> 0, not >= 0)"),
    ("dW1", "first-layer weights", "x.T @ d_hpre (the gradient before the ReLU, not d_h)"),
    ("db1", "first-layer bias", "d_hpre.sum(dim=0)"),
)


@dataclass(frozen=True)
class StepCheck:
    """One intermediate gradient compared with PyTorch's: ``verdict`` is exact, close, wrong or missing."""
    name: str
    what: str
    verdict: str
    difference: float | None = None
    where: str = ""
    detail: str = ""
    hint: str = ""


def torch_intermediates(x, targets, W1, b1, W2, b2) -> dict[str, torch.Tensor]:
    """Every gradient of :data:`TRACE_STEPS`, by torch.autograd (``retain_grad()`` on the non-leaves).

    Copies of the inputs are used: they are not touched and gain no ``.grad``.
    """
    _check_mlp_inputs(x, targets, W1, b1, W2, b2)
    leaves = [t.detach().clone().requires_grad_(True) for t in (W1, b1, W2, b2)]
    h_pre = x.detach() @ leaves[0] + leaves[1]
    h = F.relu(h_pre)
    out = h @ leaves[2] + leaves[3]
    for t in (h_pre, h, out):
        t.retain_grad()
    F.cross_entropy(out, targets).backward()
    return {"d_out": out.grad, "dW2": leaves[2].grad, "db2": leaves[3].grad, "d_h": h.grad, "d_hpre": h_pre.grad,
            "dW1": leaves[0].grad, "db1": leaves[1].grad}


def _index_of(flat: int, shape) -> str:
    idx = []
    for size in reversed(list(shape)):
        idx.append(flat % size)
        flat //= size
    return "(" + ", ".join(str(i) for i in reversed(idx)) + ")"


def compare_intermediates(mine: dict, expected: dict[str, torch.Tensor], atol: float = 1e-5) -> list[StepCheck]:
    """Each gradient of ``mine`` against ``expected`` (from :func:`torch_intermediates`), in backward order.

    exact: the same values bit for bit; close: largest difference within ``atol`` (float32 sums in another
    order differ by about 1e-7); wrong: beyond it, or the wrong shape, or not a tensor; missing: not in
    ``mine`` (or None).
    """
    out = []
    for name, what, hint in TRACE_STEPS:
        want = expected[name]
        got = mine.get(name) if isinstance(mine, dict) else None
        if got is None:
            out.append(StepCheck(name, what, "missing"))
            continue
        if not isinstance(got, torch.Tensor):
            out.append(StepCheck(name, what, "wrong", detail=f"not a tensor but {type(got).__name__}", hint=hint))
            continue
        if tuple(got.shape) != tuple(want.shape):
            out.append(StepCheck(name, what, "wrong", detail=f"shape {list(got.shape)}, expected {list(want.shape)}",
                                 hint=hint))
            continue
        a, e = got.detach().double().cpu(), want.detach().double().cpu()
        diff = torch.nan_to_num((a - e).abs(), nan=math.inf)
        flat = int(diff.reshape(-1).argmax()) if diff.numel() else 0
        largest = float(diff.reshape(-1)[flat]) if diff.numel() else 0.0
        where = _index_of(flat, a.shape) if a.dim() else "()"
        if torch.equal(a, e):
            out.append(StepCheck(name, what, "exact", 0.0))
        elif largest <= atol:
            out.append(StepCheck(name, what, "close", largest, where))
        else:
            out.append(StepCheck(name, what, "wrong", largest, where,
                                 f"got {float(a.reshape(-1)[flat]):.6g}, expected {float(e.reshape(-1)[flat]):.6g}",
                                 hint))
    return out


def format_report(report: Sequence[StepCheck], atol: float = 1e-5) -> str:
    """One line per gradient, in the order the backward pass computes them; the first wrong one is marked."""
    lines, first = [], True
    for c in report:
        head = f"  {c.name:7s} {c.what:40s} "
        if c.verdict == "exact":
            lines.append(head + "exact")
        elif c.verdict == "close":
            lines.append(head + f"close (largest difference {c.difference:.1e}, within {atol:g})")
        elif c.verdict == "missing":
            lines.append(head + "not recorded")
        else:
            text = f"WRONG ({c.detail}" + (f"; largest difference {c.difference:.3g} at {c.where}" if c.where else "")
            text += ")"
            if first:
                text += f"  <- the first wrong step. Likely: {c.hint}"
                first = False
            lines.append(head + text)
    return "\n".join(lines)


def first_wrong(report: Sequence[StepCheck]) -> str | None:
    """The name of the first gradient the backward pass got wrong, or None."""
    return next((c.name for c in report if c.verdict == "wrong"), None)


def step_report(mine: dict, x, targets, W1, b1, W2, b2, atol: float = 1e-5) -> str:
    """:func:`format_report` of ``mine`` against PyTorch's gradients for this batch and these parameters."""
    return format_report(compare_intermediates(mine, torch_intermediates(x, targets, W1, b1, W2, b2), atol), atol)
