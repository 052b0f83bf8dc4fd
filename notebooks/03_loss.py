# ---
# jupyter:
#   jupytext:
#     formats: source/03_loss//ipynb,notebooks//py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Softmax and the cross-entropy loss
#
# The forward pass of lesson 02 turns a batch of `B` images into `logits` of shape
# `[B, 10]`: ten scores per image, one per digit. Training has to adjust 101,770 weights so
# that these scores get *better*, and for that "better" has to be **one number** that goes
# down as the network improves. With a single number, every weight can be asked one
# question: if you grew a little, would that number go up or down, and how fast? That is the
# gradient (lesson 04), and the optimizer follows it downhill (lesson 05). Six hundred and
# forty scores for a batch of 64 cannot be minimised all at once; one number can.
#
# That number is the **loss**. For classification the standard one is the *cross-entropy*,
# built in three steps:
#
# ```
#  logits [B, 10] ──softmax──▶ probabilities [B, 10] ──pick the correct class, -log──▶ [B] ──mean──▶ loss (one number)
# ```
#
# Each step hides a numerical trap, and this lesson is mostly about those traps.
#
# **You will write:** `softmax`, `log_softmax`, `cross_entropy`.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from grader import checks, data, reference, tripwire
from grader.widgets import loss as demo
from grader.widgets.quiz import Question, quiz

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## What the network hands us
#
# Here are the logits of a freshly initialised network for the first four test images.
# `reference.init_params` and `reference.forward` are PyTorch's own versions of what you
# wrote in lessons 01 and 02, so this lesson does not depend on your earlier answers.

# %%
X_test, y_test = data.load_mnist("test")
params = reference.init_params(seed=0)
with torch.no_grad():
    logits = reference.forward(X_test[:4], *params)
print("labels:", y_test[:4].tolist())
print(logits)

# %% [markdown]
# Some scores are negative, some positive, and a row adds up to nothing in particular. A
# logit means only "more" or "less" relative to the other logits of its row. To say how
# wrong the network is, we first turn each row into a probability distribution: ten numbers,
# each between 0 and 1, adding up to 1.
#
# ## Softmax: scores into probabilities
#
# For one row of logits $z_1, \dots, z_C$:
#
# $$\text{softmax}(z)_i = \frac{e^{z_i}}{\sum_{j=1}^{C} e^{z_j}}$$
#
# Why the exponential?
#
# * $e^{z}$ is positive for every $z$, so every class gets a positive share;
# * it is increasing, so the largest logit keeps the largest probability;
# * it turns differences into ratios: a logit one larger gets $e \approx 2.72$ times the
#   share, whatever the other logits are. Only differences between logits matter.
#
# Dividing by the row's sum makes the shares add up to 1. The name says what it does: a
# *soft* version of "pick the maximum". When one logit is far above the others, nearly all
# the probability goes to it; when the logits are close, it is spread out.
#
# For a single row the formula is two lines:

# %%
def naive_softmax(z):
    """The textbook formula for ONE row (a 1-D tensor). Do not use it: see below."""
    e = torch.exp(z)
    return e / e.sum()


print(naive_softmax(torch.tensor([1.0, 2.0, 3.0])))

# %% [markdown]
# ## Where the textbook formula breaks
#
# A float32 number cannot exceed about $3.4 \times 10^{38}$, which is $e^{88.7}$. Beyond
# that, `exp` returns `inf`. And $e^{100} \approx 2.7 \times 10^{43}$: a logit of 100 is
# already too much.

# %%
def show(t):
    """A tensor's values in scientific notation, so that huge and tiny numbers stay readable."""
    return "[" + ", ".join(f"{v:.4g}" for v in t.tolist()) + "]"


print("largest float32:       ", f"{torch.finfo(torch.float32).max:.4g}")
print("exp(100), exactly:     ", f"{math.exp(100):.4g}")
print("exp([88, 89]) float32: ", show(torch.exp(torch.tensor([88.0, 89.0]))))
big = torch.tensor([100.0, 101.0, 102.0])
print("exp([100, 101, 102]):  ", show(torch.exp(big)))
print("naive softmax:         ", show(naive_softmax(big)))

# %% [markdown]
# Every exponential is `inf`, and `inf / inf` is `nan` ("not a number"). One `nan` in the
# loss spreads to every gradient and then to every weight: one bad batch and the whole
# network is `nan`. Logits of 100 are not exotic: a confident trained network, or one step
# with a learning rate that is too large, produces them.
#
# Very negative logits fail the other way. The smallest positive float32 is about
# $1.4 \times 10^{-45} \approx e^{-103}$; below that `exp` returns exactly 0, and if a
# whole row underflows, the sum is 0 and we divide 0 by 0.

# %%
small = torch.tensor([-1e4, -1e4 + 1, -1e4 + 2])
print("exp([-103, -104]):     ", show(torch.exp(torch.tensor([-103.0, -104.0]))))
print("exp([-1e4, ...]):      ", show(torch.exp(small)))
print("naive softmax:         ", show(naive_softmax(small)))

