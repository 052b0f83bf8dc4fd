"""Lesson 07's plain functions: spiral data, decision grid, confusion matrix, confident mistakes, and the views."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from grader.widgets import loop  # noqa: E402


# --- spirals -----------------------------------------------------------------------------

def test_spirals_shapes_dtypes_and_balance():
    X, y = loop.spirals(n=50, seed=3)
    assert X.shape == (100, 2) and X.dtype == torch.float32
    assert y.shape == (100,) and y.dtype == torch.int64
    assert torch.equal(y, torch.cat([torch.zeros(50, dtype=torch.long), torch.ones(50, dtype=torch.long)]))


def test_spirals_are_seeded_and_leave_the_global_rng_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = loop.spirals(seed=5)
    assert torch.equal(torch.get_rng_state(), before), "spirals must draw from its own generator"
    b = loop.spirals(seed=5)
    c = loop.spirals(seed=6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_spiral_arms_without_noise_lie_on_their_curve():
    turns = 1.5
    X, y = loop.spirals(n=200, turns=turns, noise=0.0, seed=1)
    r = X.double().norm(dim=1)
    assert float(r.max()) <= 1.0 + 1e-6 and float(r.min()) > 0       # radii in (0, 1]
    # each point's angle is r * turns * 2 pi (+ pi for class 1), up to whole turns; float32 rounding 1e-4
    expected = r * turns * 2 * math.pi + y.double() * math.pi
    got = torch.atan2(X[:, 1].double(), X[:, 0].double())
    wrapped = torch.remainder(got - expected + math.pi, 2 * math.pi) - math.pi
    assert float(wrapped.abs().max()) < 1e-4
    # the two arms interleave: along the same ray the classes alternate, so no straight line separates them
    assert y[X[:, 0] > 0].unique().numel() == 2 and y[X[:, 1] > 0].unique().numel() == 2


def test_spiral_noise_has_the_requested_size():
    clean, _ = loop.spirals(n=2000, noise=0.0, seed=2)
    noisy, _ = loop.spirals(n=2000, noise=0.1, seed=2)
    # same radii and angles (same first draws), so the difference is the noise; 4000 x 2 samples: std within 5%
    assert abs(float((noisy - clean).std()) - 0.1) < 0.005


@pytest.mark.parametrize("kwargs, match", [({"n": 0}, "n"), ({"n": 2.5}, "n"), ({"turns": 0}, "turns"),
                                           ({"noise": -0.1}, "noise")])
def test_spirals_reject_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        loop.spirals(**kwargs)


# --- decision grid -----------------------------------------------------------------------

def test_decision_grid_layout_and_values():
    # logits [0, x]: class 1 is more likely exactly where x > 0, with probability sigmoid(x)
    xs, ys, probs = loop.decision_grid(lambda p: torch.stack([torch.zeros(len(p)), p[:, 0]], dim=1), lim=2.0, steps=5)
    assert torch.equal(xs, torch.linspace(-2, 2, 5)) and torch.equal(ys, torch.linspace(-2, 2, 5))
    assert probs.shape == (5, 5, 2)
    # probs[i, j] is at (xs[j], ys[i]): it varies along j only; float32 sigmoid, tolerance 1e-6
    expected = torch.sigmoid(xs).expand(5, 5)
    assert torch.allclose(probs[:, :, 1], expected, atol=1e-6)
    assert torch.allclose(probs.sum(dim=2), torch.ones(5, 5), atol=1e-6)


def test_decision_grid_rows_follow_y():
    _, ys, probs = loop.decision_grid(lambda p: torch.stack([torch.zeros(len(p)), 3 * p[:, 1]], dim=1), steps=4)
    assert torch.allclose(probs[:, 0, 1], torch.sigmoid(3 * ys), atol=1e-6)   # float32 sigmoid, 1e-6


def test_decision_grid_runs_without_autograd_and_handles_many_classes():
    w = torch.randn(2, 4, requires_grad=True)
    seen = []

    def fn(p):
        out = p @ w
        seen.append(out.requires_grad)
        return out

    _, _, probs = loop.decision_grid(fn, steps=3)
    assert seen == [False], "the grid must be evaluated once, under no_grad"
    assert probs.shape == (3, 3, 4) and not probs.requires_grad


@pytest.mark.parametrize("fn, kwargs, match", [
    (lambda p: p[:, 0], {}, "logits_fn"),
    (lambda p: p[:, :1], {}, "C >= 2"),
    (lambda p: torch.zeros(3, 2), {}, "logits_fn"),
    (lambda p: torch.zeros(len(p), 2), {"steps": 1}, "steps"),
    (lambda p: torch.zeros(len(p), 2), {"lim": 0}, "lim"),
])
def test_decision_grid_rejects_bad_input(fn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        loop.decision_grid(fn, **kwargs)


# --- confusion matrix and mistakes -------------------------------------------------------

def test_confusion_matrix_counts():
    targets = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 0, 2])
    cm = loop.confusion_matrix(predicted, targets, num_classes=3)
    assert cm.dtype == torch.int64
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_confusion_matrix_matches_a_plain_count():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 10, (500,), generator=g)
    predicted = torch.randint(0, 10, (500,), generator=g)
    cm = loop.confusion_matrix(predicted, targets)
    expected = torch.zeros(10, 10, dtype=torch.long)
    for t, p in zip(targets.tolist(), predicted.tolist()):
        expected[t, p] += 1
    assert torch.equal(cm, expected)
    assert torch.equal(cm.sum(dim=1), torch.bincount(targets, minlength=10))


@pytest.mark.parametrize("predicted, targets, match", [
    (torch.tensor([0, 1]), torch.tensor([0, 1, 2]), "length"),
    (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), "integer"),
    (torch.tensor([0, 10]), torch.tensor([0, 1]), "0 to 9"),
    (torch.tensor([[0, 1]]), torch.tensor([0, 1]), "1-D"),
    (torch.tensor([0, -1]), torch.tensor([0, 1]), "0 to 9"),
])
def test_confusion_matrix_rejects_bad_input(predicted, targets, match):
    with pytest.raises(ValueError, match=match):
        loop.confusion_matrix(predicted, targets)


def test_top_confusions():
    cm = torch.tensor([[5, 2, 0], [4, 5, 2], [0, 1, 9]])
    assert loop.top_confusions(cm, k=2) == [(1, 0, 4), (0, 1, 2)]       # ties: smaller true class first
    assert loop.top_confusions(cm, k=10) == [(1, 0, 4), (0, 1, 2), (1, 2, 2), (2, 1, 1)]   # zeros left out
    assert loop.top_confusions(torch.eye(3, dtype=torch.long)) == []
    with pytest.raises(ValueError, match="square"):
        loop.top_confusions(torch.zeros(2, 3))


def test_confident_mistakes_order_and_filter():
    probs = torch.tensor([[0.9, 0.1],    # right
                          [0.2, 0.8],    # wrong, 0.8
                          [0.4, 0.6],    # wrong, 0.6
                          [0.05, 0.95],  # wrong, 0.95
                          [0.3, 0.7],    # right
                          [0.2, 0.8]])   # wrong, 0.8 (tie with index 1: smaller index first)
    targets = torch.tensor([0, 0, 0, 0, 1, 0])
    assert loop.confident_mistakes(probs, targets, k=3).tolist() == [3, 1, 5]
    assert loop.confident_mistakes(probs, targets, k=10).tolist() == [3, 1, 5, 2]
    assert loop.confident_mistakes(probs, targets, k=0).tolist() == []
    assert loop.confident_mistakes(probs, torch.tensor([0, 1, 1, 1, 1, 1]), k=4).tolist() == []


def test_confident_mistakes_rejects_bad_input():
    with pytest.raises(ValueError, match="rows"):
        loop.confident_mistakes(torch.rand(3, 10), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        loop.confident_mistakes(torch.rand(10), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="0 to 9"):
        loop.confident_mistakes(torch.rand(2, 10), torch.tensor([0, 12]))


# --- redraw schedule and smoothing -------------------------------------------------------

def test_redraw_epochs():
    assert loop.redraw_epochs(100, 4) == [25, 50, 75, 100]
    assert loop.redraw_epochs(3, 10) == [1, 2, 3]
    assert loop.redraw_epochs(7, 1) == [7]
    assert loop.redraw_epochs(10, 3)[-1] == 10
    with pytest.raises(ValueError):
        loop.redraw_epochs(0, 3)


def test_best_schedule_takes_the_highest_last_validation_accuracy():
    candidates = {"constant": [0.95, 0.97, 0.975], "decay at 2": [0.95, 0.97, 0.979], "decay at 1": [0.95, 0.972, 0.979]}
    assert loop.best_schedule(candidates) == "decay at 2"           # a tie goes to the first
    assert loop.best_schedule({"only": [0.5]}) == "only"
    with pytest.raises(ValueError, match="no candidates"):
        loop.best_schedule({})
    with pytest.raises(ValueError, match="'empty'"):
        loop.best_schedule({"empty": [], "b": [0.9]})


def test_smooth():
    assert loop.smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert loop.smooth([2.0, 4.0], 10) == [2.0, 3.0]
    assert loop.smooth([], 3) == []
    with pytest.raises(ValueError):
        loop.smooth([1.0], 0)


# --- the views draw what the functions return --------------------------------------------

def _fake_train(calls):
    """A stand-in for the student's train: records its arguments, calls back after every epoch."""
    def train(params, X, y, Xt, yt, epochs, batch_size=64, lr=1e-3, seed=0, callback=None):
        calls.append(dict(shapes=[tuple(p.shape) for p in params], n=len(X), n_test=len(Xt), epochs=epochs,
                          batch_size=batch_size, lr=lr, seed=seed))
        history = {"train_loss": [], "val_loss": [], "val_acc": [], "step_losses": []}
        for epoch in range(1, epochs + 1):
            history["step_losses"] += [1.0 / epoch] * 7
            history["train_loss"].append(1.0 / epoch)
            history["val_loss"].append(1.1 / epoch)
            history["val_acc"].append(0.5 + 0.04 * epoch)
            if callback:
                callback(epoch, history)
        return history
    return train


