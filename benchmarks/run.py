"""Benchmarks of the course, each measured side by side in one run (``make bench``).

    python -m benchmarks.run [--only throughput,accuracy,notebooks,grading,trust,gpu] [--repeats 3]
                             [--class-size 20] [--mixed 0] [--workers 1,2] [--dask-workers 2]
                             [--lessons 01_tensors,...]
                             [--out benchmarks/results.json]

Figures (median of the repeats, with min and max):
* throughput: one epoch of all of MNIST (batch 64, Adam) with the course's own solution
  functions (forward, loss, backward by hand, adam_step, get_batches) and with autograd for
  the backward, against nn.Sequential + F.cross_entropy + torch.optim.Adam; their ratio; the
  multiply-adds of an epoch and the achieved GFLOP/s;
* accuracy: the test accuracy of lesson 07's recipe and the wall time to reach it;
* notebooks: execution time of each solution notebook;
* grading: autograde time per notebook for one student (and in all), then a class of N students
  (default 20) with 1 local worker, with every core, and on 2 Dask workers on loopback (speed-ups);
  ``--mixed M`` makes M of them hand in half-done notebooks (every other solution cell left as
  released), which must earn part of the points;
* trust: what the sandbox and the judge cost: one student's solutions autograded by plain nbgrader
  and by the course's pipeline, alternately (median of the repeats per lesson);
* gpu: with CUDA, the same epoch with the data on the device, against the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmarks.solutions import ROOT, load, solution_cells
from grader.data import load_mnist
from grader.widgets.gpu import epoch_flops

BATCH, LR = 64, 1e-3


def stats(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def timed(fn, repeats: int) -> dict:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return stats(samples)


# --- throughput ------------------------------------------------------------------------------

def hand_epoch_fn(X, y, by_hand_backward: bool):
    """One epoch with the course's solution functions; the backward by hand (04) or by autograd."""
    fwd = load("02_forward", ["linear", "relu", "forward"])["forward"]
    ce = load("03_loss", ["softmax", "log_softmax", "cross_entropy"])["cross_entropy"]
    bwd = load("04_backward", ["cross_entropy_grad", "backward"])["backward"]
    opt = load("05_optimizers", ["zero_grad", "sgd_step", "momentum_step", "adam_step"])
    batches = load("06_batching", ["num_batches", "get_batches"])["get_batches"]
    init = load("01_tensors", ["init_params"])["init_params"]

    def epoch():
        params = list(init(seed=0))
        ms = [torch.zeros_like(p) for p in params]
        vs = [torch.zeros_like(p) for p in params]
        g = torch.Generator().manual_seed(0)
        for t, (xb, yb) in enumerate(batches(X, y, BATCH, generator=g), start=1):
            if by_hand_backward:
                grads = bwd(xb, yb, *[p.detach() for p in params])
                for p, gr in zip(params, grads):
                    p.grad = gr
            else:
                opt["zero_grad"](params)
                ce(fwd(xb, *params), yb).backward()
            opt["adam_step"](params, ms, vs, t, lr=LR)
        return params

    return epoch


def torch_epoch_fn(X, y, device="cpu"):
    X, y = X.to(device), y.to(device)

    def epoch():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0)).to(device)
        for i in range(0, len(X), BATCH):
            idx = perm[i:i + BATCH]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device != "cpu":
            torch.cuda.synchronize()
        return model

    return epoch


def throughput(repeats: int) -> dict:
    X, y = load_mnist("train")
    flops = epoch_flops(len(X), BATCH)                       # multiply-adds
    runs = {"hand (backward by hand)": hand_epoch_fn(X, y, True),
            "hand (autograd backward)": hand_epoch_fn(X, y, False),
            "torch.nn + torch.optim.Adam": torch_epoch_fn(X, y)}
    samples = {name: [] for name in runs}
    for _ in range(repeats):                                 # interleaved, so drift hits all alike
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    out = {"threads": torch.get_num_threads(), "epoch_multiply_adds": flops}
    base = statistics.median(samples["torch.nn + torch.optim.Adam"])
    for name, s in samples.items():
        out[name] = {**stats(s), "gflops": 2 * flops / statistics.median(s) / 1e9,
                     "ratio_to_torch": statistics.median(s) / base}
    return out


