"""The plain functions behind lesson 04's widget and pictures (grader/widgets/backward.py)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
import torch.nn.functional as F

from grader import reference
from grader.widgets import backward as demo


def batch(seed=0, B=6, D=784, H=128, C=10):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, D, generator=g)
    t = torch.randint(0, C, (B,), generator=g)
    W1 = torch.randn(D, H, generator=g) * math.sqrt(2 / D)
    b1 = torch.randn(H, generator=g) * 0.1
    W2 = torch.randn(H, C, generator=g) * math.sqrt(2 / H)
    b2 = torch.randn(C, generator=g) * 0.1
    return x, t, W1, b1, W2, b2


def test_order_is_reverse_topological_and_complete():
    order = list(demo.BACKWARD_ORDER)
    with_grad = [n.name for n in demo.NODES if n.has_grad]
    assert sorted(order) == sorted(with_grad), "every node with a gradient appears exactly once"
    assert order[0] == "loss"
    position = {name: i for i, name in enumerate(order)}
    for node in demo.NODES:
        for src in node.inputs:
            if src in position:    # an input is visited only after the node that uses it
                assert position[src] > position[node.name], f"{src} comes before its user {node.name}"


def test_backward_steps_match_autograd():
    x, t, W1, b1, W2, b2 = batch(seed=1)
    steps = demo.backward_steps(x, t, W1, b1, W2, b2)
    assert [s.name for s in steps] == list(demo.BACKWARD_ORDER)
    by_name = {s.name: s for s in steps}
    assert by_name["loss"].shape == () and by_name["loss"].norm == pytest.approx(1.0)
    expected = dict(zip(["W1", "b1", "W2", "b2"], reference.backward(x, t, W1, b1, W2, b2)))
    for name, g in expected.items():
        assert by_name[name].shape == tuple(g.shape)
        # norms of float32 gradients: relative 1e-5
        assert by_name[name].norm == pytest.approx(float(g.double().norm()), rel=1e-5)
    # the logits' gradient is (softmax - one_hot) / B, computed here with torch.autograd on F.cross_entropy
    d_out = reference.cross_entropy_grad(F.relu(x @ W1 + b1) @ W2 + b2, t)
    assert by_name["logits"].shape == (6, 10)
    assert by_name["logits"].norm == pytest.approx(float(d_out.double().norm()), rel=1e-5)
    # an addition passes its gradient on unchanged
    assert by_name["h@W2"].norm == pytest.approx(by_name["logits"].norm)
    assert by_name["x@W1"].norm == pytest.approx(by_name["h_pre"].norm)
    assert by_name["h"].shape == (6, 128) and by_name["W1"].shape == (784, 128)


def test_backward_steps_leaves_inputs_alone():
    x, t, W1, b1, W2, b2 = batch(seed=2, B=3, D=5, H=4, C=3)
    W1.requires_grad_(True)
    saved = [v.clone() for v in (x, t, W1, b1, W2, b2)]
    steps = demo.backward_steps(x, t, W1, b1, W2, b2)
    assert len(steps) == len(demo.BACKWARD_ORDER)
    assert W1.grad is None
    for before, after in zip(saved, (x, t, W1, b1, W2, b2)):
        assert torch.equal(before, after.detach())


def test_dead_hidden_layer_gives_zero_first_layer_gradients():
    x, t, W1, b1, W2, b2 = batch(seed=3, B=4)
    steps = {s.name: s for s in demo.backward_steps(x, t, -W1.abs(), torch.full_like(b1, -1.0), W2, b2)}
    assert steps["W1"].norm == 0.0 and steps["b1"].norm == 0.0 and steps["h_pre"].norm == 0.0
    assert steps["b2"].norm > 0.0


@pytest.mark.parametrize("change, message", [
    (lambda a: {**a, "x": a["x"][0]}, "x must be"),
    (lambda a: {**a, "W1": a["W1"][:-1]}, "W1 must be"),
    (lambda a: {**a, "b1": a["b1"][:-1]}, "b1 must be"),
    (lambda a: {**a, "W2": a["W2"].T}, "W2 must be"),
    (lambda a: {**a, "b2": a["b2"][:3]}, "b2 must be"),
    (lambda a: {**a, "targets": a["targets"].float()}, "targets must be a LongTensor"),
    (lambda a: {**a, "targets": a["targets"][:2]}, "targets must be a LongTensor"),
    (lambda a: {**a, "targets": a["targets"] + 10}, "targets must lie in"),
])
def test_backward_steps_rejects_bad_input(change, message):
    x, t, W1, b1, W2, b2 = batch(seed=4, B=4)
    args = change({"x": x, "targets": t, "W1": W1, "b1": b1, "W2": W2, "b2": b2})
    with pytest.raises(ValueError, match=message):
        demo.backward_steps(**args)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        demo.backward_steps(x.tolist(), t, W1, b1, W2, b2)


def test_graph_svg_highlights_the_current_node_only():
    steps = demo.backward_steps(*batch(seed=5, B=2))
    svg = demo.graph_svg(steps, 3)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    for node in demo.NODES:
        assert f">{node.name}</text>" in svg, f"node {node.name} is not drawn"
    assert svg.count('fill="#ff9f1c"') == 1                       # the current node
    assert svg.count('fill="#ffe0b2"') == 3                       # the three visited before it
    assert "|g| = " in svg and str(list(steps[3].shape)) in svg
    first, last = demo.graph_svg(steps, 0), demo.graph_svg(steps, len(steps) - 1)
    assert first.count('fill="#ffe0b2"') == 0 and last.count('fill="#ffe0b2"') == len(steps) - 1
    for bad in (-1, len(steps), 1.5, True):
        with pytest.raises(ValueError, match="step index"):
            demo.graph_svg(steps, bad)
    with pytest.raises(ValueError, match="empty"):
        demo.graph_svg([], 0)


def test_step_html_lists_steps_so_far():
    steps = demo.backward_steps(*batch(seed=6, B=2))
    table = demo.step_html(steps, 4)
    assert table.count("<tr") == 1 + 5
    assert "h@W2" in table and "W1" not in table.split("<tr")[-1]
    with pytest.raises(ValueError):
        demo.step_html(steps, 99)


def test_stepper_buttons_move_the_slider():
    box = demo.backward_stepper(*batch(seed=7, B=3))
    controls, picture, table = box.children
    step_button, reset_button, slider = controls.children
    assert slider.value == 0 and slider.max == len(demo.BACKWARD_ORDER) - 1
    before = picture.value
    step_button.click()
    step_button.click()
    assert slider.value == 2 and picture.value != before and table.value.count("<tr") == 4
    for _ in range(20):
        step_button.click()
    assert slider.value == slider.max
    reset_button.click()
    assert slider.value == 0 and picture.value == before


def test_nudge_losses_follow_the_gradient():
    x, t, W1, b1, W2, b2 = batch(seed=8, B=16)
    saved = W2.clone()

    def loss_of(W):
        return F.cross_entropy(F.relu(x @ W1 + b1) @ W + b2, t)

    losses = demo.nudge_losses(loss_of, W2, (3, 4), [-1e-3, 0.0, 1e-3])
    assert torch.equal(W2, saved)
    assert losses[1] == pytest.approx(float(loss_of(W2)))
    slope = (losses[2] - losses[0]) / 2e-3
    (_, _, dW2, _) = reference.backward(x, t, W1, b1, W2, b2)
    # central difference in float32 on a loss near 2.3: rounding noise about 1e-4 in the slope
    assert slope == pytest.approx(float(dW2[3, 4]), abs=3e-4)
    with pytest.raises(ValueError, match="not an entry"):
        demo.nudge_losses(loss_of, W2, (128, 0), [0.0])
    with pytest.raises(ValueError, match="not an entry"):
        demo.nudge_losses(loss_of, W2, (1,), [0.0])
    fig = demo.plot_nudge(loss_of, W2, (3, 4), float(dW2[3, 4]), n=5)
    assert len(fig.axes[0].lines) == 3
    matplotlib.pyplot.close(fig)


def test_difference_errors_have_the_textbook_orders():
    # at eps = 1e-3: central float64 ~ eps**2 / 6 = 1.7e-7, forward float64 ~ eps / 2 = 5e-4
    (central64,) = demo.difference_errors([1e-3], torch.float64, central=True)
    (forward64,) = demo.difference_errors([1e-3], torch.float64, central=False)
    assert central64 == pytest.approx(1e-6 / 6, rel=0.01)
    assert forward64 == pytest.approx(5e-4, rel=0.01)
    # halving eps quarters the central error and halves the forward one (truncation regime)
    c1, c2 = demo.difference_errors([1e-2, 5e-3], torch.float64, central=True)
    f1, f2 = demo.difference_errors([1e-2, 5e-3], torch.float64, central=False)
    assert c1 / c2 == pytest.approx(4, rel=0.02) and f1 / f2 == pytest.approx(2, rel=0.02)
    # float32 rounding dominates for small steps: far worse than float64 there
    (tiny32,) = demo.difference_errors([1e-6], torch.float32, central=True)
    (tiny64,) = demo.difference_errors([1e-6], torch.float64, central=True)
    assert tiny32 > 1e-3 and tiny64 < 1e-8
    with pytest.raises(ValueError, match="positive"):
        demo.difference_errors([0.0])
    with pytest.raises(ValueError, match="floating-point"):
        demo.difference_errors([1e-3], torch.int32)
    fig = demo.plot_difference_errors()
    assert len(fig.axes[0].lines) == 5          # four curves and the eps = 1e-3 marker
    matplotlib.pyplot.close(fig)


# --- step by step against PyTorch ---------------------------------------------------------------


def _autograd_trace(x, t, W1, b1, W2, b2):
    """The intermediate gradients of the MLP, from torch.autograd with retain_grad (independent of the helper)."""
    leaves = [p.clone().requires_grad_(True) for p in (W1, b1, W2, b2)]
    h_pre = x @ leaves[0] + leaves[1]
    h = F.relu(h_pre)
    out = h @ leaves[2] + leaves[3]
    for v in (h_pre, h, out):
        v.retain_grad()
    F.cross_entropy(out, t).backward()
    return {"d_out": out.grad, "d_h": h.grad, "d_hpre": h_pre.grad, "dW1": leaves[0].grad, "db1": leaves[1].grad,
            "dW2": leaves[2].grad, "db2": leaves[3].grad}


def test_torch_intermediates_match_autograd_and_leave_inputs_alone():
    x, t, W1, b1, W2, b2 = batch(seed=9, B=5, D=7, H=6, C=4)
    W1.requires_grad_(True)
    saved = [v.detach().clone() for v in (x, t, W1, b1, W2, b2)]
    got = demo.torch_intermediates(x, t, W1, b1, W2, b2)
    want = _autograd_trace(x, t, W1.detach(), b1, W2, b2)
    assert list(got) == [name for name, _, _ in demo.TRACE_STEPS]
    for name in want:
        assert torch.allclose(got[name], want[name], atol=1e-7), name   # the same float32 computation
    # the logits' gradient is (softmax - one_hot) / B
    assert torch.allclose(got["d_out"], reference.cross_entropy_grad(F.relu(x @ W1 + b1) @ W2 + b2, t), atol=1e-7)
    assert W1.grad is None
    for before, after in zip(saved, (x, t, W1, b1, W2, b2)):
        assert torch.equal(before, after.detach())


def test_report_marks_exact_close_wrong_and_missing():
    x, t, W1, b1, W2, b2 = batch(seed=10, B=4, D=6, H=5, C=3)
    ref = demo.torch_intermediates(x, t, W1, b1, W2, b2)
    mine = {k: v.clone() for k, v in ref.items()}
    mine["d_h"] = mine["d_h"] + 1e-7                                    # close: within 1e-5
    mine["d_hpre"] = mine["d_h"]                                        # the ReLU mask forgotten
    mine["dW1"] = x.T @ mine["d_hpre"]
    del mine["db1"]
    report = demo.compare_intermediates(mine, ref)
    verdicts = {c.name: c.verdict for c in report}
    assert verdicts == {"d_out": "exact", "dW2": "exact", "db2": "exact", "d_h": "close", "d_hpre": "wrong",
                        "dW1": "wrong", "db1": "missing"}
    assert demo.first_wrong(report) == "d_hpre"
    text = demo.format_report(report)
    lines = text.splitlines()
    assert len(lines) == 7 and lines[0].split()[0] == "d_out"
    assert "close (largest difference 1.0e-07" in lines[3]
    assert "first wrong step" in lines[4] and "h_pre > 0" in lines[4]
    assert "first wrong step" not in lines[5] and "WRONG" in lines[5]       # marked once, at the first
    assert "not recorded" in lines[6]


def test_report_names_bad_shapes_and_non_tensors():
    x, t, W1, b1, W2, b2 = batch(seed=11, B=3, D=4, H=5, C=3)
    ref = demo.torch_intermediates(x, t, W1, b1, W2, b2)
    mine = dict(ref, d_out=ref["d_out"] * 3, dW2=ref["dW2"].T, db2=[0.0] * 3, d_h=ref["d_h"].clone())
    mine["d_h"][1, 2] = float("nan")
    report = {c.name: c for c in demo.compare_intermediates(mine, ref)}
    assert report["d_out"].verdict == "wrong" and "1/B" in report["d_out"].hint
    assert report["dW2"].verdict == "wrong" and "shape [3, 5], expected [5, 3]" in report["dW2"].detail
    assert report["db2"].verdict == "wrong" and "not a tensor" in report["db2"].detail
    assert report["d_h"].verdict == "wrong" and report["d_h"].where == "(1, 2)"     # NaN counts as infinitely far
    assert demo.first_wrong(list(report.values())) == "d_out"
    assert demo.first_wrong(demo.compare_intermediates(ref, ref)) is None
    assert "WRONG" not in demo.step_report(ref, x, t, W1, b1, W2, b2)
