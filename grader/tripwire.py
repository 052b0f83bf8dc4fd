"""Forbid the library shortcuts of one exercise while the student's function runs.

Each exercise has a *job* (``"softmax"``, ``"linear"``, ``"optim"``, ...) and a list of
library functions that already do that job. Inside ``forbid(job)`` any call to one of
them is recorded, whichever way it is reached, through three layers:

1. a ``TorchFunctionMode`` sees every torch API call by name (``torch.softmax``,
   ``Tensor.softmax``, ``F.softmax``, ``torch.special.softmax`` are all ``softmax``);
2. a ``TorchDispatchMode`` sees the ATen kernels underneath (``aten._softmax``), which
   catches ``torch.ops.aten...`` and private aliases;
3. plain attribute patches cover Python APIs that are not torch functions
   (``torch.optim``, ``torch.utils.data``, ``nn.Module``, the autograd engine).

The call raises :class:`ShortcutUsed`. Because student code could catch that, the
decision is made on the *record*: leaving the ``with`` block raises again if anything
was recorded, whatever the function did with the first exception.

    >>> with forbid("softmax"):
    ...     probs = softmax(logits)       # fails if softmax() calls torch.softmax
"""

from __future__ import annotations

import importlib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

_SOFTMAX_NAMES = {"softmax", "log_softmax", "_softmax", "_log_softmax", "special_softmax",
                  "special_log_softmax", "logsumexp", "special_logsumexp", "softmin",
                  "cross_entropy", "nll_loss", "nll_loss_nd", "nll_loss2d", "gumbel_softmax"}
_SOFTMAX_ATEN = {"_softmax", "_log_softmax", "logsumexp", "nll_loss_forward", "nll_loss2d_forward",
                 "_safe_softmax", "special_log_softmax"}
_AUTOGRAD_ATTRS = ["torch.Tensor.backward", "torch.autograd.backward", "torch.autograd.grad",
                   "torch.autograd.functional.jacobian", "torch.autograd.functional.vjp",
                   "torch.autograd.functional.hessian", "torch.func.grad", "torch.func.vjp",
                   "torch.func.grad_and_value", "torch.func.jacrev"]
_OPTIM_ATTRS = [f"torch.optim.{name}.step" for name in
                ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam")] + [
                "torch.optim.Optimizer.__init__", "torch.optim.sgd.sgd", "torch.optim.adam.adam",
                "torch.optim.adamw.adamw"]
_DATA_ATTRS = ["torch.utils.data.DataLoader.__init__", "torch.utils.data.RandomSampler.__iter__",
               "torch.utils.data.BatchSampler.__iter__", "torch.utils.data.SequentialSampler.__iter__",
               "torch.utils.data.SubsetRandomSampler.__iter__", "torch.utils.data.random_split",
               "torch.utils.data.TensorDataset.__init__"]


@dataclass(frozen=True)
class Job:
    """What one exercise must not call, and what to tell a student who did."""
    names: frozenset = frozenset()      # torch API function names (TorchFunctionMode)
    aten: frozenset = frozenset()       # ATen overload packet names (TorchDispatchMode)
    attrs: tuple = ()                   # dotted paths patched with a recorder
    advice: str = ""


JOBS: dict[str, Job] = {
    "linear": Job(frozenset({"linear", "bilinear"}), frozenset(), ("torch.nn.Linear.forward",),
                  "write the layer as a matrix product plus the bias (x @ W + b)"),
    "relu": Job(frozenset({"relu", "relu_", "relu6", "threshold", "threshold_", "leaky_relu", "hardtanh", "celu",
                           "elu", "selu", "gelu", "silu", "hardswish"}),
                frozenset({"relu", "relu_", "threshold", "leaky_relu", "hardtanh", "elu", "gelu"}),
                ("torch.nn.ReLU.forward",),
                "keep the positive values and replace the negative ones by 0 (clamp, where or max)"),
    "softmax": Job(frozenset(_SOFTMAX_NAMES), frozenset(_SOFTMAX_ATEN), ("torch.nn.CrossEntropyLoss.forward",
                   "torch.nn.Softmax.forward", "torch.nn.LogSoftmax.forward", "torch.nn.NLLLoss.forward"),
                   "build it from exp, sum, log, max and indexing"),
    "autograd": Job(frozenset({"backward", "grad"}), frozenset(), tuple(_AUTOGRAD_ATTRS),
                    "compute the gradients with the chain rule by hand, without .backward() or autograd.grad"),
    "optim": Job(frozenset(), frozenset(), tuple(_OPTIM_ATTRS),
                 "update the tensors yourself under torch.no_grad(); torch.optim is what you are rebuilding"),
    "data": Job(frozenset(), frozenset(), tuple(_DATA_ATTRS),
                "shuffle with torch.randperm and slice; torch.utils.data is what you are rebuilding"),
    "dropout": Job(frozenset({"dropout", "dropout_", "feature_dropout", "alpha_dropout", "dropout1d"}),
                   frozenset({"native_dropout"}), ("torch.nn.Dropout.forward",),
                   "draw a mask with torch.rand_like and rescale the survivors by 1 / (1 - p)"),
    "module": Job(frozenset({"linear"}), frozenset(),
                  ("torch.nn.Module.__init__", "torch.nn.Module.__setattr__", "torch.nn.Module.parameters",
                   "torch.nn.Module.state_dict", "torch.nn.Module.load_state_dict", "torch.nn.Linear.forward"),
                  "keep your own registry of parameters and submodules; torch.nn.Module is what you are rebuilding"),
    "idx": Job(frozenset(), frozenset(), ("grader.data.parse_idx", "grader.data.read_bytes", "grader.data.load_mnist",
                                          "grader.data._load"),
               "open the file (gzip.open for .gz), read the header's big-endian integers and the bytes after it"),
}
JOBS["log_softmax"] = JOBS["cross_entropy"] = JOBS["softmax"]


