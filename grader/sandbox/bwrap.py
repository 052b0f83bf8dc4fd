"""The bubblewrap command line that confines one grading kernel.

    >>> cmd = command(kernel_cmd, Confinement(sockets=Path("/tmp/k/sock"), work_files=[...]), Sandbox())

What the kernel sees (everything else of the machine is absent):

============================  ==========================================================
``/usr``, ``/lib*``, ``/etc``  the system, read-only
the Python environment        ``sys.prefix``, ``sys.base_prefix`` and the interpreter, read-only
the ``grader`` package        read-only, at its own path (lessons import it)
the MNIST files               read-only, at their own path
``/home/student``             a fresh tmpfs of ``Sandbox.disk`` bytes: ``HOME``, ``/tmp`` and
                              the working folder ``/home/student/<lesson>`` (the lesson's
                              files bound read-only into it), all lost when the kernel ends
``/run/kernel``               the kernel's sockets and connection file (sealed once it is up)
``/proc``, ``/dev``           its own PID namespace's processes; a minimal ``/dev``
============================  ==========================================================

No network namespace is shared (not even loopback), nor IPC, UTS or the PID namespace;
the kernel runs as a user id of its own (root starts it with ``setpriv``: no capabilities,
``no_new_privs``), under ``prlimit`` limits on memory, processes, open files and file size.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grader.sandbox import Sandbox

HOME = "/home/student"
SOCKETS = "/run/kernel"
INSTALL_HINT = ("bubblewrap is needed to grade: submissions run inside it. Install it with "
                "`sudo apt-get install bubblewrap` (Debian, Ubuntu), `sudo dnf install bubblewrap` (Fedora) "
                "or `make sandbox-deps`; grading never runs a submission without it.")
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or setpriv / prlimit) is missing, or cannot create a sandbox here."""


@dataclass
class Confinement:
    """What one kernel's sandbox is made of, besides the limits."""
    sockets: Path                                   # host folder bound at /run/kernel
    work_name: str = "work"                         # the working folder: /home/student/<work_name>
    work_files: list[Path] = field(default_factory=list)   # host files bound read-only into it
    uid: int = 65534                                # the kernel's user and group id (root mode)
    env: dict[str, str] = field(default_factory=dict)      # extra environment variables
    protect: list[Path] = field(default_factory=list)      # folders that must stay invisible
    extra_files: dict[str, Path] = field(default_factory=dict)  # inside path -> host file, read-only


def tool(name: str) -> str:
    """The path of ``bwrap``, ``prlimit`` or ``setpriv`` (looked up in ``$GRADER_SANDBOX_PATH`` if it is set)."""
    search = os.environ.get("GRADER_SANDBOX_PATH")
    if search is not None:
        path = shutil.which(name, path=search)
    else:
        path = shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/bin/{name}") if os.path.exists(p)), None)
    if not path:
        raise SandboxUnavailable(f"`{name}` was not found. {INSTALL_HINT if name == 'bwrap' else ''}"
                                 f"{'' if name == 'bwrap' else '(it is part of util-linux)'}")
    return path


def exposed_paths() -> list[Path]:
    """Host paths the kernel may read: the Python environment, the grader package and the data."""
    import grader
    from grader.data import data_dir

    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix),
             Path(os.path.realpath(sys.executable)).parent.parent, Path(grader.__file__).resolve().parent}
    data = data_dir().resolve()
    if data.exists():
        paths.add(data)
    for entry in sys.path:                           # an editable install or PYTHONPATH entry outside the env
        p = Path(entry or ".").resolve()
        if (p / "grader" / "__init__.py").exists() and p != Path(grader.__file__).resolve().parent.parent:
            paths.add(p / "grader")
    # a path inside another needs no bind of its own
    paths = sorted({p.resolve() for p in paths if p.exists()})
    return [p for p in paths if not any(q != p and q in p.parents for q in paths)]


def _parents(path: Path) -> list[str]:
    return [str(p) for p in reversed(path.parents) if str(p) != "/"]


