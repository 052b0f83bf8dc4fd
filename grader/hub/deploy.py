"""Lay out a JupyterHub for the course on one machine (``course hub setup``).

Everything lives under one folder, ``root`` (default ``/srv/nn-course``)::

    env/        the Python environment every user's JupyterLab and kernel run from: the course
                package (no notebook source, no solution), PyTorch, JupyterLab, nbgrader, JupyterHub
    proxy/      configurable-http-proxy, from npm
    data/mnist  the MNIST files, readable by all (``COURSE_DATA_DIR``)
    exchange/   nbgrader's exchange: owned by the instructor; nbgrader sets the course's own folders
    etc/        Jupyter configuration by role (``JUPYTER_CONFIG_PATH``): ``common`` (course id,
                exchange, the trusted collect), ``student`` (Formgrader off), ``instructor``
    hub/        hub.json (the course's settings, read by the hub's configuration), hub state
    private/    root only: first passwords and the hub's API token

The instructor's course folder (``~<instructor>/<course_id>``, ``0700``) holds ``source/``,
``release/``, ``nbgrader_config.py`` and ``gradebook.db`` with the roster: solutions and hidden
tests never leave it. Students' homes are ``0700``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grader.hub import accounts
from grader.hub.kit import write_kit
from grader.hub.roster import Student

REPO = Path(__file__).resolve().parents[2]
COURSE_ID = "nn-by-hand"
PROXY = "configurable-http-proxy@5.3.0"
HUB = "jupyterhub==6.1.1"
#: what a submission may hold: larger files are left out with a warning (kilobytes, nbgrader's unit)
MAX_FILE_KB = 20_000


class SetupError(RuntimeError):
    """The hub cannot be laid out (no Node.js, no usable Python, a command failed)."""


@dataclass
class Hub:
    root: Path
    instructor: str = "teacher"
    students: list[str] = field(default_factory=list)
    course_id: str = COURSE_ID
    port: int = 8000

    @property
    def env(self) -> Path:
        return self.root / "env"

    @property
    def exchange(self) -> Path:
        return self.root / "exchange"

    @property
    def course_dir(self) -> Path:
        return Path(os.path.expanduser(f"~{self.instructor}")) / self.course_id

    @property
    def group(self) -> str:
        return f"{self.course_id}-students"

    def save(self) -> Path:
        path = self.root / "hub" / "hub.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self) | {"root": str(self.root), "course_dir": str(self.course_dir)}
        path.write_text(json.dumps(data, indent=1))
        return path

    @classmethod
    def load(cls, root: Path) -> "Hub":
        path = Path(root) / "hub" / "hub.json"
        if not path.is_file():
            raise SetupError(f"{path} is missing: run `course hub setup --root {root} --roster FILE` first")
        data = json.loads(path.read_text())
        return cls(root=Path(data["root"]), instructor=data["instructor"], students=data["students"],
                   course_id=data["course_id"], port=data["port"])


def _run(argv: list[str], what: str, **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise SetupError(f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def shared_python() -> str:
    """A Python 3.11 every user may run (this one lives under /root when made with pyenv)."""
    for candidate in (sys.executable, "/usr/bin/python3.11", "/usr/local/bin/python3.11"):
        real = Path(candidate).resolve()
        if real.exists() and all(os.stat(p).st_mode & 0o001 for p in [*reversed(real.parents)][1:]):
            return str(real)
    raise SetupError("no Python 3.11 that every user can run: install Debian's python3.11 and python3.11-venv")


def _fingerprint(repo: Path) -> str:
    digest = hashlib.sha256((repo / "pyproject.toml").read_bytes())
    for path in sorted((repo / "grader").rglob("*.py")):
        digest.update(str(path.relative_to(repo)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def make_env(hub: Hub, repo: Path = REPO) -> None:
    """Install the course package into ``env/`` from the students' kit (``kit/``, written here):
    not editable, so nothing leads back to the instructor's repository."""
    stamp = hub.env / ".course-installed"
    repo, _ = write_kit(hub.root / "kit", repo)
    fingerprint = _fingerprint(repo)
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return
    if not (hub.env / "bin" / "python").exists():
        _run([shared_python(), "-m", "venv", str(hub.env)], "creating the hub's Python environment")
        _run([str(hub.env / "bin" / "pip"), "install", "--quiet", "--upgrade", "pip>=24"], "upgrading pip")
        _run([str(hub.env / "bin" / "pip"), "install", "--quiet", f"{repo}", HUB], "installing the course and JupyterHub")
    else:                                   # a newer course package: replace it, keep the rest
        _run([str(hub.env / "bin" / "pip"), "install", "--quiet", "--no-deps", "--force-reinstall", f"{repo}"],
             "updating the course package")
    shutil.rmtree(repo / "build", ignore_errors=True)           # pip's in-tree build leftovers
    stamp.write_text(fingerprint)


