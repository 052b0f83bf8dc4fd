# ---
# jupyter:
#   jupytext:
#     formats: source/09_gpu//ipynb,notebooks//py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · The GPU: same math, other hardware
#
# Everything so far ran on the CPU. Moving the network to a GPU changes **where** the
# numbers live and **who** multiplies them, and nothing else: the forward pass, the loss,
# the backward pass and the update are the very same lines. This lesson moves tensors,
# measures speed, which turns out to be the subtle part (a GPU works *asynchronously*,
# and a naive stopwatch lies), trains lesson 07's network with lesson 07's loop on
# whatever device there is, and checks that the numbers stay the same.
#
# **You will write:** `get_device`, `to_device`, `time_op`.
#
# Every cell that needs a GPU checks for one first and prints `skipped: no CUDA device`
# when there is none; nothing graded depends on the machine having a GPU.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import statistics
import threading
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from grader import checks, reference
from grader.context import full_or_small
from grader.data import load_mnist
from grader.widgets import gpu as demo
from grader.widgets.quiz import Question, quiz


def cuda_or_skip(what):
    """True when a CUDA device is present; otherwise say what is skipped and return False."""
    if torch.cuda.is_available():
        return True
    print(f"skipped: no CUDA device ({what})")
    return False


print("CUDA available:", torch.cuda.is_available())
if torch.cuda.is_available():
    print("GPU:", torch.cuda.get_device_name(0))

# %% [markdown]
# ## Choosing a device
#
# `torch.device("cuda")` names the first GPU and `torch.device("cpu")` the processor.
# Code that runs anywhere asks which one is present once, at the top, and passes the
# answer around, rather than writing `"cuda"` into every line.

# %% nbgrader={"grade": false, "grade_id": "get_device", "locked": false, "schema_version": 3, "solution": true, "task": false}
def get_device():
    """The device to compute on: the GPU when CUDA is available, else the CPU.

    Returns:
        torch.device: ``torch.device("cuda")`` if ``torch.cuda.is_available()``,
        otherwise ``torch.device("cpu")``. (A ``torch.device``, not a string.)
    """
    ### BEGIN SOLUTION
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_get_device", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# When graded, also: the answer with CUDA made to look present and made to look absent.
d = get_device()
assert isinstance(d, torch.device), f"get_device() returned {type(d).__name__}; return a torch.device"
assert d.type == ("cuda" if torch.cuda.is_available() else "cpu"), \
    f"get_device() = {d}, but torch.cuda.is_available() is {torch.cuda.is_available()}"
### BEGIN HIDDEN TESTS
_real_available = torch.cuda.is_available
try:
    for present, expected in [(True, "cuda"), (False, "cpu")]:
        torch.cuda.is_available = lambda present=present: present
        d = get_device()
        assert isinstance(d, torch.device) and d == torch.device(expected), \
            f"with CUDA {'present' if present else 'absent'}, get_device() = {d!r}; expected torch.device({expected!r})"
finally:
    torch.cuda.is_available = _real_available
### END HIDDEN TESTS

# %% [markdown]
# ## Moving tensors, and keeping them trainable
#
# `t.to(device)` returns a copy of `t` on `device` (or `t` itself if it is already there).
# For data that is all. For **parameters** there is a trap: if `W` is a leaf with
# `requires_grad=True`, then `W.to("cuda")` is the *result of an operation* on `W`, not a
# leaf, and its `.grad` will stay `None` after `backward()`: the gradient flows back to the
# CPU original. To move a parameter and keep it a trainable leaf, detach it first, move
# it, then switch tracking back on.
#
# We can watch the trap without a GPU: the `meta` device holds shapes and dtypes but no
# values, and moving to it follows the same rules.

# %%
W = torch.randn(3, 2, requires_grad=True)
print("W.to('meta').is_leaf                          :", W.to("meta").is_leaf)
print("W.detach().to('meta').requires_grad_().is_leaf:", W.detach().to("meta").requires_grad_(True).is_leaf)

