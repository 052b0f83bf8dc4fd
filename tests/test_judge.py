"""The judge: a test's record made from student code in one place, replayed in another, and what comes of it.

Here both sides run in this process (the kernel's side against a stand-in for IPython), which is enough
to check what the replay accepts, what it refuses, and that no record, however malformed, breaks it.
"""

from __future__ import annotations

import json

import pytest
import torch

from grader.judge import record as rec
from grader.judge import wire
from grader.judge.lesson import Lesson
from grader.judge.replay import judge_test

SETUP = "import torch\nimport torch.nn.functional as F\nfrom grader import checks, tripwire\n"


def make_record(monkeypatch, source: str, student_code: str, students: list[str], helpers=(), grade_id="test") -> str:
    """Run ``source`` as the kernel would, against ``student_code``; return the record it publishes."""
    import IPython
    import IPython.display

    user_ns: dict = {}
    exec(SETUP + student_code, user_ns)
    published = {}

    class Shell:
        pass

    Shell.user_ns = user_ns
    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell)
    monkeypatch.setattr(IPython.display, "publish_display_data", lambda data, **kw: published.update(data))
    spec = json.dumps({"grade_id": grade_id, "setup": SETUP, "helpers": list(helpers), "students": students,
                       "source": source, "limit": 10 ** 8})
    try:
        rec.run_test(spec)
    except BaseException:                                    # noqa: B902 - the test may fail in the kernel
        pass
    return published[wire.MIME]


def judge(source, record, students, helpers=(), scrub=lambda s: s, grade_id="test"):
    return judge_test(source, SETUP, list(helpers), students, record, scrub, grade_id)


def both(monkeypatch, source, student_code, students, helpers=()):
    return judge(source, make_record(monkeypatch, source, student_code, students, helpers), students, helpers)


RELU_TEST = '''
z = checks.seeded(1, 4, 5)
kept = z.clone()
out = tripwire.call(relu, z, job="relu")
checks.assert_unchanged(kept, z, "z")
checks.assert_equal(out, F.relu(kept), "relu(z)")
'''


def test_a_correct_function_passes_and_a_wrong_one_fails_with_the_checks_message(monkeypatch):
    assert both(monkeypatch, RELU_TEST, "def relu(x):\n    return x.clamp(min=0)\n", ["relu"]).passed
    v = both(monkeypatch, RELU_TEST, "def relu(x):\n    return x.abs()\n", ["relu"])
    assert not v.passed and "relu(z)" in v.message and "values differ" in v.message


def test_in_place_changes_of_the_inputs_reach_the_judge(monkeypatch):
    v = both(monkeypatch, RELU_TEST, "def relu(x):\n    x.clamp_(min=0)\n    return x.clone()\n", ["relu"])
    assert not v.passed and "modified in place" in v.message


def test_a_forbidden_shortcut_seen_in_the_kernel_fails_in_the_judge(monkeypatch):
    v = both(monkeypatch, RELU_TEST, "def relu(x):\n    return F.relu(x)\n", ["relu"])
    assert not v.passed and "ShortcutUsed" in v.message
    caught = "def relu(x):\n    try:\n        return F.relu(x)\n    except Exception:\n        return x.clamp(min=0)\n"
    v = both(monkeypatch, RELU_TEST, caught, ["relu"])
    assert not v.passed and "ShortcutUsed" in v.message


def test_an_untouched_stub_fails_with_its_exception(monkeypatch):
    v = both(monkeypatch, RELU_TEST, "def relu(x):\n    raise NotImplementedError()\n", ["relu"])
    assert not v.passed and v.message.startswith("NotImplementedError")


def test_a_missing_name_fails_cleanly(monkeypatch):
    v = both(monkeypatch, RELU_TEST, "", ["relu"])
    assert not v.passed and "NameError" in v.message and "no longer defines it" in v.message


