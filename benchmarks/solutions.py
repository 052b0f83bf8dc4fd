"""The course's own solution functions, taken from the solution notebooks in source/.

The benchmark times what students write, not a re-implementation: it runs a lesson's setup
cell and the solution cells it is asked for in a fresh namespace and hands back the functions.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def load(lesson: str, grade_ids: list[str], root: Path = ROOT) -> dict:
    """Namespace after running, in notebook order, ``lesson``'s locked code cells (setup and the
    given helpers the solutions call) and its solution cells ``grade_ids``."""
    nb = nbformat.read(root / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    cells = [(c.metadata.get("nbgrader", {}), c) for c in nb.cells if c.cell_type == "code"]
    missing = set(grade_ids) - {m.get("grade_id") for m, _ in cells}
    if missing:
        raise KeyError(f"{lesson} has no cell(s) {sorted(missing)}")
    namespace: dict = {"__name__": f"solutions_{lesson}"}
    for meta, cell in cells:
        wanted = meta.get("grade_id") in grade_ids or (meta.get("locked") and not meta.get("grade"))
        if wanted:
            exec(compile(cell.source, f"{lesson}:{meta['grade_id']}", "exec"), namespace)
    return namespace


def solution_cells(lesson: str, root: Path = ROOT) -> list[str]:
    """grade_ids of a lesson's solution cells, in notebook order."""
    nb = nbformat.read(root / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")]
