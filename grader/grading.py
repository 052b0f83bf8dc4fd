"""Grading a class with nbgrader: in parallel, safely, with feedback that keeps hidden tests hidden.

The course folder follows nbgrader's layout: ``source/``, ``release/``,
``submitted/<student>/<lesson>/``, ``autograded/``, ``feedback/`` and ``gradebook.db``.

nbgrader grades one submission at a time and keeps every score in one sqlite file. To
grade a class on several cores without two processes ever writing that file, each
submission is autograded by a worker in a scratch course of its own (a copy of the
gradebook's lesson definitions, the submission, nothing else); only the parent process
writes the real gradebook, one finished submission at a time, with nbgrader's own
``SaveAutoGrades``. A submission that cannot be graded (not a notebook, a kernel that
died, a worker that crashed) gets zero with the reason, and the run goes on.

After grading, :mod:`grader.scan` reads each submission's own code; a finding withholds
the notebook's points (as a manual score of 0 with the reason in the comment, which an
instructor can overrule with ``course overrule``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from grader.build import ROOT, checked, nbgrader_api
from grader.scan import scan_notebook

SCAN_TAG = "[cheat scan]"
#: default per-cell limit when grading a class (seconds); the lesson config's limit is for one notebook
DEFAULT_TIMEOUT = 300
#: address-space limit of each grading kernel, so that a memory eater dies alone (bytes)
DEFAULT_MEMORY = 8 * 1024 ** 3


@dataclass
class Outcome:
    """What happened to one submission."""
    lesson: str
    student: str
    status: str                      # "graded", "withheld", "failed", "unreadable"
    score: float = 0.0
    max_score: float = 0.0
    reason: str = ""
    findings: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- single submissions -------------------------------------------------------------------

def submit(course: Path, lesson: str, student: str, notebook: Path) -> Path:
    """Place ``notebook`` as ``student``'s submission of ``lesson`` (what ``nbgrader collect`` does)."""
    target = Path(course) / "submitted" / student / lesson / f"{lesson}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)
    return target


def autograde(course: Path, lesson: str, student: str, **overrides) -> dict:
    """Plain ``nbgrader autograde`` of one submission in place (no scratch course, no scan)."""
    api = nbgrader_api(course, **overrides)
    return checked(api.autograde(lesson, student, force=True, create=True), f"autograde {lesson} {student}")


def _gradebook(course: Path):
    from nbgrader.api import Gradebook
    return Gradebook(f"sqlite:///{Path(course).resolve() / 'gradebook.db'}")


def scores(course: Path, lesson: str, student: str) -> dict[str, tuple[float, float]]:
    """``{grade_id: (score, max_score)}`` of every graded cell of a submission, from the gradebook."""
    with _gradebook(course) as gb:
        submission = gb.find_submission_notebook(lesson, lesson, student)
        return {g.name: (float(g.score), float(g.max_score)) for g in submission.grades}


# --- the worker: one submission in a scratch course -----------------------------------------

def repair(submitted: nbformat.NotebookNode, source: nbformat.NotebookNode) -> list[str]:
    """Undo structural damage that would make nbgrader mis-grade or crash, in place; returns what was done.

    * a grade_id used twice: later copies lose their nbgrader role (they still run as plain cells);
    * a test cell the student deleted: put back, from the source, after the cell that precedes it
      there (nbgrader would add it only as a comment, and the student would lose its points
      without the test ever running).
    Edited test cells and changed cell types are restored by nbgrader itself from the gradebook.
    """
    done = []
    seen = set()
    for cell in submitted.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            continue
        if grade_id in seen:
            del cell.metadata["nbgrader"]
            done.append(f"a second cell claimed grade_id {grade_id!r}; it was kept as a plain cell")
        seen.add(grade_id)
    order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in source.cells]
    for index, cell in enumerate(source.cells):
        meta = cell.metadata.get("nbgrader", {})
        if not (meta.get("grade") and not meta.get("solution")) or meta["grade_id"] in seen:
            continue
        previous = [g for g in order[:index] if g in seen]
        position = 0
        if previous:
            position = 1 + next(i for i, c in enumerate(submitted.cells)
                                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == previous[-1])
        submitted.cells.insert(position, nbformat.from_dict(json.loads(json.dumps(cell))))
        seen.add(meta["grade_id"])
        done.append(f"test cell {meta['grade_id']!r} was missing and was put back")
    return done


def _limit_memory(limit: int | None) -> None:
    if limit:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))     # inherited by the kernel it starts


