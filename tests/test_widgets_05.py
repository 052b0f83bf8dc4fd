"""Lesson 05's widget module: the valley race, the training problems and the side-by-side run against torch.optim."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from grader import tripwire  # noqa: E402
from grader.widgets import optimizers as demo  # noqa: E402


# --- the valley and the race ------------------------------------------------------------------

def test_valley_is_the_stated_function_on_numbers_arrays_and_tensors():
    assert demo.valley(0.0, 0.0) == 0.0
    assert demo.valley(5.0, 0.0) == pytest.approx(0.5)         # 0.5 * 25 / 25
    assert demo.valley(0.0, 1.0) == pytest.approx(2.0)         # 0.5 * 4
    grid = demo.valley(np.array([5.0, 0.0]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(grid, [0.5, 2.0])
    t = demo.valley(torch.tensor(5.0), torch.tensor(1.0))
    assert isinstance(t, torch.Tensor) and float(t) == pytest.approx(2.5)


def test_race_returns_one_path_per_optimizer_starting_at_start():
    paths = demo.race(lr=0.3, mu=0.8, steps=25, start=(-7.0, 1.5), adam_lr=0.2)
    assert list(paths) == ["SGD", "momentum", "Adam"]
    for name, pts in paths.items():
        assert pts.shape == (26, 2), name
        assert pts.dtype == np.float64
        np.testing.assert_array_equal(pts[0], [-7.0, 1.5])
        assert np.isfinite(pts).all(), name


def test_race_first_sgd_step_is_lr_times_the_gradient():
    lr, (x, y) = 0.3, (-7.0, 1.5)
    paths = demo.race(lr=lr, steps=3, start=(x, y))
    gradient = np.array([x / 25, 4 * y])                       # the valley's gradient, by hand
    np.testing.assert_allclose(paths["SGD"][1], np.array([x, y]) - lr * gradient, rtol=0, atol=1e-12)
    # momentum's first step is SGD's (the velocity starts at zero)
    np.testing.assert_allclose(paths["momentum"][1], paths["SGD"][1], rtol=0, atol=1e-12)


def test_momentum_with_mu_zero_is_sgd():
    paths = demo.race(lr=0.2, mu=0.0, steps=40)
    np.testing.assert_allclose(paths["momentum"], paths["SGD"], rtol=0, atol=1e-12)


def test_adam_first_step_moves_each_coordinate_by_its_lr():
    paths = demo.race(adam_lr=0.25, steps=2, start=(-9.0, 2.0))
    step = paths["Adam"][1] - paths["Adam"][0]
    # bias-corrected first step: lr * g / (|g| + eps), i.e. lr towards the minimum in each coordinate
    np.testing.assert_allclose(step, [0.25, -0.25], rtol=1e-6)


def test_default_race_tells_the_lesson_story():
    losses = demo.race_losses(demo.race())
    start = losses["SGD"][0]
    for name, loss in losses.items():
        assert loss[-1] < start / 10, f"{name} should make progress on the default race"
    assert losses["momentum"][-1] < losses["SGD"][-1] / 10, "momentum should clearly beat SGD at the defaults"


def test_sgd_diverges_above_two_over_curvature_while_momentum_survives():
    paths = demo.race(lr=0.55, mu=0.9, steps=100)
    losses = demo.race_losses(paths)
    assert not np.isfinite(losses["SGD"][-1]) or losses["SGD"][-1] > losses["SGD"][0]
    assert losses["momentum"][-1] < losses["momentum"][0] / 100


def test_a_diverging_path_is_cut_with_nan():
    paths = demo.race(lr=0.9, steps=300)
    sgd = paths["SGD"]
    assert np.isnan(sgd[-1]).all()
    finite = np.isfinite(sgd).all(axis=1)
    first_cut = int(np.argmin(finite))
    assert first_cut > 0 and not finite[first_cut:].any(), "once cut, a path stays NaN"
    assert np.abs(sgd[first_cut - 1]).max() <= demo.DIVERGED


@pytest.mark.parametrize("kwargs, word", [
    (dict(lr=0), "lr"), (dict(lr=-0.1), "lr"), (dict(lr=float("nan")), "lr"), (dict(adam_lr=0), "adam_lr"),
    (dict(mu=1.0), "mu"), (dict(mu=-0.1), "mu"), (dict(steps=0), "steps"), (dict(steps=2.5), "steps"),
    (dict(steps=True), "steps"), (dict(start=(1.0,)), "start"), (dict(start="ab"), "start"),
    (dict(start=(0.0, float("inf"))), "start"),
])
def test_race_rejects_bad_input_with_a_clear_message(kwargs, word):
    with pytest.raises(ValueError, match=word):
        demo.race(**kwargs)


def test_race_losses_are_the_valley_at_each_point():
    paths = demo.race(steps=10)
    losses = demo.race_losses(paths)
    for name in paths:
        np.testing.assert_allclose(losses[name], [demo.valley(x, y) for x, y in paths[name]])


def test_pictures_draw():
    paths = demo.race(steps=20)
    for fig in (demo.plot_race(paths), demo.plot_race_losses(paths), demo.plot_bias_correction(steps=50)):
        assert fig.axes and all(ax.has_data() for ax in fig.axes)
        plt.close(fig)
    fig = demo.plot_race({k: paths[k] for k in ("SGD", "momentum")})
    assert len(fig.axes[0].get_legend().get_texts()) == 2
    plt.close(fig)


def test_race_png_and_the_widget_redraws_when_a_slider_moves():
    png = demo.race_png(steps=10)
    assert png.startswith(b"\x89PNG")
    box = demo.race_widget(steps=10)
    image = box.children[-1]
    first = image.value
    assert bytes(first).startswith(b"\x89PNG")
    lr_slider = box.children[0].children[0]
    lr_slider.value = 0.2
    assert image.value != first, "moving the lr slider should redraw the picture"
    steps_slider = box.children[1].children[1]
    before = image.value
    steps_slider.value = 30
    assert image.value != before


# --- the training problems --------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["quadratic", "mlp"])
def test_problem_is_seeded_and_its_gradients_follow_the_parameters(kind):
    params_a, grad_a = demo.problem(kind, seed=4)
    params_b, grad_b = demo.problem(kind, seed=4)
    params_c, _ = demo.problem(kind, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(params_a, params_b))
    assert not all(torch.equal(p, q) for p, q in zip(params_a, params_c))
    g1 = grad_a(1, params_a)
    assert all(torch.equal(x, y) for x, y in zip(g1, grad_b(1, params_b))), "same step, same params: same grads"
    assert [g.shape for g in g1] == [p.shape for p in params_a]
    assert all(g.dtype == p.dtype for g, p in zip(g1, params_a))
    assert not all(torch.equal(x, y) for x, y in zip(g1, grad_a(2, params_a))), "grads should change per step"
    moved = [p + 0.5 for p in params_a]
    assert not all(torch.equal(x, y) for x, y in zip(g1, grad_a(1, moved))), "grads should depend on the params"
    assert all(not p.requires_grad and p.grad is None for p in params_a), "grad_fn must not touch its inputs"


def test_quadratic_gradient_is_the_stated_one_without_noise():
    params, grad_fn = demo.problem("quadratic", seed=2, shapes=((3,),), noise=0.0, scale=2.0)
    # a second evaluation at a shifted point: the gradient of a quadratic changes by scale * c * shift
    g0 = grad_fn(1, params)[0]
    g1 = grad_fn(1, [params[0] + 1.0])[0]
    c = (g1 - g0) / 2.0
    assert torch.all((c > 0.1 - 1e-5) & (c < 2.0 + 1e-5)), "curvatures should lie between 0.1 and 2"


def test_problem_rejects_unknown_kind_and_bad_scale():
    with pytest.raises(ValueError, match="kind"):
        demo.problem("cubic")
    with pytest.raises(ValueError, match="scale"):
        demo.problem("quadratic", scale=0)


def test_problem_in_float64():
    params, grad_fn = demo.problem("mlp", seed=1, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in params)
    assert all(g.dtype == torch.float64 for g in grad_fn(1, params))


# --- side by side with torch.optim -------------------------------------------------------------

def torch_step(kind, scale=1.0, **extra):
    """A step function for side_by_side that is torch.optim itself (its lr multiplied by ``scale``),
    copying torch's state into the lists side_by_side passes."""
    cache = {}

    def step(ps, *args):
        if "opt" not in cache:
            if kind == "sgd":
                cache["opt"] = torch.optim.SGD(ps, lr=args[0] * scale)
            elif kind == "momentum":
                cache["opt"] = torch.optim.SGD(ps, lr=args[1] * scale, momentum=args[2])
            else:
                cache["opt"] = torch.optim.Adam(ps, lr=args[3] * scale, betas=args[4], eps=args[5])
        opt = cache["opt"]
        opt.step()
        if kind == "momentum" and args[2] != 0:
            for p, v in zip(ps, args[0]):
                v.copy_(opt.state[p]["momentum_buffer"])
        elif kind == "adam":
            for p, m, v in zip(ps, args[0], args[1]):
                m.copy_(opt.state[p]["exp_avg"])
                v.copy_(opt.state[p]["exp_avg_sq"])

    step.__name__ = f"torch_{kind}"
    return step