VAR = '''
class Var:
    def __init__(self, data, parents=()):
        self.data, self.grad, self._parents, self._back = data, None, parents, lambda: None

    def __matmul__(self, other):
        out = Var(self.data @ other.data, (self, other))
        def back():
            self.grad = (self.grad if self.grad is not None else 0) + out.grad @ other.data.T
            other.grad = (other.grad if other.grad is not None else 0) + self.data.T @ out.grad
        out._back = back
        return out

    def sum(self):
        out = Var(self.data.sum(), (self,))
        def back():
            self.grad = (self.grad if self.grad is not None else 0) + out.grad * torch.ones_like(self.data)
        out._back = back
        return out

    def backward(self):
        order, seen = [], set()
        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for p in v._parents:
                    visit(p)
                order.append(v)
        visit(self)
        self.grad = torch.ones_like(self.data)
        for v in reversed(order):
            v._back()
'''
VAR_TEST = '''
a, b = checks.seeded(1, 3, 4), checks.seeded(2, 4, 2)
va, vb = Var(a), Var(b)
assert isinstance(va, Var) and va.data is a, "Var keeps the tensor it was given"
loss = (va @ vb).sum()
assert va.grad is None
loss.backward()
ra, rb = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
(ra @ rb).sum().backward()
checks.assert_close(va.grad, ra.grad, "a.grad", atol=1e-6)
checks.assert_close(vb.grad, rb.grad, "b.grad", atol=1e-6)
assert type(va).__name__ == "Var"
'''


def test_a_class_of_the_student_is_judged_through_its_methods_and_operators(monkeypatch):
    assert both(monkeypatch, VAR_TEST, VAR, ["Var"]).passed
    wrong = VAR.replace("out.grad @ other.data.T", "out.grad @ other.data")
    assert not both(monkeypatch, VAR_TEST, wrong, ["Var"]).passed


CALLBACK_TEST = '''
calls = []
def f(x):
    calls.append(x.clone())
    return (x ** 2).sum()
x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
g = numerical_grad(f, x)
checks.assert_close(g, 2 * x, "numerical_grad", atol=1e-6)
assert len(calls) == 6, f"f was called {len(calls)} times"
'''
NUMERICAL = '''
def numerical_grad(f, x, eps=1e-3):
    x = x.clone()
    g = torch.zeros_like(x)
    for i in range(x.numel()):
        old = x[i].item()
        x[i] = old + eps
        up = f(x).item()
        x[i] = old - eps
        down = f(x).item()
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g
'''


def test_test_functions_the_student_calls_are_replayed_with_what_they_were_given(monkeypatch):
    assert both(monkeypatch, CALLBACK_TEST, NUMERICAL, ["numerical_grad"]).passed
    lazy = NUMERICAL.replace("up = f(x).item()", "up = f(x).item() if i else 0.0")
    assert not both(monkeypatch, CALLBACK_TEST, lazy, ["numerical_grad"]).passed


RNG_TEST = '''
torch.manual_seed(3)
a = draw()
after = torch.rand(2)             # the global generator moved on in the kernel: in the judge too
torch.manual_seed(3)
b = torch.rand(5)
checks.assert_equal(a, b, "draw() after manual_seed(3)")
checks.assert_equal(after, torch.rand(2), "the global generator after draw()")
state = {"t": 0, "ms": [torch.zeros(2)]}
step(state)
assert state["t"] == 1 and torch.equal(state["ms"][0], torch.ones(2)), state
'''
RNG_CODE = "def draw():\n    return torch.rand(5)\n\ndef step(state):\n    state['t'] += 1\n    state['ms'][0].add_(1)\n"


def test_the_global_random_state_and_containers_the_student_changes_reach_the_judge(monkeypatch):
    assert both(monkeypatch, RNG_TEST, RNG_CODE, ["draw", "step"]).passed
    assert not both(monkeypatch, RNG_TEST, RNG_CODE.replace("state['t'] += 1", "pass"), ["draw", "step"]).passed


