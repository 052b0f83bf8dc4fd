"""The judge's side: run a test cell again, in the grader's process, against the kernel's record.

:func:`judge_test` runs the test code of one cell, taken from the lesson's source notebook,
in a fresh namespace where the student's names are bound to replaying stand-ins. The test
builds its inputs and computes PyTorch's answers itself. Each time it touches something of
the student's, the stand-in takes the next event of the record, checks that it is the same
operation on the same inputs (tensors by dtype, shape, storage and a fingerprint of their
values; everything else exactly), replays the callbacks the student invoked (running the
test's own functions here), applies the recorded effects to the test's own objects, and
answers with the recorded value. The test's checks then pass or fail as they would on the
student's values, and that is the verdict. No student code runs here, and the record is
only ever read as data (JSON numbers and strings, raw tensor bytes).
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import math
import pathlib
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import torch

from grader import tripwire
from grader.judge import wire
from grader.judge.wire import RecordError


class Interrupted(Exception):
    """The kernel was interrupted in the middle of this (a time limit)."""


@dataclass
class Verdict:
    passed: bool
    message: str = ""


class _Registry:
    def __init__(self):
        self.tensors: list[torch.Tensor] = []
        self.tensor_ids: dict[int, int] = {}
        self.storages: dict[int, torch.UntypedStorage] = {}
        self.storage_index: dict[tuple, int] = {}
        self.handles: list = []
        self.callbacks: list = []
        self.callback_ids: dict[int, int] = {}
        self.containers: list = []
        self.container_ids: dict[int, int] = {}
        self.generators: list = []
        self.generator_ids: dict[int, int] = {}
        self.values: list = []
        self.value_ids: dict[int, int] = {}
        self.opaque: list = []
        self.opaque_ids: dict[int, int] = {}


_FOREIGN_TENSORS: dict[str, type] = {}


def _foreign_tensor(name: str) -> type:
    """A plain tensor subclass named like the student's (no methods of its own)."""
    if not name.isidentifier():
        name = "TensorSubclass"
    return _FOREIGN_TENSORS.setdefault(name, type(name, (torch.Tensor,), {"__module__": "submission"}))


