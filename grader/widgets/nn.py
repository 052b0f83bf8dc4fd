"""Lesson 10: what torch.nn does underneath, side by side with the student's own modules.

* :func:`trace_ops` records the ATen operations a call performs (what a ``torch.nn``
  component *really* computes, read off the dispatcher rather than written by hand);
* :func:`inspect_component` runs one ``torch.nn`` / ``torch.optim`` component and the
  student's counterpart on the same seeded input and compares them; :func:`inspector`
  is its view;
* :class:`EquivalenceTable` collects the checks a notebook actually ran into the lesson's
  table of equivalences;
* :func:`plot_dropout_means` and :func:`plot_parity` draw the lesson's pictures.

The student's classes are always passed in (``mine={"Linear": Linear, ...}``): nothing
here holds an implementation of an exercise.
"""

from __future__ import annotations

import ast
import html
import inspect
import math
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import ipywidgets as w
import matplotlib.pyplot as plt
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

COMPONENTS = ("Linear", "ReLU", "Dropout", "CrossEntropyLoss", "SGD step", "Adam step")

#: what each ATen operation does, in words (shown next to the traced calls)
GLOSSARY = {
    "t": "transpose a matrix (a view: no copy)",
    "permute": "reorder dimensions (a view: no copy)",
    "transpose": "swap two dimensions (a view: no copy)",
    "addmm": "bias + x @ W^T in one fused call",
    "mm": "matrix product",
    "matmul": "matrix product",
    "add": "elementwise +",
    "add_": "elementwise += (in place)",
    "sub": "elementwise -",
    "sub_": "elementwise -= (in place)",
    "mul": "elementwise *",
    "mul_": "elementwise *= (in place)",
    "div": "elementwise /",
    "div_": "elementwise /= (in place)",
    "relu": "max(x, 0)",
    "clamp": "clip to [min, max]",
    "clamp_min": "max(x, min)",
    "maximum": "elementwise max",
    "where": "pick from two tensors by a mask",
    "empty_like": "allocate a tensor of the same shape (values unset)",
    "zeros_like": "a tensor of zeros of the same shape",
    "ones_like": "a tensor of ones of the same shape",
    "bernoulli_": "fill with 1 (with the keep probability) or else 0, in place",
    "rand_like": "uniform random numbers in [0, 1)",
    "uniform_": "fill with uniform random numbers, in place",
    "gt": "elementwise > (a mask)",
    "ge": "elementwise >= (a mask)",
    "lt": "elementwise < (a mask)",
    "_to_copy": "convert dtype (e.g. bool mask -> float)",
    "_log_softmax": "log of softmax along a dimension (stable, fused)",
    "nll_loss_forward": "-mean of the picked log-probabilities",
    "max": "largest value along a dimension",
    "amax": "largest value along a dimension",
    "exp": "elementwise e^x",
    "log": "elementwise natural log",
    "sum": "sum along dimensions",
    "mean": "average",
    "neg": "elementwise -x",
    "index": "advanced indexing (pick one entry per row)",
    "arange": "0, 1, ..., n-1",
    "sqrt": "elementwise square root",
    "lerp_": "m += (g - m) * w, i.e. m = (1 - w) m + w g, in place",
    "addcmul_": "v += value * a * b, in place",
    "addcdiv_": "p += value * a / b, in place",
    "clone": "copy",
    "copy_": "copy values into an existing tensor",
    "detach": "the same values without autograd history",
    "_local_scalar_dense": "read a one-element tensor as a Python number (.item())",
    "zero_": "set to 0 in place",
    "pow": "elementwise power",
    "rsub": "reversed subtraction (c - x)",
    "reciprocal": "1 / x",
    "lift_fresh": "wrap a constant",
    "view": "reshape (a view: no copy)",
    "unsqueeze": "add a dimension of size 1 (a view)",
    "squeeze": "drop dimensions of size 1 (a view)",
    "expand": "broadcast (a view)",
    "gather": "pick one entry per row by index",
    "masked_fill": "replace values where a mask is true",
    "select": "take one index along a dimension (a view)",
    "slice": "take a range along a dimension (a view)",
    "alias": "another name for the same tensor",
}