def _grade_one(course: str, template_db: str, lesson: str, student: str, timeout: int,
               memory: int | None) -> dict:
    """Worker: autograde one submission in a private scratch course; returns where the result is."""
    started = time.perf_counter()
    _limit_memory(memory)
    scratch = Path(tempfile.mkdtemp(prefix=f"grade-{student}-{lesson}-"))
    course = Path(course)
    shutil.copytree(course / "source" / lesson, scratch / "source" / lesson)
    shutil.copytree(course / "submitted" / student / lesson, scratch / "submitted" / student / lesson)
    shutil.copyfile(template_db, scratch / "gradebook.db")
    notebook = scratch / "submitted" / student / lesson / f"{lesson}.ipynb"
    submitted = nbformat.read(notebook, as_version=4)
    repairs = repair(submitted, nbformat.read(course / "source" / lesson / f"{lesson}.ipynb", as_version=4))
    if repairs:
        nbformat.write(submitted, notebook)
    api = nbgrader_api(scratch, Execute={"timeout": timeout})
    result = api.autograde(lesson, student, force=True, create=True)
    graded = scratch / "autograded" / student / lesson
    return {"scratch": str(scratch), "ok": bool(result.get("success")) and graded.exists(), "repairs": repairs,
            "log": result.get("log", "")[-4000:] + str(result.get("error") or "")[-2000:],
            "seconds": time.perf_counter() - started}


# --- the parent: merge, scan, record --------------------------------------------------------

def _readable(path: Path) -> str | None:
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


