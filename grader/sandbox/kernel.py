"""A jupyter_client kernel manager whose kernels run inside the sandbox.

nbclient (and so nbgrader's ``Execute``) starts kernels through ``kernel_manager_class``;
this one wraps the kernel's command in :func:`grader.sandbox.bwrap.command`. The kernel
and the grader talk over Unix sockets (``transport = "ipc"``) in a folder of their own,
bound into the sandbox at ``/run/kernel``; :meth:`SandboxKernelManager.seal` takes away
the kernel's right to create anything there once it is up. Interrupts are sent as
messages (the kernel is in another PID namespace, out of reach of signals from here),
and :meth:`kill` takes the whole sandbox down with the kernel.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Dict, List, Unicode

from grader.sandbox import Sandbox
from grader.sandbox.bwrap import SOCKETS, Confinement, command

#: user ids handed to kernels: one each, so that the process limit is per kernel
UID_RANGE = (200_000, 299_999)


def _font_cache() -> dict[str, Path]:
    """matplotlib's font list, built once on this machine, so that a fresh kernel does not build its own."""
    import sys
    if "matplotlib" not in sys.modules:
        return {}
    import matplotlib
    found = sorted(Path(matplotlib.get_cachedir()).glob("fontlist-*.json"))
    return {f"/home/student/.config/matplotlib/{found[-1].name}": found[-1]} if found else {}


#: a Unix socket's path has at most 107 bytes; a folder for the kernel's sockets leaves room for the names
SOCKET_FOLDER_MAX = 60


def _short(preferred: str) -> str:
    """The first of the preferred folder, the temporary folder and /tmp whose sockets' paths fit."""
    for folder in (preferred, tempfile.gettempdir(), "/tmp"):
        if folder and len(str(Path(folder).resolve())) <= SOCKET_FOLDER_MAX and Path(folder).is_dir():
            return folder
    return "/tmp"


class SandboxKernelManager(AsyncKernelManager):
    """Starts the kernel in bubblewrap, talking over sockets in a folder of its own."""

    work_name = Unicode("work", help="Name of the kernel's working folder, /home/student/<work_name>.").tag(
        config=True)
    protect = List(Unicode(), help="Folders that must stay out of the kernel's sight (the course folders).").tag(
        config=True)
    extra_env = Dict(help="Environment variables given to the kernel, besides its minimal own.").tag(config=True)
    home_root = Unicode("", help="Folder for the kernel's sockets folder (default: the temporary folder).").tag(
        config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sandbox = Sandbox(parent=self)
        self._home = Path(tempfile.mkdtemp(prefix="nn-kernel-", dir=_short(self.home_root)))
        self.sockets = self._home / "sock"
        self.sockets.mkdir()
        self.uid = random.SystemRandom().randint(*UID_RANGE)
        if os.geteuid() == 0:
            os.chown(self.sockets, self.uid, self.uid)         # the kernel creates its sockets here
        self.transport = "ipc"
        self.ip = str(self.sockets / "k")
        self.connection_file = str(self._home / "connection.json")

    async def _async_pre_start_kernel(self, **kw):
        self.kernel_spec.interrupt_mode = "message"
        return await super()._async_pre_start_kernel(**kw)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        info = self.get_connection_info()
        info["ip"] = f"{SOCKETS}/k"
        info["key"] = info["key"].decode() if isinstance(info["key"], bytes) else info["key"]
        inside = self.sockets / "connection.json"
        inside.write_text(json.dumps(info))
        host_file = os.path.realpath(self.connection_file)
        cmd = [f"{SOCKETS}/connection.json" if arg == host_file else arg for arg in cmd]
        cwd = Path(self._launch_args.get("cwd") or os.getcwd())
        files = sorted(p for p in cwd.iterdir() if p.is_file() and p.suffix != ".ipynb") if cwd.is_dir() else []
        env = {k: v for k, v in (self._launch_args.get("env") or {}).items()
               if k in {"NBGRADER_EXECUTION", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "COURSE_DATA_DIR"}}
        env.update({k: os.environ[k] for k in ("NBGRADER_EXECUTION", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                 "COURSE_DATA_DIR") if k in os.environ and k not in env})
        env.update(self.extra_env)
        box = Confinement(sockets=self.sockets, work_name=self.work_name, work_files=files, uid=self.uid,
                          env=env, protect=[Path(p) for p in self.protect], extra_files=_font_cache())
        return command(cmd, box, self.sandbox)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # whatever the kernel writes to its own stdout and stderr (not its cells' outputs) is dropped:
        # a submission must not be able to fill the grader's log
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
        kw["stdin"] = subprocess.DEVNULL
        return await super()._async_launch_kernel(kernel_cmd, **kw)

    def seal(self) -> None:
        """The kernel is up: from now on it cannot create files in its socket folder."""
        if os.geteuid() == 0:
            os.chown(self.sockets, 0, 0)
        os.chmod(self.sockets, 0o555)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._home, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources
