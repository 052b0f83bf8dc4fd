"""notebooks/ -> source/ -> release/.

``notebooks/NN_topic.py`` (jupytext percent format) is the single source of truth. Each
cell that nbgrader grades declares its role on its cell line, briefly::

    # %% nbgrader={"grade_id": "softmax", "solution": true}                 <- students write here
    # %% nbgrader={"grade_id": "test_softmax", "grade": true, "points": 2}  <- a test cell
    # %% nbgrader={"grade_id": "setup", "locked": true}                     <- read-only
    # %% [markdown] nbgrader={"grade_id": "written_x", "grade": true, "solution": true, "points": 2}
                                                                            <- a written answer, graded by hand

A written answer holds only the rubric and a model answer between ``### BEGIN SOLUTION`` and
``### END SOLUTION``; the release shows nbgrader's ``YOUR ANSWER HERE`` in its place.

:func:`build_source` fills in the rest of nbgrader's metadata, checks the roles (unique
grade ids, solution markers inside solution cells, tests locked, written answers well formed) and writes
``source/NN_topic/NN_topic.ipynb``, paired with its ``.py`` through jupytext so that an
instructor may edit either (the ``.py`` gets the full metadata written back, as jupytext
would write it). :func:`build_release` runs ``nbgrader generate_assignment``
and strips the pairing from the student copies.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
LESSON = re.compile(r"^\d\d_[a-z0-9_]+$")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
ROLE_KEYS = ("grade", "solution", "locked", "task")
#: grade ids of written answers (markdown cells graded by hand in nbgrader's Formgrader) start with this
WRITTEN_PREFIX = "written_"
WRITTEN_BODY = re.compile(r"### BEGIN SOLUTION[ \t]*\n(.*\S.*)\n[ \t]*### END SOLUTION", re.S)


def pairing(lesson: str) -> str:
    """jupytext formats pairing ``source/<lesson>/<lesson>.ipynb`` with ``notebooks/<lesson>.py``.

    Both sides are named by a prefix from the course root, so jupytext can go from either file
    to the other (a ``../../notebooks`` prefix cannot be undone from the ``.py`` side, and
    JupyterLab then refuses to save). It works when the server's root holds ``source/`` and
    ``notebooks/``, as ``make lab`` does.
    """
    return f"source/{lesson}//ipynb,notebooks//py:percent"


class BuildError(ValueError):
    """A lesson file is not a valid nbgrader notebook (its message says which cell and why)."""


def lessons(root: Path = ROOT) -> list[str]:
    """Names of the lessons in ``root/notebooks`` (``01_tensors``, ...), in order."""
    return sorted(p.stem for p in (root / "notebooks").glob("*.py") if LESSON.match(p.stem))


def is_written(cell) -> bool:
    """A written answer: a markdown cell that is both ``grade`` and ``solution``, graded by a person."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "markdown" and bool(meta.get("grade")) and bool(meta.get("solution"))


def _check_written(cell, full: dict, where: str) -> None:
    """A written answer cell: markdown, grade and solution, ``written_`` id, only its rubric between the markers."""
    if cell.cell_type != "markdown":
        raise BuildError(f"{where}: a grade_id starting with {WRITTEN_PREFIX!r} names a written answer, which must "
                         f"be a markdown cell")
    if not (full["grade"] and full["solution"]):
        raise BuildError(f"{where}: a markdown nbgrader cell is a written answer: it needs \"grade\": true, "
                         f"\"solution\": true and points (graded by hand)")
    if not full["grade_id"].startswith(WRITTEN_PREFIX):
        raise BuildError(f"{where}: the grade_id of a written answer starts with {WRITTEN_PREFIX!r}")
    match = WRITTEN_BODY.fullmatch(cell.source.strip())
    if not match:
        raise BuildError(f"{where}: a written answer cell holds only its rubric, between ### BEGIN SOLUTION and "
                         f"### END SOLUTION (the question goes in the markdown cell above; the release shows "
                         f"YOUR ANSWER HERE)")
    if "rubric" not in match.group(1).lower():
        raise BuildError(f"{where}: a written answer's solution holds the rubric for the grader (\"*Rubric:* ...\"), "
                         f"and a model answer")


