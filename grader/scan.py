"""The cheat scan: read a submission's own code, outside the kernel, for tampering.

A student's code runs in the same kernel as the hidden tests, so it could patch what
they rely on (``torch.allclose``, the grader's helpers, IPython's traceback display, the
``checks`` name itself). No check inside the kernel can rule that out; this scan reads
the code the student wrote (every cell that is not a locked or test cell of the
source) and reports each write to, or rebinding of, what the tests depend on:

* assignments, ``del``, ``setattr``/``delattr`` on anything reached from ``torch``,
  ``grader``, ``builtins``/``__builtins__``, ``IPython``/``get_ipython()``, ``sys``,
  ``numpy``, ``nbgrader`` or ``importlib`` (attributes, items, ``__dict__``);
* rebinding a name that a locked cell imported (``checks = ...``, ``def reference``);
* any use of ``grader.reference``, the answers the hidden tests compare with;
* dynamic code and escapes (``exec``, ``eval``, ``compile``, ``__import__``, shell
  escapes and magics, ``ctypes``, ``sys.settrace``, ``gc``), which could hide the above.

A finding is not a verdict: :mod:`grader.grading` withholds the notebook's points with
the findings as the reason, and an instructor can overrule.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

PROTECTED_PACKAGES = {"torch", "grader", "builtins", "IPython", "sys", "numpy", "nbgrader", "importlib",
                      "ipykernel", "matplotlib", "math", "tqdm", "ipywidgets", "traitlets", "unittest"}
DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__", "globals", "vars", "locals", "breakpoint"}
DANGEROUS_MODULES = {"ctypes", "gc", "inspect", "subprocess", "marshal", "pty", "signal", "multiprocessing"}
# always suspicious: they reach the globals, code or frames of functions the tests use
DUNDER_ESCAPES = {"__globals__", "__code__", "__builtins__", "__defaults__", "__kwdefaults__", "__subclasses__",
                  "__closure__", "f_globals", "f_locals", "f_builtins", "f_back", "gi_frame", "tb_frame"}
# suspicious on protected objects only (a student's own class may use self.__dict__)
DUNDER_ON_PROTECTED = {"__dict__", "__class__", "__bases__", "__mro__", "__self__", "__func__", "__wrapped__"}
BUILTIN_NAMES = set(dir(__import__("builtins"))) - {"_", "__doc__", "__name__"}


@dataclass(frozen=True)
class Finding:
    cell: int           # index of the cell in the submitted notebook
    line: int           # line within the cell (1-based)
    what: str

    def __str__(self) -> str:
        return f"cell {self.cell}, line {self.line}: {self.what}"


def _python(source: str) -> str:
    """Cell source with IPython syntax (magics, ``!``) turned into plain Python calls."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node


def _dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:                                       # pragma: no cover - unparse handles any expression
        return type(node).__name__


