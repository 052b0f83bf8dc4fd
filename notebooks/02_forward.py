# ---
# jupyter:
#   jupytext:
#     formats: source/02_forward//ipynb,notebooks//py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · The forward pass
#
# Lesson 01 built the network's four tensors. This lesson makes them compute: an image
# goes in, ten scores come out, and the largest score is the network's guess. That
# journey from pixels to a guess is the *forward pass*:
#
# ```
#  x [B, 784] ──@ W1 + b1──▶ [B, 128] ──ReLU──▶ [B, 128] ──@ W2 + b2──▶ logits [B, 10] ──argmax──▶ [B]
# ```
#
# It takes two matrix products, two additions and one very simple function. Nothing else
# happens in the forward pass of this network, and by the end of the lesson you will have
# checked it against PyTorch's own layers.
#
# **You will write:** `linear`, `relu`, `forward`, `predict`.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import matplotlib.pyplot as plt
import torch
import torch.nn as nn

from grader import checks, reference, tripwire
from grader.data import load_mnist
from grader.widgets import forward as demo
from grader.widgets.quiz import Question, quiz

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## The input: a batch of flattened images
#
# MNIST's test set holds 10,000 handwritten digits. Each 28×28 image is stored as one row
# of 784 numbers (the 28 rows of pixels laid end to end), scaled to lie between 0 (blank
# paper) and 1 (full ink), and each has a label, the digit it shows.

# %%
X, y = load_mnist("test")
print("X:", list(X.shape), X.dtype, "  values from", X.min().item(), "to", X.max().item())
print("y:", list(y.shape), y.dtype, "  first labels:", y[:8].tolist())
fig = demo.show_digits(X[:8], y[:8])
plt.show()

# %% [markdown]
# The network never sees one image at a time: it takes a **batch**, a matrix whose first
# dimension counts the images. A batch of 64 is `X[:64]`, shape `[64, 784]`.
#
# A single image is a batch of 1, shape `[1, 784]`. Be careful how you take it out:
# slicing with a range keeps the batch dimension, indexing with one number drops it.

# %%
x = X[:64]
print("X[:64] ->", list(x.shape), "  a batch of 64")
print("X[:1]  ->", list(X[:1].shape), "  a batch of one image: what the network expects")
print("X[0]   ->", list(X[0].shape), "     a bare row: the batch dimension is gone")
print("X[0].unsqueeze(0) ->", list(X[0].unsqueeze(0).shape), "  put it back")

# %% [markdown]
# And the network itself: the four tensors of lesson 01, for seed 0. Here they come from
# the course's reference copy of `init_params`, so that this lesson stands on its own.
# Nothing is trained in this lesson, so we `detach()` them: that drops the autograd
# record, which only training needs.

# %%
W1, b1, W2, b2 = [p.detach() for p in reference.init_params(seed=0)]
for name, p in zip(["W1", "b1", "W2", "b2"], [W1, b1, W2, b2]):
    print(f"{name}: {list(p.shape)}")

# %% [markdown]
# ## One layer: every hidden unit weighs every pixel
#
# The hidden layer has 128 *units*. Unit `j` looks at all 784 pixels of an image, each
# through a weight of its own, adds up the products and adds its bias:
#
# $$h_j = x_0 W1_{0,j} + x_1 W1_{1,j} + \dots + x_{783} W1_{783,j} + b1_j$$
#
# So **column `j` of `W1` holds unit `j`'s 784 weights**: a large positive weight means
# "ink on this pixel pushes me up", a negative one "pushes me down". Here is that sum
# for one unit and one image, written out:

# %%
j = 5
unit_5 = (X[0] * W1[:, j]).sum() + b1[j]
print(f"hidden unit {j} on the first image: {unit_5.item():.4f}")

# %% [markdown]
# Because a column has 784 entries, it can be drawn as a 28×28 picture: which pixels the
# unit likes (red) and dislikes (blue). Untrained, the weights are random noise. After
# training (lesson 07) they turn into blurry stroke detectors.

# %%
fig = demo.show_weights(W1, units=range(8))
plt.show()

# %% [markdown]
# Doing that sum for every image and every unit is exactly a **matrix product**. Entry
# `(n, j)` of `x @ W1` is row `n` of `x` (image `n`) times column `j` of `W1` (unit `j`'s
# weights), summed: for a batch of 64 that is 64 × 128 = 8,192 sums of 784 products, in
# one call.
#
# The shape rule: the two inner sizes must agree, and they disappear.
#
# ```
# [64, 784] @ [784, 128] -> [64, 128]
#       └──────┘ must match, then vanish
# ```
#
# If they do not agree, PyTorch refuses and says so:

# %%
try:
    x @ W1.T
except RuntimeError as err:
    print("RuntimeError:", err)