# %% nbgrader={"grade": false, "grade_id": "to_device", "locked": false, "schema_version": 3, "solution": true, "task": false}
def to_device(tensors, device):
    """``tensors`` on ``device``, parameters kept as trainable leaves.

    Args:
        tensors: a list or tuple of tensors (parameters with ``requires_grad=True`` and/or
            plain data tensors), on any device.
        device: a ``torch.device`` or a string such as ``"cpu"``, ``"cuda"`` or ``"meta"``.

    Returns:
        list of tensors, in the same order, each on ``device`` with the same shape, dtype and
        values. A tensor that required grad is returned as a new leaf with
        ``requires_grad=True`` (its gradients go to the new tensor, not the input); the others
        do not require grad. The input tensors are not modified. As with ``Tensor.to``, a
        tensor that is already on ``device`` is not copied: the result shares its memory.
    """
    ### BEGIN SOLUTION
    device = torch.device(device)
    moved = []
    for t in tensors:
        if t.requires_grad:
            moved.append(t.detach().to(device).requires_grad_(True))
        else:
            moved.append(t.to(device))
    return moved
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_to_device", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# When graded, also: a tuple, another device given as a string or a torch.device, an empty list, a
#   float16 tensor, inputs left in place, and tensors already on the device (not copied, yet new leaves).
params = reference.init_params(seed=0, hidden=16)
x = checks.seeded(0, 4, 784)
moved = to_device(list(params) + [x], "cpu")
assert isinstance(moved, (list, tuple)) and len(moved) == 5, "to_device must return one tensor per input, in order"
for name, a, b in zip(["W1", "b1", "W2", "b2", "x"], moved, list(params) + [x]):
    checks.assert_close(a, b.detach(), f"to_device(...)[{name}]", atol=0)
    assert a.device.type == "cpu", f"to_device(..., 'cpu')[{name}] is on {a.device}"
for name, a in zip(["W1", "b1", "W2", "b2"], moved[:4]):
    assert a.requires_grad and a.is_leaf, (f"to_device(...)[{name}] is not a trainable leaf: detach(), move, "
                                           f"then requires_grad_(True)")
assert not moved[4].requires_grad, "data (x) must not start requiring grad"
### BEGIN HIDDEN TESTS
for device in ["meta", torch.device("meta")]:
    moved = to_device(tuple(params) + (x,), device)
    for name, a, b in zip(["W1", "b1", "W2", "b2", "x"], moved, list(params) + [x]):
        assert a.device.type == "meta", f"to_device(..., {device!r})[{name}] stayed on {a.device}"
        assert a.shape == b.shape and a.dtype == b.dtype, f"to_device changed the shape or dtype of {name}"
    for name, a in zip(["W1", "b1", "W2", "b2"], moved[:4]):
        assert a.requires_grad and a.is_leaf, f"to_device(..., 'meta')[{name}] is not a trainable leaf"
    assert not moved[4].requires_grad, "to_device made the data tensor require grad"
    assert all(p.device.type == "cpu" for p in params) and x.device.type == "cpu", "to_device moved its inputs"
assert to_device([], "cpu") == [] or tuple(to_device([], "cpu")) == (), "to_device([]) should be empty"
half = to_device([x.half()], "meta")[0]
assert half.dtype == torch.float16, "to_device must keep the dtype"
# already on the device: shared memory (as Tensor.to), and a parameter still becomes a new leaf of its own
w = params[0]
same = to_device([w, x], torch.device("cpu"))
assert same[0] is not w and same[0].is_leaf and same[0].requires_grad, \
    "a parameter already on the device must come back as a new leaf (w.detach().to(device).requires_grad_(True))"
assert same[0].data_ptr() == w.data_ptr() and same[1].data_ptr() == x.data_ptr(), \
    "a tensor already on the device is not copied (the contract follows Tensor.to): move with .to(device)"
(same[0] * 2).sum().backward()
assert w.grad is None and same[0].grad is not None, "the moved parameter's gradient must go to it, not to the input"
### END HIDDEN TESTS

# %% [markdown]
# ## Why a GPU is faster: count the work
#
# Almost all the work of our network is in its matrix products. `x @ W1` with a batch of 64
# is 64 × 784 × 128 ≈ 6.4 million multiply-adds; the second layer adds 64 × 128 × 10; the
# backward pass needs two products per layer (one for the weight's gradient, one to pass
# the gradient on), about twice the forward. Each multiply-add of a product is independent
# of the others, which is exactly what thousands of small GPU cores are built for.

# %%
for name, value in demo.mlp_flops(64).items():
    print(f"{name:12s} {value / 1e6:8.1f} M multiply-adds")