class Replayer:
    """Walks the record of one test cell while the test code runs again."""

    def __init__(self, events: list, blobs: list[bytes], scrub: Callable[[str], str] = lambda s: s):
        self.events, self.blobs, self.pos = events, blobs, 0
        self.reg = _Registry()
        self.scrub = scrub
        self.forbids: list = []
        self.graph = wire.StudentGraph()
        self.paths: dict[str, str] = {}                 # kernel's temporary folders -> the judge's

    # --- reading the record ------------------------------------------------------------------
    def next(self, what: str) -> dict:
        if self.pos >= len(self.events):
            raise RecordError(f"the record ends where the test expects {what}")
        event = self.events[self.pos]
        if not isinstance(event, dict):
            raise RecordError("malformed event in the record")
        if "end" in event and what != "the end":
            end = event["end"]
            if end == "ok":
                raise RecordError(f"the record ends where the test expects {what}")
            err = wire.rebuild_exception(end, self._text)
            raise RecordError(f"in the notebook, the test stopped here with {type(err).__name__}: {err}")
        self.pos += 1
        return event

    def blob(self, index: Any) -> bytes:
        if not isinstance(index, int) or not 0 <= index < len(self.blobs):
            raise RecordError("the record refers to a blob it does not hold")
        return self.blobs[index]

    # --- tensors ---------------------------------------------------------------------------
    def build_tensor(self, meta: Any) -> torch.Tensor:
        if not isinstance(meta, dict):
            raise RecordError("malformed tensor in the record")
        dtype = wire.parse_dtype(meta.get("dtype"))
        shape, stride, off = meta.get("shape"), meta.get("stride"), meta.get("off", 0)
        if not (isinstance(shape, list) and isinstance(stride, list) and len(shape) == len(stride) <= 16
                and all(isinstance(n, int) and 0 <= n < 2 ** 40 for n in shape + stride)
                and isinstance(off, int) and off >= 0):
            raise RecordError("malformed tensor shape in the record")
        device = str(meta.get("device", "cpu"))
        if device == "meta":
            t = torch.empty_strided(shape, stride, dtype=dtype, device="meta")
        else:
            try:
                dev = torch.device(device)
            except RuntimeError:
                raise RecordError(f"unknown device {device!r} in the record") from None
            if dev.type not in ("cpu", "cuda") or (dev.type == "cuda" and not torch.cuda.is_available()):
                raise RecordError(f"the record holds a tensor on {device}, which this machine does not have")
            sid = meta.get("sid")
            if "values" in meta:
                t = wire.tensor_from_values(self.blob(meta["values"]), dtype, shape).to(dev)
                if isinstance(sid, int):
                    self._add_storage(sid, t.untyped_storage())
            else:
                if isinstance(sid, int) and sid in self.reg.storages:
                    storage = self.reg.storages[sid]
                elif isinstance(sid, int) and "data" in meta:
                    raw = torch.frombuffer(bytearray(self.blob(meta["data"])), dtype=torch.uint8).clone()
                    storage = raw.to(dev).untyped_storage() if len(raw) else torch.UntypedStorage(0, device=dev)
                    self._add_storage(sid, storage)
                else:
                    raise RecordError("the record refers to a tensor's memory it never sent")
                itemsize = torch.empty(0, dtype=dtype).element_size()
                extent = off + sum((n - 1) * s for n, s in zip(shape, stride)) + 1 if all(shape) else 0
                if extent * itemsize > storage.nbytes():
                    raise RecordError("a tensor in the record reaches past the end of its memory")
                t = torch.empty(0, dtype=dtype, device=dev).set_(storage, off, shape, stride)
        cls, rg, leaf = meta.get("cls"), bool(meta.get("rg")), bool(meta.get("leaf", True))
        if rg and not (dtype.is_floating_point or dtype.is_complex):
            raise RecordError("an integer tensor cannot require grad")
        if cls == "Parameter":
            t = torch.nn.Parameter(t, requires_grad=rg)
        else:
            if rg:
                t.requires_grad_(True)
                if not leaf:
                    t = t.view_as(t)                     # part of a graph, as in the kernel
            if cls not in (None, "Tensor", "Parameter"):
                t = t.as_subclass(_foreign_tensor(str(cls)))
        return t

    def _add_storage(self, sid: int, storage: torch.UntypedStorage) -> None:
        self.reg.storages[sid] = storage
        if storage.nbytes():
            self.reg.storage_index[(str(storage.device), storage.data_ptr(), storage.nbytes())] = sid

    def _register_tensor(self, t: torch.Tensor) -> int:
        tid = len(self.reg.tensors)
        self.reg.tensors.append(t)
        self.reg.tensor_ids[id(t)] = tid
        return tid

    # --- what the test passes in (mirrors Recorder.encode_in) -------------------------------------
    def encode_in(self, v: Any) -> Any:
        reg = self.reg
        if v is None or isinstance(v, (bool, int, str)):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else ["float", repr(v)]
        if isinstance(v, ReplayObject):
            return ["H", v._hid]
        if isinstance(v, type) and isinstance(v, ReplayMeta):
            return ["name", v._rp_name] if v._rp_root is v else ["class", v.__qualname__]
        if isinstance(v, torch.Tensor):
            return self._tensor_in(v)
        if type(v) is tuple:
            return ["tuple", [self.encode_in(x) for x in v]]
        if type(v) in (list, dict, collections.OrderedDict):
            if id(v) in reg.container_ids:
                return ["L", reg.container_ids[id(v)]]
            lid = len(reg.containers)
            reg.containers.append(v)
            reg.container_ids[id(v)] = lid
            if isinstance(v, dict):
                return ["L", lid, "dict", type(v).__name__, [[self.encode_in(k), self.encode_in(x)] for k, x in v.items()]]
            return ["L", lid, "list", "list", [self.encode_in(x) for x in v]]
        if isinstance(v, torch.Generator):
            if id(v) in reg.generator_ids:
                return ["G", reg.generator_ids[id(v)]]
            reg.generator_ids[id(v)] = len(reg.generators)
            reg.generators.append(v)
            return ["G", reg.generator_ids[id(v)], wire.fingerprint(v.get_state())]
        if wire.is_torch_module(v) or wire.is_torch_optimizer(v):
            return self._by_value_in(v)
        literal = _literal(v)
        if literal is not None:
            return literal
        if isinstance(v, collections.abc.Iterator) and not callable(v):
            return self._callback(v, "iter")
        if callable(v):
            return self._callback(v, "call")
        if id(v) in reg.opaque_ids:
            return ["X", reg.opaque_ids[id(v)]]
        reg.opaque_ids[id(v)] = len(reg.opaque)
        reg.opaque.append(v)
        return ["X", reg.opaque_ids[id(v)], type(v).__name__]

    def _tensor_in(self, t: torch.Tensor) -> list:
        if id(t) in self.reg.tensor_ids:
            return ["T", self.reg.tensor_ids[id(t)]]
        tid = self._register_tensor(t)
        meta = {"dtype": wire.dtype_name(t.dtype), "shape": list(t.shape), "stride": list(t.stride()),
                "off": t.storage_offset(), "device": str(t.device), "rg": t.requires_grad, "leaf": t.is_leaf,
                "cls": type(t).__name__}
        if t.device.type != "meta":
            storage = t.untyped_storage()
            key = (str(storage.device), storage.data_ptr(), storage.nbytes())
            sid = self.reg.storage_index.get(key) if storage.nbytes() else None
            if sid is None:
                sid = len(self.reg.storages)
                self._add_storage(sid, storage)
            meta["sid"] = sid
            meta["fp"] = wire.fingerprint(t)
        if t.is_leaf or t.retains_grad:
            meta["grad"] = None if t.grad is None else self._tensor_in(t.grad)
        if t.grad_fn is not None:
            meta["leaves"] = [self._tensor_in(leaf) for leaf in wire.graph_leaves(t, self.graph)]
        return ["T", tid, meta]

    def _callback(self, fn: Any, kind: str) -> list:
        if id(fn) in self.reg.callback_ids:
            return ["C", self.reg.callback_ids[id(fn)]]
        cid = len(self.reg.callbacks)
        self.reg.callbacks.append(fn)
        self.reg.callback_ids[id(fn)] = cid
        return ["C", cid, kind]

    def _by_value_in(self, v: Any) -> list:
        reg = self.reg
        if id(v) in reg.value_ids:
            return ["M", reg.value_ids[id(v)]]
        mid = len(reg.values)
        reg.values.append(v)
        reg.value_ids[id(v)] = mid
        if isinstance(v, torch.nn.Module):
            return ["M", mid, "module", self._module_in(v)]
        groups = [[[self.encode_in(p) for p in g["params"]], [[k, self.encode_in(x)] for k, x in g.items()
                                                               if k != "params"]] for g in v.param_groups]
        state = [[self.encode_in(p), [[k, self.encode_in(x)] for k, x in s.items()]] for p, s in v.state.items()]
        return ["M", mid, "optim", wire.class_path(type(v)), groups, state]

    def _module_in(self, m: torch.nn.Module) -> list:
        params = [[n, None if p is None else self.encode_in(p)] for n, p in m._parameters.items()]
        buffers = [[n, None if b is None else self.encode_in(b)] for n, b in m._buffers.items()]
        children = [[n, None if c is None else self._module_in(c)] for n, c in m._modules.items()]
        return [wire.class_path(type(m)), wire.plain_attributes(m), params, buffers, children]

    # --- what came back (mirrors Recorder.encode_out) ----------------------------------------------
    def decode_out(self, enc: Any) -> Any:
        reg = self.reg
        if enc is None or isinstance(enc, (bool, int, float)):
            return enc
        if isinstance(enc, str):
            return self.scrub(self._local(wire.text(enc, wire.MAX_TEXT * 10)))
        if not isinstance(enc, list) or not enc or not isinstance(enc[0], str):
            raise RecordError("malformed value in the record")
        tag, rest = enc[0], enc[1:]
        if tag == "T":
            tid = _index(rest[0])
            if len(rest) == 1:
                return _at(reg.tensors, tid, "tensor")
            if tid != len(reg.tensors):
                raise RecordError("the record numbers its tensors out of order")
            meta = rest[1]
            t = self.build_tensor(meta)
            self._register_tensor(t)
            self.graph.add(t)
            grad = meta.get("grad")
            if grad is not None:
                g = self.decode_out(grad)
                _set_grad(t, g)
            return t
        if tag == "H":
            hid = _index(rest[0])
            if len(rest) == 1:
                return _at(reg.handles, hid, "object")
            if hid != len(reg.handles):
                raise RecordError("the record numbers its objects out of order")
            proxy = _proxy_class(str(rest[1]))(self, hid)
            reg.handles.append(proxy)
            return proxy
        if tag == "C":
            return _at(reg.callbacks, _index(rest[0]), "test function")
        if tag == "L":
            return _at(reg.containers, _index(rest[0]), "container")
        if tag == "G":
            gid = _index(rest[0])
            if len(rest) == 1:
                return _at(reg.generators, gid, "generator")
            g = torch.Generator()
            _set_state(g, self.blob(rest[1][1]) if isinstance(rest[1], list) and len(rest[1]) == 2 else b"")
            reg.generators.append(g)
            reg.generator_ids[id(g)] = gid
            return g
        if tag == "M":
            mid = _index(rest[0])
            if len(rest) == 1:
                return _at(reg.values, mid, "module")
            if mid != len(reg.values):
                raise RecordError("the record numbers its modules out of order")
            slot = len(reg.values)
            reg.values.append(None)
            value = self._module_out(rest[2]) if rest[1] == "module" else self._optim_out(rest[2], rest[3], rest[4])
            reg.values[slot] = value
            reg.value_ids[id(value)] = slot
            return value
        if tag == "X":
            return _at(reg.opaque, _index(rest[0]), "object")
        if tag == "tuple":
            return tuple(self.decode_out(x) for x in _items(rest))
        if tag == "list":
            return [self.decode_out(x) for x in _items(rest)]
        if tag == "dict":
            kind = rest[0]
            pairs = [(self.decode_out(k), self.decode_out(x)) for k, x in _pairs(rest[1])]
            return (collections.OrderedDict if kind == "OrderedDict" else dict)(pairs)
        if tag == "set":
            return (frozenset if rest[0] == "frozenset" else set)(self.decode_out(x) for x in _items(rest[1:]))
        if tag == "structseq":
            cls = wire.torch_class(rest[0], tuple) if str(rest[0]).startswith("torch.return_types.") else None
            if cls is None:
                raise RecordError("unknown structure in the record")
            return cls([self.decode_out(x) for x in _items(rest[1:])])
        if tag == "ndarray":
            import numpy as np
            dtype = np.dtype(str(rest[0]))
            if dtype.kind not in "biuf":
                raise RecordError("unsupported array in the record")
            return np.frombuffer(self.blob(rest[2]), dtype=dtype).reshape([int(n) for n in rest[1]]).copy()
        if tag == "bytes":
            return self.blob(rest[0])
        if tag == "path" and rest:
            return pathlib.Path(self._local(str(rest[0])))
        return _decode_literal(tag, rest)

    def _file(self, rel: Any, data: bytes | None) -> None:
        """A file that student code wrote (or removed) in one of the test's temporary folders."""
        if not isinstance(rel, str) or "\x00" in rel:
            raise RecordError("malformed file name in the record")
        folder, _, inside = rel.partition("/")
        mine = self.paths.get(KERNEL_TMP + folder)
        if mine is None:
            return                                   # a folder the test never showed the student: not ours
        target = pathlib.Path(mine, inside).resolve()
        if not str(target).startswith(str(pathlib.Path(mine).resolve()) + "/"):
            raise RecordError("a file in the record lies outside its folder")
        if data is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def _text(self, text: str) -> str:
        return self.scrub(self._local(text))

    def _local(self, text: str) -> str:
        """The kernel's temporary folders, named as the judge's own."""
        if KERNEL_TMP in text:
            for kernel, mine in self.paths.items():
                text = text.replace(kernel, mine)
        return text

    def _module_out(self, spec: Any) -> torch.nn.Module:
        path, attrs, params, buffers, children = spec
        cls = wire.torch_class(path, torch.nn.Module)
        m = cls.__new__(cls)
        torch.nn.Module.__init__(m)
        for key, value in (attrs or {}).items():
            if not isinstance(key, str) or key.startswith("__"):
                raise RecordError("malformed module in the record")
            if isinstance(value, dict) and set(value) == {"tuple"}:
                value = tuple(value["tuple"])
            object.__setattr__(m, key, value)
        for name, enc in params:
            value = None if enc is None else self.decode_out(enc)
            if value is not None and not isinstance(value, torch.nn.Parameter):
                raise RecordError("a module's parameter in the record is not an nn.Parameter")
            m._parameters[str(name)] = value
        for name, enc in buffers:
            m._buffers[str(name)] = None if enc is None else self.decode_out(enc)
        for name, child in children:
            m._modules[str(name)] = None if child is None else self._module_out(child)
        return m

    def _optim_out(self, path: Any, groups: Any, state: Any) -> torch.optim.Optimizer:
        cls = wire.torch_class(path, torch.optim.Optimizer)
        built = []
        for params, hyper in groups:
            group = {str(k): self.decode_out(x) for k, x in hyper}
            group["params"] = [self.decode_out(p) for p in params]
            built.append(group)
        try:
            opt = cls(built)
        except (TypeError, ValueError, RuntimeError) as err:
            raise RecordError(f"the optimizer in the record cannot be rebuilt: {err}") from None
        for p_enc, values in state:
            p = self.decode_out(p_enc)
            opt.state[p] = {str(k): self.decode_out(x) for k, x in values}
        return opt

    # --- effects ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Mirror of Recorder.refresh (which registers nothing)."""

    def apply(self, done: dict) -> None:
        for effect in done.get("fx", []):
            if not isinstance(effect, list) or len(effect) != 3:
                raise RecordError("malformed effect in the record")
            kind, index, value = effect
            if kind == "data":
                t = _at(self.reg.tensors, index, "tensor")
                if t.device.type == "meta":
                    continue
                new = wire.tensor_from_values(self.blob(value), t.dtype, list(t.shape))
                with torch.no_grad():
                    t.copy_(new.to(t.device))
            elif kind == "meta":
                t = _at(self.reg.tensors, index, "tensor")
                new = self.build_tensor(value)
                with torch.no_grad():
                    t.data = new.detach()
                if t.is_leaf and t.requires_grad != new.requires_grad:
                    t.requires_grad_(new.requires_grad)
                if value.get("grad") is not None:
                    _set_grad(t, self.decode_out(value["grad"]))
            elif kind == "grad":
                t = _at(self.reg.tensors, index, "tensor")
                _set_grad(t, None if value is None else self.decode_out(value))
            elif kind == "list":
                c = _at(self.reg.containers, index, "list")
                c[:] = [self.decode_out(x) for x in value]
            elif kind == "dict":
                c = _at(self.reg.containers, index, "dict")
                c.clear()
                c.update((self.decode_out(k), self.decode_out(x)) for k, x in _pairs(value))
            elif kind == "gen":
                _set_state(_at(self.reg.generators, index, "generator"), self.blob(value))
            elif kind in ("file", "unlink"):
                self._file(index, None if value is None else self.blob(value))
            else:
                raise RecordError(f"unknown effect {kind!r} in the record")
        if "rng" in done:
            torch.set_rng_state(torch.frombuffer(bytearray(self.blob(done["rng"])), dtype=torch.uint8).clone())
        if "grad_mode" in done:
            torch.set_grad_enabled(bool(done["grad_mode"]))
        for trip in done.get("trip", []):
            job, call = str(trip[0]), wire.text(trip[1], 200)
            for record in reversed(self.forbids):
                if record.job == job:
                    record.calls.append(call)
                    break

    # --- one interaction -----------------------------------------------------------------------
    def interact(self, target: list, op: str, args: tuple = (), kwargs: dict | None = None,
                 native: Callable | None = None) -> Any:
        kwargs = kwargs or {}
        mine_args = [self.encode_in(a) for a in args]
        mine_kw = {k: self.encode_in(v) for k, v in kwargs.items()}
        event = self.next(f"{_describe(target, op, args)}")
        if event.get("op") != op or event.get("target") != target:
            raise RecordError(f"the test expected {_describe(target, op, args)}, the record holds "
                              f"{_describe(event.get('target'), event.get('op'), ())}")
        _same(event.get("args"), mine_args, f"the inputs of {_describe(target, op, args)}", self.paths)
        _same(event.get("kw"), mine_kw, f"the keyword inputs of {_describe(target, op, args)}", self.paths)
        self.refresh()
        while True:
            done = self.next(f"the outcome of {_describe(target, op, args)}")
            if "cb" in done:
                self._callback_run(done)
                continue
            break
        if not ("ret" in done or "raise" in done):
            raise RecordError("malformed outcome in the record")
        if native is not None and "raise" not in done:
            with contextlib.suppress(Exception):
                native()
        self.apply(done)
        if "raise" in done:
            if done["raise"].get("types", [None])[0] == "KeyboardInterrupt":
                raise Interrupted("the notebook's kernel was interrupted here (a time limit was reached)")
            raise wire.rebuild_exception(done["raise"], self._text)
        return self.decode_out(done["ret"])

    def _callback_run(self, event: dict) -> None:
        fn = _at(self.reg.callbacks, event.get("cb"), "test function")
        self.apply({"fx": event.get("fx", [])})
        args = [self.decode_out(a) for a in event.get("args", [])]
        kwargs = {str(k): self.decode_out(v) for k, v in (event.get("kw") or {}).items()}
        try:
            result = next(fn) if event.get("how") == "next" else fn(*args, **kwargs)
        except BaseException as err:                       # noqa: B902 - compared with the record
            after = self.next("the end of a test function the student called")
            if "cbraise" not in after or after["cbraise"].get("types", [None])[0] != type(err).__name__:
                raise RecordError(f"a test function raised {type(err).__name__} here, but not in the notebook") \
                    from None
            return
        after = self.next("the end of a test function the student called")
        if "cbret" not in after:
            raise RecordError("a test function returned here, but raised in the notebook")
        _same(after["cbret"], self.encode_in(result), "what a test function returned", self.paths)

    @contextlib.contextmanager
    def forbid(self, record) -> Any:
        """``tripwire.forbid`` in the judge: the shortcuts the kernel saw during the block."""
        self.forbids.append(record)
        try:
            yield
        except tripwire.ShortcutUsed:
            if not record.calls:
                raise
        finally:
            self.forbids.remove(record)
        if record.calls:
            raise tripwire.ShortcutUsed(record.message())