# %% [markdown]
# ## The fix: shift all the logits by the same amount
#
# Add the same number $c$ to every logit of a row. The factor $e^{c}$ appears once in the
# numerator and once in every term of the denominator, and cancels:
#
# $$\text{softmax}(z + c)_i = \frac{e^{z_i + c}}{\sum_j e^{z_j + c}}
#   = \frac{e^{c}\, e^{z_i}}{e^{c} \sum_j e^{z_j}} = \text{softmax}(z)_i$$
#
# So softmax does not change at all when a constant is added to a row: this is an exact
# identity, not an approximation. (It is the "only differences matter" property again.)
# We are free to pick the constant that suits the computer, and the best one is
# $c = -\max_j z_j$:
#
# * the largest shifted logit is exactly 0 and the others are negative, so every $e^{z_i - \max}$
#   lies in $(0, 1]$: **nothing can overflow**;
# * the denominator contains $e^0 = 1$, so it is at least 1: **no division by 0**;
# * a term that still underflows to 0 was at least $e^{103}$ times smaller than the largest
#   one: its probability really is below $10^{-45}$, so 0 is the right float32 answer.
#
# `[100, 101, 102]` is `[1, 2, 3]` shifted by 99, so it must give the very same probabilities:

# %%
shifted = big - big.max()
print("shifted logits:  ", shifted)
print("exp, all <= 1:   ", torch.exp(shifted))
print("probabilities:   ", torch.exp(shifted) / torch.exp(shifted).sum())
print("softmax([1,2,3]):", naive_softmax(torch.tensor([1.0, 2.0, 3.0])))

# %% [markdown]
# ## Exercise 1: `softmax`
#
# Now for a whole batch `[B, C]`: each **row** is one image and needs its own maximum and
# its own sum. Two things to watch:
#
# * reduce over `dim=1` (the classes) and keep that dimension (`keepdim=True`), so that
#   a `[B, 1]` column broadcasts against `[B, C]`. Without `keepdim`, the `[B]` result is
#   lined up with the last dimension instead: an error when `B != C`, and silently wrong
#   numbers when `B == C`;
# * subtract each row's **own** maximum. One maximum for the whole batch fixes a row of
#   `1e4`s but leaves a row of `-1e4`s in the same batch underflowing to `0 / 0`.
#
# Do not modify `logits` (write `logits - m`, not `logits -= m`: the caller still needs
# its logits), and do not call PyTorch's `softmax`, `log_softmax` or `logsumexp`: that is
# the job you are doing by hand. `torch.exp`, `.sum`, `.max`/`.amax` are all fine.

# %% nbgrader={"grade": false, "grade_id": "softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
def softmax(logits):
    """Softmax over the classes, computed stably.

    Args:
        logits (Tensor): float32 [B, C], B >= 1, C >= 1, any finite values (100, 1e4 and -1e4
            included, in any mix within one row or across rows).

    Returns:
        Tensor: float32 [B, C]; row i is exp(logits[i]) / exp(logits[i]).sum(), every value
        in [0, 1] and every row summing to 1. Never inf or nan for finite logits.

    Does not modify ``logits``. Must not call softmax, log_softmax or logsumexp.
    """
    ### BEGIN SOLUTION
    shifted = logits - logits.max(dim=1, keepdim=True).values
    e = torch.exp(shifted)
    return e / e.sum(dim=1, keepdim=True)
    ### END SOLUTION


# %% [markdown]
# Try it on a small batch whose rows are the ordinary case, the overflow case and the
# underflow case:

# %%
demo_logits = torch.tensor([[1.0, 2.0, 3.0], [100.0, 101.0, 102.0], [-1e4, -1e4 + 1, -1e4 + 2]])
print(softmax(demo_logits))
print("row sums:", softmax(demo_logits).sum(dim=1))

# %% nbgrader={"grade": true, "grade_id": "test_softmax", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Ordinary logits. Tolerance 1e-6: probabilities lie in [0, 1], where float32 rounds to about
# 6e-8, so any correct order of operations stays well within 1e-6 of PyTorch's answer.
# When graded, also: a batch of one, a large batch, many classes, two classes, a single class,
#   a transposed (non-contiguous) input, and a batch with as many images as classes.
z = torch.tensor([[1.0, 2.0, 3.0]])
with tripwire.forbid("softmax", what="softmax"):
    probs = softmax(z.clone())
checks.assert_close(probs, reference.softmax(z), "softmax([[1., 2., 3.]])", atol=1e-6,
                    hint="each probability is exp(logit) divided by the sum of the exps of its row: "
                         "[0.0900, 0.2447, 0.6652]")
z = checks.seeded(0, 4, 10, scale=3.0)
with tripwire.forbid("softmax", what="softmax"):
    probs = softmax(z.clone())
checks.assert_shape(probs, (4, 10), "softmax(logits [4, 10])", hint="one probability per logit: the input's shape")
# Each row (one image) must sum to 1; tolerance 1e-5 for a sum of 10 rounded values.
checks.assert_close(probs.sum(dim=1), torch.ones(4), "softmax(logits [4, 10]).sum(dim=1)", atol=1e-5,
                    hint="normalise each row: sum over dim=1 with keepdim=True, not over the batch (dim=0) "
                         "or the whole tensor")
checks.assert_close(probs, reference.softmax(z), "softmax(logits [4, 10])", atol=1e-6,
                    hint="exp of each logit divided by its row's sum of exps")
