"""Writing a graded submission into the course's gradebook (only the parent process does this)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from grader.grading.course import gradebook


def record_zero(course: Path, lesson: str, student: str, reason: str) -> None:
    """A submission that could not be graded: every cell scores 0, and the comment says why."""
    with gradebook(course) as gb:
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(lesson, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.manual_score = None
                grade.needs_manual_grade = False
            for comment in notebook.comments:
                comment.auto_comment = f"Not graded: {reason}"
        gb.db.commit()
    shutil.rmtree(Path(course) / "autograded" / student / lesson, ignore_errors=True)


def record_graded(course: Path, lesson: str, student: str, graded_dir: Path) -> None:
    """Write the scores of an autograded notebook into the course's gradebook, as nbgrader does."""
    from nbgrader.preprocessors import SaveAutoGrades
    from nbgrader.utils import parse_utc

    submitted = Path(course) / "submitted" / student / lesson
    timestamp = None
    if (submitted / "timestamp.txt").exists():
        timestamp = parse_utc((submitted / "timestamp.txt").read_text().strip())
    with gradebook(course) as gb:
        gb.update_or_create_student(student)
        if timestamp:
            gb.update_or_create_submission(lesson, student, timestamp=timestamp)
        else:
            gb.update_or_create_submission(lesson, student)
    db_url = f"sqlite:///{Path(course).resolve() / 'gradebook.db'}"
    for path in sorted(Path(graded_dir).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        resources = {"nbgrader": {"notebook": path.stem, "assignment": lesson, "student": student, "db_url": db_url}}
        SaveAutoGrades().preprocess(nb, resources)
    target = Path(course) / "autograded" / student / lesson
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(graded_dir, target)