# --- stand-ins for the student's objects and names ------------------------------------------------

class ReplayObject:
    __slots__ = ("_rp", "_hid")

    def __init__(self, rp: Replayer, hid: int):
        object.__setattr__(self, "_rp", rp)
        object.__setattr__(self, "_hid", hid)

    def _do(self, op: str, *args, **kwargs):
        return self._rp.interact(["H", self._hid], op, args, kwargs)

    def __getattr__(self, name):
        return self._do("getattr", name)

    def __setattr__(self, name, value):
        return self._do("setattr", name, value)

    def __delattr__(self, name):
        return self._do("delattr", name)

    def __call__(self, *args, **kwargs):
        return self._do("call", *args, **kwargs)

    def __iter__(self):
        return self._do("iter")

    def __next__(self):
        return self._do("next")

    def __hash__(self):
        return object.__hash__(self)

    def __copy__(self):
        raise TypeError("a test cannot copy a student's object; call its methods instead")

    __deepcopy__ = __reduce_ex__ = __reduce__ = __copy__


def _make_op(name: str):
    def method(self, *args):
        return self._do(name, *args)
    method.__name__ = name
    return method


def _install_ops() -> None:
    from grader.judge.record import _INPLACE, _OPS, _REFLECTED
    for name in list(_OPS) + list(_INPLACE) + list(_REFLECTED):
        setattr(ReplayObject, name, _make_op(name))