_SKIP_PREFIXES = ("profiler.",)
_SKIP_OPS = {"lift_fresh"}


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        shape = "[" + ", ".join(str(s) for s in value.shape) + "]"
        return shape if value.dtype == torch.float32 else f"{shape} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_describe(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    return repr(value)


def op_name(func) -> str:
    """``aten.addmm`` for the overload ``aten.addmm.default`` (the namespace and the packet name)."""
    packet = getattr(func, "overloadpacket", None)
    name = getattr(packet, "__name__", None) or str(func)
    namespace = getattr(func, "namespace", None) or str(func).split(".")[0]
    return f"{namespace}.{name}"


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, str, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = op_name(func)
        short = name.split(".", 1)[-1]
        if not name.startswith(_SKIP_PREFIXES) and short not in _SKIP_OPS:
            shown = [_describe(a) for a in args]
            shown += [f"{k}={_describe(v)}" for k, v in (kwargs or {}).items() if v is not None]
            self.calls.append((name, ", ".join(shown), _describe(out)))
        return out


def trace_ops(fn: Callable, *args, **kwargs) -> tuple[Any, list[str]]:
    """Call ``fn(*args, **kwargs)`` and list the ATen operations it performed, in order.

    Returns ``(result, lines)``; each line reads ``aten.addmm([4], [3, 6], [6, 4]) -> [3, 4]``
    (shapes of tensor arguments, values of the others), followed by what the operation
    does when it is in :data:`GLOSSARY`. Dispatcher bookkeeping (profiler markers) is left out.
    """
    recorder = _Recorder()
    with recorder:
        result = fn(*args, **kwargs)
    lines = []
    for name, shown, out in recorder.calls:
        meaning = GLOSSARY.get(name.split(".", 1)[-1])
        line = f"{name}({shown}) -> {out}"
        lines.append(f"{line}    # {meaning}" if meaning else line)
    return result, lines


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference of two tensors of the same shape (``inf`` if the shapes differ or a NaN appears)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return math.inf
    if a.numel() == 0:
        return 0.0
    diff = (a.detach().double().cpu() - b.detach().double().cpu()).abs()
    return float(torch.nan_to_num(diff, nan=math.inf).max())


def _source(obj) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj)) if obj is not None else "(no source)"
    except (OSError, TypeError):
        return "(source not available)"