### BEGIN HIDDEN TESTS
# Several seeded cases: a batch of one, a big batch, many classes, two classes, one class,
# and a non-contiguous (transposed) input. Same tolerance, 1e-6, for the same reason.
cases = [checks.seeded(1, 1, 10), checks.seeded(2, 64, 10, scale=2.0), checks.seeded(3, 3, 1000),
         checks.seeded(4, 5, 2, scale=5.0), checks.seeded(5, 2, 1), checks.seeded(6, 10, 7, scale=3.0).t(),
         checks.seeded(36, 10, 10, scale=3.0)]                          # B == C: a missing keepdim broadcasts silently
for z in cases:
    with tripwire.forbid("softmax", what="softmax"):
        probs = softmax(z.clone())
    checks.assert_close(probs, reference.softmax(z), f"softmax(logits {list(z.shape)})", atol=1e-6,
                        hint="softmax over dim=1 (the classes) of every row, for any B >= 1 and C >= 1")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_softmax_stable", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Logits of any size. The exact probabilities are still numbers in [0, 1], so the tolerance
# stays 1e-6; a nan or inf fails at once, with the index where it appeared.
# When graded, also: huge logits in batches whose rows differ wildly in size, rows of all-equal
#   huge positive or negative values, a batch of one, and many classes.
stable_hint = ("subtract each row's own maximum before exp (max over dim=1, keepdim=True): exp(100) is "
               "already inf in float32, and a row of -1e4 underflows to 0, so 0 / 0 = nan")
for z in [torch.tensor([[100.0, 101.0, 102.0]]), torch.tensor([[1e4, 0.0, -1e4]]),
          torch.tensor([[-1e4, -1e4 + 1, -1e4 + 2]])]:
    with tripwire.forbid("softmax", what="softmax"):
        probs = softmax(z.clone())
    checks.assert_close(probs, reference.softmax(z), f"softmax({z.tolist()})", atol=1e-6, hint=stable_hint)
### BEGIN HIDDEN TESTS
hidden_cases = [
    torch.tensor([[1e4, 0.0, -5.0], [-1e4, -1e4 + 3, -1e4 + 1]]),   # rows of very different sizes
    torch.tensor([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]]),
    torch.full((1, 10), 1e4), torch.full((1, 2), -1e4),              # batch of one, all equal
    checks.seeded(7, 32, 10, scale=1e4), checks.seeded(8, 4, 1000, scale=1e3),
    checks.seeded(9, 16, 10, scale=1.0) + torch.linspace(-1e4, 1e4, 16)[:, None],
]
for z in hidden_cases:
    with tripwire.forbid("softmax", what="softmax"):
        probs = softmax(z.clone())
    checks.assert_close(probs, reference.softmax(z), f"softmax(logits {list(z.shape)} up to {z.abs().max():g})",
                        atol=1e-6, hint=stable_hint + "; each row needs its own maximum")
### END HIDDEN TESTS

# %% [markdown]
# ## The log of a probability, computed directly
#
# The loss needs the *logarithm* of a probability. Taking `log(softmax(z))` looks harmless
# and works most of the time, but the stable softmax still rounds probabilities below
# $10^{-45}$ to 0, and then the log is $\log 0 = -\infty$. Take the row `[0, -200]`: the
# second class has probability $e^{-200} \approx 10^{-87}$, far too small for float32, yet
# its log-probability is an ordinary number, about $-200$.

# %%
row = torch.tensor([0.0, -200.0])
p = naive_softmax(row - row.max())            # the shift cannot help: the value itself is too small
print("softmax:            ", p)
print("log(softmax):       ", torch.log(p))
print("PyTorch log_softmax:", torch.log_softmax(row, dim=0))

# %% [markdown]
# The cure is to never form the tiny probability. Take the log of the softmax formula
# *on paper* first:
#
# $$\log \text{softmax}(z)_i = z_i - \log \sum_j e^{z_j}
#   = (z_i - m) - \log \sum_j e^{z_j - m}, \qquad m = \max_j z_j$$
#
# (the second form is the shift of the previous section, applied inside the log). Now
# nothing is ever rounded to 0 before the log:
#
# * $z_i - m$ is an ordinary subtraction; $-200$ stays $-200$;
# * the sum contains $e^0 = 1$ and $C$ terms of at most 1, so it lies between 1 and $C$,
#   and its log between 0 and $\log C$: no overflow, no $\log 0$.
#
# This is the *log-sum-exp* trick. Another benefit: the loss will need only the log, so we
# never have to come back from the log-probabilities to the probabilities at all.
#
# ## Exercise 2: `log_softmax`
#
# Write it with the formula above, per row (`dim=1`, `keepdim=True`), without modifying
# `logits` and without PyTorch's `log_softmax`, `softmax` or `logsumexp`. Do **not**
# compute `log(softmax(...))`: the tests include the row `[0, -200]`.

# %% nbgrader={"grade": false, "grade_id": "log_softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
def log_softmax(logits):
    """Logarithm of the softmax over the classes, computed stably.

    Args:
        logits (Tensor): float32 [B, C], B >= 1, C >= 1, any finite values.

    Returns:
        Tensor: float32 [B, C]; entry (i, k) is log(softmax(logits)[i, k]), every value <= 0 and
        exp of each row summing to 1. Finite for finite logits, even where the probability
        itself is too small for float32 (for the row [0, -200] the answer is [0, -200]).

    Does not modify ``logits``. Must not call softmax, log_softmax or logsumexp.
    """
    ### BEGIN SOLUTION
    shifted = logits - logits.max(dim=1, keepdim=True).values
    return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
    ### END SOLUTION