# %% [markdown]
# ### The bias is broadcast over the batch
#
# `x @ W1` is `[64, 128]`, but `b1` is `[128]`: one bias per unit, the same for every
# image. PyTorch *broadcasts* it: it lines up the shapes from the right, sees that the
# bias lacks the batch dimension, and acts as if the bias row were repeated once per
# image. Nothing is copied in memory (the repeated view has a stride of 0 along the
# batch). A small example:

# %%
scores = torch.zeros(3, 4)
bias = torch.tensor([10.0, 20.0, 30.0, 40.0])
print(scores + bias)
print("bias [4] seen as", list(bias.expand(3, 4).shape), "with strides", bias.expand(3, 4).stride())
print("broadcast [64, 128] with [128] ->", list(torch.broadcast_shapes((64, 128), (128,))))

# %% [markdown]
# ## Exercise 1: `linear`
#
# Write one layer: the matrix product of the batch with the weights, plus the bias.
#
# * `x` is `[B, in]`, `W` is `[in, out]` (the course's layout: one column per output
#   unit), `b` is `[out]`; the result is `[B, out]`.
# * It must work for any sizes, including a batch of 1.
# * Do not use `nn.Linear` or `F.linear`: that is the job you are doing. The tests
#   notice, and that earns no points.

# %% nbgrader={"grade": false, "grade_id": "linear", "locked": false, "schema_version": 3, "solution": true, "task": false}
def linear(x, W, b):
    """A fully connected layer: ``x @ W + b``.

    Args:
        x (Tensor): float32 ``[B, in]``, a batch of B inputs (B >= 1).
        W (Tensor): float32 ``[in, out]``, one column of weights per output unit.
        b (Tensor): float32 ``[out]``, one bias per output unit, added to every row.

    Returns:
        Tensor: a new float32 tensor ``[B, out]``; ``x``, ``W`` and ``b`` are not modified.
        No ``nn.Linear`` / ``F.linear``.
    """
    ### BEGIN SOLUTION
    return x @ W + b
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_linear_shape", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The shape: [B, in] @ [in, out] + [out] -> [B, out], for a batch of 64 and of 1.
# When graded, also: many other batch, input and output sizes, tiny ones included (shape and dtype).
x_t, W_t, b_t = checks.seeded(0, 64, 784), checks.seeded(1, 784, 128, scale=0.05), checks.seeded(2, 128)
out = tripwire.call(linear, x_t, W_t, b_t, job="linear")
checks.assert_shape(out, (64, 128), "linear(x [64, 784], W [784, 128], b [128])",
                    hint="x @ W is [B, out]; adding b [out] keeps that shape")
checks.assert_dtype(out, torch.float32, "linear(x, W, b)")
out = tripwire.call(linear, x_t[:1], W_t, b_t, job="linear")
checks.assert_shape(out, (1, 128), "linear on a batch of 1", hint="do not squeeze away the batch dimension")
### BEGIN HIDDEN TESTS
for B, n_in, n_out in [(3, 5, 7), (1, 1, 1), (10, 20, 3), (2, 300, 1)]:
    out = tripwire.call(linear, checks.seeded(3, B, n_in), checks.seeded(4, n_in, n_out),
                        checks.seeded(5, n_out), job="linear")
    checks.assert_shape(out, (B, n_out), f"linear(x [{B}, {n_in}], W [{n_in}, {n_out}], b [{n_out}])",
                        hint="W is [in, out]: x @ W, without a transpose, and do not hard-code 784 or 128")
    checks.assert_dtype(out, torch.float32, f"linear(x [{B}, {n_in}], ...)")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_linear_values", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# The values, compared with PyTorch's F.linear (given W transposed, its own layout).
# Tolerance atol=1e-5 plus rtol=1e-5: both are float32 sums, but of the products in another order.
# Weights scaled by 1/sqrt(in), as in a real network, so that the outputs are of order 1.
# When graded, also: other sizes (single-image batches, tiny layers), arguments left unmodified,
#   very large values, and weights that require gradients.
x_t, W_t, b_t = checks.seeded(10, 64, 784), checks.seeded(11, 784, 128, scale=784 ** -0.5), checks.seeded(12, 128)
expected = reference.linear(x_t, W_t, b_t)
out = tripwire.call(linear, x_t, W_t, b_t, job="linear")
checks.assert_close(out, expected, "linear(x [64, 784], W, b)", atol=1e-5, rtol=1e-5,
                    hint="multiply x by W (x @ W) and add the bias b to every row")
