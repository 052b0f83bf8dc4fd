"""Lesson 03's widget: logits on sliders, probabilities as bars, and the loss."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
import torch.nn.functional as F

from grader.widgets import loss as demo

matplotlib.use("Agg")


def test_loss_view_matches_pytorch():
    z = torch.randn(10, generator=torch.Generator().manual_seed(0)) * 3
    for target in (0, 4, 9):
        probs, loss = demo.loss_view(z.tolist(), target)
        assert probs.shape == (10,) and probs.dtype == torch.float64
        # float64 throughout: 1e-12 is far above its rounding, far below any real mistake
        assert torch.allclose(probs, torch.softmax(z.double(), 0), atol=1e-12, rtol=0)
        assert isinstance(loss, float)
        assert loss == pytest.approx(F.cross_entropy(z.double()[None], torch.tensor([target])).item(), abs=1e-12)
    # a tensor input gives the same as a list
    p_tensor, l_tensor = demo.loss_view(z, 4)
    p_list, l_list = demo.loss_view(z.tolist(), 4)
    assert torch.equal(p_tensor, p_list) and l_tensor == l_list


def test_loss_view_known_values():
    probs, loss = demo.loss_view([0.0] * 10, 3)
    assert torch.allclose(probs, torch.full((10,), 0.1, dtype=torch.float64), atol=1e-15)
    assert loss == pytest.approx(math.log(10), abs=1e-12)
    probs, loss = demo.loss_view([1.0, 2.0, 3.0], 2)
    assert probs.tolist() == pytest.approx([0.09003057, 0.24472847, 0.66524096], abs=1e-8)
    assert loss == pytest.approx(-math.log(0.66524096), abs=1e-7)
    # one class: probability 1, loss 0
    probs, loss = demo.loss_view([5.0], 0)
    assert probs.tolist() == [1.0] and loss == 0.0


def test_loss_view_is_stable_for_huge_logits():
    probs, loss = demo.loss_view([1e4, 0.0, -1e4], 0)
    assert torch.isfinite(probs).all() and probs.tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert loss == pytest.approx(0.0, abs=1e-12)
    # sure and wrong: the probability rounds to 0 but the loss stays finite and exact
    probs, loss = demo.loss_view([1e4, 0.0, -1e4], 2)
    assert probs[2].item() == 0.0 and loss == pytest.approx(2e4)
    probs, loss = demo.loss_view([-1e4, -1e4 + 1.0], 1)
    assert probs.sum().item() == pytest.approx(1.0) and loss == pytest.approx(math.log(1 + math.exp(-1)))
    # adding a constant to every logit changes nothing
    a, la = demo.loss_view([0.5, -1.0, 2.0], 1)
    b, lb = demo.loss_view([100.5, 99.0, 102.0], 1)
    assert torch.allclose(a, b, atol=1e-12) and la == pytest.approx(lb, abs=1e-12)


@pytest.mark.parametrize("logits, target, message", [
    ([[1.0, 2.0]], 0, "1-D"),
    ([], 0, "at least one class"),
    ([1.0, float("nan")], 0, "finite"),
    ([1.0, float("inf")], 0, "finite"),
    ("abc", 0, "sequence of numbers"),
    ([1.0, 2.0], 2, "out of range for 2 classes"),
    ([1.0, 2.0], -1, "out of range"),
    ([1.0, 2.0], 1.5, "integer class index"),
    ([1.0, 2.0], True, "integer class index"),
    ([1.0, 2.0], torch.tensor([0, 1]), "one integer"),
])
def test_loss_view_rejects_bad_input(logits, target, message):
    with pytest.raises(ValueError, match=message):
        demo.loss_view(logits, target)


def test_loss_view_accepts_integer_like_targets():
    assert demo.loss_view([1.0, 2.0], torch.tensor(1))[1] == demo.loss_view([1.0, 2.0], 1)[1]


def test_bars_html_highlights_the_target_and_shows_the_loss():
    probs, loss = demo.loss_view([0.0, 2.0, 0.0], 1)
    html = demo.bars_html(probs, 1, loss)
    assert html.count("class='bar'") == 3
    assert html.count(demo.TEAL) >= 1 and html.count(demo.GREY) == 2
    assert f"{loss:.4f}" in html and "ln 3" in html
    # the tallest bar is the target's: heights follow the probabilities
    heights = [int(part.split("height:")[1].split("px")[0]) for part in html.split("class='bar' style='")[1:]]
    assert heights[1] == max(heights) and heights[0] == heights[2]
    with pytest.raises(ValueError, match="out of range"):
        demo.bars_html(probs, 3, loss)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        demo.bars_html(torch.ones(2, 2), 0, loss)


def test_widget_updates_when_a_slider_or_the_target_moves():
    box = demo.logits_widget(target=3)
    (picker, presets), chart, slider_row = box.children[0].children, box.children[1], box.children[2]
    sliders = slider_row.children
    assert len(sliders) == 10 and picker.value == 3
    assert f"{math.log(10):.4f}" in chart.value          # all zero at start: loss ln 10
    sliders[3].value = 5.0
    _, expected = demo.loss_view([0.0] * 3 + [5.0] + [0.0] * 6, 3)
    assert f"{expected:.4f}" in chart.value
    picker.value = 0
    _, expected = demo.loss_view([0.0] * 3 + [5.0] + [0.0] * 6, 0)
    assert f"{expected:.4f}" in chart.value


def test_widget_presets_set_the_sliders():
    box = demo.logits_widget()
    (picker, presets), chart, slider_row = box.children[0].children, box.children[1], box.children[2]
    presets.value = "confident and wrong"
    values, target = demo.PRESETS["confident and wrong"]
    assert [s.value for s in slider_row.children] == values and picker.value == target
    _, expected = demo.loss_view(values, target)
    assert expected > 7 and f"{expected:.4f}" in chart.value
    for name, (values, target) in demo.PRESETS.items():
        assert len(values) == 10 and 0 <= target < 10, name


def test_widget_rejects_bad_arguments():
    with pytest.raises(ValueError, match="expected 10 starting logits"):
        demo.logits_widget([0.0, 1.0])
    with pytest.raises(ValueError, match="out of range"):
        demo.logits_widget(target=10)
    with pytest.raises(ValueError, match="classes must be at least 1"):
        demo.logits_widget(classes=0)


def test_plots_draw():
    fig = demo.plot_neg_log()
    line = fig.axes[0].lines[0]
    x, y = line.get_xdata(), line.get_ydata()
    assert y[-1] == pytest.approx(0.0) and y[0] > 6          # -log(1) = 0, -log(0.002) = 6.2
    ax = demo.plot_probs([0.0, 3.0, 0.0], 1)
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx(torch.softmax(torch.tensor([0.0, 3.0, 0.0], dtype=torch.float64), 0).tolist())
    matplotlib.pyplot.close("all")
