"""Lesson 09: the work counts, and the throughput helpers driven by a supplied timer."""

from __future__ import annotations

import pytest
import torch

from grader.widgets import gpu


def test_flops_match_the_lessons_table():
    f = gpu.mlp_flops(64)
    assert f["first layer"] == 64 * 784 * 128 == 6_422_528
    assert f["forward"] == 64 * (784 * 128 + 128 * 10)
    assert f["backward"] == 2 * f["forward"] and f["step"] == 3 * f["forward"]
    assert 18e9 < gpu.epoch_flops() < 19e9          # "about 18 billion" per epoch
    with pytest.raises(ValueError, match="batch >= 1"):
        gpu.mlp_flops(0)


def test_throughput_uses_the_timer_it_is_given():
    seen = []

    def timer(fn, device, repeats):
        out = fn()
        seen.append((tuple(out.shape), str(device), repeats))
        return 0.5

    curves = gpu.throughput_curve([2, 4], [torch.device("cpu")], timer)
    assert curves == {"cpu": [2 * 8 / 0.5 / 1e9, 2 * 64 / 0.5 / 1e9]}
    assert seen == [((2, 2), "cpu", 5), ((4, 4), "cpu", 5)]
    with pytest.raises(ValueError, match="matrix size must be positive"):
        gpu.matmul_gflops(0, "cpu", timer)


def test_flops_widget_reacts_to_the_slider():
    box = gpu.flops_widget(timer=lambda fn, device, repeats: 0.001)
    slider, html = box.children
    assert "batch 64" in html.value and "GFLOP/s" in html.value
    slider.value = 128
    assert "batch 128" in html.value and f"{gpu.mlp_flops(128)['forward'] / 1e6:,.1f} M" in html.value
    assert "x @ W1" not in gpu.flops_widget().children[1].value