### BEGIN HIDDEN TESTS
cases = [(1, 784, 128, 20), (64, 784, 10, 21), (5, 128, 128, 22), (17, 13, 29, 23), (1, 1, 3, 24), (7, 3, 1, 25)]
for B, n_in, n_out, seed in cases:
    x_t, W_t = checks.seeded(seed, B, n_in), checks.seeded(seed + 100, n_in, n_out, scale=n_in ** -0.5)
    b_t = checks.seeded(seed + 200, n_out)
    kept = [t.clone() for t in (x_t, W_t, b_t)]
    out = tripwire.call(linear, x_t, W_t, b_t, job="linear")
    for name, before, after in zip(["x", "W", "b"], kept, (x_t, W_t, b_t)):
        checks.assert_unchanged(before, after, f"linear's argument {name}")
    checks.assert_close(out, reference.linear(*kept), f"linear(x [{B}, {n_in}], W [{n_in}, {n_out}], b [{n_out}])",
                        atol=1e-5, rtol=1e-5,
                        hint="x @ W + b: W is already [in, out], so no transpose; keep the bias")
# Large values: float32 keeps about 7 significant digits, so the tolerance is 1e-6 of the largest
# sum of |products| that went into an output (the size of the rounding, whatever the order of the sum).
x_t, W_t = checks.seeded(30, 9, 50, scale=1e3), checks.seeded(31, 50, 6, scale=1e3)
b_t = checks.seeded(32, 6, scale=1e6)
scale = float((x_t.abs() @ W_t.abs()).max() + b_t.abs().max())
out = tripwire.call(linear, x_t, W_t, b_t, job="linear")
checks.assert_close(out, reference.linear(x_t, W_t, b_t), "linear with values around 1e3", atol=1e-6 * scale,
                    hint="x @ W + b, in float32, without rescaling anything")
# Inputs that require gradients (like the network's parameters) must work too.
W_g = checks.seeded(33, 784, 16, scale=0.05).requires_grad_(True)
x_t, b_t = checks.seeded(34, 4, 784), checks.seeded(35, 16)
out = tripwire.call(linear, x_t, W_g, b_t, job="linear")
checks.assert_close(out, reference.linear(x_t, W_g, b_t), "linear with W.requires_grad=True", atol=1e-5, rtol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ## Why the network needs a nonlinearity
#
# Suppose we stacked the two layers directly: `(x @ W1 + b1) @ W2 + b2`. Multiplying out,
# that is `x @ (W1 @ W2) + (b1 @ W2 + b2)`: **one** layer, with a `[784, 10]` weight and a
# `[10]` bias. However many linear layers you stack, they collapse into one, because
# matrix multiplication is associative. Check it numerically:

# %%
two_steps = (x @ W1) @ W2
one_step = x @ (W1 @ W2)
print("W1 @ W2 has shape", list((W1 @ W2).shape), "- a single 784 -> 10 layer")
print("largest difference between (x @ W1) @ W2 and x @ (W1 @ W2):", (two_steps - one_step).abs().max().item())

# %% [markdown]
# The difference is float32 rounding, nothing more: the hidden layer would have added no
# power at all. A single linear layer can only draw straight boundaries (flat ones, in
# 784 dimensions) between classes, and bending them needs something that is not linear.
#
# **ReLU** (rectified linear unit) is the simplest thing that works: keep positive
# values, replace negative ones by zero, `relu(z) = max(z, 0)`. Each hidden unit becomes
# a hinge that switches on when its weighted sum is positive. Below: ReLU itself, then
# random little networks (one input, 16 hidden units, one output) without a ReLU, which
# can only be straight lines, and the very same networks with a ReLU between the layers,
# which bend at every hinge.

# %%
fig = demo.plot_relu()
plt.show()

# %% [markdown]
# With enough hinges a network can bend its boundaries into almost any shape. A toy
# problem in two dimensions shows it: points near the centre (class 0) against points on
# a ring around them (class 1). On the left, the best that any linear model can do,
# however many linear layers it stacks: one straight cut, hardly better than a coin toss.
# In the middle and on the right, two small ReLU networks whose weights were set by hand
# rather than trained: each hidden unit is a hinge facing one direction, and their sum
# grows with the distance from the centre. Three hinges already enclose the centre; eight
# make the boundary rounder. Training finds such weights by itself.

# %%
fig = demo.plot_separation()
plt.show()

# %% [markdown]
# ## Exercise 2: `relu`
#
# Replace every negative value by 0 and keep the others, for a tensor of **any** shape.
#
# * Return a new tensor: the caller's tensor must not change (`x[x < 0] = 0` or
#   `x.clamp_(min=0)` would change it; the tests check).
# * `torch.clamp`, `torch.where` and `torch.maximum` are all fine. `torch.relu`,
#   `F.relu` and `nn.ReLU` are not: they do this exercise's job.

# %% nbgrader={"grade": false, "grade_id": "relu", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relu(x):
    """Rectified linear unit, elementwise: ``max(x, 0)``.

    Args:
        x (Tensor): float tensor of any shape.

    Returns:
        Tensor: a new tensor of the same shape and dtype, with every negative value replaced
        by 0 and every other value unchanged; ``x`` is not modified.
        No ``torch.relu`` / ``F.relu`` / ``nn.ReLU``.
    """
    ### BEGIN SOLUTION
    return x.clamp(min=0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_relu_values", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Exact equality with F.relu: keeping or zeroing a value involves no rounding.
# When graded, also: 1-D and 3-D tensors, a batch of one, all-negative and all-positive inputs,
#   and very large and very tiny values.
z = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 2.0]])
checks.assert_equal(tripwire.call(relu, z, job="relu"), torch.tensor([[0.0, 0.0, 0.0, 0.5, 2.0]]),
                    "relu([[-2, -0.5, 0, 0.5, 2]])", hint="negative values become 0, the others stay as they are")