@pytest.mark.parametrize("kind, hyper", [("sgd", dict(lr=0.1)), ("momentum", dict(lr=0.05, mu=0.9)),
                                         ("momentum", dict(lr=0.05, mu=0.0)),
                                         ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6))])
def test_side_by_side_finds_torch_optim_equal_to_itself(kind, hyper):
    params, grad_fn = demo.problem("mlp", seed=3)
    run = demo.side_by_side(kind, torch_step(kind), params, grad_fn, 30, forbid=False, **hyper)
    assert run.steps == 30 and len(run.state_diffs) == 30
    assert max(run.param_diffs) == 0.0 and max(run.state_diffs) == 0.0
    assert run.first_bad_step(1e-12) is None and run.first_bad_state_step(1e-12) is None
    assert not run.did_not_move
    assert "within" in run.report(1e-6)


def test_side_by_side_reports_the_first_bad_step_and_the_largest_difference():
    params, grad_fn = demo.problem("quadratic", seed=1)
    run = demo.side_by_side("sgd", torch_step("sgd", scale=1.01), params, grad_fn, 20, forbid=False, lr=0.1)
    assert run.first_bad_step(1e-6) == 1
    worst = max(run.param_diffs)
    assert worst > 1e-4
    message = run.report(1e-6, hint="check the learning rate")
    assert "step 1 of 20" in message and f"{worst:.3g}" in message and "Hint: check the learning rate" in message
    assert "torch.optim.SGD" in message


