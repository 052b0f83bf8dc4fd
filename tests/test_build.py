"""The committed source/ and release/ are exactly what the build makes of notebooks/, and the
release leaks neither solutions nor hidden tests."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from conftest import ALL_LESSONS, LESSONS, ROOT
from grader import build as course_build
from grader.hub import kit


@pytest.mark.parametrize("kind", ["notebooks", "source", "release"])
@pytest.mark.parametrize("lesson", LESSONS)
def test_committed_build_is_in_sync(course, lesson, kind):
    """notebooks/ too: the build writes each cell's nbgrader metadata back in full, so that the
    jupytext pair opens in JupyterLab (it refuses a pair whose two files hold different cells)."""
    name = f"{lesson}.py" if kind == "notebooks" else f"{lesson}/{lesson}.ipynb"
    fresh = course / kind / name
    committed = ROOT / kind / name
    assert committed.exists(), f"{committed} is missing: run `make build` and commit it"
    assert committed.read_text() == fresh.read_text(), (
        f"{kind}/{name} differs from a fresh build of notebooks/{lesson}.py: run `make build` and commit")


def test_no_stray_built_lessons():
    for kind in ("source", "release"):
        built = sorted(p.name for p in (ROOT / kind).iterdir() if p.is_dir())
        assert built == ALL_LESSONS, f"{kind}/ holds {built}, but notebooks/ defines {ALL_LESSONS}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_release_leaks_no_solution_or_hidden_test(lesson):
    source = nbformat.read(ROOT / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    release = nbformat.read(ROOT / "release" / lesson / f"{lesson}.ipynb", as_version=4)
    released_code = "\n".join(c.source for c in release.cells)
    assert "BEGIN SOLUTION" not in released_code and "BEGIN HIDDEN TESTS" not in released_code
    # distinctive lines of the solution and hidden-test blocks, and the source's lines outside them
    # (public by design): the reader the students' kit is checked with too
    secret_lines, outside = kit.guarded_lines(ROOT / "source" / lesson / f"{lesson}.ipynb")
    public = {line.strip() for c in release.cells for line in c.source.splitlines()}
    leaked = sorted(secret_lines.keys() & public)
    leaked = [line for line in leaked if line not in outside]
    assert not leaked, f"release/{lesson} contains solution or hidden-test lines: {leaked[:5]}"
    assert "jupytext" not in release.metadata, "release notebooks must not be paired with notebooks/*.py"
    # written answers (graded by hand): the release shows nbgrader's stub, and no word of the rubric
    rubrics = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells if course_build.is_written(c)}
    released = {c.metadata["nbgrader"]["grade_id"]: c.source for c in release.cells if course_build.is_written(c)}
    assert released.keys() == rubrics.keys(), f"release/{lesson}: written answers {sorted(released)} != {sorted(rubrics)}"
    assert all(text == "YOUR ANSWER HERE" for text in released.values()), f"release/{lesson}: {released}"
    for grade_id, rubric in rubrics.items():
        phrases = {p.strip() for p in re.split(r"[.;:\n]", rubric) if len(p.strip()) > 25} - outside
        shown = [p for p in phrases if p in released_code]
        assert not shown, f"release/{lesson} shows the rubric of {grade_id}: {shown[:3]}"
        assert "Rubric" not in released_code and "Model answer" not in released_code, f"release/{lesson}"


def test_build_rejects_bad_cells(tmp_path):
    (tmp_path / "notebooks").mkdir()
    bad = {
        "a solution cell needs": '# %% nbgrader={"grade_id": "f", "solution": true}\ndef f(): pass\n',
        "is used twice": ('# %% nbgrader={"grade_id": "t", "grade": true, "points": 1}\nassert True\n'
                          '# %% nbgrader={"grade_id": "t", "grade": true, "points": 1}\nassert True\n'),
        "needs points": '# %% nbgrader={"grade_id": "t", "grade": true}\nassert True\n',
        "needs a grade_id": '# %% nbgrader={"grade": true, "points": 1}\nassert True\n',
        "no nbgrader cells": "# %%\nx = 1\n",
        # written answers, graded by hand
        "make it a markdown cell": ('# %% nbgrader={"grade_id": "written_a", "grade": true, "solution": true, '
                                    '"points": 2}\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n'),
        "must be a markdown cell": '# %% nbgrader={"grade_id": "written_a", "grade": true, "points": 2}\nx = 1\n',
        "it needs \"grade\": true": ('# %% [markdown] nbgrader={"grade_id": "written_a", "solution": true}\n'
                                      '# ### BEGIN SOLUTION\n# *Rubric:* all\n# ### END SOLUTION\n'),
        "starts with 'written_'": ('# %% [markdown] nbgrader={"grade_id": "essay", "grade": true, "solution": true, '
                                   '"points": 2}\n# ### BEGIN SOLUTION\n# *Rubric:* all\n# ### END SOLUTION\n'),
        "holds only its rubric": ('# %% [markdown] nbgrader={"grade_id": "written_a", "grade": true, "solution": true, '
                                  '"points": 2}\n# Why?\n'),
        "holds the rubric": ('# %% [markdown] nbgrader={"grade_id": "written_a", "grade": true, "solution": true, '
                             '"points": 2}\n# ### BEGIN SOLUTION\n# Because.\n# ### END SOLUTION\n'),
    }
    for i, (message, text) in enumerate(bad.items()):
        name = f"{i:02d}_bad"
        (tmp_path / "notebooks" / f"{name}.py").write_text(text)
        with pytest.raises(course_build.BuildError, match=message):
            course_build.build_source(name, root=tmp_path, out=tmp_path)


@pytest.mark.parametrize("newer", ["source", "notebooks"])
def test_jupyterlab_save_of_a_source_notebook_reaches_its_text_twin(course, tmp_path, newer):
    """What JupyterLab does through jupytext's contents manager, whichever file of the pair a
    checkout left newer: opening and saving either file changes neither; an edit of the source
    notebook reaches notebooks/<lesson>.py."""
    import asyncio
    import os

    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class

    lesson = LESSONS[0]
    files = {"source": Path("source") / lesson / f"{lesson}.ipynb", "notebooks": Path("notebooks") / f"{lesson}.py"}
    for kind, relative in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes((course / relative).read_bytes())
        stamp = 2_000_000_000 if kind == newer else 1_900_000_000
        os.utime(tmp_path / relative, (stamp, stamp))

    def contents() -> dict:
        """The pair as data: the notebook parsed (the server writes its own JSON layout), the text as is."""
        return {"source": nbformat.read(tmp_path / files["source"], as_version=4),
                "notebooks": (tmp_path / files["notebooks"]).read_text()}

    before = contents()
    manager = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(root_dir=str(tmp_path))

    async def open_and_save(relative: Path, edit: str = "") -> None:
        model = await manager.get(str(relative))
        model["content"]["cells"][0]["source"] += edit
        await manager.save(model, str(relative))

    for relative in files.values():
        asyncio.run(open_and_save(relative))
        assert contents() == before, f"opening and saving {relative} in JupyterLab changed the pair ({newer} newer)"
    asyncio.run(open_and_save(files["source"], "\n\nEdited in JupyterLab."))
    assert "Edited in JupyterLab." in (tmp_path / files["notebooks"]).read_text(), (
        "an edit saved in source/ did not reach notebooks/: check the jupytext pairing in grader/build.py")
