"""What crosses from the kernel to the judge: plain values, tensors as raw bytes, and effects.

Both sides keep a :class:`Registry` of what has crossed, in the same order, so that an
object is named by its number: tensor ``T3``, handle ``H2`` (a student object the test
holds), callback ``C1`` (a test function the student may call). A value is encoded as
JSON-able lists; tensor bytes go in numbered blobs. Decoding never unpickles and never
imports anything: a tensor is rebuilt with ``torch.empty(0).set_(storage, offset, shape,
stride)`` from checked numbers, a ``torch.nn`` module or ``torch.optim`` optimizer from
its torch class (an allow-list) and its tensors.
"""

from __future__ import annotations

import base64
import json
import math
import re
import zlib
from typing import Any

import torch

MIME = "application/x-nn-by-hand-record"
VERSION = 1
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16, torch.int32, torch.int64,
    torch.uint8, torch.bool, torch.complex64, torch.complex128)}
#: exceptions rebuilt as themselves in the judge (others become a subclass of their nearest one here)
EXCEPTIONS = {e.__name__: e for e in (
    Exception, ArithmeticError, AssertionError, AttributeError, EOFError, FileNotFoundError, FloatingPointError,
    ImportError, IndexError, IsADirectoryError, KeyError, KeyboardInterrupt, LookupError, MemoryError,
    ModuleNotFoundError, NameError, NotADirectoryError, NotImplementedError, OSError, OverflowError,
    PermissionError, RecursionError, RuntimeError, StopIteration, TimeoutError, TypeError, UnboundLocalError,
    UnicodeDecodeError, UnicodeError, ValueError, ZeroDivisionError, BaseException)}
MAX_TEXT = 2000                       # characters of a student's string or message kept in a record


class RecordError(Exception):
    """A record that is malformed, or that does not match the test (the judge fails the cell)."""


def dtype_name(dtype: torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise RecordError(f"tensors of dtype {name} are not supported in a test")
    return name


def parse_dtype(name: Any) -> torch.dtype:
    if name not in DTYPES:
        raise RecordError(f"unknown dtype {name!r} in the record")
    return DTYPES[name]


def storage_bytes(t: torch.Tensor) -> bytes:
    """The raw bytes of a tensor's whole storage (copied to the CPU)."""
    storage = t.untyped_storage()
    flat = torch.empty(0, dtype=torch.uint8, device=t.device).set_(storage)
    return flat.cpu().numpy().tobytes()


def values_bytes(t: torch.Tensor) -> bytes:
    """The bytes of a tensor's own values, contiguous, in row-major order."""
    c = t.detach().contiguous().cpu()
    if c.numel() == 0:
        return b""
    return c.reshape(-1).view(torch.uint8).numpy().tobytes() if c.dtype != torch.bool else \
        c.reshape(-1).to(torch.uint8).numpy().tobytes()


def tensor_from_values(data: bytes, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    numel = math.prod(shape)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    if len(data) != numel * itemsize:
        raise RecordError(f"a tensor of shape {shape} and dtype {dtype} needs {numel * itemsize} bytes, "
                          f"the record holds {len(data)}")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    if dtype == torch.bool:
        return raw.to(torch.bool).reshape(shape)
    return raw.view(dtype).reshape(shape).clone()


def fingerprint(t: torch.Tensor) -> list | None:
    """Two numbers that identify a tensor's values up to float rounding: sum and sum of |x| (float64)."""
    if t.device.type == "meta" or t.is_complex():
        return None
    with torch.no_grad():
        d = t.detach()
        if d.dtype == torch.bool:
            d = d.to(torch.int64)
        d = d.to(torch.float64)
        return [_num(float(d.sum())), _num(float(d.abs().sum()))]


def _num(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


def same_fingerprint(a: list | None, b: list | None) -> bool:
    if a is None or b is None:
        return a is b
    (sa, aa), (sb, ab) = [[float(v) for v in pair] for pair in (a, b)]
    if math.isnan(sa) or math.isnan(sb):
        return math.isnan(sa) and math.isnan(sb)
    if math.isinf(aa) or math.isinf(ab):
        return sa == sb and aa == ab
    scale = max(aa, ab, 1e-30)
    return abs(sa - sb) <= 1e-4 * scale + 1e-12 and abs(aa - ab) <= 1e-4 * scale + 1e-12


def text(value: Any, limit: int = MAX_TEXT) -> str:
    """A string from the kernel, cut to ``limit`` characters."""
    s = value if isinstance(value, str) else str(value)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s) - limit} more characters)"