def test_side_by_side_flags_an_update_that_never_reaches_the_parameters():
    def rebinding(ps, lr):
        for p in ps:
            p = p - lr * p.grad                                  # noqa: F841 - the mistake under test

    params, grad_fn = demo.problem("quadratic", seed=0)
    run = demo.side_by_side("sgd", rebinding, params, grad_fn, 5, lr=0.1)
    assert run.did_not_move and run.first_bad_step(1e-6) == 1
    assert "in place" in run.report(1e-6)


def test_side_by_side_checks_the_state_separately():
    inner = torch_step("momentum")

    def lr_inside(ps, velocities, lr, mu):                       # moves like torch but stores lr * v
        inner(ps, velocities, lr, mu)
        for v in velocities:
            v.mul_(lr)

    params, grad_fn = demo.problem("quadratic", seed=2)
    run = demo.side_by_side("momentum", lr_inside, params, grad_fn, 10, forbid=False, lr=0.05, mu=0.9)
    assert run.first_bad_step(1e-6) is None
    assert run.first_bad_state_step(1e-4) == 1
    assert "optimizer state" in run.report(1e-4, state=True) and "velocities[" in run.report(1e-4, state=True)


def test_side_by_side_reports_nan_as_a_division_by_zero():
    def broken(ps, ms, vs, t, lr, betas, eps):
        with torch.no_grad():
            for p in ps:
                p.div_(0.0 * (t - 1))

    params, grad_fn = demo.problem("quadratic", seed=0)
    run = demo.side_by_side("adam", broken, params, grad_fn, 2, lr=0.01)
    assert run.param_diffs[0] == math.inf
    assert "division by zero" in run.report(1e-6)


