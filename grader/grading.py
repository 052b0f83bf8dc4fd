"""Grading with nbgrader: submit, autograde, read the scores.

The course folder follows nbgrader's layout: ``source/``, ``release/``,
``submitted/<student>/<lesson>/``, ``autograded/``, ``feedback/`` and ``gradebook.db``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from grader.build import checked, nbgrader_api


def submit(course: Path, lesson: str, student: str, notebook: Path) -> Path:
    """Place ``notebook`` as ``student``'s submission of ``lesson`` (what ``nbgrader collect`` does)."""
    target = Path(course) / "submitted" / student / lesson / f"{lesson}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)
    return target


def autograde(course: Path, lesson: str, student: str, **overrides) -> dict:
    """``nbgrader autograde`` of one student's submission of one lesson; returns nbgrader's result."""
    api = nbgrader_api(course, **overrides)
    return checked(api.autograde(lesson, student, force=True, create=True), f"autograde {lesson} {student}")


def scores(course: Path, lesson: str, student: str) -> dict[str, tuple[float, float]]:
    """``{grade_id: (score, max_score)}`` of every graded cell of a submission, from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{Path(course).resolve() / 'gradebook.db'}") as gb:
        submission = gb.find_submission_notebook(lesson, lesson, student)
        return {g.name: (float(g.score), float(g.max_score)) for g in submission.grades}
