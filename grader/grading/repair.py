"""Undo structural damage to a submission that would make nbgrader mis-grade it or crash."""

from __future__ import annotations

import json

import nbformat

from grader.build import is_written


def repair(submitted: nbformat.NotebookNode, source: nbformat.NotebookNode) -> list[str]:
    """Undo structural damage that would make nbgrader mis-grade or crash, in place; returns what was done.

    * a grade_id used twice: later copies lose their nbgrader role (they still run as plain cells);
    * a test cell the student deleted: put back, from the source, after the cell that precedes it
      there (nbgrader would add it only as a comment, and the student would lose its points
      without the test ever running);
    * a written answer the student deleted: put back as released (``YOUR ANSWER HERE``), so that
      nbgrader scores it 0, "No response.", instead of leaving a person an answer to grade that
      is not there (the rubric of the source never goes in).
    Edited test cells and changed cell types are restored by nbgrader itself from the gradebook.
    """
    done = []
    seen = set()
    for cell in submitted.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            continue
        if grade_id in seen:
            del cell.metadata["nbgrader"]
            done.append(f"a second cell claimed grade_id {grade_id!r}; it was kept as a plain cell")
        seen.add(grade_id)
    order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in source.cells]
    for index, cell in enumerate(source.cells):
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade") or meta["grade_id"] in seen:
            continue
        if meta.get("solution"):
            if not is_written(cell):
                continue
            cell = _unanswered(cell)
        previous = [g for g in order[:index] if g in seen]
        position = 0
        if previous:
            position = 1 + next(i for i, c in enumerate(submitted.cells)
                                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == previous[-1])
        submitted.cells.insert(position, nbformat.from_dict(json.loads(json.dumps(cell))))
        seen.add(meta["grade_id"])
        done.append(f"{'written answer' if is_written(cell) else 'test cell'} {meta['grade_id']!r} was missing "
                    f"and was put back" + (" unanswered" if is_written(cell) else ""))
    return done


def _unanswered(cell) -> nbformat.NotebookNode:
    """A written answer cell of the source as released (nbgrader's ClearSolutions): no rubric, no answer."""
    from nbgrader.preprocessors import ClearSolutions

    cell = nbformat.from_dict(json.loads(json.dumps(cell)))
    ClearSolutions().preprocess_cell(cell, {"language": "python"}, 0)
    return cell
