"""Contract sentences the hidden tests check, each with a mistake that must lose that cell's points
and a different correct implementation that must keep them (lessons 05, 07, 09 and 10). Every
variant is a submission of its own, and the whole set is graded once, as a class, by
``course autograde``'s own class run (sandboxed kernels, the judge, two workers)."""

from __future__ import annotations

import nbformat
import pytest

from conftest import ROOT, replace_solution, source_notebook
from grader import build as course_build
from grader import grading


def _mutated(course, lesson: str, changes: dict[str, list[tuple[str, str]]]):
    """The solution notebook with textual changes to some solution cells: {grade_id: [(old, new), ...]}."""
    nb = source_notebook(course, lesson)
    for grade_id, edits in changes.items():
        nb = _mutated_nb(nb, grade_id, edits)
    return nb


def _mutated_nb(nb, grade_id: str, edits: list[tuple[str, str]]):
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    code = cell.source
    for old, new in edits:
        assert old in code, f"{grade_id}: {old!r} is not in the solution any more; update this test"
        code = code.replace(old, new)
    return replace_solution(nb, grade_id, code)


def _message(graded, grade_id: str) -> str:
    cell = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "\n".join(f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error")


def _lost(scores) -> set[str]:
    return {k for k, (got, full) in scores.items() if got < full}


ZERO_GRAD_LOOP = ("""    for p in params:
        if p.grad is not None:
            p.grad.zero_()""")


def _build_05_zero_grad_and_adam_step_alternatives_keep_every_point(course):
    nb = _mutated(course, "05_optimizers", {
        "zero_grad": [(ZERO_GRAD_LOOP, """    for p in params:
        if p.grad is None:
            continue
        p.grad.fill_(0.0)""")],
        "adam_step": [("            denom = (v / correction2).sqrt_().add_(eps)\n"
                       "            p.addcdiv_(m / correction1, denom, value=-lr)",
                       "            p.sub_(lr * (m / correction1) / (torch.sqrt(v / correction2) + eps))")]})
    return "05_optimizers", nb


def test_05_zero_grad_and_adam_step_alternatives_keep_every_point(contracts):
    scores, graded = contracts["05_zero_grad_and_adam_step_alternatives_keep_every_point"]
    assert not _lost(scores), {k: _message(graded, k) for k in _lost(scores)}


def _build_05_zero_grad_that_stops_at_a_missing_gradient_loses_its_points(course):
    nb = _mutated(course, "05_optimizers", {"zero_grad": [(ZERO_GRAD_LOOP, """    for p in params:
        if p.grad is None:
            break
        p.grad.zero_()""")]})
    return "05_optimizers", nb


def test_05_zero_grad_that_stops_at_a_missing_gradient_loses_its_points(contracts):
    scores, graded = contracts["05_zero_grad_that_stops_at_a_missing_gradient_loses_its_points"]
    assert _lost(scores) == {"test_zero_grad"}
    assert "do not stop" in _message(graded, "test_zero_grad")


def _build_05_zeroing_by_multiplying_and_adam_through_torch_optims_functions_lose_their_points(course):
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
    return "05_optimizers", nb


def test_05_zeroing_by_multiplying_and_adam_through_torch_optims_functions_lose_their_points(contracts):
    scores, graded = contracts["05_zeroing_by_multiplying_and_adam_through_torch_optims_functions_lose_their_points"]
    assert {"test_zero_grad", "test_adam_step"} <= _lost(scores)
    assert "test_sgd_step" not in _lost(scores) and "test_momentum_step" not in _lost(scores)
    assert "leaves nan" in _message(graded, "test_zero_grad")
    assert "already does this exercise's job" in _message(graded, "test_adam_step")


def _build_10_dropout_and_adam_alternatives_keep_every_point(course):
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
    return "10_nn", nb


def test_10_dropout_and_adam_alternatives_keep_every_point(contracts):
    scores, graded = contracts["10_dropout_and_adam_alternatives_keep_every_point"]
    assert not _lost(scores), {k: _message(graded, k) for k in _lost(scores)}


def _build_10_strict_dropout_mask_eps_inside_the_root_and_functional_sgd_lose_their_points(course):
    nb = _mutated(course, "10_nn", {
        "dropout": [("        if not self.training or self.p == 0:", "        if not self.training:"),
                    ("keep = torch.rand_like(x) >= self.p", "keep = torch.rand_like(x) > self.p")],
        "optimizers": [("                p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))",
                        "                p.sub_(self.lr * m_hat / (v_hat + self.eps).sqrt())"),
                       ("                    p.sub_(self.lr * p.grad)", """                    import torch.optim._functional as functional
                    functional.sgd([p], [p.grad], [None], weight_decay=0.0, momentum=0.0, lr=self.lr,
                                   dampening=0.0, nesterov=False, maximize=False, foreach=False)""")]})
    return "10_nn", nb


def test_10_strict_dropout_mask_eps_inside_the_root_and_functional_sgd_lose_their_points(contracts):
    scores, graded = contracts["10_strict_dropout_mask_eps_inside_the_root_and_functional_sgd_lose_their_points"]
    assert _lost(scores) == {"test_dropout_eval_edges", "test_adam", "test_sgd"}
    assert "rand >= p" in _message(graded, "test_dropout_eval_edges")
    assert "sqrt(v_hat) + eps" in _message(graded, "test_adam")
    assert "already does this exercise's job" in _message(graded, "test_sgd")


# --- lesson 07: train's epoch loss and random state; save_params / load_params ---------------------

EVALUATE = """    with torch.no_grad():
        logits = forward_fn(X, *params)"""
TRAIN_MEAN = '        history["train_loss"].append(sum(losses) / len(losses))'
SAVE = '    torch.save({name: p.detach().clone() for name, p in zip(["W1", "b1", "W2", "b2"], params)}, path)'
LOAD = '    return tuple(saved[name].detach().clone().requires_grad_(True) for name in ["W1", "b1", "W2", "b2"])'


def _build_07_train_and_save_load_alternatives_keep_every_point(course):
    nb = _mutated(course, "07_loop", {
        "train": [(TRAIN_MEAN, '        history["train_loss"].append(float(torch.tensor(losses).mean()))'),
                  ("    generator = torch.Generator().manual_seed(seed)",
                   "    generator = torch.Generator()\n    generator.manual_seed(seed)")],
        "evaluate": [(EVALUATE, "    if True:\n        logits = forward_fn(X, *[p.detach() for p in params])")],
        "save_load": [(SAVE, '    torch.save(dict(zip(["W1", "b1", "W2", "b2"], (p.detach().clone() for p in params))), '
                             'str(path))'),
                      (LOAD, '    out = [saved[k].clone().detach() for k in ["W1", "b1", "W2", "b2"]]\n'
                             '    return tuple(t.requires_grad_() for t in out)')]})
    return "07_loop", nb


def test_07_train_and_save_load_alternatives_keep_every_point(contracts):
    scores, graded = contracts["07_train_and_save_load_alternatives_keep_every_point"]
    assert not _lost(scores), {k: _message(graded, k) for k in _lost(scores)}


def _build_07_a_weighted_epoch_mean_and_a_save_that_touches_the_tensors_lose_their_points(course):
    nb = _mutated(course, "07_loop", {
        "train": [(TRAIN_MEAN, '        sizes = [min(batch_size, len(X_train) - i) for i in range(0, len(X_train), batch_size)]\n'
                               '        history["train_loss"].append(sum(l * n for l, n in zip(losses, sizes)) / len(X_train))')],
        "save_load": [(SAVE, '    for p in params:\n        p.requires_grad_(False)\n'
                             '    torch.save({name: p.clone() for name, p in zip(["W1", "b1", "W2", "b2"], params)}, path)')]})
    nb = _mutated_nb(nb, "evaluate", [(EVALUATE, "    if True:\n        logits = forward_fn(X, *params)")])
    return "07_loop", nb


def test_07_a_weighted_epoch_mean_and_a_save_that_touches_the_tensors_lose_their_points(contracts):
    scores, graded = contracts["07_a_weighted_epoch_mean_and_a_save_that_touches_the_tensors_lose_their_points"]
    assert {"test_train_history", "test_save_load", "test_evaluate_no_grad"} <= _lost(scores)
    assert "evaluate recorded a graph" in _message(graded, "test_evaluate_no_grad")
    assert "plain mean of the step losses" in _message(graded, "test_train_history")
    assert "save_params changed the caller's" in _message(graded, "test_save_load")


def _build_07_seeding_inside_train_and_loading_as_float32_lose_their_points(course):
    nb = _mutated(course, "07_loop", {
        "train": [("    generator = torch.Generator().manual_seed(seed)",
                   "    torch.manual_seed(seed)\n    generator = torch.Generator().manual_seed(seed)")],
        "save_load": [(LOAD, LOAD.replace(".clone()", ".clone().float()"))]})
    return "07_loop", nb


def test_07_seeding_inside_train_and_loading_as_float32_lose_their_points(contracts):
    scores, graded = contracts["07_seeding_inside_train_and_loading_as_float32_lose_their_points"]
    assert {"test_train_history", "test_save_load"} <= _lost(scores)
    assert "global random state" in _message(graded, "test_train_history")
    assert "give back the saved dtype" in _message(graded, "test_save_load")


# --- lesson 10: the registry de-duplicates by tensor, unregisters, and state_dict shares memory ------

NAMED_CHILDREN = '''        for child_name, child in self._modules.items():
            for name, p in child.named_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    pairs.append((f"{child_name}.{name}", p))'''
STATE_DICT = "    return OrderedDict((name, p.detach()) for name, p in self.named_parameters())"
SETATTR = """        if isinstance(value, Module):
            self._parameters.pop(name, None)
            self._modules[name] = value
        elif isinstance(value, torch.Tensor) and value.requires_grad:
            self._modules.pop(name, None)
            self._parameters[name] = value
        else:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)"""
SETATTR_OTHER = """        registry = (self._modules if isinstance(value, Module) else
                    self._parameters if isinstance(value, torch.Tensor) and value.requires_grad else None)
        for other in (self._parameters, self._modules):
            if other is not registry and name in other:
                del other[name]
        if registry is not None:
            registry[name] = value"""
UNREGISTER = '''        else:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)'''


def _build_10_registry_alternatives_keep_every_point(course):
    nb = _mutated(course, "10_nn", {"module": [
        (NAMED_CHILDREN, '''        for child_name, child in self._modules.items():
            for name, p in child.named_parameters():
                if not any(p is q for _, q in pairs):
                    pairs.append((child_name + "." + name, p))'''),
        (SETATTR, SETATTR_OTHER)],
        "module_state_dict": [
            (STATE_DICT, "    return OrderedDict([(name, p.data) for name, p in self.named_parameters()])")]})
    return "10_nn", nb


def test_10_registry_alternatives_keep_every_point(contracts):
    scores, graded = contracts["10_registry_alternatives_keep_every_point"]
    assert not _lost(scores), {k: _message(graded, k) for k in _lost(scores)}


def _build_10_deduplicating_by_module_loses_the_registry_points(course):
    nb = _mutated(course, "10_nn", {"module": [(NAMED_CHILDREN, '''        seen_children = set()
        for child_name, child in self._modules.items():
            if id(child) in seen_children:
                continue
            seen_children.add(id(child))
            for name, p in child.named_parameters():
                pairs.append((f"{child_name}.{name}", p))''')]})
    return "10_nn", nb


def test_10_deduplicating_by_module_loses_the_registry_points(contracts):
    scores, graded = contracts["10_deduplicating_by_module_loses_the_registry_points"]
    assert "test_module_registry" in _lost(scores)
    assert "a tensor shared by two layers must be listed once" in _message(graded, "test_module_registry")


def _build_10_keeping_unregistered_names_and_a_cloned_state_dict_lose_their_points(course):
    nb = _mutated(course, "10_nn", {"module": [(UNREGISTER, "        else:\n            pass")],
                                    "module_state_dict": [
                                        (STATE_DICT, STATE_DICT.replace("p.detach()", "p.detach().clone()"))]})
    return "10_nn", nb


def test_10_keeping_unregistered_names_and_a_cloned_state_dict_lose_their_points(contracts):
    scores, graded = contracts["10_keeping_unregistered_names_and_a_cloned_state_dict_lose_their_points"]
    assert {"test_module_registry", "test_state_dict"} <= _lost(scores)
    assert "unregisters the name" in _message(graded, "test_module_registry")
    assert "the parameters' own memory" in _message(graded, "test_state_dict")


TO_BODY = """    for p in self.parameters():
        p.data = p.data.to(target)
        if p.grad is not None:
            p.grad = p.grad.to(target)
    return self"""


def _build_10_to_by_explicit_recursion_keeps_every_point(course):
    nb = _mutated(course, "10_nn", {"module_to": [(TO_BODY, """    for p in self._parameters.values():
        p.data = p.data.to(target)
        if p.grad is not None:
            p.grad = p.grad.to(target)
    for child in self._modules.values():
        child.to(target)
    return self""")]})
    return "10_nn", nb


def test_10_to_by_explicit_recursion_keeps_every_point(contracts):
    scores, graded = contracts["10_to_by_explicit_recursion_keeps_every_point"]
    assert not _lost(scores), {k: _message(graded, k) for k in _lost(scores)}


def _build_10_to_that_puts_new_tensors_in_the_model_loses_its_points(course):
    nb = _mutated(course, "10_nn", {"module_to": [(TO_BODY, """    for name, p in list(self._parameters.items()):
        setattr(self, name, p.detach().to(target).requires_grad_(True))
    for child in self._modules.values():
        child.to(target)
    return self""")]})
    return "10_nn", nb


def test_10_to_that_puts_new_tensors_in_the_model_loses_its_points(contracts):
    scores, graded = contracts["10_to_that_puts_new_tensors_in_the_model_loses_its_points"]
    assert _lost(scores) == {"test_module_to"}
    assert "the same tensor object" in _message(graded, "test_module_to")


# --- lesson 09: time_op's median and synchronisation, get_device, to_device ------------------------

MEDIAN = "    return statistics.median(times)"
SYNC = '''    device = torch.device(device)

    def wait():
        if device.type == "cuda":'''
GET_DEVICE = '''    return torch.device("cuda" if torch.cuda.is_available() else "cpu")'''
TO_DEVICE = "            moved.append(t.to(device))"


def _build_09_alternatives_keep_every_point(course):
    nb = _mutated(course, "09_gpu", {
        "time_op": [(MEDIAN, "    times.sort()\n    mid = len(times) // 2\n"
                             "    return times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2")],
        "get_device": [(GET_DEVICE, '    if torch.cuda.is_available():\n        return torch.device("cuda")\n'
                                    '    return torch.device("cpu")')],
        "to_device": [(TO_DEVICE, "            moved.append(t.detach().to(device))")]})
    return "09_gpu", nb


def test_09_alternatives_keep_every_point(contracts):
    scores, graded = contracts["09_alternatives_keep_every_point"]
    assert not _lost(scores), {k: _message(graded, k) for k in _lost(scores)}


def _build_09_a_mean_for_the_median_and_a_copy_on_the_same_device_lose_their_points(course):
    nb = _mutated(course, "09_gpu", {"time_op": [(MEDIAN, "    return sum(times) / len(times)")],
                                     "to_device": [(TO_DEVICE, "            moved.append(t.to(device, copy=True))")]})
    return "09_gpu", nb


def test_09_a_mean_for_the_median_and_a_copy_on_the_same_device_lose_their_points(contracts):
    scores, graded = contracts["09_a_mean_for_the_median_and_a_copy_on_the_same_device_lose_their_points"]
    assert {"test_time_op", "test_to_device"} <= _lost(scores)
    assert "expected their median" in _message(graded, "test_time_op")
    assert "is not copied" in _message(graded, "test_to_device")


def _build_09_comparing_the_device_with_a_string_and_cuda_0_lose_their_points(course):
    nb = _mutated(course, "09_gpu", {
        "time_op": [(SYNC, '''    def wait():
        if device == "cuda":''')],
        "get_device": [(GET_DEVICE, '    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")')]})
    return "09_gpu", nb


def test_09_comparing_the_device_with_a_string_and_cuda_0_lose_their_points(contracts):
    scores, graded = contracts["09_comparing_the_device_with_a_string_and_cuda_0_lose_their_points"]
    assert {"test_time_op", "test_get_device"} <= _lost(scores)
    assert "torch.device(device).type" in _message(graded, "test_time_op")
    assert "expected torch.device('cuda')" in _message(graded, "test_get_device")


def _build_10_a_module_that_borrows_torch_nn_modules_methods_loses_the_registry_points(course):
    nb = source_notebook(course, "10_nn")
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "module")
    borrowed = cell.source + ("\n\nModule.named_parameters = torch.nn.Module.named_parameters\n"
                              "Module._named_members = torch.nn.Module._named_members\n"
                              "Module.named_modules = torch.nn.Module.named_modules\n")
    return "10_nn", replace_solution(nb, "module", borrowed)


