# ---
# jupyter:
#   jupytext:
#     formats: source/01_tensors//ipynb,notebooks//py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Tensors: the four arrays that are the whole network
#
# Over ten lessons you will build, by hand, everything that happens when PyTorch trains a
# network: the forward pass, the loss, the gradients, the optimizer, the batching and the
# training loop. At the end you will train the same network with `torch.nn` and
# `torch.optim` and check that both give the same numbers.
#
# Where this goes: at the end of lesson 07 the network you trained, with only the code you
# wrote, is written into one web page, `mnist_mlp.html`. Open it in any browser, draw a digit
# with the mouse or a finger, and the page classifies it as you draw: a few dozen lines of
# JavaScript doing the same three operations as your Python, no server, no library.
#
# The network reads a 28×28 grey image of a handwritten digit, flattened to 784 numbers,
# and returns ten scores, one per digit:
#
# ```
#  x [B, 784] ──@ W1 [784, 128] + b1 [128]──▶ ReLU ──@ W2 [128, 10] + b2 [10]──▶ logits [B, 10]
# ```
#
# `B` is the batch size: how many images go through at once. **The entire network is four
# tensors**: `W1`, `b1`, `W2`, `b2`. There is no class, no layer object; a layer is a
# matrix and a vector. This lesson creates those four tensors properly and measures them.
#
# **You will write:** `init_params`, `count_params`, `param_bytes`.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math

import matplotlib.pyplot as plt
import torch

from grader import checks, reference
from grader.widgets import tensors as demo
from grader.widgets.quiz import Question, quiz

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## What a tensor carries
#
# A tensor is an n-dimensional array of numbers plus four facts about it:
#
# | attribute | what it says | example |
# |---|---|---|
# | `shape` | the size of each dimension | `torch.Size([784, 128])` |
# | `dtype` | the number format of every element | `torch.float32`: 4 bytes each |
# | `device` | where the numbers live | `cpu`, or `cuda:0` on a GPU |
# | `requires_grad` | whether operations on it are recorded so that gradients can flow back to it | `True` for weights |
#
# Let us look at one.

# %%
t = torch.randn(3, 4)
print("shape        ", t.shape)
print("dtype        ", t.dtype, "->", t.element_size(), "bytes per value")
print("device       ", t.device)
print("requires_grad", t.requires_grad)
print("grad         ", t.grad)
t

# %% [markdown]
# `torch.randn` draws each value from a standard normal distribution (mean 0, standard
# deviation 1), so about two thirds of the values lie between -1 and 1.
#
# ## Why the scale of the weights matters
#
# The obvious way to create `W1` is `torch.randn(784, 128)`. It works for our small network
# but it is a bad habit, and here is why. Each hidden value is a sum of 784 products
# `x_i * w_i`. If the `w_i` have standard deviation 1, the sum's standard deviation grows
# like the square root of the number of terms: the outputs are many times larger than the
# inputs. Stack a few such layers and the numbers explode; scale the weights too small and
# they shrink to nothing. Either way the gradients that training relies on blow up or vanish.
#
# The cure (He et al., 2015, called *Kaiming* or *He* initialisation) is to choose the
# standard deviation so that the variance of the activations stays the same from layer to
# layer. For a layer with `fan_in` inputs followed by ReLU:
#
# $$\text{std}(W) = \sqrt{2 / \text{fan\_in}}$$
#
# The `1 / fan_in` cancels the growth of the sum over `fan_in` terms; the `2` compensates
# for ReLU, which sets half of the values (the negative ones) to zero and so halves the
# variance. For `W1`, `fan_in = 784` and the scale is `sqrt(2/784) ≈ 0.0505`: values
# roughly within ±0.15 instead of ±3.
#
# The picture below pushes a random batch through ten Linear+ReLU layers of width 256 and
# plots the spread of the activations after each one (log scale).

# %%
fig = demo.plot_activation_stds(depth=10, width=256)
plt.show()

