"""Where a lesson is running: in a student's JupyterLab, or being graded.

nbgrader sets ``NBGRADER_EXECUTION`` while it autogrades (or validates) a notebook, and the
grading sandbox passes it on to the kernel. Demonstrations that train or sweep for a while
run a small version then: the grade never depends on them, and a class is graded in minutes.
A student running the notebook sees the full demonstrations.

    >>> from grader.context import GRADING
    >>> EPOCHS = 10 if not GRADING else 1
"""

from __future__ import annotations

import os

#: True while nbgrader grades (or validates) the notebook
GRADING = os.environ.get("NBGRADER_EXECUTION") in ("autograde", "validate")


def full_or_small(full, small):
    """``full`` when a person runs the notebook, ``small`` while it is graded."""
    return small if GRADING else full
