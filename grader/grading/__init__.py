"""Grading with nbgrader: sandboxed kernels, trusted verdicts, a class in parallel, clean feedback.

The course folder follows nbgrader's layout (``source/``, ``release/``, ``submitted/``,
``autograded/``, ``feedback/``, ``gradebook.db``, ``nbgrader_config.py``). The course's
``nbgrader_config.py`` makes nbgrader itself run every kernel in the sandbox
(:mod:`grader.sandbox`) and decide every test cell in its own process (:mod:`grader.judge`),
so ``nbgrader autograde`` and the formgrader grade as ``course autograde`` does.

One room per job:

* :mod:`~grader.grading.course`: where things are; submissions, scores, review flags;
* :mod:`~grader.grading.repair`: structural damage to a submission undone before grading;
* :mod:`~grader.grading.worker`: one submission in a scratch course, in a worker process;
* :mod:`~grader.grading.classrun`: a class in parallel, each worker stoppable, the gradebook
  written by the parent only;
* :mod:`~grader.grading.cluster`: the same class graded by the workers of a Dask cluster;
* :mod:`~grader.grading.gradebook`: recording a graded (or ungradable) submission;
* :mod:`~grader.grading.feedback`: feedback that shows the judge's verdicts and nothing the
  kernel printed;
* :mod:`~grader.grading.written`: written answers, graded by a person in nbgrader's Formgrader,
  kept apart from the automatic points; :mod:`~grader.grading.report`: a class run's summary;
* :mod:`~grader.grading.export`: grades as CSV; :mod:`~grader.grading.check`: a student's own check.
"""

from grader.grading.check import check_notebook
from grader.grading.classrun import DEFAULT_TIMEOUT, Outcome, autograde_class, summary
from grader.grading.course import autograde, flags, pending, readable, scores, submit, to_grade, total
from grader.grading.export import export_csv
from grader.grading.feedback import HideHiddenTests, WrittenAnswers, generate_feedback, hide_hidden_tests
from grader.grading.repair import repair
from grader.grading.written import Standing, answers, standing

__all__ = ["DEFAULT_TIMEOUT", "HideHiddenTests", "Outcome", "Standing", "WrittenAnswers", "answers", "autograde",
           "autograde_class", "check_notebook", "export_csv", "flags", "generate_feedback", "hide_hidden_tests",
           "pending", "readable", "repair", "scores", "standing", "submit", "summary", "to_grade", "total"]