# %% [markdown]
# With standard-normal weights the spread grows about tenfold per layer; with weights a
# hundred times smaller it shrinks tenfold per layer; with `sqrt(2/fan_in)` it stays flat.
#
# ## `requires_grad`: asking PyTorch to keep a record
#
# Training needs, for every weight, the derivative of the loss with respect to that
# weight. PyTorch can compute these derivatives for us, but only for tensors it was told
# to follow. A tensor created with `requires_grad=True` (or switched on later with the
# in-place `.requires_grad_(True)`) becomes a *leaf* of a computation graph: every
# operation that uses it is recorded, and `loss.backward()` walks that record backwards
# and stores the result in the leaf's `.grad`. Until then `.grad` is `None`.
#
# One subtlety matters for the exercise. `torch.randn(784, 128, requires_grad=True) * 0.05`
# is **not** a leaf: it is the *result* of a multiplication that PyTorch recorded, and
# `.backward()` would not fill its `.grad`. Scale first, then switch tracking on.

# %%
a = torch.randn(2, 2, requires_grad=True) * 0.05
b = (torch.randn(2, 2) * 0.05).requires_grad_(True)
print("scaled after requires_grad: is_leaf =", a.is_leaf)
print("requires_grad after scaling: is_leaf =", b.is_leaf)

# %% [markdown]
# ## Exercise 1: `init_params`
#
# Create the four tensors of the 784 → `hidden` → 10 network.
#
# * Call `torch.manual_seed(seed)` first, so that the same seed always gives the same
#   network (everything later in the course relies on that).
# * Draw `W1` **then** `W2` with `torch.randn`, in that order, and scale each by
#   `sqrt(2 / fan_in)`: `fan_in` is 784 for `W1` and `hidden` for `W2`.
# * Biases start at zero.
# * All four must be float32 leaf tensors with `requires_grad=True`.

# %% nbgrader={"grade": false, "grade_id": "init_params", "locked": false, "schema_version": 3, "solution": true, "task": false}
def init_params(seed=0, hidden=128):
    """Kaiming-initialised parameters of a 784 -> hidden -> 10 MLP.

    Args:
        seed (int): passed to ``torch.manual_seed`` before any random draw.
        hidden (int): width of the hidden layer, at least 1.

    Returns:
        tuple ``(W1, b1, W2, b2)`` of float32 leaf tensors, all with ``requires_grad=True``:
            W1: [784, hidden], ``torch.randn(784, hidden) * sqrt(2 / 784)`` (drawn first)
            b1: [hidden], zeros
            W2: [hidden, 10], ``torch.randn(hidden, 10) * sqrt(2 / hidden)`` (drawn second)
            b2: [10], zeros
    """
    ### BEGIN SOLUTION
    torch.manual_seed(seed)
    W1 = (torch.randn(784, hidden) * math.sqrt(2.0 / 784)).requires_grad_(True)
    b1 = torch.zeros(hidden, requires_grad=True)
    W2 = (torch.randn(hidden, 10) * math.sqrt(2.0 / hidden)).requires_grad_(True)
    b2 = torch.zeros(10, requires_grad=True)
    return W1, b1, W2, b2
    ### END SOLUTION


# %% [markdown]
# Try it before running the tests: the shapes, and the spread of `W1`, should match the
# recipe.

# %%
W1, b1, W2, b2 = init_params()
for name, p in zip(["W1", "b1", "W2", "b2"], [W1, b1, W2, b2]):
    print(f"{name}: shape {list(p.shape)}, std {p.std().item() if p.numel() > 1 else 0:.4f}, "
          f"leaf {p.is_leaf}, requires_grad {p.requires_grad}")
print("expected std of W1:", math.sqrt(2 / 784), " of W2:", math.sqrt(2 / 128))

# %% nbgrader={"grade": true, "grade_id": "test_init_params_shapes", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Shapes, dtype, leaves, zero biases.
# When graded, also: other hidden widths, tiny and wider than the default; every tensor a fresh leaf
#   with requires_grad and no gradient yet.
W1, b1, W2, b2 = init_params()
for name, p, shape in [("W1", W1, (784, 128)), ("b1", b1, (128,)), ("W2", W2, (128, 10)), ("b2", b2, (10,))]:
    checks.assert_shape(p, shape, f"init_params()[{name}]", hint="W1 is [784, hidden], W2 is [hidden, 10]")
    checks.assert_dtype(p, torch.float32, f"init_params()[{name}]")
    assert p.requires_grad, f"init_params()[{name}] has requires_grad=False; the optimizer needs its gradient"
    assert p.is_leaf, (f"init_params()[{name}] is not a leaf tensor: scale with randn(...) * s first, "
                       f"then call .requires_grad_(True) on the result")
