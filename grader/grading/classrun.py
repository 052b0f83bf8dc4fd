"""Grading a whole class: every submission in parallel, each in a worker that can be stopped.

nbgrader grades one submission at a time into one sqlite gradebook. Here each submission is
graded by a worker process in a scratch course of its own (:mod:`grader.grading.worker`); only
this process writes the real gradebook, one finished submission at a time, with nbgrader's own
``SaveAutoGrades``. Whatever one submission does, the run goes on:

* a notebook that cannot be read gets 0 with the reason, without a worker;
* a worker that does not answer within the notebook's time limit plus a margin is killed
  (its sandboxed kernel with it) and a fresh one takes its place; the submission gets 0
  with the reason, and the others are untouched;
* anything that goes wrong while recording one submission is recorded as its failure;
* scratch folders are removed whatever happens, and the summary is always printed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

from grader.grading import course as paths
from grader.grading.gradebook import record_graded, record_zero
from grader.grading.report import summary  # noqa: F401  (the run's table, for callers of this module)
from grader.grading.worker import prepare, serve
from grader.grading.written import Standing, standing

#: default seconds one cell may run when grading a class
DEFAULT_TIMEOUT = 300
#: seconds a worker gets beyond the notebook's own time limit (kernel start, nbgrader, the judge, the scan)
MARGIN = 300


@dataclass
class Outcome:
    """What happened to one submission."""
    lesson: str
    student: str
    status: str                      # "graded", "failed", "unreadable"
    score: float = 0.0
    max_score: float = 0.0
    reason: str = ""
    findings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    standing: Standing | None = None        # automatic and written points apart (None: nothing recorded)

    @property
    def auto_score(self) -> float:
        """The automatic points (``score`` also counts what a person gave the written answers)."""
        return self.standing.auto_score if self.standing else self.score

    @property
    def auto_max(self) -> float:
        return self.standing.auto_max if self.standing else self.max_score


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=serve, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.job: dict | None = None
        self.started = 0.0

    def kill(self) -> None:
        self.process.kill()
        self.process.join(10)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


def _run(jobs: list[dict], workers: int, deadline: float, done) -> None:
    """Run every job on a pool of ``workers`` processes; ``done(job, result)`` as each finishes."""
    ctx = multiprocessing.get_context("spawn")
    pool = [_Worker(ctx) for _ in range(min(workers, len(jobs)))]
    queue = list(jobs)
    try:
        while queue or any(w.job for w in pool):
            for w in pool:
                if w.job is None and queue:
                    w.job, w.started = queue.pop(0), time.monotonic()
                    w.conn.send(w.job)
            busy = {w.conn: w for w in pool if w.job is not None}
            for conn in wait(list(busy), timeout=1.0):
                w = busy[conn]
                try:
                    result = conn.recv()
                except (EOFError, OSError):
                    result = {"ok": False, "log": "the worker process died", "findings": [], "seconds": 0.0}
                    _replace(pool, w, ctx)
                job, w.job = w.job, None
                if job is not None:
                    done(job, result)
            for w in list(pool):
                if w.job is not None and time.monotonic() - w.started > deadline:
                    job = w.job
                    _replace(pool, w, ctx)
                    done(job, {"ok": False, "timeout": True, "findings": [], "seconds": deadline,
                               "log": f"grading took longer than {deadline:.0f} s; the worker and its kernel "
                                      f"were stopped"})
    finally:
        for w in pool:
            if w.job is None:
                w.stop()
            else:
                w.kill()


def _replace(pool: list, w: _Worker, ctx) -> None:
    w.kill()
    pool[pool.index(w)] = _Worker(ctx)


def autograde_class(course: Path, lessons: list[str] | None = None, students: list[str] | None = None,
                    workers: int | None = None, timeout: int = DEFAULT_TIMEOUT, limits: dict | None = None,
                    force: bool = False, scheduler: str | None = None,
                    progress: bool = True, warm: bool | None = None) -> list[Outcome]:
    """Autograde every submission of the given lessons (default all) in parallel; one outcome each.

    Args:
        course: the course folder (with source/, submitted/ and a gradebook made by the build).
        workers: submissions graded at once (default: the number of CPU cores).
        timeout: seconds one cell may run before it is interrupted.
        limits: sandbox limits for every kernel, overriding ``nbgrader_config.py`` (``Sandbox`` traits:
            ``memory``, ``processes``, ``disk``, ``output``, ``record``, ``notebook_timeout``).
        warm: each worker keeps the next kernel warm (:mod:`grader.sandbox.warm`) while it grades
            (default: when there are fewer workers than cores, so that a spare core boots it).
        force: grade every submission again; by default a submission already recorded, unchanged
            since, is skipped (so a run that was stopped is finished by running it again).
        scheduler: the address of a Dask scheduler (:mod:`grader.grading.cluster`): the submissions are
            graded by its workers, and recorded here.

    Each kernel gets ``cores // workers`` threads (``OMP_NUM_THREADS``): more than the cores,
    and PyTorch's threads spin against each other instead of working.
    """
    from tqdm.auto import tqdm

    from grader.sandbox import Sandbox
    from grader.sandbox.execute import check_sandbox

    if scheduler:
        from grader.grading.cluster import connect, run_on_cluster
        client = connect(scheduler)                  # no scheduler, nothing graded and nothing written
    else:
        check_sandbox()                              # no sandbox, no grading: say how to get it
    course = Path(course).resolve()
    cores = available_cores()
    warm_given = warm
    warm = (max(1, workers or cores) < cores) if warm is None else warm
    limits = dict(limits or {})
    overrides = {"Execute": {"timeout": timeout}}
    if limits:
        overrides["Sandbox"] = limits
    notebook_timeout = int(limits.get("notebook_timeout", _configured_notebook_timeout(course)))
    Sandbox(**{k: v for k, v in limits.items()})     # bad limits fail here, before any grading
    todo = paths.to_grade(course, lessons, students, force)
    outcomes: list[Outcome] = []
    bar = tqdm(total=len(todo), desc="autograde", unit="notebook", disable=not progress)
    scratch_root = Path(tempfile.mkdtemp(prefix="nn-grading-"))
    jobs = []
    try:
        with tempfile.TemporaryDirectory(prefix="gradebook-template-") as tmp:
            template = Path(tmp) / "gradebook.db"
            shutil.copyfile(course / "gradebook.db", template)
            for lesson, student in todo:
                submission = paths.fingerprint(course, lesson, student)
                problem = paths.readable(course / "submitted" / student / lesson / f"{lesson}.ipynb")
                if problem is None:
                    scratch = scratch_root / f"{len(jobs):05d}"
                    scratch.mkdir()
                    try:
                        repairs = prepare(course, lesson, student, template, scratch)
                    except Exception as err:              # noqa: BLE001 - one submission, not the run
                        problem = f"the submission could not be prepared ({type(err).__name__}: {err})"
                    else:
                        jobs.append({"scratch": str(scratch), "lesson": lesson, "student": student,
                                     "submission": submission,
                                     "overrides": overrides, "repairs": repairs,
                                     "kernels_dir": str(scratch_root / "kernels") if warm else ""})
                        continue
                outcomes.append(_safely(lambda: _unreadable(course, lesson, student, problem, submission),
                                        lesson, student))
                bar.update(1)

            def done(job: dict, result: dict) -> None:
                outcomes.append(_safely(lambda: _finish(course, job, result), job["lesson"], job["student"]))
                remove(job["scratch"])
                bar.update(1)

            n = max(1, workers or cores)
            if scheduler:
                run_on_cluster(client, jobs, notebook_timeout + MARGIN, done, warm_given)
            elif jobs:
                with _threads(max(1, cores // n)):
                    _run(jobs, n, notebook_timeout + MARGIN, done)
    finally:
        bar.close()
        remove(scratch_root)
        if scheduler:
            client.close()
    return sorted(outcomes, key=lambda o: (o.student, o.lesson))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or ``taskset`` narrows)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def remove(folder, attempts: int = 20) -> None:
    """Remove a scratch folder, trying again while a stopped kernel's last writes land in it.

    A worker that was killed takes its sandbox with it, but the kernel's processes die a moment
    later (bubblewrap follows its parent asynchronously): a single ``rmtree`` can race with them.
    """
    folder = Path(folder)
    for _ in range(attempts):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.25)


@contextlib.contextmanager
def _threads(n: int):
    """Workers (and the kernels they start) use ``n`` threads each for PyTorch's arithmetic."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: str(n) for k in names})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _configured_notebook_timeout(course: Path) -> int:
    from grader.build import nbgrader_api
    from grader.sandbox import Sandbox
    return Sandbox(config=nbgrader_api(course).config).notebook_timeout


