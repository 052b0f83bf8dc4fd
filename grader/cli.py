"""The ``course`` command line: one command per step of a term.

    course build [LESSON ...]            notebooks/ -> source/ -> release/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader import build as course_build


def _build(args) -> int:
    names = course_build.build(args.lessons or None, root=course_build.ROOT)
    print(f"built {len(names)} lesson(s): {', '.join(names)}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="course", description="Build, grade and check the course's notebooks.")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="rebuild source/ and release/ from notebooks/")
    b.add_argument("lessons", nargs="*", help="lessons to build (default: all)")
    b.set_defaults(run=_build)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (course_build.BuildError, FileNotFoundError, ValueError) as err:
        print(f"course {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
