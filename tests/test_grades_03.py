"""Lesson 03 through real nbgrader: what each kind of submission earns, cell by cell.

A correct but differently written solution earns everything; an unstable softmax, a call to
F.cross_entropy and an in-place shift each lose exactly the points of the tests they break,
and the failing cell says why.
"""

from __future__ import annotations

import pytest

from conftest import LESSONS, replace_solution, source_notebook

LESSON = "03_loss"
pytestmark = pytest.mark.skipif(LESSON not in LESSONS, reason=f"{LESSON} is not among COURSE_LESSONS")

POINTS = {"test_softmax": 2, "test_softmax_stable": 2, "test_log_softmax": 2, "test_log_softmax_stable": 2,
          "test_cross_entropy": 3, "test_cross_entropy_stable": 2, "test_inputs_unchanged": 2}

# Mathematically the same as the solution, written otherwise: amax over the last dim and unsqueeze
# instead of max(dim=1, keepdim=True); log-sum-exp by hand in helper functions, with the max added
# back outside the log; the loss through a one-hot mask and a sum divided by B; other names.
OTHER_SOFTMAX = '''
def softmax(scores):
    top = torch.amax(scores, dim=-1).unsqueeze(-1)
    weights = (scores - top).exp()
    return weights / torch.sum(weights, -1).unsqueeze(-1)
'''
OTHER_LOG_SOFTMAX = '''
def _row_max(x):
    return x.amax(dim=-1)


def _logsumexp_rows(x):
    m = _row_max(x)
    return m + torch.log(torch.sum(torch.exp(x - m[:, None]), dim=-1))


def log_softmax(scores):
    return scores - _logsumexp_rows(scores).unsqueeze(1)
'''
OTHER_CROSS_ENTROPY = '''
def cross_entropy(z, labels):
    n, c = z.shape
    mask = F.one_hot(labels, num_classes=c).to(z.dtype)
    return -(mask * log_softmax(z)).sum() / n
'''
NAIVE_SOFTMAX = '''
def softmax(logits):
    e = torch.exp(logits)
    return e / e.sum(dim=1, keepdim=True)
'''
SHORTCUT_CROSS_ENTROPY = '''
def cross_entropy(logits, targets):
    return F.cross_entropy(logits, targets)
'''
IN_PLACE = {
    "softmax": '''
def softmax(logits):
    logits -= logits.max(dim=1, keepdim=True).values
    e = torch.exp(logits)
    return e / e.sum(dim=1, keepdim=True)
''',
    "log_softmax": '''
def log_softmax(logits):
    logits -= logits.max(dim=1, keepdim=True).values
    return logits - torch.log(torch.exp(logits).sum(dim=1, keepdim=True))
''',
    "cross_entropy": '''
def cross_entropy(logits, targets):
    logits -= logits.max(dim=1, keepdim=True).values
    log_probs = logits - torch.log(torch.exp(logits).sum(dim=1, keepdim=True))
    return -log_probs[torch.arange(len(targets)), targets].mean()
''',
}


def _grade(course, grades, replacements: dict[str, str]):
    nb = source_notebook(course, LESSON)
    for grade_id, code in replacements.items():
        nb = replace_solution(nb, grade_id, code)
    return grades.grade(LESSON, nb)


def _errors_of(graded, grade_id: str) -> str:
    for cell in graded.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return "\n".join(f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error")
    raise KeyError(grade_id)


def _assert_lost_exactly(scores, lost: set[str]):
    assert set(scores) == set(POINTS), f"graded cells {sorted(scores)}, expected {sorted(POINTS)}"
    expected = {k: (0.0 if k in lost else float(p), float(p)) for k, p in POINTS.items()}
    assert scores == expected


def test_a_different_correct_implementation_gets_full_marks(course, grades):
    scores, graded = _grade(course, grades, {"softmax": OTHER_SOFTMAX, "log_softmax": OTHER_LOG_SOFTMAX,
                                             "cross_entropy": OTHER_CROSS_ENTROPY})
    assert not [_errors_of(graded, k) for k in POINTS if _errors_of(graded, k)]
    _assert_lost_exactly(scores, set())


def test_an_unstable_softmax_loses_only_the_stability_points(course, grades):
    scores, graded = _grade(course, grades, {"softmax": NAIVE_SOFTMAX})
    _assert_lost_exactly(scores, {"test_softmax_stable"})
    message = _errors_of(graded, "test_softmax_stable")
    assert "nan" in message and "subtract each row's own maximum" in message, message


def test_calling_f_cross_entropy_loses_that_functions_points(course, grades):
    scores, graded = _grade(course, grades, {"cross_entropy": SHORTCUT_CROSS_ENTROPY})
    _assert_lost_exactly(scores, {"test_cross_entropy", "test_cross_entropy_stable"})
    for grade_id in ("test_cross_entropy", "test_cross_entropy_stable"):
        message = _errors_of(graded, grade_id)
        assert "ShortcutUsed" in message and ("called torch.nn.functional.cross_entropy" in message
                                              or "called cross_entropy()" in message), message
        assert "library function that already does this exercise's job" in message, message


def test_shifting_the_logits_in_place_loses_the_no_modification_points(course, grades):
    scores, graded = _grade(course, grades, IN_PLACE)
    _assert_lost_exactly(scores, {"test_inputs_unchanged"})
    message = _errors_of(graded, "test_inputs_unchanged")
    assert "was modified in place" in message and "logits -= m" in message, message