def _unreadable(course: Path, lesson: str, student: str, problem: str, submission: str) -> Outcome:
    record_zero(course, lesson, student, problem)
    paths.write_flags(course, lesson, student, [])
    paths.mark_recorded(course, lesson, student, submission, "unreadable")
    points = standing(course, lesson, student)
    return Outcome(lesson, student, "unreadable", 0.0, points.max_score, problem, standing=points)


def _finish(course: Path, job: dict, result: dict) -> Outcome:
    lesson, student = job["lesson"], job["student"]
    graded = Path(job["scratch"]) / "autograded" / student / lesson
    findings = [str(f) for f in result.get("findings", [])]
    paths.write_flags(course, lesson, student, findings)
    if not result.get("ok") or not graded.exists():
        log = result.get("log", "")
        why = "grading took too long" if result.get("timeout") else \
            "the kernel died (out of memory, or killed)" if "DeadKernel" in log or "died" in log else "autograding failed"
        logfile = course / "logs" / f"{student}-{lesson}.log"
        logfile.parent.mkdir(exist_ok=True)
        logfile.write_text(log)
        record_zero(course, lesson, student, f"{why}; see logs/{logfile.name}")
        paths.mark_recorded(course, lesson, student, job["submission"], "failed")
        points = standing(course, lesson, student)
        return Outcome(lesson, student, "failed", 0.0, points.max_score, f"{why}; see logs/{logfile.name}", findings,
                       result.get("seconds", 0.0), points)
    record_graded(course, lesson, student, graded)
    paths.mark_recorded(course, lesson, student, job["submission"], "graded")
    points = standing(course, lesson, student)
    return Outcome(lesson, student, "graded", points.score, points.max_score, "; ".join(job.get("repairs", [])),
                   findings, result.get("seconds", 0.0), points)


def _safely(step, lesson: str, student: str) -> Outcome:
    """One submission's recording: whatever goes wrong is that submission's failure, not the run's."""
    try:
        return step()
    except Exception as err:                          # noqa: BLE001
        return Outcome(lesson, student, "failed", 0.0, 0.0, f"could not be recorded: {type(err).__name__}: {err}")
