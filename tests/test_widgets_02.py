"""Lesson 02: the shape tracer and the pictures (grader.widgets.forward), and the lesson's own
test cells run in-process against correct and mistaken implementations."""

from __future__ import annotations

from pathlib import Path

import jupytext
import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from grader import reference  # noqa: E402
from grader.widgets import forward as fw  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- the shape tracer --------------------------------------------------------------------

def test_trace_shapes_for_a_batch_of_64():
    assert fw.trace_shapes(64) == [("x", (64, 784)), ("x @ W1", (64, 128)), ("+ b1", (64, 128)),
                                   ("relu", (64, 128)), ("@ W2", (64, 10)), ("+ b2", (64, 10)),
                                   ("argmax", (64,))]


def test_only_the_first_dimension_follows_the_batch_size():
    one, many = fw.trace_shapes(1), fw.trace_shapes(300)
    assert [s for s, _ in one] == [s for s, _ in many] == list(fw.STAGES)
    for (_, a), (_, b) in zip(one, many):
        assert a[0] == 1 and b[0] == 300
        assert a[1:] == b[1:]


def test_hidden_width_shows_only_in_the_middle_stages():
    shapes = dict(fw.trace_shapes(5, hidden=7))
    assert shapes["x @ W1"] == shapes["+ b1"] == shapes["relu"] == (5, 7)
    assert shapes["x"] == (5, 784) and shapes["+ b2"] == (5, 10) and shapes["argmax"] == (5,)


@pytest.mark.parametrize("batch, hidden", [(1, 128), (3, 7), (64, 1)])
def test_trace_agrees_with_pytorch_forward(batch, hidden):
    params = [p.detach() for p in reference.init_params(seed=0, hidden=hidden)]
    logits = reference.forward(torch.zeros(batch, 784), *params)
    shapes = dict(fw.trace_shapes(batch, hidden))
    assert shapes["+ b2"] == tuple(logits.shape)
    assert shapes["argmax"] == tuple(reference.predict(logits).shape)


@pytest.mark.parametrize("bad, error, match", [(0, ValueError, "batch_size must be at least 1"),
                                               (-3, ValueError, "at least 1"),
                                               (2.5, TypeError, "batch_size must be a whole number"),
                                               (True, TypeError, "whole number"),
                                               ("64", TypeError, "whole number")])
def test_trace_shapes_rejects_a_bad_batch_size(bad, error, match):
    with pytest.raises(error, match=match):
        fw.trace_shapes(bad)


def test_trace_shapes_rejects_a_bad_hidden_width():
    with pytest.raises(ValueError, match="hidden must be at least 1"):
        fw.trace_shapes(4, hidden=0)


def test_stage_notes_cover_every_stage():
    notes = fw.stage_notes(32, hidden=16)
    assert list(notes) == list(fw.STAGES)
    assert "32 images" in notes["x"] and "[32, 16]" in notes["+ b1"]
    assert fw.stage_notes(1)["x"].startswith("1 image,")


def _raises(exc):
    def f(*args):
        raise exc
    return f


def test_check_forward_reports_each_situation():
    ok, message = fw.check_forward(reference.forward, 3, hidden=5)
    assert ok is True and "[3, 10]" in message
    assert fw.check_forward(None, 3)[0] is None
    ok, message = fw.check_forward(_raises(NotImplementedError()), 3)
    assert ok is None and "not written yet" in message
    ok, message = fw.check_forward(_raises(RuntimeError("mat1 and mat2")), 3)
    assert ok is False and "RuntimeError" in message and "mat1 and mat2" in message
    ok, message = fw.check_forward(lambda x, W1, b1, W2, b2: x @ W1, 4, hidden=6)
    assert ok is False and "[4, 6]" in message and "expected [4, 10]" in message
    ok, message = fw.check_forward(lambda *args: [1, 2], 2)
    assert ok is False and "list" in message
    with pytest.raises(TypeError, match="forward_fn must be a function"):
        fw.check_forward(42, 2)


def test_trace_html_shows_shapes_and_the_students_result():
    page = fw.trace_html(7, hidden=9)
    for stage in fw.STAGES:
        assert f"<code>{stage.replace('>', '&gt;')}</code>" in page
    assert "<b style='color:#b3261e'>7</b>, 9]" in page
    assert "your forward" not in page
    assert "not written yet" in fw.trace_html(7, forward_fn=_raises(NotImplementedError()))
    assert "as traced" in fw.trace_html(2, forward_fn=reference.forward)