checks.assert_equal(b1, torch.zeros(128), "init_params()[b1]", hint="biases start at zero")
checks.assert_equal(b2, torch.zeros(10), "init_params()[b2]", hint="biases start at zero")
W1s, _, _, _ = init_params(hidden=32)
checks.assert_shape(W1s, (784, 32), "init_params(hidden=32)[W1]", hint="use the hidden argument, not 128")
### BEGIN HIDDEN TESTS
for hidden in (1, 7, 300):
    ps = init_params(seed=3, hidden=hidden)
    for name, p, shape in zip(["W1", "b1", "W2", "b2"], ps, [(784, hidden), (hidden,), (hidden, 10), (10,)]):
        checks.assert_shape(p, shape, f"init_params(hidden={hidden})[{name}]")
        assert p.is_leaf and p.requires_grad and p.grad is None, f"init_params(hidden={hidden})[{name}]: not a fresh leaf"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_init_params_values", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# The exact values: same seed, same numbers as PyTorch's own Kaiming initialiser,
# nn.init.kaiming_normal_(..., mode="fan_out") on the course's [in, out] weights (PyTorch's layout is [out, in]).
# Tolerance 1e-6: both draw the same normals; only the rounding of the scaling may differ.
# When graded, also: other seeds and hidden widths, a global seed set beforehand (must not matter),
#   the same seed twice giving identical tensors, and different seeds giving different weights.
mine = init_params(seed=0)
theirs = reference.init_params(seed=0)
for name, a, e in zip(["W1", "b1", "W2", "b2"], mine, theirs):
    checks.assert_close(a, e, f"init_params(seed=0)[{name}]", atol=1e-6,
                        hint="call torch.manual_seed(seed) first, draw W1 before W2, "
                             "and scale by sqrt(2 / fan_in) (784 for W1, hidden for W2)")
### BEGIN HIDDEN TESTS
torch.manual_seed(12345)                      # must not matter: init_params sets its own seed
for seed, hidden in [(1, 128), (42, 64), (7, 1), (2024, 256)]:
    mine = init_params(seed=seed, hidden=hidden)
    theirs = reference.init_params(seed=seed, hidden=hidden)
    for name, a, e in zip(["W1", "b1", "W2", "b2"], mine, theirs):
        checks.assert_close(a, e, f"init_params(seed={seed}, hidden={hidden})[{name}]", atol=1e-6,
                            hint="seed first, W1 before W2, scale sqrt(2 / fan_in)")
a1, a2 = init_params(seed=5), init_params(seed=5)
assert all(torch.equal(p, q) for p, q in zip(a1, a2)), "init_params is not deterministic for a fixed seed"
assert not torch.equal(init_params(seed=5)[0], init_params(seed=6)[0]), "init_params ignores its seed"
### END HIDDEN TESTS

