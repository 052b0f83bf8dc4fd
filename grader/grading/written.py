"""Written answers: the points a person gives in nbgrader's Formgrader, kept apart from the automatic ones.

A written answer is a markdown cell that is both ``grade`` and ``solution`` (grade id ``written_...``,
see ``notebooks/AUTHORING.md``). Autograding never scores it: nbgrader's ``SaveAutoGrades`` leaves
it without a score and marks it *needs manual grade*, except an answer left exactly as released
(``YOUR ANSWER HERE``), which nbgrader scores 0 with the comment "No response.". A person then
grades it in the Formgrader (``nbgrader formgrader``, or JupyterLab's Formgrader panel), which
writes its ``manual_score`` into ``gradebook.db`` and clears the mark.

This module reads that state from the gradebook: a submission's :class:`Standing` (automatic
points apart from written ones, and what still waits for a person), and the words the summary,
the export and the feedback use for it.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from pathlib import Path

from grader.grading.course import by_hand, gradebook

#: where a person grades the written answers
FORMGRADER = "nbgrader's Formgrader (`nbgrader formgrader`, or the Formgrader panel in JupyterLab)"


@dataclass(frozen=True)
class Answer:
    """One written answer of one submission, as the gradebook holds it."""
    grade_id: str
    max_score: float
    score: float | None          # None while no one has graded it
    waiting: bool                # nbgrader's needs_manual_grade: a person should grade it (again)


@dataclass(frozen=True)
class Standing:
    """One submission's points: the automatic ones, and the written ones (given so far, and still to give)."""
    auto_score: float = 0.0
    auto_max: float = 0.0
    written_score: float = 0.0   # points a person has given
    written_max: float = 0.0
    waiting: int = 0             # written answers that wait for a person
    waiting_points: float = 0.0  # their points

    @property
    def score(self) -> float:
        return self.auto_score + self.written_score

    @property
    def max_score(self) -> float:
        return self.auto_max + self.written_max

    def __add__(self, other: "Standing") -> "Standing":
        return Standing(*(a + b for a, b in zip(astuple(self), astuple(other))))


def _answer(grade) -> Answer:
    """A manual score (a regrade marks it to review again, and keeps it), or nbgrader's 0 for "No response."."""
    given = grade.manual_score is not None or grade.auto_score is not None
    return Answer(grade.name, float(grade.max_score), float(grade.score) if given else None,
                  bool(grade.needs_manual_grade))


def answers(course: Path, lesson: str, student: str) -> dict[str, Answer]:
    """Every written answer of a submission, by grade id, from the gradebook."""
    with gradebook(course) as gb:
        notebook = gb.find_submission_notebook(lesson, lesson, student)
        return {g.name: _answer(g) for g in notebook.grades if by_hand(g)}


def standing_of(grades) -> Standing:
    """The :class:`Standing` made of gradebook ``Grade`` rows (a submitted notebook's ``grades``, or several's)."""
    auto = auto_max = written = written_max = waiting_points = 0.0
    waiting = 0
    for grade in grades:
        if not by_hand(grade):
            auto += float(grade.score)
            auto_max += float(grade.max_score)
            continue
        answer = _answer(grade)
        written_max += answer.max_score
        written += answer.score or 0.0
        if answer.waiting:
            waiting += 1
            waiting_points += answer.max_score
    return Standing(auto, auto_max, written, written_max, waiting, waiting_points)


def standing(course: Path, lesson: str, student: str) -> Standing:
    """One submission's :class:`Standing`, from the gradebook."""
    with gradebook(course) as gb:
        return standing_of(gb.find_submission_notebook(lesson, lesson, student).grades)


def unsubmitted(assignment) -> Standing:
    """The :class:`Standing` of a gradebook ``Assignment`` that a student did not submit: 0 of every point."""
    cells = [c for notebook in assignment.notebooks for c in notebook.grade_cells]
    return Standing(auto_max=float(sum(c.max_score for c in cells if c.cell_type != "markdown")),
                    written_max=float(sum(c.max_score for c in cells if c.cell_type == "markdown")))


def waiting_note(count: int, points: float) -> str:
    """The line that tells an instructor how much waits for a person ('' when nothing does)."""
    if not count:
        return ""
    return (f"{count} written answer{'s' if count != 1 else ''} ({points:g} point{'s' if points != 1 else ''}) "
            f"wait{'s' if count == 1 else ''} for grading in {FORMGRADER}; until then the scores count "
            f"{'it' if count == 1 else 'them'} as 0.")


def waiting_answers(course: Path, lessons: list[str] | None = None) -> list[tuple[str, str, str, float]]:
    """``(lesson, student, grade_id, points)`` of every written answer that waits for a person, in order."""
    found = []
    with gradebook(course) as gb:
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            if lessons and assignment.name not in lessons:
                continue
            for submission in assignment.submissions:
                for notebook in submission.notebooks:
                    found += [(assignment.name, submission.student.id, g.name, float(g.max_score))
                              for g in notebook.grades if by_hand(g) and g.needs_manual_grade]
    return sorted(found)