def test_shape_tracer_updates_with_the_sliders():
    box = fw.shape_tracer(reference.forward)
    (batch, hidden), table = box.children[0].children, box.children[1]
    assert "[<b style='color:#b3261e'>64</b>, 784]" in table.value
    batch.value = 5
    assert "[<b style='color:#b3261e'>5</b>, 784]" in table.value
    assert "returned shape [5, 10]" in table.value
    hidden.value = 3
    assert "[<b style='color:#b3261e'>5</b>, 3]" in table.value


# --- why ReLU ----------------------------------------------------------------------------

def test_random_curves_are_straight_without_relu_and_bent_with_it():
    xs, lin, bent = fw.random_curves(n_nets=4, hidden=16, seed=0)
    assert lin.shape == bent.shape == (4, len(xs))
    slopes_lin = lin.diff(dim=1) / xs.diff()
    slopes_bent = bent.diff(dim=1) / xs.diff()
    # tolerance 1e-3: float32 rounding of a straight line's slope
    assert (slopes_lin.max(dim=1).values - slopes_lin.min(dim=1).values).max() < 1e-3
    assert (slopes_bent.max(dim=1).values - slopes_bent.min(dim=1).values).min() > 0.05
    again = fw.random_curves(n_nets=4, hidden=16, seed=0)
    assert torch.equal(again[2], bent)


def test_two_rings():
    X, y = fw.two_rings(400, seed=1)
    assert X.shape == (400, 2) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert int(y.sum()) == 200
    r = X.norm(dim=1)
    assert r[y == 0].mean() < 0.7 < 1.3 < r[y == 1].mean()
    assert torch.equal(fw.two_rings(400, seed=1)[0], X)
    with pytest.raises(ValueError, match="n must be at least 1"):
        fw.two_rings(0)


def test_relu_hinges_separate_what_a_linear_model_cannot():
    X, y = fw.two_rings()
    assert fw.accuracy(fw.best_linear(X, y), X, y) < 0.65
    for n in (3, 8):
        assert fw.accuracy(fw.hinge_network(n), X, y) > 0.97
    with pytest.raises(ValueError, match="n_hinges must be at least 1"):
        fw.hinge_network(0)


def test_relu_pictures():
    assert len(fw.plot_relu().axes) == 3
    fig = fw.plot_separation()
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3 and all("accuracy" in t for t in titles)


# --- MNIST pictures ----------------------------------------------------------------------

def test_show_digits():
    images = torch.rand(4, 784)
    labels = torch.tensor([1, 2, 3, 4])
    fig = fw.show_digits(images, labels, torch.tensor([1, 0, 3, 0]))
    axes = fig.axes
    assert len(axes) == 4 and "guess 1" in axes[0].get_title() and "label 2" in axes[1].get_title()
    assert axes[0].title.get_color() != axes[1].title.get_color()      # right vs wrong
    assert len(fw.show_digits(images[:1], labels[:1]).axes) == 1
    with pytest.raises(ValueError, match="as many labels"):
        fw.show_digits(images, labels[:3])
    with pytest.raises(ValueError, match="3 predictions"):
        fw.show_digits(images, labels, labels[:3])


def test_show_weights():
    W1 = torch.randn(784, 16)
    assert len(fw.show_weights(W1, units=range(5)).axes) == 5
    with pytest.raises(ValueError, match=r"W1 must be \[784, hidden\]"):
        fw.show_weights(torch.randn(16, 784))
    with pytest.raises(ValueError, match="units must be indices"):
        fw.show_weights(W1, units=[3, 16])


def test_prediction_counts():
    assert fw.prediction_counts(torch.tensor([0, 3, 3, 9])) == [1, 0, 0, 2, 0, 0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="integer tensor"):
        fw.prediction_counts(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="classes 0..9"):
        fw.prediction_counts(torch.tensor([10]))
    assert len(fw.plot_prediction_counts(torch.tensor([1, 1]), torch.tensor([1, 2])).axes) == 1


