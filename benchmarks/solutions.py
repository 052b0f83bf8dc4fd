"""The course's own solution functions, taken from the solution notebooks in source/.

The benchmark times what students write, not a re-implementation: it runs a lesson's setup
cell and the solution cells it is asked for in a fresh namespace and hands back the functions.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def load(lesson: str, grade_ids: list[str], root: Path = ROOT) -> dict:
    """Namespace after running ``lesson``'s setup cell and its solution cells ``grade_ids``, in order."""
    nb = nbformat.read(root / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    missing = [g for g in ["setup", *grade_ids] if g not in by_id]
    if missing:
        raise KeyError(f"{lesson} has no cell(s) {missing}")
    namespace: dict = {"__name__": f"solutions_{lesson}"}
    for grade_id in ["setup", *grade_ids]:
        exec(compile(by_id[grade_id].source, f"{lesson}:{grade_id}", "exec"), namespace)
    return namespace


def solution_cells(lesson: str, root: Path = ROOT) -> list[str]:
    """grade_ids of a lesson's solution cells, in notebook order."""
    nb = nbformat.read(root / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")]
