"""The review scan: ordinary habits are never flagged; reaching into the machinery is; nothing stops it."""

from __future__ import annotations

import time

import nbformat
import pytest

from conftest import ROOT, source_notebook
from grader.scan import lesson_names, scan_notebook, scan_sources

GUARDED = lesson_names(source_notebook(ROOT, "02_forward"))

HABITS = {
    "re-imports": "import torch\nimport math\nimport numpy as np\nfrom typing import List, Optional\nimport torch.nn.functional as F",
    "imports inside functions": "def f(x):\n    import math\n    from torch import nn\n    return math.sqrt(2) * x",
    "prints": "print('shape', x.shape)\nimport sys\nprint('debug', file=sys.stderr)\nsys.stdout.flush()",
    "asserts": "assert x.dim() == 2, f'expected a matrix, got {x.shape}'",
    "helpers and type hints": "def _helper(a: torch.Tensor, b: 'torch.Tensor') -> torch.Tensor:\n    return a @ b\n"
                              "class Layer:\n    def __init__(self):\n        self.w: torch.Tensor = torch.zeros(2)\n"
                              "        setattr(self, 'b', torch.zeros(1))\n        object.__setattr__(self, 'c', 1)",
    "constants": "LR = 1e-3\nSEEDS = [0, 1, 2]\nCONFIG = {'hidden': 128}",
    "the course's own helpers": "checks.assert_close(linear(x, W, b), x @ W + b, 'my linear', atol=1e-6)\n"
                                "isinstance(x, torch.Tensor)\ntorch.manual_seed(0)",
    "plots and magics": "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])\n%time 1 + 1",
    "grad bookkeeping": "p.grad = None\nx.data = x.data.clone()\nwith torch.no_grad():\n    p -= 0.1 * p.grad",
    "files of its own": "torch.save({'W1': W1}, 'params.pt')\nopen('notes.txt', 'w').write('hi')",
    "in-place on its own": "t = torch.zeros(3)\nt[0] = 1\nt.add_(1)\nd = {}\nd['k'] = t",
}
TAMPERING = {
    "checks patched": ("checks.assert_close = lambda *a, **k: None", "checks.assert_close"),
    "alias of torch patched": ("import torch as T\nT.equal = lambda *a: True", "T.equal"),
    "tensor method": ("torch.Tensor.__sub__ = lambda a, b: a", "torch.Tensor.__sub__"),
    "setattr on torch": ("setattr(torch.nn.functional, 'relu', abs)", "setattr"),
    "module handed over": ("def h(c):\n    c.x = 1\nh(tripwire)", "hands the grader's 'tripwire'"),
    "IPython hook": ("get_ipython().events.register('post_run_cell', print)", "events"),
    "input transformer": ("ip = get_ipython()\nip.input_transformers_post.append(len)", "input_transformers_post"),
    "displayhook": ("import sys\nsys.displayhook('ok')", "sys.displayhook"),
    "function modes off": ("torch._C.DisableTorchFunction().__enter__()", "DisableTorchFunction"),
    "dispatch modes off": ("from torch.utils._python_dispatch import _disable_current_modes", "_disable_current_modes"),
    "ctypes": ("import ctypes", "ctypes"),
    "frames": ("f = linear.__globals__", "__globals__"),
    "exec": ("exec('x = 1')", "exec"),
    "shell": ("!cat /etc/passwd", "shell"),
    "proc": ("open('/proc/1/environ').read()", "/proc/1/environ"),
    "answers": ("from grader import reference\nreference.linear(x, W, b)", "reference"),
    "processes": ("import os\nos.setsid()", "os.setsid"),
    "globals rewritten": ("globals().update(linear=print)", "globals"),
}


@pytest.mark.parametrize("habit", sorted(HABITS))
def test_ordinary_habits_are_never_flagged(habit):
    assert scan_sources([(3, HABITS[habit])], GUARDED) == []


@pytest.mark.parametrize("trick", sorted(TAMPERING))
def test_reaching_into_the_machinery_is_flagged(trick):
    code, words = TAMPERING[trick]
    found = [str(f) for f in scan_sources([(5, code)], GUARDED)]
    assert found and any(words in f for f in found), found
    assert all(f.startswith("cell 5, line ") for f in found)


@pytest.mark.parametrize("cell", ["total = " + " + ".join(["0"] * 600), "%pwd\n" * 600, "x = " + "[" * 200 + "]" * 200,
                                  "y = 1\n" * 20_000, "def f(:\n    pass"])
def test_no_valid_or_broken_cell_stops_the_scan(cell):
    started = time.perf_counter()
    scan_sources([(0, cell)], GUARDED)
    assert time.perf_counter() - started < 20


def test_the_solutions_and_the_releases_of_every_lesson_are_not_flagged():
    from conftest import ALL_LESSONS
    for lesson in ALL_LESSONS:
        source = source_notebook(ROOT, lesson)
        release = nbformat.read(ROOT / "release" / lesson / f"{lesson}.ipynb", as_version=4)
        assert scan_notebook(source, source) == [], lesson
        assert scan_notebook(source, release) == [], lesson