def imported_names(sources: list[str]) -> dict[str, str]:
    """``{name: module}`` for every name the given (locked) cells bind by import."""
    names = {}
    for source in sources:
        try:
            tree = ast.parse(_python(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    names[alias.asname or alias.name.split(".")[0]] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.col_offset == 0:
                names.setdefault(node.name, "(locked cell)")
    return names


class _Scanner(ast.NodeVisitor):
    def __init__(self, cell: int, protected_names: set[str], locked_names: set[str], answer_names: set[str] = frozenset()):
        self.cell = cell
        self.answers = set(answer_names)          # names bound to grader.reference
        self.protected = set(protected_names)     # names that refer to protected modules/objects
        self.locked = locked_names                # names a locked cell defined: must not be rebound
        self.findings: list[Finding] = []
        self.scopes: list[set[str]] = []          # `global` names of each enclosing function

    def flag(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(self.cell, getattr(node, "lineno", 0), what))

    def _is_protected(self, node: ast.AST) -> bool:
        root = _root(node)
        if isinstance(root, ast.Name):
            return root.id in self.protected or root.id in {"__builtins__", "get_ipython"}
        return False

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in self.answers:
            self.flag(node, f"uses {node.id} (grader.reference), the answers the hidden tests compare with")

    # --- imports: aliases of protected packages become protected names ------------------
    def visit_Import(self, node):
        for alias in node.names:
            if alias.name.startswith("grader.reference"):
                self.flag(node, "imports grader.reference, the answers the hidden tests compare with")
            top = alias.name.split(".")[0]
            bound = alias.asname or top
            if top in PROTECTED_PACKAGES:
                self.protected.add(bound)
            if top in DANGEROUS_MODULES:
                self.flag(node, f"imports {alias.name}, which can reach into the running interpreter")
            self._rebinds(node, bound)

    def visit_ImportFrom(self, node):
        top = (node.module or "").split(".")[0]
        if (node.module or "").startswith("grader.reference") or \
                (node.module == "grader" and any(a.name == "reference" for a in node.names)):
            self.flag(node, "imports grader.reference, the answers the hidden tests compare with")
        for alias in node.names:
            bound = alias.asname or alias.name
            if top in PROTECTED_PACKAGES:
                self.protected.add(bound)
            if top in DANGEROUS_MODULES:
                self.flag(node, f"imports from {node.module}, which can reach into the running interpreter")
            self._rebinds(node, bound)

    # --- writes -------------------------------------------------------------------------
    def _target(self, target: ast.AST, node: ast.AST, verb: str) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                self._target(t, node, verb)
        elif isinstance(target, ast.Starred):
            self._target(target.value, node, verb)
        elif isinstance(target, ast.Name):
            self._rebinds(node, target.id)
        elif isinstance(target, (ast.Attribute, ast.Subscript)) and self._is_protected(target):
            self.flag(node, f"{verb} {_dotted(target)}, which the tests rely on")

    def _rebinds(self, node: ast.AST, name: str) -> None:
        if self.scopes and name not in self.scopes[-1]:
            return                                  # a local name of a function: harmless
        if name in self.locked:
            self.flag(node, f"rebinds {name!r}, which a locked cell of the lesson defines")
        elif name in BUILTIN_NAMES:
            self.flag(node, f"rebinds the built-in {name!r} for the whole notebook, tests included")

    def _aliases_protected(self, value: ast.AST) -> bool:
        """``t = torch.nn``, ``ip = get_ipython()``, ``m = importlib.import_module(...)``: the name stands
        for a protected object. (``x = torch.randn(3)`` is a new tensor, not an alias.)"""
        if isinstance(value, (ast.Name, ast.Attribute, ast.Subscript)):
            return self._is_protected(value)
        if isinstance(value, ast.Call):
            func = value.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in {"get_ipython", "import_module", "getattr", "__import__", "get", "reload"}:
                return name == "get_ipython" or self._is_protected(func) or any(
                    self._is_protected(a) for a in value.args[:1])
        return False

    def visit_Attribute(self, node):
        if node.attr in DUNDER_ESCAPES or (node.attr in DUNDER_ON_PROTECTED and self._is_protected(node)):
            self.flag(node, f"uses {_dotted(node)}, a way around the names the tests rely on")
        self.generic_visit(node)

    def visit_Assign(self, node):
        for t in node.targets:
            self._target(t, node, "assigns to")
        if self._aliases_protected(node.value):     # an alias of a protected object is protected too
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.protected.add(t.id)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._target(node.target, node, "modifies")
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self._target(node.target, node, "assigns to")
        self.generic_visit(node)

    def visit_Delete(self, node):
        for t in node.targets:
            self._target(t, node, "deletes")
        self.generic_visit(node)

    def visit_For(self, node):
        self._target(node.target, node, "assigns to")
        self.generic_visit(node)

    def visit_With(self, node):
        for item in node.items:
            if item.optional_vars is not None:
                self._target(item.optional_vars, node, "assigns to")
        self.generic_visit(node)

    def visit_NamedExpr(self, node):
        self._target(node.target, node, "assigns to")
        self.generic_visit(node)

    def _function(self, node):
        self._rebinds(node, node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.scopes.append(set())
        for child in node.body:
            self.visit(child)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node):
        self._rebinds(node, node.name)
        for child in node.bases + node.keywords + node.decorator_list:
            self.visit(child)
        self.scopes.append(set())
        for child in node.body:
            self.visit(child)
        self.scopes.pop()

    def visit_Lambda(self, node):
        self.scopes.append(set())
        self.visit(node.body)
        self.scopes.pop()

    def visit_Global(self, node):
        if self.scopes:
            self.scopes[-1].update(node.names)
        for name in node.names:
            self._rebinds(node, name)

    def visit_Call(self, node):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in {"setattr", "delattr"} and node.args and self._is_protected(node.args[0]):
            self.flag(node, f"calls {name} on {_dotted(node.args[0])}, which the tests rely on")
        elif name in {"setattr", "delattr"} and node.args and isinstance(node.args[0], ast.Call):
            self.flag(node, f"calls {name} on the result of {_dotted(node.args[0])}")
        elif name in DYNAMIC_CALLS and isinstance(func, ast.Name):
            self.flag(node, f"calls {name}(), which can run or reach code the scan cannot read")
        elif name in {"run_line_magic", "run_cell_magic", "system", "getoutput"} and self._is_protected(func):
            self.flag(node, "uses an IPython magic or shell escape")
        elif name in {"update", "setdefault", "pop", "__setitem__", "__delitem__", "clear", "register",
                      "settrace", "setprofile", "set_custom_exc", "register_magic_function"} \
                and isinstance(func, ast.Attribute) and self._is_protected(func.value):
            self.flag(node, f"calls {_dotted(func)}, which changes what the tests rely on")
        self.generic_visit(node)


def scan_cell(source: str, cell: int, protected: set[str], locked: set[str],
              answers: set[str] = frozenset()) -> list[Finding]:
    """Findings in one cell of student code; a cell that does not parse is itself a finding only if
    it is not plain broken code (that fails on its own when run)."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return []                       # it raises when executed: no tampering can come from it
    scanner = _Scanner(cell, protected, locked, answers)
    scanner.visit(tree)
    return scanner.findings


def scan_notebook(nb, locked_sources: list[str], student_cells: list[int]) -> list[Finding]:
    """Scan the student cells of a submitted notebook.

    Args:
        nb: the submitted notebook (nbformat node).
        locked_sources: source of every locked cell of the lesson (what the student may not change);
            names they import or define are protected.
        student_cells: indices of the code cells the student wrote or could edit.
    """
    locked = imported_names(locked_sources)
    protected = {name for name, module in locked.items() if module.split(".")[0] in PROTECTED_PACKAGES}
    answers = {name for name, module in locked.items() if module.startswith("grader.reference")}
    findings = []
    for index in student_cells:
        findings += scan_cell(nb.cells[index].source, index, protected, set(locked), answers)
    return findings