_install_ops()
_PROXIES: dict[str, type] = {}


def _proxy_class(name: str) -> type:
    if not name.isidentifier():
        name = "StudentObject"
    if name not in _PROXIES:
        _PROXIES[name] = type(name, (ReplayObject,), {"__slots__": (), "__module__": "submission"})
    return _PROXIES[name]


class ReplayMeta(type):
    """The class of the stand-ins for the student's names: calling and isinstance are interactions."""

    def __call__(cls, *args, **kwargs):
        return cls._rp.interact(cls._rp_target(), "call", args, kwargs)

    def __instancecheck__(cls, obj):
        return cls._rp.interact(cls._rp_target(), "isinstance", (obj,))

    def _rp_target(cls) -> list:
        return ["name", cls._rp_name] if cls._rp_root is cls else ["class", cls.__qualname__]


def student_stand_in(rp: Replayer, name: str) -> type:
    cls = ReplayMeta(name, (), {"__module__": "submission", "__qualname__": name})
    cls._rp, cls._rp_name, cls._rp_root = rp, name, cls
    return cls


# --- helpers -------------------------------------------------------------------------------------

def _literal(v: Any) -> list | None:
    from grader.judge.record import _literal as literal
    return literal(v)


def _decode_literal(tag: str, rest: list) -> Any:
    try:
        if tag == "float":
            return float(rest[0])
        if tag == "dtype":
            return wire.parse_dtype(rest[0])
        if tag == "device":
            return torch.device(str(rest[0]))
        if tag == "size":
            return torch.Size([int(n) for n in rest[0]])
        if tag == "slice":
            return slice(*[None if p is None else int(p) for p in rest[:3]])
        if tag == "ellipsis":
            return Ellipsis
        if tag == "range":
            return range(*[int(p) for p in rest[:3]])
        if tag == "path":
            return pathlib.Path(str(rest[0]))
        if tag == "complex":
            return complex(float(rest[0]), float(rest[1]))
        if tag in ("name", "class"):
            raise RecordError("the record hands back a student's class, which a test cannot use")
    except (TypeError, ValueError, IndexError, RuntimeError):
        raise RecordError(f"malformed {tag} in the record") from None
    raise RecordError(f"unknown value {tag!r} in the record")