print(f"{'one epoch':12s} {demo.epoch_flops() / 1e9:8.1f} G multiply-adds (60,000 images, 938 steps)")

# %% [markdown]
# Move the slider: the work per step grows linearly with the batch, while the work per
# epoch does not change at all (the same 60,000 images pass through). The timing line
# appears once your `time_op` below is written.

# %%
demo.flops_widget()

# %% [markdown]
# ## Asynchronous execution, and how to time it
#
# When Python runs `y = a @ b` on a GPU, it does not wait for the product: it puts the
# work in the GPU's queue and returns at once, so that Python can queue the next operation
# while the GPU computes. That is what keeps a GPU busy. It also means that a stopwatch
# around `a @ b` measures only the time to *queue* the work, a few microseconds, whatever
# the size of the matrices. `torch.cuda.synchronize()` waits until the queue is empty:
# call it before reading the clock.
#
# Three more rules of honest timing: run the operation a few times first (the first calls
# pay for memory allocation, kernel selection and caches), time several runs, and report
# the **median**, which a single hiccup of the machine does not move.
#
# A pretend GPU makes the trap visible on any machine: a worker thread that does the work
# after the call has returned, and a `synchronize` that waits for it.

# %% nbgrader={"grade": false, "grade_id": "pretend_gpu", "locked": true, "schema_version": 3, "solution": false, "task": false} tags=["helpers"]
class PretendGPU:
    """Work is queued and done by a background thread; synchronize() waits for it."""

    def __init__(self):
        self.pending = []

    def matmul(self, seconds):
        job = threading.Thread(target=time.sleep, args=(seconds,))
        job.start()
        self.pending.append(job)

    def synchronize(self):
        for job in self.pending:
            job.join()
        self.pending.clear()


# %%
gpu = PretendGPU()
start = time.perf_counter()
gpu.matmul(0.2)
naive = time.perf_counter() - start
gpu.synchronize()
start = time.perf_counter()
gpu.matmul(0.2)
gpu.synchronize()
honest = time.perf_counter() - start
print(f"without synchronize: {naive * 1e3:7.2f} ms   (only the launch)")
print(f"with synchronize   : {honest * 1e3:7.2f} ms   (the work itself takes 200 ms)")

# %% [markdown]
# ## Exercise: `time_op`
#
# Write a timer that does it right: `warmup` untimed calls, then `repeats` timed calls,
# each followed by a synchronisation of `device` before the clock is read, and the median.
# Use `time.perf_counter()` for the clock. On the CPU there is nothing to synchronise; on a
# CUDA device call `torch.cuda.synchronize()`.

# %% nbgrader={"grade": false, "grade_id": "time_op", "locked": false, "schema_version": 3, "solution": true, "task": false}
def time_op(fn, device, repeats=10, warmup=2):
    """Median wall time of one call of ``fn``, measured correctly on ``device``.

    Args:
        fn: a function of no arguments (its result is ignored).
        device: ``torch.device`` or string; when its type is ``"cuda"``, the device is
            synchronised (``torch.cuda.synchronize()``) after every call, before the clock
            is read, and once before the timed calls start.
        repeats (int): number of timed calls, at least 1.
        warmup (int): number of untimed calls made first.

    Returns:
        float: the median, over the ``repeats`` timed calls only, of each call's duration in
        seconds (``time.perf_counter`` before the call to after its synchronisation). With an
        even number of calls the median is the mean of the two middle durations (as
        ``statistics.median``).
    """
    ### BEGIN SOLUTION
    device = torch.device(device)

    def wait():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    wait()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        wait()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_time_op", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# When graded, also: slow warm-up calls, a slow outlier, an even number of repeats (mean of the middle
