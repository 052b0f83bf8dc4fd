"""nbgrader's ``Execute`` step, in the sandbox, with limits per notebook and recorded test cells.

:class:`SandboxedExecute` replaces nbgrader's ``Execute`` in ``Autograde.autograde_preprocessors``
(``nbgrader_config.py``), so that ``nbgrader autograde`` and the formgrader use it as much as
``course autograde``. Against nbgrader's own step it adds:

* the kernel runs in the sandbox (:class:`grader.sandbox.kernel.SandboxKernelManager`);
  without bubblewrap it stops with an error that says how to get it;
* a time limit for the whole notebook (``Sandbox.notebook_timeout``) besides the one per cell:
  once it is reached, the cells left are not run (each test cell left says so);
* a kernel that does not stop when interrupted, or that dies, is killed and the cells left
  are not run, instead of each waiting for its own timeout;
* an output budget in bytes (``Sandbox.output``), enforced as the messages arrive, and one
  for the test records (``Sandbox.record``); no single message may exceed the latter;
* each test cell of the lesson sends :meth:`grader.judge.lesson.Lesson.kernel_code` to the
  kernel instead of its source: the test runs with the student's names behind recording
  proxies and publishes its record for :class:`grader.judge.preprocessor.JudgeTests`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Type

from grader.judge.lesson import Lesson, source_notebook
from grader.judge.wire import MIME
from grader.sandbox import Sandbox
from grader.sandbox.bwrap import check
from grader.sandbox.kernel import SandboxKernelManager

NOT_RUN = "NotRun"


class SandboxKernelClient(AsyncKernelClient):
    """A kernel client that refuses any single message larger than the record budget allows."""

    max_message = 300 * 1024 ** 2

    def _create_connected_socket(self, channel, identity=None):
        sock = self.context.socket(zmq.SUB if channel == "iopub" else zmq.DEALER)
        sock.linger = 1000
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message)
        if identity:
            sock.identity = identity
        url = self._make_url(channel)
        self.log.debug("Connecting to: %s", url)
        sock.connect(url)
        return sock


def _size(output) -> int:
    if output.get("output_type") == "stream":
        return len(output.get("text", ""))
    if output.get("output_type") == "error":
        return len(output.get("evalue", "")) + sum(len(line) for line in output.get("traceback", []))
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in output.get("data", {}).values())


def _is_record(output) -> bool:
    return output.get("output_type") == "display_data" and MIME in output.get("data", {})


class SandboxedExecute(Execute):
    """Execute a submission in the sandbox, within its limits, recording its test cells."""

    kernel_manager_class = Type(SandboxKernelManager, config=True,
                                help="The kernel manager: the sandboxed one (the default) or a subclass.")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources=None, km=None):
        check_sandbox()
        self.limits = Sandbox(parent=self)
        info = (resources or {}).get("nbgrader", {})
        self.lesson = None
        path = source_notebook(self.config, info.get("assignment", ""), info.get("notebook", "")) if info else None
        if path is not None and path.exists():
            self.lesson = Lesson.from_path(path)
        self._course = Path(path).parents[2] if path is not None else None
        self._deadline = time.monotonic() + self.limits.notebook_timeout
        self._stopped: str | None = None
        self._output_bytes = self._record_bytes = 0
        self._cut_note = False
        warm = None
        if km is None and POOL_READY() and _only_notebooks((resources or {}).get("metadata", {}).get("path")):
            warm = km = warm_pool().take()
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if warm is not None:
                shutdown_kernel(warm)

    # --- the kernel ----------------------------------------------------------------------
    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.client_class = f"{SandboxKernelClient.__module__}.{SandboxKernelClient.__qualname__}"
        SandboxKernelClient.max_message = self.limits.bytes("record") + 16 * 1024 ** 2
        if isinstance(km, SandboxKernelManager):
            km.protect = [str(self._course)] if self._course else []
        return km

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        if isinstance(self.km, SandboxKernelManager):
            self.km.seal()
        return kc

    # --- limits ----------------------------------------------------------------------------
    def _get_timeout(self, cell):
        per_cell = super()._get_timeout(cell)
        left = max(1, int(self._deadline - time.monotonic()))
        return left if per_cell is None else min(per_cell, left)

    def output(self, outs, msg, display_id, cell_index):
        out = super().output(outs, msg, display_id, cell_index)
        if out is None or not outs or outs[-1] is not out:
            return out
        size = _size(out)
        if _is_record(out):
            self._record_bytes += size
            if self._record_bytes > self.limits.bytes("record"):
                outs.pop()
                outs.append(new_output("stream", name="stdout", text=(
                    f"[test record dropped: the notebook's records passed {self.limits.record}]\n")))
            return out
        self._output_bytes += size
        if self._output_bytes > self.limits.bytes("output"):
            outs.pop()
            if not self._cut_note:
                self._cut_note = True
                outs.append(new_output("stream", name="stdout", text=(
                    f"\n[output cut: the notebook printed more than {self.limits.output}; later output is "
                    f"dropped]\n")))
        return out

    # --- cells ------------------------------------------------------------------------------
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if self._stopped is None and time.monotonic() >= self._deadline:
            self._stop(f"the notebook's time limit of {self.limits.notebook_timeout} s was reached")
        if self._stopped is not None:
            if cell.source.strip():
                cell.outputs = [new_output("error", ename=NOT_RUN, evalue=f"not run: {self._stopped}",
                                           traceback=[f"{NOT_RUN}: not run: {self._stopped}"])]
            return cell, resources
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        test = self.lesson is not None and grade_id in self.lesson.tests and \
            cell.metadata.get("nbgrader", {}).get("grade") and not cell.metadata.get("nbgrader", {}).get("solution")
        original = cell.source
        if test:
            cell.source = self.lesson.kernel_code(grade_id, self.limits.bytes("record"))
        try:
            return super().preprocess_cell(cell, resources, index)
        except CellTimeoutError:
            self._stop("a cell ran past its time limit and did not stop when interrupted")
            cell.outputs.append(new_output("error", ename="CellTimeoutError", evalue=self._stopped,
                                           traceback=[f"CellTimeoutError: {self._stopped}"]))
            return cell, resources
        except DeadKernelError:
            self._stop("the kernel died (out of memory, too many processes, or killed)")
            cell.outputs.append(new_output("error", ename="DeadKernelError", evalue=self._stopped,
                                           traceback=[f"DeadKernelError: {self._stopped}"]))
            return cell, resources
        finally:
            cell.source = original

    def _stop(self, why: str) -> None:
        self._stopped = why
        self.log.warning("Stopping the notebook: %s", why)
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()                                 # the sandbox goes down with it (--die-with-parent)
            process.wait()


def POOL_READY() -> bool:
    from grader.sandbox import warm
    return warm.POOL is not None


def warm_pool():
    from grader.sandbox import warm
    return warm.POOL


def shutdown_kernel(km) -> None:
    from grader.sandbox.warm import _shutdown
    _shutdown(km)


def _only_notebooks(path) -> bool:
    """A warm kernel's working folder is empty: it fits a lesson that brings no files of its own."""
    if not path:
        return True
    folder = Path(path)
    return not folder.is_dir() or all(p.suffix == ".ipynb" for p in folder.iterdir() if p.is_file())


_checked: set[str] = set()


def check_sandbox() -> None:
    """Once per process: bubblewrap can confine a kernel here (else a clear error, nothing graded)."""
    import os
    key = os.environ.get("GRADER_SANDBOX_PATH", "")
    if key not in _checked:
        check()
        _checked.add(key)
