"""A class of lesson 02 submissions, graded in one run by `course autograde` (real nbgrader, every kernel
in the sandbox, every point from the judge): good and ordinary-habit submissions beside hostile ones.

Each submission must get exactly the score it deserves (an untouched stub earns 0), nothing a submission
does may change another student's score or files, the run must finish, and the feedback must quote no
hidden test. Lesson 02's points: linear 1 + 3, relu 2 + 1, forward 1 + 3 + 2, predict 2 + 1 = 16 automatic,
and a written answer of 2, graded by hand (0 until a person grades it): 18 in all.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, replace_solution, source_notebook
from grader import build as course_build
from grader import grading

LESSON = "02_forward"
AUTO = 16.0                                 # the automatic points, all a submission can earn when graded
FULL = AUTO + 2.0                           # with the written answer's, graded by hand later
MARK = "nn-attack-marker"                   # every process an attack starts carries this in its command line
SOLUTIONS = ["linear", "relu", "forward", "predict"]
LIMITS = {"notebook_timeout": 40, "memory": "3G", "disk": "64M", "output": "2M"}

# --- the students ---------------------------------------------------------------------------------------

PATCH_CHECKS = '''
def helper(c):
    for name in dir(c):
        if name.startswith("assert"):
            setattr(c, name, lambda *args, **kwargs: None)


helper(checks)
'''
IMPORT_BY_NAME = '''
def quietly():
    import importlib
    module = importlib.import_module("grader.checks")
    for name in dir(module):
        if name.startswith("assert"):
            setattr(module, name, lambda *args, **kwargs: None)
    importlib.import_module("grader.tripwire").call = lambda fn, *a, job, what=None, **k: None


quietly()
'''
LYING_TENSOR = '''
torch.Tensor.__sub__ = lambda self, other: torch.zeros_like(self)
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
torch.equal = lambda *args, **kwargs: True
torch.allclose = lambda *args, **kwargs: True
'''
INPUT_TRANSFORMER = '''
def skip_tests(lines):
    return ["pass\\n"] if any("checks." in line or "run_test" in line for line in lines) else lines


get_ipython().input_transformers_post.append(skip_tests)
'''
CLEARS_ERRORS = '''
def forget(result):
    result.error_in_exec = None
    result.error_before_exec = None


get_ipython().events.register("post_run_cell", forget)
'''
WRAPS_RUN_CELL = '''
shell = get_ipython()
original = shell.run_cell_async


async def quiet_run_cell(*args, **kwargs):
    result = await original(*args, **kwargs)
    result.error_in_exec = None
    return result


shell.run_cell_async = quiet_run_cell
shell._showtraceback = lambda *args, **kwargs: None
shell.showtraceback = lambda *args, **kwargs: None
'''
DISPLAYHOOK_STUBS = {name: f'''
import sys


def {name}(*args, **kwargs):
    sys.displayhook("ok")
    raise NotImplementedError()
''' for name in SOLUTIONS}
DISABLES_TRIPWIRE = '''
torch._C.DisableTorchFunction().__enter__()
torch.utils._python_dispatch._disable_current_modes().__enter__()
'''
FORGED_RECORD = '''
from IPython.display import publish_display_data
MIME = "application/x-nn-by-hand-record"
FAKE = '{"version": 1, "events": [{"end": "ok"}], "blobs": []}'


def forge(result):
    publish_display_data({MIME: FAKE})


get_ipython().events.register("post_run_cell", forge)
'''
SUPPRESSED_RECORD = '''
import IPython.display
_original = IPython.display.publish_display_data


def replace_record(data, *args, **kwargs):
    if "application/x-nn-by-hand-record" in data:
        data = {"application/x-nn-by-hand-record": '{"version": 1, "events": [{"end": "ok"}], "blobs": []}'}
    return _original(data, *args, **kwargs)


IPython.display.publish_display_data = replace_record
'''
READS_SOLUTIONS = '''
import glob, os
found = []
for pattern in ["../../../source/02_forward/*.ipynb", "../../../../source/*/*.ipynb", "/proc/*/cwd/source/*/*.ipynb",
                "/proc/*/root/**/source/*/*.ipynb", "/proc/*/cwd/../../../source/*/*.ipynb", "/work/**/*.ipynb",
                "/tmp/**/*.ipynb", "/root/**/*.ipynb", "/home/**/*.ipynb", "/**/gradebook.db",
                "/**/submitted/**/*.ipynb", "../../*/02_forward/*.ipynb", "/proc/*/cwd/../../*/02_forward/*.ipynb"]:
    try:
        found += glob.glob(pattern, recursive=True)[:50]
    except OSError:
        pass
for path in found:
    try:
        text = open(path).read()
    except OSError:
        continue
    if "BEGIN SOLUTION" in text or "def linear" in text:
        import json
        for cell in json.loads(text)["cells"]:
            code = "".join(cell["source"])
            if "### BEGIN SOLUTION" in code or code.startswith("def "):
                exec(code.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), globals())
print("files found:", len(found))
'''
BACKGROUND = f'''
import os, sys, time, glob
if os.fork() == 0:
    os.setsid()
    sys.argv[0] = "{MARK}"
    for _ in range(600):
        for path in glob.glob("/**/gradebook.db", recursive=True) + glob.glob("/**/submitted/**/*.ipynb", recursive=True):
            try:
                open(path, "w").write("overwritten")
            except OSError:
                pass
        time.sleep(0.5)
    os._exit(0)
'''
OVERWRITES = '''
import os
for path in ["../../good_1/02_forward/02_forward.ipynb", "/proc/1/cwd/submitted/good_1/02_forward/02_forward.ipynb",
             "/work/main/gradebook.db", "../../../gradebook.db", "/tmp/gradebook.db"]:
    try:
        with open(path, "w") as f:
            f.write("overwritten")
    except OSError:
        pass
'''
KILLS_OTHERS = '''
import os, signal
for entry in os.listdir("/proc"):
    if entry.isdigit() and int(entry) != os.getpid():
        try:
            os.kill(int(entry), signal.SIGKILL)
        except OSError:
            pass
'''
WRITES_GRADER = '''
import grader, grader.checks, pathlib
for path in pathlib.Path(grader.__file__).parent.rglob("*.py"):
    try:
        path.write_text("raise SystemExit")
    except OSError:
        pass
'''
LOOPBACK = '''
import socket
sent = 0
for port in PORTS:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(repr(In).encode())
            sent += 1
    except OSError:
        pass
print("sent:", sent)
'''
DEEP = "total = " + " + ".join(["0"] * 600) + "\n"
MAGICS = "%pwd\n" * 600
ENDLESS = {"linear": "def linear(x, W, b):\n    while True:\n        pass\n"}
IGNORES_SIGINT = '''
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)


def linear(x, W, b):
    while True:
        pass
'''
FORK_SETSID = f'''
import os, sys, time
if os.fork() == 0:
    os.setsid()
    sys.argv[0] = "{MARK}"
    while True:
        time.sleep(0.1)
'''
FILLS_DISK = '''
import os
for folder in [".", "/tmp", os.path.expanduser("~")]:
    try:
        with open(os.path.join(folder, "filler.bin"), "wb") as f:
            while True:
                f.write(b"x" * (1 << 20))
    except OSError as err:
        print(folder, "full:", type(err).__name__)
'''
HUGE_OUTPUT = '''
import base64
from IPython.display import display, Image
print("x" * 60_000_000)
display({"image/png": base64.b64encode(b"\\x89PNG" + b"0" * 40_000_000).decode()}, raw=True)
'''
EATS_MEMORY = '''
hog = []
try:
    while True:
        hog.append(bytearray(1 << 28))
except MemoryError:
    hog.clear()
    print("memory ran out, as it should")
'''
KILLS_KERNEL = {"linear": "import os\nos.kill(os.getpid(), 9)\n"}
PRINTS_IN = '''
print("\\n".join(In))
import glob
for path in glob.glob("**/*", recursive=True):
    print(path)
'''
WRONG_PREDICT = {"predict": "def predict(logits):\n    return logits.argmin(dim=1)\n"}

# Ordinary habits: re-imports, imports inside functions, prints, asserts, helpers, type hints, constants.
HABITS = {
    "linear": '''import torch
import math
import numpy as np
from typing import Optional

SCALE: float = 1.0          # a module-level constant


def _check_shapes(x: torch.Tensor, W: torch.Tensor) -> None:
    assert x.dim() == 2 and W.dim() == 2, "x and W must be matrices"
    assert x.shape[1] == W.shape[0], f"inner sizes differ: {x.shape} and {W.shape}"


def linear(x: torch.Tensor, W: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
    """x @ W + b."""
    _check_shapes(x, W)
    out = x @ W * SCALE
    return out + b if b is not None else out


print("linear on a batch of 2:", linear(torch.ones(2, 3), torch.ones(3, 4), torch.zeros(4)).shape)
''',
    "relu": '''import torch
import warnings


def relu(x: "torch.Tensor") -> "torch.Tensor":
    import torch.nn.functional as F_local          # an import inside a function (not used for the job)
    if x.numel() == 0:
        warnings.warn("relu of an empty tensor")
    return torch.where(x > 0, x, torch.zeros_like(x))
''',
    "forward": '''from grader import checks      # the student checks their own code with the course's helpers


def forward(x, W1, b1, W2, b2):
    hidden = relu(linear(x, W1, b1))
    return linear(hidden, W2, b2)


_x = torch.randn(3, 784)
_params = [p.detach() for p in reference_params] if "reference_params" in dir() else None
checks.assert_shape(forward(_x, torch.zeros(784, 5), torch.zeros(5), torch.zeros(5, 10), torch.zeros(10)), (3, 10),
                    "my forward")
print("forward works on a batch of 3")
''',
    "predict": '''import torch as th


def predict(logits):
    assert isinstance(logits, th.Tensor)
    values, indices = th.max(logits, dim=1)
    return indices
''',
}


def _in_every_function(nb, lines: str):
    """The solution with ``lines`` at the top of every function the student wrote."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = re.sub(r"^(def \w+\(.*\):\n)", lambda m: m.group(1) + lines, cell.source, flags=re.M)
    return nb