def make_proxy(hub: Hub) -> Path:
    """configurable-http-proxy from npm, in ``proxy/`` (Node.js is needed)."""
    command = hub.root / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
    if command.exists():
        return command
    if shutil.which("npm") is None:
        raise SetupError("npm is missing: install Node.js 18 or newer (Debian: apt-get install nodejs npm)")
    (hub.root / "proxy").mkdir(parents=True, exist_ok=True)
    _run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(hub.root / "proxy"), PROXY],
         "installing configurable-http-proxy")
    return command


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def write_config(hub: Hub) -> None:
    """Jupyter configuration by role, read through ``JUPYTER_CONFIG_PATH`` (see the hub's configuration)."""
    etc = hub.root / "etc"
    _write(etc / "common" / "nbgrader_config.py", f'''c = get_config()  # noqa: F821
# Written by `course hub setup`: the course every user of this hub takes part in.
c.CourseDirectory.course_id = {hub.course_id!r}
c.Exchange.root = {str(hub.exchange)!r}
c.Exchange.path_includes_course = False
# A submission is taken only from its owner, dated by the filesystem (grader/hub/collect.py).
c.ExchangeFactory.collect = "grader.hub.collect.TrustedCollect"
# A submission must hold the released notebooks under their released names.
c.ExchangeSubmit.strict = True
# Files larger than this (kB) are left out of a submission, with a warning.
c.CourseDirectory.max_file_size = {MAX_FILE_KB}
''')
    student_off = {"@jupyter/nbgrader:formgrader": True, "@jupyter/nbgrader:create-assignment": True,
                   "@jupyter/nbgrader:course-list": True}
    _write(etc / "student" / "labconfig" / "page_config.json", json.dumps({"disabledExtensions": student_off}, indent=1))
    _write(etc / "student" / "jupyter_server_config.json", json.dumps(
        {"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": False,
                                               "nbgrader.server_extensions.course_list": False}}}, indent=1))
    _write(etc / "instructor" / "jupyter_server_config.json", json.dumps(
        {"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": True}}}, indent=1))
    for folder in ("common", "student", "instructor"):
        (etc / folder).chmod(0o755)


def make_exchange(hub: Hub) -> None:
    """nbgrader's exchange: the root world-writable as nbgrader requires, with the sticky bit, so
    that no student can rename or remove the course's folder (and put a fake one in its place);
    the course's folder the instructor's, readable by all; nbgrader makes and guards the rest
    (``inbound`` write-only, ``feedback`` unlistable)."""
    hub.exchange.mkdir(parents=True, exist_ok=True)
    os.chown(hub.exchange, 0, 0)
    hub.exchange.chmod(0o1777)
    course = hub.exchange / hub.course_id
    course.mkdir(exist_ok=True)
    os.chown(course, *accounts.ids(hub.instructor))
    course.chmod(0o755)


def make_course_dir(hub: Hub, students: list[Student], repo: Path = REPO) -> None:
    """The instructor's course folder: source, release, configuration, gradebook with the roster."""
    course = hub.course_dir
    course.mkdir(parents=True, exist_ok=True)
    for folder in ("source", "release"):
        shutil.copytree(repo / folder, course / folder, dirs_exist_ok=True)
    shutil.copyfile(repo / "nbgrader_config.py", course / "nbgrader_config.py")
    accounts.chown_tree(course, hub.instructor)
    course.chmod(0o700)
    roster = course / ".roster.json"
    roster.write_text(json.dumps([asdict(s) for s in students]))
    accounts.chown_tree(roster, hub.instructor)
    as_instructor(hub, f"python - <<'EOF'\n{_GRADEBOOK}\nEOF", "filling the gradebook")
    roster.unlink()
    # generate_assignment wrote release/ again with the instructor's jupytext pairing: students get the
    # course's own release notebooks (as `course build` made them), unpaired
    shutil.copytree(repo / "release", course / "release", dirs_exist_ok=True)
    accounts.chown_tree(course / "release", hub.instructor)


#: run as the instructor in the course folder: every lesson into the gradebook, and the roster
_GRADEBOOK = """
import json
from pathlib import Path
from nbgrader.api import Gradebook
from grader.build import checked, nbgrader_api
api = nbgrader_api(Path("."))
for lesson in sorted(p.name for p in Path("source").iterdir() if p.is_dir()):
    checked(api.generate_assignment(lesson, force=True), "generate_assignment " + lesson)
with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
    for s in json.loads(Path(".roster.json").read_text()):
        gb.update_or_create_student(s["username"], first_name=s["first_name"], last_name=s["last_name"],
                                    email=s["email"] or None)
"""


