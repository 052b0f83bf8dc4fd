"""What the judge needs to know of a lesson, read from its source notebook (never a submission).

* the **test cells**: every autograded code cell (``grade: true``, not a solution), by grade id;
* the **setup**: the import statements of the cell whose grade id is ``setup``;
* the **helpers**: the code cells tagged ``helpers`` (locked cells of functions and classes the
  tests share), run before each test in the test's own namespace;
* the **student names**: what the solution cells define at their top level (functions,
  classes, constants): the tests reach the student's code through these names only;
* the **hidden lines**: every line between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN
  TESTS``, so that no text from the kernel that quotes them reaches a student's feedback.

A test cell runs in a namespace of its own: the setup's imports, the helpers, the student
names, nothing else (no variable of another cell), so that the kernel and the judge run it
in the same world.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

HELPERS_TAG = "helpers"
HIDDEN_BLOCK = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n(.*?)^[ \t]*### END HIDDEN TESTS", re.S | re.M)
#: shorter hidden lines are too common to tell anything (``else:``, ``    pass``)
MIN_HIDDEN_LINE = 16


class LessonError(ValueError):
    """A lesson's cells break a rule the judge relies on (the message says which and why)."""


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_test(cell) -> bool:
    m = _meta(cell)
    return cell.get("cell_type") == "code" and bool(m.get("grade")) and not m.get("solution")


def _defined(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _imports(source: str, used: set[str] | None = None) -> str:
    """The import statements of ``source`` (only those binding a name in ``used``, if given)."""
    tree = ast.parse(source)
    lines = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = {(a.asname or a.name).split(".")[0] for a in node.names}
            if used is None or bound & used or any(a.name == "*" for a in node.names):
                lines.append(ast.get_source_segment(source, node))
    return "\n".join(line for line in lines if line) + "\n"


def _names_used(sources: list[str]) -> set[str]:
    return {n.id for source in sources for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}


@dataclass
class Lesson:
    name: str
    setup: str
    helpers: list[str]
    students: list[str]
    tests: dict[str, str]
    hidden_lines: list[str] = field(default_factory=list)

    @classmethod
    def from_notebook(cls, nb: nbformat.NotebookNode, name: str = "lesson") -> "Lesson":
        setup_cells, helpers, students, tests, hidden = [], [], [], {}, []
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            meta = _meta(cell)
            try:
                if meta.get("grade_id") == "setup":
                    setup_cells.append(cell.source)
                elif HELPERS_TAG in cell.get("metadata", {}).get("tags", []):
                    ast.parse(cell.source)
                    helpers.append(cell.source)
                elif meta.get("solution"):
                    students += sorted(_defined(cell.source) - set(students))
                elif is_test(cell):
                    ast.parse(cell.source)
                    tests[meta["grade_id"]] = cell.source
                    for block in HIDDEN_BLOCK.findall(cell.source):
                        hidden += [" ".join(line.split()) for line in block.splitlines()
                                   if len(line.strip()) >= MIN_HIDDEN_LINE]
            except SyntaxError as err:
                raise LessonError(f"{name}: cell {meta.get('grade_id', '?')} is not valid Python ({err})") from None
        # only the imports the tests and helpers use (the widgets' take time to import, twice per test)
        try:
            used = _names_used(list(tests.values()) + helpers)
            setup = "".join(_imports(source, used) for source in setup_cells)
        except SyntaxError as err:
            raise LessonError(f"{name}: the setup cell is not valid Python ({err})") from None
        helper_names = set().union(*[_defined(h) for h in helpers]) if helpers else set()
        clash = helper_names & set(students)
        if clash:
            raise LessonError(f"{name}: the helper cells define {sorted(clash)}, which students write: a test would "
                              f"call the helper instead of the student's code")
        return cls(name, setup, helpers, students, tests, sorted(set(hidden), key=len, reverse=True))

    @classmethod
    def from_path(cls, path: Path) -> "Lesson":
        return cls.from_notebook(nbformat.read(path, as_version=4), Path(path).stem)

    def spec(self, grade_id: str, limit: int) -> str:
        """What the kernel's :func:`grader.judge.record.run_test` gets for one test cell (JSON)."""
        return json.dumps({"grade_id": grade_id, "setup": self.setup, "helpers": self.helpers,
                           "students": self.students, "source": self.tests[grade_id], "limit": limit})

    def kernel_code(self, grade_id: str, limit: int) -> str:
        """The code a graded test cell sends to the kernel instead of its own source."""
        return (f"__import__('grader.judge.record', fromlist=['run_test']).run_test({self.spec(grade_id, limit)!r})"
                f"  # test {grade_id}, recorded for the judge\n")

    def scrub(self, text: str) -> str:
        """``text`` from the kernel with every quoted hidden-test line cut out."""
        if not self.hidden_lines or len(text) < MIN_HIDDEN_LINE:
            return text
        flat = " ".join(text.split())
        if not any(line in flat for line in self.hidden_lines):
            return text
        for line in self.hidden_lines:
            flat = flat.replace(line, "[hidden test]")
        return flat


def source_notebook(config, assignment: str, notebook: str) -> Path:
    """The source notebook of a lesson, as nbgrader's configuration places it."""
    from nbgrader.coursedir import CourseDirectory
    coursedir = CourseDirectory(config=config)
    return Path(coursedir.format_path(coursedir.source_directory, ".", assignment)) / f"{notebook}.ipynb"
