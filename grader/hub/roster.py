"""A class roster: the CSV file an instructor keeps, checked before any account is made.

Format: a header line with at least ``username``; optional ``first_name``, ``last_name``,
``email``. One student per line. Every problem in the file is reported at once, with its
line number, and nothing is created while any remains::

    username,first_name,last_name,email
    ada,Ada,Lovelace,ada@example.org
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

#: a portable POSIX login name, as ``useradd`` and nbgrader's exchange (no ``+``) both accept
USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
#: names a student may not take: system accounts and the words the hub uses itself
RESERVED = {"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
            "www-data", "backup", "list", "irc", "nobody", "admin", "hub", "user", "jovyan", "instructor"}
COLUMNS = ("username", "first_name", "last_name", "email")


class RosterError(ValueError):
    """The roster has problems; ``problems`` lists each with its line number."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s), nothing was created:\n  "
                         + "\n  ".join(problems))


@dataclass(frozen=True)
class Student:
    username: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""


def parse(text: str, source: str = "roster", taken: set[str] = frozenset()) -> list[Student]:
    """Students of a roster given as CSV text.

    Args:
        text: the file's contents.
        source: how to name the file in messages.
        taken: names that must not be used (the instructor's account, say).

    Raises:
        RosterError: listing every bad line (missing header, bad or reserved name, a name twice,
            a line with too many fields), so that one fix-and-rerun is enough.
    """
    rows = list(csv.reader(io.StringIO(text)))
    rows = [(number, row) for number, row in enumerate(rows, start=1) if any(field.strip() for field in row)]
    if not rows:
        raise RosterError(source, ["the file is empty: expected a header line `username,first_name,last_name,email`"])
    header_line, header = rows[0]
    header = [h.strip().lower() for h in header]
    if "username" not in header:
        raise RosterError(source, [f"line {header_line}: the header must name a `username` column, got {header}"])
    unknown = [h for h in header if h not in COLUMNS]
    problems = [f"line {header_line}: unknown column(s) {unknown}; expected some of {list(COLUMNS)}"] if unknown else []
    students, first_seen = [], {}
    for number, row in rows[1:]:
        if len(row) > len(header):
            problems.append(f"line {number}: {len(row)} fields but the header has {len(header)} (a comma in a name? quote it)")
            continue
        record = {key: value.strip() for key, value in zip(header, row)}
        name = record.get("username", "")
        if not USERNAME.match(name):
            problems.append(f"line {number}: username {name!r} is not a valid login name: lower-case letters, "
                            "digits, '_' or '-', starting with a letter or '_', at most 31 characters")
            continue
        if name in RESERVED or name in taken:
            problems.append(f"line {number}: username {name!r} is reserved (a system or course account)")
            continue
        if name in first_seen:
            problems.append(f"line {number}: username {name!r} is already on line {first_seen[name]}")
            continue
        first_seen[name] = number
        students.append(Student(**{key: record.get(key, "") for key in COLUMNS}))
    if problems:
        raise RosterError(source, problems)
    if not students:
        raise RosterError(source, ["no students: the file has a header and nothing else"])
    return students


def read(path: str | Path, taken: set[str] = frozenset()) -> list[Student]:
    """:func:`parse` a roster file; a missing file is a :class:`RosterError` too."""
    path = Path(path)
    if not path.is_file():
        raise RosterError(str(path), ["no such file"])
    return parse(path.read_text(encoding="utf-8-sig"), str(path), taken)