#   two), and the pretend-GPU synchronisation check with the device given as a torch.device.
seconds = time_op(lambda: time.sleep(0.02), "cpu", repeats=3, warmup=1)
assert isinstance(seconds, float), f"time_op should return a float (seconds), got {type(seconds).__name__}"
assert 0.015 < seconds < 0.5, f"time_op timed a 20 ms sleep as {seconds:.4f} s; time each call with perf_counter"
calls = []
time_op(lambda: calls.append(1), "cpu", repeats=5, warmup=2)
assert len(calls) == 7, f"time_op called fn {len(calls)} times; expected warmup + repeats = 7"
# On a CUDA device work is asynchronous: checked here with a fresh pretend GPU standing in for CUDA.
pretend_gpu = PretendGPU()
_real_sync, _real_available = torch.cuda.synchronize, torch.cuda.is_available
try:
    torch.cuda.synchronize = lambda *args, **kwargs: pretend_gpu.synchronize()   # accepts a device too
    torch.cuda.is_available = lambda: True
    seconds = time_op(lambda: pretend_gpu.matmul(0.05), "cuda", repeats=3, warmup=1)
finally:
    torch.cuda.synchronize, torch.cuda.is_available = _real_sync, _real_available
    pretend_gpu.synchronize()
assert seconds >= 0.045, (f"on a (pretend) CUDA device time_op measured {seconds * 1e3:.2f} ms for 50 ms "
                          f"of queued work: call torch.cuda.synchronize() after fn() and before reading "
                          f"the clock")
### BEGIN HIDDEN TESTS
# Warm-up calls are slow and must not count; the median ignores one slow timed call.
durations = iter([0.3, 0.3] + [0.01, 0.01, 0.25, 0.01, 0.01])
seconds = time_op(lambda: time.sleep(next(durations)), torch.device("cpu"), repeats=5, warmup=2)
assert seconds < 0.1, (f"time_op reported {seconds:.3f} s for calls of 10 ms after two 300 ms warm-ups and one "
                       f"250 ms outlier: exclude the warm-up calls and take the median, not the mean or the max")
# The median of the timed calls only, the mean of the two middle ones for an even count: timed 20, 40, 120 and
# 400 ms give 80 ms (lower middle 40, upper 120, mean 145, minimum 20; with the 500 ms warm-ups: 260).
# 76-100 ms: a sleep overshoots by a few ms at most, far from every wrong answer.
durations = iter([0.5, 0.5] + [0.04, 0.4, 0.02, 0.12])
seconds = time_op(lambda: time.sleep(next(durations)), "cpu", repeats=4, warmup=2)
assert 0.076 <= seconds <= 0.1, (f"time_op gave {seconds * 1e3:.1f} ms for timed calls of 40, 400, 20 and 120 ms "
                                 f"(after two 500 ms warm-ups); expected their median, 80 ms: sort the timed durations "
                                 f"only and, for an even count, average the two middle ones (statistics.median)")
# On a CUDA device, work is asynchronous: time_op must synchronise before reading the clock.
_real_sync, _real_available = torch.cuda.synchronize, torch.cuda.is_available
pending = []


def fake_sync(*args, **kwargs):
    for job in pending:
        job.join()
    pending.clear()


def launch():
    job = threading.Thread(target=time.sleep, args=(0.05,))
    job.start()
    pending.append(job)


for device in ("cuda", torch.device("cuda")):
    try:
        torch.cuda.synchronize, torch.cuda.is_available = fake_sync, (lambda: True)
        seconds = time_op(launch, device, repeats=3, warmup=1)
    finally:
        torch.cuda.synchronize, torch.cuda.is_available = _real_sync, _real_available
        fake_sync()
    assert seconds >= 0.045, (f"on a CUDA device given as {device!r} time_op measured {seconds * 1e3:.2f} ms for "
                              f"50 ms of queued work: call torch.cuda.synchronize() after fn() and before reading "
                              f"the clock (compare torch.device(device).type, which works for a str and a device)")
### END HIDDEN TESTS

# %% [markdown]
# With a working `time_op`, the widget above can time `x @ W1` too; here it is again, now
# with the measurement.

# %%
demo.flops_widget(timer=time_op)

# %% [markdown]
# ## The wrong way and the right way, on a real GPU
#
# On a machine with CUDA, the next cell times a large product three ways. Without
# synchronisation the "time" is the launch only, and it does not grow with the size.

# %%
if cuda_or_skip("timing a product with and without synchronize"):
    dev = torch.device("cuda")
    a = torch.randn(4096, 4096, device=dev)
    b = torch.randn(4096, 4096, device=dev)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    launch_only = (time.perf_counter() - start) / 20
    torch.cuda.synchronize()
    print(f"no synchronize  : {launch_only * 1e3:8.3f} ms per product (wrong)")
    print(f"time_op         : {time_op(lambda: a @ b, dev) * 1e3:8.3f} ms per product (right)")