# %%
print(log_softmax(torch.tensor([[0.0, -200.0], [1e4, -1e4]])))

# %% nbgrader={"grade": true, "grade_id": "test_log_softmax", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Ordinary logits. Tolerance: 1e-6 times the size of the logits (at least 1e-6). A float32 number
# keeps about 7 significant digits, so a log-probability computed from logits as large as M can
# only be trusted to about M * 1e-7; we allow ten times that.
# When graded, also: a batch of one, a large batch, many classes, two classes, a single class,
#   a transposed (non-contiguous) input, and a batch with as many images as classes.
def tolerance(z):
    return 1e-6 * max(1.0, z.abs().max().item())


z = torch.tensor([[1.0, 2.0, 3.0]])
with tripwire.forbid("log_softmax", what="log_softmax"):
    logp = log_softmax(z.clone())
checks.assert_close(logp, reference.log_softmax(z), "log_softmax([[1., 2., 3.]])", atol=tolerance(z),
                    hint="log p_i = z_i - log(sum_j exp(z_j)): [-2.4076, -1.4076, -0.4076]")
z = checks.seeded(10, 4, 10, scale=3.0)
with tripwire.forbid("log_softmax", what="log_softmax"):
    logp = log_softmax(z.clone())
checks.assert_shape(logp, (4, 10), "log_softmax(logits [4, 10])", hint="one log-probability per logit")
checks.assert_close(logp.exp().sum(dim=1), torch.ones(4), "log_softmax(logits [4, 10]).exp().sum(dim=1)",
                    atol=1e-5, hint="subtract the log of the sum over dim=1 (keepdim=True), per row")
checks.assert_close(logp, reference.log_softmax(z), "log_softmax(logits [4, 10])", atol=tolerance(z),
                    hint="log p_i = (z_i - max) - log(sum_j exp(z_j - max)), per row")
### BEGIN HIDDEN TESTS
cases = [checks.seeded(11, 1, 10), checks.seeded(12, 64, 10, scale=2.0), checks.seeded(13, 3, 1000),
         checks.seeded(14, 5, 2, scale=5.0), checks.seeded(15, 2, 1), checks.seeded(16, 10, 7, scale=3.0).t(),
         checks.seeded(37, 10, 10, scale=3.0)]                          # B == C: a missing keepdim broadcasts silently
for z in cases:
    with tripwire.forbid("log_softmax", what="log_softmax"):
        logp = log_softmax(z.clone())
    checks.assert_close(logp, reference.log_softmax(z), f"log_softmax(logits {list(z.shape)})",
                        atol=tolerance(z), hint="log_softmax over dim=1 of every row, for any B >= 1 and C >= 1")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_log_softmax_stable", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Logits of any size. Tolerance 1e-6 times the size of the logits, as above: for logits of 1e4
# that is 0.01, while float32 itself spaces numbers near 1e4 about 0.001 apart. Any -inf or nan
# fails whatever the tolerance.
# When graded, also: large and nearly tied huge logits, a row of all-equal hugely negative values,
#   classes far too unlikely for float32, rows differing wildly in size, and many classes.
def tolerance(z):
    return 1e-6 * max(1.0, z.abs().max().item())


log_hint = ("compute (z - max) - log(sum(exp(z - max))) per row; log(softmax(z)) gives log(0) = -inf once "
            "a probability is below float32's 1e-45, and exp(1e4) overflows without the shift")
for z in [torch.tensor([[0.0, -200.0]]), torch.tensor([[1e4, 0.0, -1e4]]), torch.tensor([[-1e4, -1e4, -1e4 + 1]])]:
    with tripwire.forbid("log_softmax", what="log_softmax"):
        logp = log_softmax(z.clone())
    checks.assert_close(logp, reference.log_softmax(z), f"log_softmax({z.tolist()})", atol=tolerance(z),
                        hint=log_hint)
### BEGIN HIDDEN TESTS
hidden_cases = [
    torch.tensor([[100.0, 101.0, 102.0]]), torch.tensor([[1e4, 1e4 - 0.5, -1e4]]),
    torch.tensor([[1e4, 0.0, -5.0], [-1e4, -1e4 + 3, -1e4 + 1]]),   # rows of very different sizes
    torch.full((1, 10), -1e4), torch.tensor([[0.0, -90.0, -200.0, -1000.0]]),
    checks.seeded(17, 32, 10, scale=1e4), checks.seeded(18, 4, 1000, scale=1e3),
    checks.seeded(19, 16, 10) + torch.linspace(-1e4, 1e4, 16)[:, None],
]
for z in hidden_cases:
    with tripwire.forbid("log_softmax", what="log_softmax"):
        logp = log_softmax(z.clone())
    checks.assert_close(logp, reference.log_softmax(z),
                        f"log_softmax(logits {list(z.shape)} up to {z.abs().max():g})", atol=tolerance(z),
                        hint=log_hint + "; each row needs its own maximum")
