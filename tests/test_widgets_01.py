"""The self-check quiz and lesson 01's memory table and activation picture."""

from __future__ import annotations

import pytest
import torch

from grader.widgets import tensors
from grader.widgets.quiz import Question, grade_answer, quiz

Q = Question("2 + 2?", ["3", "4"], answer=1, explanation="Arithmetic.")


def test_grade_answer():
    assert grade_answer(Q, 1) == (True, "Correct. Arithmetic.")
    right, text = grade_answer(Q, 0)
    assert not right and "\u201c4\u201d" in text and "Arithmetic." in text
    assert grade_answer(Q, None) == (False, "Pick an answer.")
    with pytest.raises(ValueError, match="out of range"):
        grade_answer(Q, 5)
    with pytest.raises(ValueError, match="answer index 3 out of range"):
        Question("?", ["a"], answer=3, explanation="")


def test_quiz_feedback_appears_when_an_answer_is_picked():
    box = quiz([Q])
    style, question = box.children
    assert "course-quiz" in style.value, "the quiz lost the style that lets long choices wrap"
    title, picker, feedback = question.children
    assert "course-quiz" in picker._dom_classes
    assert feedback.value == ""
    picker.value = 0
    assert "Not quite" in feedback.value
    picker.value = 1
    assert "Correct" in feedback.value


def test_memory_rows_match_the_lesson_table():
    rows = tensors.memory_rows()
    assert [r[2] for r in rows] == [100_352, 128, 1_280, 10]
    assert sum(r[3] for r in rows) == 407_080
    assert sum(r[3] for r in tensors.memory_rows(dtype=torch.float16)) == 203_540
    assert "101,770" in tensors.memory_html()
    with pytest.raises(ValueError, match="hidden must be at least 1"):
        tensors.memory_rows(0)


def test_memory_widget_updates_with_the_slider():
    box = tensors.memory_widget()
    (slider, dropdown), table = box.children[0].children, box.children[1]
    slider.value = 1
    assert "<b>805</b>" in table.value   # 784 + 1 + 10 + 10
    dropdown.value = "float64"
    assert "6.44 KB" in table.value      # 805 values * 8 bytes


def test_activation_scales():
    big = tensors.activation_stds(1.0, depth=5)
    small = tensors.activation_stds(0.01, depth=5)
    kaiming = tensors.activation_stds("kaiming", depth=10)
    assert big[-1] > 1e3 * big[0] and small[-1] < 1e-3 * small[0]
    assert 0.5 < min(kaiming) and max(kaiming) < 1.5
    assert tensors.activation_stds("kaiming", depth=3) == tensors.activation_stds("kaiming", depth=3)
