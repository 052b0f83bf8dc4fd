"""Grading a class on a Dask ``distributed`` cluster: one sandboxed submission is what travels.

``course autograde --scheduler tcp://host:8786`` (or ``COURSE_SCHEDULER``) prepares each
submission in the instructor's process exactly as a local run does (:mod:`grader.grading.classrun`),
then sends it as data: the scratch course's files (the lesson's ``source/`` folder, the
submission, a gradebook that defines the lesson) as ``{relative path: bytes}``. A Dask worker
writes them into a scratch folder of its own, grades them in a child process of its own (the
same :func:`grader.grading.worker.serve` loop a local run uses: sandboxed kernel, judge, scan,
a deadline after which the child and its kernel are killed) and sends back the verdicts and
the autograded folder, again as bytes. Only the instructor's process writes the gradebook,
one finished submission at a time, so each is recorded exactly once:

* a worker that dies mid-run: the scheduler gives its submissions to another worker (Dask's
  own retry); nothing was recorded for them yet, so nothing is recorded twice;
* a submission that kills every worker it is given to (Dask's ``KilledWorker``) gets 0 with the reason;
* the scheduler lost: :class:`SchedulerLost` says how many were recorded; running the same
  command again grades only the rest (``pending(..., force=False)``).

The workers need the course installed (the same environment, bubblewrap), nothing of the
instructor's course folder.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import CancelledError
from multiprocessing.connection import Connection
from pathlib import Path

#: the environment variable that names the scheduler when ``--scheduler`` is not given
SCHEDULER_ENV = "COURSE_SCHEDULER"
#: submissions sent ahead per worker thread of the cluster (the rest wait in the instructor's process)
AHEAD = 2


class SchedulerUnreachable(RuntimeError):
    """No Dask scheduler answers at the given address; nothing was graded or written."""


class SchedulerLost(RuntimeError):
    """The scheduler went away during the run; the submissions already recorded stay recorded."""


# --- the instructor's side -----------------------------------------------------------------------

def connect(address: str, timeout: float = 10):
    """A client of the scheduler at ``address``, or :class:`SchedulerUnreachable` saying what to check."""
    from distributed import Client

    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise SchedulerUnreachable(
            f"no Dask scheduler answers at {address!r} ({type(err).__name__}: {err}). Start one with "
            f"`dask scheduler` and a `dask worker {address}` on each grading machine (README: grading on a "
            f"cluster), or leave out --scheduler and {SCHEDULER_ENV} to grade on this machine.") from err


def run_on_cluster(client, jobs: list[dict], deadline: float, done, warm: bool | None = None) -> None:
    """Grade ``jobs`` (prepared scratch courses) on the cluster of ``client`` (closed at the end);
    ``done(job, result)`` as each comes back."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    address = client.scheduler.address
    try:
        hosts: dict[str, int] = {}
        for info in client.scheduler_info()["workers"].values():
            hosts[info["host"]] = hosts.get(info["host"], 0) + info["nthreads"]
        ahead = AHEAD * max(1, sum(hosts.values()))
        queue, running, finished = list(jobs), {}, 0
        pending = as_completed(loop=client.loop)

        def send() -> None:
            while queue and len(running) < ahead:
                job = queue.pop(0)
                future = client.submit(grade_packed, _pack_job(job), deadline, hosts, warm, pure=False,
                                       key=f"autograde-{job['lesson']}-{job['student']}-{os.urandom(4).hex()}")
                running[future.key] = job
                pending.add(future)

        send()
        for future in pending:
            job = running.pop(future.key)
            try:
                result = future.result()
            except (CancelledError, FutureCancelledError, OSError, TimeoutError) as err:
                raise SchedulerLost(
                    f"the Dask scheduler at {address} was lost ({type(err).__name__}); {finished} of {len(jobs)} "
                    f"submission(s) sent to the cluster were graded and recorded. Run the same command again "
                    f"to grade the rest.") from err
            except Exception as err:                 # noqa: BLE001 - KilledWorker and the like: this submission only
                result = {"ok": False, "findings": [], "seconds": 0.0,
                          "log": f"the cluster could not grade this submission ({type(err).__name__}: {err})"}
            _unpack(result.pop("autograded", {}) or {}, Path(job["scratch"]) / "autograded" / job["student"] /
                    job["lesson"])
            done(job, result)
            finished += 1
            send()
    finally:
        try:
            client.close(timeout=5)
        except Exception:                            # noqa: BLE001 - a lost scheduler cannot be closed politely
            pass


