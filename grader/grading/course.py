"""The course folder in nbgrader's layout: where submissions are, and what the gradebook holds.

``source/<lesson>/``, ``release/<lesson>/``, ``submitted/<student>/<lesson>/``,
``autograded/<student>/<lesson>/``, ``feedback/<student>/<lesson>/`` and ``gradebook.db``,
configured by ``nbgrader_config.py``. Review reports of the scan go to ``review/<student>/<lesson>.txt``
(never copied into a student's feedback).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat

from grader.build import checked, nbgrader_api


def submit(course: Path, lesson: str, student: str, notebook: Path) -> Path:
    """Place ``notebook`` as ``student``'s submission of ``lesson`` (what ``nbgrader collect`` does)."""
    target = Path(course) / "submitted" / student / lesson / f"{lesson}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)
    return target


def autograde(course: Path, lesson: str, student: str, **overrides) -> dict:
    """Plain ``nbgrader autograde`` of one submission in place: sandboxed and judged (nbgrader_config.py), no scan."""
    api = nbgrader_api(course, **overrides)
    return checked(api.autograde(lesson, student, force=True, create=True), f"autograde {lesson} {student}")


def gradebook(course: Path):
    from nbgrader.api import Gradebook
    return Gradebook(f"sqlite:///{Path(course).resolve() / 'gradebook.db'}")


def by_hand(grade) -> bool:
    """Whether a gradebook ``Grade`` is a written answer's, graded by a person (a markdown grade cell)."""
    return grade.cell_type == "markdown"


def scores(course: Path, lesson: str, student: str) -> dict[str, tuple[float, float]]:
    """``{grade_id: (score, max_score)}`` of every automatically graded cell of a submission, from the gradebook.

    Written answers, graded by hand, are not among them: see :func:`grader.grading.written.answers`.
    """
    with gradebook(course) as gb:
        submission = gb.find_submission_notebook(lesson, lesson, student)
        return {g.name: (float(g.score), float(g.max_score)) for g in submission.grades if not by_hand(g)}


def total(course: Path, lesson: str, student: str) -> tuple[float, float]:
    """(score, max score) of one submission, from the gradebook: automatic points, plus the written answers'
    (their points in the max, and in the score what a person has given so far)."""
    with gradebook(course) as gb:
        notebook = gb.find_submission_notebook(lesson, lesson, student)
        return float(notebook.score), float(notebook.max_score)


def pending(course: Path, lessons: list[str] | None = None, students: list[str] | None = None,
            folder: str = "submitted") -> list[tuple[str, str]]:
    """``(lesson, student)`` for every ``<folder>/<student>/<lesson>`` present, limited to the given ones."""
    found = []
    base = Path(course) / folder
    for student_dir in sorted(base.iterdir()) if base.exists() else []:
        if not student_dir.is_dir() or (students and student_dir.name not in students):
            continue
        for lesson_dir in sorted(student_dir.iterdir()):
            if lesson_dir.is_dir() and (not lessons or lesson_dir.name in lessons):
                found.append((lesson_dir.name, student_dir.name))
    return found


def fingerprint(course: Path, lesson: str, student: str) -> str:
    """A digest of everything in ``submitted/<student>/<lesson>/``: a resubmission changes it."""
    import hashlib

    digest = hashlib.sha256()
    folder = Path(course) / "submitted" / student / lesson
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file() and not path.is_symlink():
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def ledger_path(course: Path, lesson: str, student: str) -> Path:
    """Where a class run notes that a submission is recorded in the gradebook (``logs/graded/``)."""
    return Path(course) / "logs" / "graded" / student / f"{lesson}.json"


def mark_recorded(course: Path, lesson: str, student: str, submission: str, status: str) -> None:
    """Note, after its gradebook entry is written, that this exact submission is graded."""
    path = ledger_path(course, lesson, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"submission": submission, "status": status}))


def to_grade(course: Path, lessons: list[str] | None = None, students: list[str] | None = None,
             force: bool = False) -> list[tuple[str, str]]:
    """The submissions a class run grades: those not yet recorded as they are now (all with ``force``)."""
    todo = pending(course, lessons, students)
    if force:
        return todo

    def recorded(lesson: str, student: str) -> bool:
        try:
            note = json.loads(ledger_path(course, lesson, student).read_text())
        except (OSError, ValueError):
            return False
        return note.get("submission") == fingerprint(course, lesson, student)

    return [(lesson, student) for lesson, student in todo if not recorded(lesson, student)]


def review_path(course: Path, lesson: str, student: str) -> Path:
    return Path(course) / "review" / student / f"{lesson}.txt"


def flags(course: Path, lesson: str, student: str) -> list[str]:
    """What the review scan flagged in a submission (empty if nothing)."""
    path = review_path(course, lesson, student).with_suffix(".json")
    if not path.exists():
        return []
    try:
        return [str(f) for f in json.loads(path.read_text())]
    except (ValueError, TypeError):
        return ["the review report could not be read"]


def write_flags(course: Path, lesson: str, student: str, findings: list[str]) -> None:
    """Keep (or clear) a submission's review flags: a report for people and a JSON list for the export."""
    text = review_path(course, lesson, student)
    data = text.with_suffix(".json")
    if not findings:
        text.unlink(missing_ok=True)
        data.unlink(missing_ok=True)
        return
    text.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(json.dumps(findings, indent=1))
    text.write_text(
        f"Review flags for {student}, {lesson}\n\n"
        f"The scan read this submission's own code and found what is listed below. A flag changes no points:\n"
        f"every score comes from the judge. Please have a look at the submission; a flag can be an innocent\n"
        f"experiment as well as an attempt at the grader.\n\n" + "\n".join(f"- {f}" for f in findings) + "\n")


def readable(path: Path) -> str | None:
    """None if ``path`` is a notebook nbgrader can grade, else why not."""
    if not path.exists():
        return "no notebook was submitted"
    if path.stat().st_size == 0:
        return "the submitted notebook is an empty file"
    try:
        nb = nbformat.read(path, as_version=4)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return f"the submitted notebook is not valid JSON ({err})"
    except Exception as err:                                    # nbformat's own errors
        return f"the submitted file is not a notebook ({type(err).__name__}: {err})"
    if not isinstance(nb.get("cells"), list):
        return "the submitted notebook has no cells"
    return None