### END HIDDEN TESTS

# %% [markdown]
# **Written question (2 points, graded by hand).** Make up your own row of float32 logits (not
# `[0, -200]`) and a target class for which the cross-entropy computed as
# `-log(softmax(z)[target])` goes wrong, while `-log_softmax(z)[target]` does not. Give the
# numbers: what each way returns, and why (which value is rounded, and to what). Then explain
# for which kind of prediction of a network this happens (is it rare, or exactly the case
# training must learn from?) and what one such sample in a batch would do to the batch's mean
# loss and to the gradients of the training step.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_log_softmax", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# *Rubric:* 2 points: a correct example with numbers (e.g. `z = [0, 120]`, target 0: the
# probability `e^-120 ≈ 8e-53` is below float32's smallest positive value, about `1.4e-45`, so
# softmax rounds it to 0 and `-log 0 = inf`, while `log_softmax` gives `-120` and the loss 120);
# **and** says that this happens when the network is confidently wrong (the target's logit far
# below the largest one), which is exactly the sample whose gradient matters, and that one `inf`
# makes the batch's mean loss `inf` and the gradients `inf`/`NaN`, which the update writes into
# every weight. 1 point: a correct example with its numbers but no (or a wrong) account of the
# consequences, or the consequences right with an example that does not fail in float32. 0: no
# example, or an example that does not fail.
#
# *Model answer:* Take `z = [0.0, 120.0]` with target class 0. The stable softmax shifts by the
# maximum: `softmax(z)[0] = e^(0-120) / (e^(0-120) + e^0) = e^-120 ≈ 7.7e-53`. float32 cannot hold a
# positive number below about `1.4e-45`, so the probability is rounded to exactly 0, and
# `-log(0) = inf`. `log_softmax` never forms that probability: `(0 - 120) - log(e^-120 + 1) = -120`,
# so the loss is 120, a large but honest number. This happens when the network puts a large logit
# on a wrong class and a much smaller one on the right class: a confident mistake. Those are not
# rare curiosities; they are the samples with the most to teach, and early training or a too large
# learning rate can push logits into the hundreds. One such sample makes the batch mean `inf`; its
# gradient through `log` is `1/p = 1/0`, so the backward pass produces `inf` and `inf - inf = NaN`,
# and the optimizer step writes `NaN` into the weights: the network is ruined for good by a single
# batch. With `log_softmax` the same sample simply gives a large loss and a bounded gradient,
# `softmax - one_hot`.
# ### END SOLUTION

# %% [markdown]
# ## Why the *negative log* of the correct class
#
# Softmax gives each image a probability for each digit. The image's loss looks at one
# of them only, $p$, the probability given to the **correct** class, and is $-\log p$:
#
# | $p$ | 1 | 0.9 | 0.5 | 0.1 | 0.01 | $10^{-6}$ |
# |---|---|---|---|---|---|---|
# | $-\log p$ | 0 | 0.105 | 0.693 | 2.303 | 4.605 | 13.8 |
#
# * It is **0 when $p = 1$**: sure and right, nothing to improve.
# * It **grows without bound as $p \to 0$**: sure and wrong is punished hard. Every halving
#   of $p$ adds the same $\ln 2 \approx 0.69$, so a probability of $10^{-6}$ for the right
#   answer costs 130 times as much as a probability of 0.9.
# * It is the **log-likelihood**. If the images are independent, the probability the network
#   gives to the whole set of correct labels is the product $p_1 p_2 \cdots p_N$. The log
#   turns that product into a sum, $\sum_n \log p_n$ (a product of 60,000 numbers below 1
#   would underflow to 0 anyway), and since the log is increasing, making the sum as large as
#   possible is the same as making the product as large as possible. We prefer to *minimise*,
#   so we flip the sign, and we take the mean rather than the sum so that the loss does not
#   grow with the batch size. Hence the other name of this loss: *negative log-likelihood*.

# %%
fig = demo.plot_neg_log()
plt.show()

# %% [markdown]
# The loss depends **only on the probability of the correct class**. The other nine
# probabilities matter only through it: because all ten share one denominator, raising a
# wrong class's logit takes probability away from the correct one. Two outputs that give
# the correct class the same probability have the same loss, however they spread the rest.