def graph_leaves(t: torch.Tensor, stop: "StudentGraph | None" = None, limit: int = 64) -> list[torch.Tensor]:
    """The leaf tensors a test-made tensor was computed from (``x`` for ``x.clone()``), in a fixed order.

    When the test hands ``leaf.clone()`` to the student, a backward pass through the student's
    graph lands in ``leaf.grad``: the judge must know ``leaf`` to show it.
    """
    found, seen, queue = [], set(), [t.grad_fn] if t.grad_fn is not None else []
    steps = 0
    while queue and len(found) < limit and steps < 10_000:
        node = queue.pop(0)
        steps += 1
        if node is None or id(node) in seen or (stop is not None and id(node) in stop.ids):
            continue                                    # the student's part of a graph is not the test's
        seen.add(id(node))
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            found.append(variable)
        queue.extend(n for n, _ in getattr(node, "next_functions", ()))
    return found


class StudentGraph:
    """The autograd nodes of the tensors student code handed back, to tell which backward passes reach them.

    A backward pass that the test starts on its own tensors (PyTorch's answers) runs natively in
    both processes; one that goes through the student's graph is an interaction of the record.
    Both sides decide the same way: the kernel knows the student's nodes, the judge the nodes of
    the tensors it rebuilt from the record, at the same places in the same graphs.
    """

    def __init__(self):
        self.nodes: list = []
        self.ids: set[int] = set()

    def add(self, t: torch.Tensor) -> None:
        node = t.grad_fn
        if node is not None and id(node) not in self.ids:
            self.nodes.append(node)                     # kept alive, so that its id is never reused
            self.ids.add(id(node))

    def reaches(self, roots: Any) -> bool:
        if not self.ids:
            return False
        tensors = [roots] if isinstance(roots, torch.Tensor) else \
            [r for r in roots if isinstance(r, torch.Tensor)] if isinstance(roots, (list, tuple)) else []
        queue = [t.grad_fn for t in tensors if t.grad_fn is not None]
        seen: set[int] = set()
        while queue and len(seen) < 100_000:
            node = queue.pop()
            if node is None or id(node) in seen:
                continue
            if id(node) in self.ids:
                return True
            seen.add(id(node))
            queue.extend(n for n, _ in getattr(node, "next_functions", ()))
        return False


def test_seed(grade_id: str) -> int:
    """The seed of the global random generators while a test runs: the same in the kernel and the judge."""
    import zlib
    return zlib.crc32(grade_id.encode()) & 0x7FFFFFFF


#: where the sandboxed kernel's temporary files live (its TMPDIR)
KERNEL_TMP = "/home/student/tmp/"


# --- exceptions ---------------------------------------------------------------------------------

def describe_exception(err: BaseException) -> dict:
    chain = [c.__name__ for c in type(err).__mro__ if isinstance(c, type)]
    try:
        message = str(err)
    except Exception:                                  # a student's __str__ may fail
        message = "(the exception's message could not be read)"
    return {"types": chain[:12], "message": text(message)}


_FOREIGN: dict[tuple[str, type], type] = {}


def rebuild_exception(info: Any, scrub=lambda s: s) -> BaseException:
    """The exception the student's code raised, as the judge can raise it (a known base class)."""
    if not isinstance(info, dict) or not isinstance(info.get("types"), list) or not info["types"]:
        raise RecordError("malformed exception in the record")
    name = str(info["types"][0])[:80]
    message = scrub(text(info.get("message", "")))
    if name in EXCEPTIONS and name not in {"BaseException"}:
        cls = EXCEPTIONS[name]
    else:
        from grader.checks import CheckFailed
        from grader.tripwire import ShortcutUsed
        known = {"CheckFailed": CheckFailed, "ShortcutUsed": ShortcutUsed}
        if name in known:
            cls = known[name]
        else:
            base = next((EXCEPTIONS[n] for n in info["types"][1:] if n in EXCEPTIONS), Exception)
            if base is BaseException:
                base = Exception
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                name = "StudentError"
            cls = _FOREIGN.setdefault((name, base), type(name, (base,), {"__module__": "submission"}))
    if cls is KeyError:
        return KeyError(message.strip("'") if message.startswith("'") else message)
    if cls is StopIteration:
        return StopIteration()
    return cls(message)


