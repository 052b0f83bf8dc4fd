"""Lesson 08: the two-spirals task, decision maps, parity plots, the result checks and the explorer."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from grader.widgets import parity  # noqa: E402


def fake_result(steps=5, diffs=None, first=None):
    diffs = diffs if diffs is not None else [0.0] + [1e-8 * (k + 1) for k in range(steps)]
    return {"loss_hand": [2.0 - 0.1 * k for k in range(steps)], "loss_torch": [2.0 - 0.1 * k for k in range(steps)],
            "max_diff": diffs, "first_divergence": first}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# --- spirals ----------------------------------------------------------------------------

def test_spirals_shapes_classes_and_determinism():
    X, y = parity.spirals(n_per_class=50, seed=3)
    assert X.shape == (100, 2) and X.dtype == torch.float32
    assert y.shape == (100,) and y.dtype == torch.int64
    assert torch.equal(y, torch.cat([torch.zeros(50, dtype=torch.long), torch.ones(50, dtype=torch.long)]))
    X2, y2 = parity.spirals(n_per_class=50, seed=3)
    assert torch.equal(X, X2) and torch.equal(y, y2)
    assert not torch.equal(X, parity.spirals(n_per_class=50, seed=4)[0])


def test_spirals_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    parity.spirals(seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_spirals_without_noise_lie_on_two_arms_half_a_turn_apart():
    X, _ = parity.spirals(n_per_class=40, turns=1.0, noise=0.0)
    first, second = X[:40], X[40:]
    # The second arm is the first turned by pi: (x, y) -> (-x, -y). Tolerance: float32 rounding of cos/sin.
    assert torch.allclose(second, -first, atol=1e-6)
    radius = first.norm(dim=1)
    assert torch.allclose(radius, torch.arange(1, 41) / 40, atol=1e-6)   # radius grows from 1/n to 1
    last = first[-1]
    assert torch.allclose(last, torch.tensor([1.0, 0.0]), atol=1e-6)       # one whole turn ends on the x axis


@pytest.mark.parametrize("kwargs, message", [({"n_per_class": 0}, "n_per_class"), ({"n_per_class": 2.5}, "n_per_class"),
                                             ({"turns": 0}, "turns"), ({"noise": -0.1}, "noise")])
def test_spirals_reject_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        parity.spirals(**kwargs)


# --- decision maps ----------------------------------------------------------------------

def right_half(points):
    """Logits that pick class 1 where x > 0."""
    return torch.stack([-points[:, 0], points[:, 0]], dim=1)


def test_decision_map_covers_the_data_and_reports_the_argmax():
    X = torch.tensor([[-1.0, -2.0], [1.0, 2.0]])
    xx, yy, classes = parity.decision_map(right_half, X, steps=21, margin=0.5)
    assert xx.shape == yy.shape == classes.shape == (21, 21)
    assert xx.min() == pytest.approx(-1.5) and xx.max() == pytest.approx(1.5)
    assert yy.min() == pytest.approx(-2.5) and yy.max() == pytest.approx(2.5)
    assert (classes[xx > 0] == 1).all() and (classes[xx < 0] == 0).all()
    assert np.all(np.diff(xx, axis=1) > 0) and np.all(np.diff(yy, axis=0) > 0)   # x across, y up


def test_decision_map_of_an_nn_model_runs_without_gradients():
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    X, _ = parity.spirals(n_per_class=10)
    _, _, classes = parity.decision_map(model, X, steps=5)
    assert classes.shape == (5, 5) and set(np.unique(classes)) <= {0, 1}
    assert all(p.grad is None for p in model.parameters())


def test_decision_map_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        parity.decision_map(right_half, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="steps"):
        parity.decision_map(right_half, torch.zeros(5, 2), steps=1)
    with pytest.raises(ValueError, match="logits"):
        parity.decision_map(lambda p: p[:, 0], torch.randn(5, 2), steps=4)


def test_disagreement_counts_differing_points():
    a = np.array([[0, 1], [1, 1]])
    assert parity.disagreement(a, a.copy()) == 0
    assert parity.disagreement(a, np.array([[1, 1], [1, 0]])) == 2
    with pytest.raises(ValueError, match="different shapes"):
        parity.disagreement(a, np.zeros((3, 3)))


def test_plot_boundaries_draws_one_panel_per_map():
    X, y = parity.spirals(n_per_class=20)
    m = parity.decision_map(right_half, X, steps=10)
    fig = parity.plot_boundaries(X, y, {"a": m, "b": m, "c": m})
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="empty"):
        parity.plot_boundaries(X, y, {})


# --- results ----------------------------------------------------------------------------

def test_check_result_accepts_a_harness_result_and_counts_its_steps():
    assert parity.check_result(fake_result(steps=7)) == 7
    assert parity.check_result(fake_result(steps=0, diffs=[0.0])) == 0


@pytest.mark.parametrize("broken, message", [
    ([1, 2], "must be a dict"),
    ({"loss_hand": [1.0], "loss_torch": [1.0]}, "no max_diff"),
    ({"loss_hand": [1.0, 2.0], "loss_torch": [1.0], "max_diff": [0, 0, 0]}, "loss_torch has 1"),
    ({"loss_hand": [1.0, 2.0], "loss_torch": [1.0, 2.0], "max_diff": [0, 0]}, "needs 3"),
])
def test_check_result_names_what_is_wrong(broken, message):
    with pytest.raises(ValueError, match=message):
        parity.check_result(broken)


def test_on_log_axis_draws_zeros_at_the_floor_and_keeps_nan():
    out = parity.on_log_axis([0.0, 1e-15, 1e-6, math.nan, math.inf])
    assert out[0] == out[1] == parity.ZERO_FLOOR
    assert out[2] == 1e-6 and math.isnan(out[3]) and out[4] == math.inf
    with pytest.raises(ValueError, match="floor"):
        parity.on_log_axis([1.0], floor=0)


def test_plot_parity_draws_losses_and_log_scale_differences():
    fig = parity.plot_parity({"a": fake_result(), "b": fake_result(diffs=[0.0] * 6)}, tol=1e-6, title="t")
    ax_loss, ax_diff = fig.axes
    assert ax_diff.get_yscale() == "log"
    assert len(ax_loss.get_lines()) == 4                      # hand and torch for each result
    ydata = ax_diff.get_lines()[1].get_ydata()                 # the all-zero run sits on the floor
    assert np.all(ydata == parity.ZERO_FLOOR)
    assert any(np.allclose(line.get_ydata(), 1e-6) for line in ax_diff.get_lines())   # the tolerance line
    smooth = parity.plot_parity({"a": fake_result(steps=10)}, smooth=3)
    assert len(smooth.axes[0].get_lines()[0].get_xdata()) == 8  # a moving mean of 3 over 10 steps


def test_plot_parity_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        parity.plot_parity({})
    with pytest.raises(ValueError, match="smooth"):
        parity.plot_parity({"a": fake_result()}, smooth=0)
    with pytest.raises(ValueError, match=r"results\['a'\]"):
        parity.plot_parity({"a": {"loss_hand": [1.0], "loss_torch": [1.0], "max_diff": [0.0]}})


def test_plot_amplification_checks_its_inputs():
    g = torch.tensor([0.0, 1e-9, 1e-3])
    fig = parity.plot_amplification({"sgd": g, "adam": g}, {"sgd": torch.zeros(3), "adam": torch.tensor([0, 1e-6, 1e-9])})
    assert [ax.get_title() for ax in fig.axes] == ["sgd", "adam"]
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="same non-empty labels"):
        parity.plot_amplification({"sgd": g}, {"adam": g})
    with pytest.raises(ValueError, match="3 gradients but 2 differences"):
        parity.plot_amplification({"sgd": g}, {"sgd": torch.zeros(2)})


def test_plot_eps_sweep_draws_prediction_measurement_and_cost():
    eps = [1e-8, 1e-6, 1e-4]
    fig = parity.plot_eps_sweep(eps, [1e5, 1e3, 10.0], [1e-5, 3e-7, 0.0], [0.17, 0.18, 0.2], steps=300)
    titles = [ax.get_title() for ax in fig.axes]
    assert "prediction and measurement" in titles and "what a large eps costs" in titles
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    drawn = [line for ax in fig.axes for line in ax.get_lines() if line.get_label().startswith("measured")]
    assert list(drawn[0].get_ydata())[-1] == parity.ZERO_FLOOR            # an exact 0 sits on the floor
    with pytest.raises(ValueError, match="one predicted gain, drift and loss per eps"):
        parity.plot_eps_sweep(eps, [1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="eps values must be > 0"):
        parity.plot_eps_sweep([0.0], [1.0], [1.0], [1.0])


def test_table_html_formats_numbers_and_never():
    html = parity.table_html(["opt", "diff", "first", "n"], [["adam", 1.23456e-4, None, 3], ["sgd", 0.0, 12, 0]])
    assert html.count("<tr>") == 3
    assert "0.000123" in html and "never" in html and ">12<" in html and ">0<" in html
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 headers"):
        parity.table_html(["a", "b"], [["x"]])


# --- the explorer ----------------------------------------------------------------------

def test_explorer_settings_check_their_values():
    assert parity.explorer_settings("adam", 0.01, 1) == {"optimizer": "adam", "lr": 0.01, "same_primitives": True}
    with pytest.raises(ValueError, match="optimizer"):
        parity.explorer_settings("rmsprop", 0.01, False)
    for bad in (0, -1.0, math.nan, math.inf, "0.1"):
        with pytest.raises(ValueError, match="lr"):
            parity.explorer_settings("sgd", bad, False)


def test_status_line_reports_the_verdict():
    assert "never beyond 1e-06" in parity.status_line(fake_result(first=None), 1e-6)
    line = parity.status_line(fake_result(steps=4, first=3), 1e-6)
    assert "4 steps" in line and "at step <b>3</b>" in line and "4e-08" in line


def test_parity_explorer_runs_at_once_and_reruns_on_every_change():
    calls = []

    def run(**kwargs):
        calls.append(kwargs)
        return fake_result(steps=3, first=2)

    box = parity.parity_explorer(run, tol=1e-6, optimizer="adam", lr=0.02)
    assert calls == [{"optimizer": "adam", "lr": 0.02, "same_primitives": False}]     # drawn without a click
    (pick, rate), same, status, _ = box.children[0].children, box.children[1], box.children[2], box.children[3]
    assert "at step <b>2</b>" in status.value
    same.value = True
    assert calls[-1] == {"optimizer": "adam", "lr": 0.02, "same_primitives": True}
    pick.value = "sgd"                                         # one run, at SGD's usual learning rate
    assert len(calls) == 3
    assert calls[-1]["optimizer"] == "sgd" and calls[-1]["lr"] == pytest.approx(parity.DEFAULT_LR["sgd"])
    rate.value = 0.01
    assert len(calls) == 4 and calls[-1]["lr"] == pytest.approx(0.01)


def test_parity_explorer_rejects_a_bad_start_and_a_bad_result():
    with pytest.raises(ValueError, match="optimizer"):
        parity.parity_explorer(lambda **kw: fake_result(), optimizer="lbfgs")
    with pytest.raises(ValueError, match="max_diff"):
        parity.parity_explorer(lambda **kw: {"loss_hand": [], "loss_torch": []})