def _record_zero(course: Path, lesson: str, student: str, reason: str) -> None:
    """A submission that could not be graded: every cell scores 0, and the comment says why."""
    with _gradebook(course) as gb:
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(lesson, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.manual_score = None
                grade.needs_manual_grade = False
            for comment in notebook.comments:
                comment.auto_comment = f"Not graded: {reason}"
        gb.db.commit()


def _record_graded(course: Path, lesson: str, student: str, graded_dir: Path) -> None:
    """Write the scores of an autograded notebook into the course's gradebook, as nbgrader does."""
    from nbgrader.preprocessors import SaveAutoGrades

    submitted = Path(course) / "submitted" / student / lesson
    timestamp = None
    if (submitted / "timestamp.txt").exists():
        from nbgrader.utils import parse_utc
        timestamp = parse_utc((submitted / "timestamp.txt").read_text().strip())
    with _gradebook(course) as gb:
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(lesson, student, timestamp=timestamp) if timestamp \
            else gb.update_or_create_submission(lesson, student)
        for notebook in submission.notebooks:                  # a regrade starts from a clean slate
            for grade in notebook.grades:
                if grade.manual_score is not None and _scan_comment(notebook):
                    grade.manual_score = None
            for comment in notebook.comments:
                if comment.manual_comment and comment.manual_comment.startswith(SCAN_TAG):
                    comment.manual_comment = None
        gb.db.commit()
    db_url = f"sqlite:///{Path(course).resolve() / 'gradebook.db'}"
    for path in sorted(graded_dir.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        resources = {"nbgrader": {"notebook": path.stem, "assignment": lesson, "student": student,
                                  "db_url": db_url}}
        SaveAutoGrades().preprocess(nb, resources)
    target = Path(course) / "autograded" / student / lesson
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(graded_dir, target)


def _scan_comment(notebook) -> bool:
    return any(c.manual_comment and c.manual_comment.startswith(SCAN_TAG) for c in notebook.comments)


def scan_submission(course: Path, lesson: str, student: str) -> list[str]:
    """Run :func:`grader.scan.scan_notebook` on a submission, against the lesson's source notebook."""
    course = Path(course)
    source = nbformat.read(course / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    submitted = nbformat.read(course / "submitted" / student / lesson / f"{lesson}.ipynb", as_version=4)
    locked_ids, locked_sources = set(), []
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (meta.get("locked") or (meta.get("grade") and not meta.get("solution"))):
            locked_ids.add(meta["grade_id"])
            if meta.get("locked") and not meta.get("grade"):
                locked_sources.append(cell.source)
    # the lesson's own demo cells, left as they were, are the course's code, not the student's
    given = {cell.source for cell in source.cells if cell.cell_type == "code"
             and not cell.metadata.get("nbgrader", {}).get("solution")}
    student_cells = [i for i, cell in enumerate(submitted.cells) if cell.cell_type == "code"
                     and cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") not in locked_ids
                     and cell.source not in given]
    return [str(f) for f in scan_notebook(submitted, locked_sources, student_cells)]


def withhold(course: Path, lesson: str, student: str, findings: list[str]) -> None:
    """Withhold a notebook's points: manual score 0 on every graded cell, the findings as the comment."""
    reason = (f"{SCAN_TAG} Points withheld: the submission's own code changes what the tests rely on. "
              f"Findings: {'; '.join(findings[:10])}. An instructor can restore the points with "
              f"`course overrule {lesson} {student}`.")
    with _gradebook(course) as gb:
        notebook = gb.find_submission_notebook(lesson, lesson, student)
        for grade in notebook.grades:
            grade.manual_score = 0
            grade.needs_manual_grade = True
        comments = list(notebook.comments)
        if comments:
            comments[0].manual_comment = reason
        gb.db.commit()
    report = Path(course) / "autograded" / student / lesson / "cheat_scan.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(reason + "\n")


def overrule(course: Path, lesson: str, student: str) -> None:
    """Give back the autograde scores that the cheat scan withheld."""
    with _gradebook(course) as gb:
        notebook = gb.find_submission_notebook(lesson, lesson, student)
        if _scan_comment(notebook):
            for grade in notebook.grades:
                grade.manual_score = None
                grade.needs_manual_grade = False
            for comment in notebook.comments:
                if comment.manual_comment and comment.manual_comment.startswith(SCAN_TAG):
                    comment.manual_comment = f"{SCAN_TAG} overruled by an instructor"
        gb.db.commit()


def _total(course: Path, lesson: str, student: str) -> tuple[float, float]:
    with _gradebook(course) as gb:
        notebook = gb.find_submission_notebook(lesson, lesson, student)
        return float(notebook.score), float(notebook.max_score)


# --- the class run ---------------------------------------------------------------------------

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


def autograde_class(course: Path, lessons: list[str] | None = None, students: list[str] | None = None,
                    workers: int | None = None, timeout: int = DEFAULT_TIMEOUT,
                    memory: int | None = DEFAULT_MEMORY, progress: bool = True) -> list[Outcome]:
    """Autograde every submission of the given lessons (default all) in parallel; returns one outcome each.

    Args:
        course: the course folder (with source/, submitted/ and a gradebook made by the build).
        workers: processes grading at once (default: the number of CPU cores).
        timeout: seconds one cell may run before it is interrupted.
        memory: address-space limit of each grading kernel in bytes (None: no limit).
    """
    from tqdm.auto import tqdm

    course = Path(course).resolve()
    todo = pending(course, lessons, students)
    outcomes: list[Outcome] = []
    runnable = []
    for lesson, student in todo:
        problem = _readable(course / "submitted" / student / lesson / f"{lesson}.ipynb")
        if problem:
            _record_zero(course, lesson, student, problem)
            _, max_score = _total(course, lesson, student)
            outcomes.append(Outcome(lesson, student, "unreadable", 0.0, max_score, problem))
        else:
            runnable.append((lesson, student))
    workers = max(1, workers or os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="gradebook-template-") as tmp:
        template = Path(tmp) / "gradebook.db"
        shutil.copyfile(course / "gradebook.db", template)
        bar = tqdm(total=len(todo), initial=len(outcomes), desc="autograde", unit="notebook", disable=not progress)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_grade_one, str(course), str(template), lesson, student, timeout, memory):
                       (lesson, student) for lesson, student in runnable}
            for future in as_completed(futures):
                lesson, student = futures[future]
                outcomes.append(_finish(course, lesson, student, future))
                bar.update(1)
        bar.close()
    return sorted(outcomes, key=lambda o: (o.student, o.lesson))


def _finish(course: Path, lesson: str, student: str, future) -> Outcome:
    try:
        result = future.result()
    except Exception as err:                         # the worker process itself died
        result = {"ok": False, "log": f"{type(err).__name__}: {err}", "scratch": None, "seconds": 0.0}
    try:
        if not result["ok"]:
            log = result["log"]
            why = "the kernel died (out of memory, or killed)" if re.search(r"DeadKernel|died|Kernel", log) \
                else "autograding failed"
            logfile = course / "logs" / f"{student}-{lesson}.log"
            logfile.parent.mkdir(exist_ok=True)
            logfile.write_text(log)
            _record_zero(course, lesson, student, f"{why}; see logs/{logfile.name}")
            _, max_score = _total(course, lesson, student)
            return Outcome(lesson, student, "failed", 0.0, max_score, f"{why}; see logs/{logfile.name}",
                           seconds=result["seconds"])
        _record_graded(course, lesson, student, Path(result["scratch"]) / "autograded" / student / lesson)
        findings = scan_submission(course, lesson, student)
        if findings:
            withhold(course, lesson, student, findings)
        score, max_score = _total(course, lesson, student)
        reason = "; ".join((["cheat scan: see autograded/.../cheat_scan.txt"] if findings else [])
                           + result.get("repairs", []))
        return Outcome(lesson, student, "withheld" if findings else "graded", score, max_score, reason, findings,
                       result["seconds"])
    finally:
        if result.get("scratch"):
            shutil.rmtree(result["scratch"], ignore_errors=True)


def summary(outcomes: list[Outcome]) -> str:
    """A per-student table of the outcomes, for the terminal."""
    lines = [f"{'student':14s} {'lesson':16s} {'score':>11s}  status"]
    for o in outcomes:
        note = f"  ({o.reason})" if o.reason else ""
        lines.append(f"{o.student:14s} {o.lesson:16s} {o.score:5.1f}/{o.max_score:<5.1f}  {o.status}{note}")
    by_student: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_student.setdefault(o.student, []).append(o)
    lines.append("")
    for student, items in by_student.items():
        lines.append(f"{student:14s} total {sum(o.score for o in items):.1f} / {sum(o.max_score for o in items):.1f}")
    return "\n".join(lines)


# --- export ------------------------------------------------------------------------------------

def export_csv(course: Path, path: Path) -> int:
    """One row per student and lesson (score, max, flags), and a TOTAL row per student; returns rows written."""
    rows = []
    with _gradebook(course) as gb:
        for student in sorted(gb.students, key=lambda s: s.id):
            total = total_max = 0.0
            for assignment in sorted(gb.assignments, key=lambda a: a.name):
                try:
                    sub = gb.find_submission(assignment.name, student.id)
                except Exception:
                    score, flags = 0.0, "not submitted"
                else:
                    score = float(sub.score)
                    flags = "withheld by cheat scan" if any(_scan_comment(nb) for nb in sub.notebooks) else ""
                rows.append([student.id, assignment.name, f"{score:g}", f"{assignment.max_score:g}", flags])
                total += score
                total_max += float(assignment.max_score)
            rows.append([student.id, "TOTAL", f"{total:g}", f"{total_max:g}", ""])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "lesson", "score", "max_score", "flags"])
        writer.writerows(rows)
    return len(rows)