# %%
target = 3
spread = [0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]        # the rest shared evenly
lumped = [-30.0, -30.0, -30.0, 2.0, -30.0, -30.0, -30.0, -30.0, math.log(9), -30.0]  # the rest on class 8
fig, axes = plt.subplots(1, 2, figsize=(9, 2.6), sharey=True)
for ax, row, name in zip(axes, [spread, lumped], ["rest shared evenly", "rest on class 8"]):
    probs, loss = demo.loss_view(row, target)
    demo.plot_probs(row, target, ax=ax, title=f"{name}: p[3] = {probs[target]:.3f}, loss = {loss:.3f}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Play with it
#
# Drag the logits (bottom), pick the correct class, or start from a preset. Watch the teal
# bar: the loss is $-\log$ of its height and nothing else. Some things to try:
#
# * all logits equal: every class gets 1/10 and the loss is $\ln 10 \approx 2.303$;
# * raise the correct logit: the loss falls towards 0, but never reaches it;
# * make a wrong class confident: the loss climbs past 8;
# * add the same amount to every logit: nothing changes.

# %%
demo.logits_widget(target=3)

# %% [markdown]
# ## Exercise 3: `cross_entropy`
#
# Put it together: for each image $i$ of the batch, take the log-probability of its
# correct class `targets[i]`, negate it, and average over the batch:
#
# $$\text{loss} = -\frac{1}{B} \sum_{i=1}^{B} \log \text{softmax}(z_i)_{\,\text{targets}[i]}$$
#
# Picking one entry per row is the only new move. For row `i` you need column `targets[i]`;
# indexing a `[B, C]` tensor with two integer tensors of length `B` (rows `0, 1, ..., B-1`
# and columns `targets`) picks exactly those `B` entries. `gather`, or multiplying by a
# one-hot mask and summing, do the same.
#
# This is exactly what PyTorch's `F.cross_entropy` does: a `log_softmax`, then `F.nll_loss`,
# which picks the correct entry of each row, negates it and takes the mean.
#
# Return a 0-d tensor (what `.mean()` gives), not a Python float: lesson 04 will
# differentiate this loss, so it must be built from torch operations all the way from the
# logits. Do not modify the inputs, and do not call `F.cross_entropy`, `F.nll_loss` or the
# softmax family from PyTorch; your own `log_softmax` is welcome.

# %% nbgrader={"grade": false, "grade_id": "cross_entropy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cross_entropy(logits, targets):
    """Mean cross-entropy loss of a batch, computed stably.

    Args:
        logits (Tensor): float32 [B, C], B >= 1, C >= 1, any finite values.
        targets (Tensor): int64 [B], the correct class of each row, each in [0, C).

    Returns:
        Tensor: a 0-d float32 tensor, the mean over the batch of -log(softmax(logits)[i, targets[i]]).
        Finite for finite logits (1e4 and -1e4 included). Built from torch operations on ``logits``,
        so that autograd can differentiate it (no ``.item()``, no tensor rebuilt from Python numbers).

    Does not modify ``logits`` or ``targets``. Must not call cross_entropy, nll_loss, softmax,
    log_softmax or logsumexp from PyTorch (your own ``log_softmax`` is fine).
    """
    ### BEGIN SOLUTION
    log_probs = log_softmax(logits)
    picked = log_probs[torch.arange(logits.shape[0]), targets]
    return -picked.mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_cross_entropy", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Ordinary logits, compared with F.cross_entropy. Tolerance: 1e-6 times the size of the logits
# (at least 1e-6), as for log_softmax: a loss near 2.3 is itself stored to about 2.4e-7 in float32.
# When graded, also: a batch of one, a large batch, many, two or one class, a transposed input, as
#   many images as classes, all targets equal, and .backward() on your loss must match PyTorch.
def tolerance(z):
    return 1e-6 * max(1.0, z.abs().max().item())


visible_cases = [
    (torch.zeros(5, 10), torch.tensor([0, 3, 9, 3, 1]), "zeros [5, 10]",
     "equal logits give every class 1/10, so the loss is -log(1/10) = 2.3026"),
    (checks.seeded(20, 8, 10, scale=2.0), torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(20)),
     "logits [8, 10]", "for each row i take log_softmax(logits)[i, targets[i]] (one entry per row), negate, "
                       "and average over the batch"),
]
for z, t, label, hint in visible_cases:
    with tripwire.forbid("cross_entropy", what="cross_entropy"):
        loss = cross_entropy(z.clone(), t.clone())
    name = f"cross_entropy({label}, targets)"
    expected = reference.cross_entropy(z, t)
    checks.assert_shape(loss, (), name, hint="return the mean over the batch as a 0-d tensor: .mean(), not .item() "
                                             "and not a [B] tensor")
    value, want, batch = loss.item(), expected.item(), z.shape[0]
    if math.isfinite(value):                 # name two classic slips before the general comparison
        assert abs(value + want) > 1e-3, f"{name} = {value:.5f}, minus the right value: forgot the minus sign?"
        assert abs(value - batch * want) > 1e-3, (
            f"{name} = {value:.5f}, {batch} times the right value: summed over the batch instead of taking the mean?")
    checks.assert_close(loss, expected, name, atol=tolerance(z), hint=hint)
### BEGIN HIDDEN TESTS
# Several seeded cases: a batch of one, a big batch, many classes, two classes, one class, a
# batch where every target is the same class, a non-contiguous input.
gen = torch.Generator().manual_seed(21)
cases = [(checks.seeded(22, 1, 10), 10), (checks.seeded(23, 64, 10, scale=2.0), 10),
         (checks.seeded(24, 3, 1000), 1000), (checks.seeded(25, 7, 2, scale=4.0), 2), (checks.seeded(26, 4, 1), 1),
         (checks.seeded(27, 10, 6, scale=3.0).t(), 10), (checks.seeded(38, 10, 10, scale=3.0), 10)]
for z, classes in cases:
    t = torch.randint(0, classes, (z.shape[0],), generator=gen)
    with tripwire.forbid("cross_entropy", what="cross_entropy"):
        loss = cross_entropy(z.clone(), t.clone())
    checks.assert_close(loss, reference.cross_entropy(z, t), f"cross_entropy(logits {list(z.shape)}, targets)",
                        atol=tolerance(z), hint="mean over the batch of -log_softmax(logits)[i, targets[i]]")
