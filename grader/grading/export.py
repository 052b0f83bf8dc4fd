"""Grades out of the gradebook: one CSV row per student and lesson, plus a total per student."""

from __future__ import annotations

import csv
from pathlib import Path

from grader.grading.course import flags, gradebook


def export_csv(course: Path, path: Path) -> int:
    """One row per student and lesson (score, max, review flags), and a TOTAL row each; returns rows written."""
    rows = []
    with gradebook(course) as gb:
        for student in sorted(gb.students, key=lambda s: s.id):
            total = total_max = 0.0
            for assignment in sorted(gb.assignments, key=lambda a: a.name):
                try:
                    sub = gb.find_submission(assignment.name, student.id)
                except Exception:
                    score, note = 0.0, "not submitted"
                else:
                    score = float(sub.score)
                    found = flags(course, assignment.name, student.id)
                    note = f"review: {len(found)} flag(s) in review/{student.id}/{assignment.name}.txt" if found else ""
                rows.append([student.id, assignment.name, f"{score:g}", f"{assignment.max_score:g}", note])
                total += score
                total_max += float(assignment.max_score)
            rows.append([student.id, "TOTAL", f"{total:g}", f"{total_max:g}", ""])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "lesson", "score", "max_score", "flags"])
        writer.writerows(rows)
    return len(rows)