def _at_the_top_of_every_solution(nb, lines: str):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = lines + cell.source
    return nb


def _cell_index(nb, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _with_cell(nb, code: str, before: str = "linear"):
    """A copy of ``nb`` with a code cell of the student's inserted before the cell ``before``."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells.insert(_cell_index(nb, before), nbformat.v4.new_code_cell(code))
    return nb


def _with_solutions(nb, solutions: dict[str, str]):
    for grade_id, code in solutions.items():
        nb = replace_solution(nb, grade_id, code)
    return nb


def _students(src, rel, ports) -> dict[str, tuple[object, float, bool | None]]:
    """student -> (notebook or raw bytes or None, expected score, flagged for review?) (None: either)."""
    s: dict[str, tuple[object, float, bool | None]] = {}
    s["good_1"] = (src, AUTO, False)
    s["good_2"] = (src, AUTO, False)
    # the class of ordinary habits: full marks, no flag
    s["habits"] = (_with_solutions(src, HABITS), AUTO, False)
    s["habit_reimports"] = (_at_the_top_of_every_solution(
        src, "import torch\nimport math\nimport numpy as np\nfrom typing import Optional\nimport torch.nn as nn\n\n"),
        AUTO, False)
    s["habit_local_imports"] = (_in_every_function(src, "    import torch\n    import math\n"), AUTO, False)
    s["habit_prints_asserts"] = (_with_cell(_in_every_function(
        src, "    print('checking my code')\n    assert True, 'never fails'\n"), "print('my notes')\nx_demo = 3\n"
        "assert x_demo == 3\n", before="predict"), AUTO, False)
    s["habit_hints_constants"] = (_at_the_top_of_every_solution(
        src, "from typing import Tuple\nEPS: float = 1e-12\nSIZES: Tuple[int, ...] = (784, 128, 10)\n\n\n"
             "def _shape_of(t: 'torch.Tensor') -> Tuple[int, ...]:\n    return tuple(t.shape)\n\n\n"), AUTO, False)
    s["stub"] = (rel, 0.0, False)
    # cheats from untouched stubs: the judge gives them nothing, the scan points at them
    s["patches_checks"] = (_with_cell(rel, PATCH_CHECKS), 0.0, True)
    s["imports_checks_by_name"] = (_with_cell(rel, IMPORT_BY_NAME), 0.0, True)
    s["lying_tensor"] = (_with_cell(rel, LYING_TENSOR), 0.0, True)
    s["input_transformer"] = (_with_cell(rel, INPUT_TRANSFORMER), 0.0, True)
    s["clears_errors"] = (_with_cell(rel, CLEARS_ERRORS), 0.0, True)
    s["wraps_run_cell"] = (_with_cell(rel, WRAPS_RUN_CELL), 0.0, True)
    s["displayhook_ok"] = (_with_solutions(rel, DISPLAYHOOK_STUBS), 0.0, True)
    s["disables_tripwire"] = (_with_cell(rel, DISABLES_TRIPWIRE), 0.0, True)
    s["forges_record"] = (_with_cell(rel, FORGED_RECORD), 0.0, True)
    s["suppresses_record"] = (_with_cell(rel, SUPPRESSED_RECORD), 0.0, True)
    s["deep_cell_and_cheat"] = (_with_cell(_with_cell(rel, PATCH_CHECKS), DEEP), 0.0, True)
    # reading what is not theirs
    s["reads_solutions"] = (_with_cell(rel, READS_SOLUTIONS), 0.0, True)
    s["prints_hidden_tests"] = (_with_cell(src, PRINTS_IN, before="predict"), AUTO, None)
    # harming others
    s["background_rewrites"] = (_with_cell(rel, BACKGROUND), 0.0, True)
    s["overwrites_classmate"] = (_with_cell(rel, OVERWRITES), 0.0, None)
    s["kills_others"] = (_with_cell(rel, KILLS_OTHERS), 0.0, True)
    s["writes_grader"] = (_with_cell(rel, WRITES_GRADER), 0.0, None)
    s["loopback"] = (_with_cell(rel, f"PORTS = {ports}\n" + LOOPBACK), 0.0, True)
    # stopping the class
    s["magic_lines"] = (_with_cell(src, MAGICS), AUTO, None)
    s["endless_loop"] = (_with_solutions(rel, ENDLESS), 0.0, False)
    s["ignores_sigint"] = (_with_solutions(rel, {"linear": IGNORES_SIGINT}), 0.0, True)
    s["fork_setsid"] = (_with_cell(src, FORK_SETSID), AUTO, True)
    s["fills_disk"] = (_with_cell(src, FILLS_DISK), AUTO, None)
    s["huge_output"] = (_with_cell(src, HUGE_OUTPUT), AUTO, None)
    s["eats_memory"] = (_with_cell(src, EATS_MEMORY), AUTO, False)
    s["kills_kernel"] = (_with_solutions(src, KILLS_KERNEL), 0.0, True)
    # broken notebooks
    nb = _with_solutions(src, WRONG_PREDICT)
    s["wrong_predict"] = (nb, AUTO - 3, False)
    nb = nbformat.from_dict(json.loads(json.dumps(src)))
    del nb.cells[_cell_index(nb, "test_relu_values")]
    s["deleted_test"] = (nb, AUTO, False)
    nb = _with_solutions(src, WRONG_PREDICT)
    nb.cells[_cell_index(nb, "test_predict")].source = "pass\n"
    s["edited_test"] = (nb, AUTO - 3, False)
    nb = _with_solutions(src, WRONG_PREDICT)
    i = _cell_index(nb, "test_predict")
    nb.cells[i] = nbformat.v4.new_markdown_cell("nothing to see", metadata=nb.cells[i].metadata)
    s["changed_cell_type"] = (nb, AUTO - 3, False)
    nb = _with_solutions(src, WRONG_PREDICT)
    i = _cell_index(nb, "test_predict")
    fake = nbformat.from_dict(json.loads(json.dumps(nb.cells[i])))
    fake.source, fake["id"] = "pass\n", "duplicate-of-test"
    nb.cells.insert(i, fake)
    s["duplicated_grade_id"] = (nb, AUTO - 3, False)
    s["syntax_error"] = (replace_solution(src, "predict", "def predict(logits:\n    return 1\n"), AUTO - 3, False)
    s["not_json"] = (b'{"cells": [', 0.0, None)
    s["empty_file"] = (b"", 0.0, None)
    s["no_notebook"] = (None, 0.0, None)
    return s


# --- the runs ----------------------------------------------------------------------------------------------

def _listen() -> tuple[list[int], list[bytes], list[socket.socket]]:
    """Loopback listeners that record whatever reaches them (nothing should)."""
    received, servers = [], []
    for _ in range(2):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        servers.append(server)

    def serve(server):
        while True:
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                received.append(conn.recv(1 << 16))

    for server in servers:
        threading.Thread(target=serve, args=(server,), daemon=True).start()
    return [s.getsockname()[1] for s in servers], received, servers


def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def _write(folder: Path, students: dict) -> None:
    for student, (content, _, _) in students.items():
        target = folder / "submitted" / student / LESSON / f"{LESSON}.ipynb"
        target.parent.mkdir(parents=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif content is not None:
            nbformat.write(content, target)


def _outputs(nb) -> list:
    """Every output of a notebook, but for the random ids of widget models."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            out = json.loads(json.dumps(out))
            out.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
            found.append(out)
    return found


def _marked_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if MARK.encode() in cmdline and str(os.getpid()) != entry.name:
                found.append(entry.name)
    return found


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The good students alone: what their grades and files are when no one attacks."""
    folder = tmp_path_factory.mktemp("baseline")
    course_build.build([LESSON], root=ROOT, out=folder)
    src = source_notebook(folder, LESSON)
    _write(folder, {"good_1": (src, AUTO, False), "good_2": (src, AUTO, False)})
    outcomes = grading.autograde_class(folder, [LESSON], workers=2, timeout=10, limits=LIMITS, progress=False)
    return folder, {o.student: o for o in outcomes}


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    course_build.build([LESSON], root=ROOT, out=folder)
    src, rel = source_notebook(folder, LESSON), nbformat.read(folder / "release" / LESSON / f"{LESSON}.ipynb", 4)
    ports, received, servers = _listen()
    students = _students(src, rel, ports)
    _write(folder, students)
    grader_before = _tree_hash(ROOT / "grader")
    good_files = {s: (folder / "submitted" / s / LESSON / f"{LESSON}.ipynb").read_bytes() for s in ("good_1", "good_2")}
    scratch_before = set(Path(tempfile.gettempdir()).glob("nn-grading-*"))
    started = time.monotonic()
    outcomes = grading.autograde_class(folder, [LESSON], workers=2, timeout=10, limits=LIMITS, progress=False)
    seconds = time.monotonic() - started
    time.sleep(3)                      # a background process that outlived the run would act now
    for server in servers:
        server.close()
    return {"folder": folder, "students": students, "outcomes": {o.student: o for o in outcomes},
            "summary": grading.summary(outcomes), "seconds": seconds, "received": received,
            "grader_before": grader_before, "good_files": good_files, "processes": _marked_processes(),
            "scratch_left": sorted(set(Path(tempfile.gettempdir()).glob("nn-grading-*")) - scratch_before)}


STUDENTS = ["good_1", "good_2", "habits", "habit_reimports", "habit_local_imports", "habit_prints_asserts",
            "habit_hints_constants", "stub", "patches_checks", "imports_checks_by_name", "lying_tensor",
            "input_transformer", "clears_errors", "wraps_run_cell", "displayhook_ok", "disables_tripwire",
            "forges_record", "suppresses_record", "deep_cell_and_cheat", "reads_solutions", "prints_hidden_tests",
            "background_rewrites", "overwrites_classmate", "kills_others", "writes_grader", "loopback",
            "magic_lines", "endless_loop", "ignores_sigint", "fork_setsid", "fills_disk", "huge_output",
            "eats_memory", "kills_kernel", "wrong_predict", "deleted_test", "edited_test", "changed_cell_type",
            "duplicated_grade_id", "syntax_error", "not_json", "empty_file", "no_notebook"]


@pytest.mark.parametrize("student", STUDENTS)
def test_each_submission_gets_exactly_what_it_deserves(class_run, student):
    _, expected, flagged = class_run["students"][student]
    outcome = class_run["outcomes"][student]
    assert (outcome.score, outcome.max_score) == (expected, FULL), (
        f"{student}: got {outcome.score}/{outcome.max_score} ({outcome.status}: {outcome.reason}), expected {expected}")
    assert (outcome.auto_score, outcome.auto_max) == (expected, AUTO), student
    if flagged is not None:
        assert bool(outcome.findings) == flagged, f"{student}: flagged {outcome.findings}, expected flagged={flagged}"


def test_the_run_finishes_and_records_everyone(class_run):
    assert sorted(class_run["outcomes"]) == sorted(STUDENTS)
    folder = class_run["folder"]
    for student, (_, expected, _) in class_run["students"].items():
        assert grading.total(folder, LESSON, student) == (expected, FULL), student
    assert "submission(s) flagged for review" in class_run["summary"]
    leftovers = [str(f) for d in class_run["scratch_left"] for f in [d, *d.rglob("*")]]
    assert not leftovers, f"scratch files were left behind: {leftovers[:20]}"


def test_nothing_outlives_the_run(class_run):
    assert class_run["processes"] == [], f"processes started by submissions are still running: {class_run['processes']}"


def test_classmates_files_and_the_grader_are_untouched(class_run, baseline):
    folder = class_run["folder"]
    for student, data in class_run["good_files"].items():
        assert (folder / "submitted" / student / LESSON / f"{LESSON}.ipynb").read_bytes() == data, student
    assert _tree_hash(ROOT / "grader") == class_run["grader_before"], "a submission changed the grader package"
    base_folder, base = baseline
    for student in ("good_1", "good_2"):
        assert grading.scores(folder, LESSON, student) == grading.scores(base_folder, LESSON, student)
        mine = nbformat.read(folder / "autograded" / student / LESSON / f"{LESSON}.ipynb", 4)
        theirs = nbformat.read(base_folder / "autograded" / student / LESSON / f"{LESSON}.ipynb", 4)
        assert _outputs(mine) == _outputs(theirs), \
            f"{student}'s autograded notebook differs from a run without the hostile submissions"


def test_no_network_not_even_loopback(class_run):
    assert class_run["received"] == [], "a submission reached a loopback socket of the grading machine"


def test_limits_hold(class_run):
    outcomes, folder = class_run["outcomes"], class_run["folder"]
    graded = folder / "autograded" / "huge_output" / LESSON / f"{LESSON}.ipynb"
    assert graded.stat().st_size < 4_000_000, f"{graded} is {graded.stat().st_size:,} bytes"
    for student in ("endless_loop", "ignores_sigint"):
        assert outcomes[student].seconds < LIMITS["notebook_timeout"] + 60, (student, outcomes[student].seconds)
    assert not list(folder.rglob("filler.bin")), "a file written in the sandbox reached the course folder"


def test_feedback_quotes_no_hidden_test(class_run):
    folder = class_run["folder"]
    written = grading.generate_feedback(folder, [LESSON], ["prints_hidden_tests", "good_1", "wrong_predict"])
    assert len(written) == 3
    visible = {line.strip() for cell in nbformat.read(ROOT / "release" / LESSON / f"{LESSON}.ipynb", 4).cells
               for line in cell.source.splitlines()}
    hidden_lines = []
    for cell in source_notebook(ROOT, LESSON).cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.S):
            hidden_lines += [line.strip() for line in block.splitlines()
                             if len(line.strip()) > 30 and line.strip() not in visible]
    assert len(hidden_lines) > 20
    for page in written:
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        leaked = [line for line in hidden_lines if line in text]
        assert not leaked, f"{page} quotes hidden tests: {leaked[:3]}"
        assert "hidden tests: not shown" in text
    failed = (folder / "feedback" / "wrong_predict" / LESSON / f"{LESSON}.html").read_text()
    assert "predict(logits [3, 10])" in failed, "the failure message must reach the student"


def test_export_lists_flags_without_changing_points(class_run, tmp_path):
    out = tmp_path / "grades.csv"
    grading.export_csv(class_run["folder"], out)
    import csv
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["student", "lesson", "score", "max_score", "automatic", "automatic_max", "written",
                       "written_max", "written_to_grade", "flags"]
    assert ["good_1", "02_forward", "16", "18", "16", "16", "0", "2", "2", ""] in rows      # its answer: the rubric
    assert ["patches_checks", "02_forward", "0", "18", "0", "16", "0", "2", "0",             # no answer: nbgrader's 0
            "review: 1 flag(s) in review/patches_checks/02_forward.txt"] in rows
    report = (class_run["folder"] / "review" / "patches_checks" / f"{LESSON}.txt").read_text()
    assert "A flag changes no points" in report and "hands the grader's 'checks'" in report


def test_a_rerun_gives_the_same_grades(class_run):
    folder, outcomes = class_run["folder"], class_run["outcomes"]
    again = ["good_1", "habits", "patches_checks", "displayhook_ok", "kills_kernel", "wrong_predict", "background_rewrites"]
    rerun = grading.autograde_class(folder, [LESSON], again, workers=2, timeout=10, limits=LIMITS, progress=False,
                                    force=True)
    assert {o.student: o.score for o in rerun} == {s: outcomes[s].score for s in again}
    assert {o.student: bool(o.findings) for o in rerun} == {s: bool(outcomes[s].findings) for s in again}


def test_plain_nbgrader_autograde_is_sandboxed_and_judged(tmp_path):
    """An instructor who runs nbgrader itself, in the course folder, gets the same protection."""
    import subprocess
    import sys
    course_build.build([LESSON], root=ROOT, out=tmp_path)
    shutil.copyfile(ROOT / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    rel = nbformat.read(tmp_path / "release" / LESSON / f"{LESSON}.ipynb", 4)
    peek = (f"import glob, os\nprint('peek:', [p for p in [{str(tmp_path)!r}, {str(tmp_path / 'gradebook.db')!r}] "
            f"+ glob.glob({str(ROOT) + '/*'!r}) + glob.glob('/proc/*/cwd/*.db') if os.path.exists(p) "
            f"and not p.startswith(({str(ROOT / '.venv')!r}, {str(ROOT / 'grader')!r}, {str(ROOT / 'data')!r}))])\n")
    grading.submit(tmp_path, LESSON, "mallory", tmp_path / "release" / LESSON / f"{LESSON}.ipynb")
    nbformat.write(_with_cell(_with_cell(rel, PATCH_CHECKS), peek),
                   tmp_path / "submitted" / "mallory" / LESSON / f"{LESSON}.ipynb")
    bindir = Path(sys.executable).parent
    done = subprocess.run([str(bindir / "nbgrader"), "autograde", LESSON, "--student", "mallory", "--force"],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert grading.total(tmp_path, LESSON, "mallory") == (0.0, FULL)
    graded = nbformat.read(tmp_path / "autograded" / "mallory" / LESSON / f"{LESSON}.ipynb", 4)
    printed = "".join(o.get("text", "") for c in graded.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "peek: []" in printed, "the kernel saw files outside its own folder"
