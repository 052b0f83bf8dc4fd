"""The terminal summary of a class run: automatic points, written answers, review flags.

Automatic points are the judge's, final once a submission is graded. Written answers are graded
by a person in nbgrader's Formgrader (:mod:`grader.grading.written`): their column says what has
been given so far and how many still wait, and the last lines say how much is left to grade.
"""

from __future__ import annotations

from grader.grading.written import waiting_note


def _written(o) -> str:
    points = o.standing
    if points is None or not points.written_max:
        return "-"
    todo = f", {points.waiting} to grade" if points.waiting else ""
    return f"{points.written_score:g}/{points.written_max:g}{todo}"


def summary(outcomes: list) -> str:
    """A per-student table of the outcomes (:class:`~grader.grading.classrun.Outcome`), for the terminal."""
    lines = [f"{'student':14s} {'lesson':16s} {'automatic':>11s}  {'written, by hand':18s}  status"]
    for o in outcomes:
        note = f"  ({o.reason})" if o.reason else ""
        flag = f"  [review: {len(o.findings)} flag{'s' if len(o.findings) != 1 else ''}]" if o.findings else ""
        lines.append(f"{o.student:14s} {o.lesson:16s} {o.auto_score:5.1f}/{o.auto_max:<5.1f}  {_written(o):18s}  "
                     f"{o.status}{note}{flag}")
    by_student: dict[str, list] = {}
    for o in outcomes:
        by_student.setdefault(o.student, []).append(o)
    lines.append("")
    for student, items in by_student.items():
        line = f"{student:14s} total {sum(o.score for o in items):.1f} / {sum(o.max_score for o in items):.1f}"
        written_max = sum(o.standing.written_max for o in items if o.standing)
        if written_max:
            line += (f"  (automatic {sum(o.auto_score for o in items):.1f} / {sum(o.auto_max for o in items):.1f}, "
                     f"written {sum(o.standing.written_score for o in items if o.standing):g} / {written_max:g})")
        lines.append(line)
    waiting = [o.standing for o in outcomes if o.standing and o.standing.waiting]
    note = waiting_note(sum(s.waiting for s in waiting), sum(s.waiting_points for s in waiting))
    if note:
        lines += ["", note]
    flagged = [o for o in outcomes if o.findings]
    if flagged:
        lines += ["", f"{len(flagged)} submission(s) flagged for review (no points were changed); the reports are in "
                      f"review/<student>/<lesson>.txt:"]
        lines += [f"  {o.student} {o.lesson}: {o.findings[0]}" + (f" (and {len(o.findings) - 1} more)"
                                                                  if len(o.findings) > 1 else "") for o in flagged]
    return "\n".join(lines)
