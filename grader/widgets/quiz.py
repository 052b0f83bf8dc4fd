"""Self-check questions at the end of each lesson: pick an answer, get feedback at once.

They carry no points. The logic is :func:`grade_answer`; :func:`quiz` only draws it.

    >>> quiz([Question("Why ...?", ["a", "b", "c"], answer=1, explanation="Because ...")])
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as w


@dataclass(frozen=True)
class Question:
    prompt: str
    choices: list[str]
    answer: int                 # index of the right choice
    explanation: str            # why it is right (shown after any attempt)

    def __post_init__(self):
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(f"answer index {self.answer} out of range for {len(self.choices)} choices")


def grade_answer(question: Question, choice: int | None) -> tuple[bool, str]:
    """(is it right, the feedback to show) for the choice index picked (None: nothing picked yet)."""
    if choice is None:
        return False, "Pick an answer."
    if not 0 <= choice < len(question.choices):
        raise ValueError(f"choice {choice} out of range for {len(question.choices)} choices")
    if choice == question.answer:
        return True, f"Correct. {question.explanation}"
    return False, f"Not quite: the answer is \u201c{question.choices[question.answer]}\u201d. {question.explanation}"


# ipywidgets draws each radio choice as a label of one fixed-height line: a long choice would
# run over the next one. These rules let a label wrap, its button staying at its first line.
STYLE = """<style>
.course-quiz .widget-radio-box label {
  height: auto !important; white-space: normal !important; line-height: 1.35;
  display: flex !important; flex-direction: row-reverse; justify-content: flex-end;
  align-items: baseline; gap: 6px; margin: 3px 0;
}
.course-quiz .widget-radio-box input { flex: none; position: static !important; margin: 0 !important; }
</style>"""


def _one(number: int, question: Question) -> w.Widget:
    options = [(text, i) for i, text in enumerate(question.choices)]
    picker = w.RadioButtons(options=options, value=None, layout=w.Layout(width="auto"))
    picker.add_class("course-quiz")
    feedback = w.HTML()

    def show(change=None):
        right, text = grade_answer(question, picker.value)
        colour = "#1b7f3b" if right else ("#666" if picker.value is None else "#b3261e")
        feedback.value = f'<div style="color:{colour}; max-width:70ch">{text}</div>' if picker.value is not None else ""

    picker.observe(show, names="value")
    title = w.HTML(f"<b>Q{number}.</b> {question.prompt}")
    return w.VBox([title, picker, feedback], layout=w.Layout(margin="0 0 12px 0"))


def quiz(questions: list[Question]) -> w.VBox:
    """A column of questions, each with its radio buttons and immediate feedback."""
    return w.VBox([w.HTML(STYLE)] + [_one(i + 1, q) for i, q in enumerate(questions)])
