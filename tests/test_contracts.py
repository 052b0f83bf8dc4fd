"""Contract sentences the hidden tests check, each with a mistake that must lose that cell's points
and a different correct implementation that must keep them (lessons 05 and 10), graded through
nbgrader like any submission."""

from __future__ import annotations

from conftest import replace_solution, source_notebook


def _mutated(course, lesson: str, changes: dict[str, list[tuple[str, str]]]):
    """The solution notebook with textual changes to some solution cells: {grade_id: [(old, new), ...]}."""
    nb = source_notebook(course, lesson)
    for grade_id, edits in changes.items():
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        code = cell.source
        for old, new in edits:
            assert old in code, f"{grade_id}: {old!r} is not in the solution any more; update this test"
            code = code.replace(old, new)
        nb = replace_solution(nb, grade_id, code)
    return nb


def _message(graded, grade_id: str) -> str:
    cell = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "\n".join(f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error")


def _lost(scores) -> set[str]:
    return {k for k, (got, full) in scores.items() if got < full}


ZERO_GRAD_LOOP = ("""    for p in params:
        if p.grad is not None:
            p.grad.zero_()""")


def test_05_zero_grad_and_adam_step_alternatives_keep_every_point(course, grades):
    nb = _mutated(course, "05_optimizers", {
        "zero_grad": [(ZERO_GRAD_LOOP, """    for p in params:
        if p.grad is None:
            continue
        p.grad.fill_(0.0)""")],
        "adam_step": [("            denom = (v / correction2).sqrt_().add_(eps)\n"
                       "            p.addcdiv_(m / correction1, denom, value=-lr)",
                       "            p.sub_(lr * (m / correction1) / (torch.sqrt(v / correction2) + eps))")]})
    scores, graded = grades.grade("05_optimizers", nb)
    assert not _lost(scores), {k: _message(graded, k) for k in _lost(scores)}


def test_05_zero_grad_that_stops_at_a_missing_gradient_loses_its_points(course, grades):
    nb = _mutated(course, "05_optimizers", {"zero_grad": [(ZERO_GRAD_LOOP, """    for p in params:
        if p.grad is None:
            break
        p.grad.zero_()""")]})
    scores, graded = grades.grade("05_optimizers", nb)
    assert _lost(scores) == {"test_zero_grad"}
    assert "do not stop" in _message(graded, "test_zero_grad")


def test_05_zeroing_by_multiplying_and_adam_through_torch_optims_functions_lose_their_points(course, grades):
    nb = _mutated(course, "05_optimizers", {
        "zero_grad": [(ZERO_GRAD_LOOP, """    for p in params:
        if p.grad is not None:
            p.grad.mul_(0)""")],
        "adam_step": [("""    with torch.no_grad():
        for p, m, v in zip(params, ms, vs):
            g = p.grad
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v / correction2).sqrt_().add_(eps)
            p.addcdiv_(m / correction1, denom, value=-lr)""", """    import torch.optim._functional as functional
    with torch.no_grad():
        functional.adam(list(params), [p.grad for p in params], list(ms), list(vs), [],
                        [torch.tensor(float(t - 1)) for _ in params], foreach=False, amsgrad=False,
                        beta1=beta1, beta2=beta2, lr=lr, weight_decay=0.0, eps=eps, maximize=False)""")]})
    scores, graded = grades.grade("05_optimizers", nb)
    assert {"test_zero_grad", "test_adam_step"} <= _lost(scores)
    assert "test_sgd_step" not in _lost(scores) and "test_momentum_step" not in _lost(scores)
    assert "leaves nan" in _message(graded, "test_zero_grad")
    assert "already does this exercise's job" in _message(graded, "test_adam_step")


def test_10_dropout_and_adam_alternatives_keep_every_point(course, grades):
    nb = _mutated(course, "10_nn", {
        "dropout": [("""        if not self.training or self.p == 0:
            return x.clone()
        if self.p == 1:
            return torch.zeros_like(x)
        keep = torch.rand_like(x) >= self.p
        return x * keep / (1.0 - self.p)""", """        if not self.training:
            return x.clone()
        if self.p == 1:
            return torch.zeros_like(x)
        mask = torch.bernoulli(torch.full_like(x, 1.0 - self.p))
        return x * mask / (1.0 - self.p)""")],
        "optimizers": [("                p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))",
                        "                p.addcdiv_(m_hat, v_hat.sqrt().add_(self.eps), value=-self.lr)")]})
    scores, graded = grades.grade("10_nn", nb)
    assert not _lost(scores), {k: _message(graded, k) for k in _lost(scores)}


def test_10_strict_dropout_mask_eps_inside_the_root_and_functional_sgd_lose_their_points(course, grades):
    nb = _mutated(course, "10_nn", {
        "dropout": [("        if not self.training or self.p == 0:", "        if not self.training:"),
                    ("keep = torch.rand_like(x) >= self.p", "keep = torch.rand_like(x) > self.p")],
        "optimizers": [("                p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))",
                        "                p.sub_(self.lr * m_hat / (v_hat + self.eps).sqrt())"),
                       ("                    p.sub_(self.lr * p.grad)", """                    import torch.optim._functional as functional
                    functional.sgd([p], [p.grad], [None], weight_decay=0.0, momentum=0.0, lr=self.lr,
                                   dampening=0.0, nesterov=False, maximize=False, foreach=False)""")]})
    scores, graded = grades.grade("10_nn", nb)
    assert _lost(scores) == {"test_dropout_eval_edges", "test_adam", "test_sgd"}
    assert "rand >= p" in _message(graded, "test_dropout_eval_edges")
    assert "sqrt(v_hat) + eps" in _message(graded, "test_adam")
    assert "already does this exercise's job" in _message(graded, "test_sgd")


def test_10_a_module_that_borrows_torch_nn_modules_methods_loses_the_registry_points(course, grades):
    nb = _mutated(course, "10_nn", {"module": [("        ### BEGIN SOLUTION\n        object.__setattr__(self, \"_parameters\", {})",
                                                 "        ### BEGIN SOLUTION\n        object.__setattr__(self, \"_parameters\", {})")]})
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "module")
    cell.source += ("\n\nModule.named_parameters = torch.nn.Module.named_parameters\n"
                    "Module._named_members = torch.nn.Module._named_members\n"
                    "Module.named_modules = torch.nn.Module.named_modules\n")
    scores, graded = grades.grade("10_nn", nb)
    assert "test_module_registry" in _lost(scores)
    assert "already does this exercise's job" in _message(graded, "test_module_registry")
