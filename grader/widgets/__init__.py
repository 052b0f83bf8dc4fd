"""The interactive demos of the lessons, one module per lesson plus the shared self-check quiz.

Each widget is a thin ipywidgets view over a plain function that tests call directly:
nothing here waits for a click, so a notebook runs the same under nbclient, nbgrader
and JupyterLab.
"""