def test_10_a_module_that_borrows_torch_nn_modules_methods_loses_the_registry_points(contracts):
    scores, graded = contracts["10_a_module_that_borrows_torch_nn_modules_methods_loses_the_registry_points"]
    assert "test_module_registry" in _lost(scores)
    assert "Module.named_parameters" in _message(graded, "test_module_registry")
    assert "already does this exercise's job" in _message(graded, "test_module_registry")


BUILDERS = {name[len("_build_"):]: fn for name, fn in dict(globals()).items() if name.startswith("_build_")}


@pytest.fixture(scope="module")
def contracts(tmp_path_factory):
    """Every variant above, submitted by a student of its own and graded in one class run."""
    course = tmp_path_factory.mktemp("contracts")
    course_build.build(["05_optimizers", "07_loop", "09_gpu", "10_nn"], root=ROOT, out=course)
    lessons = {}
    for key, build_variant in BUILDERS.items():
        lesson, nb = build_variant(course)
        path = course / "tmp" / f"{key}.ipynb"
        path.parent.mkdir(exist_ok=True)
        nbformat.write(nb, path)
        grading.submit(course, lesson, key, path)
        lessons[key] = lesson
    outcomes = grading.autograde_class(course, workers=2, progress=False)
    assert all(o.status == "graded" for o in outcomes), [(o.student, o.status, o.reason) for o in outcomes]
    return {key: (grading.scores(course, lesson, key),
                  nbformat.read(course / "autograded" / key / lesson / f"{lesson}.ipynb", as_version=4))
            for key, lesson in lessons.items()}
