"""The flat-update language beyond LBFGS: a spec written here, compiled with ``load_spec``, against
an independent hand-written reference.

Gradient descent with an Armijo backtracking line search: the procedure evaluates the closure at
trial steps (``evaluate(t, d)``) in a ``while`` loop, returns a tuple, and the update keeps a
counter and a history list in the state. The reference below is plain torch code written from the
algorithm, not from the generated module; both run on the Rosenbrock function and a badly scaled
quadratic, and must agree to the last bit in float64.
"""

from __future__ import annotations

import pytest
import torch

from generator import load_spec

BACKTRACKING = """\
optimizer Backtracking
summary "Gradient descent with an Armijo backtracking line search."
input lr: float = 1.0 "first trial step"
input shrink: float = 0.5 "factor of the step after each failed trial"
input c: float = 1e-4 "sufficient decrease"
input max_ls: int = 30 "most trials per step"
input keep: int = 3 "steps remembered"
state evals: count <- 0
state steps lazy

update flat:
    d <- -grad
    gtd <- dot(grad, d)
    t, n <- backtrack(lr, d, loss, gtd, shrink, c, max_ls = max_ls)
    evals <- evals + n
    param <- param + t * d
    if steps == none:
        steps <- []
    if len(steps) == keep:
        pop_first(steps)
    append(steps, t)

procedure backtrack(t, d, f, gtd, shrink, c, max_ls = 10):
    f_new, g_new <- evaluate(t, d)
    n <- 1
    while f_new > f + c * t * gtd and n < max_ls:
        t <- t * shrink
        f_new, g_new <- evaluate(t, d)
        n <- n + 1
    return t, n
"""


def _reference_step(params, loss_fn, lr, shrink, c, max_ls, state):
    """One step, written from the algorithm: x <- x - t g with the largest t = lr shrink^k
    satisfying f(x - t g) <= f(x) - c t |g|^2."""
    with torch.enable_grad():
        for p in params:
            p.grad = None
        f = loss_fn()
        f.backward()
    f = f.item()
    g = torch.cat([p.grad.reshape(-1) for p in params])
    d = -g
    gtd = g.dot(d)
    x0 = [p.detach().clone() for p in params]

    def at(t):
        with torch.no_grad():
            for p, x, piece in zip(params, x0, d.split([p.numel() for p in params])):
                p.copy_(x)
                p.add_(piece.view_as(p), alpha=t)
        with torch.enable_grad():
            for p in params:
                p.grad = None
            value = loss_fn()
            value.backward()
        with torch.no_grad():
            for p, x in zip(params, x0):
                p.copy_(x)
        return value.item()

    t, n = lr, 1
    f_new = at(t)
    while f_new > f + c * t * gtd and n < max_ls:
        t *= shrink
        f_new = at(t)
        n += 1
    with torch.no_grad():
        for p, piece in zip(params, d.split([p.numel() for p in params])):
            p.add_(piece.view_as(p), alpha=t)
    state["evals"] = state.get("evals", 0) + n
    state["steps"] = (state.get("steps", []) + [t])[-3:]
    return f


def _rosenbrock(params):
    x, y = params
    return lambda: ((1 - x) ** 2).sum() + 100 * ((y - x**2) ** 2).sum()


def _quadratic(params):
    a, b = params
    scale = torch.logspace(-3, 2, a.numel(), dtype=a.dtype).view_as(a)
    return lambda: (scale * a * a).sum() + ((b - 1) ** 4).sum()


@pytest.mark.parametrize(
    "problem", [_rosenbrock, _quadratic], ids=["rosenbrock", "quadratic"]
)
def test_backtracking_spec_matches_a_hand_written_reference(problem):
    cls = load_spec(BACKTRACKING)
    start = [
        torch.tensor([-1.5, 0.3], dtype=torch.float64),
        torch.tensor([2.0, -0.5], dtype=torch.float64),
    ]
    ours = [t.clone().requires_grad_(True) for t in start]
    ref = [t.clone().requires_grad_(True) for t in start]
    opt = cls(ours)
    loss_ours, loss_ref = problem(ours), problem(ref)
    ref_state: dict = {}

    def closure():
        opt.zero_grad()
        value = loss_ours()
        value.backward()
        return value

    for step in range(25):
        got = opt.step(closure).item()
        want = _reference_step(ref, loss_ref, 1.0, 0.5, 1e-4, 30, ref_state)
        assert got == want, f"step {step}: loss {got!r}, reference {want!r}"
        for k, (a, b) in enumerate(zip(ours, ref)):
            assert torch.equal(
                a.detach(), b.detach()
            ), f"step {step}: param {k} {a.detach().tolist()} != reference {b.detach().tolist()}"
    state = opt.state[ours[0]]
    assert state["evals"] == ref_state["evals"]
    assert state["steps"] == ref_state["steps"]
    assert loss_ours().item() < problem(start)().item()