def test_no_record_and_malformed_records_fail_the_cell_without_breaking_the_judge(monkeypatch):
    good = make_record(monkeypatch, RELU_TEST, "def relu(x):\n    return x.clamp(min=0)\n", ["relu"])
    events, blobs = wire.loads(good)
    assert not judge(RELU_TEST, None, ["relu"]).passed
    cases = ["", "not json", "[]", json.dumps({"version": 99}), "{" * 100000, json.dumps({"version": 1, "events": 5})]

    def variant(change):
        ev = json.loads(json.dumps(events))
        change(ev)
        return wire.dumps(ev, blobs)

    def claim_bytes(ev):
        ev[1]["ret"][2]["shape"] = [4, 5000000]

    def foreign_class(ev):
        ev[1]["ret"] = ["M", 0, "module", ["os.system", {}, [], [], []]]

    def bad_dtype(ev):
        ev[1]["ret"][2]["dtype"] = "object"

    def no_blob(ev):
        ev[1]["ret"][2]["data"] = 999

    def different_input(ev):
        ev[0]["args"][0][2]["fp"] = [1.0, 2.0]

    def extra_event(ev):
        ev.insert(-1, {"op": "call", "target": ["name", "relu"], "args": [], "kw": {}})

    cases += [variant(f) for f in (claim_bytes, foreign_class, bad_dtype, no_blob, different_input, extra_event)]
    for record in cases:
        v = judge(RELU_TEST, record, ["relu"])
        assert not v.passed and v.message, record[:80]
    assert "differ between the notebook and the test" in judge(RELU_TEST, variant(different_input), ["relu"]).message


def test_text_from_the_kernel_never_quotes_a_hidden_test(monkeypatch):
    import nbformat
    from conftest import ROOT
    lesson = Lesson.from_path(ROOT / "source" / "02_forward" / "02_forward.ipynb")
    hidden = lesson.hidden_lines[0]
    leaky = f"def relu(x):\n    raise ValueError({hidden!r})\n"
    record = make_record(monkeypatch, RELU_TEST, leaky, ["relu"])
    v = judge(RELU_TEST, record, ["relu"], scrub=lesson.scrub)
    assert not v.passed and hidden not in v.message and "[hidden test]" in v.message
    assert nbformat


def test_every_lesson_follows_the_judges_rules():
    """Helper cells define no student name; each test cell's names come from the setup, helpers or students."""
    import ast
    import builtins

    from conftest import ALL_LESSONS, ROOT
    for name in ALL_LESSONS:
        lesson = Lesson.from_path(ROOT / "source" / name / f"{name}.ipynb")
        known = set(dir(builtins)) | set(lesson.students)
        for code in [lesson.setup, *lesson.helpers]:
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    known |= {(a.asname or a.name).split(".")[0] for a in node.names}
                elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.col_offset == 0:
                    known.add(node.name)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    known.add(node.id)
        for grade_id, source in lesson.tests.items():
            tree = ast.parse(source)
            bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            bound |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            bound |= {a.arg for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda)) for a in
                      n.args.args + n.args.kwonlyargs + ([n.args.vararg] if n.args.vararg else [])
                      + ([n.args.kwarg] if n.args.kwarg else [])}
            bound |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                      for a in n.names}
            bound |= {n.name for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler) and n.name}
            used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            free = used - bound - known
            assert not free, f"{name} {grade_id} uses {sorted(free)}, which no setup import, helper cell or student defines"


def test_a_wire_tensor_survives_the_trip_exactly():
    for t in [torch.randn(3, 4), torch.arange(10)[::2], torch.tensor([True, False]), torch.randn(2, 3).t(),
              torch.zeros(0, 3), torch.randn(5, dtype=torch.float64), torch.tensor(7)]:
        back = wire.tensor_from_values(wire.values_bytes(t), t.dtype, list(t.shape))
        assert torch.equal(back, t)
    with pytest.raises(wire.RecordError, match="needs"):
        wire.tensor_from_values(b"123", torch.float32, [2])