# %% [markdown]
# ## Throughput against size
#
# A product of two n × n matrices costs 2n³ floating-point operations. Divide by the
# measured time and you get the achieved GFLOP/s. Small products cannot keep many cores
# busy, so throughput climbs with size until the hardware is saturated.

# %%
sizes = [32, 64, 128, 256, 512, 1024]
devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
curves = demo.throughput_curve(sizes, devices, timer=time_op)
for device, values in curves.items():
    print(device, " ".join(f"{v:7.1f}" for v in values), "GFLOP/s")
cuda_or_skip("GPU curve in the throughput plot")
demo.plot_throughput(sizes, curves)
plt.show()

# %% [markdown]
# ## Lesson 07's training loop, on whatever device there is
#
# Now the real work: training. Below is lesson 07's loop, with PyTorch's `Adam` standing
# in for your `adam_step` and `grader.reference`'s forward pass for yours, so that this
# lesson does not depend on your earlier notebooks. Read it looking for a device: there is
# none. Every PyTorch operation runs where its inputs live and leaves its result there:
# a batch cut from a tensor on the GPU is on the GPU, and so are the logits, the loss, the
# gradients that `backward()` writes into the parameters, and Adam's update. So the whole
# move is two lines *before* the loop: the parameters through your `to_device` (trainable
# leaves), and the data with `.to(device)`, once. The loop itself needs **zero code
# changes**.
#
# Two things in it do cross between processor and GPU, both small: the shuffled order
# comes from a CPU generator (a GPU tensor may be indexed with CPU indices; PyTorch copies
# the 64 numbers over), and `loss.item()` brings one number back to Python, which makes
# Python wait until the GPU has finished the step. That wait is a synchronisation per step:
# the price of a live loss curve.