class ShortcutUsed(AssertionError):
    """A forbidden library function was called inside a student's function."""


#: records of the ``forbid`` blocks open right now, innermost last (the judge's recorder reads them)
ACTIVE: list = []
#: while > 0, the traps let everything through (the grader's own bookkeeping runs inside ``forbid`` blocks)
_suspended = [0]
#: when set, ``forbid`` is answered by the judge's replay instead of by traps (see grader.judge.replay)
_replay = [None]


@contextmanager
def suspended() -> Iterator[None]:
    """Let every call through while the grader's own code runs (the judge's recorder uses it)."""
    _suspended[0] += 1
    try:
        yield
    finally:
        _suspended[0] -= 1


@dataclass
class Record:
    job: str
    what: str = ""
    calls: list = field(default_factory=list)

    def message(self) -> str:
        seen = ", ".join(dict.fromkeys(self.calls))
        advice = JOBS[self.job].advice
        return (f"{self.what or self.job} called {seen}, a library function that already does this exercise's "
                f"job, so it earns no points here. Instead, {advice}.")


class _FunctionTrap(TorchFunctionMode):
    def __init__(self, record: Record, names: frozenset):
        super().__init__()
        self.record, self.names = record, names

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.names and not _suspended[0]:
            self.record.calls.append(f"{name}()")
            raise ShortcutUsed(self.record.message())
        return func(*args, **(kwargs or {}))


class _DispatchTrap(TorchDispatchMode):
    def __init__(self, record: Record, names: frozenset):
        super().__init__()
        self.record, self.names = record, names

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.names and not _suspended[0]:
            self.record.calls.append(f"aten.{name}")
            raise ShortcutUsed(self.record.message())
        return func(*args, **(kwargs or {}))


def _resolve(path: str):
    """(owner, attribute name) for a dotted path such as ``torch.optim.SGD.step``."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:-1]:
            owner = getattr(owner, part)
        return owner, parts[-1]
    raise ImportError(path)


@contextmanager
def _patched(path: str, record: Record) -> Iterator[None]:
    try:
        owner, attr = _resolve(path)
        original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        present = True
    except (ImportError, AttributeError, KeyError):
        present = False                         # not in this torch version: nothing to guard
    if not present:
        yield                                   # outside the except: a student's error must not show ours
        return

    def trap(*args, **kwargs):
        if _suspended[0]:
            call = original if callable(original) else original.__get__(None, owner)
            return call(*args, **kwargs)
        record.calls.append(path)
        raise ShortcutUsed(record.message())

    setattr(owner, attr, trap)
    try:
        yield
    finally:
        setattr(owner, attr, original)


@contextmanager
def forbid(job: str, what: str | None = None) -> Iterator[Record]:
    """While the block runs, any shortcut of ``job`` raises; leaving the block re-raises if one was used.

    Args:
        job: a key of :data:`JOBS` (``"linear"``, ``"relu"``, ``"softmax"``, ``"autograd"``,
            ``"optim"``, ``"data"``, ``"dropout"``, ``"module"``).
        what: the student's function, as named in the message (default: the job).
    """
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; expected one of {sorted(JOBS)}")
    spec = JOBS[job]
    record = Record(job, what or job)
    if _replay[0] is not None:                  # the judge: the record of the kernel decides
        with _replay[0].forbid(record):
            yield record
        return
    ACTIVE.append(record)
    try:
        with _guarded(spec, record):
            yield record
    finally:
        ACTIVE.remove(record)
    if record.calls:
        raise ShortcutUsed(record.message())


@contextmanager
def _guarded(spec: Job, record: Record) -> Iterator[None]:
    with ExitStack() as stack:
        for path in spec.attrs:
            stack.enter_context(_patched(path, record))
        if spec.names:
            stack.enter_context(_FunctionTrap(record, spec.names))
        if spec.aten:
            stack.enter_context(_DispatchTrap(record, spec.aten))
        try:
            yield
        except ShortcutUsed:
            if not record.calls:                # raised by the student's own code: not ours to hide
                raise


def call(fn: Callable, *args, job: str, what: str | None = None, **kwargs):
    """``fn(*args, **kwargs)`` under :func:`forbid`; returns its result."""
    with forbid(job, what or getattr(fn, "__name__", None)):
        return fn(*args, **kwargs)
