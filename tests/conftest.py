"""Shared fixtures: one fresh build of the whole course into a temporary nbgrader course folder."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import nbformat
import pytest

from grader import build as course_build
from grader import grading

ROOT = Path(__file__).resolve().parent.parent
ALL_LESSONS = course_build.lessons(ROOT)
# COURSE_LESSONS=02_forward,03_loss limits the notebook tests (and the build they use) to those lessons.
LESSONS = [n for n in os.environ.get("COURSE_LESSONS", "").split(",") if n] or ALL_LESSONS

# The kernels nbgrader starts read this; it keeps the machine's two cores from being oversubscribed.
os.environ.setdefault("OMP_NUM_THREADS", "2")
warnings.filterwarnings("ignore", module="nbgrader")


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Path:
    """A course folder with source/, release/ and gradebook.db freshly built from notebooks/."""
    folder = tmp_path_factory.mktemp("course")
    course_build.build(LESSONS, root=ROOT, out=folder)
    return folder


class Grades:
    """Submit and autograde notebooks in the session's course folder; one student id per submission."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0

    def grade(self, lesson: str, notebook, **overrides) -> tuple[dict[str, tuple[float, float]], nbformat.NotebookNode]:
        """Autograde ``notebook`` (a path or a NotebookNode); returns (scores by grade_id, graded notebook).

        The scores are the automatic ones; ``self.written()`` gives the written answers (graded by hand)."""
        self.count += 1
        student = self.student = f"s{self.count:03d}"
        if not isinstance(notebook, (str, Path)):
            path = self.folder / "tmp" / f"{student}.ipynb"
            path.parent.mkdir(exist_ok=True)
            nbformat.write(notebook, path)
            notebook = path
        grading.submit(self.folder, lesson, student, Path(notebook))
        grading.autograde(self.folder, lesson, student, **overrides)
        graded = nbformat.read(self.folder / "autograded" / student / lesson / f"{lesson}.ipynb", as_version=4)
        return grading.scores(self.folder, lesson, student), graded

    def written(self, lesson: str) -> dict:
        """The written answers of the last graded submission: ``{grade_id: grading.written.Answer}``."""
        return grading.answers(self.folder, lesson, self.student)


@pytest.fixture(scope="session")
def grades(course) -> Grades:
    return Grades(course)


def source_notebook(folder: Path, lesson: str) -> nbformat.NotebookNode:
    return nbformat.read(folder / "source" / lesson / f"{lesson}.ipynb", as_version=4)


def replace_solution(nb: nbformat.NotebookNode, grade_id: str, code: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose solution cell ``grade_id`` holds ``code`` instead (a student's own version)."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = code
            return nb
    raise KeyError(f"no cell with grade_id {grade_id!r}")


def error_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """'cell N: ename: evalue' for every error output in an executed notebook."""
    found = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append(f"cell {index}: {out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr":
                found.append(f"cell {index}: stderr: {out.text[:300]}")
    return found
