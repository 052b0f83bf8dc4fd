"""nbgrader configuration of the course (https://nbgrader.readthedocs.io).

Run nbgrader from this folder (``course`` or ``make`` do it for you) so that this file is read.
"""

c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.course_id = "nn-by-hand"

# What students see in place of a solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grading: every kernel runs in the sandbox (grader.sandbox: bubblewrap, limits per notebook), and
# every test cell's points are decided by the judge in this process, from the record of what the
# student's code returned (grader.judge). Plain `nbgrader autograde` and the formgrader use this too.
from grader.judge.preprocessor import JudgeTests  # noqa: E402
from grader.sandbox.execute import SandboxedExecute  # noqa: E402
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,  # noqa: E402
                                    LimitOutput, SaveAutoGrades)

c.Autograde.autograde_preprocessors = [SandboxedExecute, JudgeTests, IgnorePattern, ClearMetadataPreprocessor,
                                       LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]

# The sandbox's limits, per notebook (see README, "What a submission can and cannot do during grading").
c.Sandbox.memory = "4G"              # address space of the kernel
c.Sandbox.processes = 256            # processes and threads
c.Sandbox.disk = "512M"              # its home, working folder and /tmp together
c.Sandbox.output = "8M"              # bytes of output; more is dropped
c.Sandbox.record = "256M"            # bytes of test records handed to the judge
c.Sandbox.notebook_timeout = 1200    # seconds for the whole notebook

# Grading: one cell may run at most this long, then it is interrupted and the run goes on.
# The longest solution cell (training on all of MNIST in 07) takes about a minute here.
c.Execute.timeout = 600
c.Execute.interrupt_on_timeout = True
# After a cell's reply, its last outputs may lag behind on a busy machine (several kernels
# grading at once). nbclient waits only 4 s for them by default and nbgrader then fails the
# whole notebook; wait longer rather than lose (or misgrade) a cell's output.
c.Execute.iopub_timeout = 120

# nbgrader gives a test cell zero for any stderr output. A library warning printed by
# correct code (a PyTorch UserWarning, say) must not cost points: drop such stderr.
# Failing tests raise, so they show as errors, which this does not touch.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"Warning"

# Huge outputs are cut, not stored whole.
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

# Feedback shows students which tests passed and each failure's message, never the hidden
# tests' code: their source is removed and their tracebacks reduced to the message.
# Written answers show the grade a person gave in the Formgrader, or that they wait for one.
from grader.grading import HideHiddenTests, WrittenAnswers  # noqa: E402
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, WrittenAnswers, HideHiddenTests, CSSHTMLHeaderPreprocessor]

# Files a solution run writes next to its notebook (trained weights, the exported web page)
# are not course material: never copy them into release/ or over a submission.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.pt", "mnist_mlp.html"]