# --- the record as a whole ----------------------------------------------------------------------

#: blobs larger than this are compressed when it pays (MNIST-like data shrinks about five times)
COMPRESS_FROM = 256 * 1024
#: the most bytes one blob may unpack to
MAX_BLOB = 1024 ** 3


def _pack(b: bytes) -> str:
    if len(b) >= COMPRESS_FROM:
        packed = zlib.compress(b, 1)
        if len(packed) < 0.8 * len(b):
            return "~" + base64.b64encode(packed).decode("ascii")     # "~" is not a base64 character
    return base64.b64encode(b).decode("ascii")


def _unpack(text: str) -> bytes:
    if text.startswith("~"):
        inflate = zlib.decompressobj()
        data = inflate.decompress(base64.b64decode(text[1:], validate=True), MAX_BLOB)
        if inflate.unconsumed_tail:
            raise RecordError("a blob of the record unpacks to more than its limit")
        return data
    return base64.b64decode(text, validate=True)


def dumps(events: list, blobs: list[bytes]) -> str:
    return json.dumps({"version": VERSION, "events": events, "blobs": [_pack(b) for b in blobs]},
                      separators=(",", ":"))


def loads(data: str) -> tuple[list, list[bytes]]:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise RecordError(f"the record is not valid JSON ({type(err).__name__})") from None
    if not isinstance(obj, dict) or obj.get("version") != VERSION:
        raise RecordError("the record has the wrong format")
    events, blobs = obj.get("events"), obj.get("blobs")
    if not isinstance(events, list) or not isinstance(blobs, list) or not all(isinstance(b, str) for b in blobs):
        raise RecordError("the record has the wrong format")
    try:
        return events, [_unpack(b) for b in blobs]
    except (ValueError, zlib.error):
        raise RecordError("the record holds a blob that is not base64 or not zlib") from None


# --- torch objects sent by value ---------------------------------------------------------------

def torch_class(path: Any, base: type) -> type:
    """A class of torch's own (``torch.nn.modules.linear.Linear``), never anything else."""
    if not isinstance(path, str) or not re.fullmatch(r"torch(\.[A-Za-z_][A-Za-z0-9_]*)+", path):
        raise RecordError(f"not a torch class: {path!r}")
    module_name, _, name = path.rpartition(".")
    import sys
    module = sys.modules.get(module_name)
    cls = getattr(module, name, None) if module is not None else None
    if not (isinstance(cls, type) and issubclass(cls, base) and cls.__module__ == module_name):
        raise RecordError(f"not a torch class: {path!r}")
    return cls


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def is_torch_module(obj: Any) -> bool:
    """A ``torch.nn`` module tree made only of torch's own classes, with no hooks: sent by value."""
    if not isinstance(obj, torch.nn.Module):
        return False
    for m in obj.modules():
        cls = type(m)
        if not cls.__module__.startswith("torch.nn.") or "." in cls.__qualname__:
            return False
        hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_state_dict_hooks",
                 "_load_state_dict_pre_hooks", "_forward_hooks_with_kwargs")
        if any(getattr(m, h, None) for h in hooks):
            return False
    return True


PLAIN = (type(None), bool, int, float, str)


def plain_attributes(module: torch.nn.Module) -> dict:
    skip = {"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"}
    out = {}
    for key, value in vars(module).items():
        if key in skip or key.startswith("_") and "hook" in key:
            continue
        if isinstance(value, PLAIN) or (isinstance(value, tuple) and all(isinstance(v, PLAIN) for v in value)):
            out[key] = list(value) if isinstance(value, tuple) else value
            if isinstance(value, tuple):
                out[key] = {"tuple": list(value)}
    return out


def is_torch_optimizer(obj: Any) -> bool:
    cls = type(obj)
    return isinstance(obj, torch.optim.Optimizer) and cls.__module__.startswith("torch.optim.") \
        and "." not in cls.__qualname__
