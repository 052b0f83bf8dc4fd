"""The sandbox around every grading kernel, and its limits.

A submission's code runs in an IPython kernel that nbgrader's ``Execute`` step starts.
This package starts that kernel inside bubblewrap (``bwrap``), where it sees its own
scratch folder (read-write, size-limited), the Python environment, the ``grader``
package and the data (read-only), a private ``/tmp``, and nothing else; it runs as an
unprivileged user of its own, with no network (loopback included), in a PID namespace
of its own (nothing it starts outlives it), under limits on memory, processes, disk,
output and time. The kernel talks to the grader over Unix sockets in a folder that is
sealed once the kernel is up.

* :class:`Sandbox`: the limits, configurable in ``nbgrader_config.py`` (``c.Sandbox.memory
  = "4G"``) or by ``course autograde`` options;
* :mod:`grader.sandbox.bwrap`: the bubblewrap command line;
* :mod:`grader.sandbox.kernel`: the jupyter_client kernel manager that uses it;
* :mod:`grader.sandbox.execute`: nbgrader's ``Execute`` step with the per-notebook time
  limit, the output budget, and the recording of test cells for the judge.
"""

from __future__ import annotations

import re

from traitlets import Integer, Unicode, validate
from traitlets.config import Configurable

_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def parse_size(text: str | int) -> int:
    """Bytes in ``"4G"``, ``"512M"``, ``"100k"`` or a plain number of bytes."""
    if isinstance(text, int):
        if text <= 0:
            raise ValueError(f"a size must be positive, got {text}")
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size: expected a number of bytes or a number with K, M, G or T "
                         f"(for example 4G or 512M)")
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size <= 0:
        raise ValueError(f"a size must be positive, got {text!r}")
    return size


class Sandbox(Configurable):
    """Limits of one grading kernel. Each is per notebook being graded."""

    memory = Unicode("4G", help="Address space of the kernel (RLIMIT_AS), e.g. 4G.").tag(config=True)
    processes = Integer(256, help="Processes and threads the kernel's user may have (RLIMIT_NPROC).").tag(config=True)
    disk = Unicode("512M", help="Size of the kernel's writable home, working folder and /tmp included.").tag(config=True)
    output = Unicode("8M", help="Bytes of output the notebook may produce; later output is dropped.").tag(config=True)
    record = Unicode("256M", help="Bytes of test records the notebook may hand to the judge.").tag(config=True)
    notebook_timeout = Integer(1200, help="Seconds the whole notebook may run; cells after that are not run.").tag(
        config=True)
    open_files = Integer(1024, help="Open files of the kernel (RLIMIT_NOFILE).").tag(config=True)

    @validate("memory", "disk", "output", "record")
    def _valid_size(self, proposal):
        parse_size(proposal["value"])
        return proposal["value"]

    @validate("processes", "notebook_timeout", "open_files")
    def _positive(self, proposal):
        if proposal["value"] <= 0:
            raise ValueError(f"{proposal['trait'].name} must be positive, got {proposal['value']}")
        return proposal["value"]

    def bytes(self, name: str) -> int:
        return parse_size(getattr(self, name))

    def describe(self) -> str:
        return (f"memory {self.memory}, {self.processes} processes, disk {self.disk}, output {self.output}, "
                f"records {self.record}, {self.notebook_timeout} s per notebook, no network")
