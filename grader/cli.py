"""The ``course`` command line: one command per step of a term.

Instructor, from the course folder (the one with nbgrader_config.py):

    course build [LESSON ...]                      notebooks/ -> source/ -> release/ (+ gradebook)
    course autograde [LESSON ...] [--student S ...] [--workers N] [--timeout S]
                     [--notebook-timeout S] [--memory SIZE] [--force] [--scheduler ADDRESS]
                                                   grade every submission in submitted/ not yet graded,
                                                   in parallel (or on a Dask cluster), each kernel
                                                   sandboxed, every point from the judge
    course regrade LESSON STUDENT                  grade one submission again
    course export [--out grades.csv]               one row per student and lesson, plus totals
    course feedback [LESSON ...] [--student S ...] HTML feedback without the hidden tests
    course written [LESSON ...]                    the written answers that wait for grading by hand
                                                   (in nbgrader's Formgrader)

On a JupyterHub (grader/hub), as root:

    course hub setup --roster class.csv            accounts, shared environment, nbgrader's exchange
    course hub start                               run the hub
    course kit [--out dist]                        the students' distribution (no solution, no hidden test)

Student, before submitting:

    course check release/03_loss/03_loss.ipynb    run it and list which visible tests pass
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from grader import build as course_build
from grader.grading.cluster import SchedulerLost, SchedulerUnreachable
from grader.hub.cli import ERRORS as HUB_ERRORS, add_commands
from grader.sandbox.bwrap import SandboxUnavailable


def _course(args) -> Path:
    return Path(args.course).resolve()


def _build(args) -> int:
    names = course_build.build(args.lessons or None, root=course_build.ROOT, out=_course(args))
    print(f"built {len(names)} lesson(s): {', '.join(names)}")
    return 0


def _autograde(args) -> int:
    from grader import grading

    from grader.grading.cluster import SCHEDULER_ENV
    from grader.sandbox.execute import check_sandbox

    scheduler = args.scheduler or os.environ.get(SCHEDULER_ENV) or None
    if not scheduler:
        check_sandbox()                              # no bubblewrap, no grading: the error says how to get it
    course = _course(args)
    if not (course / "gradebook.db").exists():
        raise FileNotFoundError(f"{course / 'gradebook.db'} is missing: run `course build` first")
    if not grading.pending(course, args.lessons or None, args.student or None):
        print("nothing to grade: no folder submitted/<student>/<lesson>/ matches")
        return 1
    if not grading.to_grade(course, args.lessons or None, args.student or None, args.force):
        print("nothing to grade: every matching submission is already graded (--force grades them again)")
        return 0
    limits = {key: value for key, value in (("notebook_timeout", args.notebook_timeout), ("memory", args.memory))
              if value is not None}
    outcomes = grading.autograde_class(course, args.lessons or None, args.student or None,
                                       workers=args.workers, timeout=args.timeout, limits=limits,
                                       force=args.force, scheduler=scheduler)
    print(grading.summary(outcomes))
    return 0


def _regrade(args) -> int:
    args.lessons, args.student = [args.lesson], [args.student_id]
    return _autograde(args)


def _export(args) -> int:
    from grader import grading

    n = grading.export_csv(_course(args), Path(args.out))
    print(f"wrote {n} rows to {args.out}")
    return 0


def _feedback(args) -> int:
    from grader import grading

    written = grading.generate_feedback(_course(args), args.lessons or None, args.student or None)
    for path in written:
        print(path)
    print(f"{len(written)} feedback file(s)")
    return 0


def _written(args) -> int:
    from grader.grading.written import FORMGRADER, waiting_answers, waiting_note

    course = _course(args)
    if not (course / "gradebook.db").exists():
        raise FileNotFoundError(f"{course / 'gradebook.db'} is missing: run `course build` first")
    waiting = waiting_answers(course, args.lessons or None)
    for lesson, student, grade_id, points in waiting:
        print(f"{student:14s} {lesson:16s} {grade_id} ({points:g} point{'s' if points != 1 else ''})")
    print(waiting_note(len(waiting), sum(w[3] for w in waiting)) or f"no written answer waits for grading in {FORMGRADER}")
    return 0


def _check(args) -> int:
    from grader import grading

    path = Path(args.notebook)
    if not path.exists():
        raise FileNotFoundError(f"no notebook at {path}")
    report = grading.check_notebook(path, timeout=args.timeout)
    passed = sum(points for _, points, ok, _ in report if ok)
    total = sum(points for _, points, _, _ in report)
    for grade_id, points, ok, message in report:
        print(f"{'PASS' if ok else 'FAIL'}  {grade_id} ({points:g} point{'s' if points != 1 else ''})"
              + (f"\n      {message}" if message else ""))
    print(f"visible tests: {passed:g} / {total:g} points pass. Hidden tests run only when the notebook is graded.")
    return 0 if passed == total else 1


def _limit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--notebook-timeout", type=int, default=None,
                   help="seconds a whole notebook may run (default: nbgrader_config.py, 1200)")
    p.add_argument("--memory", default=None, help="memory of each grading kernel, e.g. 4G (default: nbgrader_config.py)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="course", description="Build, grade and check the course's notebooks.")
    p.add_argument("--course", default=".", help="the course folder (default: the current folder)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="rebuild source/ and release/ from notebooks/")
    b.add_argument("lessons", nargs="*", help="lessons to build (default: all)")
    b.set_defaults(run=_build)

    a = sub.add_parser("autograde", help="autograde every submission in submitted/, in parallel")
    a.add_argument("lessons", nargs="*", help="lessons to grade (default: all that were submitted)")
    a.add_argument("--student", action="append", help="only this student (repeatable)")
    a.add_argument("--workers", type=int, default=None, help="parallel graders (default: CPU cores)")
    a.add_argument("--timeout", type=int, default=300, help="seconds one cell may run (default 300)")
    a.add_argument("--force", action="store_true", help="grade again submissions that are already graded")
    a.add_argument("--scheduler", default=None,
                   help="a Dask scheduler's address (tcp://host:8786): grade on its workers "
                        "(default: $COURSE_SCHEDULER, or this machine)")
    _limit_options(a)
    a.set_defaults(run=_autograde)

    r = sub.add_parser("regrade", help="autograde one student's submission again")
    r.add_argument("lesson")
    r.add_argument("student_id")
    r.add_argument("--timeout", type=int, default=300)
    _limit_options(r)
    r.add_argument("--scheduler", default=None, help="a Dask scheduler's address, as for autograde")
    r.set_defaults(run=_regrade, workers=1, force=True)

    e = sub.add_parser("export", help="write grades as CSV")
    e.add_argument("--out", default="grades.csv")
    e.set_defaults(run=_export)

    f = sub.add_parser("feedback", help="HTML feedback for students, without hidden tests")
    f.add_argument("lessons", nargs="*")
    f.add_argument("--student", action="append")
    f.set_defaults(run=_feedback)

    w = sub.add_parser("written", help="list the written answers that wait for grading by hand (Formgrader)")
    w.add_argument("lessons", nargs="*")
    w.set_defaults(run=_written)

    add_commands(sub)                                    # course hub ..., course kit

    c = sub.add_parser("check", help="(students) run a notebook and list which visible tests pass")
    c.add_argument("notebook")
    c.add_argument("--timeout", type=int, default=600)
    c.set_defaults(run=_check)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (course_build.BuildError, FileNotFoundError, ValueError, KeyError, SandboxUnavailable,
            SchedulerUnreachable, SchedulerLost, *HUB_ERRORS) as err:
        print(f"course {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
