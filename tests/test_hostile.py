"""A class of good, broken and hostile submissions of lesson 01, graded in one parallel run by
`course autograde` (real nbgrader underneath). Each submission must get exactly the score
it deserves, and nobody else's grade may suffer.

Lesson 01's points: init_params 5 (shapes 2 + values 3), count_params 2, param_bytes 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import ALL_LESSONS, ROOT, replace_solution, source_notebook
from grader import build as course_build
from grader import grading

LESSON = "01_tensors"
WRONG_COUNT = "def count_params(params):\n    return 0\n\ndef param_bytes(params):\n    return sum(p.numel() * p.element_size() for p in params)\n"
RIGHT_COUNT = "def count_params(params):\n    return sum(p.numel() for p in params)\n\ndef param_bytes(params):\n    return sum(p.numel() * p.element_size() for p in params)\n"
WRONG_INIT = "def init_params(seed=0, hidden=128):\n    return tuple(torch.zeros(s, requires_grad=True) for s in [(784, hidden), (hidden,), (hidden, 10), (10,)])\n"


def _cell(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _variants(src: nbformat.NotebookNode) -> dict[str, tuple[object, float, str]]:
    """student -> (notebook or raw bytes or None, expected score, expected status)."""
    v: dict[str, tuple[object, float, str]] = {}
    v["good_1"] = (src, 9, "graded")
    v["good_2"] = (src, 9, "graded")
    v["endless_loop"] = (replace_solution(src, "count_params", "while True:\n    pass\n" + RIGHT_COUNT), 5, "graded")
    v["kills_kernel"] = (replace_solution(src, "count_params", "import os\nos.kill(os.getpid(), 9)\n"), 0, "failed")
    v["eats_memory"] = (replace_solution(src, "count_params",
                                         "hog = [bytearray(2**30) for _ in range(16)]\n" + RIGHT_COUNT), 5, "graded")
    nb = replace_solution(src, "count_params", RIGHT_COUNT)
    del nb.cells[_cell(nb, "test_count_params")]
    v["deleted_test"] = (nb, 9, "graded")
    nb = replace_solution(src, "count_params", WRONG_COUNT)
    nb.cells[_cell(nb, "test_count_params")].source = "pass\n"
    v["edited_test"] = (nb, 7, "graded")
    nb = replace_solution(src, "count_params", WRONG_COUNT)
    i = _cell(nb, "test_count_params")
    nb.cells[i] = nbformat.v4.new_markdown_cell("nothing to see", metadata=nb.cells[i].metadata)
    v["changed_cell_type"] = (nb, 7, "graded")
    nb = replace_solution(src, "count_params", WRONG_COUNT)
    i = _cell(nb, "test_count_params")
    fake = nbformat.from_dict(json.loads(json.dumps(nb.cells[i])))
    fake.source = "pass\n"
    fake["id"] = "duplicate-of-test"
    nb.cells.insert(i, fake)
    v["duplicated_grade_id"] = (nb, 7, "graded")
    v["not_json"] = (b'{"cells": [', 0, "unreadable")
    v["empty_file"] = (b"", 0, "unreadable")
    v["no_notebook"] = (None, 0, "unreadable")
    nb = nbformat.from_dict(json.loads(json.dumps(src)))
    nb.cells.insert(_cell(nb, "count_params"), nbformat.v4.new_code_cell(
        "for i in range(200_000):\n    print('spam spam spam spam spam spam spam spam', i)\n"))
    v["huge_output"] = (nb, 9, "graded")
    v["patches_allclose"] = (replace_solution(src, "init_params", "torch.allclose = lambda *a, **k: True\n"
                                              "torch.equal = lambda *a, **k: True\n" + WRONG_INIT), 0, "withheld")
    v["patches_checks"] = (replace_solution(src, "init_params", "for name in dir(checks):\n"
                                            "    if name.startswith('assert'):\n"
                                            "        setattr(checks, name, lambda *a, **k: None)\n" + WRONG_INIT),
                           0, "withheld")
    v["hides_tracebacks"] = (replace_solution(src, "count_params", "get_ipython().showtraceback = lambda *a, **k: None\n"
                                              + WRONG_COUNT), 0, "withheld")
    v["rebinds_builtin"] = (replace_solution(src, "count_params", "def isinstance(*a):\n    return True\n"
                                             "def type(x):\n    return int\n" + WRONG_COUNT), 0, "withheld")
    v["lying_int"] = (replace_solution(src, "count_params", "class Liar(int):\n    def __eq__(self, other):\n"
                                       "        return True\n    __hash__ = int.__hash__\n\n"
                                       "def count_params(params):\n    return Liar(0)\n\n"
                                       "def param_bytes(params):\n    return sum(p.numel() * p.element_size() for p in params)\n"),
                      7, "graded")
    v["warns_on_stderr"] = (replace_solution(src, "count_params", "import warnings\n\n"
                                             "def count_params(params):\n"
                                             "    warnings.warn('count_params: iterating parameters', UserWarning)\n"
                                             "    return sum(p.numel() for p in params)\n\n"
                                             "def param_bytes(params):\n"
                                             "    warnings.warn('param_bytes: bytes', DeprecationWarning)\n"
                                             "    return sum(p.numel() * p.element_size() for p in params)\n"),
                            9, "graded")
    v["syntax_error"] = (replace_solution(src, "count_params", "def count_params(params:\n    return 1\n"), 5, "graded")
    return v


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    course_build.build([LESSON], root=ROOT, out=folder)
    src = source_notebook(folder, LESSON)
    variants = _variants(src)
    for student, (content, _, _) in variants.items():
        target = folder / "submitted" / student / LESSON / f"{LESSON}.ipynb"
        target.parent.mkdir(parents=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif content is not None:
            nbformat.write(content, target)
    outcomes = grading.autograde_class(folder, [LESSON], workers=2, timeout=30, memory=3 * 1024 ** 3,
                                       progress=False)
    return folder, variants, {o.student: o for o in outcomes}


CASES = ["good_1", "good_2", "endless_loop", "kills_kernel", "eats_memory", "deleted_test", "edited_test",
         "changed_cell_type", "duplicated_grade_id", "not_json", "empty_file", "no_notebook", "huge_output",
         "patches_allclose", "patches_checks", "hides_tracebacks", "rebinds_builtin", "lying_int",
         "warns_on_stderr", "syntax_error"]


@pytest.mark.parametrize("student", CASES)
def test_each_submission_gets_exactly_what_it_deserves(class_run, student):
    folder, variants, outcomes = class_run
    _, expected, status = variants[student]
    outcome = outcomes[student]
    assert (outcome.score, outcome.status) == (expected, status), (
        f"{student}: got {outcome.score} ({outcome.status}: {outcome.reason} {outcome.findings}), "
        f"expected {expected} ({status})")
    assert outcome.max_score == 9


def test_every_grade_in_the_gradebook_is_intact(class_run):
    folder, variants, outcomes = class_run
    assert sorted(outcomes) == sorted(CASES)
    for student, (_, expected, _) in variants.items():
        score, max_score = grading._total(folder, LESSON, student)
        assert (score, max_score) == (expected, 9), f"gradebook holds {score} for {student}, expected {expected}"


def test_huge_output_is_cut_not_stored_whole(class_run):
    folder, _, _ = class_run
    graded = folder / "autograded" / "huge_output" / LESSON / f"{LESSON}.ipynb"
    assert graded.stat().st_size < 2_000_000, f"{graded} is {graded.stat().st_size:,} bytes"


def test_withheld_points_say_why_and_can_be_overruled(class_run):
    folder, _, outcomes = class_run
    assert any("checks" in f for f in outcomes["patches_checks"].findings)
    report = (folder / "autograded" / "patches_allclose" / LESSON / "cheat_scan.txt").read_text()
    assert "torch.allclose" in report and "course overrule" in report
    # the patched-away tests would have passed; overruling gives back exactly what autograde measured
    grading.overrule(folder, LESSON, "hides_tracebacks")
    score, _ = grading._total(folder, LESSON, "hides_tracebacks")
    assert score == 7, "hides_tracebacks has a wrong count_params: its autograde score is 7"
    grading.withhold(folder, LESSON, "hides_tracebacks", outcomes["hides_tracebacks"].findings)


def test_the_honest_submissions_trip_no_scan(class_run):
    folder, _, outcomes = class_run
    for student in ["good_1", "good_2", "lying_int", "warns_on_stderr", "huge_output", "syntax_error"]:
        assert outcomes[student].findings == [], f"{student}: {outcomes[student].findings}"


@pytest.mark.parametrize("lesson", ALL_LESSONS)
def test_solution_notebooks_trip_no_scan(tmp_path, lesson):
    """The scan must never flag the course's own code: the solution passes through it clean."""
    shutil.copytree(ROOT / "source" / lesson, tmp_path / "source" / lesson)
    grading.submit(tmp_path, lesson, "teacher", ROOT / "source" / lesson / f"{lesson}.ipynb")
    assert grading.scan_submission(tmp_path, lesson, "teacher") == []


