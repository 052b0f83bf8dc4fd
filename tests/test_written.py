"""Written answers, graded by hand, end to end: a class run leaves them to a person and says so, a
person's grade in nbgrader's gradebook (what the Formgrader writes) reaches the summary, the export
and the feedback, and no page ever shows the rubric."""

from __future__ import annotations

import csv
import html as html_lib
import re
import subprocess
import sys

import nbformat
import pytest

from conftest import ROOT, source_notebook
from grader import build as course_build
from grader import grading
from grader.grading.written import Answer

LESSON = "01_tensors"
QUESTION = "written_kaiming_fan"
ANSWER = "PyTorch reads a weight as [out, in]; ours is [in, out], so the fan-in is the first size (ann-7781)."
AUTO = 9.0                          # lesson 01's automatic points


def _rubric_phrases(folder) -> list[str]:
    cell = next(c for c in source_notebook(folder, LESSON).cells if course_build.is_written(c))
    body = cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
    return [p.strip() for p in re.split(r"[.;:\n]", body) if len(p.strip()) > 25]


def _page(folder, student: str) -> str:
    written = grading.generate_feedback(folder, [LESSON], [student])
    assert len(written) == 1
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", written[0].read_text())).split())


def _course(folder, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", "--course", str(folder), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    """ann answers the question, ben leaves it as released, del deleted its cell; all else is the solution."""
    folder = tmp_path_factory.mktemp("written")
    course_build.build([LESSON], root=ROOT, out=folder)
    src = source_notebook(folder, LESSON)
    rel = nbformat.read(folder / "release" / LESSON / f"{LESSON}.ipynb", 4)
    unanswered = next(c for c in rel.cells if course_build.is_written(c))
    for student, text in (("ann", ANSWER), ("ben", unanswered.source), ("del", None)):
        nb = nbformat.from_dict(src)
        cell = next(c for c in nb.cells if course_build.is_written(c))
        if text is None:
            nb.cells.remove(cell)
        else:
            cell.source = text
        path = folder / f"{student}.ipynb"
        nbformat.write(nb, path)
        grading.submit(folder, LESSON, student, path)
    outcomes = grading.autograde_class(folder, [LESSON], workers=2, progress=False)
    return folder, {o.student: o for o in outcomes}, grading.summary(outcomes)


def test_autograding_leaves_the_written_answer_to_a_person(class_run):
    folder, outcomes, summary = class_run
    for student, outcome in outcomes.items():
        assert outcome.status == "graded", (student, outcome.reason)
        assert (outcome.auto_score, outcome.auto_max) == (AUTO, AUTO), student
        assert (outcome.score, outcome.max_score) == (AUTO, AUTO + 2), student          # no points invented
        assert grading.total(folder, LESSON, student) == (AUTO, AUTO + 2)
        assert QUESTION not in grading.scores(folder, LESSON, student), "scores() are the automatic ones"
    assert grading.answers(folder, LESSON, "ann") == {QUESTION: Answer(QUESTION, 2.0, None, True)}
    assert grading.answers(folder, LESSON, "ben") == {QUESTION: Answer(QUESTION, 2.0, 0.0, False)}  # "No response."
    assert grading.answers(folder, LESSON, "del") == {QUESTION: Answer(QUESTION, 2.0, 0.0, False)}
    assert "written answer 'written_kaiming_fan' was missing and was put back unanswered" in outcomes["del"].reason
    assert outcomes["ann"].standing.waiting == 1 and outcomes["ben"].standing.waiting == 0
    ann = next(line for line in summary.splitlines() if line.startswith("ann ") and LESSON in line)
    assert "9.0/9.0" in ann and "0/2, 1 to grade" in ann, summary
    assert "1 written answer (2 points) waits for grading in nbgrader's Formgrader" in summary
    autograded = nbformat.read(folder / "autograded" / "del" / LESSON / f"{LESSON}.ipynb", 4)
    restored = [c.source for c in autograded.cells if course_build.is_written(c)]
    assert restored == ["YOUR ANSWER HERE"], "a deleted answer comes back as released, never with its rubric"


def test_course_written_lists_what_waits(class_run):
    folder = class_run[0]
    done = _course(folder, "written")
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^ann\s+{LESSON}\s+{QUESTION} \(2 points\)$", done.stdout, re.M), done.stdout
    assert "ben" not in done.stdout and "1 written answer (2 points) waits" in done.stdout


def test_feedback_before_a_person_grades(class_run):
    folder = class_run[0]
    page = _page(folder, "ann")
    assert ANSWER in page, "the feedback shows the student's own answer"
    assert "Not graded yet: a person grades this written answer (2 points)" in page
    assert not [p for p in _rubric_phrases(folder) if p in page], "the feedback shows the rubric"


def test_a_grade_given_by_hand_reaches_the_export_and_the_feedback(class_run, tmp_path):
    """What the Formgrader does when a person grades an answer (nbgrader's formgrader API handler)."""
    folder = class_run[0]
    with grading.course.gradebook(folder) as gb:
        grade = gb.find_grade(QUESTION, LESSON, LESSON, "ann")
        grade.manual_score = 1.5
        grade.needs_manual_grade = False
        gb.find_comment(QUESTION, LESSON, LESSON, "ann").manual_comment = "Right layout; the numbers are missing."
        gb.db.commit()
    assert grading.answers(folder, LESSON, "ann") == {QUESTION: Answer(QUESTION, 2.0, 1.5, False)}
    points = grading.standing(folder, LESSON, "ann")
    assert (points.auto_score, points.written_score, points.waiting) == (AUTO, 1.5, 0)
    assert grading.total(folder, LESSON, "ann") == (AUTO + 1.5, AUTO + 2)
    grading.export_csv(folder, tmp_path / "grades.csv")
    rows = list(csv.reader((tmp_path / "grades.csv").read_text().splitlines()))
    assert ["ann", LESSON, "10.5", "11", "9", "9", "1.5", "2", "0", ""] in rows
    assert ["ben", LESSON, "9", "11", "9", "9", "0", "2", "0", ""] in rows
    page = _page(folder, "ann")
    assert ANSWER in page and "Score: 1.5 / 2.0" in page and "Right layout; the numbers are missing." in page
    assert "Not graded yet" not in page
    assert not [p for p in _rubric_phrases(folder) if p in page], "the feedback shows the rubric"
    done = _course(folder, "written")
    assert done.returncode == 0 and "no written answer waits for grading" in done.stdout, done.stdout
