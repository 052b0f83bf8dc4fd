"""grader.checks: each helper passes on right input and fails, with a message that names the
problem, on wrong input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader import checks
from grader.checks import CheckFailed

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_assert_close_accepts_equal_and_reports_the_largest_difference(shape, seed):
    expected = checks.seeded(seed, *shape)
    checks.assert_close(expected.clone(), expected, "t")
    flat = seed % expected.numel()
    actual = expected.clone()
    actual.view(-1)[flat] += 0.5
    with pytest.raises(CheckFailed) as err:
        checks.assert_close(actual, expected, "t", atol=1e-3, hint="the hint")
    message = str(err.value)
    assert message.startswith("t: values differ") and "Largest difference 0.5" in message
    assert checks._index(flat, expected.shape) in message
    assert "Hint: the hint" in message


def test_assert_close_names_shape_dtype_type_and_nonfinite_problems():
    e = torch.zeros(2, 3)
    cases = [
        (None, "did the function forget to `return`"),
        ([0.0] * 6, "expected a torch.Tensor, got list"),
        (torch.zeros(3, 2), "a missing or extra transpose"),
        (torch.zeros(2), "one dimension short"),
        (torch.zeros(()), "a scalar"),
        (torch.zeros(2, 3, dtype=torch.float64), "expected dtype torch.float32, got torch.float64"),
        (torch.tensor([[0.0, math.inf, 0.0], [0.0, 0.0, 0.0]]), "contains inf at index (0, 1)"),
        (torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, math.nan]]), "contains nan at index (1, 2)"),
    ]
    for actual, fragment in cases:
        with pytest.raises(CheckFailed) as err:
            checks.assert_close(actual, e, "probs")
        assert fragment in str(err.value), (fragment, str(err.value))


def test_assert_close_respects_atol_and_rtol():
    e = torch.tensor([100.0, 1.0])
    checks.assert_close(e + torch.tensor([0.5, 0.0]), e, "x", atol=0.0, rtol=0.01)
    with pytest.raises(CheckFailed):
        checks.assert_close(e + torch.tensor([0.0, 0.5]), e, "x", atol=0.0, rtol=0.01)
    checks.assert_close(e.double(), e, "x", check_dtype=False)


def test_assert_equal_and_unchanged():
    e = torch.tensor([1, 2, 3])
    checks.assert_equal(e.clone(), e, "pred")
    with pytest.raises(CheckFailed, match=r"1 of 3 values differ; the first at index \(2\): got 4, expected 3"):
        checks.assert_equal(torch.tensor([1, 2, 4]), e, "pred")
    with pytest.raises(CheckFailed, match="expected dtype torch.int64"):
        checks.assert_equal(e.int(), e, "pred")
    x = torch.ones(3)
    before = x.clone()
    checks.assert_unchanged(before, x, "logits")
    x -= 1
    with pytest.raises(CheckFailed, match="modified in place"):
        checks.assert_unchanged(before, x, "logits")


def test_assert_scalar():
    checks.assert_scalar(torch.tensor(2.0), 2.0, "loss")
    checks.assert_scalar(2, 2.0, "count")
    with pytest.raises(CheckFailed, match="expected a single number"):
        checks.assert_scalar(torch.ones(2), 1.0, "loss")
    with pytest.raises(CheckFailed, match="expected a number, got str"):
        checks.assert_scalar("2", 2.0, "loss")
    with pytest.raises(CheckFailed, match="got 2.5, expected 2.0"):
        checks.assert_scalar(2.5, 2.0, "loss")


def test_seeded_is_deterministic():
    assert torch.equal(checks.seeded(3, 4, 5), checks.seeded(3, 4, 5))
    assert not torch.equal(checks.seeded(3, 4, 5), checks.seeded(4, 4, 5))
    assert checks.seeded(1, 2, dtype=torch.float64).dtype == torch.float64


def test_tensor_subclasses_are_refused():
    class Liar(torch.Tensor):
        def __eq__(self, other):
            return True

    liar = torch.zeros(2).as_subclass(Liar)
    with pytest.raises(CheckFailed, match="got the subclass Liar"):
        checks.assert_equal(liar, torch.ones(2), "x")
    checks.assert_close(torch.nn.Parameter(torch.ones(2)), torch.ones(2), "p")