# %% [markdown]
# ## Your layout and PyTorch's
#
# The tests above compare your tensors with PyTorch's own Kaiming initialiser, and the call
# they make is `nn.init.kaiming_normal_(torch.empty(784, hidden), mode="fan_out",
# nonlinearity="relu")`: with **`mode="fan_out"`**, not the default. The reason is a
# convention. PyTorch stores a layer's weight as `[out, in]` (`nn.Linear(784, 128).weight`
# has shape `[128, 784]`, and the layer computes `x @ W.T`), while this course stores it as
# `[in, out]` and computes `x @ W`. Lesson 08 meets the same transpose again.
#
# **Written question (2 points, graded by hand).** Explain why `mode="fan_out"` gives the
# recipe's `sqrt(2 / fan_in)` on the course's `[in, out]` weights: which dimension of a
# weight does `kaiming_normal_` call its fan-in, and which its fan-out? Then say what goes
# wrong with the default `mode="fan_in"` on our `W1` (784 × 128) and `W2` (128 × 10): which
# number would it divide by, what standard deviation would each get instead of the right
# one, and what would that do to the activations of a deep stack of such layers (think of
# the plot above)?

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_kaiming_fan", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# *Rubric:* 2 points: says that `kaiming_normal_` assumes PyTorch's `[out, in]` layout, so it takes
# the fan-in from the tensor's second dimension and the fan-out from the first; on an `[in, out]`
# tensor the first dimension is the real fan-in, hence `mode="fan_out"`; **and** says what the
# wrong fan does: `W1` divided by 128 instead of 784 (std 0.125 instead of 0.0505, about 2.5 times
# too large) and `W2` by 10 instead of 128 (std 0.447 instead of 0.125), so the variance of the
# activations grows layer after layer (about sixfold per layer for `W1`'s shape) and a deep stack
# explodes, as in the plot. 1 point: only one of the two halves right (the layout explained without
# its consequence, or the consequence without why `fan_out` is the right mode), or numbers that are
# wrong but a right argument. 0: the layout is not mentioned, or the answer only restates the recipe.
#
# *Model answer:* PyTorch writes a weight as `[out, in]`, so for a 2-D tensor `kaiming_normal_`
# calls `size(1)` the fan-in and `size(0)` the fan-out. Our `W1` is `[784, hidden]`: its `size(0)`,
# 784, is the number of inputs each hidden unit sums over, the real fan-in. So we must ask for
# `mode="fan_out"` to divide by 784 and get `std = sqrt(2/784) ≈ 0.0505`. With the default mode
# the initialiser would divide by `size(1)`: by 128 for `W1` (std `sqrt(2/128) = 0.125`, 2.5 times
# too large, 6.1 times the variance) and by 10 for `W2` (std ≈ 0.447 instead of 0.125). Each hidden
# value would then have about six times the variance of the layer's input instead of the same; in
# a deep stack of such layers the activations (and the gradients flowing back) would grow
# geometrically, the "standard normal" curve of the plot in a milder form, and training would
# diverge or need a tiny learning rate. (For a layer whose output is wider than its input, the
# wrong fan would shrink the activations instead, and the gradients would vanish.)
# ### END SOLUTION

# %% [markdown]
# ## How big is the network?
#
# Every value of every tensor is one *parameter*, something training will adjust. In
# float32 each takes 4 bytes. Move the slider to see how the hidden width drives the
# count, and change the dtype to see what half precision would save.

# %%
demo.memory_widget()

# %% [markdown]
# At width 128 the table reads 100,352 + 128 + 1,280 + 10 = **101,770 parameters**, and at
# 4 bytes each **407,080 bytes, about 407 KB**. `W1` alone holds 98.6% of them: every one
# of the 128 hidden units has its own weight for each of the 784 pixels. Small, by today's
# standards: the whole network fits in a CPU's cache.
#
# ## Exercise 2: `count_params` and `param_bytes`
#
# Write both for **any** sequence of tensors, whatever their shapes and dtypes (a float64
# tensor takes 8 bytes per value, a float16 one 2). Useful tensor methods: `numel()` (number
# of values) and `element_size()` (bytes per value).

# %% nbgrader={"grade": false, "grade_id": "count_params", "locked": false, "schema_version": 3, "solution": true, "task": false}
def count_params(params):
    """Total number of values in a sequence of tensors.

    Args:
        params: iterable of tensors of any shape (a 0-d tensor counts 1, an empty one 0).

    Returns:
        int: the sum of the tensors' numbers of elements (a Python int).
    """
    ### BEGIN SOLUTION
    return sum(p.numel() for p in params)
    ### END SOLUTION


def param_bytes(params):
    """Memory taken by the values of a sequence of tensors.

    Args:
        params: iterable of tensors of any shape and dtype.

    Returns:
        int: the sum over tensors of (number of elements) x (bytes per element), a Python int.
    """
    ### BEGIN SOLUTION
    return sum(p.numel() * p.element_size() for p in params)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_count_params", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# When graded, also: other shapes, 0-d and empty tensors, an empty list, mixed dtypes and a generator.
