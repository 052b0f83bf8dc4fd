# ---
# jupyter:
#   jupytext:
#     formats: source/05_optimizers//ipynb,notebooks//py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Optimizers: SGD, momentum, Adam
#
# Lesson 04 ended with a gradient for every weight: `W1.grad`, `b1.grad`, `W2.grad`,
# `b2.grad`, each the shape of its tensor. A gradient says which way the loss goes *up*
# and how steeply. An **optimizer** is the rule that turns those gradients into a change
# of the weights. `torch.optim` holds a dozen such rules; three of them carry almost all
# of deep learning, and this lesson rebuilds them:
#
# | rule | the idea in one line |
# |---|---|
# | SGD | step straight downhill, a fixed fraction `lr` of the gradient |
# | SGD with momentum | keep a running velocity, so steady slopes speed up and zigzags cancel |
# | Adam | give every single weight its own step size, from running averages of its gradient and its square |
#
# Around them sit three PyTorch facts that decide whether an update works at all: why it
# runs under `torch.no_grad()`, why the gradients must be zeroed, and why the update must
# change the tensor *in place*. Get any of the three wrong and training fails, usually
# without an error message.
#
# **You will write:** `zero_grad`, `sgd_step`, `momentum_step`, `adam_step`, and prove each
# equal to `torch.optim` over hundreds of steps.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math

import matplotlib.pyplot as plt
import torch

from grader import checks, reference, tripwire
from grader.widgets import optimizers as demo
from grader.widgets.quiz import Question, quiz

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Gradient descent
#
# Near the current weights, the gradient is the direction in which the loss rises
# fastest. So to lower the loss, move the weights a little the other way:
#
# $$w \leftarrow w - \text{lr} \cdot \frac{\partial L}{\partial w}$$
#
# The **learning rate** `lr` sets how far "a little" is. The gradient is only a local
# fact, true near `w`: too small a step wastes time, too large a step jumps past the
# bottom to a place where the slope is different, possibly steeper.
#
# Here is the rule on the simplest loss there is, `L(w) = (w - 3)**2`, whose gradient is
# `2 * (w - 3)`, with plain Python numbers and three learning rates.

# %%
def descend(lr, w=0.0, steps=25):
    path = [w]
    for _ in range(steps):
        w = w - lr * 2 * (w - 3)        # the gradient of (w - 3)**2 is 2 * (w - 3)
        path.append(w)
    return path


fig, ax = plt.subplots(figsize=(6.5, 3.2))
for lr in (0.1, 0.9, 1.05):
    ax.plot(descend(lr), marker="o", markersize=3, label=f"lr = {lr}")
ax.axhline(3, color="black", linewidth=0.8, linestyle="--")
ax.set_ylim(-4, 10)
ax.set_xlabel("step")
ax.set_ylabel("w")
ax.set_title("gradient descent on L(w) = (w - 3)²; the minimum is at w = 3")
ax.legend()
plt.show()

# %% [markdown]
# With `lr = 0.1` each step removes 20% of the distance to 3: a smooth approach. With
# `lr = 0.9` each step overshoots, landing on the other side 80% as far away: a zigzag
# that still converges. With `lr = 1.05` every jump lands further away than it started:
# divergence. The boundary is exact here: the distance to the minimum is multiplied by
# `1 - 2 * lr` per step, so anything above `lr = 1` (a factor beyond -1) diverges.
#
# The **curvature** of a loss at a point is how fast its slope changes as the weight moves:
# the second derivative, `d²L/dw²`. The slope of `(w - 3)**2` is `2 * (w - 3)`, which grows
# by 2 for every unit of `w`, so its curvature is 2 everywhere; a bowl `c * (w - 3)**2` has
# curvature `2c`, and the more curved the bowl, the more the slope changes during one step.
# For such a bowl the distance to the minimum is multiplied by `1 - lr * curvature` per
# step, so the largest safe learning rate is `2 / curvature`: 1 here, less on steeper,
# more curved losses. That will matter in the valley below, where one direction is far
# more curved than the other.
#
# A network's loss has 101,770 weights instead of one, but the rule is the same for each
# of them. In PyTorch it meets three practical questions.
#
# ## 1. The update must not be recorded: `torch.no_grad()`
#
# Our weights are created with `requires_grad=True`: PyTorch records every operation that
# uses them, so that `backward()` can find their gradients. The update is also an operation
# on them. Try it without precautions:

# %%
w = torch.tensor([1.0, -2.0], requires_grad=True)
(w ** 2).sum().backward()
print("w.grad:", w.grad)
try:
    w -= 0.1 * w.grad
except RuntimeError as err:
    print("RuntimeError:", err)

# %% [markdown]
# PyTorch refuses. `w` is a *leaf* of the graph, a starting point that `backward()` will
# deliver a gradient to. Overwriting it in place while recording would make the
# recorded graph lie about which values went into the next forward pass. And we would not
# want the record anyway: the update is bookkeeping, not part of the loss, and nobody needs
# the derivative of an optimizer step.
#
# Writing it out of place, `w2 = w - 0.1 * w.grad`, runs, but is recorded: `w2` is not a
# leaf, it is the output of a subtraction that remembers `w`.

# %%
w2 = w - 0.1 * w.grad
print("w2.is_leaf:", w2.is_leaf, "  w2.grad_fn:", w2.grad_fn)

# %% [markdown]
# A loop that kept doing that would chain every step onto a graph that grows without
# end, and `w2` would never receive a `.grad` of its own. `torch.no_grad()` switches the
# recording off for a block: inside it, the in-place update is allowed and `w` stays the
# same leaf, ready for the next forward pass.

# %%
with torch.no_grad():
    w -= 0.1 * w.grad
print("w:", w, "  is_leaf:", w.is_leaf, "  grad_fn:", w.grad_fn, "  requires_grad:", w.requires_grad)

# %% [markdown]
# ## 2. Gradients add up: zero them
#
# `backward()` does not *store* a gradient into `.grad`, it *adds* it to whatever is
# there. Call it twice and you get the sum:

# %%
w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
(w ** 2).sum().backward()                     # d/dw of sum(w**2) is 2w
print("after one backward:       ", w.grad)
(w ** 2).sum().backward()
print("after a second backward:  ", w.grad)
w.grad.zero_()
(w ** 2).sum().backward()
print("zeroed, then one backward:", w.grad)

# %% [markdown]
# In a training loop that forgets to zero, the gradient of step 10 is the sum of ten
# batches' gradients, most of them computed at weights that no longer exist: the steps
# grow and point in stale directions. Nothing crashes; the loss just behaves strangely.
#
# Adding up is deliberate, though. When a batch of 64 does not fit in memory, you can run
# four batches of 16, call `backward()` on each (each loss divided by 4, so that the
# sum is a mean), and step once: the accumulated gradient is exactly the big batch's.
# This is called *gradient accumulation*.

# %%
g = torch.Generator().manual_seed(0)
X, y = torch.randn(64, 5, generator=g), torch.randn(64, generator=g)
w = torch.zeros(5, requires_grad=True)

((X @ w - y) ** 2).mean().backward()          # one batch of 64
whole = w.grad.clone()

w.grad.zero_()
for part in range(4):                         # four batches of 16, gradients added up
    xb, yb = X[16 * part:16 * (part + 1)], y[16 * part:16 * (part + 1)]
    (((xb @ w - yb) ** 2).mean() / 4).backward()
print("batch of 64:        ", whole)
print("4 x 16, accumulated:", w.grad)
print("largest difference: ", (w.grad - whole).abs().max().item())

# %% [markdown]
# So a training step is: forward, `backward()`, update, **zero the gradients** (or zero
# them just before the next `backward()`: the same thing). In `torch.optim` that is
# `optimizer.zero_grad()`.
#
# ## Exercise 1: `zero_grad`
#
# Zero the gradient of every parameter in the list, **in place**, with the tensor method
# `zero_()`: `p.grad` must remain the very same tensor object, now full of zeros. A
# parameter that has no gradient yet (`p.grad is None`, because no `backward()` reached
# it) keeps `None`. (PyTorch's own `optimizer.zero_grad()` sets gradients to `None` by
# default, which saves memory; ours keeps the tensors, as `zero_grad(set_to_none=False)`
# does.)

# %% nbgrader={"grade": false, "grade_id": "zero_grad", "locked": false, "schema_version": 3, "solution": true, "task": false}
def zero_grad(params):
    """Set every existing gradient to zero, in place, before the next backward pass.

    Args:
        params: a list or tuple of tensors (leaves with ``requires_grad=True``).

    Every ``p.grad`` that is a tensor is filled with zeros in place: it stays the same
    tensor object (same memory, shape and dtype). A parameter whose ``p.grad`` is ``None``
    keeps ``None``. The parameters' own values are not touched. Returns ``None``.
    """
    ### BEGIN SOLUTION
    for p in params:
        if p.grad is not None:
            p.grad.zero_()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_zero_grad", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# zero_grad zeroes each existing gradient in place, leaves a missing one missing, and changes nothing else.
# When graded, also: a parameter without a gradient in the middle of the list, gradients holding inf or
#   NaN, repeated backward passes on a small network, 0-d and float64 parameters, a tuple and an empty list.
w = checks.seeded(0, 3, 4).requires_grad_(True)
b = checks.seeded(1, 4).requires_grad_(True)
unused = checks.seeded(2, 2).requires_grad_(True)          # never used by the loss: its .grad stays None
((w.sum(0) * b) ** 2).sum().backward()
grad_w, grad_b, ptr_w = w.grad, b.grad, w.grad.data_ptr()
w_before, b_before = w.detach().clone(), b.detach().clone()
with tripwire.forbid("optim", what="zero_grad"):
    zero_grad([w, b, unused])
assert w.grad is not None and b.grad is not None, \
    "zero_grad set a gradient to None; the contract is to zero the existing tensor in place (p.grad.zero_())"
assert w.grad is grad_w and b.grad is grad_b and w.grad.data_ptr() == ptr_w, \
    "zero_grad replaced p.grad by a new tensor; zero the existing one in place with p.grad.zero_()"
checks.assert_equal(w.grad, torch.zeros(3, 4), "w.grad after zero_grad",
                    hint="the old gradient is still there, so the next backward() would add to it; p.grad.zero_()")
checks.assert_equal(b.grad, torch.zeros(4), "b.grad after zero_grad", hint="zero every parameter in the list")
assert unused.grad is None, "zero_grad gave a gradient to a parameter that had none; leave p.grad = None alone"
checks.assert_unchanged(w_before, w, "w (the parameter) after zero_grad", hint="zero p.grad, not p")
checks.assert_unchanged(b_before, b, "b (the parameter) after zero_grad", hint="zero p.grad, not p")
### BEGIN HIDDEN TESTS
# A parameter without a gradient in the middle of the list: the loop goes on past it. Gradients holding inf
# or NaN are zeroed too (multiplying by zero is not zeroing: 0 * inf and 0 * nan are nan).
first = torch.ones(3, requires_grad=True)
first.grad = torch.tensor([1.0, float("inf"), float("nan")])
middle = torch.ones(2, requires_grad=True)                   # .grad is None
last = torch.ones(2, requires_grad=True)
last.grad = torch.tensor([float("-inf"), 2.0])
grad_first = first.grad
with tripwire.forbid("optim", what="zero_grad"):
    zero_grad([first, middle, last])
checks.assert_equal(first.grad, torch.zeros(3), "a gradient that held inf and nan, after zero_grad",
                    hint="p.grad.zero_() sets every entry to 0; p.grad *= 0 leaves nan where there was inf or nan")
assert first.grad is grad_first, "zero_grad replaced a gradient holding inf/nan by a new tensor: zero it in place"
assert middle.grad is None, "zero_grad gave a gradient to the parameter in the middle, which had none"
checks.assert_equal(last.grad, torch.zeros(2), "the gradient of the parameter after one without a gradient",
                    hint="skip a p.grad that is None and go on with the next (continue), do not stop (break/return)")
# Forgetting to zero: with zero_grad between them, each backward pass must give that pass's gradient
# alone (torch.autograd's answer), not the sum of all passes so far. Tolerance 1e-6: same float32 arithmetic.
start, _ = demo.problem("mlp", seed=3)
leaves = [p.clone().requires_grad_(True) for p in start]
X, y = checks.seeded(5, 20, 5), torch.arange(20) % 3


def mlp_loss(W1, b1, W2, b2, scale):
    return scale * torch.nn.functional.cross_entropy(torch.tanh(X @ W1 + b1) @ W2 + b2, y)


for rnd, scale in enumerate((1.0, 2.0, 0.5)):
    mlp_loss(*leaves, scale).backward()
    expected = reference.gradients(lambda *ps: mlp_loss(*ps, scale), *leaves)
    for i, (p, e) in enumerate(zip(leaves, expected)):
        checks.assert_close(p.grad, e, f"params[{i}].grad after backward pass {rnd + 1}", atol=1e-6,
                            hint="the gradients of the passes added up: zero_grad did not zero them")
    held = [p.grad for p in leaves]
    with tripwire.forbid("optim", what="zero_grad"):
        zero_grad(leaves)
    for i, p in enumerate(leaves):
        assert p.grad is held[i], f"zero_grad replaced params[{i}].grad by another tensor (or None)"
        assert not p.grad.any(), f"params[{i}].grad is not all zeros after zero_grad"
# edge cases: a 0-d parameter, a tuple, an empty list, float64
s = torch.tensor(2.0, requires_grad=True)
d = torch.ones(3, dtype=torch.float64, requires_grad=True)
(s * 3 + (d ** 2).sum()).backward()
with tripwire.forbid("optim", what="zero_grad"):
    zero_grad((s, d))
    zero_grad([])
checks.assert_equal(s.grad, torch.tensor(0.0), "grad of a 0-d parameter after zero_grad")
checks.assert_equal(d.grad, torch.zeros(3, dtype=torch.float64), "grad of a float64 parameter after zero_grad",
                    hint="zero in place: keep the gradient's dtype")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Update in place: the network holds *that* tensor
#
# The training loop, the forward function and the optimizer all refer to the same four
# tensor objects. `p -= lr * p.grad` changes the numbers inside the object that everyone
# holds. `p = p - lr * p.grad` computes a *new* tensor and binds the local name `p` to it;
# the object everyone else holds is untouched. Inside a loop over the parameters, or
# inside a helper function, that update simply vanishes, and nothing warns you.
#
# Below, the same small model (a line fit, `y = X @ w + b`) trains twice. The only
# difference is how the update is written.

# %%
g = torch.Generator().manual_seed(1)
X_line = torch.randn(100, 3, generator=g)
y_line = X_line @ torch.tensor([1.5, -2.0, 0.5]) + 0.3


def train_line(update, steps=40, lr=0.1):
    w, b = torch.zeros(3, requires_grad=True), torch.zeros(1, requires_grad=True)
    params, losses = [w, b], []
    for _ in range(steps):
        loss = ((X_line @ w + b - y_line) ** 2).mean()
        loss.backward()
        losses.append(loss.item())
        update(params, lr)
        for p in params:
            p.grad.zero_()
    return losses


def update_in_place(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad                  # changes the tensor everyone holds


def update_by_rebinding(params, lr):
    with torch.no_grad():
        for p in params:
            p = p - lr * p.grad               # a new tensor, bound to the loop variable only, then dropped


good = train_line(update_in_place)
bad = train_line(update_by_rebinding)
print(f"loss after 40 steps: in place {good[-1]:.2e}, rebinding {bad[-1]:.2e} (it started at {good[0]:.2f})")
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.semilogy(good, label="p -= lr * p.grad (in place)")
ax.semilogy(bad, label="p = p - lr * p.grad (rebinding)")
ax.set_xlabel("step")
ax.set_ylabel("loss (log scale)")
ax.set_title("the same training loop, two ways of writing the update")
ax.legend()
plt.show()

# %% [markdown]
# The rebinding version runs without a single error and its loss never moves: the model
# silently stops training. The same trap exists in other shapes: `params[i] = params[i] -
# ...` replaces the list's entry but not the `W1` the forward pass uses, and
# `p.data = ...` swaps the memory under the tensor. Every update in this lesson changes
# the values inside the existing tensors, and so does every state tensor (velocities,
# running averages) that an optimizer keeps.
#
# ## Exercise 2: `sgd_step`
#
# Put the three facts together: for every parameter, step against its gradient, scaled by
# `lr`, in place, under `torch.no_grad()`. Do not zero the gradients here; that is
# `zero_grad`'s job, which the training loop calls. The step only *reads* `p.grad`.

# %% nbgrader={"grade": false, "grade_id": "sgd_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sgd_step(params, lr):
    """One step of plain gradient descent: ``p <- p - lr * p.grad`` for every parameter, in place.

    Args:
        params: a list of float tensors of any shape (leaves with ``requires_grad=True``),
            each with a ``.grad`` of its own shape and dtype.
        lr (float): the learning rate, ``>= 0``.

    Each parameter is updated in place under ``torch.no_grad()``: it stays the same leaf
    tensor (same object, same memory, ``requires_grad`` still True). ``p.grad`` is read and
    left unchanged. Returns ``None``. The result equals ``torch.optim.SGD(params, lr=lr).step()``.
    """
    ### BEGIN SOLUTION
    with torch.no_grad():
        for p in params:
            p.sub_(p.grad, alpha=lr)
    ### END SOLUTION


# %% [markdown]
# How the tests compare you with PyTorch: `demo.side_by_side` starts your function and
# `torch.optim` from the same parameters and, at every step, computes the gradients of the
# *current* parameters (of a small noisy quadratic, or of a tiny network, by
# `torch.autograd`), puts them in `p.grad`, and calls both. After every step it records the
# largest **relative difference**, `|yours - torch| / max(1, largest |torch value| of that
# tensor)`. A correct float32 implementation stays near 1e-7 (rounding); the tolerance is
# 1e-6. On a failure the message gives the first step beyond it and the largest difference.

# %% nbgrader={"grade": true, "grade_id": "test_sgd_step", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# One step, checked directly against torch.optim.SGD. Tolerance 1e-6 (float32 rounding only).
# When graded, also: other problems and shapes, other learning rates (including zero), a small network,
#   float64 parameters and longer runs.
p = checks.seeded(0, 4, 3).requires_grad_(True)
g = checks.seeded(1, 4, 3)
p.grad = g.clone()
params = [p]
with tripwire.forbid("optim", what="sgd_step"):
    sgd_step(params, 0.5)
expected = reference.optimizer_trajectory("sgd", [checks.seeded(0, 4, 3)], lambda k, ps: [g], 1, lr=0.5)[0][0]
checks.assert_close(params[0], expected, "params[0] after sgd_step(params, lr=0.5)", atol=1e-6,
                    hint="subtract lr * p.grad from p, in place, under torch.no_grad()")
# 50 steps beside torch.optim.SGD on a noisy quadratic; after every step, relative difference <= 1e-6.
start, grad_fn = demo.problem("quadratic", seed=0)
run = demo.side_by_side("sgd", sgd_step, start, grad_fn, 50, lr=0.1)
assert run.first_bad_step(1e-6) is None, run.report(1e-6, hint="p -= lr * p.grad for every parameter")
### BEGIN HIDDEN TESTS
# More seeds, shapes (incl. 0-d and size-1), learning rates, a tiny tanh network, float64; 60-80 steps each
# (a wrong rule shows within a few steps; a subtle rounding mistake from the first).
# Tolerance: relative difference <= 1e-6 after every step (measured worst for correct code: 2.3e-7).
for kw, hyper, steps in [(dict(kind="quadratic", seed=1), dict(lr=0.3), 60),
                         (dict(kind="quadratic", seed=2, shapes=((1,), (7,), (3, 1, 2))), dict(lr=0.05), 60),
                         (dict(kind="mlp", seed=1), dict(lr=0.1), 60),
                         (dict(kind="mlp", seed=2, dtype=torch.float64), dict(lr=0.5), 80)]:
    start, grad_fn = demo.problem(**kw)
    run = demo.side_by_side("sgd", sgd_step, start, grad_fn, steps, **hyper)
    assert run.first_bad_step(1e-6) is None, f"problem {kw}: " + run.report(1e-6, hint="p -= lr * p.grad")
# lr = 0 leaves every value exactly as it was.
ps = [checks.seeded(s, 2, 3).requires_grad_(True) for s in (7, 8)]
for p in ps:
    p.grad = torch.ones(2, 3)
with tripwire.forbid("optim", what="sgd_step"):
    sgd_step(ps, 0.0)
for s, p in zip((7, 8), ps):
    checks.assert_equal(p.detach(), checks.seeded(s, 2, 3), "a parameter after sgd_step(params, lr=0)")
### END HIDDEN TESTS

# %% [markdown]
# ## Momentum: a ball rolling downhill
#
# Plain gradient descent has no memory: each step looks only at the slope under its feet.
# That hurts most in a long, narrow valley, the typical shape of a network's loss near a
# good solution. Across the valley the walls are steep, so the gradient is large and
# points mostly *across*; along the floor the slope is gentle. A learning rate small enough
# not to fly out across the steep walls is far too small for the gentle floor: SGD
# zigzags from wall to wall while creeping along.
#
# Momentum gives the weights a velocity `v`, like a ball with mass:
#
# $$v \leftarrow \mu\, v + g, \qquad p \leftarrow p - \text{lr}\cdot v$$
#
# with `mu` (typically 0.9) the fraction of the velocity kept from one step to the next.
# Two cases show what it does:
#
# * **A steady slope** (the same `g` every step): `v` grows towards `g / (1 - mu)`, ten
#   times `g` for `mu = 0.9`. Along the valley floor the ball picks up speed.
# * **A zigzag** (`g` flipping sign every step): successive gradients cancel inside `v`,
#   which stays near `g / (1 + mu)`. Across the valley the back-and-forth is averaged away.
#
# The picture runs both on the valley `0.5 * (x**2 / 25 + 4 * y**2)`, a hundred times
# steeper across (`y`) than along (`x`), with the same learning rate 0.45 (SGD's limit
# there is `2 / 4 = 0.5`) and `mu = 0.6`.

# %%
paths = demo.race(lr=0.45, mu=0.6, steps=60)
fig = demo.plot_race({name: paths[name] for name in ("SGD", "momentum")})
plt.show()

# %% [markdown]
# Both bounce across the valley at first. Then SGD creeps along the gentle floor and after
# 60 steps has covered less than two thirds of the way, while momentum, whose velocity
# builds up along the floor, gets nearly all the way to the minimum. Above
# `lr = 0.5`, SGD's bounces grow without bound, while momentum stays stable up to
# `lr = 2 (1 + mu) / 4`: you will try that in the race below.
#
# A word on conventions, since they differ between papers and libraries: PyTorch's is the
# one above, `v = mu * v + g` with the learning rate applied when stepping. Some texts
# average instead, `v = mu * v + (1 - mu) * g`, which makes the steps ten times smaller for
# the same `lr`; others fold the learning rate into the velocity, `v = mu * v + lr * g`,
# `p -= v`. Yours must be PyTorch's, and the velocity you keep must be PyTorch's `v`.
#
# ## Exercise 3: `momentum_step`
#
# `velocities` is a list of tensors shaped like the parameters, all zeros before the first
# step (the caller creates them, for instance `[torch.zeros_like(p) for p in params]`).
# Update each velocity **in place**, then each parameter.

# %% nbgrader={"grade": false, "grade_id": "momentum_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def momentum_step(params, velocities, lr, mu=0.9):
    """One step of SGD with momentum, PyTorch's convention, in place.

    For every parameter ``p`` and the velocity ``v`` at the same position of the two lists::

        v <- mu * v + p.grad
        p <- p - lr * v

    Args:
        params: a list of float tensors (leaves with ``requires_grad=True``), each with a ``.grad``.
        velocities: a list of tensors shaped like ``params``, zeros before the first step.
            Each is updated in place; after the call it holds the new ``v`` (what
            ``torch.optim.SGD`` keeps as ``"momentum_buffer"``).
        lr (float): the learning rate.
        mu (float): the momentum, in ``[0, 1)``.

    Updates in place under ``torch.no_grad()`` (same tensor objects, parameters stay leaves);
    ``p.grad`` is read and left unchanged. Returns ``None``. Equal to
    ``torch.optim.SGD(params, lr=lr, momentum=mu).step()``.
    """
    ### BEGIN SOLUTION
    with torch.no_grad():
        for p, v in zip(params, velocities):
            v.mul_(mu).add_(p.grad)
            p.sub_(v, alpha=lr)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_momentum_step", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# 50 steps beside torch.optim.SGD(momentum=0.9) on a noisy quadratic.
# Parameters: relative difference <= 1e-6 after every step. Velocities: relative difference <= 1e-4 to
# torch's momentum buffer (a wrong convention is off by a factor such as lr or 1 - mu).
# When graded, also: other problems and learning rates, mu from zero to close to one, a small network,
#   float64, and a call without mu (the default must apply).
MOMENTUM_HINT = ("PyTorch's convention: v = mu * v + p.grad (no (1 - mu) factor, no lr inside v), "
                 "then p -= lr * v; keep v in velocities[i], updated in place")
start, grad_fn = demo.problem("quadratic", seed=0)
run = demo.side_by_side("momentum", momentum_step, start, grad_fn, 50, lr=0.05, mu=0.9)
assert run.first_bad_step(1e-6) is None, run.report(1e-6, hint=MOMENTUM_HINT)
assert run.first_bad_state_step(1e-4) is None, run.report(1e-4, state=True, hint=MOMENTUM_HINT)
### BEGIN HIDDEN TESTS
# More seeds and mu (0 = plain SGD, 0.5, 0.99), a tiny tanh network, float64; tolerances as above
# (measured worst for correct code: parameters 3e-7, velocities 4e-6).
for kw, hyper, steps in [(dict(kind="mlp", seed=1), dict(lr=0.05, mu=0.9), 60),
                         (dict(kind="quadratic", seed=3), dict(lr=0.1, mu=0.5), 60),
                         (dict(kind="quadratic", seed=4), dict(lr=0.1, mu=0.0), 60),
                         (dict(kind="mlp", seed=2, dtype=torch.float64), dict(lr=0.01, mu=0.99), 80)]:
    start, grad_fn = demo.problem(**kw)
    run = demo.side_by_side("momentum", momentum_step, start, grad_fn, steps, **hyper)
    assert run.first_bad_step(1e-6) is None, f"problem {kw}: " + run.report(1e-6, hint=MOMENTUM_HINT)
    assert run.first_bad_state_step(1e-4) is None, f"problem {kw}: " + run.report(1e-4, state=True,
                                                                                  hint=MOMENTUM_HINT)
# The default mu is 0.9: two steps without passing mu, checked directly against torch (tolerance 1e-6).
start, grad_fn = demo.problem("quadratic", seed=9)
want = reference.optimizer_run("momentum", start, grad_fn, 2, lr=0.05, mu=0.9)
ps = [p.clone().requires_grad_(True) for p in start]
vel = [torch.zeros_like(p) for p in start]
for k in (1, 2):
    for p, g in zip(ps, grad_fn(k, [q.detach() for q in ps])):
        p.grad = g
    with tripwire.forbid("optim", what="momentum_step"):
        momentum_step(ps, vel, 0.05)
    for i, (p, v, e, st) in enumerate(zip(ps, vel, *want[k - 1])):
        checks.assert_close(p, e, f"params[{i}] after step {k} of momentum_step(params, velocities, lr=0.05)",
                            atol=1e-6, hint="the default is mu=0.9")
        checks.assert_close(v, st["momentum_buffer"], f"velocities[{i}] after step {k}", atol=1e-6,
                            hint=MOMENTUM_HINT)
### END HIDDEN TESTS

# %% [markdown]
# ## Adam: a step size for every weight
#
# Momentum still uses one learning rate for all 101,770 weights. But their gradients live
# on very different scales: a weight feeding from a pixel that is almost always black gets
# tiny gradients, a bias of the output layer large ones. Adam (Kingma & Ba, 2015) keeps,
# for every single weight, two running averages, and scales each weight's step by them.
#
# * The **first moment** `m`: a running average of the gradient, its smoothed direction,
#   much like momentum's velocity: `m = beta1 * m + (1 - beta1) * g`, `beta1 = 0.9`.
# * The **second moment** `v`: a running average of the *squared* gradient, its typical
#   size whatever its sign: `v = beta2 * v + (1 - beta2) * g * g`, `beta2 = 0.999`.
#
# The step is `lr * m / sqrt(v)` (after a correction explained next). The ratio
# `m / sqrt(v)` is about ±1 when a weight's gradient keeps its sign, and smaller when it
# flips back and forth (the average `m` cancels, the average square `v` does not). Its
# scale is gone: a gradient 1000 times larger gives the same ratio. So every weight moves
# by *at most about `lr`* per step, whether its slope is steep or gentle: in the valley, the
# steep `y` and the gentle `x` get steps of the same size, which is why `lr` for Adam is
# measured in units of the weights (1e-3 is the usual default) rather than of gradients.
#
# ### Bias correction: averages that start at zero
#
# `m` and `v` start at 0, because there is nothing to average yet. After one step,
# `m = 0.1 * g`: a tenth of the only gradient ever seen, far too small. After `t` steps of
# a constant gradient `g`, `m = (1 - beta1**t) * g`, and likewise `v = (1 - beta2**t) * g**2`.
# The early averages are biased towards zero by exactly the factor `1 - beta**t`, so Adam
# divides it out:
#
# $$\hat m = \frac{m}{1-\beta_1^t}, \qquad \hat v = \frac{v}{1-\beta_2^t}$$

# %%
print(f"{'t':>6} {'1 - 0.9**t':>12} {'1 - 0.999**t':>14}")
for t in (1, 2, 5, 10, 100, 1000, 5000):
    print(f"{t:>6} {1 - 0.9 ** t:>12.4f} {1 - 0.999 ** t:>14.4f}")
fig = demo.plot_bias_correction()
plt.show()

# %% [markdown]
# With `beta1 = 0.9` the bias in `m` is gone after a few dozen steps, but with
# `beta2 = 0.999`, `v` needs thousands. Without correction, the first step would be
# `0.1 g / sqrt(0.001 g²) ≈ 3.2` times `lr`, and the steps stay too large for hundreds of
# steps (right picture); with it, a constant gradient gives steps of exactly `lr` from
# the start.
#
# `t` is the number of the step being taken, **counting from 1**: the first update uses
# `t = 1`. With `t = 0` the corrections divide by `1 - beta**0 = 0`; with `t` one too large
# every step is a little off. In this course the training loop increments `t` *before*
# calling `adam_step`, as `torch.optim.Adam` does with its internal step counter.
#
# One numerical detail: compute `1 - beta**t` with Python floats (double precision), as
# PyTorch does. In float32, `0.999` is stored as `0.99900001...`, and `1 - 0.999` keeps only
# about three of float32's seven significant digits.
#
# ### Where `eps` goes
#
# The update divides by the square root of `v_hat`, which can be zero (a weight whose
# gradient has always been 0). A small `eps` (1e-8) prevents the division by zero, and
# PyTorch adds it **outside** the square root:
#
# $$p \leftarrow p - \text{lr}\cdot\frac{\hat m}{\sqrt{\hat v} + \varepsilon}$$
#
# Inside, `sqrt(v_hat + eps)`, it would be a different rule: `sqrt(1e-8)` is `1e-4`, so
# every weight whose gradients are smaller than about `1e-4` would be slowed down
# drastically. Here is the size of Adam's very first step (where `m_hat = g` and
# `v_hat = g**2`) for a few gradient sizes:

# %%
eps = 1e-8
print(f"{'|g|':>8} {'outside: |g| / (|g| + eps)':>28} {'inside: |g| / sqrt(g² + eps)':>30}")
for size in (1.0, 1e-2, 1e-4, 1e-6, 1e-8):
    print(f"{size:>8.0e} {size / (size + eps):>28.4g} {size / math.sqrt(size ** 2 + eps):>30.4g}")

# %% [markdown]
# For ordinary gradients the two agree; for small ones they are worlds apart.
#
# ## Exercise 4: `adam_step`
#
# Everything you need is in the three sections above; putting it together is the
# exercise. For every parameter, in order: fold the new gradient into its two running
# averages (kept **in place** in `ms[i]` and `vs[i]`, which start at zeros and after the
# call hold `m` and `v` themselves, not the corrected versions), correct both for their
# start at zero with this step's number `t`, and step the parameter by `lr` times the
# corrected ratio, with `eps` where PyTorch puts it. Everything else is as before:
# `torch.no_grad()`, parameters changed in place, `p.grad` only read.
#
# Try it on paper for a constant gradient first: at `t = 1` your step should move each
# weight by almost exactly `lr`, as the bias-correction section showed.
#
# <details><summary>Hint: the whole update, if you are stuck</summary>
#
# With `g = p.grad` and `beta1, beta2 = betas`:
# `m = beta1 * m + (1 - beta1) * g` and `v = beta2 * v + (1 - beta2) * g * g` (both in
# place); `m_hat = m / (1 - beta1 ** t)`, `v_hat = v / (1 - beta2 ** t)` (temporaries,
# corrections in Python floats); `p -= lr * m_hat / (sqrt(v_hat) + eps)`.
# </details>

# %% nbgrader={"grade": false, "grade_id": "adam_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def adam_step(params, ms, vs, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """One step of Adam, in place, with the result of ``torch.optim.Adam(params, lr=lr, betas=betas,
    eps=eps).step()`` (no weight decay, no amsgrad). No ``torch.optim`` (nor its functions).

    Args:
        params: a list of float tensors of any shapes and dtype (leaves with ``requires_grad=True``),
            each with a ``.grad`` of its own shape and dtype.
        ms, vs: lists of tensors shaped like ``params`` (same dtype), zeros before the first step,
            updated in place. After the call ``ms[i]`` and ``vs[i]`` hold the running averages of
            the gradients and of their squares, without bias correction: what ``torch.optim.Adam``
            keeps as ``"exp_avg"`` and ``"exp_avg_sq"``.
        t (int): the number of this step, counting from 1: the caller increments ``t`` before
            the call, so the first call has ``t=1``, the second ``t=2``, and so on. Used as
            given: adam_step keeps no count of its own.
        lr (float): the learning rate.
        betas (tuple of two floats): ``(beta1, beta2)``, each in ``[0, 1)``.
        eps (float): ``torch.optim.Adam``'s eps, added to the denominator outside the square root.

    Updates in place under ``torch.no_grad()``: the parameters, ``ms`` and ``vs`` stay the same
    tensor objects (same memory and dtype) and the parameters stay leaves requiring grad;
    ``p.grad`` is read and left unchanged. Returns ``None``.
    """
    ### BEGIN SOLUTION
    beta1, beta2 = betas
    correction1 = 1 - beta1 ** t
    correction2 = 1 - beta2 ** t
    with torch.no_grad():
        for p, m, v in zip(params, ms, vs):
            g = p.grad
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v / correction2).sqrt_().add_(eps)
            p.addcdiv_(m / correction1, denom, value=-lr)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_adam_step", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# 50 steps beside torch.optim.Adam on a noisy quadratic.
# Parameters: relative difference <= 1e-6 after every step. ms, vs: relative difference <= 1e-4 to torch's
# exp_avg and exp_avg_sq.
# When graded, also: other problems, learning rates and betas, a small network, float64, longer runs, and a
#   call passing only t (the defaults for lr, betas and eps must apply, and nothing is returned).
ADAM_HINT = ("m = beta1*m + (1-beta1)*g and v = beta2*v + (1-beta2)*g*g, in place in ms[i], vs[i]; "
             "p -= lr * m_hat / (sqrt(v_hat) + eps) with m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t). "
             "A wrong first step points at the bias correction or t; a difference around 1e-5 at "
             "computing 1 - beta**t in float32 instead of with Python floats")
start, grad_fn = demo.problem("quadratic", seed=0)
run = demo.side_by_side("adam", adam_step, start, grad_fn, 50, lr=0.01)
assert run.first_bad_step(1e-6) is None, run.report(1e-6, hint=ADAM_HINT)
assert run.first_bad_state_step(1e-4) is None, run.report(1e-4, state=True, hint=ADAM_HINT)
### BEGIN HIDDEN TESTS
# More seeds, learning rates and betas, a tiny tanh network, float64; tolerances as above
# (measured worst for correct code: parameters 3.8e-7, ms and vs 7.6e-7).
for kw, hyper, steps in [(dict(kind="mlp", seed=1), dict(lr=1e-3), 60),
                         (dict(kind="mlp", seed=2), dict(lr=1e-2), 60),
                         (dict(kind="quadratic", seed=3), dict(lr=0.03, betas=(0.8, 0.99)), 60),
                         (dict(kind="mlp", seed=4, dtype=torch.float64), dict(lr=0.05), 80)]:
    start, grad_fn = demo.problem(**kw)
    run = demo.side_by_side("adam", adam_step, start, grad_fn, steps, **hyper)
    assert run.first_bad_step(1e-6) is None, f"problem {kw}: " + run.report(1e-6, hint=ADAM_HINT)
    assert run.first_bad_state_step(1e-4) is None, f"problem {kw}: " + run.report(1e-4, state=True,
                                                                                  hint=ADAM_HINT)
# The defaults are lr=1e-3, betas=(0.9, 0.999), eps=1e-8: three steps passing only t (tolerance 1e-6).
start, grad_fn = demo.problem("quadratic", seed=9)
want = reference.optimizer_run("adam", start, grad_fn, 3)
ps = [p.clone().requires_grad_(True) for p in start]
ms, vs = [torch.zeros_like(p) for p in start], [torch.zeros_like(p) for p in start]
for k in (1, 2, 3):
    for p, g in zip(ps, grad_fn(k, [q.detach() for q in ps])):
        p.grad = g
    with tripwire.forbid("optim", what="adam_step"):
        returned = adam_step(ps, ms, vs, k)
    assert returned is None, (f"adam_step returned {type(returned).__name__}; it updates in place and returns "
                              f"None (the caller keeps its own params, ms and vs)")
    for i, (p, e) in enumerate(zip(ps, want[k - 1][0])):
        checks.assert_close(p, e, f"params[{i}] after adam_step(params, ms, vs, t={k}) with default settings",
                            atol=1e-6, hint="defaults: lr=1e-3, betas=(0.9, 0.999), eps=1e-8")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_adam_bias_correction", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Bias correction and the step count t. The first steps are where a missing correction, or t off by one,
# shows most: compare the first three steps with torch.optim.Adam (relative difference <= 1e-6).
# eps=0 in this cell, so that where eps goes plays no part.
# When graded, also: resuming from a saved state at early and late steps (use t as given, never count calls
#   yourself), other betas with a strong correction, and a longer run from scratch.
BIAS_HINT = ("divide m by (1 - beta1**t) and v by (1 - beta2**t), with t as given (1 on the first call); "
             "the first step of Adam moves each weight by about lr")
start, grad_fn = demo.problem("quadratic", seed=0)
run = demo.side_by_side("adam", adam_step, start, grad_fn, 3, lr=0.01, eps=0.0)
assert run.first_bad_step(1e-6) is None, run.report(1e-6, hint=BIAS_HINT)
### BEGIN HIDDEN TESTS
# t is used as given, not counted inside adam_step: resume from torch's own state after step k (params, exp_avg,
# exp_avg_sq), take step k + 1 with t = k + 1, compare with torch's step k + 1 (tolerance 1e-6: one float32 step).
# Later steps first, so that a counter kept between calls cannot pass.
start, grad_fn = demo.problem("quadratic", seed=6)
for betas in ((0.9, 0.999), (0.5, 0.9)):
    want = reference.optimizer_run("adam", start, grad_fn, 100, lr=0.01, betas=betas, eps=0.0)
    for k in (99, 9, 1):
        params_k, states_k = want[k - 1]
        ps = [p.clone().requires_grad_(True) for p in params_k]
        ms = [s["exp_avg"].clone() for s in states_k]
        vs = [s["exp_avg_sq"].clone() for s in states_k]
        for p, g in zip(ps, grad_fn(k + 1, [q.detach() for q in ps])):
            p.grad = g
        with tripwire.forbid("optim", what="adam_step"):
            adam_step(ps, ms, vs, k + 1, 0.01, betas, 0.0)
        for i, (p, e) in enumerate(zip(ps, want[k][0])):
            checks.assert_close(p, e, f"params[{i}] after adam_step(..., t={k + 1}, betas={betas}) resumed from "
                                      f"torch's state after step {k}", atol=1e-6, hint=BIAS_HINT)
# A strong correction (betas (0.5, 0.9)) over 30 steps from scratch.
run = demo.side_by_side("adam", adam_step, *demo.problem("quadratic", seed=7), 30, lr=0.01, betas=(0.5, 0.9),
                        eps=0.0)
assert run.first_bad_step(1e-6) is None, run.report(1e-6, hint=BIAS_HINT)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_adam_eps", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# eps outside the square root. With betas=(0, 0), m_hat = g and v_hat = g * g whatever t, so one step is
# p -= lr * g / (|g| + eps): the bias correction plays no part here. With gradients near 1e-7,
# sqrt(v_hat) + eps and sqrt(v_hat + eps) differ a thousandfold. Compared with torch.optim.Adam (tolerance 1e-6).
# When graded, also: gradients from moderate to tiny, exact-zero gradients (no move, no NaN), other eps
#   values, shapes and step numbers.
EPS_HINT = "add eps after the square root: m_hat / (sqrt(v_hat) + eps), not sqrt(v_hat + eps)"
p = checks.seeded(10, 5, 4).requires_grad_(True)
g = checks.seeded(11, 5, 4, scale=1e-7)
p.grad = g.clone()
params, ms, vs = [p], [torch.zeros(5, 4)], [torch.zeros(5, 4)]
with tripwire.forbid("optim", what="adam_step"):
    adam_step(params, ms, vs, 5, 0.01, (0.0, 0.0), 1e-8)
expected = reference.optimizer_trajectory("adam", [checks.seeded(10, 5, 4)], lambda k, ps: [g], 1, lr=0.01,
                                          betas=(0.0, 0.0))[0][0]
checks.assert_close(params[0], expected, "params[0] after adam_step(..., t=5, lr=0.01, betas=(0, 0)) with "
                                         "gradients of size 1e-7", atol=1e-6, hint=EPS_HINT)
### BEGIN HIDDEN TESTS
# Gradients from 1e-2 down to 1e-10 (and exact zeros, which must not move nor give NaN), eps from 1e-8 to 0.1,
# several shapes and t; betas=(0, 0) as above. Tolerance 1e-6 (one float32 step).
cases = [(1e-2, 1e-8, 2), (1e-4, 1e-8, 3), (1e-6, 1e-8, 9), (1e-10, 1e-8, 4), (1.0, 0.1, 2), (1e-3, 1e-3, 7)]
for n, (size, eps, t) in enumerate(cases):
    shape = [(3,), (4, 5), (2, 3, 2), (1,), (6,), (1, 7)][n]
    start = checks.seeded(20 + n, *shape)
    g = checks.seeded(40 + n, *shape, scale=size)
    p = start.clone().requires_grad_(True)
    p.grad = g.clone()
    params = [p]
    with tripwire.forbid("optim", what="adam_step"):
        adam_step(params, [torch.zeros(shape)], [torch.zeros(shape)], t, 0.01, (0.0, 0.0), eps)
    expected = reference.optimizer_trajectory("adam", [start], lambda k, ps: [g], 1, lr=0.01, betas=(0.0, 0.0),
                                              eps=eps)[0][0]
    checks.assert_close(params[0], expected, f"params[0] after adam_step with gradients of size {size:g}, eps={eps:g}",
                        atol=1e-6, hint=EPS_HINT)
p = torch.ones(3, requires_grad=True)
p.grad = torch.tensor([0.0, 1.0, -1e-9])
params, ms, vs = [p], [torch.zeros(3)], [torch.zeros(3)]
with tripwire.forbid("optim", what="adam_step"):
    adam_step(params, ms, vs, 3, 0.1, (0.0, 0.0), 1e-8)
assert torch.isfinite(params[0]).all(), \
    f"adam_step produced {params[0].detach()} from a zero gradient: a division by zero?"
expected = reference.optimizer_trajectory("adam", [torch.ones(3)], lambda k, ps: [torch.tensor([0.0, 1.0, -1e-9])],
                                          1, lr=0.1, betas=(0.0, 0.0))[0][0]
checks.assert_close(params[0], expected, "params[0] after adam_step with gradients [0, 1, -1e-9]", atol=1e-6,
                    hint=EPS_HINT)
### END HIDDEN TESTS

# %% [markdown]
# ## The rules all three must keep
#
# The comparisons above look only at the numbers. Two more tests check the manners: after
# a step, each parameter is still the **same tensor object** in the same memory, still a
# leaf with `requires_grad=True` and no `grad_fn` (so the update ran under `no_grad` and in
# place), each velocity or moment is also the same tensor, changed in place, and `p.grad`
# is exactly what it was before the step.

# %% nbgrader={"grade": false, "grade_id": "step_test_helpers", "locked": true, "schema_version": 3, "solution": false, "task": false} tags=["helpers"]
# One step of each of your optimizers, with torch.optim off limits (a helper cell: the grader runs it beside each test).
def take_step(kind, ps, state, t):
    with tripwire.forbid("optim", what=f"{kind}_step"):
        if kind == "sgd":
            sgd_step(ps, 0.1)
        elif kind == "momentum":
            momentum_step(ps, state[0], 0.1, 0.9)
        else:
            adam_step(ps, state[0], state[1], t, 0.01, (0.9, 0.999), 1e-8)


# %% nbgrader={"grade": true, "grade_id": "test_updates_in_place", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Parameters and optimizer state are updated in place: same objects, same memory, still leaves, values changed.
# When graded, also: the same checks on a small float64 network over more steps, and the dtype must
#   not change.
for kind, labels in (("sgd", ()), ("momentum", ("velocities",)), ("adam", ("ms", "vs"))):
    name = f"{kind}_step"
    start, grad_fn = demo.problem("quadratic", seed=11)
    ps = [p.clone().requires_grad_(True) for p in start]
    held, ptrs = list(ps), [p.data_ptr() for p in ps]           # what the rest of a program holds
    state = [[torch.zeros_like(p) for p in start] for _ in labels]
    held_state = [list(s) for s in state]
    state_ptrs = [[s.data_ptr() for s in lst] for lst in state]
    for t in (1, 2, 3):
        before = [p.detach().clone() for p in ps]
        state_before = [[s.clone() for s in lst] for lst in state]
        for p, g in zip(ps, grad_fn(t, [q.detach() for q in ps])):
            p.grad = g
        take_step(kind, ps, state, t)
        for i, q in enumerate(held):
            assert ps[i] is q, (f"{name} replaced params[{i}] in the list by a new tensor (params[i] = ...): the rest "
                                f"of the program still holds the old one, which never trains. Update it in place "
                                f"(p -= ...) under torch.no_grad()")
            assert q.data_ptr() == ptrs[i], (f"{name} gave params[{i}] new memory (p.data = ...?); "
                                             f"change its values in place instead")
            assert q.is_leaf and q.grad_fn is None, (f"params[{i}] is no longer a leaf after {name} (grad_fn "
                                                     f"{q.grad_fn}): the update was recorded by autograd; do it "
                                                     f"under torch.no_grad()")
            assert q.requires_grad, f"params[{i}] lost requires_grad=True in {name}; leave it switched on"
            assert not torch.equal(q.detach(), before[i]), f"params[{i}] did not change at step {t} of {name}"
        for label, lst, kept, kept_ptrs, old in zip(labels, state, held_state, state_ptrs, state_before):
            for i, s in enumerate(kept):
                assert lst[i] is s and s.data_ptr() == kept_ptrs[i], (
                    f"{name} replaced {label}[{i}] by a new tensor; the caller keeps the old one, so the next "
                    f"step starts from zeros again. Update it in place (v.mul_(mu).add_(...), or v.copy_(...))")
                assert not torch.equal(s, old[i]), f"{name} did not change {label}[{i}] at step {t}"
### BEGIN HIDDEN TESTS
# The same on the tiny network in float64, over 5 steps.
for kind, labels in (("sgd", ()), ("momentum", ("velocities",)), ("adam", ("ms", "vs"))):
    start, grad_fn = demo.problem("mlp", seed=12, dtype=torch.float64)
    ps = [p.clone().requires_grad_(True) for p in start]
    held, ptrs = list(ps), [p.data_ptr() for p in ps]
    state = [[torch.zeros_like(p) for p in start] for _ in labels]
    held_state = [list(s) for s in state]
    for t in range(1, 6):
        for p, g in zip(ps, grad_fn(t, [q.detach() for q in ps])):
            p.grad = g
        take_step(kind, ps, state, t)
        for i, q in enumerate(held):
            assert ps[i] is q and q.data_ptr() == ptrs[i], f"{kind}_step replaced params[{i}] (float64 network)"
            assert q.is_leaf and q.grad_fn is None and q.requires_grad, \
                f"params[{i}] is not a leaf requiring grad after {kind}_step (float64 network)"
            assert q.dtype == torch.float64, f"{kind}_step changed the dtype of params[{i}]"
        for label, lst, kept in zip(labels, state, held_state):
            assert all(a is b for a, b in zip(lst, kept)), f"{kind}_step replaced an entry of {label}"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_grad_untouched", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The steps only read p.grad: afterwards it is the same tensor with the same values (zeroing is zero_grad's job).
# When graded, also: the same check on a small network over more steps.
for kind in ("sgd", "momentum", "adam"):
    start, grad_fn = demo.problem("quadratic", seed=13)
    ps = [p.clone().requires_grad_(True) for p in start]
    state = [[torch.zeros_like(p) for p in start] for _ in range(2)]
    for t in (1, 2):
        grads = grad_fn(t, start)                     # from the fixed start: finite whatever the step did
        for p, g in zip(ps, grads):
            p.grad = g.clone()
        held = [p.grad for p in ps]
        take_step(kind, list(ps), state, t)          # a copy of the list: only the gradients are judged here
        for i, (p, g) in enumerate(zip(ps, grads)):
            assert p.grad is held[i], f"{kind}_step replaced or removed params[{i}].grad; only read it"
            checks.assert_equal(p.grad, g, f"params[{i}].grad after {kind}_step",
                                hint="the step must leave p.grad as it found it: don't zero it (the training loop "
                                     "calls zero_grad) and don't modify it in place (g += ..., g.mul_(...))")
### BEGIN HIDDEN TESTS
for kind in ("sgd", "momentum", "adam"):
    start, grad_fn = demo.problem("mlp", seed=14)
    ps = [p.clone().requires_grad_(True) for p in start]
    state = [[torch.zeros_like(p) for p in start] for _ in range(2)]
    for t in range(1, 5):
        grads = grad_fn(t, start)
        for p, g in zip(ps, grads):
            p.grad = g.clone()
        take_step(kind, list(ps), state, t)
        for i, (p, g) in enumerate(zip(ps, grads)):
            assert p.grad is not None and torch.equal(p.grad, g), \
                f"{kind}_step changed params[{i}].grad on the tiny network at step {t}"
### END HIDDEN TESTS

# %% [markdown]
# ## The race
#
# Back to the valley, now with all three. The starting point is the black dot, the minimum
# the star. Move the sliders (the picture redraws when you let go):
#
# * **lr above 0.5**: SGD's zigzag across the valley grows at every bounce and it diverges,
#   since 0.5 is `2 / 4`, two over the steep curvature. Momentum survives up to
#   `2 (1 + mu) / 4`: its velocity averages the bounces away.
# * **mu towards 0.9**: the ball gets heavier. Along the floor it arrives sooner, but it
#   overshoots the minimum and swings around it before settling.
# * **Adam's lr**: its steps are about that long in *each* coordinate, steep or not. It
#   heads diagonally at first (equal steps in `x` and `y`), and near the minimum it keeps
#   moving by about `lr` until the averages calm down: a smaller `lr` ends closer.

# %%
demo.race_widget()

# %% [markdown]
# The losses of the default race, step by step (log scale):

# %%
fig = demo.plot_race_losses()
plt.show()

# %% [markdown]
# None of the three wins everywhere. Tuned well, momentum is hard to beat on a valley
# like this one; Adam's appeal is that it needs little tuning, because its step size does
# not depend on how steep each direction is, which is why it is the default choice for
# training networks, and the optimizer lesson 07 uses on MNIST.
#
# ## Your optimizers beside `torch.optim`
#
# Finally, your three functions on the tiny network, 100 steps each, with the largest
# relative difference to `torch.optim` after every step. A correct implementation stays
# below the tolerance: exactly 0 if it happens to do the very same float32 operations as
# PyTorch (such a line is drawn along the bottom), around 1e-7 otherwise: rounding,
# nothing more.

# %%
records = []
for kind, step_fn, hyper in (("sgd", sgd_step, dict(lr=0.1)), ("momentum", momentum_step, dict(lr=0.05, mu=0.9)),
                             ("adam", adam_step, dict(lr=0.01))):
    start, grad_fn = demo.problem("mlp", seed=0)
    records.append(demo.side_by_side(kind, step_fn, start, grad_fn, 100, **hyper))
fig = demo.plot_side_by_side(records)
plt.show()

# %% [markdown]
# **Written question (2 points, graded by hand).** Adam moves every weight by about `lr`
# per step, however large or small that weight's gradient is. Describe one situation in
# training our MNIST network where this helps compared with SGD, and one where it hurts.
# For each, say which part of the update (`m`, `v`, the ratio, `eps`) is responsible.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_adam_scale", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# *Rubric:* 1 point for a situation where it helps, with the mechanism: weights whose gradients are
# consistently small (weights of pixels that are rarely bright, the gentle direction of a valley, layers
# whose gradients are on another scale than others) still move by about `lr`, because the ratio
# `m_hat / sqrt(v_hat)` does not depend on the gradient's scale; so one `lr` fits every weight and needs
# little tuning, where SGD would crawl along them or overshoot elsewhere. 1 point for a situation where it
# hurts, with the mechanism: a weight whose gradient is tiny but keeps its sign (near-noise, or rounding)
# still moves by about `lr`, since only `eps` stops the ratio from growing back to 1; near a minimum the
# steps stay about `lr` long, so Adam keeps jittering around it (the race: a smaller `lr`, or a decaying
# one, ends closer); or a step of `lr` in a strongly curved direction can overshoot where SGD's step, scaled
# by the gradient, would have shrunk. Half a point each when the situation is right but the part of the
# update is missing or wrong.
#
# *Model answer:* It helps for the weights of `W1` that connect rarely bright pixels: their gradients are
# small and SGD with an `lr` chosen for the large gradients barely moves them, while Adam divides by
# `sqrt(v_hat)`, the typical size of that very weight's gradient, and moves them as fast as any other. It
# hurts near the end of training: the gradients are small and noisy but the ratio `m_hat / sqrt(v_hat)` is
# still of order 1 wherever their sign is steady, so every weight keeps moving by about `lr` and the loss
# jitters around the minimum instead of settling; only a smaller `lr` (a schedule) fixes it, and `eps`
# matters only for gradients far below 1e-8.
# ### END SOLUTION

# %% [markdown]
# ## Check yourself
#
# No points, just immediate feedback.

# %%
quiz([
    Question("Why does the update <code>p -= lr * p.grad</code> run inside <code>torch.no_grad()</code>?",
             ["To make it faster on the GPU",
              "Because p is a leaf that requires grad: autograd would otherwise record the update (PyTorch refuses "
              "it in place), and the update is not part of the loss",
              "Because p.grad would otherwise be set to None"],
             answer=1,
             explanation="Without no_grad, the in-place version raises 'a leaf Variable that requires grad is "
                         "being used in an in-place operation', and an out-of-place version turns p into a non-leaf "
                         "chained onto an ever-growing graph."),
    Question("A training loop never zeroes the gradients. What happens?",
             ["Nothing: backward() overwrites .grad each time",
              "Each backward() adds to .grad, so every step uses the sum of all gradients so far, taken at "
              "old weights",
              "PyTorch raises an error on the second backward()"],
             answer=1,
             explanation="Gradients accumulate by design (useful to split a large batch into small ones); "
                         "zero them once per update."),
    Question("Inside a helper, <code>for p in params: p = p - lr * p.grad</code> under no_grad. What happens "
             "to the network?",
             ["It trains normally", "It raises an error",
              "Nothing changes: each new tensor is bound to the loop variable only, the network's tensors keep "
              "their values, and the loss stays flat without any error"],
             answer=2,
             explanation="Write p -= lr * p.grad (or p.sub_(...)): it changes the tensor the network holds."),
    Question("Adam's very first step (t = 1) with a gradient g much larger than eps: how far does each weight move?",
             ["About lr, whatever the size of g",
              "lr * g, like SGD",
              "About 3.2 * lr"],
             answer=0,
             explanation="With bias correction m_hat = g and v_hat = g², so the step is lr * g / (|g| + eps), "
                         "about lr in magnitude; 3.2 * lr is what you would get without the correction."),
    Question("With momentum mu = 0.9 and the same gradient g at every step, the velocity approaches:",
             ["g", "10 g", "0.1 g"],
             answer=1,
             explanation="v = mu * v + g settles where v = 0.9 v + g, that is v = g / (1 - 0.9) = 10 g: on a "
                         "steady slope momentum moves ten times as far as SGD with the same lr."),
])
