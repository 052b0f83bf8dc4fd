"""Kernels started ahead of need: the next notebook's sandboxed kernel boots while this one is graded.

A grading kernel spends about two seconds before the first cell runs: bubblewrap, Python,
ipykernel, then ``import torch`` and matplotlib in the lesson's first cell. A worker of a
class run (:mod:`grader.grading.worker`) knows another notebook is coming, so it keeps one
kernel warm: started in a background thread, in the same sandbox with the same limits as any
other, with those modules imported (silently, outside the notebook's history), and sealed.
:class:`grader.sandbox.execute.SandboxedExecute` takes it if there is one and it fits, and
starts its own otherwise (plain ``nbgrader autograde`` always does).

A warm kernel has run no student code: it is a fresh kernel that has imported the
course's modules, as the first cell of every lesson does.
"""

from __future__ import annotations

import asyncio
import threading

from grader.sandbox.kernel import SandboxKernelManager

PRELOAD = ("import torch, torch.nn, torch.nn.functional, torch.optim, matplotlib.pyplot, ipywidgets\n"
           "import grader.checks, grader.reference, grader.tripwire, grader.data, grader.judge.record\n")


class WarmKernels:
    """One kernel kept warm for the next notebook (per worker process).

    Kernels are started by one long-lived thread of their own: bubblewrap's ``--die-with-parent``
    follows the *thread* that started the sandbox, so that thread must outlive its kernels.
    """

    def __init__(self, config, home_root: str = "", preload: str = PRELOAD, startup_timeout: int = 120):
        self.config, self.preload, self.startup_timeout = config, preload, startup_timeout
        self.home_root = home_root                       # where the kernels' socket folders go (must outlive jobs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="warm-kernels", daemon=True)
        self._thread.start()
        self._next = None                                # a concurrent.futures.Future of a kernel manager

    def prepare(self) -> None:
        """Start warming the next kernel in the background (nothing if one is on its way)."""
        if self._next is None:
            self._next = asyncio.run_coroutine_threadsafe(self._start(), self._loop)

    async def _start(self) -> SandboxKernelManager:
        km = SandboxKernelManager(config=self.config, kernel_name="python3", home_root=self.home_root)
        km.extra_env = {**km.extra_env, "NBGRADER_EXECUTION": "autograde"}
        await km.start_kernel(extra_arguments=["--HistoryManager.hist_file=:memory:"])
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=self.startup_timeout)
            msg_id = kc.execute(self.preload, silent=True, store_history=False)
            while True:
                reply = await kc.get_shell_msg(timeout=self.startup_timeout)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
        finally:
            kc.stop_channels()
        km.seal()
        return km

    def take(self, timeout: float = 60) -> SandboxKernelManager | None:
        """The warm kernel (waiting for it if it is on its way), or None; the next one starts warming."""
        future, self._next = self._next, None
        km = None
        if future is not None:
            try:
                km = future.result(timeout)
            except Exception:                            # noqa: BLE001 - the notebook starts its own kernel
                km = None
        self.prepare()
        return km if km is not None and km.has_kernel else None

    def close(self) -> None:
        future, self._next = self._next, None
        if future is not None:
            try:
                _shutdown(future.result(60))
            except Exception:                            # noqa: BLE001
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)


def _shutdown(km: SandboxKernelManager) -> None:
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
    try:
        asyncio.run(km.cleanup_resources())
    except Exception:                                    # noqa: BLE001 - best effort, the folder is temporary
        pass


#: the warm kernels of this process (set by a class run's worker; None: every notebook starts its own)
POOL: WarmKernels | None = None