def user_env(hub: Hub, role: str) -> dict[str, str]:
    """The environment of a user's JupyterLab and of the instructor's commands."""
    return {"PATH": f"{hub.env / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "COURSE_DATA_DIR": str(hub.root / "data" / "mnist"),
            "JUPYTER_CONFIG_PATH": f"{hub.root / 'etc' / role}:{hub.root / 'etc' / 'common'}"}


def as_user(hub: Hub, user: str, role: str, script: str, what: str, cwd: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run a shell script as ``user`` with the hub's environment (how the tests act as a person)."""
    env = user_env(hub, role) | {"HOME": os.path.expanduser(f"~{user}"), "USER": user, "LANG": "C.UTF-8"}
    done = subprocess.run([shutil.which("runuser") or "/usr/sbin/runuser", "-u", user, "--", "bash", "-c", script], capture_output=True, text=True,
                          env=env, cwd=str(cwd or os.path.expanduser(f"~{user}")))
    if check and done.returncode:
        raise SetupError(f"{what} (as {user}) failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def as_instructor(hub: Hub, script: str, what: str, check: bool = True) -> subprocess.CompletedProcess:
    return as_user(hub, hub.instructor, "instructor", script, what, cwd=hub.course_dir, check=check)


def protect_repo(repo: Path) -> bool:
    """Take every other account's access to the instructor's repository away (its ``notebooks/``
    and ``source/`` hold every solution and hidden test); True when its mode was changed."""
    mode = repo.stat().st_mode & 0o7777
    if mode & 0o007:
        repo.chmod(mode & ~0o007)
        return True
    return False


def lab_defaults(hub: Hub) -> None:
    """JupyterLab settings every user starts with: no news popup over a student's notebook."""
    settings = hub.env / "share" / "jupyter" / "lab" / "settings"
    _write(settings / "overrides.json", json.dumps({
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
        # every cell of a lesson in the page: a long notebook scrolls as one document
        "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}, indent=1))


def setup(root: Path, students: list[Student], instructor: str = "teacher", port: int = 8000,
          repo: Path = REPO) -> tuple[Hub, dict[str, str]]:
    """Lay out the hub for ``students``; returns it and the first passwords of new accounts.

    Safe to run again (after a roster change, say): existing accounts and passwords are kept,
    new students are added to the accounts and the gradebook.
    """
    root = Path(root).resolve()
    hub = Hub(root=root, instructor=instructor, students=[s.username for s in students], port=port)
    for folder in (root, root / "hub", root / "etc", root / "data"):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    private = root / "private"
    private.mkdir(exist_ok=True)
    private.chmod(0o700)
    make_proxy(hub)
    make_env(hub, repo)
    lab_defaults(hub)
    shutil.copytree(repo / "data" / "mnist", root / "data" / "mnist", dirs_exist_ok=True)
    for path in (root / "data").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    accounts.ensure_user(instructor, f"{hub.course_id}-instructors")
    new = {}
    for student in students:
        if not accounts.exists(student.username):
            new[student.username] = accounts.new_password()
        accounts.ensure_user(student.username, hub.group)
    if not accounts.exists(instructor) or not (private / "passwords.csv").exists():
        new.setdefault(instructor, accounts.new_password())
    accounts.set_passwords(new)
    known = _read_passwords(private / "passwords.csv")
    known.update(new)
    with (private / "passwords.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(sorted(known.items()))
    (private / "passwords.csv").chmod(0o600)
    token = private / "api_token"
    if not token.exists():
        token.write_text(accounts.new_password() + accounts.new_password())
        token.chmod(0o600)
    make_exchange(hub)
    write_config(hub)
    hub.save()
    make_course_dir(hub, students, repo)
    protect_repo(repo)
    return hub, new


def _read_passwords(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {row[0]: row[1] for row in csv.reader(path.open()) if len(row) == 2}


def passwords(hub: Hub) -> dict[str, str]:
    """The first passwords handed out (root only)."""
    return _read_passwords(hub.root / "private" / "passwords.csv")


def start_command(hub: Hub) -> tuple[list[str], dict[str, str]]:
    """The command that runs the hub (as root) and its environment."""
    config = Path(__file__).with_name("jupyterhub_config.py")
    env = {"PATH": f"{hub.env / 'bin'}:/usr/local/bin:/usr/bin:/bin", "COURSE_HUB_ROOT": str(hub.root),
           "LANG": "C.UTF-8", "HOME": "/root"}
    installed = hub.env / "lib" / "python3.11" / "site-packages" / "grader" / "hub" / "jupyterhub_config.py"
    return [str(hub.env / "bin" / "jupyterhub"), "-f", str(installed if installed.exists() else config)], env
