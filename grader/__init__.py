"""The course's own package: checks, tripwires, PyTorch references, MNIST loader, widgets,
the notebooks/ -> source/ -> release/ build, class grading, and the ``course`` command line."""

__version__ = "1.0.0"