z = checks.seeded(40, 64, 128)
expected = reference.relu(z)
checks.assert_equal(tripwire.call(relu, z, job="relu"), expected, "relu(z [64, 128])",
                    hint="keep the positive values and replace the negative ones by 0 (clamp, where or maximum)")
### BEGIN HIDDEN TESTS
cases = {
    "relu of a 3-D tensor [4, 5, 6]": checks.seeded(41, 4, 5, 6),
    "relu of a 1-D tensor [10]": checks.seeded(42, 10),
    "relu of a batch of 1 [1, 128]": checks.seeded(43, 1, 128),
    "relu of an all-negative tensor": -checks.seeded(44, 8, 16).abs() - 0.1,
    "relu of an all-positive tensor": checks.seeded(45, 8, 16).abs() + 0.1,
    "relu of values around 1e30": checks.seeded(46, 6, 7, scale=1e30),
    "relu of values around 1e-30": checks.seeded(47, 6, 7, scale=1e-30),
}
for name, z in cases.items():
    expected = reference.relu(z)
    checks.assert_equal(tripwire.call(relu, z, job="relu"), expected, name,
                        hint="works elementwise on any shape: do not assume two dimensions or a width of 128")
z = -checks.seeded(48, 3, 9).abs() - 1.0
out = tripwire.call(relu, z, job="relu")
assert bool((out == 0).all()), "relu of an all-negative tensor should be all zeros"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_relu_input_unchanged", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# relu returns a new tensor (right, exactly) and leaves the caller's tensor as it was.
# When graded, also: the same checks (input untouched, right values) on a 3-D tensor.
z = checks.seeded(50, 32, 10)
before = z.clone()
out = tripwire.call(relu, z, job="relu")
checks.assert_unchanged(before, z, "relu's argument x",
                        hint="x[x < 0] = 0 and x.clamp_(min=0) change the caller's tensor; "
                             "x.clamp(min=0) or torch.where(...) return a new one")
checks.assert_equal(out, reference.relu(before), "relu(z [32, 10])")
### BEGIN HIDDEN TESTS
z = checks.seeded(51, 2, 3, 4)
before = z.clone()
out = tripwire.call(relu, z, job="relu")
checks.assert_unchanged(before, z, "relu's argument x (3-D)")
checks.assert_equal(out, reference.relu(before), "relu(z [2, 3, 4])")
### END HIDDEN TESTS

# %% [markdown]
# With your `relu` between the two products, the shortcut through `W1 @ W2` no longer
# gives the same answer: the network is no longer one linear layer in disguise.

# %%
with_relu = relu(x @ W1) @ W2
print("largest difference between relu(x @ W1) @ W2 and x @ (W1 @ W2):",
      (with_relu - one_step).abs().max().item())

# %% [markdown]
# ## The whole forward pass, step by step
#
# Now chain the pieces: a layer, ReLU, a layer. Watch the shapes on a batch of 64 and on
# a single image, and the values for the single image.

# %%
for batch in (X[:64], X[:1]):
    h_pre = linear(batch, W1, b1)
    h = relu(h_pre)
    logits = linear(h, W2, b2)
    print(f"x {list(batch.shape)} -> linear {list(h_pre.shape)} -> relu {list(h.shape)} "
          f"-> linear {list(logits.shape)} -> argmax {list(logits.argmax(dim=1).shape)}")

print("\nthe single image, a", y[0].item())
print("before ReLU, hidden units 6 to 11:", h_pre[0, 6:12])
print("after ReLU,  hidden units 6 to 11:", h[0, 6:12])
print(f"ReLU zeroed {(h_pre < 0).float().mean().item():.0%} of the 128 hidden values")
print("logits:", logits[0])

# %% [markdown]
# Only the first dimension, the batch, ever changes between the two runs: the weights do
# not care how many images come through.
#
# The ten numbers at the end are the **logits**: raw scores, one per digit. They are not
# probabilities: they can be negative, they do not add up to 1, and their scale means
# little on its own. What counts is their order: the larger a digit's logit, the more
# the network favours that digit. Lesson 03 turns logits into probabilities.