def _init(seed=0, hidden=128, inputs=784, classes=10):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(inputs, hidden, generator=g), torch.zeros(hidden),
            torch.randn(hidden, classes, generator=g), torch.zeros(classes))


def _forward(x, W1, b1, W2, b2):
    return (x @ W1 + b1).clamp(min=0) @ W2 + b2


def test_train_spirals_calls_train_and_redraws_on_schedule():
    calls, redraws = [], []
    params, history = loop.train_spirals(_fake_train(calls), _init, _forward, hidden=16, lr=0.02, epochs=10,
                                         redraws=3, on_redraw=lambda e, grid, h: redraws.append((e, grid[2].shape)))
    assert calls == [dict(shapes=[(2, 16), (16,), (16, 2), (2,)], n=400, n_test=400, epochs=10, batch_size=64,
                          lr=0.02, seed=0)]
    assert [e for e, _ in redraws] == loop.redraw_epochs(10, 3)
    assert all(shape == (100, 100, 2) for _, shape in redraws)
    assert len(history["val_acc"]) == 10


def test_spiral_widget_trains_once_without_a_click(monkeypatch):
    shown = []
    monkeypatch.setattr(loop, "display", lambda obj, **kw: shown.append(obj))
    calls = []
    assert loop.spiral_widget(_fake_train(calls), _init, _forward, hidden=8, epochs=10, redraws=2) is None
    assert len(calls) == 1 and calls[0]["shapes"][0] == (2, 8)
    assert shown and shown[0].__class__.__name__ == "VBox"


