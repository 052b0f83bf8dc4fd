"""Every lesson, end to end through nbgrader: the solution earns every automatic point and runs
without an error; the untouched release earns none and autograding it does not crash. Written
answers (graded by hand) are never scored by autograding: the solution's waits for a person,
the release's unanswered one gets nbgrader's 0 ("No response.")."""

from __future__ import annotations

import pytest

from conftest import LESSONS, error_outputs, source_notebook
from grader.build import is_written


def written_points(course, lesson: str) -> dict[str, float]:
    """``{grade_id: points}`` of the lesson's written answers, from its source notebook."""
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
            for c in source_notebook(course, lesson).cells if is_written(c)}


#: what a lesson's solution must print besides passing its tests (the files it leaves for later lessons)
PRINTS = {"07_loop": ["bytes (101,770 float32 values", "wrote mnist_mlp.html ("]}


@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_gets_full_marks_and_runs_clean(course, grades, lesson):
    scores, graded = grades.grade(lesson, course / "source" / lesson / f"{lesson}.ipynb")
    assert scores, f"{lesson}: no graded cells were found"
    lost = {k: v for k, v in scores.items() if v[0] != v[1]}
    errors = error_outputs(graded)
    assert not lost, f"{lesson}: the solution lost points in {lost}; errors in the notebook: {errors}"
    assert not errors, f"{lesson}: the solution notebook printed errors: {errors}"
    printed = "".join(out.get("text", "") for cell in graded.cells if cell.cell_type == "code"
                      for out in cell.get("outputs", []))
    missing = [text for text in PRINTS.get(lesson, []) if text not in printed]
    assert not missing, f"{lesson}: the solution never printed {missing}"
    written = grades.written(lesson)
    assert {k: a.max_score for k, a in written.items()} == written_points(course, lesson)
    graded_by_hand = {k: a for k, a in written.items() if not (a.waiting and a.score is None)}
    assert not graded_by_hand, f"{lesson}: autograding scored written answers, which wait for a person: {graded_by_hand}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_untouched_release_gets_zero(course, grades, lesson):
    scores, graded = grades.grade(lesson, course / "release" / lesson / f"{lesson}.ipynb")
    earned = {k: v for k, v in scores.items() if v[0] != 0}
    assert scores and not earned, f"{lesson}: the untouched release earned points in {earned}"
    raised = [e for e in error_outputs(graded) if "NotImplementedError" in e]
    assert raised, f"{lesson}: the release's stubs should raise NotImplementedError when run"
    written = grades.written(lesson)
    assert {k: a.max_score for k, a in written.items()} == written_points(course, lesson)
    answered = {k: a for k, a in written.items() if (a.score, a.waiting) != (0.0, False)}
    assert not answered, f"{lesson}: an unanswered written answer should get nbgrader's 0, not wait: {answered}"