def _normalize(cell, index: int, lesson: str, seen: set[str]) -> None:
    meta = cell.metadata.get("nbgrader")
    if meta is None:
        return
    where = f"{lesson}, cell {index} ({cell.source.strip().splitlines()[0][:60] if cell.source.strip() else 'empty'})"
    grade_id = meta.get("grade_id")
    if not grade_id or not re.match(r"^[A-Za-z0-9_\-]+$", str(grade_id)):
        raise BuildError(f"{where}: every nbgrader cell needs a grade_id of letters, digits, _ or -")
    if grade_id in seen:
        raise BuildError(f"{where}: grade_id {grade_id!r} is used twice")
    seen.add(grade_id)
    full = {key: bool(meta.get(key, False)) for key in ROLE_KEYS}
    full["grade_id"] = grade_id
    full["schema_version"] = 3
    if full["grade"]:
        if "points" not in meta or float(meta["points"]) <= 0:
            raise BuildError(f"{where}: a graded cell needs points > 0")
        full["points"] = meta["points"]
    if full["grade"] and not full["solution"]:
        full["locked"] = True                   # test cells are read-only
    if cell.cell_type == "code" and full["solution"]:
        if full["grade"]:
            raise BuildError(f"{where}: a cell that is both grade and solution is a written answer, graded by hand: "
                             f"make it a markdown cell (grade_id {WRITTEN_PREFIX}...)")
        if "### BEGIN SOLUTION" not in cell.source or "### END SOLUTION" not in cell.source:
            raise BuildError(f"{where}: a solution cell needs ### BEGIN SOLUTION / ### END SOLUTION")
    if (cell.cell_type == "markdown" and (full["grade"] or full["solution"])) or grade_id.startswith(WRITTEN_PREFIX):
        _check_written(cell, full, where)
    if "### BEGIN HIDDEN TESTS" in cell.source and not (full["grade"] and not full["solution"]):
        raise BuildError(f"{where}: hidden tests belong in a test cell (grade: true)")
    cell.metadata["nbgrader"] = dict(sorted(full.items()))     # as nbformat writes it


def build_source(lesson: str, root: Path = ROOT, out: Path | None = None) -> Path:
    """Write ``<out>/source/<lesson>/<lesson>.ipynb`` from ``<root>/notebooks/<lesson>.py``.

    The text file is written back (to ``<out>/notebooks/``) with each cell's nbgrader metadata
    in full, exactly as jupytext writes the notebook: its words are unchanged. Both files of the
    pair then hold the same cells, which jupytext requires before JupyterLab opens the pair.
    """
    out = out or root
    nb = jupytext.read(root / "notebooks" / f"{lesson}.py")
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        _normalize(cell, index, lesson, seen)
        cell["id"] = cell.metadata["nbgrader"]["grade_id"] if "nbgrader" in cell.metadata else f"cell-{index}"
    if not seen:
        raise BuildError(f"{lesson}: no nbgrader cells; nothing to grade")
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["jupytext"] = {"formats": pairing(lesson),
                               # no jupytext version stamp: a save in JupyterLab leaves the .py as it was
                               "notebook_metadata_filter": "-jupytext.text_representation"}
    nbformat.validate(nb)
    twin = out / "notebooks" / f"{lesson}.py"
    canonical = jupytext.writes(nb, fmt="py:percent")
    if not twin.exists() or twin.read_text() != canonical:
        twin.parent.mkdir(parents=True, exist_ok=True)
        twin.write_text(canonical)
    target = out / "source" / lesson / f"{lesson}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target


def _venv_on_path() -> None:
    """nbgrader runs ``alembic`` by name: put this environment's ``bin/`` first on PATH."""
    bindir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bindir + os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def nbgrader_api(course: Path, root: Path | None = None, **overrides):
    """An ``NbGraderAPI`` reading ``root/nbgrader_config.py``, working on the course folder ``course``.

    ``root`` defaults to the course folder when it has its own ``nbgrader_config.py`` (an
    instructor's folder on the hub, with the course installed as a package), else the
    repository. ``overrides`` set further options, e.g. ``{"Execute": {"timeout": 20}}``.
    """
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    if root is None:
        root = Path(course) if (Path(course) / "nbgrader_config.py").is_file() else ROOT
    _venv_on_path()
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    course = Path(course).resolve()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    for section, values in overrides.items():
        for key, value in values.items():
            setattr(config[section], key, value)
    return NbGraderAPI(config=config)


def checked(result: dict, what: str) -> dict:
    """Raise with nbgrader's own log when an API call did not succeed."""
    if not result.get("success"):
        raise RuntimeError(f"nbgrader {what} failed:\n{result.get('log', '')}\n{result.get('error', '')}")
    return result


def build_release(lesson: str, api, out: Path) -> Path:
    """``nbgrader generate_assignment`` of one lesson into ``<out>/release``; the pairing is removed."""
    checked(api.generate_assignment(lesson, force=True), f"generate_assignment {lesson}")
    target = out / "release" / lesson / f"{lesson}.ipynb"
    nb = nbformat.read(target, as_version=4)
    nb.metadata.pop("jupytext", None)           # a student's save must never write into notebooks/
    for cell in nb.cells:
        if is_written(cell) and ("SOLUTION" in cell.source or "rubric" in cell.source.lower()):
            raise BuildError(f"{lesson}: the release of written answer {cell.metadata['nbgrader']['grade_id']!r} "
                             f"still shows its rubric")
    nbformat.write(nb, target)
    return target


def build(names: list[str] | None = None, root: Path = ROOT, out: Path | None = None) -> list[str]:
    """Rebuild source/ and release/ for the given lessons (default: all); returns their names."""
    out = out or root
    names = names or lessons(root)
    unknown = set(names) - set(lessons(root))
    if unknown:
        raise BuildError(f"no such lesson(s): {sorted(unknown)}; lessons are {lessons(root)}")
    api = nbgrader_api(out, root)
    for name in names:
        shutil.rmtree(out / "source" / name, ignore_errors=True)
        build_source(name, root, out)
        build_release(name, api, out)
    return names