def test_feedback_keeps_hidden_tests_hidden(class_run):
    folder, _, _ = class_run
    written = grading.generate_feedback(folder, [LESSON], ["good_1", "edited_test"])
    assert [p.parent.parent.name for p in written] == ["edited_test", "good_1"]
    source = (ROOT / "source" / LESSON / f"{LESSON}.ipynb").read_text()
    hidden_line = "for seed, hidden in [(1, 128), (42, 64), (7, 1), (2024, 256)]:"
    assert hidden_line in source
    for page in written:
        html = page.read_text()
        assert "hidden tests: not shown" in html
        assert "2024, 256" not in html and "BEGIN HIDDEN TESTS" not in html
    failed = (folder / "feedback" / "edited_test" / LESSON / f"{LESSON}.html").read_text()
    assert "count_params(init_params()) = 0" in failed, "the failure message must reach the student"


def test_export_has_a_row_per_student_and_a_total(class_run, tmp_path):
    folder, _, _ = class_run
    out = tmp_path / "grades.csv"
    grading.export_csv(folder, out)
    rows = out.read_text().splitlines()
    assert rows[0] == "student,lesson,score,max_score,flags"
    assert "good_1,01_tensors,9,9," in rows and "good_1,TOTAL,9,9," in rows
    assert "patches_checks,01_tensors,0,9,withheld by cheat scan" in rows
    assert len(rows) == 1 + 2 * len(CASES)