z, t = checks.seeded(28, 12, 10), torch.full((12,), 7)
with tripwire.forbid("cross_entropy", what="cross_entropy"):
    loss = cross_entropy(z.clone(), t.clone())
checks.assert_close(loss, reference.cross_entropy(z, t), "cross_entropy(logits [12, 10], targets all 7)",
                    atol=tolerance(z), hint="pick column targets[i] in row i, for every row")
# The loss must be differentiable: its gradient with respect to the logits is that of F.cross_entropy.
# Tolerance 1e-6: the gradient's entries are (softmax - one_hot) / B, all below 1 in size.
base = checks.seeded(29, 6, 10, scale=2.0)
t = torch.randint(0, 10, (6,), generator=gen)
leaf = base.clone().requires_grad_(True)
with tripwire.forbid("cross_entropy", what="cross_entropy"):
    loss = cross_entropy(leaf.clone(), t.clone())
assert isinstance(loss, torch.Tensor) and loss.requires_grad, (
    "cross_entropy(logits, targets) is not connected to the logits, so it cannot be trained: build it from "
    "torch operations (no .item(), no torch.tensor(...) of Python numbers, no .detach() of the result)")
loss.backward()
checks.assert_close(leaf.grad, reference.cross_entropy_grad(base, t), "gradient of cross_entropy w.r.t. logits",
                    atol=1e-6, hint="build the loss from torch operations on the logits, all the way through")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_cross_entropy_stable", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Logits of any size. Tolerance 1e-6 times the size of the logits: for logits of 1e4 that is 0.01,
# while a loss of 2e4 is itself stored in float32 only to about 0.002. A nan or inf fails at once.
# When graded, also: a correct class far too unlikely for float32, a row of equal hugely negative
#   logits, batches whose rows differ wildly in size, huge random logits, and many classes.
def tolerance(z):
    return 1e-6 * max(1.0, z.abs().max().item())


ce_hint = ("use the stable log_softmax (shift by each row's max, then subtract the log of the sum of exps); "
           "log(softmax) gives log(0) = -inf when the correct class's probability underflows")
for z, t in [(torch.tensor([[1e4, 0.0, -1e4]]), torch.tensor([0])),     # sure and right: loss 0
             (torch.tensor([[1e4, 0.0, -1e4]]), torch.tensor([2])),     # sure and wrong: loss 2e4
             (torch.tensor([[100.0, 101.0, 102.0], [-1e4, -1e4 + 1, -1e4]]), torch.tensor([0, 1]))]:
    with tripwire.forbid("cross_entropy", what="cross_entropy"):
        loss = cross_entropy(z.clone(), t.clone())
    checks.assert_close(loss, reference.cross_entropy(z, t), f"cross_entropy({z.tolist()}, {t.tolist()})",
                        atol=tolerance(z), hint=ce_hint)
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(31)
hidden_cases = [
    (torch.tensor([[0.0, -200.0]]), torch.tensor([1])), (torch.full((1, 10), -1e4), torch.tensor([4])),
    (torch.tensor([[1e4, 0.0, -5.0], [-1e4, -1e4 + 3, -1e4 + 1]]), torch.tensor([2, 0])),
    (checks.seeded(32, 32, 10, scale=1e4), None), (checks.seeded(33, 4, 1000, scale=1e3), None),
    (checks.seeded(34, 16, 10) + torch.linspace(-1e4, 1e4, 16)[:, None], None),
]
for z, t in hidden_cases:
    if t is None:
        t = torch.randint(0, z.shape[1], (z.shape[0],), generator=gen)
    with tripwire.forbid("cross_entropy", what="cross_entropy"):
        loss = cross_entropy(z.clone(), t.clone())
    checks.assert_close(loss, reference.cross_entropy(z, t),
                        f"cross_entropy(logits {list(z.shape)} up to {z.abs().max():g}, targets)",
                        atol=tolerance(z), hint=ce_hint + "; each row needs its own maximum")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_inputs_unchanged", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# None of the three functions may change the tensors it is given: the caller still needs its logits
# (to pick a prediction, to log them, to differentiate through them). Each call must also give the
# right answer (tolerances as above: 1e-6, or 1e-6 times the size of the logits).
# When graded, also: the same no-change check of logits and targets for all three functions, on a
#   batch of one, a larger batch and many classes.
z = checks.seeded(40, 6, 10, scale=3.0)
t = torch.randint(0, 10, (6,), generator=torch.Generator().manual_seed(40))
for name, fn, expected in [("softmax", softmax, reference.softmax(z)),
                           ("log_softmax", log_softmax, reference.log_softmax(z))]:
    x = z.clone()
    out = fn(x)
    checks.assert_unchanged(z, x, f"logits after {name}(logits)", hint="write logits - m, not logits -= m "
                            "(or logits.sub_(m)); an in-place operation changes the caller's tensor")
    checks.assert_close(out, expected, f"{name}(logits [6, 10])", atol=1e-6 * max(1.0, z.abs().max().item()))
x, targets_in = z.clone(), t.clone()
out = cross_entropy(x, targets_in)
checks.assert_unchanged(z, x, "logits after cross_entropy(logits, targets)",
                        hint="write logits - m, not logits -= m; work on new tensors")
