"""notebooks/ -> source/ -> release/.

``notebooks/NN_topic.py`` (jupytext percent format) is the single source of truth. Each
cell that nbgrader grades declares its role on its cell line, briefly::

    # %% nbgrader={"grade_id": "softmax", "solution": true}                 <- students write here
    # %% nbgrader={"grade_id": "test_softmax", "grade": true, "points": 2}  <- a test cell
    # %% nbgrader={"grade_id": "setup", "locked": true}                     <- read-only

:func:`build_source` fills in the rest of nbgrader's metadata, checks the roles (unique
grade ids, solution markers inside solution cells, tests locked) and writes
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
        if "### BEGIN SOLUTION" not in cell.source or "### END SOLUTION" not in cell.source:
            raise BuildError(f"{where}: a solution cell needs ### BEGIN SOLUTION / ### END SOLUTION")
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


def nbgrader_api(course: Path, root: Path = ROOT, **overrides):
    """An ``NbGraderAPI`` reading ``root/nbgrader_config.py``, working on the course folder ``course``.

    ``overrides`` set further options, e.g. ``{"Execute": {"timeout": 20}}``.
    """
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

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
