"""The `course` command line, as instructors and students call it."""

from __future__ import annotations

import subprocess
import sys

import nbformat

from conftest import ROOT, replace_solution, source_notebook


def course(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True)


def test_check_lists_visible_tests_for_a_student(tmp_path):
    nb = replace_solution(source_notebook(ROOT, "01_tensors"), "count_params",
                          "def count_params(params):\n    return 0\n\ndef param_bytes(params):\n"
                          "    return sum(p.numel() * p.element_size() for p in params)\n")
    path = tmp_path / "mine.ipynb"
    nbformat.write(nb, path)
    result = course("check", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PASS  test_init_params_shapes (2 points)" in result.stdout
    assert "FAIL  test_count_params (2 points)" in result.stdout
    assert "count_params(init_params()) = 0, expected 101,770" in result.stdout
    assert "visible tests: 7 / 9 points pass" in result.stdout


def test_check_of_an_untouched_release_fails_every_test():
    result = course("check", str(ROOT / "release" / "01_tensors" / "01_tensors.ipynb"))
    assert result.returncode == 1
    assert result.stdout.count("FAIL") == 4 and "NotImplementedError" in result.stdout


def test_clear_errors(tmp_path):
    result = course("check", str(tmp_path / "nope.ipynb"))
    assert result.returncode == 2 and "no notebook at" in result.stderr
    result = course("--course", str(tmp_path), "build", "99_nothing")
    assert result.returncode == 2 and "no such lesson" in result.stderr
    result = course("--course", str(tmp_path), "autograde")
    assert result.returncode == 2 and "gradebook.db is missing" in result.stderr
