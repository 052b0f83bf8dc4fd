"""Trusted verdicts: every point of a test cell is decided by a process that never ran student code.

A test cell is ordinary test code: it builds inputs, calls the student's functions, and
checks the results against PyTorch. When a notebook is graded, that code runs twice:

1. **in the student's kernel** (sandboxed, untrusted), where :mod:`grader.judge.record`
   runs it with the student's functions and classes behind recording proxies. Every
   interaction with student code (a call, an attribute, an operator, a callback the
   student invokes, a backward pass through the student's graph) is written to a record:
   what the test passed in, and what came back (plain values and tensors, as raw bytes
   with their dtype and shape) together with its effects (tensors changed in place,
   gradients, the random generator's state). The record leaves the kernel as an output
   of the cell;
2. **in the grader's own process** (trusted), where :mod:`grader.judge.replay` runs the
   same test code, from the lesson's source notebook, with the student's names bound to
   replaying proxies. The test regenerates its own inputs and computes PyTorch's answers
   itself; each interaction with the student is checked against the record (the same
   operation, the same inputs) and answered from it. The test's own checks then decide.

So the kernel is a black box that can only answer the calls the test makes: whatever a
submission does in its kernel (patching the checks, hooks on IPython, a lying tensor
method, a forged display), the points come from the values its code returned, compared
with PyTorch by code it cannot reach. :mod:`grader.judge.preprocessor` puts the verdicts
into nbgrader's autograde pipeline. What is left to the kernel: whether the library
shortcut of an exercise was called (:mod:`grader.tripwire` watches from inside), which a
submission can only hide by tampering with the interpreter, code that the review scan
(:mod:`grader.scan`) flags for an instructor.
"""