def test_side_by_side_forbids_torch_optim_by_default():
    params, grad_fn = demo.problem("quadratic", seed=0)
    with pytest.raises(tripwire.ShortcutUsed):
        demo.side_by_side("sgd", torch_step("sgd"), params, grad_fn, 2, lr=0.1)


def test_side_by_side_leaves_the_starting_parameters_alone():
    params, grad_fn = demo.problem("quadratic", seed=0)
    before = [p.clone() for p in params]
    demo.side_by_side("sgd", torch_step("sgd"), params, grad_fn, 3, forbid=False, lr=0.1)
    assert all(torch.equal(p, q) for p, q in zip(params, before))


def test_side_by_side_rejects_unknown_kind():
    params, grad_fn = demo.problem("quadratic", seed=0)
    with pytest.raises(ValueError, match="kind"):
        demo.side_by_side("rmsprop", torch_step("sgd"), params, grad_fn, 1, lr=0.1)


def test_relative_difference():
    e = torch.tensor([2.0, -4.0])
    assert demo.relative_difference(torch.tensor([2.0, -4.0]), e) == 0.0
    assert demo.relative_difference(torch.tensor([2.0, -3.0]), e) == pytest.approx(0.25)   # 1 / 4
    small = torch.tensor([1e-3])
    assert demo.relative_difference(torch.tensor([2e-3]), small) == pytest.approx(1e-3)    # floor 1
    assert demo.relative_difference(torch.tensor([2e-3]), small, floor=1e-3) == pytest.approx(1.0)
    assert demo.relative_difference(torch.tensor([float("nan"), 0.0]), e) == math.inf
    assert demo.relative_difference(torch.zeros(3), e) == math.inf
    assert demo.relative_difference(e.double(), e) == math.inf
    assert demo.relative_difference(None, e) == math.inf


def test_plot_side_by_side_draws_one_line_per_record_and_the_tolerance():
    params, grad_fn = demo.problem("quadratic", seed=0)
    records = [demo.side_by_side(k, torch_step(k), params, grad_fn, 5, forbid=False, **h)
               for k, h in (("sgd", dict(lr=0.1)), ("adam", dict(lr=0.01)))]
    fig = demo.plot_side_by_side(records)
    assert len(fig.axes[0].get_lines()) == 3                     # two records and the tolerance line
    plt.close(fig)


def test_reference_optimizer_run_exposes_torchs_state():
    # (grader.reference.optimizer_run, which side_by_side compares with) constant gradient g = 2 on one tensor
    grad_fn = lambda k, ps: [torch.full((2,), 2.0)]                                # noqa: E731
    run = demo.reference.optimizer_run("momentum", [torch.ones(2)], grad_fn, 2, lr=0.1, mu=0.5)
    (p1, s1), (p2, s2) = run
    assert torch.allclose(s1[0]["momentum_buffer"], torch.full((2,), 2.0))           # v = g
    assert torch.allclose(s2[0]["momentum_buffer"], torch.full((2,), 3.0))           # v = 0.5 * 2 + 2
    assert torch.allclose(p2[0], torch.full((2,), 1 - 0.1 * 2 - 0.1 * 3))
    assert demo.reference.optimizer_run("momentum", [torch.ones(2)], grad_fn, 1, lr=0.1, mu=0.0)[0][1] == [{}]
    (_, adam_state), = demo.reference.optimizer_run("adam", [torch.ones(2)], grad_fn, 1, lr=0.1)
    assert torch.allclose(adam_state[0]["exp_avg"], torch.full((2,), 0.2))             # (1 - 0.9) * 2
    assert torch.allclose(adam_state[0]["exp_avg_sq"], torch.full((2,), 0.004))       # (1 - 0.999) * 4
    with pytest.raises(ValueError, match="kind"):
        demo.reference.optimizer_run("lbfgs", [torch.ones(2)], grad_fn, 1, lr=0.1)