# --- the lesson's own test cells, in-process ---------------------------------------------

def _graded_cells():
    nb = jupytext.read(ROOT / "notebooks" / "02_forward.py")
    return [c for c in nb.cells if c.cell_type == "code" and "nbgrader" in c.metadata]


CELLS = _graded_cells()
TESTS = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
         for c in CELLS if c.metadata["nbgrader"].get("grade")}


def _lost(overrides: dict[str, str]) -> set[str]:
    """Run the setup, solution and test cells with some solutions replaced; the test cells that fail."""
    namespace: dict = {"__name__": "__main__"}
    failed = set()
    for cell in CELLS:
        meta = cell.metadata["nbgrader"]
        source = overrides.get(meta["grade_id"], cell.source)
        if meta.get("grade"):
            try:
                exec(source, namespace)
            except Exception:
                failed.add(meta["grade_id"])
        else:
            exec(source, namespace)
    return failed


def test_points_total():
    assert sum(TESTS.values()) == 16


STUBS = {gid: "def {0}(*args):\n    raise NotImplementedError()".format(gid)
         for gid in ("linear", "relu", "forward", "predict")}
FORWARD_CELLS = {"test_forward_shape", "test_forward_values", "test_forward_relu_between"}


@pytest.mark.parametrize("name, overrides, lost", [
    ("the solution", {}, set()),
    ("linear by broadcasting and sum", {"linear": "def linear(x, W, b):\n    return (x[:, :, None] * W).sum(1) + b"},
     set()),
    ("linear with addmm", {"linear": "def linear(x, W, b):\n    return torch.addmm(b, x, W)"}, set()),
    ("relu with where", {"relu": "def relu(x):\n    return torch.where(x > 0, x, 0.0)"}, set()),
    ("relu with a mask", {"relu": "def relu(x):\n    return x * (x > 0)"}, set()),
    ("predict with max", {"predict": "def predict(logits):\n    return logits.max(dim=1).indices"}, set()),
    ("the untouched stubs", STUBS, set(TESTS)),
    ("linear calling F.linear",
     {"linear": "import torch.nn.functional as F\ndef linear(x, W, b):\n    return F.linear(x, W.T, b)"},
     {"test_linear_shape", "test_linear_values"} | FORWARD_CELLS),
    ("linear without bias", {"linear": "def linear(x, W, b):\n    return x @ W"},
     {"test_linear_values", "test_forward_values", "test_forward_relu_between"}),
    ("linear changing b", {"linear": "def linear(x, W, b):\n    out = x @ W + b\n    b.mul_(2)\n    return out"},
     {"test_linear_values", "test_forward_values", "test_forward_relu_between"}),
    ("relu calling torch.relu", {"relu": "def relu(x):\n    return torch.relu(x)"},
     {"test_relu_values", "test_relu_input_unchanged"} | FORWARD_CELLS),
    ("relu in place", {"relu": "def relu(x):\n    x[x < 0] = 0\n    return x"}, {"test_relu_input_unchanged"}),
    ("forward without ReLU", {"forward": "def forward(x, W1, b1, W2, b2):\n"
                                         "    return linear(linear(x, W1, b1), W2, b2)"},
     {"test_forward_values", "test_forward_relu_between"}),
    ("forward with ReLU on the logits too", {"forward": "def forward(x, W1, b1, W2, b2):\n"
                                                        "    return relu(linear(relu(linear(x, W1, b1)), W2, b2))"},
     {"test_forward_values", "test_forward_relu_between"}),
    ("forward calling the reference", {"forward": "def forward(*args):\n    return reference.forward(*args)"},
     FORWARD_CELLS),
    ("predict returning floats", {"predict": "def predict(logits):\n    return logits.argmax(dim=1).float()"},
     {"test_predict_dtype"}),
    ("predict with keepdim", {"predict": "def predict(logits):\n    return logits.argmax(dim=1, keepdim=True)"},
     {"test_predict", "test_predict_dtype"}),
    ("predict taking the last of tied maxima",
     {"predict": "def predict(logits):\n    return logits.shape[1] - 1 - logits.flip(1).argmax(dim=1)"},
     {"test_predict"}),
])
def test_lesson_tests_grade_right(name, overrides, lost):
    assert _lost(overrides) == lost, name