# --- accuracy --------------------------------------------------------------------------------

def accuracy() -> dict:
    """Lesson 07's recipe (its PHASES of epochs and learning rates), with its own train and evaluate."""
    import ast
    import re

    import nbformat

    ns = load("07_loop", solution_cells("07_loop"))
    nb = nbformat.read(ROOT / "source" / "07_loop" / "07_loop.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    phases = ast.literal_eval(re.search(r"^PHASES = (\[.*?\])", text, re.M).group(1))
    X, y = load_mnist("train")
    Xt, yt = load_mnist("test")
    params = list(ns["init_params"](seed=0))
    start = time.perf_counter()
    for phase, (epochs, lr) in enumerate(phases):
        ns["train"](params, X, y, Xt, yt, epochs, batch_size=BATCH, lr=lr, seed=phase)
    seconds = time.perf_counter() - start
    loss, acc = ns["evaluate"](params, Xt, yt)
    return {"phases": phases, "epochs": sum(e for e, _ in phases), "test_accuracy": acc, "test_loss": loss,
            "seconds": seconds}


# --- notebooks and grading -----------------------------------------------------------------------

def notebooks(lessons: list[str]) -> dict:
    from nbclient import NotebookClient
    import nbformat

    out = {}
    for lesson in lessons:
        path = ROOT / "source" / lesson / f"{lesson}.ipynb"
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
            out[lesson] = time.perf_counter() - start
    return out


def half_done(source: Path, release: Path) -> "nbformat.NotebookNode":
    """A student who wrote every other solution cell: the others are left as released (stubs)."""
    import nbformat

    nb, stubs = (nbformat.read(path, as_version=4) for path in (source, release))
    stub = {c.metadata["nbgrader"]["grade_id"]: c.source for c in stubs.cells if "nbgrader" in c.metadata}
    solutions = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    for cell in solutions[1::2]:
        cell.source = stub[cell.metadata["nbgrader"]["grade_id"]]
    return nb


def grading(lessons: list[str], class_size: int, mixed: int = 0, workers: list[int] | None = None,
            dask_workers: int = 2, one_core: bool = True) -> dict:
    """Autograde one student's lessons (1 worker), then a class: ``class_size - mixed`` solutions and
    ``mixed`` half-done notebooks per lesson, with each local worker count and on ``dask_workers`` Dask
    workers (one thread each) on loopback."""
    import nbformat

    from grader import build, grading as g

    cores = os.cpu_count() or 1
    workers = workers or sorted({1, cores})
    out = {"class_size": class_size, "mixed": mixed, "cores": cores, "per_lesson": {}, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        build.build(lessons, root=ROOT, out=course)
        students = [f"student{i:02d}" for i in range(class_size)]
        halfway = set(students[class_size - mixed:])
        for lesson in lessons:
            source = course / "source" / lesson / f"{lesson}.ipynb"
            partial = course / "tmp" / f"{lesson}.ipynb"
            partial.parent.mkdir(exist_ok=True)
            nbformat.write(half_done(source, course / "release" / lesson / f"{lesson}.ipynb"), partial)
            for student in students:
                g.submit(course, lesson, student, partial if student in halfway else source)

        start = time.perf_counter()
        one = g.autograde_class(course, lessons, [students[0]], workers=1, progress=False, force=True)
        out["one_student_seconds"] = time.perf_counter() - start
        out["per_lesson"] = {o.lesson: o.seconds for o in one}
        start = time.perf_counter()                  # as `course autograde --student S` runs it: every core
        g.autograde_class(course, lessons, [students[0]], progress=False, force=True)
        out["one_student_all_cores_seconds"] = time.perf_counter() - start

        def check(outcomes) -> None:
            full = [o for o in outcomes if o.student not in halfway]
            half = [o for o in outcomes if o.student in halfway]
            assert all(o.score == o.max_score for o in full), "a solution lost points while benchmarking"
            assert all(0 < o.score < o.max_score for o in half), \
                f"half-done notebooks should earn part of the points: {[(o.student, o.lesson, o.score) for o in half]}"
            out["mixed_scores"] = {f"{o.student}/{o.lesson}": [o.score, o.max_score] for o in half}

        if one_core and hasattr(os, "sched_setaffinity"):
            every = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {min(every)})     # workers and their kernels inherit it
            try:
                start = time.perf_counter()
                check(g.autograde_class(course, lessons, workers=1, progress=False, force=True))
                out["runs"]["1 worker on 1 core"] = time.perf_counter() - start
            finally:
                os.sched_setaffinity(0, every)
        for n in workers:
            start = time.perf_counter()
            check(g.autograde_class(course, lessons, workers=n, progress=False, force=True))
            out["runs"][f"{n} local worker{'s' if n > 1 else ''}"] = time.perf_counter() - start
        if dask_workers:
            from distributed import LocalCluster
            with LocalCluster(n_workers=dask_workers, threads_per_worker=1, host="127.0.0.1",
                              dashboard_address=None) as cluster:
                start = time.perf_counter()
                check(g.autograde_class(course, lessons, progress=False, force=True,
                                        scheduler=cluster.scheduler_address))
                out["runs"][f"{dask_workers} Dask workers"] = time.perf_counter() - start
        first = out["runs"][next(iter(out["runs"]))]
        out["speed_up"] = {name: first / seconds for name, seconds in out["runs"].items()}
    return out


def trust_overhead(lessons: list[str], repeats: int) -> dict:
    """What the sandbox and the judge cost: one student's solutions autograded by plain nbgrader
    (its own ``Execute``, no sandbox, no judge) and by the course's pipeline, alternately, in one process."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, Execute, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)

    from grader import build, grading as g

    plain = {"Autograde": {"autograde_preprocessors": [Execute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]}}
    out = {"per_lesson": {}, "repeats": repeats}
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        build.build(lessons, root=ROOT, out=course)
        for lesson in lessons:
            times = {"plain": [], "trusted": []}
            for rep in range(repeats):
                for mode in ("plain", "trusted"):
                    student = f"{mode}{rep}"
                    g.submit(course, lesson, student, course / "source" / lesson / f"{lesson}.ipynb")
                    start = time.perf_counter()
                    g.autograde(course, lesson, student, **(plain if mode == "plain" else {}))
                    times[mode].append(time.perf_counter() - start)
                    score, max_score = g.total(course, lesson, student)
                    assert score == max_score, f"{lesson} lost points in the {mode} run while benchmarking"
            out["per_lesson"][lesson] = {mode: statistics.median(v) for mode, v in times.items()}
    out["plain_total"] = sum(v["plain"] for v in out["per_lesson"].values())
    out["trusted_total"] = sum(v["trusted"] for v in out["per_lesson"].values())
    out["overhead"] = out["trusted_total"] / out["plain_total"] - 1
    return out


# --- gpu ---------------------------------------------------------------------------------------

def gpu(repeats: int) -> dict:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    X, y = load_mnist("train")
    cpu = timed(torch_epoch_fn(X, y, "cpu"), repeats)
    cuda_fn = torch_epoch_fn(X, y, "cuda")
    cuda_fn()
    cuda = timed(cuda_fn, repeats)
    return {"device": torch.cuda.get_device_name(0), "cpu_epoch": cpu, "cuda_epoch": cuda,
            "speed_up": cpu["median"] / cuda["median"], "lesson_figure_to_beat_s": 0.08}


# --- report --------------------------------------------------------------------------------------

def table(results: dict) -> str:
    lines = [f"machine: {results['machine']}"]
    t = results.get("throughput")
    if t:
        lines.append(f"\none epoch of MNIST, batch {BATCH}, Adam; torch threads = {t['threads']}; "
                     f"{t['epoch_multiply_adds'] / 1e9:.1f} G multiply-adds per epoch")
        lines.append(f"{'pipeline':32s} {'median s':>9s} {'min':>7s} {'max':>7s} {'GFLOP/s':>8s} {'vs torch':>9s}")
        for name, v in t.items():
            if isinstance(v, dict):
                lines.append(f"{name:32s} {v['median']:9.2f} {v['min']:7.2f} {v['max']:7.2f} "
                             f"{v['gflops']:8.1f} {v['ratio_to_torch']:8.2f}x")
    a = results.get("accuracy")
    if a:
        lines.append(f"\nlesson 07 recipe: {a['epochs']} epochs, test accuracy {100 * a['test_accuracy']:.2f}% "
                     f"in {a['seconds']:.1f} s")
    n = results.get("notebooks")
    if n:
        lines.append("\nsolution notebook execution (s): " + ", ".join(f"{k} {v:.1f}" for k, v in n.items()))
    g = results.get("grading")
    if g:
        lines.append(f"\nautograde, one student, 1 worker: {g['one_student_seconds']:.1f} s in all; per lesson (s): "
                     + ", ".join(f"{k} {v:.1f}" for k, v in g["per_lesson"].items()))
        if "one_student_all_cores_seconds" in g:
            lines.append(f"one student, one worker per core (the default): {g['one_student_all_cores_seconds']:.1f} s")
        lines.append(f"class of {g['class_size']} ({g.get('mixed', 0)} half-done) on {len(g['per_lesson'])} lesson(s):")
        for name, seconds in g["runs"].items():
            lines.append(f"  {name:18s} {seconds:7.0f} s   speed-up {g['speed_up'][name]:.2f}x")
    r = results.get("trust")
    if r:
        lines.append(f"\nsandbox and judge, one student's solutions (median of {r['repeats']}, s): "
                     + ", ".join(f"{k} {v['plain']:.1f} -> {v['trusted']:.1f}" for k, v in r["per_lesson"].items()))
        lines.append(f"total {r['plain_total']:.1f} s with plain nbgrader, {r['trusted_total']:.1f} s sandboxed and "
                     f"judged: overhead {100 * r['overhead']:.0f}%")
    c = results.get("gpu")
    if c:
        lines.append("\nGPU: " + (c.get("skipped") or f"{c['device']}: epoch {c['cuda_epoch']['median']:.3f} s vs "
                                  f"CPU {c['cpu_epoch']['median']:.2f} s ({c['speed_up']:.0f}x)"))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="throughput,accuracy,notebooks,grading,trust,gpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--class-size", type=int, default=20)
    p.add_argument("--mixed", type=int, default=0, help="how many of the class hand in half-done notebooks")
    p.add_argument("--workers", default="", help="worker counts to time, e.g. 2 (default: 1 and every core)")
    p.add_argument("--dask-workers", type=int, default=2, help="Dask workers on loopback to time (0: none)")
    p.add_argument("--no-one-core", action="store_true", help="skip the baseline of one worker pinned to one core")
    p.add_argument("--lessons", default="")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    args = p.parse_args(argv)
    from grader.build import lessons as all_lessons

    lessons = [n for n in args.lessons.split(",") if n] or all_lessons(ROOT)
    only = set(args.only.split(","))
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                          f"Python {platform.python_version()}",
               "date": time.strftime("%Y-%m-%d")}
    if "throughput" in only:
        results["throughput"] = throughput(args.repeats)
    if "accuracy" in only:
        results["accuracy"] = accuracy()
    if "notebooks" in only:
        results["notebooks"] = notebooks(lessons)
    if "grading" in only:
        results["grading"] = grading(lessons, args.class_size, args.mixed,
                                     [int(n) for n in args.workers.split(",") if n] or None, args.dask_workers,
                                     not args.no_one_core)
    if "trust" in only:
        results["trust"] = trust_overhead(lessons, args.repeats)
    if "gpu" in only:
        results["gpu"] = gpu(args.repeats)
    print(table(results))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