def test_backtracking_spec_reads_like_torch_code():
    from generator.api import compile_text

    source = compile_text(BACKTRACKING)
    assert "def _backtrack(obj_func, x, t, d, f, gtd, shrink, c, max_ls=10):" in source
    assert "f_new, g_new = obj_func(x, t, d)" in source
    assert 'state["evals"] += n' in source
    assert "self._add_grad(t, d)" in source
    assert "steps.pop(0)" in source and "steps.append(t)" in source


# ---- the flat modes of the one checker: each rule, a spec that breaks it, and its code -----------------

FLAT = "optimizer X\ninput lr: float = 1\n{states}update flat:\n{update}{procedure}"


def _flat_errors(update: str, states: str = "", procedure: str = "") -> list[str]:
    from diagnosed import errors_of

    return errors_of(FLAT.format(states=states, update=update, procedure=procedure))


STEP = "    param <- param - lr * grad\n"


@pytest.mark.parametrize(
    "update, states, procedure, expected",
    [
        (
            STEP + "    return 1\n",
            "",
            "",
            "E332 `return` in a flat update ends the step",
        ),
        ("    break\n" + STEP, "", "", "E504 `break` outside a loop"),
        ("    d <- e\n    e <- grad\n" + STEP, "", "", "E502 `e` is not defined"),
        ("    d <- grad\n" + STEP, "", "", "E402 `d` is assigned but never used"),
        (
            "    t <- f(1)\n    param <- param - t * grad\n",
            "",
            "\nprocedure f(x):\n    y <- x\n    return x\n",
            "E402 `y` is assigned but never used",
        ),
        (
            "    t <- f(1)\n    param <- param - t * grad\n",
            "",
            "\nprocedure f(x):\n    return x * lr\n",
            "E502 `lr` is not defined before this point of the procedure",
        ),
        ("    for each parameter:\n        d <- grad\n" + STEP, "", "", "E330"),
        ("    use adam_moments\n" + STEP, "", "", "E506 fragments are for"),
        ("    lr <- 2\n" + STEP, "", "", "E505 `lr` is an input"),
        ("    param <- 2 * param\n", "", "", "E505 in a flat update the parameters"),
        ("    d <- param\n" + STEP, "", "", "E505 a flat update does not read"),
        ("    d <- grad\n    d[0] <- grad\n" + STEP, "", "", "E507 `d` is not a list"),
        (
            "    d <- 1\n    append(d, grad)\n" + STEP,
            "",
            "",
            "E507 `append` needs a list",
        ),
        ("    a, b <- (1, 2, 3)\n" + STEP, "", "", "E507 2 names, but the value"),
        ("    d <- cosh(grad)\n" + STEP, "", "", "E503 unknown function `cosh`"),
        ("    d <- evaluate(1)\n" + STEP, "", "", "E503 `evaluate()` evaluates"),
        ("    closure <- 1\n" + STEP, "", "", "E506 `closure` is a name"),
        ("    for g in grad:\n        d <- g\n" + STEP, "", "", "E507 `for` runs over"),
        ("    d <- dot(1, grad)\n" + STEP, "", "", "E507 `dot` needs a vector here"),
        ("    param <- param - lr * 1\n", "", "", "E507 the direction of the step"),
    ],
    ids=[
        "a_return_with_a_value",
        "a_break_outside_a_loop",
        "a_name_read_before_it_is_assigned",
        "a_local_never_read",
        "a_procedures_local_never_read",
        "a_procedure_reads_an_input",
        "for_each_parameter",
        "a_fragment",
        "an_input_assigned",
        "param_changed_otherwise_than_by_a_step",
        "param_read",
        "an_item_of_a_tensor",
        "append_to_a_number",
        "a_tuple_of_another_length",
        "an_unknown_function",
        "evaluate_with_one_argument",
        "a_name_the_generated_step_uses",
        "for_over_a_tensor",
        "a_number_where_a_vector_belongs",
        "a_step_along_a_number",
    ],
)
def test_flat_update_misuse_is_refused_with_its_rule(
    update, states, procedure, expected
):
    errors = _flat_errors(update, states, procedure)
    assert any(e.startswith(expected) for e in errors), (expected, errors)


@pytest.mark.parametrize(
    "update",
    [
        # Python's scoping: a name set in a branch or a loop lives on after it
        "    if lr > 0:\n        t <- lr\n    else:\n        t <- 1\n"
        "    param <- param - t * grad\n",
        "    t <- 0\n    for k in range(3):\n        s <- t + k\n        t <- s\n"
        "    param <- param - lr * s * grad\n",
        # a loop's variable may be the next loop's
        "    t <- 0\n    for k in range(2):\n        t <- t + k\n    for k in range(2):\n"
        "        t <- t + k\n    param <- param - lr * t * grad\n",
        "    if lr > 1:\n        return\n" + STEP,
    ],
    ids=[
        "a_name_set_in_both_branches",
        "a_name_set_in_a_loop",
        "two_loops_one_variable",
        "a_bare_return",
    ],
)
def test_flat_update_follows_pythons_scoping(update):
    assert _flat_errors(update) == []