def _strip_docstring(source: str) -> str:
    """The source of a function without its docstring (a long contract hides the few lines that compute)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.splitlines()
    fn = tree.body[0] if tree.body else None
    if (isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and len(fn.body) > 1
            and isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant)
            and isinstance(fn.body[0].value.value, str)):
        del lines[fn.body[0].lineno - 1:fn.body[0].end_lineno]
    return "\n".join(lines)


def _need(mine: Mapping[str, Any], key: str):
    if key not in mine:
        raise KeyError(f"inspect_component needs your {key} class: pass mine={{'{key}': {key}, ...}}")
    return mine[key]


def _grads(seed: int, step: int, shape) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1000 + step)
    return torch.randn(*shape, generator=g)


def _optimizer_case(kind: str, seed: int, mine: Mapping[str, Any], steps: int = 3):
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(2, 3, generator=g)
    hyper = {"lr": 0.1, "momentum": 0.9} if kind == "SGD" else {"lr": 0.01}
    torch_cls = torch.optim.SGD if kind == "SGD" else torch.optim.Adam

    def run(cls):
        p = start.clone().requires_grad_(True)
        opt = cls([p], **hyper)
        ops = []
        for step in range(1, steps + 1):
            p.grad = _grads(seed, step, p.shape)
            if step == steps:
                _, ops = trace_ops(opt.step)
            else:
                opt.step()
        return p.detach().clone(), ops

    inputs = (f"p = randn(2, 3); {steps} steps of {kind}({', '.join(f'{k}={v}' for k, v in hyper.items())}) "
              f"with the same seeded gradients; the trace shows step {steps}")
    return run(torch_cls), (lambda: run(_need(mine, kind))), inputs, getattr(_need(mine, kind), "step", None)


def inspect_component(name: str, seed: int = 0, mine: Mapping[str, Any] | None = None) -> dict:
    """Run one ``torch.nn`` component and the student's own version on the same seeded input.

    Args:
        name: one of :data:`COMPONENTS`.
        seed: seeds the inputs, the weights and the random draws.
        mine: the student's classes by name (``"Linear"``, ``"ReLU"``, ``"Dropout"``,
            ``"CrossEntropyLoss"``, ``"SGD"``, ``"Adam"``). A module class must accept the
            constructor arguments of its ``torch.nn`` namesake and have ``load_state_dict``
            (for Linear); an optimizer takes ``(params, lr, ...)`` and has ``step()``.

    Returns:
        dict with ``inputs`` (what was fed, in words), ``ops_text`` (the ATen operations
        the torch component performed, one per line), ``mine_ops_text`` and ``mine_source``
        (the same for the student's version, and its code), ``torch_out`` and ``mine_out``
        (tensors), ``max_diff`` (largest absolute difference of the two outputs; ``nan``
        when the student's version raised), ``notes`` (extra measurements) and
        ``mine_error`` (``None``, or the exception the student's version raised, as text).
        For Dropout, whose random masks cannot coincide, ``max_diff`` compares what must
        agree: the value kept entries are scaled to, and the output in eval mode.
    """
    if name not in COMPONENTS:
        raise ValueError(f"unknown component {name!r}; choose one of {list(COMPONENTS)}")
    mine = mine or {}
    g = torch.Generator().manual_seed(seed)
    notes = ""

    if name == "Linear":
        x = torch.randn(3, 6, generator=g)
        torch.manual_seed(seed)
        theirs = nn.Linear(6, 4)
        torch_out, ops = trace_ops(theirs, x)
        inputs = "x = randn(3, 6); nn.Linear(6, 4) seeded; your Linear(6, 4) loads its state_dict()"

        def run_mine():
            layer = _need(mine, "Linear")(6, 4)
            layer.load_state_dict(theirs.state_dict())
            return trace_ops(layer, x)
        source_of = getattr(_need(mine, "Linear"), "forward", None)

    elif name == "ReLU":
        x = torch.randn(3, 6, generator=g)
        torch_out, ops = trace_ops(nn.ReLU(), x)
        inputs = "x = randn(3, 6)"

        def run_mine():
            return trace_ops(_need(mine, "ReLU")(), x)
        source_of = getattr(_need(mine, "ReLU"), "forward", None)

    elif name == "Dropout":
        p = 0.5
        x = torch.rand(4, 8, generator=g) + 0.5            # no zeros of its own: every 0 out is a dropped entry
        torch.manual_seed(seed + 7919)                     # masks independent of the draws that made x
        theirs = nn.Dropout(p)
        torch_out, ops = trace_ops(theirs, x)
        torch_eval = theirs.eval()(x)
        inputs = f"x = 0.5 + rand(4, 8) (no zeros); Dropout(p={p}) in training mode, then in eval mode"

        def run_mine():
            layer = _need(mine, "Dropout")(p)
            torch.manual_seed(seed + 7919)
            out, mine_ops = trace_ops(layer, x)
            layer.eval()
            return (out, layer(x)), mine_ops
        source_of = getattr(_need(mine, "Dropout"), "forward", None)

    elif name == "CrossEntropyLoss":
        logits = torch.randn(4, 5, generator=g) * 3
        targets = torch.randint(0, 5, (4,), generator=g)
        torch_out, ops = trace_ops(nn.CrossEntropyLoss(), logits, targets)
        inputs = f"logits = 3 * randn(4, 5), targets = {targets.tolist()}"

        def run_mine():
            return trace_ops(_need(mine, "CrossEntropyLoss")(), logits, targets)
        source_of = getattr(_need(mine, "CrossEntropyLoss"), "forward", None)

    else:
        kind = name.split()[0]
        (torch_out, ops), run_mine, inputs, source_of = _optimizer_case(kind, seed, mine)

    result = {"name": name, "inputs": inputs, "ops_text": "\n".join(ops), "torch_out": torch_out.detach(),
              "mine_source": _strip_docstring(_source(source_of)), "mine_ops_text": "", "mine_out": None,
              "max_diff": math.nan, "notes": notes, "mine_error": None}
    try:
        mine_out, mine_ops = run_mine()
    except Exception as err:                     # the student's code: report, never crash the widget
        result["mine_error"] = f"{type(err).__name__}: {err}"
        return result
    result["mine_ops_text"] = "\n".join(mine_ops)

    if name == "Dropout":
        mine_train, mine_eval = mine_out
        result["mine_out"] = mine_train.detach() if isinstance(mine_train, torch.Tensor) else mine_train
        if not isinstance(mine_train, torch.Tensor) or mine_train.shape != x.shape:
            result["mine_error"] = f"your Dropout returned {type(mine_train).__name__}, not a tensor shaped like x"
            return result
        scale = 1.0 / (1.0 - p)
        kept_t, kept_m = torch_out != 0, mine_train != 0
        err_scale = float(((mine_train[kept_m] / x[kept_m]) - scale).abs().max()) if kept_m.any() else 0.0
        result["max_diff"] = max(err_scale, max_diff(mine_eval, torch_eval))
        result["notes"] = (f"fraction zeroed: torch {kept_t.logical_not().float().mean():.3f}, yours "
                           f"{kept_m.logical_not().float().mean():.3f} (both should be near p = {p}; the masks "
                           f"themselves differ). Kept entries are x times: torch "
                           f"{float((torch_out[kept_t] / x[kept_t]).mean()) if kept_t.any() else float('nan'):.6g}, yours "
                           f"{float((mine_train[kept_m] / x[kept_m]).mean()) if kept_m.any() else float('nan'):.6g} "
                           f"(1 / (1 - p) = {scale:g}). In eval mode the largest difference is "
                           f"{max_diff(mine_eval, torch_eval):.3g}.")
    else:
        result["mine_out"] = mine_out.detach() if isinstance(mine_out, torch.Tensor) else mine_out
        result["max_diff"] = max_diff(result["mine_out"], result["torch_out"])
    return result


def verdict(diff: float, tol: float, noise: bool = False) -> str:
    """The table's word for a measured difference: identical, same to rounding (or, for a comparison
    of random draws, ``noise=True``, same within sampling noise), or different."""
    if diff is None or (isinstance(diff, float) and math.isnan(diff)) or diff > tol:
        return "DIFFERENT"
    if diff == 0:
        return "identical"
    return "same within sampling noise" if noise else "same to rounding"


def inspector_html(result: dict) -> str:
    """Two columns (what torch runs, what yours runs) and the comparison, as HTML."""
    esc = html.escape
    name = esc(result["name"])
    if result["mine_error"]:
        yours = (f"<pre style='color:#b3261e; white-space:pre-wrap'>your version raised:\n"
                 f"{esc(result['mine_error'])}</pre>")
        compare = "<p>No comparison until your version runs.</p>"
    else:
        yours = (f"<pre style='font-size:11px'>{esc(result['mine_source'])}</pre>"
                 f"<b>ATen operations it performed</b><pre style='font-size:11px'>{esc(result['mine_ops_text'])}</pre>")
        diff = result["max_diff"]
        word = verdict(diff, 1e-6)
        colour = "#1b7f3b" if word != "DIFFERENT" else "#b3261e"
        compare = (f"<p><b>largest difference:</b> {diff:.3g} &rarr; "
                   f"<span style='color:{colour}'><b>{word}</b></span> (tolerance 1e-6)</p>")
        if result["notes"]:
            compare += f"<p>{esc(result['notes'])}</p>"
        compare += (f"<details><summary>outputs</summary><pre>torch: {esc(str(result['torch_out']))}\n"
                    f"yours: {esc(str(result['mine_out']))}</pre></details>")
    cell = "vertical-align:top; padding:4px 12px; max-width:48%"
    return (f"<p><i>{esc(result['inputs'])}</i></p>"
            f"<table style='width:100%'><tr><th style='text-align:left'>torch: {name}</th>"
            f"<th style='text-align:left'>yours: {name}</th></tr>"
            f"<tr><td style='{cell}'><b>ATen operations it performed</b>"
            f"<pre style='font-size:11px'>{esc(result['ops_text'])}</pre></td>"
            f"<td style='{cell}'>{yours}</td></tr></table>{compare}")


def inspector(mine: Mapping[str, Any], component: str = "Linear", seed: int = 0) -> w.VBox:
    """Pick a component and a seed; see both versions' operations and their outputs compared."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; choose one of {list(COMPONENTS)}")
    picker = w.ToggleButtons(options=list(COMPONENTS), value=component, description="component")
    seed_box = w.IntSlider(value=seed, min=0, max=20, description="seed")
    pane = w.HTML()

    def redraw(_=None):
        pane.value = inspector_html(inspect_component(picker.value, seed_box.value, mine))

    picker.observe(redraw, names="value")
    seed_box.observe(redraw, names="value")
    redraw()
    return w.VBox([picker, seed_box, pane])


@dataclass
class Row:
    scratch: str           # the from-scratch form
    library: str           # the torch.nn / torch.optim form
    check: str             # what was run to compare them
    max_diff: float        # the largest difference measured
    tol: float             # the tolerance the verdict uses
    verdict: str


class EquivalenceTable:
    """The lesson's table of equivalences, one row per check that actually ran.

    >>> table = EquivalenceTable()
    >>> table.add("x @ W.T + b", "nn.Linear", "same state dict, 256 images", 1.2e-7)
    """

    def __init__(self):
        self.rows: list[Row] = []

    def add(self, scratch: str, library: str, check: str, diff: float, tol: float = 1e-6,
            noise: bool = False) -> Row:
        """Record one check; a row with the same from-scratch and library forms is replaced (re-running a cell).

        ``noise=True`` marks a comparison of random draws (dropout masks), where ``tol`` bounds the
        sampling noise rather than rounding.
        """
        diff = float(diff) if diff is not None else math.nan
        if tol < 0:
            raise ValueError(f"tol must be >= 0, got {tol}")
        row = Row(scratch, library, check, diff, tol, verdict(diff, tol, noise))
        self.rows = [r for r in self.rows if (r.scratch, r.library) != (scratch, library)] + [row]
        return row

    def all_pass(self) -> bool:
        return bool(self.rows) and all(r.verdict != "DIFFERENT" for r in self.rows)

    def html(self) -> str:
        esc = html.escape
        colours = {"identical": "#1b7f3b", "same to rounding": "#1b7f3b", "same within sampling noise": "#1b7f3b",
                   "DIFFERENT": "#b3261e"}
        body = "".join(
            f"<tr><td><code>{esc(r.scratch)}</code></td><td><code>{esc(r.library)}</code></td>"
            f"<td>{esc(r.check)}</td><td style='text-align:right'>{r.max_diff:.3g}</td>"
            f"<td style='color:{colours[r.verdict]}'><b>{r.verdict}</b> (tol {r.tol:g})</td></tr>"
            for r in self.rows)
        return ("<table><tr><th>from scratch</th><th>torch.nn / torch.optim</th><th>check that ran</th>"
                f"<th>largest difference</th><th>verdict</th></tr>{body}</table>")

    def _repr_html_(self) -> str:
        return self.html()


def dropout_means(dropout_fn: Callable[[torch.Tensor], torch.Tensor], p: float, features: int = 256,
                  trials: int = 400, seed: int = 0) -> tuple[float, float]:
    """(mean of a layer's summed input with all units, the same through ``dropout_fn``), averaged over trials.

    ``dropout_fn(h)`` must drop units of ``h`` with probability ``p``; the point of the
    picture is whether the sum keeps its size.
    """
    g = torch.Generator().manual_seed(seed)
    h = torch.rand(trials, features, generator=g)
    torch.manual_seed(seed + 7919)          # not ``seed``: the masks would repeat the very draws that made h
    return float(h.sum(1).mean()), float(dropout_fn(h).sum(1).mean())


def plot_dropout_means(p_values, plain: Callable, inverted: Callable):
    """Bar pairs: the next layer's input sum with every unit, with plain dropout, with inverted dropout.

    ``plain(h, p)`` and ``inverted(h, p)`` drop units of ``h`` (in training mode).
    """
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.27
    for i, p in enumerate(p_values):
        full, dropped = dropout_means(lambda h: plain(h, p), p)
        _, scaled = dropout_means(lambda h: inverted(h, p), p)
        for j, (value, colour, label) in enumerate([(full, "#888", "all units (eval)"),
                                                    (dropped, "#d95f02", "dropped, not rescaled"),
                                                    (scaled, "#1b9e77", "dropped, rescaled by 1/(1-p)")]):
            ax.bar(i + (j - 1) * width, value, width, color=colour, label=label if i == 0 else None)
    ax.set_xticks(range(len(p_values)), [f"p = {p}" for p in p_values])
    ax.set_ylabel("mean of the summed input\nto the next layer")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_parity(losses_mine, losses_torch, param_diffs):
    """Left: the two loss curves (they overlap). Right: the largest parameter difference per step (log scale)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.3))
    left.plot(losses_torch, color="#1b9e77", lw=3, alpha=0.6, label="torch.nn + torch.optim")
    left.plot(losses_mine, color="#d95f02", lw=1, label="your modules + optimizer")
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.legend()
    steps = range(1, len(param_diffs) + 1)
    right.plot(steps, [max(d, 1e-12) for d in param_diffs], color="#7570b3")
    right.set_yscale("log")
    right.set_xlabel("step")
    right.set_ylabel("largest parameter difference")
    right.axhline(1e-6, color="#888", ls="--", lw=1, label="1e-6")
    right.legend(loc="lower right")
    fig.tight_layout()
    return fig


# --- the finale: an honest experiment (fit, choose on validation, test once) ------------------

def choose_on_validation(histories: Mapping[str, list[Mapping[str, float]]]) -> tuple[str, int]:
    """(candidate, epoch) with the highest validation accuracy; ties go to the earlier epoch, then the first candidate.

    ``histories`` maps a candidate's name to one dict per epoch with at least ``epoch`` and
    ``val_acc``. Only validation numbers decide: the test set plays no part in the choice.
    """
    best = None
    for name, history in histories.items():
        for row in history:
            key = (row["val_acc"], -row["epoch"])
            if best is None or key > best[0]:
                best = (key, name, row["epoch"])
    if best is None:
        raise ValueError("no epochs to choose from")
    return best[1], best[2]


def gap_rows(histories: Mapping[str, list[Mapping[str, float]]]) -> list[dict]:
    """One row per candidate, at its last epoch and at its best validation epoch: accuracies and the gap.

    The gap is fit accuracy minus validation accuracy (in the same units as the inputs): how much
    better the model does on the images it was trained on than on images it has never seen.
    """
    rows = []
    for name, history in histories.items():
        if not history:
            continue
        last = history[-1]
        best = max(history, key=lambda r: (r["val_acc"], -r["epoch"]))
        rows.append({"candidate": name, "epochs": last["epoch"], "fit_acc": last["fit_acc"],
                     "val_acc": last["val_acc"], "gap": last["fit_acc"] - last["val_acc"],
                     "fit_loss": last["fit_loss"], "val_loss": last["val_loss"],
                     "best_epoch": best["epoch"], "best_val_acc": best["val_acc"]})
    return rows


def plot_train_val(histories: Mapping[str, list[Mapping[str, float]]]):
    """Left: loss on the fit images (solid) and on validation (dashed) per epoch, one colour per candidate.
    Right: the gap, fit accuracy minus validation accuracy, in percentage points."""
    colours = ["#d95f02", "#1b9e77", "#7570b3", "#e7298a"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.3))
    for colour, (name, history) in zip(colours, histories.items()):
        epochs = [r["epoch"] for r in history]
        left.plot(epochs, [r["fit_loss"] for r in history], color=colour, marker="o", ms=3, label=f"{name}: fit")
        left.plot(epochs, [r["val_loss"] for r in history], color=colour, ls="--", marker="o", ms=3,
                  label=f"{name}: validation")
        right.plot(epochs, [100 * (r["fit_acc"] - r["val_acc"]) for r in history], color=colour, marker="o", ms=3,
                   label=name)
    left.set_xlabel("epoch")
    left.set_ylabel("cross-entropy loss")
    left.legend(fontsize=8)
    right.axhline(0, color="#888", lw=1)
    right.set_xlabel("epoch")
    right.set_ylabel("fit accuracy - validation\naccuracy (points)")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig
