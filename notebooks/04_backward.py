# ---
# jupyter:
#   jupytext:
#     formats: source/04_backward//ipynb,notebooks//py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · The backward pass, then autograd by hand
#
# The network can now score an image (lesson 02) and say how wrong the scores are with
# one number, the loss (lesson 03). Training needs one more thing: for each of the
# 101,770 parameters, which way to move it so that the loss goes down, and how strongly.
# That is the **gradient**, and computing it is the job of `loss.backward()`.
#
# This lesson takes that call apart. First you derive every gradient of the
# 784 → 128 → 10 network by hand with the chain rule and check them against PyTorch to
# five decimals. Then you learn to check *any* gradient numerically, and finally you
# build a small autograd engine of your own that finds those gradients by itself, for
# whatever graph you compute.
#
# **You will write:** `cross_entropy_grad`, `backward`, `numerical_grad`, the class `Var`, and
# two operations of your own for it (`tanh` and `*`), whose backward rules you derive yourself.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from grader import checks, reference, tripwire
from grader.data import load_mnist
from grader.widgets import backward as demo
from grader.widgets.quiz import Question, quiz

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# The forward pass and the loss are what you wrote in lessons 02 and 03; they are given
# here, in a stable form built from `max`, `exp`, `sum` and `log`, so that this lesson
# does not depend on your earlier notebooks. Use them freely.

# %% nbgrader={"grade": false, "grade_id": "given", "locked": true, "schema_version": 3, "solution": false, "task": false}
def softmax(logits):
    """Probabilities [B, C] from logits [B, C], row by row (the row maximum is subtracted first)."""
    e = (logits - logits.max(dim=1, keepdim=True).values).exp()
    return e / e.sum(dim=1, keepdim=True)


def cross_entropy(logits, targets):
    """Mean over the batch of -log(softmax(logits)[i, targets[i]]), computed stably; a 0-d tensor."""
    shifted = logits - logits.max(dim=1, keepdim=True).values
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    return -log_probs[torch.arange(logits.shape[0]), targets].mean()


def forward(x, W1, b1, W2, b2):
    """Logits [B, C] of the two-layer network: relu(x @ W1 + b1) @ W2 + b2."""
    return (x @ W1 + b1).clamp(min=0) @ W2 + b2


# %% [markdown]
# We will work on a real batch: the first 64 training images, and the network as lesson
# 01 initialises it with seed 0 (`reference.init_params` is PyTorch's own version of
# that function, with the same numbers).

# %%
X_train, Y_train = load_mnist("train")
x, y = X_train[:64], Y_train[:64]
W1, b1, W2, b2 = reference.init_params(seed=0)
print("x", list(x.shape), " y", list(y.shape), " first targets:", y[:10].tolist())
print("loss of the untrained network:", cross_entropy(forward(x, W1, b1, W2, b2), y).item(),
      " (ln 10 =", round(math.log(10), 4), "for a network that guesses uniformly)")

# %% [markdown]
# ## What a gradient tells you
#
# Pick a single weight `w` and hold everything else fixed: the loss becomes a function of
# one number, `L(w)`. Its derivative `dL/dw` is the slope of that curve at the current
# value. In words: **if you move `w` by a small δ, the loss moves by about δ · dL/dw.**
# The sign says which way is downhill, the size says how sensitive the loss is to this
# particular weight.
#
# The gradient of the loss with respect to a tensor such as `W2` collects those slopes,
# one per entry, so it has exactly the shape of `W2`. Below, the entry of `W2` with the
# steepest slope is moved from -0.5 to +0.5 while everything else stays put; the dashed
# line has the slope PyTorch reports for it.