# %% [markdown]
# ## Exercise 3: `forward`
#
# Put the chain into one function: hidden layer, ReLU, output layer. You may (and
# should) call your own `linear` and `relu`; the tests forbid the library versions of
# both while your `forward` runs.

# %% nbgrader={"grade": false, "grade_id": "forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def forward(x, W1, b1, W2, b2):
    """The MLP's forward pass: ``relu(x @ W1 + b1) @ W2 + b2``.

    Args:
        x (Tensor): float32 ``[B, 784]`` (any B >= 1).
        W1 (Tensor): float32 ``[784, hidden]``;  b1: float32 ``[hidden]``.
        W2 (Tensor): float32 ``[hidden, 10]``;   b2: float32 ``[10]``.

    Returns:
        Tensor: the logits, a new float32 tensor ``[B, 10]``; no argument is modified.
        No ``nn.Linear`` / ``F.linear`` / ``torch.relu`` / ``F.relu`` / ``nn.ReLU``.
    """
    ### BEGIN SOLUTION
    return linear(relu(linear(x, W1, b1)), W2, b2)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_forward_shape", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The logits are [B, 10] whatever the batch size.
# When graded, also: other batch sizes and hidden widths, from very narrow to wider than the default.
params = [p.detach() for p in reference.init_params(seed=1)]
for B in (64, 1):
    with tripwire.forbid("linear", "forward"), tripwire.forbid("relu", "forward"):
        out = forward(checks.seeded(60, B, 784), *params)
    checks.assert_shape(out, (B, 10), f"forward(x [{B}, 784], ...)",
                        hint="layer 1 gives [B, 128], ReLU keeps it, layer 2 gives [B, 10]")
    checks.assert_dtype(out, torch.float32, f"forward(x [{B}, 784], ...)")
### BEGIN HIDDEN TESTS
for B, hidden in [(5, 7), (3, 1), (2, 300)]:
    params = [p.detach() for p in reference.init_params(seed=2, hidden=hidden)]
    with tripwire.forbid("linear", "forward"), tripwire.forbid("relu", "forward"):
        out = forward(checks.seeded(61, B, 784), *params)
    checks.assert_shape(out, (B, 10), f"forward(x [{B}, 784]) with hidden={hidden}",
                        hint="take the sizes from the tensors; do not hard-code 64 or 128")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_forward_values", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# The logits, compared with F.linear -> F.relu -> F.linear. Tolerance atol=1e-5: float32 sums in another order.
# When graded, also: other batch sizes and hidden widths, arguments left unmodified, and the
#   network's own parameters (which require gradients) on standard-normal inputs.
g = torch.Generator().manual_seed(70)
x_t = torch.rand(64, 784, generator=g)                     # like MNIST pixels, in [0, 1]
W1_t, W2_t = checks.seeded(71, 784, 128, scale=0.05), checks.seeded(72, 128, 10, scale=0.125)
b1_t, b2_t = checks.seeded(73, 128, scale=0.1), checks.seeded(74, 10, scale=0.1)
expected = reference.forward(x_t, W1_t, b1_t, W2_t, b2_t)
with tripwire.forbid("linear", "forward"), tripwire.forbid("relu", "forward"):
    out = forward(x_t, W1_t, b1_t, W2_t, b2_t)
checks.assert_close(out, expected, "forward(x [64, 784], ...)", atol=1e-5,
                    hint="linear(relu(linear(x, W1, b1)), W2, b2): ReLU between the two layers, both biases added")
### BEGIN HIDDEN TESTS
for seed, B, hidden in [(80, 1, 128), (81, 64, 128), (82, 5, 7), (83, 13, 1), (84, 2, 300)]:
    g = torch.Generator().manual_seed(seed)
    x_t = torch.rand(B, 784, generator=g)
    W1_t = checks.seeded(seed + 1, 784, hidden, scale=(2 / 784) ** 0.5)
    W2_t = checks.seeded(seed + 2, hidden, 10, scale=(2 / hidden) ** 0.5)
    b1_t, b2_t = checks.seeded(seed + 3, hidden, scale=0.1), checks.seeded(seed + 4, 10, scale=0.1)
    args = (x_t, W1_t, b1_t, W2_t, b2_t)
    kept = [t.clone() for t in args]
    with tripwire.forbid("linear", "forward"), tripwire.forbid("relu", "forward"):
        out = forward(*args)
    for name, before, after in zip(["x", "W1", "b1", "W2", "b2"], kept, args):
        checks.assert_unchanged(before, after, f"forward's argument {name}")
    checks.assert_close(out, reference.forward(*kept), f"forward(x [{B}, 784]) with hidden={hidden}", atol=1e-5,
                        hint="linear(relu(linear(x, W1, b1)), W2, b2)")
# The network's own parameters, which require gradients, and inputs that are standard normal.
params = reference.init_params(seed=3)
x_t = checks.seeded(90, 16, 784)
with tripwire.forbid("linear", "forward"), tripwire.forbid("relu", "forward"):
    out = forward(x_t, *params)
