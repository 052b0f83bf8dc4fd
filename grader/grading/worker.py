"""One submission, graded in a scratch course of its own by a worker process.

The scratch course holds copies of the lesson's ``source/`` folder, the submission and a
gradebook that defines the lesson, nothing else. nbgrader autogrades it there: the kernel
in the sandbox, every test cell judged in this process (``nbgrader_config.py``). The review
scan then reads the submission's code, under a time limit of its own.

What comes back is plain data: whether grading finished, the log's tail, the scan's findings.
The autograded notebook stays in the scratch course, from where the parent records it. :func:`serve` is the loop of a worker process of
:mod:`grader.grading.classrun`; :func:`run` grades one prepared scratch course.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from grader.build import nbgrader_api
from grader.grading.repair import repair

#: seconds the review scan may take for one notebook, and the largest notebook it reads (bytes)
SCAN_TIMEOUT = 60
MAX_SCANNED = 20 * 1024 ** 2


def prepare(course: Path, lesson: str, student: str, template_db: Path, scratch: Path) -> list[str]:
    """Fill ``scratch`` with what grading one submission needs; returns the repairs made to the notebook."""
    course = Path(course)
    shutil.copytree(course / "source" / lesson, scratch / "source" / lesson)
    shutil.copytree(course / "submitted" / student / lesson, scratch / "submitted" / student / lesson,
                    symlinks=True, ignore_dangling_symlinks=True)
    shutil.copyfile(template_db, scratch / "gradebook.db")
    if (course / "nbgrader_config.py").is_file():       # the course's own settings (an instructor's folder on the hub)
        shutil.copyfile(course / "nbgrader_config.py", scratch / "nbgrader_config.py")
    (scratch / "tmp").mkdir()
    notebook = scratch / "submitted" / student / lesson / f"{lesson}.ipynb"
    submitted = nbformat.read(notebook, as_version=4)
    repairs = repair(submitted, nbformat.read(course / "source" / lesson / f"{lesson}.ipynb", as_version=4))
    if repairs:
        nbformat.write(submitted, notebook)
    return repairs


def run(job: dict) -> dict:
    """Grade the prepared scratch course ``job["scratch"]``; never raises."""
    started = time.perf_counter()
    scratch, lesson, student = Path(job["scratch"]), job["lesson"], job["student"]
    result = {"ok": False, "log": "", "findings": [], "seconds": 0.0}
    previous = tempfile.tempdir
    tempfile.tempdir = str(scratch / "tmp")         # the judge's temporary files go with the scratch course
    try:
        api = nbgrader_api(scratch, **job.get("overrides", {}))
        _warm_kernels(api.config, job.get("overrides", {}), job.get("kernels_dir", ""))
        outcome = api.autograde(lesson, student, force=True, create=True)
        graded = scratch / "autograded" / student / lesson / f"{lesson}.ipynb"
        result["ok"] = bool(outcome.get("success")) and graded.exists()
        result["log"] = (outcome.get("log") or "")[-6000:] + str(outcome.get("error") or "")[-2000:]
    except BaseException as err:                     # noqa: B902 - reported, the class run goes on
        result["log"] = f"{type(err).__name__}: {err}"
    finally:
        tempfile.tempdir = previous
    result["findings"] = scan(scratch, lesson, student)
    result["seconds"] = time.perf_counter() - started
    return result


def scan(scratch: Path, lesson: str, student: str) -> list[str]:
    """The review scan of the submission, under a time limit; anything that goes wrong in it is a finding."""
    import signal

    from grader.scan import scan_notebook

    def out_of_time(signum, frame):
        raise TimeoutError(f"the review scan did not finish within {SCAN_TIMEOUT} s")

    notebook = scratch / "submitted" / student / lesson / f"{lesson}.ipynb"
    if notebook.stat().st_size > MAX_SCANNED:
        return [f"the notebook is {notebook.stat().st_size:,} bytes, too large for the review scan to read"]
    main = threading_is_main()
    previous = signal.signal(signal.SIGALRM, out_of_time) if main else None
    if main:
        signal.alarm(SCAN_TIMEOUT)
    try:
        source = nbformat.read(scratch / "source" / lesson / f"{lesson}.ipynb", as_version=4)
        return [str(f) for f in scan_notebook(source, nbformat.read(notebook, as_version=4))]
    except BaseException as err:                     # noqa: B902 - a scan that fails is itself a finding
        return [f"the review scan could not read this notebook ({type(err).__name__}: {str(err)[:200]})"]
    finally:
        if main:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


def threading_is_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


_warm_key: list = [None]


def _warm_kernels(config, overrides: dict, kernels_dir: str) -> None:
    """Keep a kernel warm for the next notebook of this worker (same limits as this one).

    Its socket folder lives in ``kernels_dir`` (the class run's, removed at its end), not in the scratch
    course of the job at hand, which is removed when that job is done.
    """
    import json

    from grader.sandbox import warm
    if not kernels_dir:
        return
    key = json.dumps(overrides, sort_keys=True, default=str) + kernels_dir
    if warm.POOL is None or _warm_key[0] != key:
        if warm.POOL is not None:
            warm.POOL.close()
        Path(kernels_dir).mkdir(parents=True, exist_ok=True)
        warm.POOL = warm.WarmKernels(config, home_root=kernels_dir)
        warm.POOL.prepare()
        _warm_key[0] = key


def serve(conn) -> None:
    """A worker process: grade each job received on ``conn`` and send back its result, until None."""
    import warnings

    from grader.sandbox import warm
    warnings.filterwarnings("ignore")
    try:
        while True:
            try:
                job = conn.recv()
            except EOFError:
                return
            if job is None:
                return
            conn.send(run(job))
    finally:
        if warm.POOL is not None:
            warm.POOL.close()