# %% nbgrader={"grade": false, "grade_id": "loop", "locked": true, "schema_version": 3, "solution": false, "task": false}
def train_epoch(params, optimizer, X, y, batch_size=64, generator=None, bar=None):
    """Lesson 07's loop for one epoch: one Adam step per shuffled mini-batch; returns each step's loss.

    params, X and y must be on one device, whichever it is: nothing below names it.
    """
    losses = []
    order = torch.randperm(len(X), generator=generator)
    for start in range(0, len(X), batch_size):
        idx = order[start:start + batch_size]
        loss = F.cross_entropy(reference.forward(X[idx], *params), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update()
    return losses


def train_on(device, X, y, epochs=1, batch_size=64, seed=0):
    """Fresh parameters (seed), moved to device with the data, trained for `epochs` with a progress bar.

    Returns (the parameters, on device; the loss of every step; the seconds the training took).
    """
    device = torch.device(device)
    params = to_device(reference.init_params(seed=seed), device)      # the only two lines that move things
    X, y = X.to(device), y.to(device)
    optimizer = torch.optim.Adam(params, lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    with tqdm(total=epochs * -(-len(X) // batch_size), desc=f"training on {device}", unit="step") as bar:
        start = time.perf_counter()
        for _ in range(epochs):
            losses += train_epoch(params, optimizer, X, y, batch_size, generator, bar)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return params, losses, seconds


# %% [markdown]
# Train on `get_device()`: the GPU if this machine has one, else the CPU, for one epoch
# (seconds on a GPU, a few seconds to a minute on a CPU). The training images are lesson
# 07's: the 50,000 of the `"fit"` split, and the 10,000 of `"val"` to check the result.
# (While the notebook is graded, a short run on 5,000 images.)

# %%
X_fit, y_fit = load_mnist("fit")
X_val, y_val = load_mnist("val")
N_FIT = full_or_small(len(X_fit), 5_000)
device = get_device()
params, losses, seconds = train_on(device, X_fit[:N_FIT], y_fit[:N_FIT], epochs=1)
val_loss, val_accuracy = reference.evaluate(params, X_val.to(device), y_val.to(device))
print(f"on {device}: {len(losses)} steps in {seconds:.1f} s, {seconds / len(losses) * 1e3:.2f} ms per step; "
      f"validation accuracy {val_accuracy:.2%}")
fig, ax = plt.subplots(figsize=(6.5, 3.0))
ax.plot(losses, lw=0.6)
ax.set_xlabel("step")
ax.set_ylabel("training loss")
ax.set_title(f"lesson 07's loop on {device}")
plt.show()

# %% [markdown]
# ## How much faster is the GPU, honestly?
#
# Measure rather than believe a quoted figure. The next cell runs the very same loop on the
# CPU and on the GPU, one epoch each, after a short untimed warm-up on each (the first
# steps on a GPU pay for starting CUDA and choosing kernels), at batch 64 and at batch
# 1,024. It needs CUDA.

# %%
if cuda_or_skip("timing the training loop on the CPU and on the GPU"):
    for batch_size in (64, 1024):
        per_image = {}
        for dev in ("cpu", "cuda"):
            train_on(dev, X_fit[:2048], y_fit[:2048], batch_size=batch_size)         # warm-up, untimed
            _, run_losses, run_seconds = train_on(dev, X_fit[:N_FIT], y_fit[:N_FIT], batch_size=batch_size)
            per_image[dev] = run_seconds / N_FIT
            print(f"batch {batch_size:5d} on {dev:4s}: {run_seconds / len(run_losses) * 1e3:7.3f} ms per step, "
                  f"{run_seconds:6.2f} s per epoch")
        print(f"batch {batch_size:5d}: the GPU is {per_image['cpu'] / per_image['cuda']:.1f} times as fast as "
              f"this CPU")

# %% [markdown]
# What to expect, and why. At batch 64 one step of our network is about 19 million
# multiply-adds, in a handful of small matrix products and a few dozen element-wise
# operations. A large GPU does that arithmetic in a few microseconds, but each operation
# is a separate *kernel launch* that costs several microseconds of CPU time in PyTorch and
# the driver, and `loss.item()` makes Python wait for the GPU once per step. The step is
# **launch-bound**: its time is set by how fast Python can queue a few dozen tiny
# operations, not by arithmetic, and the GPU idles most of the time. A multi-core CPU, for
# its part, does those 19 million multiply-adds in about a millisecond. So for this small
# network at batch 64, expect the GPU to win by a small factor, from none at all against a
# strong many-core CPU to about ten against a laptop's, and never the hundredfold that the
# two chips' peak arithmetic would suggest.
# With batch 1,024 each launch carries sixteen times the work at nearly the same
# overhead, and the GPU pulls ahead; wider layers do the same, as the throughput curve
# above showed for single products. Your own figures, not a rule of thumb, are the ones
# to trust.
#
# ## Same numbers on both devices?
#
# The math is the same, but the *order* in which a GPU adds up the 784 products of a dot
# product is not the CPU's, and floating-point addition is not associative: expect
# differences of a few units in the last place (around 1e-6 relative), not bit equality.
# One setting changes that picture: **TF32**. On recent NVIDIA GPUs PyTorch can run float32
# matrix products in TensorFloat-32, which keeps only 10 bits of mantissa in the
# multiplications (about 3 decimal digits). It is off by default for matrix products
# (`torch.backends.cuda.matmul.allow_tf32 = False`, or
# `torch.set_float32_matmul_precision("highest")`); switched on, it makes products several
# times faster and differences around 1e-3.

# %%
def one_step(device, seed=0):
    """Parameters after one SGD step on a fixed batch, computed on `device`, returned on the CPU."""
    g = torch.Generator().manual_seed(seed)
    params = to_device(reference.init_params(seed=seed), device)
    x = torch.rand(64, 784, generator=g).to(device)
    y = torch.randint(0, 10, (64,), generator=g).to(device)
    W1, b1, W2, b2 = params
    F.cross_entropy(torch.clamp(x @ W1 + b1, min=0) @ W2 + b2, y).backward()
    with torch.no_grad():
        return [(p - 0.1 * p.grad).cpu() for p in params]


cpu_result = one_step("cpu")
print("CPU step done; largest parameter:", max(p.abs().max().item() for p in cpu_result))
if cuda_or_skip("comparing one training step on CPU and GPU"):
    for precision in ["highest", "high"]:
        torch.set_float32_matmul_precision(precision)
        gpu_result = one_step("cuda")
        diff = max((a - b).abs().max().item() for a, b in zip(cpu_result, gpu_result))
        tf32 = "TF32 on " if precision == "high" else "TF32 off"
        print(f"{tf32}: largest difference CPU vs GPU after one step = {diff:.2e}")
    torch.set_float32_matmul_precision("highest")
    # tolerance 1e-5: float32 sums in another order, TF32 off
    gpu_result = one_step("cuda")
    for name, a, b in zip(["W1", "b1", "W2", "b2"], gpu_result, cpu_result):
        checks.assert_close(a, b, f"one step on cuda vs cpu [{name}]", atol=1e-5)
    print("CPU and GPU agree within 1e-5 with TF32 off.")

# %% [markdown]
# **Written question (2 points, graded by hand).** A classmate moves lesson 07's training
# to a GPU and finds that an epoch at batch 64 takes about as long as on the laptop's CPU.
# Give two reasons, specific to this network and this loop, and one change that would let
# the GPU pay off. How would you measure whether the change worked?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_gpu_speed", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# *Rubric:* 1 point for two sound reasons: the step is launch-bound (a few dozen tiny kernels per step,
# each costing microseconds of launch overhead, while the arithmetic of a 784-128-10 network at batch 64
# takes the GPU far less); `loss.item()` synchronises every step so the CPU cannot queue ahead; the matrices
# are too small to occupy the GPU's cores (throughput curve); data copied to the GPU batch by batch inside
# the loop instead of once (if they say so of their classmate's code). Half a point for one reason.
# 1 point for a change and a sound measurement: a larger batch (or a wider network), fewer synchronisations
# (keep the losses on the device and read them once per epoch), data moved once, or fusing the kernels
# (CUDA graphs, torch.compile); measured by timing an epoch or a step on both devices with synchronisation
# before reading the clock (time_op), after a warm-up, taking the median of several runs, and comparing
# time per image (not per step) when the batch size changes. Half a point for the change without a sound
# measurement (no synchronisation, or no warm-up).
#
# *Model answer:* Each step launches a few dozen small kernels; the GPU finishes each in microseconds and
# then waits for Python and the driver to queue the next, so the time is the launch overhead, which is
# about what the CPU needs to do the arithmetic itself. On top of that `loss.item()` makes the CPU wait for
# the GPU at every step. With batch 1,024 each launch carries sixteen times the work for the same
# overhead; to check, run one untimed warm-up epoch, then time an epoch on each device with `time_op`
# (which synchronises), and compare the seconds per image.
# ### END SOLUTION

# %% [markdown]
# ## Check yourself

# %%
quiz([
    Question("You time <code>y = a @ b</code> on a GPU with two calls to <code>time.perf_counter()</code> "
             "and no synchronisation. What did you measure?",
             ["The time of the product", "The time to queue the product; the GPU may still be computing",
              "The time to copy a and b to the GPU"], answer=1,
             explanation="CUDA calls return as soon as the work is queued. Synchronise before reading the clock."),
    Question("Why report the median of several timed runs, after a few untimed ones?",
             ["The first runs pay one-off costs (allocation, kernel choice, caches), and the median is not "
              "moved by one slow run", "The median is always smaller than the mean, which looks better",
              "PyTorch requires it"], answer=0,
             explanation="Warm-up removes start-up costs from the figure; the median resists outliers."),
    Question("<code>W</code> is a CPU leaf with <code>requires_grad=True</code>. After "
             "<code>Wg = W.to('cuda')</code> and a backward pass through <code>Wg</code>, where is the gradient?",
             ["In Wg.grad", "In W.grad, on the CPU: Wg is not a leaf", "Nowhere"], answer=1,
             explanation="to() is an operation recorded by autograd. Move detached, then requires_grad_(True)."),
    Question("What has to change in lesson 07's training loop to train on a GPU?",
             ["Every operation needs a device argument",
              "Nothing inside the loop: the parameters (as trainable leaves) and the data go to the device once, "
              "before it, and every operation runs where its inputs are",
              "The loss must be computed on the CPU"], answer=1,
             explanation="PyTorch runs each operation on the device of its inputs and puts the result there."),
    Question("Your CPU and GPU losses differ in the 7th significant digit. What is the most likely reason?",
             ["A bug in the GPU code", "Floating-point sums taken in a different order",
              "The GPU uses float16 by default"], answer=1,
             explanation="Addition of floats is not associative; different hardware sums in different orders. "
                         "Differences near 1e-3 would instead point at TF32."),
])
