"""The students' distribution (``course kit``): what a student off the hub downloads.

The instructor's repository holds ``notebooks/`` and ``source/``: every solution and hidden
test. The kit holds only what a student needs: the release notebooks (``lessons/``), the course
package the lessons import (``grader/``, which has no solution), the MNIST files, the
environment files and a README whose two commands install it and open lesson 01. It is
written as a folder and a ``.tar.gz``; before either is written, every file is searched for
every guarded line of ``source/`` (solution and hidden-test blocks), and a kit that would leak
one is refused.
"""

from __future__ import annotations

import re
import shutil
import tarfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
NAME = "nn-by-hand-student"
#: the solution and hidden-test blocks of a source notebook
GUARDS = (("### BEGIN SOLUTION", "### END SOLUTION"), ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))
#: guarded lines shorter than this are too generic to be a secret (``return out``, ``)``)
MIN_SECRET = 26

README = """# Neural networks by hand: the student's kit

Ten notebooks in which you build a neural network's training pipeline by hand in PyTorch and
check every number against PyTorch itself. This is the students' distribution: the lessons as
released, the `grader` package they import, the MNIST data. No solutions, no hidden tests.

With Python 3.11 (on Linux or macOS; on Windows use WSL), from this folder:

```
python3.11 -m venv .venv && .venv/bin/pip install -e .
.venv/bin/jupyter lab lessons/01_tensors/01_tensors.ipynb
```

The first command installs PyTorch 2.13, JupyterLab and nbgrader's panels (a few minutes).
The second opens lesson 01. From lesson 04 on, a lesson starts with a toolbox: the earlier
lessons' functions, written out, so that each lesson stands on its own. Work through `lessons/01_tensors` to `lessons/10_nn` in order.
Before you hand a lesson in, `.venv/bin/course check lessons/03_loss/03_loss.ipynb` runs it
and lists which visible tests pass; hidden tests run only when your instructor grades it.
Hand in what your instructor asks for (the `.ipynb` file of the lesson, unrenamed).

With conda instead: `conda env create -f environment.yml && conda activate nn-by-hand`.
"""


class KitLeak(RuntimeError):
    """A kit file contains a guarded line of ``source/``: the kit is not written."""


def _blocks(text: str, begin: str, end: str) -> list[str]:
    return re.findall(rf"{re.escape(begin)}\n(.*?){re.escape(end)}", text, flags=re.S)


#: guarded lines that the course package holds too, and why that is accepted: generic lines of
#: test code, and PyTorch's own versions (``grader.reference``) that later lessons call in place of
#: the student's earlier answers, where those are one line of PyTorch
PUBLIC_LINES = {
    "g = torch.Generator().manual_seed(seed)": "generic: how every seeded input is made",
    "p = start.clone().requires_grad_(True)": "generic: a fresh leaf to optimise",
    "return sum(p.numel() for p in params)": "reference.count_params: lesson 01's warm-up is this one line",
    "return sum(p.numel() * p.element_size() for p in params)": "reference.param_bytes: as count_params",
    "return logits.argmax(dim=1)": "reference.predict: lesson 02's one-line predict",
    "for k in range(0, len(params), 2):": "generic: the (weight, bias) pairs of a parameter list",
    "losses.append(loss.item())": "reference.train_losses: torch.optim's loop, the side lesson 08 compares with",
    "loss = F.cross_entropy(model(xb), yb)": "reference.train_losses: as above",
    "model[0].weight.copy_(W1.t())": "reference.mlp_model: nn.Linear holds [out, in]; lesson 08's point",
    "model[2].weight.copy_(W2.t())": "reference.mlp_model: as above",
}


def guarded_lines(source_notebook: Path) -> tuple[dict[str, str], set[str]]:
    """A source notebook's distinctive guarded lines (stripped, at least ``MIN_SECRET`` characters)
    with their kind (``"solution"`` or ``"hidden test"``), and its lines outside any guarded block."""
    nb = nbformat.read(source_notebook, as_version=4)
    secret, public = {}, set()
    for cell in nb.cells:
        text = cell.source
        for (begin, end), kind in zip(GUARDS, ("solution", "hidden test")):
            for block in _blocks(cell.source, begin, end):
                for line in block.splitlines():
                    if len(line.strip()) >= MIN_SECRET:
                        secret.setdefault(line.strip(), kind)
                text = text.replace(block, "")
        public |= {line.strip() for line in text.splitlines()}
    return secret, public


def course_secrets(repo: Path = REPO) -> dict[str, tuple[str, str]]:
    """Every guarded line of every lesson's source, ``{line: (lesson, kind)}``, less the lines some
    lesson writes in the open (outside its guarded blocks): those are public by the author's choice."""
    found, public = {}, set()
    for source in sorted((repo / "source").glob("*/*.ipynb")):
        secret, seen = guarded_lines(source)
        public |= seen
        for line, kind in secret.items():
            found.setdefault(line, (source.parent.name, kind))
    return {line: where for line, where in found.items() if line not in public}


def _allowed(relative: Path, line: str, lesson: str, kind: str) -> bool:
    if line in PUBLIC_LINES:
        return True
    # another lesson's release hands the line out (lesson 04 on start with a toolbox of the earlier
    # lessons' functions, which lesson 10 asks for again as modules); never a hidden test
    return kind == "solution" and relative.parts[0] == "lessons" and relative.parts[1] != lesson


def leaks(folder: Path, secrets: dict[str, tuple[str, str]]) -> list[str]:
    """``path: lesson kind: line`` for each guarded line found in a file under ``folder``, except
    those :data:`PUBLIC_LINES` accepts and solution lines another lesson's release hands out."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix in (".gz", ".pyc"):
            continue
        text = path.read_text(errors="replace")
        lines = {line.strip() for line in text.splitlines()}
        if path.suffix == ".ipynb":               # a notebook's lines are JSON strings: compare its cells
            lines = {line.strip() for cell in nbformat.reads(text, as_version=4).cells
                     for line in cell.source.splitlines()}
        relative = path.relative_to(folder)
        found += [f"{relative}: {secrets[line][0]} {secrets[line][1]}: {line}" for line in sorted(lines & secrets.keys())
                  if not _allowed(relative, line, *secrets[line])]
    return found


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", ".ipynb_checkpoints") or n.endswith((".pyc", ".pt"))
            or n == "mnist_mlp.html"}


def write_kit(out: Path, repo: Path = REPO) -> tuple[Path, Path]:
    """Write ``<out>/nn-by-hand-student/`` and ``<out>/nn-by-hand-student.tar.gz``.

    Raises :class:`KitLeak` (and removes the half-written folder) when any file would contain a
    guarded line of ``source/``.
    """
    out = Path(out).resolve()
    kit = out / NAME
    if kit.exists():
        shutil.rmtree(kit)
    kit.mkdir(parents=True)
    try:
        shutil.copytree(repo / "release", kit / "lessons", ignore=_ignore)
        shutil.copytree(repo / "grader", kit / "grader", ignore=_ignore)
        shutil.copytree(repo / "data" / "mnist", kit / "data" / "mnist", ignore=_ignore)
        for name in ("pyproject.toml", "environment.yml"):
            shutil.copyfile(repo / name, kit / name)
        (kit / "README.md").write_text(README)
        found = leaks(kit, course_secrets(repo))
        if found:
            raise KitLeak(f"the kit would contain {len(found)} guarded line(s) of source/; nothing written:\n  "
                          + "\n  ".join(found[:20]))
    except BaseException:
        shutil.rmtree(kit, ignore_errors=True)
        raise
    archive = out / f"{NAME}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(kit, arcname=NAME)
    return kit, archive
