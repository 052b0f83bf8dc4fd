"""``course hub ...`` and ``course kit``: the course on a JupyterHub, and the students' distribution.

    course hub setup --roster class.csv [--root /srv/nn-course] [--instructor teacher] [--port 8000]
    course hub start [--root /srv/nn-course]         run the hub (as root), until Ctrl-C
    course hub passwords [--root /srv/nn-course]     the first passwords handed out (root only)
    course hub remove [--root /srv/nn-course]        delete the course's accounts and the hub's folder
    course kit [--out dist]                          the students' distribution, folder and .tar.gz
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from grader.hub import accounts, deploy, kit
from grader.hub.roster import read

#: what a hub command may raise: ``course`` prints it and exits 2 (RosterError is a ValueError)
ERRORS = (deploy.SetupError, accounts.AccountError, kit.KitLeak)

DEFAULT_ROOT = "/srv/nn-course"


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise deploy.SetupError(f"{what} makes accounts and runs JupyterHub's spawner: run it as root (sudo)")


def _setup(args) -> int:
    _need_root("course hub setup")
    students = read(args.roster, taken={args.instructor})
    hub, new = deploy.setup(Path(args.root), students, instructor=args.instructor, port=args.port)
    print(f"hub laid out in {hub.root}: {len(students)} students, instructor {hub.instructor}, "
          f"course folder {hub.course_dir}")
    print(f"{len(new)} new account(s); first passwords: `course hub passwords --root {hub.root}` (root only)")
    print(f"{deploy.REPO} is now closed to every other account (its source/ holds the solutions)")
    print(f"start it: course hub start --root {hub.root}   then open http://127.0.0.1:{hub.port}/")
    return 0


def _start(args) -> int:
    _need_root("course hub start")
    hub = deploy.Hub.load(Path(args.root))
    argv, env = deploy.start_command(hub)
    os.chdir(hub.root / "hub")
    os.execve(argv[0], argv, env)


def _passwords(args) -> int:
    _need_root("course hub passwords")
    for name, word in sorted(deploy.passwords(deploy.Hub.load(Path(args.root))).items()):
        print(f"{name},{word}")
    return 0


def _remove(args) -> int:
    _need_root("course hub remove")
    hub = deploy.Hub.load(Path(args.root))
    accounts.remove(hub.students, hub.group)
    accounts.remove([hub.instructor], f"{hub.course_id}-instructors")
    shutil.rmtree(hub.root)
    print(f"removed {len(hub.students)} student account(s), {hub.instructor} and {hub.root}")
    return 0


def _kit(args) -> int:
    folder, archive = kit.write_kit(Path(args.out))
    print(f"wrote {folder} and {archive} ({archive.stat().st_size / 1e6:.1f} MB): no solution, no hidden test")
    return 0


def add_commands(sub) -> None:
    """Register ``hub`` and ``kit`` on the ``course`` command's sub-parsers."""
    h = sub.add_parser("hub", help="run the course on a JupyterHub on this machine (root)")
    hs = h.add_subparsers(dest="hub_command", required=True)
    s = hs.add_parser("setup", help="accounts from a roster, the shared environment, nbgrader's exchange")
    s.add_argument("--roster", required=True, help="CSV with a username column (first_name, last_name, email optional)")
    s.add_argument("--root", default=DEFAULT_ROOT)
    s.add_argument("--instructor", default="teacher", help="the instructor's account (default: teacher)")
    s.add_argument("--port", type=int, default=8000, help="the hub's port on 127.0.0.1 (the next two are used too)")
    s.set_defaults(run=_setup)
    for name, func, text in (("start", _start, "run the hub until Ctrl-C"),
                             ("passwords", _passwords, "print the first passwords (CSV)"),
                             ("remove", _remove, "delete the course's accounts and the hub's folder")):
        p = hs.add_parser(name, help=text)
        p.add_argument("--root", default=DEFAULT_ROOT)
        p.set_defaults(run=func)
    k = sub.add_parser("kit", help="write the students' distribution (no solution, no hidden test)")
    k.add_argument("--out", default="dist")
    k.set_defaults(run=_kit)

