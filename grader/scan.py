"""The review scan: read a submission's own code and flag what deserves an instructor's look.

Scores never depend on it: the judge (:mod:`grader.judge`) decides every point from what the
student's functions returned. The scan points a person at code that reaches into the
machinery instead of doing the exercise: writes to attributes of ``torch``, ``grader``,
``builtins``, ``sys`` or ``IPython`` objects (``torch.allclose = ...``, ``setattr(torch.Tensor,
...)``), hooks into IPython's execution, switching off PyTorch's function or dispatch modes,
interpreter escapes (``ctypes``, ``gc``, frames, ``__globals__``), dynamic code, processes,
sockets, shell escapes, paths into the system (``/proc``), and use of ``grader.reference``
(the answers) or the grader's internals.

Ordinary code is never flagged: imports (again, inside functions, with aliases), prints,
asserts, helpers, type hints, constants, classes, reading the lesson's own data, and using
``grader.checks`` to test one's own code.

It runs in a process of its own under a time limit (``python -m grader.scan SOURCE SUBMISSION``
prints the findings as JSON); it walks the syntax tree without recursion, so that no valid
cell, however long or deep, can stop it.
"""

from __future__ import annotations

import ast
import json
import sys
from dataclasses import dataclass

#: modules whose objects a student's code has no business changing
GUARDED = {"torch", "grader", "builtins", "IPython", "sys", "numpy", "importlib", "ipykernel", "nbgrader",
           "traitlets", "zmq", "jupyter_client", "matplotlib", "tqdm", "ipywidgets", "math", "operator",
           "functools", "inspect", "types", "os", "pathlib", "gzip", "struct", "random", "time", "unittest"}
#: modules that reach into the interpreter or out of the notebook
ESCAPES = {"ctypes": "reaches into the interpreter's memory", "gc": "reaches objects through the garbage collector",
           "subprocess": "starts processes", "multiprocessing": "starts processes", "socket": "opens network sockets",
           "signal": "changes how the kernel handles signals", "pty": "starts a terminal", "marshal": "loads code",
           "_thread": "starts threads", "sysconfig": "reads the interpreter's configuration",
           "importlib": "imports modules by name at run time", "pickle": "loads objects that can run code",
           "http": "opens network connections", "urllib": "opens network connections", "requests": "opens network connections"}
DYNAMIC = {"exec": "runs code built at run time", "eval": "runs code built at run time",
           "compile": "compiles code at run time", "__import__": "imports modules by name at run time",
           "breakpoint": "stops the kernel"}
FRAMES = {"__globals__", "__code__", "__builtins__", "__closure__", "__subclasses__", "f_globals", "f_locals",
          "f_builtins", "f_back", "gi_frame", "tb_frame", "cr_frame", "__self_class__"}
TORCH_MODES = {"DisableTorchFunction", "DisableTorchFunctionSubclass", "_disable_current_modes",
               "_disable_torch_function", "_disable_torch_dispatch", "_pop_mode", "_push_mode", "_set_torch_function_mode",
               "_python_dispatch", "TorchFunctionMode", "TorchDispatchMode", "_unset_modes", "_len_torch_function_stack"}
IPYTHON_HOOKS = {"events", "input_transformers_post", "input_transformers_cleanup", "ast_transformers",
                 "set_custom_exc", "showtraceback", "_showtraceback", "showsyntaxerror", "displayhook",
                 "display_pub", "run_cell", "run_cell_async", "run_ast_nodes", "run_code", "register_magic_function",
                 "user_ns", "user_global_ns", "excepthook", "set_hook", "kernel", "displayhook_class"}
SYS_HOOKS = {"settrace", "setprofile", "displayhook", "excepthook", "modules", "meta_path", "path_hooks",
             "addaudithook", "_getframe", "setswitchinterval", "__displayhook__", "__excepthook__"}
FRAME_CALLS = {"currentframe", "stack", "getouterframes", "getinnerframes", "trace", "getframeinfo"}
SYSTEM_PATHS = ("/proc", "/sys/", "/dev/", "/run/", "/etc/", "/root")
SHELL_MAGICS = {"bash", "sh", "script", "system", "sx", "writefile", "run", "load", "env", "setenv", "cd", "store",
                "reset", "reset_selective", "xdel", "capture"}


@dataclass(frozen=True)
class Finding:
    cell: int           # index of the cell in the submitted notebook
    line: int           # line within the cell (1-based)
    what: str

    def __str__(self) -> str:
        return f"cell {self.cell}, line {self.line}: {self.what}"


