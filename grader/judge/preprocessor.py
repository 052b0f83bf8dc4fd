"""The judge in nbgrader's autograde pipeline: every test cell's points come from here.

:class:`JudgeTests` runs right after :class:`grader.sandbox.execute.SandboxedExecute`. For each
test cell of the lesson it takes the record the kernel published, runs the test again in
this process against it (:func:`grader.judge.replay.judge_test`) and sets the cell's outputs
so that nbgrader's own ``SaveAutoGrades`` gives exactly the verdict:

* the record is removed from the outputs (it is bulky, and it is the kernel's word);
* outputs that nbgrader would read as a score are neutralised: an ``execute_result`` (a
  partial score) becomes a plain display, a ``stderr`` stream becomes ``stdout``;
* a failing verdict adds an error output with the judge's message; an error the kernel
  showed stays (a test cell whose code raised gets no points, whatever else it printed);
* the verdict goes to the cell's ``metadata.judge`` (``passed``, ``message``), which the
  feedback shows instead of anything the kernel printed.

Any ``metadata.judge`` or record that a submission brought along is removed first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor

from grader.judge.lesson import Lesson, is_test, source_notebook
from grader.judge.replay import judge_test
from grader.judge.wire import MIME

FAILED = "TestFailed"


def _kernel_error(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
    return None


class JudgeTests(NbGraderPreprocessor):
    """Decide every test cell from the kernel's record, in this (trusted) process."""

    def preprocess(self, nb, resources):
        started = time.perf_counter()
        info = resources.get("nbgrader", {})
        path = source_notebook(self.config, info.get("assignment", ""), info.get("notebook", ""))
        lesson = Lesson.from_path(path) if Path(path).exists() else None
        for cell in nb.cells:
            cell.get("metadata", {}).pop("judge", None)
            if cell.cell_type != "code":
                continue
            records = [o for o in cell.get("outputs", []) if o.get("output_type") == "display_data"
                       and MIME in o.get("data", {})]
            cell.outputs = [o for o in cell.get("outputs", []) if o not in records]
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if lesson is None or not is_test(cell) or grade_id not in lesson.tests:
                continue
            record = records[0]["data"][MIME] if len(records) == 1 else None
            keep = os.environ.get("GRADER_RECORD_DIR")        # for maintainers: keep the records to replay them
            if keep and isinstance(record, str):
                Path(keep).mkdir(parents=True, exist_ok=True)
                (Path(keep) / f"{info.get('student', 'student')}-{grade_id}.json").write_text(record)
            if len(records) > 1:
                verdict_passed, message = False, "more than one record came back for this test"
            else:
                verdict = judge_test(lesson.tests[grade_id], lesson.setup, lesson.helpers, lesson.students,
                                     record if isinstance(record, str) else None, lesson.scrub, grade_id)
                verdict_passed, message = verdict.passed, lesson.scrub(verdict.message)
            for out in cell.outputs:
                if out.get("output_type") == "execute_result":
                    out["output_type"] = "display_data"
                    out.pop("execution_count", None)
                elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                    out["name"] = "stdout"
            kernel_error = _kernel_error(cell)
            if not verdict_passed:
                cell.outputs.append(new_output("error", ename=FAILED, evalue=message,
                                               traceback=[f"{FAILED}: {message}"]))
            elif kernel_error:
                message = lesson.scrub(f"the test raised in the notebook: {kernel_error[:2000]}")
            cell.metadata["judge"] = {"passed": bool(verdict_passed and not kernel_error), "message": message}
        self.log.info("Judged the test cells of %s in %.2f s", info.get("notebook"), time.perf_counter() - started)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):          # pragma: no cover - preprocess does it all
        return cell, resources