checks.assert_close(out, reference.forward(x_t, *params), "forward with init_params(seed=3)", atol=1e-5)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_forward_relu_between", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# When every hidden pre-activation is negative, ReLU turns the hidden layer to zeros and the
# logits are b2 on every row. A forward without ReLU, or with ReLU after the last layer, fails here.
# Tolerance atol=1e-6: 0 @ W2 is exactly 0, so only b2 remains.
# When graded, also: the same all-negative hidden layer with a single image and a tiny hidden
#   layer, and with a full-size batch and network.
g = torch.Generator().manual_seed(100)
x_t = torch.rand(8, 784, generator=g)                                  # pixels >= 0
W1_t = -checks.seeded(101, 784, 32, scale=0.05).abs()                  # weights <= 0
b1_t = -torch.full((32,), 0.1)                                         # so x @ W1 + b1 < 0 everywhere
W2_t, b2_t = checks.seeded(102, 32, 10), torch.linspace(-2.0, 2.0, 10)  # b2 has negative entries
with tripwire.forbid("linear", "forward"), tripwire.forbid("relu", "forward"):
    out = forward(x_t, W1_t, b1_t, W2_t, b2_t)
checks.assert_close(out, b2_t.expand(8, 10), "forward with all hidden pre-activations negative", atol=1e-6,
                    hint="apply ReLU to the hidden layer (between the layers), and not to the logits")