# --- feedback without the hidden tests --------------------------------------------------------

HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def hide_hidden_tests(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove hidden-test code from test cells, and reduce their tracebacks to the error message.

    A student then sees which tests passed and why one failed, never the hidden code (a
    traceback would otherwise quote the failing lines).
    """
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        cell.source = HIDDEN.sub("# (hidden tests: not shown)\n", cell.source)
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                out.traceback = [f"{out.ename}: {ANSI.sub('', out.evalue)}"]
    return nb


class HideHiddenTests(NbGraderPreprocessor):
    """nbgrader preprocessor (``GenerateFeedback.preprocessors``) applying :func:`hide_hidden_tests`."""

    def preprocess(self, nb, resources):
        return hide_hidden_tests(nb), resources


def generate_feedback(course: Path, lessons: list[str] | None = None, students: list[str] | None = None) -> list[Path]:
    """nbgrader's HTML feedback for the autograded submissions; the course's nbgrader_config.py puts
    :class:`HideHiddenTests` in nbgrader's feedback pipeline, so hidden tests stay hidden."""
    course = Path(course).resolve()
    api = nbgrader_api(course)
    written = []
    for lesson, student in pending(course, lessons, students, folder="autograded"):
        checked(api.generate_feedback(lesson, student), f"generate_feedback {lesson} {student}")
        written += sorted((course / "feedback" / student / lesson).glob("*.html"))
    return written


# --- the student's own check ------------------------------------------------------------------

def check_notebook(path: Path, timeout: int = 600) -> list[tuple[str, float, bool, str]]:
    """Run a student's notebook as it is and report every test cell: (grade_id, points, passed, message).

    This is what a student runs before submitting; it sees only the visible tests (the hidden
    ones are not in the student's copy).
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(path).parent)}})
    client.execute()
    report = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        stderr = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        if errors:
            message = f"{errors[0].ename}: {ANSI.sub('', errors[0].evalue)}"
        elif stderr:
            message = "printed to stderr: " + stderr[0].text.strip()[:300]
        else:
            message = ""
        report.append((meta["grade_id"], float(meta.get("points", 0)), not (errors or stderr), message))
    return report
