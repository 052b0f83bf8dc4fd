"""A class graded on a real Dask cluster on loopback (scheduler and workers started with Dask's own CLI):
the same scores as on this machine, nothing lost or recorded twice when a worker or the scheduler dies,
and a rerun that grades only what is missing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from grader import build as course_build
from grader import grading
from grader.grading.cluster import SchedulerLost, SchedulerUnreachable
from grader.grading.course import gradebook, ledger_path

ROOT = Path(__file__).resolve().parents[1]
LESSON = "01_tensors"
DASK = Path(sys.executable).parent / "dask"


def _half_done(course: Path) -> nbformat.NotebookNode:
    """Every other solution cell left as released: part of the points."""
    src = nbformat.read(course / "source" / LESSON / f"{LESSON}.ipynb", 4)
    rel = nbformat.read(course / "release" / LESSON / f"{LESSON}.ipynb", 4)
    stub = {c.metadata["nbgrader"]["grade_id"]: c.source for c in rel.cells if "nbgrader" in c.metadata}
    solutions = [c for c in src.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    for cell in solutions[1::2]:
        cell.source = stub[cell.metadata["nbgrader"]["grade_id"]]
    return src


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A built course with a small class handed in, never graded (each test grades a copy)."""
    folder = tmp_path_factory.mktemp("cluster") / "course"
    course_build.build([LESSON], root=ROOT, out=folder)
    src = folder / "source" / LESSON / f"{LESSON}.ipynb"
    for student in ("ada", "bob", "cy", "dee"):
        grading.submit(folder, LESSON, student, src)
    half = folder / "half.ipynb"
    nbformat.write(_half_done(folder), half)
    grading.submit(folder, LESSON, "half", half)
    grading.submit(folder, LESSON, "stub", folder / "release" / LESSON / f"{LESSON}.ipynb")
    broken = folder / "submitted" / "broken" / LESSON / f"{LESSON}.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text("{ not a notebook")
    return folder


STUDENTS = ["ada", "bob", "broken", "cy", "dee", "half", "stub"]


def _copy(base: Path, target: Path) -> Path:
    shutil.copytree(base, target)
    return target


def _scores(course: Path) -> dict[str, dict]:
    return {s: grading.scores(course, LESSON, s) for s in STUDENTS}


def _recorded(course: Path) -> list[str]:
    """The students whose submission the gradebook holds (nbgrader's own table)."""
    with gradebook(course) as gb:
        return sorted(s.student.id for s in gb.find_assignment(LESSON).submissions)


@pytest.fixture(scope="module")
def local(base, tmp_path_factory):
    course = _copy(base, tmp_path_factory.mktemp("local") / "course")
    outcomes = grading.autograde_class(course, [LESSON], workers=2, progress=False)
    return course, outcomes, _scores(course)


@contextlib.contextmanager
def cluster(tmp: Path, workers: int = 2):
    """``dask scheduler`` and ``dask worker``s (one thread each) on loopback; their processes, then killed."""
    env = {**os.environ, "PATH": f"{DASK.parent}:{os.environ['PATH']}", "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    file = tmp / "scheduler.json"
    logs = tmp / "dask-logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = {"scheduler": subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", file],
        env=env, stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "w"), start_new_session=True)}
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.3)
        address = json.loads(file.read_text())["address"]
        for i in range(workers):
            procs[f"worker{i}"] = subprocess.Popen(
                [DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                 "--local-directory", str(tmp / f"worker{i}")],
                env=env, stdout=subprocess.DEVNULL, stderr=open(logs / f"worker{i}.log", "w"), start_new_session=True)
        from distributed import Client
        with Client(address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address, procs
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _when_first_recorded(course: Path, action) -> threading.Thread:
    """Run ``action`` as soon as the run has recorded its first submission graded by a worker."""
    def graded() -> bool:
        return any(json.loads(p.read_text())["status"] == "graded" for p in (course / "logs" / "graded").rglob("*.json"))

    def watch():
        deadline = time.monotonic() + 300
        while not graded() and time.monotonic() < deadline:
            time.sleep(0.05)
        action()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_the_local_run_grades_as_deserved(local):
    course, outcomes, scores = local
    total = {o.student: (o.auto_score, o.auto_max, o.status) for o in outcomes}     # written answers: by hand
    full = total["ada"][1]
    assert all(total[s] == (full, full, "graded") for s in ("ada", "bob", "cy", "dee"))
    assert 0 < total["half"][0] < full and total["stub"][0] == 0 and total["broken"][:1] == (0,)
    assert total["broken"][2] == "unreadable"


def test_a_class_on_two_dask_workers_gets_the_local_scores(base, local, tmp_path):
    course = _copy(base, tmp_path / "course")
    with cluster(tmp_path) as (address, _):
        outcomes = grading.autograde_class(course, [LESSON], scheduler=address, progress=False)
    assert sorted(o.student for o in outcomes) == STUDENTS
    assert _scores(course) == local[2], "a submission graded on the cluster got another score than on this machine"
    assert _recorded(course) == STUDENTS
    graded = nbformat.read(course / "autograded" / "ada" / LESSON / f"{LESSON}.ipynb", 4)
    assert any(c.metadata.get("judge") for c in graded.cells), "the autograded notebook came back with the verdicts"
    summary = grading.summary(outcomes)
    assert "ada" in summary and "total" in summary


def test_a_worker_killed_mid_run_loses_nothing_and_records_each_once(base, local, tmp_path):
    course = _copy(base, tmp_path / "course")
    with cluster(tmp_path) as (address, procs):
        killed = _when_first_recorded(course, lambda: os.killpg(procs["worker0"].pid, signal.SIGKILL))
        outcomes = grading.autograde_class(course, [LESSON], scheduler=address, progress=False)
        killed.join(5)
        assert procs["worker0"].poll() is not None, "the worker was not killed during the run"
    assert sorted(o.student for o in outcomes) == STUDENTS, "a submission was recorded twice or not at all"
    assert _scores(course) == local[2]
    assert _recorded(course) == STUDENTS


def test_an_unreachable_scheduler_is_a_clear_error_and_nothing_is_written(base, tmp_path):
    course = _copy(base, tmp_path / "course")
    before = _tree(course)
    with pytest.raises(SchedulerUnreachable, match="no Dask scheduler answers at 'tcp://127.0.0.1:9'"):
        grading.autograde_class(course, [LESSON], scheduler="tcp://127.0.0.1:9", progress=False)
    done = subprocess.run([Path(sys.executable).parent / "course", "--course", str(course), "autograde",
                           "--scheduler", "tcp://127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no Dask scheduler answers" in done.stderr and "dask worker" in done.stderr
    assert _tree(course) == before, "the course folder changed although nothing could be graded"


def test_a_lost_scheduler_stops_the_run_and_a_rerun_grades_only_the_rest(base, local, tmp_path):
    course = _copy(base, tmp_path / "course")
    with cluster(tmp_path) as (address, procs):
        _when_first_recorded(course, lambda: os.killpg(procs["scheduler"].pid, signal.SIGKILL))
        with pytest.raises(SchedulerLost, match="Run the same command again to grade the rest") as lost:
            grading.autograde_class(course, [LESSON], scheduler=address, progress=False)
    finished = _recorded(course)
    assert "broken" in finished and 1 < len(finished) < len(STUDENTS), finished   # broken: unreadable, no worker
    assert f"{len(finished) - 1} of {len(STUDENTS) - 1} submission(s) sent to the cluster" in str(lost.value)
    assert all(ledger_path(course, LESSON, s).exists() for s in finished)
    rest = grading.autograde_class(course, [LESSON], workers=2, progress=False)
    assert sorted(o.student for o in rest) == sorted(set(STUDENTS) - set(finished)), "the rerun graded too much"
    assert _scores(course) == local[2] and _recorded(course) == STUDENTS


def test_a_rerun_skips_what_is_graded_unless_resubmitted_or_forced(local, tmp_path):
    course = _copy(local[0], tmp_path / "course")
    assert grading.autograde_class(course, [LESSON], workers=2, progress=False) == []
    grading.submit(course, LESSON, "stub", course / "source" / LESSON / f"{LESSON}.ipynb")
    again = grading.autograde_class(course, [LESSON], workers=2, progress=False)
    assert [(o.student, o.auto_score == o.auto_max) for o in again] == [("stub", True)], "a resubmission is graded"
    forced = grading.autograde_class(course, [LESSON], ["ada", "half"], workers=2, progress=False, force=True)
    assert sorted(o.student for o in forced) == ["ada", "half"]
    assert grading.total(course, LESSON, "half") == grading.total(local[0], LESSON, "half")


def _tree(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()