checks.assert_unchanged(t, targets_in, "targets after cross_entropy(logits, targets)",
                        hint="do not reshape or overwrite targets in place (unsqueeze_, squeeze_, ...)")
checks.assert_close(out, reference.cross_entropy(z, t), "cross_entropy(logits [6, 10], targets)",
                    atol=1e-6 * max(1.0, z.abs().max().item()))
### BEGIN HIDDEN TESTS
for seed, shape in [(41, (1, 10)), (42, (16, 10)), (43, (3, 1000))]:
    z = checks.seeded(seed, *shape, scale=2.0)
    t = torch.randint(0, shape[1], (shape[0],), generator=torch.Generator().manual_seed(seed))
    for name, call in [("softmax", lambda x, y: softmax(x)), ("log_softmax", lambda x, y: log_softmax(x)),
                       ("cross_entropy", cross_entropy)]:
        x, y = z.clone(), t.clone()
        call(x, y)
        checks.assert_unchanged(z, x, f"logits {list(shape)} after {name}",
                                hint="never modify the logits in place; write logits - m, not logits -= m")
        checks.assert_unchanged(t, y, f"targets after {name}")
### END HIDDEN TESTS

# %% [markdown]
# ## A network that knows nothing scores ln 10
#
# Before any training, the network has no idea which digit it sees. If it spread its
# belief evenly, every class would get $1/10$ and every image would cost
# $-\log(1/10) = \ln 10 \approx 2.303$. That is the number to expect from the first batch of
# a training run, and a useful alarm: a first loss of 15 or 50 means the network is already
# confidently wrong before it has learnt anything, usually because the weights started too
# large.
#
# Check it on all 10,000 test images with a freshly initialised network:

# %%
with torch.no_grad():
    test_logits = reference.forward(X_test, *params)
loss = cross_entropy(test_logits, y_test)
print(f"random network, 10,000 test images: loss {loss.item():.4f}")
print(f"ln 10                             :      {math.log(10):.4f}")
print(f"PyTorch's F.cross_entropy         :      {F.cross_entropy(test_logits, y_test).item():.4f}")
print(f"all-zero logits                   :      {cross_entropy(torch.zeros_like(test_logits), y_test).item():.4f}")

# %% [markdown]
# The random network lands a little above $\ln 10$: its logits are not all equal (their
# spread is about 0.5), so for some images the correct class gets less than a tenth, and
# $-\log$ punishes those more than it rewards the images where it gets more. The histogram
# shows how the probability given to the correct digit scatters around 0.1.

# %%
p_correct = softmax(test_logits)[torch.arange(len(y_test)), y_test]
fig, ax = plt.subplots(figsize=(6.5, 3))
ax.hist(p_correct.numpy(), bins=60, color=demo.TEAL)
ax.axvline(0.1, color="#333", linestyle="--", label="1/10")
ax.set_xlabel("probability of the correct digit (random network)")
ax.set_ylabel("images")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Training will push that whole histogram towards 1, and the loss towards 0.
#
# ## Check yourself
#
# No points, just immediate feedback.

# %%
quiz([
    Question("Why subtract each row's maximum before taking exp in softmax?",
             ["It changes the probabilities a little, a price worth paying to avoid overflow",
              "It leaves every probability exactly the same, and keeps every exp in (0, 1] so nothing overflows "
              "and the denominator is at least 1",
              "It makes all the logits positive"],
             answer=1,
             explanation="Adding a constant c to every logit multiplies numerator and denominator by e^c, which "
                         "cancels. With c = -max the largest exp is exp(0) = 1 and the others are smaller."),
    Question("Four classes, logits [2, 2, 2, 2]. What is the loss, whatever the correct class?",
             ["0", "0.25", "ln 4 ≈ 1.386", "2"],
             answer=2,
             explanation="Equal logits give each class 1/4, and -log(1/4) = ln 4. The size of the logits does "
                         "not matter, only their differences."),
    Question("Why compute log_softmax directly instead of log(softmax(z))?",
             ["It is faster, but gives the same numbers",
              "A probability below float32's smallest number rounds to 0 and log(0) = -inf, although the true "
              "log-probability (for example -200) is an ordinary number",
              "softmax cannot handle negative logits"],
             answer=1,
             explanation="(z - max) - log(sum(exp(z - max))) never forms the tiny probability; the sum lies "
                         "between 1 and C, so its log is safe."),
    Question("The network gives the correct class probability 0.001. Roughly what does that image add to "
             "the loss, compared with 0.69 for a probability of 0.5?",
             ["6.9: ten times more", "0.001", "0.999"],
             answer=0,
             explanation="-log(0.001) = 6.9. The negative log punishes confident mistakes hard: each halving "
                         "of p adds another 0.69."),
    Question("An untrained network's first loss on MNIST is 40. What is the most likely cause?",
             ["Nothing: an untrained network always has a large loss",
              "The weights start too large, so the logits are huge and the network is confidently wrong",
              "The loss is averaged instead of summed"],
             answer=1,
             explanation="An untrained network should be unsure about everything, which costs about ln 10 = 2.3 "
                         "per image. A loss far above that means confident wrong answers from the start."),
])
