"""Compare a student's result with the expected one, with messages that name the mistake.

Every helper raises :class:`CheckFailed` (an ``AssertionError``) whose message names
the tensor, what was expected and what was found (shape, dtype, largest difference and
where it is), and a hint about the likely mistake. They return nothing on success.

    >>> assert_close(out, expected, "forward(x, W1, b1, W2, b2)", atol=1e-5,
    ...              hint="apply ReLU between the two layers, not after the second")
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch


class CheckFailed(AssertionError):
    """A student's result differs from what was expected."""


def _fail(name: str, problem: str, hint: str | None) -> None:
    message = f"{name}: {problem}"
    if hint:
        message += f"\nHint: {hint}"
    raise CheckFailed(message)


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _index(flat: int, shape: Sequence[int]) -> str:
    if not shape:
        return "()"
    idx = []
    for size in reversed(list(shape)):
        idx.append(flat % size)
        flat //= size
    return "(" + ", ".join(str(i) for i in reversed(idx)) + ")"


def assert_tensor(actual: Any, name: str, hint: str | None = None) -> None:
    """Fail unless ``actual`` is a plain ``torch.Tensor`` (or ``nn.Parameter``).

    Subclasses are refused: a subclass can redefine comparisons and would make any check pass.
    """
    if not isinstance(actual, torch.Tensor):
        what = "None (did the function forget to `return`?)" if actual is None else type(actual).__name__
        _fail(name, f"expected a torch.Tensor, got {what}", hint)
    if type(actual) not in (torch.Tensor, torch.nn.Parameter):
        _fail(name, f"expected a plain torch.Tensor, got the subclass {type(actual).__name__}", hint)


def assert_shape(actual: Any, shape: Sequence[int], name: str, hint: str | None = None) -> None:
    """Fail unless ``actual`` is a tensor of exactly ``shape``."""
    assert_tensor(actual, name, hint)
    if tuple(actual.shape) != tuple(shape):
        extra = ""
        if sorted(actual.shape) == sorted(shape) and len(shape) > 1:
            extra = " (the same sizes in another order: a missing or extra transpose?)"
        elif actual.dim() == len(shape) - 1:
            extra = " (one dimension short: a missing keepdim=True, or a reduction over the wrong dim?)"
        elif actual.dim() == 0 and len(shape) > 0:
            extra = " (a scalar: did it reduce over everything?)"
        _fail(name, f"expected shape {_shape(shape)}, got {_shape(actual.shape)}{extra}", hint)


def assert_dtype(actual: Any, dtype: torch.dtype, name: str, hint: str | None = None) -> None:
    """Fail unless ``actual`` is a tensor of ``dtype``."""
    assert_tensor(actual, name, hint)
    if actual.dtype != dtype:
        _fail(name, f"expected dtype {dtype}, got {actual.dtype}", hint)


def max_difference(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, str]:
    """The largest absolute difference between two same-shape tensors, and its index."""
    if actual.numel() == 0:
        return 0.0, "()"
    diff = (actual.detach().double().cpu() - expected.detach().double().cpu()).abs()
    diff = torch.nan_to_num(diff, nan=math.inf)
    flat = int(diff.reshape(-1).argmax())
    return float(diff.reshape(-1)[flat]), _index(flat, actual.shape)


def assert_close(actual: Any, expected: torch.Tensor, name: str, *, atol: float = 1e-6,
                 rtol: float = 0.0, check_dtype: bool = True, hint: str | None = None) -> None:
    """Fail unless ``|actual - expected| <= atol + rtol * |expected|`` everywhere.

    Checks, in order: that ``actual`` is a tensor, its shape, its dtype (unless
    ``check_dtype=False``), that it has no inf/nan where ``expected`` is finite, and
    the values. The message names the first problem found.
    """
    assert_shape(actual, expected.shape, name, hint)
    if check_dtype:
        assert_dtype(actual, expected.dtype, name, hint)
    if actual.device != expected.device:
        _fail(name, f"expected a tensor on {expected.device}, got one on {actual.device}", hint)
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    bad_finite = ~torch.isfinite(a) & torch.isfinite(e)
    if bad_finite.any():
        flat = int(bad_finite.reshape(-1).nonzero()[0])
        value = float(a.reshape(-1)[flat])
        _fail(name, f"contains {value} at index {_index(flat, a.shape)} where {float(e.reshape(-1)[flat]):.6g} "
                    f"was expected ({int(bad_finite.sum())} non-finite values in all; an overflow in exp, "
                    f"or a log of 0?)", hint)
    allowed = atol + rtol * e.abs()
    diff = torch.nan_to_num((a - e).abs(), nan=math.inf)
    excess = diff - allowed
    if (excess > 0).any():
        flat = int(excess.reshape(-1).argmax())
        n_bad = int((excess > 0).sum())
        _fail(name, f"values differ. Largest difference {float(diff.reshape(-1)[flat]):.3g} at index "
                    f"{_index(flat, a.shape)}: got {float(a.reshape(-1)[flat]):.8g}, expected "
                    f"{float(e.reshape(-1)[flat]):.8g} ({n_bad} of {a.numel()} values outside "
                    f"atol={atol:g}, rtol={rtol:g})", hint)


def assert_equal(actual: Any, expected: torch.Tensor, name: str, hint: str | None = None) -> None:
    """Fail unless ``actual`` equals ``expected`` exactly (shape, dtype and every value)."""
    assert_shape(actual, expected.shape, name, hint)
    assert_dtype(actual, expected.dtype, name, hint)
    neq = actual.detach().cpu() != expected.detach().cpu()
    if neq.any():
        flat = int(neq.reshape(-1).nonzero()[0])
        _fail(name, f"{int(neq.sum())} of {actual.numel()} values differ; the first at index "
                    f"{_index(flat, actual.shape)}: got {actual.reshape(-1)[flat].item()}, expected "
                    f"{expected.reshape(-1)[flat].item()}", hint)


def assert_unchanged(before: torch.Tensor, after: torch.Tensor, name: str, hint: str | None = None) -> None:
    """Fail if a tensor that must not be modified was changed (``before`` is a clone taken earlier)."""
    if before.shape != after.shape or not torch.equal(before, after.detach()):
        _fail(name, "was modified in place; the function must leave its inputs unchanged",
              hint or "work on a new tensor (x - m, not x -= m; clone() before an in-place op)")


def assert_scalar(actual: Any, expected: float, name: str, *, atol: float = 1e-6, rtol: float = 0.0,
                  hint: str | None = None) -> None:
    """Fail unless ``actual`` (a Python number or a one-element tensor) is close to ``expected``."""
    if isinstance(actual, torch.Tensor):
        if actual.numel() != 1:
            _fail(name, f"expected a single number, got a tensor of shape {_shape(actual.shape)}", hint)
        actual = actual.item()
    if not isinstance(actual, (int, float)) or isinstance(actual, bool):
        _fail(name, f"expected a number, got {type(actual).__name__}", hint)
    if not abs(actual - expected) <= atol + rtol * abs(expected):
        _fail(name, f"got {actual!r}, expected {expected!r} (difference {abs(actual - expected):.3g}, "
                    f"atol={atol:g}, rtol={rtol:g})", hint)


def seeded(seed: int, *shape: int, scale: float = 1.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A reproducible random normal tensor: the same ``seed`` always gives the same values."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype) * scale