def _pack_job(job: dict) -> dict:
    scratch = Path(job["scratch"])
    return {"files": _pack(scratch, skip=("tmp",)),
            "job": {k: v for k, v in job.items() if k not in ("scratch", "kernels_dir")}}


def _pack(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    files = {}
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] in skip or path.is_symlink() or not path.is_file():
            continue
        files[rel.as_posix()] = path.read_bytes()
    return files


def _unpack(files: dict[str, bytes], folder: Path) -> None:
    folder = Path(folder).resolve()
    for rel, data in files.items():
        target = (folder / rel).resolve()
        if folder not in target.parents:
            raise ValueError(f"refusing to write {rel!r} outside {folder}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


# --- the worker's side ---------------------------------------------------------------------------

def grade_packed(packed: dict, deadline: float, hosts: dict[str, int], warm: bool | None) -> dict:
    """A Dask task: grade one packed submission in a scratch folder of this machine; verdicts and files back."""
    from grader.grading.classrun import remove

    scratch = Path(tempfile.mkdtemp(prefix="nn-grading-", dir=_workspace()))
    try:
        _unpack(packed["files"], scratch)
        (scratch / "tmp").mkdir(exist_ok=True)
        job = {**packed["job"], "scratch": str(scratch)}
        result = _child(hosts, warm).grade(job, deadline)
        graded = scratch / "autograded" / job["student"] / job["lesson"]
        result["autograded"] = _pack(graded) if graded.exists() else {}
        result["worker"] = socket.gethostname()
        return result
    finally:
        remove(scratch)


def _workspace() -> str | None:
    """The Dask worker's own local directory (Dask purges those of dead workers), else the temp folder."""
    try:
        from distributed import get_worker
        return get_worker().local_directory
    except (ImportError, ValueError):
        return None


_children = threading.local()


def _child(hosts: dict[str, int], warm: bool | None) -> "_Child":
    """This worker thread's grading process (started at its first submission, replaced if it dies)."""
    child = getattr(_children, "child", None)
    if child is None or child.proc.poll() is not None:
        from grader.grading.classrun import available_cores
        cores = available_cores()
        try:
            from distributed import get_worker
            here = hosts.get(get_worker().address.split("://")[-1].rsplit(":", 1)[0], 0)
        except (ImportError, ValueError):
            here = 0
        here = here or len(hosts) or 1
        child = _children.child = _Child(threads=max(1, cores // here), warm=(here < cores) if warm is None else warm)
    return child


CHILD_CODE = "import sys; from grader.grading.cluster import child_main; child_main(int(sys.argv[1]))"


class _Child:
    """A long-lived grading process, spoken to over a socket pair (Dask's worker may be daemonic,
    which ``multiprocessing`` children cannot be)."""

    def __init__(self, threads: int, warm: bool):
        ours, theirs = socket.socketpair()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD_CODE, str(theirs.fileno())],
                                     pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.kernels = tempfile.mkdtemp(prefix="nn-grading-kernels-", dir=_workspace()) if warm else ""
        atexit.register(self.kill)

    def grade(self, job: dict, deadline: float) -> dict:
        job = {**job, "kernels_dir": self.kernels}
        try:
            self.conn.send(job)
            if self.conn.poll(deadline):
                return self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            return {"ok": False, "findings": [], "seconds": 0.0, "log": "the grading process died"}
        self.kill()
        return {"ok": False, "timeout": True, "findings": [], "seconds": deadline,
                "log": f"grading took longer than {deadline:.0f} s; the grading process and its kernel were stopped"}

    def kill(self) -> None:
        from grader.grading.classrun import remove

        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.conn.close()
        if self.kernels:
            remove(self.kernels)
        if getattr(_children, "child", None) is self:
            _children.child = None


def child_main(fd: int) -> None:
    """The grading process: :func:`grader.grading.worker.serve` on the socket, gone with its parent."""
    from grader.grading.worker import serve

    parent = os.getppid()

    def watch() -> None:                             # a killed Dask worker takes its grading (and kernel) with it
        import time
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    serve(Connection(fd))