def command(kernel_cmd: list[str], box: Confinement, limits: Sandbox) -> list[str]:
    """The full argv: bwrap, prlimit and setpriv around ``kernel_cmd``."""
    bwrap, prlimit = tool("bwrap"), tool("prlimit")
    root = os.geteuid() == 0
    exposed = exposed_paths()
    for p in exposed:
        for secret in box.protect:
            secret = Path(secret).resolve()
            if p == secret or p in secret.parents:
                raise SandboxUnavailable(
                    f"the sandbox would have to show {p} to the kernel, and it contains {secret}, which must stay "
                    f"hidden from submissions: keep the Python environment and the grader package outside the "
                    f"course folder's parents")
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "grader", "--clearenv"]
    if not root:
        args += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns"]
    for d in SYSTEM:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if os.path.isdir("/sys/devices/system/cpu"):
        args += ["--ro-bind", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]
    for dev in sorted(Path("/dev").glob("nvidia*")):            # a GPU grading machine: lesson 09 uses it
        args += ["--dev-bind", str(dev), str(dev)]
    made = set()
    for p in exposed + [Path(SOCKETS)]:
        for parent in _parents(p):
            if parent not in made and not any(parent == d or parent.startswith(d + "/") for d in SYSTEM):
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
    for p in exposed:
        args += ["--ro-bind", str(p), str(p)]
    work = f"{HOME}/{box.work_name}"
    args += ["--perms", "1777", "--size", str(limits.bytes("disk")), "--tmpfs", HOME,
             "--perms", "1777", "--dir", f"{HOME}/tmp", "--symlink", f"{HOME}/tmp", "/tmp",
             "--perms", "1777", "--dir", work]
    for f in box.work_files:
        args += ["--ro-bind", str(f), f"{work}/{Path(f).name}"]
    made_home = {HOME, f"{HOME}/tmp", work}
    for inside, host in sorted(box.extra_files.items()):
        if inside.startswith(HOME + "/") and Path(host).is_file():
            for parent in _parents(Path(inside)):
                if parent.startswith(HOME + "/") and parent not in made_home:
                    args += ["--perms", "1777", "--dir", parent]     # the kernel may write beside the file
                    made_home.add(parent)
            args += ["--ro-bind", str(host), inside]
    args += ["--bind", str(box.sockets), SOCKETS, "--chdir", work]
    env = {"HOME": HOME, "TMPDIR": f"{HOME}/tmp", "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
           "LANG": "C.UTF-8", "MPLCONFIGDIR": f"{HOME}/.config/matplotlib", "XDG_CACHE_HOME": f"{HOME}/.cache",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", **box.env}
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    limit = [prlimit, f"--as={limits.bytes('memory')}", f"--nofile={limits.open_files}",
             f"--fsize={limits.bytes('disk')}", "--core=0"]
    if root:
        setpriv = tool("setpriv")
        limit.append(f"--nproc={limits.processes}")
        drop = [setpriv, f"--reuid={box.uid}", f"--regid={box.uid}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--no-new-privs", "--"]
    else:                                            # the user namespace already drops every privilege
        limit.append(f"--nproc={limits.processes + _processes_of_user()}")
        drop = []
    return args + ["--"] + limit + ["--"] + drop + list(kernel_cmd)


def _processes_of_user() -> int:
    uid = os.getuid()
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def check() -> None:
    """Raise :class:`SandboxUnavailable`, saying how to fix it, unless a sandbox can be made here."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sandbox-check-") as tmp:
        sockets = Path(tmp) / "sock"
        sockets.mkdir()
        cmd = command([sys.executable, "-c", "print('ok')"], Confinement(sockets=sockets), Sandbox())
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise SandboxUnavailable(f"bubblewrap could not start a sandbox: {err}. {INSTALL_HINT}") from None
        if done.returncode != 0 or done.stdout.strip() != "ok":
            raise SandboxUnavailable(f"bubblewrap could not start a sandbox here (exit {done.returncode}): "
                                     f"{done.stderr.strip()[-500:]}. Grading needs bubblewrap with permission to "
                                     f"create namespaces (run as root, or enable unprivileged user namespaces).")
