"""Feedback for students: their code, the visible tests, and the judge's verdicts; nothing else.

nbgrader's feedback page shows every output of the autograded notebook, and those were written
by the student's kernel: a submission could print the hidden tests from ``In``, from a file or
from anywhere else. So :func:`hide_hidden_tests` keeps only what the grader itself wrote:

* test cells: the visible part of their code, and one output, the judge's verdict (``passed``,
  or its message, from ``metadata.judge``);
* every other code cell: its code, and no output;
* the hidden part of each test cell is replaced by a line that says so.

Written answers (graded by hand) are shown as the student wrote them, with the grade a person gave
in the Formgrader, or a note that they wait for one (:class:`WrittenAnswers`).

The course's ``nbgrader_config.py`` puts :class:`HideHiddenTests` in nbgrader's feedback
pipeline (with :class:`WrittenAnswers`), so ``nbgrader generate_feedback`` does the same.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor

from grader.build import checked, nbgrader_api
from grader.grading.course import pending

HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _is_test(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def hide_hidden_tests(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as a student may see it after grading (see the module's docstring)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        verdict = cell.get("metadata", {}).pop("judge", None)
        if not _is_test(cell):
            cell.outputs = []
            continue
        cell.source = HIDDEN.sub("# (hidden tests: not shown)\n", cell.source)
        if not isinstance(verdict, dict):
            message = "this test was not judged"
            cell.outputs = [new_output("error", ename="NotJudged", evalue=message, traceback=[f"NotJudged: {message}"])]
        elif verdict.get("passed"):
            cell.outputs = [new_output("stream", name="stdout", text="passed\n")]
        else:
            message = ANSI.sub("", str(verdict.get("message", "")))[:4000]
            cell.outputs = [new_output("error", ename="TestFailed", evalue=message, traceback=[f"TestFailed: {message}"])]
    return nb


class HideHiddenTests(NbGraderPreprocessor):
    """nbgrader preprocessor (``GenerateFeedback.preprocessors``) applying :func:`hide_hidden_tests`."""

    def preprocess(self, nb, resources):
        return hide_hidden_tests(nb), resources


def not_graded_yet(points: float) -> str:
    """What a student reads under a written answer that no person has graded yet."""
    return (f"*Not graded yet:* a person grades this written answer ({points:g} point{'s' if points != 1 else ''}) "
            f"in the Formgrader; until then it counts 0 in the score above.")


class WrittenAnswers(NbGraderPreprocessor):
    """nbgrader preprocessor (``GenerateFeedback.preprocessors``, after ``GetGrades``): written answers as graded.

    The page shows a written answer as the student wrote it (the autograded notebook holds nothing
    else: nbgrader never restores a written answer's source, so no rubric can be there) with the
    score a person gave it in the Formgrader, and the grader's comment. An answer that waits for a
    person says so in its comment, instead of showing a bare 0.
    """

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook, MissingEntry

        from grader.build import is_written

        info = resources.get("nbgrader", {})
        written = [cell for cell in nb.cells if is_written(cell)]
        if not written or "db_url" not in info:
            return nb, resources
        with Gradebook(info["db_url"]) as gb:
            for cell in written:
                meta = cell.metadata["nbgrader"]
                try:
                    grade = gb.find_grade(meta["grade_id"], info["notebook"], info["assignment"], info["student"])
                except MissingEntry:
                    continue
                if grade.manual_score is None and grade.needs_manual_grade:
                    note = not_graded_yet(float(grade.max_score))
                    meta["comment"] = f"{meta['comment']}\n\n{note}" if meta.get("comment") else note
        return nb, resources


def generate_feedback(course: Path, lessons: list[str] | None = None, students: list[str] | None = None) -> list[Path]:
    """nbgrader's HTML feedback for the autograded submissions, through :class:`HideHiddenTests` and
    :class:`WrittenAnswers` (``nbgrader_config.py``): run it again after grading written answers."""
    course = Path(course).resolve()
    api = nbgrader_api(course)
    written = []
    for lesson, student in pending(course, lessons, students, folder="autograded"):
        checked(api.generate_feedback(lesson, student), f"generate_feedback {lesson} {student}")
        written += sorted((course / "feedback" / student / lesson).glob("*.html"))
    return written