### BEGIN HIDDEN TESTS
for B, hidden, seed in [(1, 3, 110), (64, 128, 111)]:
    g = torch.Generator().manual_seed(seed)
    x_t = torch.rand(B, 784, generator=g)
    W1_t = -checks.seeded(seed + 1, 784, hidden, scale=0.05).abs()
    b1_t = -checks.seeded(seed + 2, hidden).abs() - 0.01
    W2_t, b2_t = checks.seeded(seed + 3, hidden, 10), checks.seeded(seed + 4, 10) - 1.0
    with tripwire.forbid("linear", "forward"), tripwire.forbid("relu", "forward"):
        out = forward(x_t, W1_t, b1_t, W2_t, b2_t)
    checks.assert_close(out, reference.forward(x_t, W1_t, b1_t, W2_t, b2_t),
                        f"forward (batch {B}, hidden {hidden}) with all hidden pre-activations negative", atol=1e-6,
                        hint="ReLU between the layers, not after the last one")
    checks.assert_close(out, b2_t.expand(B, 10), f"forward (batch {B}) should give b2 on every row", atol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# **Written question (2 points, graded by hand).** Your `forward` computes
# `relu(x @ W1 + b1) @ W2 + b2` with 101,770 parameters. Think about what each piece buys.
#
# 1. Take the ReLU out. How many numbers would describe the function the network then
#    computes, and why? What could it still not do that the network with the ReLU can?
# 2. Put the ReLU back and drop `b1` instead (every hidden unit gets `x @ W1[:, j]` with no
#    bias). Where does each hidden unit's hinge switch on now? What happens to the logits,
#    apart from `b2`, when an input image is made twice as bright (every pixel doubled), and
#    what does that say about what such a network can represent?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_relu_bias", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# *Rubric:* 1 point for each part. Part 1: the two layers collapse into one,
# `x @ (W1 @ W2) + (b1 @ W2 + b2)`, so 784 × 10 + 10 = 7,850 numbers describe it (the rest is
# redundant); it can only draw flat (linear) boundaries between classes, not the bent ones a ReLU
# network draws (the ring around the centre). Part 2: without `b1` every hinge switches on at
# `x @ W1[:, j] = 0`, a boundary through the origin (the black image); ReLU commutes with positive
# scaling, `relu(2z) = 2 relu(z)`, so the hidden values and the logits minus `b2` exactly double:
# the network can only represent functions that scale with the input's brightness (positively
# homogeneous), it cannot put a threshold at a brightness of its own choosing. Half a point off
# a part that gives the right claim without the reason.
#
# *Model answer:* (1) Without the ReLU, `(x @ W1 + b1) @ W2 + b2 = x @ (W1 @ W2) + (b1 @ W2 + b2)`:
# whatever the 101,770 parameters are, the function is one linear layer with a `[784, 10]` weight
# and a `[10]` bias, 7,850 numbers. Each class score is then a linear function of the pixels, so
# the boundary between two classes is a flat hyperplane; it cannot separate a ring from its
# centre, or any class that is not linearly separable. (2) Without `b1`, hidden unit `j` switches on
# where `x @ W1[:, j] > 0`, a half-space whose boundary passes through the origin: every hinge goes
# through the all-black image. Because `relu(c z) = c relu(z)` for `c > 0`, doubling every pixel
# doubles every pre-activation, every hidden value, and so `h @ W2`: the logits become
# `2 (h @ W2) + b2`. Such a network is positively homogeneous apart from `b2`: it cannot say
# "on above this brightness", only "on in this direction", and brighter images only get more
# confident versions of the same scores. The bias is what lets each hinge sit anywhere.
# ### END SOLUTION

# %% [markdown]
# ## Shapes at any batch size
#
# Move the slider: every stage keeps its second dimension, and only the first, the batch
# (in red), follows the slider. Change the hidden width too: it appears in the middle
# stages and vanishes again in `@ W2`. The last line runs your `forward` on a random batch
# of that size and checks the shape it returns.

# %%
demo.shape_tracer(forward)

# %% [markdown]
# ## Exercise 4: `predict`
#
# The network's guess for each image is the digit with the largest logit: the position
# of the maximum along dimension 1 (the classes), one per row. PyTorch calls this
# `argmax`. Mind the dimension: along dimension 0 you would get, for each digit, the
# image that scores it highest. When two logits tie, take the first, as `argmax` does.

# %% nbgrader={"grade": false, "grade_id": "predict", "locked": false, "schema_version": 3, "solution": true, "task": false}
def predict(logits):
    """The predicted class of each row: the index of its largest logit.

    Args:
        logits (Tensor): float ``[B, C]`` (C = 10 for digits), any B >= 1.

    Returns:
        Tensor: int64 (LongTensor) ``[B]``, values in ``0..C-1``; on a tie, the first (lowest)
        index of the maximum. ``logits`` is not modified.
    """
    ### BEGIN SOLUTION
    return logits.argmax(dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_predict", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# One class per row, the position of the row's largest value (compared with torch.argmax(dim=1)).
# When graded, also: other batch sizes and class counts, all-negative and very large logits, ties
#   (first index wins), logits left unmodified, and logits that require gradients.
logits_t = torch.tensor([[0.1, 2.0, -1.0, 0.0, 0.3, 0.2, -0.5, 1.9, 0.0, 0.0],
                         [-3.0, -2.0, -1.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0, -0.5],
                         [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0]])
got = predict(logits_t)
checks.assert_shape(got, (3,), "predict(logits [3, 10])",
                    hint="argmax along dim=1 (over the classes), without keepdim: one class per image")
checks.assert_equal(got.long(), torch.tensor([1, 9, 9]), "predict(logits [3, 10])",
                    hint="the index of the largest logit of each row (dim=1), not its value")
### BEGIN HIDDEN TESTS
cases = {
    "predict(logits [64, 10])": checks.seeded(120, 64, 10),
    "predict(logits [1, 10]) (a batch of 1)": checks.seeded(121, 1, 10),
    "predict(logits [5, 3])": checks.seeded(122, 5, 3),
    "predict of all-negative logits": -checks.seeded(123, 6, 10).abs() - 1.0,
    "predict of logits around 1e4": checks.seeded(124, 6, 10, scale=1e4),
    "predict with ties": torch.tensor([[1.0, 5.0, 5.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, -1.0, 3.0, 3.0]]),
}
for name, logits_t in cases.items():
    before = logits_t.clone()
    got = predict(logits_t)
    checks.assert_shape(got, (logits_t.shape[0],), name, hint="argmax along dim=1, without keepdim")
    checks.assert_equal(got.long(), reference.predict(before), name,
                        hint="argmax over dim=1; on a tie the first index of the maximum")
    checks.assert_unchanged(before, logits_t, f"{name}: the logits")
logits_g = checks.seeded(125, 4, 10).requires_grad_(True)
checks.assert_equal(predict(logits_g).long(), reference.predict(logits_g), "predict of logits that require grad")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_predict_dtype", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Classes are indices, so they are int64 (a LongTensor), which is what the loss and indexing expect.
# When graded, also: a batch of a single image, which must still give int64 classes.
logits_t = checks.seeded(130, 8, 10)
got = predict(logits_t)
checks.assert_dtype(got, torch.int64, "predict(logits [8, 10])",
                    hint="argmax already returns int64; do not convert the result to float")
checks.assert_equal(got, reference.predict(logits_t), "predict(logits [8, 10])")
### BEGIN HIDDEN TESTS
got = predict(checks.seeded(131, 1, 10))
checks.assert_dtype(got, torch.int64, "predict(logits [1, 10])")
checks.assert_equal(got, reference.predict(checks.seeded(131, 1, 10)), "predict(logits [1, 10])")
### END HIDDEN TESTS

# %% [markdown]
# ## The untrained network on real digits
#
# Time to run the whole thing on the test set: 10,000 images in one batch, one guess
# each. The network is untrained, its weights are random, so the guesses should be
# random too.

# %%
guesses = predict(forward(X, W1, b1, W2, b2))
fig = demo.show_digits(X[:10], y[:10], guesses[:10])
plt.show()
print(f"accuracy on the 10,000 test images: {(guesses == y).float().mean().item():.1%}")

# %% [markdown]
# With ten digits that occur about equally often, guessing blindly is right about one
# time in ten. A particular random network is not a fair die, though: it has favourite
# digits, set by the accidents of its weights, and its accuracy depends on whether its
# favourites happen to be common. Here is what this one guesses:

# %%
fig = demo.plot_prediction_counts(guesses, y)
plt.show()

# %% [markdown]
# Over many random networks the favourites average out. Twenty seeds, each on the first
# 2,000 test images:

# %%
accuracies = []
for seed in range(20):
    params = [p.detach() for p in reference.init_params(seed=seed)]
    accuracies.append((predict(forward(X[:2000], *params)) == y[:2000]).float().mean().item())
print("accuracy of each random network:", " ".join(f"{a:.0%}" for a in accuracies))
print(f"mean over 20 random networks: {sum(accuracies) / len(accuracies):.1%}")

# %% [markdown]
# About 10%: chance. Everything the network will know comes from training, which
# lessons 03 to 07 build. By lesson 07 the same forward pass, with trained weights, gets
# about 98% of these digits right.
#
# ## What `torch.nn` does here
#
# `nn.Linear(784, 128)` is a weight matrix and a bias, nothing more. One detail differs
# from our layout: it stores the weight as `[out, in]` = `[128, 784]`, the transpose of
# our `W1`, and computes `x @ weight.T + bias`. So your `linear`, handed `weight.T`
# (a view, no copy), computes exactly the same layer. `nn.ReLU()` is `clamp(min=0)`.

# %%
torch.manual_seed(0)
layer = nn.Linear(784, 128)
print("nn.Linear(784, 128).weight:", list(layer.weight.shape), "  .bias:", list(layer.bias.shape))
with torch.no_grad():
    print("largest difference, layer(x) vs linear(x, weight.T, bias):",
          (layer(x) - linear(x, layer.weight.T, layer.bias)).abs().max().item())
    z = torch.randn(64, 128)
    print("nn.ReLU()(z) equals relu(z) exactly:", torch.equal(nn.ReLU()(z), relu(z)))
    model = reference.torch_model(W1, b1, W2, b2)        # Sequential(Linear, ReLU, Linear) holding our tensors
    print(model)
    print("largest difference, model(x) vs forward(x, ...):",
          (model(x) - forward(x, W1, b1, W2, b2)).abs().max().item())

# %% [markdown]
# The layers of `torch.nn` are packaging around the few lines you just wrote: they hold
# the tensors, create them with a sensible initialisation, and keep track of them for the
# optimizer. Lesson 08 fills such a model with your trained tensors (mind the
# transposes), and lesson 10 rebuilds the packaging itself.
#
# ## Check yourself
#
# No points, just immediate feedback.

# %%
quiz([
    Question("x is [32, 784], W1 is [784, 128], b1 is [128]. What is the shape of x @ W1 + b1?",
             ["[784, 128]", "[32, 128]", "[32, 784]", "[128]"], answer=1,
             explanation="The inner 784s match and vanish, leaving [32, 128]; the bias [128] is broadcast "
                         "to every one of the 32 rows."),
    Question("What would the network be without the ReLU between its layers?",
             ["A deeper and more powerful network",
              "Exactly equivalent to a single linear layer, x @ (W1 @ W2) + (b1 @ W2 + b2)",
              "Unable to run, because the shapes would not match"], answer=1,
             explanation="Matrix products are associative, so two linear layers collapse into one [784, 10] layer. "
                         "ReLU's hinges are what let the network bend its decision boundaries."),
    Question("What shape is nn.Linear(784, 128).weight?",
             ["[784, 128]", "[128, 784]", "[128]"], answer=1,
             explanation="PyTorch stores [out, in] and computes x @ weight.T + bias: the transpose of our W1."),
    Question("An untrained network classifies the 10,000 test digits. About how many does it get right?",
             ["None", "About 1,000: chance level for ten classes", "About half"], answer=1,
             explanation="Random weights make random guesses; with ten roughly equally common digits that is "
                         "about 10%. One particular random network may do somewhat better or worse because it "
                         "favours some digits."),
    Question("You want the guess for one image. Why does predict(forward(X[0], W1, b1, W2, b2)) fail?",
             ["X[0] is [784]: without its batch dimension the logits come out as [10], which has no "
              "dimension 1 to take the argmax over; use X[:1]",
              "The network only accepts batches of 64",
              "It does not fail: a single image is handled like a batch"], answer=0,
             explanation="Integer indexing drops a dimension. X[:1] or X[0].unsqueeze(0) keeps a batch of one, "
                         "[1, 784], and gives logits [1, 10] and a prediction of shape [1]."),
])