def python_of(source: str) -> str:
    """Cell source with IPython syntax (magics, ``!``) turned into the calls IPython makes of it.

    IPython gives up on some long cells (hundreds of magics); then each line is turned alone.
    """
    from IPython.core.inputtransformer2 import TransformerManager
    try:
        return TransformerManager().transform_cell(source)
    except Exception:
        lines = []
        for line in source.splitlines():
            try:
                lines.append(TransformerManager().transform_cell(line).rstrip("\n") if line.lstrip()[:1] in "%!"
                             else line)
            except Exception:
                lines.append("pass")
        return "\n".join(lines) + "\n"


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted(node.func) + "()")
    else:
        parts.append("...")
    return ".".join(reversed(parts))


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


class _Cell:
    """The findings of one cell; ``guarded`` are the names bound to guarded modules so far in the notebook."""

    def __init__(self, index: int, guarded: dict[str, str]):
        self.index, self.guarded, self.findings = index, guarded, []

    def flag(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(self.index, getattr(node, "lineno", 0), what))

    def guarded_target(self, node: ast.AST) -> str | None:
        """The guarded module reached by ``node`` (``torch.Tensor.__sub__`` -> ``torch``), if any."""
        root = _root(node)
        if isinstance(root, ast.Name) and root.id in self.guarded:
            return self.guarded[root.id]
        if isinstance(root, ast.Call) and isinstance(root.func, ast.Name) and root.func.id in ("get_ipython", "vars",
                                                                                                "globals"):
            return root.func.id
        return None

    def scan(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports(node)
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                for target in targets:
                    for t in ast.walk(target):
                        if isinstance(t, (ast.Attribute, ast.Subscript)) and isinstance(t.ctx, (ast.Store, ast.Del)):
                            where = self.guarded_target(t)
                            if where:
                                self.flag(node, f"changes {_dotted(t)}, part of {where} that the grader relies on")
                if isinstance(node, ast.Assign):
                    self.aliases(node)
            elif isinstance(node, ast.Call):
                self.call(node)
            elif isinstance(node, ast.Attribute):
                self.attribute(node)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value.startswith(SYSTEM_PATHS):
                    self.flag(node, f"names the path {node.value[:60]!r}, outside the notebook's own folder")

    def imports(self, node) -> None:
        for alias in node.names:
            module = alias.name if isinstance(node, ast.Import) else f"{node.module or ''}.{alias.name}"
            top = (alias.name if isinstance(node, ast.Import) else (node.module or "")).split(".")[0]
            bound = alias.asname or (alias.name.split(".")[0] if isinstance(node, ast.Import) else alias.name)
            if top in GUARDED:
                self.guarded[bound] = top
            if top in ESCAPES:
                self.flag(node, f"imports {module.strip('.')}, which {ESCAPES[top]}")
            if module.startswith(("grader.reference", "grader.judge", "grader.tripwire", "grader.sandbox",
                                  "grader.grading", "grader.scan")) or \
                    (top == "grader" and isinstance(node, ast.ImportFrom) and
                     alias.name in ("reference", "judge", "tripwire", "sandbox", "grading", "scan")):
                self.flag(node, f"imports {module.strip('.')}, the grader's own machinery or answers")
            if any(part in TORCH_MODES for part in module.split(".")):
                self.flag(node, f"imports {module.strip('.')}, which can switch off PyTorch's function modes")

    def aliases(self, node: ast.Assign) -> None:
        """``nn = torch.nn``, ``ip = get_ipython()``: the new name reaches a guarded module too."""
        value, where = node.value, None
        if isinstance(value, (ast.Attribute, ast.Name)):
            where = self.guarded_target(value)
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "get_ipython":
            where = "get_ipython"
        if where:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.guarded[target.id] = where

    def call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if isinstance(func, ast.Name) and name in DYNAMIC:
            self.flag(node, f"calls {name}(), which {DYNAMIC[name]}")
        for arg in list(node.args) + [k.value for k in node.keywords]:
            if isinstance(arg, ast.Name) and self.guarded.get(arg.id) == "grader" and arg.id != "get_ipython" \
                    and not (name == "isinstance"):
                self.flag(node, f"hands the grader's {arg.id!r} to {_dotted(func)}(), which can then change it")
        if name == "getattr" and node.args and isinstance(node.args[0], ast.Name) and \
                self.guarded.get(node.args[0].id) == "grader" and not isinstance(node.args[1:2] and node.args[1], ast.Constant):
            self.flag(node, f"reaches into the grader's {node.args[0].id!r} by a name computed at run time")
        if name in ("setattr", "delattr") and node.args:
            where = self.guarded_target(node.args[0])
            if where:
                self.flag(node, f"calls {name} on {_dotted(node.args[0])}, part of {where}")
        if name in ("update", "setdefault", "__setitem__", "__delitem__", "pop", "clear") and \
                isinstance(func, ast.Attribute):
            inner = func.value
            if (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id in ("globals", "vars")) \
                    or (isinstance(inner, ast.Attribute) and inner.attr in ("__dict__", "modules") and self.guarded_target(inner)):
                self.flag(node, f"calls {_dotted(func)}, which rewrites a namespace the grader relies on")
        if isinstance(func, ast.Attribute) and self.guarded_target(func) == "get_ipython":
            if name in ("system", "getoutput"):
                self.flag(node, "runs a shell command")
            elif name in ("run_line_magic", "run_cell_magic") and node.args and isinstance(node.args[0], ast.Constant) \
                    and str(node.args[0].value) in SHELL_MAGICS:
                self.flag(node, f"uses the %{node.args[0].value} magic, which reaches outside the notebook")
            elif name == "register" or name in IPYTHON_HOOKS:
                self.flag(node, f"calls {_dotted(func)}, which changes how IPython runs the cells")
        if name in ("Thread", "Timer", "fork", "forkpty", "kill", "killpg", "system", "popen", "execv", "execve",
                    "spawnv", "setsid", "posix_spawn") and isinstance(func, ast.Attribute) and \
                _dotted(func).split(".")[0] in ("threading", "os", *[k for k, v in self.guarded.items() if v == "os"]):
            self.flag(node, f"calls {_dotted(func)}, which starts or signals processes or threads")

    def attribute(self, node: ast.Attribute) -> None:
        if node.attr in FRAMES:
            self.flag(node, f"uses {_dotted(node)}, a way around the names the tests rely on")
        elif node.attr in TORCH_MODES:
            self.flag(node, f"uses {_dotted(node)}, which can switch off PyTorch's function or dispatch modes")
        elif node.attr in SYS_HOOKS and self.guarded_target(node) == "sys":
            self.flag(node, f"uses {_dotted(node)}, which reaches into the interpreter")
        elif node.attr in IPYTHON_HOOKS and self.guarded_target(node) == "get_ipython":
            self.flag(node, f"uses {_dotted(node)}, which changes how IPython runs the cells")
        elif node.attr.startswith("_") and not node.attr.startswith("__") and self.guarded_target(node) == "torch":
            self.flag(node, f"uses {_dotted(node)}, a private part of PyTorch")
        elif node.attr in FRAME_CALLS and self.guarded_target(node) == "inspect":
            self.flag(node, f"uses {_dotted(node)}, which reaches the frames of running code")
        elif node.attr in ("reference", "judge", "tripwire", "sandbox") and self.guarded_target(node) == "grader":
            self.flag(node, f"uses {_dotted(node)}, the grader's own machinery or answers")


def scan_sources(sources: list[tuple[int, str]], guarded: dict[str, str] | None = None) -> list[Finding]:
    """Findings in the given ``(cell index, source)`` cells, in notebook order; ``guarded``: names known already."""
    findings: list[Finding] = []
    guarded = dict(guarded or {"get_ipython": "get_ipython"})
    for index, source in sources:
        try:
            tree = ast.parse(python_of(source))
        except SyntaxError:
            continue                        # it raises when it runs: nothing can come of it
        except Exception as err:                            # noqa: BLE001 - a cell the scan cannot read is a finding
            findings.append(Finding(index, 0, f"the scan could not read this cell ({type(err).__name__})"))
            continue
        cell = _Cell(index, guarded)
        cell.scan(tree)
        findings += sorted(cell.findings, key=lambda f: f.line)
    return findings


def student_cells(source_nb, submitted_nb) -> list[tuple[int, str]]:
    """The code cells of a submission that are the student's: not a locked or test cell of the lesson's."""
    given = {c.source for c in source_nb.cells if c.cell_type == "code"
             and not c.metadata.get("nbgrader", {}).get("solution")}
    tests = {c.metadata.get("nbgrader", {}).get("grade_id") for c in source_nb.cells if c.cell_type == "code"
             and c.metadata.get("nbgrader", {}).get("grade") and not c.metadata.get("nbgrader", {}).get("solution")}
    cells = []
    for i, cell in enumerate(submitted_nb.cells):
        if cell.get("cell_type") != "code" or not isinstance(cell.get("source"), str):
            continue
        if cell.source in given or cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in tests:
            continue
        cells.append((i, cell.source))
    return cells


def lesson_names(source_nb) -> dict[str, str]:
    """Names the lesson's own locked cells bind to guarded modules (``checks``, ``torch``, ...)."""
    names: dict[str, str] = {"get_ipython": "get_ipython"}
    for cell in source_nb.cells:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        try:
            tree = ast.parse(python_of(cell.source))
        except Exception:                                   # noqa: BLE001 - the course's own cells parse
            continue
        reader = _Cell(-1, names)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                reader.imports(node)
    return names


def scan_notebook(source_nb, submitted_nb) -> list[Finding]:
    return scan_sources(student_cells(source_nb, submitted_nb), lesson_names(source_nb))


def main(argv: list[str] | None = None) -> int:
    import nbformat
    source, submitted = (argv or sys.argv[1:])[:2]
    findings = scan_notebook(nbformat.read(source, as_version=4), nbformat.read(submitted, as_version=4))
    print(json.dumps([str(f) for f in findings]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