def _index(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecordError("malformed reference in the record")
    return value


def _at(items: list, index: Any, what: str) -> Any:
    index = _index(index)
    if index >= len(items):
        raise RecordError(f"the record refers to a {what} it never sent")
    return items[index]


def _items(rest: list) -> list:
    if not rest or not isinstance(rest[0], list):
        raise RecordError("malformed sequence in the record")
    return rest[0]


def _pairs(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise RecordError("malformed mapping in the record")
    return value


def _set_grad(t: torch.Tensor, g: Any) -> None:
    if g is not None and not isinstance(g, torch.Tensor):
        raise RecordError("a gradient in the record is not a tensor")
    try:
        t.grad = g
    except (RuntimeError, TypeError) as err:
        raise RecordError(f"a gradient in the record does not fit its tensor: {err}") from None


def _set_state(g: torch.Generator, data: bytes) -> None:
    try:
        g.set_state(torch.frombuffer(bytearray(data), dtype=torch.uint8).clone())
    except (RuntimeError, ValueError):
        raise RecordError("a random generator's state in the record is malformed") from None


def _describe(target: Any, op: Any, args: tuple) -> str:
    if isinstance(target, list) and target[:1] == ["name"] and len(target) > 1:
        who = str(target[1])
    elif isinstance(target, list) and target[:1] == ["class"] and len(target) > 1:
        who = str(target[1])
    elif isinstance(target, list) and target[:1] == ["autograd"]:
        return f"torch.autograd.{op}"
    else:
        who = "a student object"
    if op == "call":
        return f"a call of {who}"
    if op in ("getattr", "setattr", "delattr") and args:
        return f"{op}({who}, {str(args[0])[:40]!r})"
    return f"{op} on {who}"


def _same(recorded: Any, mine: Any, what: str, paths: dict | None = None) -> None:
    if not _equal(recorded, mine, paths if paths is not None else {}):
        raise RecordError(f"{what} differ between the notebook and the test: something in the notebook changed "
                          f"what the test passes to your code")


def _equal(a: Any, b: Any, paths: dict | None = None) -> bool:
    paths = {} if paths is None else paths
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return False
        for key in a:
            if key == "fp":
                if not wire.same_fingerprint(a[key], b[key]):
                    return False
            elif key == "stride":
                continue                                    # a layout detail, not a difference in values
            elif not _equal(a[key], b[key], paths):
                return False
        return True
    if isinstance(a, list) and isinstance(b, list):
        if len(a) == 2 and a[0] == "path" and b[:1] == ["path"]:
            return _same_path(a[1], b[1], paths)
        return len(a) == len(b) and all(_equal(x, y, paths) for x, y in zip(a, b))
    if isinstance(a, str) and isinstance(b, str) and a != b:
        return _same_path(a, b, paths)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6 * max(abs(a), abs(b))
    return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                              and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


KERNEL_TMP = wire.KERNEL_TMP


def _same_path(a: Any, b: Any, paths: dict) -> bool:
    """A temporary folder has another name in the kernel than here: compare what lies inside it.

    ``a`` is the kernel's, ``b`` the judge's; a match teaches ``paths`` the pair of folder names, so
    that the kernel's name in a message or a return value reads as the judge's (see ``Replayer.decode_out``).
    """
    a, b = str(a), str(b)
    if a == b:
        return True
    mine = tempfile.gettempdir().rstrip("/") + "/"
    if not (a.startswith(KERNEL_TMP) and b.startswith(mine)):
        return False
    ka, kb = a[len(KERNEL_TMP):].split("/", 1), b[len(mine):].split("/", 1)
    if (ka[1] if len(ka) > 1 else "") != (kb[1] if len(kb) > 1 else ""):
        return False
    paths[KERNEL_TMP + ka[0]] = mine + kb[0]
    return True


# --- running a test cell in the judge -----------------------------------------------------------

def judge_test(source: str, setup: str, helpers: list[str], students: list[str], record: str | None,
               scrub: Callable[[str], str] = lambda s: s, name: str = "test") -> Verdict:
    """The verdict on one test cell, given the record its kernel published (None: none came back)."""
    if record is None:
        return Verdict(False, "the test did not run in the notebook (no record of it came back): an earlier "
                              "error, a time limit, or a notebook that stopped the test from running")
    try:
        events, blobs = wire.loads(record)
    except RecordError as err:
        return Verdict(False, f"the record of this test cannot be read: {err}")
    rp = Replayer(events, blobs, scrub)
    ns: dict[str, Any] = {"__name__": "__test__", "__builtins__": builtins}
    for student in students:
        ns[student] = student_stand_in(rp, student)
    originals = {"backward": torch.autograd.backward, "grad": torch.autograd.grad}

    def roots(args, kwargs):
        return args[0] if args else kwargs.get("tensors", kwargs.get("outputs"))

    def backward(*args, **kwargs):
        if not rp.graph.reaches(roots(args, kwargs)):
            return originals["backward"](*args, **kwargs)
        return rp.interact(["autograd"], "backward", args, kwargs,
                           native=lambda: originals["backward"](*args, **kwargs))

    def grad(*args, **kwargs):
        if not rp.graph.reaches(roots(args, kwargs)):
            return originals["grad"](*args, **kwargs)
        return rp.interact(["autograd"], "grad", args, kwargs)

    import random
    rng, grad_mode = torch.get_rng_state(), torch.is_grad_enabled()
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    py_rng = random.getstate()
    torch.manual_seed(wire.test_seed(name))              # as the kernel did before this test
    random.seed(wire.test_seed(name))
    tripwire._replay[0] = rp
    torch.autograd.backward, torch.autograd.grad = backward, grad
    try:
        exec(compile(setup, "<lesson setup>", "exec"), ns)
        for index, helper in enumerate(helpers):
            exec(compile(helper, f"<lesson helpers {index + 1}>", "exec"), ns)
        exec(compile(source, f"<{name}>", "exec"), ns)
        end = rp.next("the end")
        if "end" not in end:
            raise RecordError("the notebook did more with your code than the test asked for")
        if end["end"] != "ok":
            err = wire.rebuild_exception(end["end"], rp._text)
            return Verdict(False, f"in the notebook this test failed with {type(err).__name__}: {err}")
    except RecordError as err:
        return Verdict(False, f"this test could not be judged: {err}")
    except RecursionError:
        return Verdict(False, "RecursionError: the test went too deep")
    except BaseException as err:                            # noqa: B902 - the test's own verdict
        return Verdict(False, f"{type(err).__name__}: {err}")
    finally:
        torch.autograd.backward, torch.autograd.grad = originals["backward"], originals["grad"]
        tripwire._replay[0] = None
        torch.set_rng_state(rng)
        random.setstate(py_rng)
        torch.set_grad_enabled(grad_mode)
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)
    return Verdict(True)
