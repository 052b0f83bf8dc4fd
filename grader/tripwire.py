"""Forbid the library shortcuts of one exercise while the student's function runs.

Each exercise has a *job* (``"softmax"``, ``"linear"``, ``"optim"``, ...) and a list of
library functions that already do that job. Inside ``forbid(job)`` any call to one of
them is recorded, whichever way it is reached, through three layers:

1. a ``TorchFunctionMode`` sees every torch API call by name (``torch.softmax``,
   ``Tensor.softmax``, ``F.softmax``, ``torch.special.softmax`` are all ``softmax``);
2. a ``TorchDispatchMode`` sees the ATen kernels underneath (``aten._softmax``), which
   catches ``torch.ops.aten...`` and private aliases;
3. plain attribute patches cover Python APIs that are not torch functions
   (``torch.optim``, ``torch.utils.data``, ``nn.Module``, the autograd engine);
4. a profile hook that knows the *code objects* of the forbidden implementation, so the same
   function reached under another name, a private variant of it, or a method borrowed by a
   class of the student's is recorded too (and the autograd engine's C entry point).

The call raises :class:`ShortcutUsed`. Because student code could catch that, the
decision is made on the *record*: leaving the ``with`` block raises again if anything
was recorded, whatever the function did with the first exception.

    >>> with forbid("softmax"):
    ...     probs = softmax(logits)       # fails if softmax() calls torch.softmax
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
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

    trap._tripwire_trap, trap.__wrapped__ = True, original   # codes() looks through it to the original
    setattr(owner, attr, trap)
    try:
        yield
    finally:
        setattr(owner, attr, original)


# --- the implementation, whatever name reaches it ------------------------------------------------

#: per job, what else is the forbidden implementation (modules and classes walked whole); with the
#: job's ``attrs`` these are trapped by *code object*, so a function reached under another name
#: (``torch.optim._functional.adam``), a private variant (``_single_tensor_adam``) or a method
#: borrowed by another class (``named_parameters = nn.Module.named_parameters``) is caught too
_CODE_ROOTS = {
    "optim": ("torch.optim.optimizer", "torch.optim._functional", "torch.optim.sgd", "torch.optim.adam",
              "torch.optim.adamw", "torch.optim.rmsprop", "torch.optim.adagrad", "torch.optim.adamax",
              "torch.optim.nadam", "torch.optim.radam", "torch.optim.asgd", "torch.optim.adadelta",
              "torch.optim.rprop", "torch.optim.sparse_adam", "torch.optim.lbfgs"),
    "module": ("torch.nn.modules.module", "torch.nn.modules.linear.Linear", "torch.nn.modules.container"),
    "data": ("torch.utils.data.dataloader", "torch.utils.data.sampler", "torch.utils.data.dataset.random_split",
             "torch.utils.data.dataset.TensorDataset"),
    "autograd": ("torch.autograd.functional", "torch._functorch.eager_transforms.grad",
                 "torch._functorch.eager_transforms.vjp", "torch._functorch.eager_transforms.grad_and_value",
                 "torch._functorch.eager_transforms.jacrev"),
    "dropout": ("torch.nn.modules.dropout", "torch.nn.functional.dropout", "torch.nn.functional.alpha_dropout",
                "torch.nn.functional.feature_alpha_dropout", "torch.nn.functional.dropout1d",
                "torch.nn.functional.dropout2d", "torch.nn.functional.dropout3d"),
    "linear": ("torch.nn.modules.linear.Linear", "torch.nn.modules.linear.Bilinear"),
    "relu": ("torch.nn.modules.activation.ReLU", "torch.nn.functional.relu", "torch.nn.functional.relu6",
             "torch.nn.functional.threshold", "torch.nn.functional.leaky_relu", "torch.nn.functional.hardtanh"),
    "softmax": ("torch.nn.modules.loss.CrossEntropyLoss", "torch.nn.modules.loss.NLLLoss",
                "torch.nn.modules.activation.Softmax", "torch.nn.modules.activation.LogSoftmax",
                "torch.nn.functional.softmax", "torch.nn.functional.log_softmax", "torch.nn.functional.cross_entropy",
                "torch.nn.functional.nll_loss", "torch.nn.functional.softmin", "torch.nn.functional.gumbel_softmax"),
}
_CODE_ROOTS["log_softmax"] = _CODE_ROOTS["cross_entropy"] = _CODE_ROOTS["softmax"]
#: C functions that do a job without any Python code of torch's: (job, owner path, method name)
_C_ROUTES = {"autograd": (("torch.autograd.variable.Variable._execution_engine", "run_backward"),)}


def _functions(obj, prefix: str, seen: set, out: dict, depth: int = 0) -> None:
    """Every Python function that ``obj`` (module, class, function) consists of, by code object."""
    import types
    if id(obj) in seen or depth > 6:
        return
    seen.add(id(obj))
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        for part in (obj.fget, obj.fset, obj.fdel):
            if part is not None:
                _functions(part, prefix, seen, out, depth + 1)
        return
    if isinstance(obj, functools.partial):
        _functions(obj.func, prefix, seen, out, depth + 1)
        return
    if isinstance(obj, types.FunctionType) and obj.__dict__.get("_tripwire_trap"):
        _functions(obj.__wrapped__, prefix, seen, out, depth + 1)     # another block's trap: the original
        return
    if isinstance(obj, types.FunctionType):
        out.setdefault(obj.__code__, f"{obj.__module__}.{obj.__qualname__}")
        wrapped = obj.__dict__.get("__wrapped__")
        if wrapped is not None:
            _functions(wrapped, prefix, seen, out, depth + 1)
        for cell in obj.__closure__ or ():
            try:
                inner = cell.cell_contents
            except ValueError:
                continue
            if isinstance(inner, (types.FunctionType, functools.partial)):
                _functions(inner, prefix, seen, out, depth + 1)
        return
    if isinstance(obj, type):
        for value in list(vars(obj).values()):
            _functions(value, prefix, seen, out, depth + 1)
        return
    if isinstance(obj, types.ModuleType):
        for value in list(vars(obj).values()):
            if getattr(value, "__module__", None) == obj.__name__:
                _functions(value, prefix, seen, out, depth + 1)


_CODES: dict[str, dict] = {}


def codes(job: str) -> dict:
    """``{code object: qualified name}`` of the implementation ``job`` forbids (cached)."""
    if job not in _CODES:
        out: dict = {}
        seen: set = set()
        files: set = set()
        for path in (*JOBS[job].attrs, *_CODE_ROOTS.get(job, ())):
            try:
                target = importlib.import_module(path)
            except ImportError:
                try:
                    owner, attr = _resolve(path)
                    target = vars(owner)[attr] if isinstance(owner, type) else getattr(owner, attr)
                except (ImportError, AttributeError, KeyError):
                    continue                    # not in this torch version
            _functions(target, path, seen, out)
            files.add(_file_of(target))
        # only code written in those modules: a generic wrapper met on the way (torch._disable_dynamo's
        # ``inner``, shared by hundreds of functions) must not make every function it wraps forbidden
        _CODES[job] = {code: name for code, name in out.items() if code.co_filename in files}
    return _CODES[job]


def _file_of(obj) -> str | None:
    import types
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, types.ModuleType):
        return getattr(obj, "__file__", None)
    if isinstance(obj, types.FunctionType) and obj.__dict__.get("_tripwire_trap"):
        obj = obj.__wrapped__
    if isinstance(obj, types.FunctionType):
        return inspect.unwrap(obj).__code__.co_filename
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    return getattr(module, "__file__", None)


def _c_routes(job: str) -> list[tuple[object, str]]:
    routes = []
    for owner_path, name in _C_ROUTES.get(job, ()):
        try:
            owner, attr = _resolve(owner_path)
            routes.append((getattr(owner, attr), name))
        except (ImportError, AttributeError):
            pass
    return routes


class _CodeTrap:
    """A profile hook (this thread) that records any call into the job's implementation."""

    def __init__(self, record: Record, job: str):
        self.record, self.codes, self.c_routes = record, codes(job), _c_routes(job)

    def __enter__(self):
        self.previous = sys.getprofile()
        codes, record, c_routes, previous = self.codes, self.record, self.c_routes, self.previous

        def profile(frame, event, arg):
            if event == "call":
                if frame.f_code in codes and not _suspended[0]:
                    record.calls.append(codes[frame.f_code])
            elif event == "c_call" and c_routes and not _suspended[0]:
                owner = getattr(arg, "__self__", None)
                for c_owner, name in c_routes:
                    if owner is c_owner and getattr(arg, "__name__", "") == name:
                        record.calls.append(f"{type(owner).__name__}.{name}")
            if previous is not None:
                previous(frame, event, arg)

        sys.setprofile(profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self.previous)
        return False


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
    code_trap = _CodeTrap(record, record.job)      # before the patches: it reads the originals
    with ExitStack() as stack:
        for path in spec.attrs:
            stack.enter_context(_patched(path, record))
        stack.enter_context(code_trap)
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
