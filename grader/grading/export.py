"""Grades out of the gradebook: one CSV row per student and lesson, plus a total per student.

``score`` / ``max_score`` are the lesson's whole grade as nbgrader holds it. The columns after them
keep apart what the judge decided (``automatic``) and what a person grades in nbgrader's Formgrader
(``written``: the points given so far, of ``written_max``; ``written_to_grade``: the points of the
written answers that still wait for a person, counted as 0 in ``score`` until then).
"""

from __future__ import annotations

import csv
from pathlib import Path

from grader.grading.course import flags, gradebook
from grader.grading.written import Standing, standing_of, unsubmitted

HEADER = ["student", "lesson", "score", "max_score", "automatic", "automatic_max", "written", "written_max",
          "written_to_grade", "flags"]


def _row(student: str, lesson: str, points: Standing, note: str) -> list[str]:
    return [student, lesson, f"{points.score:g}", f"{points.max_score:g}", f"{points.auto_score:g}",
            f"{points.auto_max:g}", f"{points.written_score:g}", f"{points.written_max:g}",
            f"{points.waiting_points:g}", note]


def export_csv(course: Path, path: Path) -> int:
    """One row per student and lesson (points, automatic and written apart, review flags), and a TOTAL row each;
    returns the rows written."""
    rows = []
    with gradebook(course) as gb:
        for student in sorted(gb.students, key=lambda s: s.id):
            total = Standing()
            for assignment in sorted(gb.assignments, key=lambda a: a.name):
                try:
                    sub = gb.find_submission(assignment.name, student.id)
                except Exception:
                    points, note = unsubmitted(assignment), "not submitted"
                else:
                    points = standing_of([g for notebook in sub.notebooks for g in notebook.grades])
                    found = flags(course, assignment.name, student.id)
                    note = f"review: {len(found)} flag(s) in review/{student.id}/{assignment.name}.txt" if found else ""
                rows.append(_row(student.id, assignment.name, points, note))
                total = total + points
            rows.append(_row(student.id, "TOTAL", total, ""))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return len(rows)
