"""Benchmarks of the course, each measured side by side in one run (``make bench``).

    python -m benchmarks.run [--only throughput,accuracy,notebooks,grading,trust,gpu] [--repeats 3]
                             [--class-size 20] [--mixed 0] [--workers 1,2] [--dask-workers 2]
                             [--lessons 01_tensors,...]
                             [--out benchmarks/results.json] [--fresh]

Figures (median of the repeats, with min and max):
* throughput: one epoch of all of MNIST (batch 64, Adam) with the course's own solution
  functions (forward, loss, backward by hand, adam_step, get_batches) and with autograd for
  the backward, against nn.Sequential + F.cross_entropy + torch.optim.Adam; their ratio; the
  multiply-adds of an epoch and the achieved GFLOP/s;
* accuracy: lesson 07's experiment with its own functions and constants (read from the notebook):
  the candidate schedules trained on "fit" with their validation accuracy after every epoch, the
  one chosen on validation retrained on all training images, the test accuracy measured once, and
  the wall time of each part;
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

RECIPE_LESSON = "07_loop"
RECIPE_NAMES = ("BATCH", "LR", "EPOCHS", "DECAY_AFTER")
# What the benchmark repeats of the lesson beyond its constants: if any of these lines is gone from the
# notebook, the lesson's experiment has changed and the benchmark must be changed to follow it.
RECIPE_MARKERS = ('load_mnist("fit")', 'load_mnist("val")', 'load_mnist("train")', 'load_mnist("test")',
                  "init_params(seed=0)", "lr=LR / 10, seed=1", "[(k, LR), (EPOCHS - k, LR / 10)]",
                  "demo.best_schedule(candidates)", "PHASES = schedules[chosen]",
                  "for phase, (epochs, lr) in enumerate(PHASES):", "batch_size=BATCH, lr=lr, seed=phase",
                  "evaluate(params, X_test, y_test)")


def lesson_recipe(lesson: str = RECIPE_LESSON, root: Path = ROOT) -> dict:
    """The constants of ``lesson``'s MNIST experiment (``BATCH, LR, EPOCHS, DECAY_AFTER``), read from the
    top-level assignments of its solution notebook (not from the ``if GRADING:`` branch that shrinks it);
    a clear error if they, or the experiment around them, cannot be found there."""
    import ast

    import nbformat

    path = root / "source" / lesson / f"{lesson}.ipynb"
    if not path.is_file():
        raise RuntimeError(f"the accuracy benchmark follows {path.relative_to(root)}, which does not exist "
                           f"(run `course build` to write it from notebooks/{lesson}.py)")
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    found: dict = {}
    for source in code:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:                                  # top level only: not the GRADING branch
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target, value = node.targets[0], node.value
            pairs = ([(target, value)] if isinstance(target, ast.Name) else
                     list(zip(target.elts, value.elts)) if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
                     and len(target.elts) == len(value.elts) else [])
            for name, val in pairs:
                if isinstance(name, ast.Name) and name.id in RECIPE_NAMES and name.id not in found:
                    try:
                        found[name.id] = ast.literal_eval(val)
                    except ValueError:
                        pass
    text = "\n".join(code)
    missing = [n for n in RECIPE_NAMES if n not in found] + [m for m in RECIPE_MARKERS if m not in text]
    if missing:
        raise RuntimeError(f"lesson {lesson}'s recipe cannot be found in {path.relative_to(root)}: no "
                           + "; no ".join(repr(m) for m in missing)
                           + ". The benchmark repeats the lesson's experiment (constants "
                           + ", ".join(RECIPE_NAMES) + " as literals at the top level of a cell, schedules chosen "
                           "on validation, PHASES = schedules[chosen] retrained on all training images, the test "
                           "set once): update benchmarks/run.py's accuracy() to follow the lesson.")
    recipe = {"batch_size": found["BATCH"], "lr": found["LR"], "epochs": found["EPOCHS"],
              "decay_after": list(found["DECAY_AFTER"])}
    if not (isinstance(recipe["batch_size"], int) and isinstance(recipe["epochs"], int)
            and all(isinstance(k, int) and 0 < k < recipe["epochs"] for k in recipe["decay_after"])):
        raise RuntimeError(f"lesson {lesson}'s recipe in {path.relative_to(root)} is not what the benchmark "
                           f"understands: {recipe}")
    return recipe


def accuracy() -> dict:
    """Lesson 07's experiment, with its own train and evaluate, as the lesson runs it: candidate
    learning-rate schedules trained on ``fit`` and judged on ``val`` after every epoch, the best on
    validation chosen (the lesson's own ``best_schedule``), retrained from the start on all of ``train``,
    then the test set measured once."""
    from grader.widgets.loop import best_schedule

    recipe = lesson_recipe()
    batch, lr, epochs, decay_after = recipe["batch_size"], recipe["lr"], recipe["epochs"], recipe["decay_after"]
    threads = torch.get_num_threads()
    ns = load(RECIPE_LESSON, ["train_epoch", "evaluate", "train"])   # its setup cell sets 1 thread, as the lesson runs
    init_params, train, evaluate = ns["init_params"], ns["train"], ns["evaluate"]
    try:
        X_fit, y_fit = load_mnist("fit")
        X_val, y_val = load_mnist("val")
        out = {"lesson": RECIPE_LESSON, **recipe, "threads": torch.get_num_threads(),
               "images": {"fit": len(X_fit), "val": len(X_val)}}

        # the choice, on validation: one constant run, copies taken where a candidate lowers the rate
        start = time.perf_counter()
        params = init_params(seed=0)
        snapshots = {}

        def keep(epoch, history):
            if epoch in decay_after:
                snapshots[epoch] = tuple(p.detach().clone().requires_grad_(True) for p in params)

        constant = train(params, X_fit, y_fit, X_val, y_val, epochs, batch_size=batch, lr=lr, seed=0, callback=keep)
        candidates = {f"constant lr {lr:g}": {"phases": [[epochs, lr]], "val_acc": constant["val_acc"],
                                              "val_loss": constant["val_loss"]}}
        for k in decay_after:
            rest = train(snapshots[k], X_fit, y_fit, X_val, y_val, epochs - k, batch_size=batch, lr=lr / 10, seed=1)
            candidates[f"lr / 10 after epoch {k}"] = {
                "phases": [[k, lr], [epochs - k, lr / 10]], "val_acc": constant["val_acc"][:k] + rest["val_acc"],
                "val_loss": constant["val_loss"][:k] + rest["val_loss"]}
        chosen = best_schedule({name: c["val_acc"] for name, c in candidates.items()})
        out["choice_seconds"] = time.perf_counter() - start
        out["choice_epochs"] = epochs + sum(epochs - k for k in decay_after)
        out.update(candidates=candidates, chosen=chosen, phases=candidates[chosen]["phases"],
                   val_accuracy=candidates[chosen]["val_acc"][-1], val_loss=candidates[chosen]["val_loss"][-1])

        # the final run: the chosen schedule from the start on all training images, then the test set once
        X_train, y_train = load_mnist("train")
        out["images"]["train"] = len(X_train)
        start = time.perf_counter()
        params = init_params(seed=0)
        for phase, (phase_epochs, phase_lr) in enumerate(out["phases"]):
            train(params, X_train, y_train, X_val, y_val, phase_epochs, batch_size=batch, lr=phase_lr, seed=phase)
        out["final_seconds"] = time.perf_counter() - start
        out["final_epochs"] = sum(e for e, _ in out["phases"])
        X_test, y_test = load_mnist("test")
        out["images"]["test"] = len(X_test)
        out["test_loss"], out["test_accuracy"] = evaluate(params, X_test, y_test)
        out["seconds"] = out["choice_seconds"] + out["final_seconds"]
    finally:
        torch.set_num_threads(threads)
    return out


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
        lines.append(f"\nlesson {a['lesson']} recipe: batch {a['batch_size']}, Adam lr {a['lr']:g}, {a['threads']} "
                     f"thread(s); schedules trained on fit ({a['images']['fit']:,}), validation accuracy "
                     f"({a['images']['val']:,}) after each epoch, %:")
        lines.append(f"{'':24s} " + " ".join(f"{e:>6d}" for e in range(1, a["epochs"] + 1)))
        for name, c in a["candidates"].items():
            lines.append(f"{name:24s} " + " ".join(f"{100 * v:6.2f}" for v in c["val_acc"])
                         + ("  <- chosen" if name == a["chosen"] else ""))
        phases = ", ".join(f"{e} epochs at lr {lr:g}" for e, lr in a["phases"])
        lines.append(f"chosen on validation: {a['chosen']} ({phases}); "
                     f"{a['choice_epochs']} epochs in {a['choice_seconds']:.1f} s")
        lines.append(f"final run on all {a['images']['train']:,} training images: {a['final_epochs']} epochs in "
                     f"{a['final_seconds']:.1f} s; TEST, measured once: accuracy {100 * a['test_accuracy']:.2f}%, "
                     f"loss {a['test_loss']:.4f} ({a['seconds']:.1f} s in all)")
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
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"),
                   help="results file; the parts measured replace theirs, the others are kept (\"dates\" says when "
                        "each part was measured)")
    p.add_argument("--fresh", action="store_true", help="overwrite --out instead of keeping its other parts")
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
    out = Path(args.out)
    if out.is_file() and not args.fresh:                 # a part measured alone replaces only its own figures
        previous = json.loads(out.read_text())
        measured = [k for k in results if k not in ("machine", "date")]
        dates = {k: previous.get("date") for k in previous if k not in ("machine", "date", "dates")}
        dates.update(previous.get("dates", {}))
        dates.update({k: results["date"] for k in measured})
        results = {**{k: v for k, v in previous.items() if k != "dates"}, **results, "dates": dates}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
