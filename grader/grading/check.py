"""A student's own check before submitting: run the notebook as it is and list the visible tests."""

from __future__ import annotations

from pathlib import Path

import nbformat

from grader.grading.feedback import ANSI


def check_notebook(path: Path, timeout: int = 600) -> list[tuple[str, float, bool, str]]:
    """Run a student's notebook as it is and report every test cell: (grade_id, points, passed, message).

    This is what a student runs before submitting; it sees only the visible tests (the hidden
    ones are not in the student's copy).
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(path).parent)}})
    client.execute()
    report = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        stderr = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        if errors:
            message = f"{errors[0].ename}: {ANSI.sub('', errors[0].evalue)}"
        elif stderr:
            message = "printed to stderr: " + stderr[0].text.strip()[:300]
        else:
            message = ""
        report.append((meta["grade_id"], float(meta.get("points", 0)), not (errors or stderr), message))
    return report