# %%
dW1_ref, db1_ref, dW2_ref, db2_ref = reference.backward(x, y, W1, b1, W2, b2)   # torch.autograd's answer
flat = int(dW2_ref.abs().argmax())
idx = (flat // dW2_ref.shape[1], flat % dW2_ref.shape[1])
slope = dW2_ref[idx].item()


def loss_of_W2(W):
    return cross_entropy(forward(x, W1, b1, W, b2), y)


fig = demo.plot_nudge(loss_of_W2, W2, idx, slope, name="W2")
plt.show()
before, after = demo.nudge_losses(loss_of_W2, W2, idx, [0.0, 0.01])
print(f"moving W2{list(idx)} by +0.01 changes the loss by {after - before:+.6f}; "
      f"slope x 0.01 predicts {slope * 0.01:+.6f}")

# %% [markdown]
# Close to the current value the curve and the tangent agree; further away the curve
# bends. That is all a gradient promises: a good linear description of the loss *near*
# the current weights. Gradient descent (lesson 05) takes small steps against it.
#
# ## The chain rule, with shapes
#
# Write the forward pass one operation at a time and give every intermediate a name:
#
# | step | value | from (shapes) | shape (B = 64, H = 128) |
# |---|---|---|---|
# | input | `x`, targets `y` | | [B, 784], [B] |
# | first layer | `h_pre = x @ W1 + b1` | [B, 784] @ [784, H] + [H] | [B, H] |
# | ReLU | `h = relu(h_pre)` | [B, H] | [B, H] |
# | second layer | `out = h @ W2 + b2` (the logits) | [B, H] @ [H, 10] + [10] | [B, 10] |
# | loss | `L = cross_entropy(out, y)` | [B, 10], [B] | a scalar |
#
# The chain rule, for plain numbers: if `w` changes `u` and `u` changes `L`, then
# `dL/dw = dL/du · du/dw`; the sensitivities multiply along the way. When a value reaches
# `L` along several paths, the contributions of the paths add up.
#
# The loss depends on `W1` only *through* `h_pre`, which matters only through `h`, which
# matters only through `out`. The chain rule turns that into a recipe that runs from the
# end back to the start: knowing `dL/d(out)`, get `dL/dh`; from it `dL/d(h_pre)`; from it
# `dL/dW1`. Each step needs only the local derivative of one operation. This is the
# *backward pass*, and it reuses the values the forward pass computed (`h_pre`, `h`,
# `x`), which is why they are kept.
#
# We write `d_out` for `dL/d(out)`, `d_h` for `dL/dh`, and so on. One rule will keep you
# out of most trouble: **the gradient of a tensor has the same shape as the tensor.**
# `d_out` is [B, 10] like `out`, `dW1` is [784, H] like `W1`. When you are unsure where a
# transpose goes, there is usually only one arrangement whose shapes fit.
#
# ## Step 1: from the loss to the logits
#
# Take one image with logits `z` (ten numbers) and target class `y`. With
# $p_j = e^{z_j} / \sum_k e^{z_k}$ its loss is
#
# $$\ell = -\log p_y = -z_y + \log \sum_k e^{z_k}.$$
#
# Differentiate with respect to one logit $z_j$. The first term gives $-1$ if $j = y$
# and $0$ otherwise; the second gives $e^{z_j} / \sum_k e^{z_k}$, which is $p_j$:
#
# $$\frac{\partial \ell}{\partial z_j} = p_j - [j = y].$$
#
# The long way round gives the same thing. Softmax's own derivative is
# $\partial p_y / \partial z_j = p_y([j=y] - p_j)$, and the log contributes $-1/p_y$;
# multiplied, the $p_y$ cancels and we are back to $p_j - [j = y]$. That cancellation is
# why no one computes the two pieces separately: the combined form is shorter and never
# divides by a probability that could be 0.
#
# The loss of the batch is the **mean** of the B per-image losses, and the logits of
# image $i$ appear only in $\ell_i$, so every row picks up a factor $1/B$:
#
# $$\frac{\partial L}{\partial z_{ij}} = \frac{p_{ij} - [j = y_i]}{B}
# \qquad\text{that is}\qquad d\_out = \frac{\text{softmax}(out) - \text{one\_hot}(y)}{B}.$$
#
# Read it row by row. The correct class gets $(p_y - 1)/B$, which is negative: stepping
# *against* the gradient raises that logit. Every wrong class gets $p_j / B$, positive:
# it is lowered, more so the more probability it stole. Each row sums to zero, and an
# image already classified with $p_y \approx 1$ contributes almost nothing.

# %% [markdown]
# ## Exercise 1: `cross_entropy_grad`
#
# Write the formula above. `F.one_hot(targets, C)` builds the one-hot matrix (as
# integers: convert it to the logits' dtype), or subtract 1 at `[torch.arange(B),
# targets]` in a copy. Use the given `softmax`; the library's `softmax` and
# `cross_entropy` are off limits here, and so is autograd.

# %% nbgrader={"grade": false, "grade_id": "cross_entropy_grad", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cross_entropy_grad(logits, targets):
    """Gradient of the mean cross-entropy with respect to the logits.

    Args:
        logits: float tensor [B, C], any values (stable for logits like 1e4 or -1e4).
        targets: int64 tensor [B] with values in 0..C-1.

    Returns:
        float tensor [B, C] of the logits' dtype: (softmax(logits) - one_hot(targets)) / B.
        The inputs are not modified. No autograd, no library softmax / cross_entropy.
    """
    ### BEGIN SOLUTION
    B, C = logits.shape
    return (softmax(logits) - F.one_hot(targets, C).to(logits.dtype)) / B
    ### END SOLUTION


# %%
g = cross_entropy_grad(x.new_tensor([[2.0, 1.0, -1.0], [0.0, 0.0, 0.0]]), torch.tensor([0, 2]))
print(g)
print("row sums:", g.sum(dim=1))

# %% nbgrader={"grade": true, "grade_id": "test_cross_entropy_grad", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Against torch.autograd's gradient of F.cross_entropy; tolerance 1e-6 (values are at most 1 / B,
# float32 rounding is about 1e-8).
# When graded, also: other batch sizes (one image up to large batches) and numbers of classes (down
#   to a single class), and the targets must be left unchanged too.
logits = checks.seeded(0, 4, 10, scale=2.0)
targets = torch.tensor([3, 0, 9, 3])
saved = logits.clone()
with tripwire.forbid("softmax", what="cross_entropy_grad"), tripwire.forbid("autograd", what="cross_entropy_grad"):
    got = cross_entropy_grad(logits, targets)
checks.assert_unchanged(saved, logits, "logits")
want = reference.cross_entropy_grad(logits, targets)
checks.assert_shape(got, want.shape, "cross_entropy_grad(logits [4, 10], targets)")
if (got - want * 4).abs().max() < 1e-5:
    raise AssertionError("cross_entropy_grad: every value is 4 times too large for a batch of 4: the loss is a mean "
                         "over the batch, so divide by B")
checks.assert_close(got, want, "cross_entropy_grad(logits [4, 10], targets)", atol=1e-6,
                    hint="(softmax(logits) - one_hot(targets)) / B: subtract 1 only at each row's own target")
### BEGIN HIDDEN TESTS
for seed, (B, C) in [(1, (64, 10)), (2, (1, 10)), (3, (5, 3)), (4, (3, 1)), (5, (128, 10))]:
    gen = torch.Generator().manual_seed(seed)
    logits = checks.seeded(100 + seed, B, C, scale=3.0)
    targets = torch.randint(0, C, (B,), generator=gen)
    saved_l, saved_t = logits.clone(), targets.clone()
    with tripwire.forbid("softmax", what="cross_entropy_grad"), tripwire.forbid("autograd", what="cross_entropy_grad"):
        got = cross_entropy_grad(logits, targets)
    checks.assert_unchanged(saved_l, logits, "logits")
    checks.assert_unchanged(saved_t, targets, "targets")
    checks.assert_close(got, reference.cross_entropy_grad(logits, targets),
                        f"cross_entropy_grad(logits [{B}, {C}], seed {seed})", atol=1e-6,
                        hint="(softmax(logits) - one_hot(targets)) / B, with B the batch size (rows), C the classes")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_cross_entropy_grad_stable", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Huge logits: exp(1000) overflows float32, so softmax must subtract the row maximum first.
# Tolerance 1e-6 as above; PyTorch's own gradient is finite here.
# When graded, also: random batches (including one image) of logits of very different sizes,
#   some shifted far up or far down.
logits = torch.tensor([[1000.0, 0.0, -1000.0], [-500.0, -400.0, -1000.0]])
targets = torch.tensor([1, 1])
with tripwire.forbid("softmax", what="cross_entropy_grad"):
    got = cross_entropy_grad(logits, targets)
checks.assert_close(got, reference.cross_entropy_grad(logits, targets), "cross_entropy_grad(huge logits)",
                    atol=1e-6, hint="subtract each row's maximum before exp (the given softmax does)")
### BEGIN HIDDEN TESTS
for seed, (B, scale, shift) in [(6, (1, 1e4, 0.0)), (7, (16, 100.0, 100.0)), (8, (4, 10.0, -1e4)), (9, (8, 1e4, 5e3))]:
    gen = torch.Generator().manual_seed(seed)
    logits = checks.seeded(200 + seed, B, 10, scale=scale) + shift
    targets = torch.randint(0, 10, (B,), generator=gen)
    with tripwire.forbid("softmax", what="cross_entropy_grad"):
        got = cross_entropy_grad(logits, targets)
    checks.assert_close(got, reference.cross_entropy_grad(logits, targets),
                        f"cross_entropy_grad(logits of size {scale:g} shifted by {shift:g}, batch {B})", atol=1e-6,
                        hint="subtract each row's maximum before exp")
### END HIDDEN TESTS

# %% [markdown]
# ## Step 2: the second layer
#
# `out = h @ W2 + b2`, entry by entry: $out_{ij} = \sum_k h_{ik} W2_{kj} + b2_j$.
#
# **`dW2`.** The weight $W2_{kj}$ appears in $out_{ij}$ for every image $i$, multiplied by
# $h_{ik}$. Its gradient adds those B contributions:
# $\partial L / \partial W2_{kj} = \sum_i h_{ik}\, d\_out_{ij}$, which is a matrix
# product: **`dW2 = h.T @ d_out`**, shapes [H, B] @ [B, 10] = [H, 10]. A weight from
# hidden unit k to class j gets a large gradient when unit k was active on the images
# whose score for j was most wrong.
#
# **`d_h`.** The hidden value $h_{ik}$ feeds all ten outputs of image $i$, through the
# weights $W2_{k\cdot}$: $\partial L/\partial h_{ik} = \sum_j d\_out_{ij} W2_{kj}$, so
# **`d_h = d_out @ W2.T`**, [B, 10] @ [10, H] = [B, H]. Each output's error is sent back
# to the hidden units in proportion to the weights that connect them.
#
# **`db2`.** In `h @ W2 + b2`, the vector `b2` [10] is added to every one of the B rows:
# broadcasting quietly copies it B times. Each copy receives the gradient of its row, and
# a value used in several places collects the **sum** of the gradients of all its uses
# (the chain rule adds over paths). So **`db2 = d_out.sum(dim=0)`**, shape [10]. Copying
# in the forward pass becomes summing in the backward pass; you will meet the same rule
# again when a node of a graph is used twice.
#
# ## Step 3: the ReLU
#
# `h = relu(h_pre)` works entry by entry: where `h_pre > 0` it is the identity (slope 1),
# elsewhere it is flat at 0 (slope 0). So the gradient passes through unchanged where the
# unit was on and is blocked where it was off:
#
# **`d_hpre = d_h * (h_pre > 0)`**, [B, H].
#
# At exactly 0 the ReLU has no derivative; PyTorch uses 0 there, and so do we (hence
# `>`, not `>=`). A hidden unit that is off for every image of the batch passes no
# gradient at all, and its weights will not move on this step.
#
# ## Step 4: the first layer
#
# `h_pre = x @ W1 + b1` has the same form as the second layer, with `x` in place of `h`:
# **`dW1 = x.T @ d_hpre`** ([784, B] @ [B, H] = [784, H]) and **`db1 = d_hpre.sum(dim=0)`**
# ([H]). The formula for `d_x = d_hpre @ W1.T` exists too, but nothing needs it: pixels
# are data, not parameters.
#
# ## All of it in one table
#
# | gradient | formula | shape | what it says |
# |---|---|---|---|
# | `d_out` | `(softmax(out) - one_hot(y)) / B` | [64, 10] | how each score of each image should move |
# | `dW2` | `h.T @ d_out` | [128, 10] | hidden activity times output error, summed over the batch |
# | `db2` | `d_out.sum(0)` | [10] | the output error, summed over the batch |
# | `d_h` | `d_out @ W2.T` | [64, 128] | the error sent back to each hidden unit through its outgoing weights |
# | `d_hpre` | `d_h * (h_pre > 0)` | [64, 128] | the same, blocked where ReLU was off |
# | `dW1` | `x.T @ d_hpre` | [784, 128] | pixel brightness times hidden error, summed over the batch |
# | `db1` | `d_hpre.sum(0)` | [128] | the hidden error, summed over the batch |
#
# The backward pass costs about twice the forward pass: two matrix products per layer
# (one for the weight, one to pass the gradient on) against one.

# %% [markdown]
# ## Exercise 2: `backward`
#
# Put the four steps together: run the forward pass keeping `h_pre` and `h`, then the
# backward pass. Write it for any sizes (`x` [B, D], `W1` [D, H], `W2` [H, C]), not just
# 784, 128 and 10: the gradient check below uses a tiny network. Do not call
# `.backward()` or `torch.autograd`; working on detached tensors (or under
# `torch.no_grad()`) keeps PyTorch from recording anything.
#
# When a final gradient comes out wrong, the question is *which step* broke: a wrong
# `dW1` may come from `d_out`, from `d_h`, from the ReLU mask or from the last product.
# So `backward` also takes an optional dict `trace`: store your three intermediate
# gradients in it (`trace["d_out"]`, `trace["d_h"]`, `trace["d_hpre"]`, one line each)
# and the check below compares every step with PyTorch's, in the order the backward pass
# computes them. The tests ask for it only to explain a failure.

# %% nbgrader={"grade": false, "grade_id": "backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def backward(x, targets, W1, b1, W2, b2, trace=None):
    """Gradients of cross_entropy(relu(x @ W1 + b1) @ W2 + b2, targets) by the chain rule, by hand.

    Args:
        x: float tensor [B, D] (B >= 1).
        targets: int64 tensor [B], values in 0..C-1.
        W1 [D, H], b1 [H], W2 [H, C], b2 [C]: float tensors of x's dtype; they may have
            requires_grad=True.
        trace: None, or a dict: then also store in it the intermediate gradients
            trace["d_out"] = dL/d(logits) [B, C], trace["d_h"] = dL/dh [B, H] (after the ReLU)
            and trace["d_hpre"] = dL/d(h_pre) [B, H] (before it). Only read to explain a failure.

    Returns:
        tuple (dW1, db1, dW2, db2) of tensors shaped like W1, b1, W2, b2: the gradient of the
        batch-mean loss, equal to what loss.backward() would store in .grad (the derivative of
        ReLU at exactly 0 is taken as 0, as PyTorch does). No .backward(), no torch.autograd:
        the parameters' .grad stay untouched. The inputs are not modified.
    """
    ### BEGIN SOLUTION
    x, W1, b1, W2, b2 = (t.detach() for t in (x, W1, b1, W2, b2))
    h_pre = x @ W1 + b1
    h = h_pre.clamp(min=0)
    out = h @ W2 + b2
    d_out = cross_entropy_grad(out, targets)
    dW2 = h.T @ d_out
    db2 = d_out.sum(dim=0)
    d_h = d_out @ W2.T
    d_hpre = d_h * (h_pre > 0)
    dW1 = x.T @ d_hpre
    db1 = d_hpre.sum(dim=0)
    if trace is not None:
        trace.update(d_out=d_out, d_h=d_h, d_hpre=d_hpre)
    return dW1, db1, dW2, db2
    ### END SOLUTION


# %% [markdown]
# The moment of truth: the same batch through PyTorch. `demo.step_report` asks PyTorch
# for every intermediate gradient too (`retain_grad()` keeps `.grad` on non-leaf tensors
# such as the logits) and prints one line per step of your backward pass, in the order
# you computed them: **exact** (bit for bit), **close** (within 1e-5, with the largest
# difference: float32 sums taken in another order) or **WRONG**. Read it top down: the
# first wrong line is the step to fix; the lines below it are wrong because they inherit it.

# %%
trace = {}
dW1_mine, db1_mine, dW2_mine, db2_mine = backward(x, y, W1, b1, W2, b2, trace=trace)
mine = {**trace, "dW1": dW1_mine, "db1": db1_mine, "dW2": dW2_mine, "db2": db2_mine}
print(demo.step_report(mine, x, y, W1, b1, W2, b2))

# %% [markdown]
# And what a bug looks like. Below, PyTorch's own gradients with one classic mistake put
# in by hand: the ReLU's mask forgotten, so that `d_hpre` is just `d_h`. The steps before
# it stay exact; the report points at `d_hpre`, and `dW1` and `db1` below it inherit the
# error.

# %%
buggy = demo.torch_intermediates(x, y, W1, b1, W2, b2)
buggy["d_hpre"] = buggy["d_h"]                                   # the mistake: no (h_pre > 0) mask
buggy["dW1"], buggy["db1"] = x.T @ buggy["d_hpre"], buggy["d_hpre"].sum(dim=0)
print(demo.step_report(buggy, x, y, W1, b1, W2, b2))

# %% nbgrader={"grade": false, "grade_id": "backward_test_helpers", "locked": true, "schema_version": 3, "solution": false, "task": false} tags=["helpers"]
# What the tests of `backward` check, case by case (a helper cell: the grader runs it beside each test).
# Tolerance 1e-5, the contract's (float32 sums over the batch differ from autograd's by about 1e-7).
names = ["dW1", "db1", "dW2", "db2"]
hints = {"dW1": "x.T @ d_hpre, where d_hpre = d_h * (h_pre > 0) and d_h = d_out @ W2.T",
         "db1": "d_hpre.sum(dim=0): b1 was added to every row, so its gradient sums the rows",
         "dW2": "h.T @ d_out, with h taken after the ReLU",
         "db2": "d_out.sum(dim=0), with d_out = (softmax(out) - one_hot(y)) / B"}


def check_backward(xb, tb, params, label):
    saved = [t.detach().clone() for t in (xb, tb, *params)]
    with tripwire.forbid("autograd", what="backward"):
        got = backward(xb, tb, *params)
    assert isinstance(got, (tuple, list)) and len(got) == 4, \
        f"backward{label} should return a tuple (dW1, db1, dW2, db2), got {type(got).__name__}"
    for p, pname in zip(params, ["W1", "b1", "W2", "b2"]):
        assert p.grad is None, (f"backward{label} filled {pname}.grad: compute the gradients yourself and "
                                f"return them, without autograd")
    for before, after, tname in zip(saved, (xb, tb, *params), ["x", "targets", "W1", "b1", "W2", "b2"]):
        checks.assert_unchanged(before, after, tname)
    try:
        for g, e, n in zip(got, reference.backward(xb, tb, *params), names):
            checks.assert_close(g, e, f"backward{label}[{n}]", atol=1e-5, hint=hints[n])
    except checks.CheckFailed as failure:
        raise checks.CheckFailed(f"{failure}\n\nStep by step against PyTorch (the first WRONG line is the step to "
                                 f"fix):\n{step_by_step(xb, tb, params)}") from None


def step_by_step(xb, tb, params):
    """The report of demo.step_report for the student's backward with a trace (or what is missing)."""
    trace = {}
    try:
        with tripwire.forbid("autograd", what="backward"):
            got = backward(xb, tb, *params, trace=trace)
        mine = {**trace, **dict(zip(names, got))}
    except Exception as err:                 # a backward without the trace argument, or one that fails
        return f"  (backward(..., trace={{}}) raised {type(err).__name__}: {err})"
    report = demo.step_report(mine, xb, tb, *params)
    if not trace:
        report += "\n  (store d_out, d_h and d_hpre in trace to see the steps before the final gradients)"
    return report


# %% nbgrader={"grade": true, "grade_id": "test_backward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The 784-128-10 network against torch.autograd (reference.backward), with check_backward above.
# When graded, also: larger batches and other random parameters, with non-zero biases.
gen = torch.Generator().manual_seed(0)
check_backward(torch.rand(8, 784, generator=gen), torch.randint(0, 10, (8,), generator=gen),
               reference.init_params(seed=1), "(batch 8, 784-128-10)")
### BEGIN HIDDEN TESTS
for seed, B in [(2, 64), (3, 64), (4, 100)]:
    gen = torch.Generator().manual_seed(seed)
    params = reference.init_params(seed=seed)
    with torch.no_grad():
        params[1].copy_(checks.seeded(300 + seed, 128, scale=0.1))
        params[3].copy_(checks.seeded(400 + seed, 10, scale=0.1))
    check_backward(torch.rand(B, 784, generator=gen), torch.randint(0, 10, (B,), generator=gen), params,
                   f"(seed {seed}, batch {B}, 784-128-10, non-zero biases)")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_backward_sizes", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# A batch of one image, and sizes other than 784-128-10. Tolerance 1e-5, the contract's.
# When graded, also: a single hidden unit (with a large batch and with one image), and small networks
#   of other input, hidden and class sizes, with inputs that can be negative.
gen = torch.Generator().manual_seed(10)
check_backward(torch.rand(1, 784, generator=gen), torch.tensor([7]), reference.init_params(seed=10),
               "(batch 1)")
### BEGIN HIDDEN TESTS
for seed, (B, D, H, C) in [(11, (64, 784, 1, 10)), (12, (1, 784, 1, 10)), (13, (6, 5, 4, 3)), (14, (3, 2, 7, 2))]:
    gen = torch.Generator().manual_seed(seed)
    params = [checks.seeded(500 + seed, D, H), checks.seeded(600 + seed, H, scale=0.3),
              checks.seeded(700 + seed, H, C), checks.seeded(800 + seed, C, scale=0.3)]
    params = [p.requires_grad_(True) for p in params]
    check_backward(torch.randn(B, D, generator=gen), torch.randint(0, C, (B,), generator=gen), params,
                   f"(batch {B}, {D}-{H}-{C})")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_backward_relu", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Every hidden unit off: no gradient reaches the first layer, so dW1 and db1 are exactly zero.
# Tolerance 1e-5, the contract's.
# When graded, also: all-black images with zero biases, so some pre-activations are exactly 0 (slope 0
#   there), and every other hidden unit switched off for the whole batch.
gen = torch.Generator().manual_seed(20)
W1n, b1n, W2n, b2n = reference.init_params(seed=20)
with torch.no_grad():
    W1n.copy_(-W1n.abs())
    b1n.fill_(-0.1)                                   # x >= 0, W1 <= 0, b1 < 0: every h_pre < 0
check_backward(torch.rand(16, 784, generator=gen), torch.randint(0, 10, (16,), generator=gen),
               (W1n, b1n, W2n, b2n), "(every pre-activation negative)")
### BEGIN HIDDEN TESTS
# Some pre-activations exactly 0 (an all-black image and zero biases): the ReLU's slope there is 0.
gen = torch.Generator().manual_seed(21)
xz = torch.rand(8, 784, generator=gen)
xz[[0, 5]] = 0.0
params = reference.init_params(seed=21)
check_backward(xz, torch.randint(0, 10, (8,), generator=gen), params,
               "(two all-black images: h_pre exactly 0; use h_pre > 0, not >= 0)")
# Half the units dead for the whole batch.
params = reference.init_params(seed=22)
with torch.no_grad():
    params[0][:, ::2] = -params[0][:, ::2].abs()
    params[1][::2] = -1.0
check_backward(torch.rand(32, 784, generator=gen), torch.randint(0, 10, (32,), generator=gen), params,
               "(every other hidden unit off)")
### END HIDDEN TESTS

# %% [markdown]
# ## Checking a gradient with nothing but the function
#
# Agreement with `loss.backward()` is a fine test while PyTorch is at hand. But you will
# sometimes write the backward pass of an operation PyTorch does not have, or doubt
# PyTorch itself. There is a check that needs only the forward pass: nudge one input and
# watch the output, which is the definition of a derivative used as a measurement.
#
# **Forward differences** use $\frac{f(x + \varepsilon) - f(x)}{\varepsilon}$. Taylor's
# expansion $f(x+\varepsilon) = f(x) + \varepsilon f'(x) + \tfrac{\varepsilon^2}{2}
# f''(x) + \tfrac{\varepsilon^3}{6} f'''(x) + \dots$ shows that this is
# $f'(x) + \tfrac{\varepsilon}{2} f''(x) + \dots$: the error shrinks only like
# $\varepsilon$.
#
# **Central differences** use $\frac{f(x + \varepsilon) - f(x - \varepsilon)}{2\varepsilon}$.
# Subtracting the two expansions cancels every even power, and what is left is
# $f'(x) + \tfrac{\varepsilon^2}{6} f'''(x) + \dots$: an error like $\varepsilon^2$. With
# $\varepsilon = 10^{-3}$ that is about $10^{-7}$ (relative) against $10^{-3}$, for the
# same two evaluations per entry.
#
# Why not make ε tiny? Because every evaluation of `f` is rounded. In float32 a number
# carries about 7 significant digits (relative rounding $\approx 6 \cdot 10^{-8}$), so
# `f(x+ε) - f(x-ε)` for a loss near 2.3 is uncertain by about $10^{-7}$, and dividing by
# $2\varepsilon = 2 \cdot 10^{-3}$ blows that up to $10^{-4}$: as large as many entries of
# `dW1`. Making ε smaller makes it worse. In float64 (about 16 digits) the same noise is
# around $10^{-13}$. So a gradient check computes in **float64**, with central differences.
#
# The picture measures the relative error of both recipes, in both precisions, on
# `d/dx exp(x)` at `x = 1`. The falling side of each V is the truncation error ($\varepsilon$
# or $\varepsilon^2$), the rising side is rounding ($\approx$ precision / ε).

# %%
fig = demo.plot_difference_errors()
plt.show()
for label, dtype, central in [("central float64", torch.float64, True), ("forward float64", torch.float64, False),
                              ("central float32", torch.float32, True), ("forward float32", torch.float32, False)]:
    print(f"{label}: relative error at eps = 1e-3: {demo.difference_errors([1e-3], dtype, central)[0]:.1e}")

# %% [markdown]
# At ε = 1e-3, central differences in float64 are good to about 2e-7, three thousand times
# better than forward differences. Float32 never does much better than 1e-5 (its
# occasional dips are luck), and for small steps it is useless.
#
# The price: two evaluations of the whole function for **each** entry. For `W1` alone
# that is 200,704 forward passes, where the backward pass gets every gradient for the
# cost of about two. Numerical gradients are for checking on small problems, never for
# training.
#
# ## Exercise 3: `numerical_grad`
#
# For each entry of `x`, in turn: move it up by ε and evaluate `f`, move it down by ε and
# evaluate `f`, put it back, store the difference over 2ε. Work on a float64 **copy** of
# `x` (note that `.double()` of a tensor that is already float64 returns that very
# tensor, not a copy). `x.reshape(-1)` of a contiguous copy is a view, so writing into it
# writes into the copy; `float(f(...))` turns the result into a Python number.

# %% nbgrader={"grade": false, "grade_id": "numerical_grad", "locked": false, "schema_version": 3, "solution": true, "task": false}
def numerical_grad(f, x, eps=1e-3):
    """Gradient of a scalar function by central differences, computed in float64.

    Args:
        f: a function taking a float64 tensor of x's shape and returning a scalar (a 0-d or
            one-element tensor, or a Python number).
        x: float tensor of any shape (0-d included), any float dtype; not modified.
        eps (float): the step.

    Returns:
        float64 tensor of x's shape whose entry i is
        (f(x + eps * e_i) - f(x - eps * e_i)) / (2 * eps), where e_i is 1 at entry i and 0
        elsewhere, and f is always called on float64 tensors. No autograd.
    """
    ### BEGIN SOLUTION
    z = x.detach().to(torch.float64).clone()
    grad = torch.zeros_like(z)
    zf, gf = z.reshape(-1), grad.reshape(-1)
    for i in range(zf.numel()):
        keep = zf[i].item()
        zf[i] = keep + eps
        up = float(f(z))
        zf[i] = keep - eps
        down = float(f(z))
        zf[i] = keep
        gf[i] = (up - down) / (2 * eps)
    return grad
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_numerical_grad", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The recipe: shape, untouched input, values. Tolerance 1e-3 + 1e-3 relative: loose on purpose, this
# cell checks the formula; the next one checks the precision.
# When graded, also: several other smooth functions, x of other shapes (including 0-d and 3-d), and
#   an f that returns a Python float instead of a tensor.
xs = torch.tensor([1.0, -2.0, 3.0])
saved = xs.clone()
with tripwire.forbid("autograd", what="numerical_grad"):
    got = numerical_grad(lambda z: (z ** 2).sum(), xs)
checks.assert_unchanged(saved, xs, "x")
checks.assert_close(got, torch.tensor([2.0, -4.0, 6.0], dtype=torch.float64), "numerical_grad(sum(z**2), [1, -2, 3])",
                    atol=1e-3, rtol=1e-3, check_dtype=False,
                    hint="(f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for each entry i, then put the entry back")
### BEGIN HIDDEN TESTS
smooth = [   # (name, f given to numerical_grad, the same f as a tensor function for torch.autograd)
    ("sum(sin(z)) + prod(z**2)", lambda z: torch.sin(z).sum() + (z ** 2).prod(), None),
    ("weighted tanh + z**3 / 3",
     lambda z: (torch.tanh(z) * torch.arange(z.numel(), dtype=z.dtype).reshape(z.shape)).sum() + (z ** 3).sum() / 3,
     None),
    ("log(sum(exp(z)))", lambda z: torch.log(torch.exp(z).sum()), None),
    ("sum(z * cos(z)) returned as a Python float", lambda z: float((z * torch.cos(z)).sum()),
     lambda z: (z * torch.cos(z)).sum()),
]
for seed, shape in [(30, (5,)), (31, (3, 4)), (32, (2, 3, 2)), (33, ()), (34, (1,))]:
    for fname, f, f_tensor in smooth:
        xs = checks.seeded(seed, max(math.prod(shape), 1)).reshape(shape)
        saved = xs.clone()
        with tripwire.forbid("autograd", what="numerical_grad"):
            got = numerical_grad(f, xs)
        checks.assert_unchanged(saved, xs, "x")
        checks.assert_close(got, reference.gradient(f_tensor or f, xs),
                            f"numerical_grad({fname}) at x of shape {list(shape)}", atol=1e-3, rtol=1e-3,
                            check_dtype=False, hint="one entry at a time, central differences; return x's shape")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_numerical_grad_float64", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Precision. f = 1000 * sum(exp(z)) is about 1e4, so float32 rounds each value of f by about 1e-3,
# an error of about 0.5 in a derivative of about 1e3 (relative 5e-4); forward differences are off by
# eps/2 = 5e-4 relative. Central differences in float64 are off by eps**2/6 = 1.7e-7 relative.
# Tolerance: 1e-5 relative, between the two.
# When graded, also: a large-valued f that float32 gets wrong, x of other shapes, a float64 x that
#   must come back exactly unchanged, and the eps you are given must be the step used.
seen = set()


def big_exp(z):
    seen.add(z.dtype)
    return (torch.exp(z) * 1e3).sum()


xs = checks.seeded(40, 6)
with tripwire.forbid("autograd", what="numerical_grad"):
    got = numerical_grad(big_exp, xs)
assert seen == {torch.float64}, (f"numerical_grad called f with {sorted(map(str, seen))} tensors: convert x to a "
                                 f"float64 copy first, and perturb that")
checks.assert_close(got, reference.gradient(big_exp, xs), "numerical_grad(1000 * sum(exp(z)))", rtol=1e-5,
                    check_dtype=False, hint="central differences, (f(x+eps) - f(x-eps)) / (2 eps), all in float64")
checks.assert_dtype(got, torch.float64, "numerical_grad(...)", hint="return the float64 result, do not convert back")
### BEGIN HIDDEN TESTS
# A quadratic plus a large constant: central differences are exact on it (float64 rounding of f ~ 1e4
# gives about 1e-9 here, hence atol 1e-6), while float32 rounds f by about 1e-3 (an error near 0.5).


def big_quadratic(z):
    seen.add(z.dtype)
    return (z ** 2).sum() + 1e4


for seed, shape in [(41, (3, 4)), (42, (7,)), (43, (2, 2, 2))]:
    xs = checks.seeded(seed, *shape)
    seen.clear()
    with tripwire.forbid("autograd", what="numerical_grad"):
        got = numerical_grad(big_quadratic, xs)
    assert seen == {torch.float64}, "numerical_grad must call f on float64 tensors"
    checks.assert_close(got, 2 * xs.double(), f"numerical_grad(sum(z**2) + 1e4) at shape {list(shape)}",
                        atol=1e-6, hint="compute in float64: float32 loses the small changes of a large f")
# A float64 x must come back untouched (x.double() is x itself when x is already float64).
xs = checks.seeded(44, 40, 25, dtype=torch.float64)      # 1000 entries: an inexact restore shows somewhere
saved = xs.clone()
got = numerical_grad(lambda z: (torch.exp(z) * 1e3).sum(), xs)
checks.assert_unchanged(saved, xs, "x (float64)", hint="clone the float64 copy: x.double() returns x itself when x "
                                                         "is already float64, and restoring by adding eps back "
                                                         "rounds")
checks.assert_close(got, reference.gradient(lambda z: (torch.exp(z) * 1e3).sum(), xs), "numerical_grad at float64 x",
                    rtol=1e-5, check_dtype=False)
# The step passed in is the step used: for sum(z**3), central differences give 3 z**2 + eps**2 exactly.
xs = checks.seeded(45, 5)
for eps in (1e-2, 1e-3):
    got = numerical_grad(lambda z: (z ** 3).sum(), xs, eps=eps)
    checks.assert_close(got, 3 * xs.double() ** 2 + eps ** 2, f"numerical_grad(sum(z**3), eps={eps:g})", atol=1e-7,
                        check_dtype=False, hint="use the eps argument, not a fixed step; divide by 2 * eps")
### END HIDDEN TESTS

# %% [markdown]
# ## Gradient-check your own `backward`
#
# Now use one exercise to test another. A tiny network (5 inputs, 4 hidden units, 3
# classes, 6 images) in float64 keeps the check to 78 evaluations. The measure is the
# relative error $\lVert a - n \rVert / (\lVert a \rVert + \lVert n \rVert)$ between the
# analytic gradient `a` and the numerical one `n`. With ε = 1e-3 in float64, central
# differences themselves are off by about ε²/6 ≈ 2e-7, so as a rule of thumb: around 1e-7
# or below is right, 1e-4 deserves a look, above 1e-2 is a bug.

# %%
gen = torch.Generator().manual_seed(4)
xt = torch.rand(6, 5, generator=gen, dtype=torch.float64)
yt = torch.randint(0, 3, (6,), generator=gen)
tiny = [torch.randn(5, 4, generator=gen, dtype=torch.float64), 0.1 * torch.randn(4, generator=gen, dtype=torch.float64),
        torch.randn(4, 3, generator=gen, dtype=torch.float64), 0.1 * torch.randn(3, generator=gen, dtype=torch.float64)]


def relative_error(a, n):
    return ((a - n).norm() / (a.norm() + n.norm()).clamp(min=1e-30)).item()


def numerical_backward(xb, tb, params):
    grads = []
    for i in range(4):
        def loss_of(p, i=i):
            ps = list(params)
            ps[i] = p
            return cross_entropy(forward(xb, *ps), tb)
        grads.append(numerical_grad(loss_of, params[i]))
    return grads


analytic = backward(xt, yt, *tiny)
numeric = numerical_backward(xt, yt, tiny)
for name, a, n in zip(["dW1", "db1", "dW2", "db2"], analytic, numeric):
    print(f"{name}: relative error {relative_error(a, n):.1e}")
print("and what a bug looks like (forgetting to divide by B = 6):",
      f"{relative_error(analytic[0] * 6, numeric[0]):.2f}")

# %% [markdown]
# Errors around 1e-7, the size of the finite differences' own error: your backward pass
# agrees with the definition of the derivative, and you did not need PyTorch to know it. One trap: ReLU has a kink at 0, and if some `h_pre`
# lies within ε of 0, the two evaluations land on different sides of it and that entry
# of the numerical gradient is wrong. With random float64 inputs this is rare; if one
# check fails on a single entry, look there first.
#
# ## Autograd by hand
#
# Look back at the backward pass you wrote. Every operation of the forward pass had a
# small, fixed rule that turns the gradient of its output into gradients of its inputs:
#
# | operation | forward | backward: given `g = dL/d(out)` |
# |---|---|---|
# | matrix product | `out = a @ b` | `d_a += g @ b.T`, `d_b += a.T @ g` |
# | addition (with broadcasting) | `out = a + b` | `d_a += g`, `d_b += g` summed back to `b`'s shape |
# | ReLU | `out = relu(a)` | `d_a += g * (a > 0)` |
# | mean cross-entropy | `out = CE(a, y)` | `d_a += g * (softmax(a) - one_hot(y)) / B` |
#
# Nothing in those rules knows about *our* network. An automatic differentiation engine
# records, during the forward pass, which operation made each value and from which inputs
# (a graph), and keeps each operation's backward rule next to it. The backward pass then
# only has to call those rules in the right order. That is all `loss.backward()` is, and
# the class below, well under a hundred lines, is a working version of it over whole
# tensors.
# This is *reverse mode*: one pass from the loss back gives the gradient with respect to
# every value in the graph, however many parameters there are.
#
# **The right order.** A value may pass its gradient on only once it has received every
# contribution, from every operation that used it. An ordering of the graph in which each
# node comes after the nodes it was computed from is a *topological order*; walking it
# backwards from the loss visits each node after all of its users. A depth-first search
# gives one: visit a node's inputs first (skipping nodes already visited), then append
# the node. Each node must be processed **once**: if a node shared by two paths ran its
# rule twice, its gradient would be sent on twice.
#
# The widget walks that order on our network. Arrows point the way the forward pass
# went; each **Step** moves the backward pass one node further back (orange), and
# shows the shape and norm of that node's gradient (computed here by PyTorch). Notice
# that `h` is visited only after `h@W2`, its one user, and that every parameter's
# gradient has the parameter's shape.

# %%
demo.backward_stepper(x, y, W1, b1, W2, b2)

# %% [markdown]
# ## Three classic bugs
#
# **1. A value used twice.** In `y = a + a`, or when one hidden layer feeds two heads,
# `a` receives a gradient from each use, and its true gradient is their sum. An engine
# that *assigns* (`a.grad = ...`) keeps only the last contribution. Rule: always
# **add into** `.grad`. A related trap: when `.grad` is still `None` and you store the
# incoming tensor itself, a later in-place `+=` on it would also change the gradient of
# the node it came from. Store a new tensor (`g.clone()`, or `g + 0`) the first time.
#
# **2. Calling backward twice.** Because gradients are added in, a second
# forward-and-backward pass adds a second gradient on top of the first. PyTorch does
# exactly this, on purpose (it lets you sum gradients over several small batches):

# %%
w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
for attempt in (1, 2):
    (w * w).sum().backward()
    print(f"after backward #{attempt}: w.grad = {w.grad.tolist()}")
w.grad = None
(w + w).sum().backward()
print("w used twice in w + w: w.grad =", w.grad.tolist())

# %% [markdown]
# Training must therefore reset the gradients before every step (`zero_grad`, lesson 05).
# Your `Var` must behave the same way.
#
# **3. Broadcasting.** `h @ W2 + b2` adds a [10] vector to a [B, 10] matrix. The gradient
# arriving at the sum is [B, 10], but `b2.grad` must be [10]. As in Step 2, sum over the
# dimensions that broadcasting invented: leading dimensions that `b` does not have, and
# dimensions where `b` has size 1 (keeping them). When the shapes are equal there is
# nothing to sum. (PyTorch calls this reduction `Tensor.sum_to_size`.)
#
# ## Exercise 4: `Var`
#
# Complete the class. `__init__` is given: a `Var` holds `data`, `grad` (None until a
# backward pass reaches it), the Vars it was computed from (`_parents`) and a function
# `_backward_fn` that, once `self.grad` is known, adds the right amounts into the
# parents' `.grad`. Each operation creates the output `Var`, then defines that function
# as a closure next to its forward computation.
#
# * `_add_to_grad(g)`: add `g` into `.grad` (store a new tensor the first time).
# * `__matmul__`, `__add__`, `relu`, `cross_entropy`: forward and backward, following the
#   table above. `cross_entropy` may use the given `cross_entropy` and your
#   `cross_entropy_grad`.
# * `backward()`: topological order, a gradient of 1 (`torch.ones_like`) for the Var it
#   is called on, then each node's `_backward_fn` in reverse order.
#
# No torch autograd anywhere (`Var` never sets `requires_grad`), and no library softmax.

# %% nbgrader={"grade": false, "grade_id": "Var", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Var:
    """A tensor that remembers how it was computed, so that gradients can flow back to it.

    Var(data) wraps a plain tensor (no requires_grad). ``.data`` is that tensor; ``.grad`` is
    None until a backward pass reaches this Var, then a tensor of ``.data``'s shape holding
    dL/d(this Var), added into (never overwritten) by every backward pass that reaches it.
    """

    def __init__(self, data, parents=(), backward_fn=None):
        self.data = data                    # the plain tensor
        self.grad = None                    # dL/d(this), filled in by backward()
        self._parents = tuple(parents)      # the Vars this one was computed from
        self._backward_fn = backward_fn     # adds into the parents' .grad, once self.grad is known

    def __repr__(self):
        grad = "None" if self.grad is None else f"tensor{list(self.grad.shape)}"
        return f"Var(data=tensor{list(self.data.shape)}, grad={grad})"

    def _add_to_grad(self, g):
        """Add the tensor g (of .data's shape) into self.grad; the first time, store a new tensor."""
        ### BEGIN SOLUTION
        if self.grad is None:
            self.grad = g.clone()
        else:
            self.grad += g
        ### END SOLUTION

    def __matmul__(self, other):
        """self @ other for 2-D Vars [n, k] @ [k, m]; returns a new Var [n, m]."""
        ### BEGIN SOLUTION
        out = Var(self.data @ other.data, parents=(self, other))

        def backward_fn():
            self._add_to_grad(out.grad @ other.data.T)
            other._add_to_grad(self.data.T @ out.grad)

        out._backward_fn = backward_fn
        return out
        ### END SOLUTION

    def __add__(self, other):
        """self + other for Vars; other may broadcast like a bias ([B, H] + [H]).

        Returns a new Var; in the backward pass each input receives the output's gradient
        summed back to its own shape.
        """
        ### BEGIN SOLUTION
        out = Var(self.data + other.data, parents=(self, other))

        def sum_to(g, shape):
            while g.dim() > len(shape):                 # leading dimensions that broadcasting added
                g = g.sum(dim=0)
            for d, size in enumerate(shape):            # dimensions that were 1 and got stretched
                if size == 1 and g.shape[d] != 1:
                    g = g.sum(dim=d, keepdim=True)
            return g

        def backward_fn():
            self._add_to_grad(sum_to(out.grad, self.data.shape))
            other._add_to_grad(sum_to(out.grad, other.data.shape))

        out._backward_fn = backward_fn
        return out
        ### END SOLUTION

    def relu(self):
        """max(self, 0) entry by entry; a new Var. Its derivative at exactly 0 is taken as 0."""
        ### BEGIN SOLUTION
        out = Var(self.data.clamp(min=0), parents=(self,))

        def backward_fn():
            self._add_to_grad(out.grad * (self.data > 0))

        out._backward_fn = backward_fn
        return out
        ### END SOLUTION

    def cross_entropy(self, targets):
        """Mean cross-entropy of logits self [B, C] against targets (a plain int64 tensor [B]).

        Returns a scalar Var (0-d data). No library softmax / cross_entropy.
        """
        ### BEGIN SOLUTION
        out = Var(cross_entropy(self.data, targets), parents=(self,))

        def backward_fn():
            self._add_to_grad(out.grad * cross_entropy_grad(self.data, targets))

        out._backward_fn = backward_fn
        return out
        ### END SOLUTION

    def backward(self):
        """Fill .grad of every Var this one depends on.

        Starts from a gradient of ones (of self.data's shape, 1 for a scalar loss) added into
        self.grad, then runs each node's backward function once, in reverse topological order,
        so that a node passes its gradient on only after it has received all of it.
        """
        ### BEGIN SOLUTION
        order, visited = [], set()

        def visit(v):
            if id(v) in visited:
                return
            visited.add(id(v))
            for parent in v._parents:
                visit(parent)
            order.append(v)

        visit(self)
        self._add_to_grad(torch.ones_like(self.data))
        for v in reversed(order):
            if v._backward_fn is not None:
                v._backward_fn()
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_var_basics", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The forward values of each operation, and .grad left None until backward(). Tolerance 1e-6
# (float32 rounding of a few operations).
# When graded, also: other batch and layer sizes (including one image); inputs must stay unchanged,
#   .grad None before backward(), and Var must not use torch autograd inside.
a, b, c = Var(checks.seeded(50, 3, 4)), Var(checks.seeded(51, 4, 2)), Var(checks.seeded(52, 2))
assert torch.equal(a.data, checks.seeded(50, 3, 4)) and a.grad is None, "Var(t).data must be t and .grad None"
t3 = torch.tensor([0, 1, 1])
with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
    z = a @ b
    s = z + c
    r = s.relu()
    loss = r.cross_entropy(t3)
for v, vname in [(z, "a @ b"), (s, "a @ b + c"), (r, "(a @ b + c).relu()"), (loss, "....cross_entropy(t)")]:
    assert isinstance(v, Var), f"{vname} should be a Var, got {type(v).__name__}"
checks.assert_close(z.data, a.data @ b.data, "(a @ b).data", atol=1e-6)
checks.assert_close(s.data, a.data @ b.data + c.data, "(a @ b + c).data", atol=1e-6)
checks.assert_close(r.data, reference.relu(s.data), "(...).relu().data", atol=1e-6)
checks.assert_close(loss.data, reference.cross_entropy(r.data, t3), "(...).cross_entropy(t).data", atol=1e-6,
                    hint="the mean over the batch, as a 0-d tensor")
for v, vname in [(a, "a"), (b, "b"), (c, "c"), (z, "a @ b"), (loss, "loss")]:
    assert v.grad is None, f"{vname}.grad should still be None: no backward pass has run yet"
### BEGIN HIDDEN TESTS
for seed, (B, H, C) in [(53, (1, 6, 4)), (54, (9, 2, 5))]:
    u, v_, bb = Var(checks.seeded(seed, B, H)), Var(checks.seeded(seed + 100, H, C)), Var(checks.seeded(seed + 200, C))
    tt = torch.randint(0, C, (B,), generator=torch.Generator().manual_seed(seed))
    saved = [u.data.clone(), v_.data.clone(), bb.data.clone()]
    with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
        loss = ((u @ v_) + bb).relu().cross_entropy(tt)
    checks.assert_close(loss.data, reference.cross_entropy(reference.relu(u.data @ v_.data + bb.data), tt),
                        f"loss.data (batch {B})", atol=1e-6)
    for before, var, vname in zip(saved, (u, v_, bb), ["a", "b", "bias"]):
        checks.assert_unchanged(before, var.data, f"{vname}.data")
        assert var.grad is None, f"{vname}.grad should be None before backward()"
    assert not loss.data.requires_grad, "Var must not use torch autograd: its data should not require grad"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_var_mlp", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The 784-128-10 network built from Vars: every parameter's .grad equals torch.autograd's
# (reference.backward). Tolerance 1e-5, the contract's.
# When graded, also: larger batches, one image, a single hidden unit, other hidden sizes, non-zero
#   biases, and all-black images where some pre-activations are exactly 0.


def var_mlp(xb, tb, params):
    vs = [Var(p.detach().clone()) for p in params]
    with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
        h_pre = Var(xb) @ vs[0] + vs[1]
        h = h_pre.relu()
        out = h @ vs[2] + vs[3]
        loss = out.cross_entropy(tb)
        loss.backward()
    grads = {"d_out": out.grad, "d_h": h.grad, "d_hpre": h_pre.grad}
    grads.update((n, v.grad) for n, v in zip(["dW1", "db1", "dW2", "db2"], vs))
    return loss, vs, grads


def check_var_mlp(xb, tb, params, label):
    loss, vs, grads = var_mlp(xb, tb, params)
    checks.assert_close(loss.data, reference.cross_entropy(reference.forward(xb, *params), tb),
                        f"loss.data {label}", atol=1e-5)
    try:
        for v, e, n in zip(vs, reference.backward(xb, tb, *params), ["W1", "b1", "W2", "b2"]):
            assert v.grad is not None, f"{n}.grad is still None after loss.backward() {label}: was it reached?"
            checks.assert_close(v.grad, e, f"{n}.grad {label}", atol=1e-5, hint=var_hints[n])
    except AssertionError as failure:    # every node's .grad against PyTorch's, in the order backward visits them
        raise checks.CheckFailed(f"{failure}\n\nEvery node against PyTorch (the first WRONG line is the operation "
                                 f"to fix):\n{demo.step_report(grads, xb, tb, *params)}") from None


var_hints = {"W1": "matmul's backward: a.grad += out.grad @ b.T and b.grad += a.T @ out.grad",
             "b1": "the bias is added to every row: sum its gradient over the batch (dim 0)",
             "W2": "matmul's backward: b.grad += a.T @ out.grad, with a the ReLU's output",
             "b2": "the bias is added to every row: sum its gradient over the batch (dim 0)"}


gen = torch.Generator().manual_seed(60)
check_var_mlp(torch.rand(16, 784, generator=gen), torch.randint(0, 10, (16,), generator=gen),
              reference.init_params(seed=60), "(batch 16, 784-128-10)")
### BEGIN HIDDEN TESTS
for seed, B, H in [(61, 64, 128), (62, 1, 128), (63, 64, 1), (64, 1, 1), (65, 33, 16)]:
    gen = torch.Generator().manual_seed(seed)
    params = list(reference.init_params(seed=seed, hidden=H))
    with torch.no_grad():
        params[1] += checks.seeded(seed + 1000, H, scale=0.1)
        params[3] += checks.seeded(seed + 2000, 10, scale=0.1)
    check_var_mlp(torch.rand(B, 784, generator=gen), torch.randint(0, 10, (B,), generator=gen), params,
                  f"(seed {seed}, batch {B}, 784-{H}-10)")
# All-black images with zero biases: some h_pre exactly 0, where the ReLU's slope is taken as 0.
gen = torch.Generator().manual_seed(66)
xz = torch.rand(8, 784, generator=gen)
xz[[1, 6]] = 0.0
check_var_mlp(xz, torch.randint(0, 10, (8,), generator=gen), reference.init_params(seed=66),
              "(two all-black images: h_pre exactly 0; relu's backward uses data > 0, not >= 0)")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_var_bias", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# A bias added to every row: its gradient is summed over the batch back to its own shape.
# Tolerance 1e-5 (float32 against float32 autograd).
# When graded, also: a batch of one, and adding a second term of the same shape (nothing to sum).
xb, Wb, bb = checks.seeded(70, 5, 3), checks.seeded(71, 3, 4), checks.seeded(72, 4)
tb = torch.tensor([0, 3, 1, 1, 2])
vx, vW, vb = Var(xb), Var(Wb), Var(bb)
with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
    (vx @ vW + vb).cross_entropy(tb).backward()
checks.assert_shape(vb.grad, (4,), "b.grad for x @ W + b with b of shape [4]",
                    hint="sum the [B, 4] gradient over the batch dimension (dim 0)")
want = reference.gradients(lambda x_, W_, b_: F.cross_entropy(x_ @ W_ + b_, tb), xb, Wb, bb)
for v, e, n in zip((vx, vW, vb), want, ["x", "W", "b"]):
    checks.assert_close(v.grad, e, f"{n}.grad in (x @ W + b).cross_entropy(t)", atol=1e-5)
### BEGIN HIDDEN TESTS
# Batch of one, and two same-shape terms (nothing to sum then).
for seed, B in [(73, 1), (74, 12)]:
    gen = torch.Generator().manual_seed(seed)
    xb, Wb, bb, cb = (checks.seeded(seed, B, 3), checks.seeded(seed + 1, 3, 4), checks.seeded(seed + 2, 4),
                      checks.seeded(seed + 3, B, 4))
    tb = torch.randint(0, 4, (B,), generator=gen)
    vs = [Var(t) for t in (xb, Wb, bb, cb)]
    with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
        ((vs[0] @ vs[1] + vs[2]) + vs[3]).cross_entropy(tb).backward()
    want = reference.gradients(lambda x_, W_, b_, c_: F.cross_entropy((x_ @ W_ + b_) + c_, tb), xb, Wb, bb, cb)
    for v, e, n in zip(vs, want, ["x", "W", "b [4]", f"c [{B}, 4]"]):
        checks.assert_close(v.grad, e, f"{n}.grad in ((x @ W + b) + c), batch {B}", atol=1e-5,
                            hint="sum only the dimensions broadcasting added; same-shape inputs get the gradient "
                                 "as it is")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_var_used_twice", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# A Var used twice receives both contributions. Tolerance 1e-5 (float32 against float32 autograd).
# When graded, also: a bigger two-head network whose h.grad is checked too, a weight used at two
#   depths, and a sum z + z that is itself used three times.
zt = checks.seeded(80, 4, 3)
tt = torch.tensor([2, 0, 1, 1])
vz = Var(zt)
with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
    (vz + vz).cross_entropy(tt).backward()
(want,) = reference.gradients(lambda z_: F.cross_entropy(z_ + z_, tt), zt)
checks.assert_close(vz.grad, want, "z.grad in (z + z).cross_entropy(t)", atol=1e-5,
                    hint="add into .grad instead of assigning it: z receives one gradient from each side of the +")
# A node with parents of its own, used twice: h = (x @ W + b).relu() feeds two heads, h @ A + h @ B.
def check_two_heads(tensors, targets, names):
    """Var against autograd when h = (x @ W + b).relu() feeds h @ A + h @ B; returns the Var h."""
    vs = [Var(t) for t in tensors]
    with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
        h = (vs[0] @ vs[1] + vs[2]).relu()
        (h @ vs[3] + h @ vs[4]).cross_entropy(targets).backward()
    want = reference.gradients(lambda x_, W_, b_, A_, B_: F.cross_entropy(F.relu(x_ @ W_ + b_) @ A_
                                                                         + F.relu(x_ @ W_ + b_) @ B_, targets), *tensors)
    for v, e, n in zip(vs, want, names):
        checks.assert_close(v.grad, e, f"{n}.grad when h = relu(x @ W + b) feeds two heads (h @ A + h @ B)",
                            atol=1e-5, hint="visit every node once, in reverse topological order, after all its "
                                            "users; add into .grad")
    return h


check_two_heads((checks.seeded(190, 3, 4), checks.seeded(191, 4, 3), checks.seeded(192, 3, scale=0.3),
                 checks.seeded(193, 3, 2), checks.seeded(194, 3, 2)), torch.tensor([1, 0, 1]), ["x", "W", "b", "A", "B"])
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(81)
B, D, H, C = 6, 5, 4, 3
xt_, W1t, b1t, At, Bt = (checks.seeded(82, B, D), checks.seeded(83, D, H), checks.seeded(84, H, scale=0.3),
                         checks.seeded(85, H, C), checks.seeded(86, H, C))
tt = torch.randint(0, C, (B,), generator=gen)
# One hidden layer feeding two heads: h is used twice, and must pass its gradient on only once, in full.
h = check_two_heads((xt_, W1t, b1t, At, Bt), tt, ["x", "W1", "b1", "A", "B"])
(want_h,) = reference.gradients(lambda h_: F.cross_entropy(h_ @ At + h_ @ Bt, tt), h.data)
checks.assert_close(h.grad, want_h, "h.grad when h feeds two heads", atol=1e-5,
                    hint="h receives one contribution from each head")
# One weight used at two depths: (x @ W) @ W.
xs_, Ws_ = checks.seeded(87, 5, 4), checks.seeded(88, 4, 4, scale=0.5)
ts_ = torch.randint(0, 4, (5,), generator=gen)
vx, vW = Var(xs_), Var(Ws_)
with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
    ((vx @ vW) @ vW).cross_entropy(ts_).backward()
want = reference.gradients(lambda x_, W_: F.cross_entropy((x_ @ W_) @ W_, ts_), xs_, Ws_)
checks.assert_close(vW.grad, want[1], "W.grad in ((x @ W) @ W)", atol=1e-5,
                    hint="W is used by two products: its gradient is the sum of both")
checks.assert_close(vx.grad, want[0], "x.grad in ((x @ W) @ W)", atol=1e-5)
# A diamond of depth: u = z + z, then u used twice again.
vz = Var(checks.seeded(89, 3, 5))
with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
    u = vz + vz
    ((u + u) + u).cross_entropy(torch.tensor([4, 0, 2])).backward()
(want,) = reference.gradients(lambda z_: F.cross_entropy(((z_ + z_) + (z_ + z_)) + (z_ + z_), torch.tensor([4, 0, 2])),
                              vz.data)
checks.assert_close(vz.grad, want, "z.grad in u = z + z; (u + u) + u", atol=1e-5,
                    hint="each node's backward must run exactly once, after all of its users'")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_var_accumulates", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Two separate forward-and-backward passes on the same leaves: the gradients add up, as in PyTorch.
# Tolerance 1e-5 (float32).
# When graded, also: the full network run on two different batches (the gradients add), and three
#   passes.
xa, Wa, ba = checks.seeded(90, 4, 3), checks.seeded(91, 3, 5), checks.seeded(92, 5)
ta = torch.tensor([4, 0, 0, 2])
vW, vb = Var(Wa), Var(ba)
with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
    for _ in range(2):
        (Var(xa) @ vW + vb).cross_entropy(ta).backward()
once = reference.gradients(lambda W_, b_: F.cross_entropy(xa @ W_ + b_, ta), Wa, ba)
checks.assert_close(vW.grad, 2 * once[0], "W.grad after two forward+backward passes", atol=1e-5,
                    hint="backward() adds into .grad and never resets it: two passes give twice the gradient")
checks.assert_close(vb.grad, 2 * once[1], "b.grad after two forward+backward passes", atol=1e-5)
### BEGIN HIDDEN TESTS
# Two passes on different batches: the sum of the two gradients.
gen = torch.Generator().manual_seed(93)
params = reference.init_params(seed=93, hidden=8)
vs = [Var(p.detach().clone()) for p in params]
batches = [(torch.rand(5, 784, generator=gen), torch.randint(0, 10, (5,), generator=gen)),
           (torch.rand(3, 784, generator=gen), torch.randint(0, 10, (3,), generator=gen))]
with tripwire.forbid("autograd", what="Var"), tripwire.forbid("softmax", what="Var.cross_entropy"):
    for xb_, tb_ in batches:
        ((Var(xb_) @ vs[0] + vs[1]).relu() @ vs[2] + vs[3]).cross_entropy(tb_).backward()
g1, g2 = reference.backward(*batches[0], *params), reference.backward(*batches[1], *params)
for v, e1, e2, n in zip(vs, g1, g2, ["W1", "b1", "W2", "b2"]):
    checks.assert_close(v.grad, e1 + e2, f"{n}.grad after passes on two different batches", atol=1e-5,
                        hint="leaves keep adding: the result is the sum of both passes' gradients")
# A third pass on a fresh graph reusing the leaves: three times.
vW, vb = Var(Wa), Var(ba)
for _ in range(3):
    (Var(xa) @ vW + vb).cross_entropy(ta).backward()
checks.assert_close(vW.grad, 3 * once[0], "W.grad after three passes", atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ## Your engine against PyTorch's
#
# The same MNIST batch as before, once through your `Var` and once through
# `torch.autograd`:

# %%
vW1, vb1, vW2, vb2 = (Var(p.detach().clone()) for p in (W1, b1, W2, b2))
hpre_var = Var(x) @ vW1 + vb1
h_var = hpre_var.relu()
out_var = h_var @ vW2 + vb2
loss_var = out_var.cross_entropy(y)
loss_var.backward()
print(f"loss: Var {loss_var.data.item():.6f}   PyTorch {F.cross_entropy(forward(x, W1, b1, W2, b2), y).item():.6f}")
print(demo.step_report({"d_out": out_var.grad, "d_h": h_var.grad, "d_hpre": hpre_var.grad, "dW2": vW2.grad,
                        "db2": vb2.grad, "dW1": vW1.grad, "db1": vb1.grad}, x, y, W1, b1, W2, b2))

# %% [markdown]
# Every line exact or close: the same numbers, from a few dozen lines of Python. PyTorch's engine
# follows the same plan, with many more operations, gradients of gradients, graphs
# freed after use, and the work done in C++ rather than Python. One visible difference:
# PyTorch keeps `.grad` only for leaf tensors (the parameters) unless asked with
# `retain_grad()`, to save memory; your `Var` keeps it everywhere, which is handy for
# looking inside.
#
# ## Exercise 5: two operations of your own
#
# An engine grows one row of the table at a time, and for a new operation nobody hands
# you the backward rule: you derive it, then you check it. Add two operations to `Var`:
#
# * `a.tanh()`: `tanh` entry by entry, a smooth cousin of the ReLU that squashes every
#   value into (-1, 1). Its forward pass may use `torch.tanh`.
# * `a * b`: the entry-by-entry product of two Vars of the same shape (no broadcasting).
#
# Derive each local rule on paper first. For `tanh`: what is the derivative of `tanh(u)`
# with respect to `u`? (It can be written with the output `tanh(u)` alone, which the
# forward pass already computed.) For the product: if `a` moves by a small δ and `b`
# stays put, how much does `a * b` move? Then write them as you wrote `relu`, an output
# Var and a closure that adds into the parents' `.grad`. Two traps from the three classic
# bugs apply: `x * x` uses `x` twice, and every contribution is added, never assigned.

# %% nbgrader={"grade": false, "grade_id": "Var_tanh_mul", "locked": false, "schema_version": 3, "solution": true, "task": false}
def var_tanh(self):
    """tanh of a Var entry by entry: a new Var whose data is torch.tanh(self.data), of self's shape.

    Its backward function, once the output's .grad is known, adds dL/d(self) (a tensor of
    self.data's shape) into self.grad. No torch autograd.
    """
    ### BEGIN SOLUTION
    out = Var(torch.tanh(self.data), parents=(self,))

    def backward_fn():
        self._add_to_grad(out.grad * (1 - out.data ** 2))

    out._backward_fn = backward_fn
    return out
    ### END SOLUTION


def var_mul(self, other):
    """self * other entry by entry, for two Vars of the same shape: a new Var of that shape.

    Its backward function adds dL/d(self) into self.grad and dL/d(other) into other.grad.
    other may be self itself (x * x): x then receives both contributions. No torch autograd.
    """
    ### BEGIN SOLUTION
    out = Var(self.data * other.data, parents=(self, other))

    def backward_fn():
        self._add_to_grad(out.grad * other.data)
        other._add_to_grad(out.grad * self.data)

    out._backward_fn = backward_fn
    return out
    ### END SOLUTION


Var.tanh = var_tanh          # the two functions become methods of your Var: a.tanh() and a * b
Var.__mul__ = var_mul

# %% [markdown]
# Check them the way you would check an operation PyTorch does not have: with your own
# `numerical_grad`, in float64, on a small graph that uses both, with `a` used twice. The
# same computation is written once with Vars and once on plain tensors (what
# `numerical_grad` needs). Around 1e-7 means right (the finite differences' own error);
# 1e-2 or more is a bug in the rule.

# %%
a0, b0 = checks.seeded(5, 4, 3, dtype=torch.float64), checks.seeded(6, 4, 3, dtype=torch.float64)
t0 = torch.tensor([0, 2, 1, 2])


def plain_loss(a_, b_):                       # the same graph on plain tensors, for numerical_grad
    return cross_entropy((torch.tanh(a_) * b_) * a_, t0)


va, vb = Var(a0.clone()), Var(b0.clone())
((va.tanh() * vb) * va).cross_entropy(t0).backward()
print("a.grad: relative error against numerical_grad",
      f"{relative_error(va.grad, numerical_grad(lambda a_: plain_loss(a_, b0), a0)):.1e}")
print("b.grad: relative error against numerical_grad",
      f"{relative_error(vb.grad, numerical_grad(lambda b_: plain_loss(a0, b_), b0)):.1e}")

# %% nbgrader={"grade": false, "grade_id": "new_ops_test_helpers", "locked": true, "schema_version": 3, "solution": false, "task": false} tags=["helpers"]
# What the test of tanh and * checks (a helper cell: the grader runs it beside the test). The gradients are
# compared with torch.autograd; on a failure the message adds what your numerical_grad says.
NEW_OPS_HINT = ("d tanh(u)/du = 1 - tanh(u)**2 (the output squared, not tanh of the output); for a * b, a receives "
                "out.grad * b and b receives out.grad * a, each added into .grad")


def numerical_opinion(plain, tensors, i, got):
    """One line: the relative error of `got` against the student's numerical_grad of plain w.r.t. tensors[i]."""
    def f(z):
        args = list(tensors)
        args[i] = z
        return plain(*args)
    try:
        num = numerical_grad(f, tensors[i])
        a = got.detach().double()
        rel = float((a - num).norm() / (a.norm() + num.norm()).clamp(min=1e-30))
    except Exception as err:
        return f"(your numerical_grad could not check it: {type(err).__name__}: {err})"
    return (f"Checked with your numerical_grad instead: relative error {rel:.1e} (about 1e-7 when the rule is "
            f"right, 1e-2 or more for a wrong one)")


def check_new_ops(build, plain, tensors, targets, names, label, atol):
    """Var against autograd for the loss build(*Vars).cross_entropy(targets); plain is the same on tensors."""
    saved = [t.clone() for t in tensors]
    vs = [Var(t.clone()) for t in tensors]
    with tripwire.forbid("autograd", what="Var.tanh and Var.__mul__"):
        out = build(*vs)
        assert isinstance(out, Var), f"{label} should be a Var, got {type(out).__name__}"
        checks.assert_close(out.data, plain(*tensors), f"({label}).data", atol=atol,
                            hint="tanh(a) and a * b entry by entry, in the forward pass")
        out.cross_entropy(targets).backward()
    want = reference.gradients(lambda *ts: F.cross_entropy(plain(*ts), targets), *tensors)
    for i, (v, e, n) in enumerate(zip(vs, want, names)):
        try:
            assert v.grad is not None, f"{n}.grad is still None after backward(): did the backward function reach it?"
            checks.assert_close(v.grad, e, f"{n}.grad in ({label}).cross_entropy(t)", atol=atol, hint=NEW_OPS_HINT)
        except AssertionError as failure:
            raise checks.CheckFailed(f"{failure}\n"
                                     f"{numerical_opinion(lambda *ts: F.cross_entropy(plain(*ts), targets), tensors, i, v.grad)}"
                                     ) from None
    for before, v, n in zip(saved, vs, names):
        checks.assert_unchanged(before, v.data, f"{n}.data")


# %% nbgrader={"grade": true, "grade_id": "test_var_tanh_mul", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# tanh and * in your Var, forward values and gradients, against torch.autograd (reference.gradients), in
# float64: tolerance 1e-10 (the same float64 arithmetic in another order differs by about 1e-16).
# When graded, also: x * x (one Var on both sides), tanh of large values (where its slope is nearly 0), both
#   operations chained, and the MLP in float32 with tanh in place of the ReLU; inputs must stay unchanged.
check_new_ops(lambda a, b: a.tanh() * b, lambda a, b: torch.tanh(a) * b,
              (checks.seeded(120, 4, 3, dtype=torch.float64), checks.seeded(121, 4, 3, dtype=torch.float64)),
              torch.tensor([0, 2, 1, 2]), ["a", "b"], "a.tanh() * b", atol=1e-10)
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(122)
# One Var on both sides of the product: two contributions.
check_new_ops(lambda a: a * a, lambda a: a * a, (checks.seeded(123, 5, 4, dtype=torch.float64),),
              torch.randint(0, 4, (5,), generator=gen), ["x"], "x * x", atol=1e-10)
# Large values: tanh saturates and its slope is nearly 0 (and must not be NaN).
check_new_ops(lambda a, b: a.tanh() * b, lambda a, b: torch.tanh(a) * b,
              (checks.seeded(124, 3, 5, scale=20.0, dtype=torch.float64), checks.seeded(125, 3, 5, dtype=torch.float64)),
              torch.randint(0, 5, (3,), generator=gen), ["a (large)", "b"], "a.tanh() * b, large a", atol=1e-10)
# Chained, with one input used twice: ((a * b).tanh() * c) * a.
check_new_ops(lambda a, b, c: ((a * b).tanh() * c) * a, lambda a, b, c: (torch.tanh(a * b) * c) * a,
              tuple(checks.seeded(126 + k, 1, 6, dtype=torch.float64) for k in range(3)),
              torch.tensor([3]), ["a", "b", "c"], "((a * b).tanh() * c) * a", atol=1e-10)
# The MLP in float32 with tanh in place of the ReLU; tolerance 1e-5 (float32, as for the ReLU network).
params = [p.detach() for p in reference.init_params(seed=127, hidden=16)]
xb = torch.rand(8, 784, generator=gen)
check_new_ops(lambda W1, b1, W2, b2: (Var(xb) @ W1 + b1).tanh() @ W2 + b2,
              lambda W1, b1, W2, b2: torch.tanh(xb @ W1 + b1) @ W2 + b2,
              tuple(params), torch.randint(0, 10, (8,), generator=gen), ["W1", "b1", "W2", "b2"],
              "(x @ W1 + b1).tanh() @ W2 + b2", atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# **Written question (2 points, graded by hand).** You gradient-check the `db1` of your
# `backward` on a tiny float64 network, as above, over ten random seeds. Nine times the
# relative error is about 1e-7; once it is 3e-2, although on that very seed
# `demo.step_report` finds your `backward` equal to PyTorch's at every step. What is the
# most likely cause, and how would you confirm it in one or two steps?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_gradient_check", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# *Rubric:* 2 points: blames the numerical gradient, not `backward`, because of the ReLU's kink: some
# pre-activation `h_pre` lies within eps of 0, so `f(x + eps)` and `f(x - eps)` fall on different sides of
# the kink and the central difference for that entry is meaningless; and gives a way to confirm it (find the
# entries with `|h_pre| < eps` and see that the error sits in those hidden units; or repeat with a smaller
# eps, or with the inputs moved slightly, and watch the error vanish). 1 point: the right cause without a
# way to confirm it, or a vague "the numerical gradient is unreliable there" with a sound check. 0 points:
# a bug in `backward` (it matches PyTorch), float32 rounding (all of it is float64), or no reason.
#
# *Model answer:* `backward` agrees with PyTorch, so the suspect is the measurement. ReLU is not
# differentiable at 0: if an `h_pre` of some image lies within eps = 1e-3 of 0, the two evaluations of the
# central difference see the unit on in one and off in the other, and the finite difference for the biases
# of that unit mixes two slopes. To confirm: print `(h_pre.abs() < 1e-3).nonzero()` and check that the
# wrong entries of `db1` are exactly those units, or rerun with eps = 1e-6 (the kink is then almost never
# straddled) and see the error drop to about 1e-7.
# ### END SOLUTION

# %% [markdown]
# ## Check yourself
#
# No points, just immediate feedback.

# %%
quiz([
    Question("In the 784-128-10 network with a batch of 64, what are the formula and the shape of dW1?",
             ["d_hpre @ x.T, shape [128, 784]",
              "x.T @ d_hpre, shape [784, 128]",
              "x.T @ d_h, shape [784, 128], with d_h taken before the ReLU mask"],
             answer=1,
             explanation="The gradient has W1's shape [784, 128]; [784, 64] @ [64, 128] is the only product that "
                         "gives it, and the gradient must go through the ReLU mask first (d_hpre, not d_h)."),
    Question("Why is db2 = d_out.sum(dim=0)?",
             ["Because the loss is a sum, not a mean",
              "Because b2 is added to every row of the batch: each copy gets its row's gradient, and a value used in "
              "several places collects the sum",
              "To make the shapes match; the values themselves do not matter"],
             answer=1,
             explanation="Broadcasting in the forward pass copies b2 to all B rows; in the backward pass those B "
                         "contributions add up. (The 1/B of the mean is already inside d_out.)"),
    Question("An image is classified correctly with probability 0.99. Its row of d_out = (softmax - one_hot) / B is ...",
             ["close to zero: it barely changes the weights",
              "large at the correct class: the network should become even more sure",
              "undefined, because log(0.99) is close to 0"],
             answer=0,
             explanation="The correct class gets (0.99 - 1) / B and the others share 0.01 / B: nearly nothing. "
                         "Training effort goes to the images the network gets wrong."),
    Question("Why does gradient checking use central differences in float64?",
             ["float64 is faster than float32 on a CPU",
              "Central differences err like eps² instead of eps, and float64 keeps the rounding of f, magnified by "
              "1/eps, far below the gradient's size",
              "PyTorch cannot compute float32 gradients"],
             answer=1,
             explanation="With eps = 1e-3: about 1e-7 relative error instead of 1e-3; and float32 rounding divided by "
                         "eps is about 1e-4, as large as many true gradients."),
    Question("A Var engine sets <code>a.grad = g</code> instead of adding into it. Which graph gives a wrong gradient?",
             ["relu(x @ W + b), every value used once",
              "(z + z).cross_entropy(t): z is used twice, and only one of its two contributions survives",
              "None: the order of the backward functions makes up for it"],
             answer=1,
             explanation="A value used twice must receive the sum of both contributions; assignment keeps only the "
                         "last one. The same rule makes two backward passes accumulate."),
])
