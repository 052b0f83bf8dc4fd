"""Local accounts of a course: one Unix user per student and one for the instructor.

The hub logs people in with their Unix password (JupyterHub's PAM authenticator) and starts
each one's JupyterLab as that user, so every file a student writes is owned by that student
and the kernel's permissions are the student's: that is what keeps students apart. Homes are
``0700``. Accounts belong to a course group (``<course>-students`` or ``<course>-instructors``);
an existing account outside those groups is never taken over.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import subprocess
from pathlib import Path


class AccountError(RuntimeError):
    """An account cannot be made or used (the name belongs to someone else, useradd failed)."""


def _run(*argv: str, stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, text=True, capture_output=True)
    if done.returncode:
        raise AccountError(f"{' '.join(argv[:2])} ... failed ({done.returncode}): {done.stderr.strip()}")


def exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def ids(name: str) -> tuple[int, int]:
    """An account's ``(uid, gid)``."""
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def ensure_group(group: str) -> None:
    try:
        grp.getgrnam(group)
    except KeyError:
        _run("groupadd", group)


def ensure_user(name: str, group: str) -> Path:
    """Create ``name`` (home ``/home/<name>``, ``0700``) in ``group``, or check the existing one is ours.

    Returns the home folder. Raises :class:`AccountError` for an account of the machine that
    is not in ``group`` (a course never takes over someone else's login).
    """
    ensure_group(group)
    if exists(name):
        members = grp.getgrnam(group).gr_mem
        if name not in members and pwd.getpwnam(name).pw_gid != grp.getgrnam(group).gr_gid:
            raise AccountError(f"an account {name!r} already exists on this machine and is not in {group!r}: "
                               "rename the student in the roster or remove that account")
    else:
        _run("useradd", "--create-home", "--shell", "/bin/bash", "--groups", group, name)
    home = Path(pwd.getpwnam(name).pw_dir)
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, *ids(name))
    home.chmod(0o700)
    return home


def set_passwords(passwords: dict[str, str]) -> None:
    """Set each account's password (``chpasswd``)."""
    if passwords:
        _run("chpasswd", stdin="".join(f"{name}:{word}\n" for name, word in passwords.items()))


def new_password() -> str:
    """A random first password, 16 URL-safe characters."""
    return secrets.token_urlsafe(12)


def remove(names: list[str], group: str | None = None) -> None:
    """Delete accounts (and their homes) made for a course; names of other groups are left alone."""
    for name in names:
        if not exists(name):
            continue
        if group is not None:
            try:
                if name not in grp.getgrnam(group).gr_mem:
                    continue
            except KeyError:
                continue
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", "--remove", name], capture_output=True)
    if group is not None:
        try:
            left = grp.getgrnam(group).gr_mem
        except KeyError:
            return
        if not left:                              # another hub of the same course may still use it
            subprocess.run(["groupdel", group], capture_output=True)


def chown_tree(path: Path, user: str) -> None:
    """Give ``path`` and everything below it to ``user``."""
    uid, gid = ids(user)
    for folder, dirs, files in os.walk(path):
        os.chown(folder, uid, gid)
        for name in files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)