def test_figures_draw():
    history = {"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "val_acc": [0.96, 0.97],
               "step_losses": [1.2, 1.0, 0.8, 0.6]}
    live = loop.LiveHistory(epochs=4, steps_per_epoch=2, smooth_window=2, marks=[(2, "lr / 10")])
    fig = live.draw(history)
    assert len(fig.axes) == 2
    assert len(live.draw({"train_loss": [], "val_loss": [], "val_acc": [], "step_losses": []}).axes) == 2
    cm = loop.confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), num_classes=3)
    assert loop.plot_confusion(cm).axes
    X = torch.rand(5, 784)
    probs = torch.softmax(torch.randn(5, 10), dim=1)
    assert len(loop.plot_mistakes(X, probs, torch.zeros(5, dtype=torch.long), torch.tensor([0, 3]), ncols=2).axes) == 2
    assert len(loop.plot_weights(torch.randn(784, 10), ncols=4).axes) == 1
    assert len(loop.plot_schedules({"a": [0.96, 0.97], "b": [0.965, 0.975]}, chosen="b").axes) == 1
    grid = loop.decision_grid(lambda p: torch.stack([p[:, 0], -p[:, 0]], dim=1), steps=10)
    X2, y2 = loop.spirals(n=20)
    assert len(loop.draw_spiral_state(matplotlib.figure.Figure(), X2, y2, grid, history).axes) == 2


def test_weight_mosaic_places_and_scales_each_column():
    W1 = torch.zeros(784, 3)
    W1[0, 0] = 2.0          # top-left pixel of tile 0
    W1[783, 1] = -4.0       # bottom-right pixel of tile 1
    W1[:, 2] = 0.5          # a flat tile
    m = loop.weight_mosaic(W1, ncols=2, gap=2)
    assert m.shape == (2 * 30 - 2, 2 * 30 - 2)
    assert m[0, 0] == 1.0 and m[27, 30 + 27] == -1.0          # each tile divided by its own max |value|
    assert torch.all(m[30:58, 0:28] == 1.0)                   # tile 2 starts the second row
    assert torch.isnan(m[28:30, :]).all() and torch.isnan(m[:, 28:30]).all()   # the gaps
    assert torch.isnan(m[30:, 30:]).all()                     # the unused fourth tile
    with pytest.raises(ValueError, match=r"\[784, H\]"):
        loop.weight_mosaic(torch.zeros(100, 3))


def test_to_image_renders_a_png():
    fig = matplotlib.figure.Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1], [1, 0])
    image = loop.to_image(fig, dpi=50)
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"