params = init_params()
n = count_params(params)
assert type(n) is int, f"count_params should return a Python int, got {type(n).__name__}"
assert n == 101_770, f"count_params(init_params()) = {n:,}, expected 101,770 (784*128 + 128 + 128*10 + 10)"
### BEGIN HIDDEN TESTS
cases = [init_params(hidden=1), [torch.zeros(3, 4, 5)], [torch.tensor(2.0)], [torch.zeros(0, 7)], [],
         [torch.ones(2, dtype=torch.float64), torch.ones(5, 5, dtype=torch.int8)]]
for case in cases:
    got, want = count_params(case), reference.count_params(case)
    assert type(got) is int and got == want, f"count_params of shapes {[list(p.shape) for p in case]} = {got}, expected {want}"
assert int(count_params(iter(init_params(hidden=2)))) == reference.count_params(init_params(hidden=2)), \
    "count_params must accept any iterable, including a generator"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_param_bytes", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# When graded, also: float64, int8 and bfloat16 tensors, mixed dtypes, 0-d and empty tensors,
#   an empty list, and a network of another width.
nbytes = param_bytes(init_params())
assert type(nbytes) is int, f"param_bytes should return a Python int, got {type(nbytes).__name__}"
assert nbytes == 407_080, f"param_bytes(init_params()) = {nbytes:,}, expected 407,080 (101,770 values x 4 bytes)"
half = [p.detach().half() for p in init_params()]
assert int(param_bytes(half)) == 203_540, \
    f"param_bytes of float16 tensors = {param_bytes(half):,}, expected 203,540: use element_size(), not a fixed 4"
### BEGIN HIDDEN TESTS
cases = [[torch.zeros(3, 4, dtype=torch.float64)], [torch.zeros(10, dtype=torch.int8), torch.tensor(1.0)],
         [torch.zeros(0)], [], init_params(hidden=5), [torch.zeros(2, 3, dtype=torch.bfloat16)]]
for case in cases:
    got, want = param_bytes(case), reference.param_bytes(case)
    assert type(got) is int and got == want, (f"param_bytes of {[(list(p.shape), str(p.dtype)) for p in case]} = {got}, "
                         f"expected {want}")
### END HIDDEN TESTS

# %% [markdown]
# ## Where the tensors live
#
# Every tensor so far is on the CPU. A GPU has its own memory; `tensor.to("cuda")` copies
# a tensor there, and from then on every operation on it runs on the GPU. The four tensors
# do not change meaning when they move; lesson 09 does exactly this. The line below picks
# whatever this machine has.

# %%
device = "cuda" if torch.cuda.is_available() else "cpu"
print("this machine computes on:", device)
print("W1 now lives on:", init_params()[0].to(device).device)

# %% [markdown]
# ## Check yourself
#
# No points, just immediate feedback.

# %%
quiz([
    Question("Why do the weight tensors need <code>requires_grad=True</code>?",
             ["It makes them trainable by itself: PyTorch updates them after each step",
              "PyTorch then records every operation on them, so that backward() can compute the loss's "
              "derivative with respect to them",
              "It stores them in float32 instead of float64"],
             answer=1,
             explanation="requires_grad only asks for a record of the computation; the update is still "
                         "something you write (lesson 05)."),
    Question("Which tensor holds most of the network's 101,770 parameters?",
             ["W1 [784, 128]", "W2 [128, 10]", "b1 [128]"], answer=0,
             explanation="784 x 128 = 100,352 weights: one per (pixel, hidden unit) pair, 98.6% of the total."),
    Question("Why scale W1 by sqrt(2/784) rather than use plain randn?",
             ["To make training deterministic",
              "So that the spread of the activations stays about the same from layer to layer instead of "
              "exploding or vanishing",
              "Because float32 cannot store values above 1"], answer=1,
             explanation="A sum of 784 products grows with the number of terms; dividing the variance by fan_in "
                         "cancels that, and the factor 2 makes up for ReLU zeroing half the values."),
    Question("<code>w = torch.randn(3, requires_grad=True) * 2</code>: what is <code>w.grad</code> after "
             "<code>w.sum().backward()</code>?",
             ["tensor([2., 2., 2.])", "tensor([1., 1., 1.])", "None: w is not a leaf, so its gradient is not kept"],
             answer=2,
             explanation="w is the result of a multiplication; the gradient lands in the leaf created by randn. "
                         "Scale first, then call requires_grad_(True)."),
])
