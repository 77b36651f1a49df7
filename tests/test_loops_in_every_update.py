"""Loops in a per-parameter update: ``for`` over a range, ``while`` and ``break``.

The same statements as in ``update flat:``, lowered to the same IR loops. A ``for`` over a range
the hyperparameters decide runs on the for-loop and foreach paths; ``while``, ``break`` and a
``for`` over a range that differs between parameters (``range(dim(param))``) run in the for-loop
only, and a spec that also declares ``foreach`` or ``fused`` is refused at the loop (E335) rather
than falling back. Each spec is checked against plain torch written here from the algorithm, to the
last bit in float64.
"""

from __future__ import annotations

import pytest
import torch

from generator import load_spec
from generator.api import check_text
from generator.language.diagnostics import SpecError
from paths import seeded_grads, seeded_params

POWERS = """\
optimizer Powers
summary "momentum whose step is divided by a sum of powers of beta"
input lr: float = 0.01 "learning rate"
input beta: float = 0.9 "decay"
input terms: int = 3 "powers summed"
input foreach: bool? = none, keyword
state m: tensor <- 0
update:
    c <- 0
    for j in range(terms):
        c <- c + beta^j
    m <- beta * m + grad
    for k in reversed(range(1, terms)):
        m <- m * (1 - 1e-3 * k)
    x <- grad
    for k in range(terms):
        x <- beta * x + grad
    param <- param - lr / c * m - lr * x
"""


@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_for_loops_over_a_hyperparameter_range_run_on_both_paths(foreach):
    cls = load_spec(POWERS)
    shapes = [(4, 3), (5,), (2, 2, 2)]
    steps = seeded_grads(shapes, 6, 1)
    params = seeded_params(shapes)
    expected = [p.clone() for p in params]
    opt = cls(params, lr=0.05, beta=0.8, terms=4, foreach=foreach)
    ms = [torch.zeros_like(p) for p in expected]
    for grads in steps:
        kept = [g.clone() for g in grads]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        # the gradient a local names is read, never changed in place by the loop
        for p, g in zip(params, kept):
            assert torch.equal(p.grad, g), "the loop changed the gradient in place"
        c = 0
        for j in range(4):
            c = c + 0.8**j
        for e, m, g in zip(expected, ms, grads):
            m.mul_(0.8).add_(g)
            for k in range(3, 0, -1):
                m.mul_(1 - 1e-3 * k)
            x = g
            for _ in range(4):
                x = 0.8 * x + g
            # (x's multiple added as torch adds one, a single rounding: add_ with alpha)
            e.add_(m, alpha=-(0.05 / c)).add_(x, alpha=-0.05)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p, e, rtol=0, atol=0)


HALVING = """\
optimizer Halving
summary "steps of at most `bound` per parameter, halving lr until they are"
input lr: float = 0.5 "learning rate"
input bound: float = 0.01 "largest step"
input most: int = 6 "most halvings"
check not is_complex(param) else "Halving does not support complex parameters"
update:
    s <- lr
    k <- 0
    while s * item(norm(grad)) > bound:
        if k == most:
            break
        s <- s / 2
        k <- k + 1
    n <- 1
    for d in range(dim(param)):
        n <- n * size(param, d)
    param <- param - s / n * grad
"""


def test_while_break_and_a_loop_over_the_parameters_dimensions_run_in_the_for_loop():
    cls = load_spec(HALVING)
    shapes = [(4, 3), (5,), (2, 3, 2)]
    steps = seeded_grads(shapes, 5, 2)
    params = seeded_params(shapes)
    expected = [p.clone() for p in params]
    opt = cls(params, lr=0.5, bound=0.01, most=6)
    halvings = set()
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        for e, g in zip(expected, grads):
            s, k = 0.5, 0
            while s * g.norm().item() > 0.01:
                if k == 6:
                    break
                s, k = s / 2, k + 1
            halvings.add(k)
            e.sub_(g, alpha=s / e.numel())
    assert len(halvings) > 1, "the grid never made the loop stop at different points"
    assert 6 in halvings, "the grid never reached the break"
    for p, e in zip(params, expected):
        torch.testing.assert_close(p, e, rtol=0, atol=0)


def _codes(text: str) -> list[tuple[str, int]]:
    with pytest.raises(SpecError) as info:
        check_text(text, "loops.optim")
    return [(d.code, d.span.line) for d in info.value.diagnostics]


@pytest.mark.parametrize(
    "flag, loop, codes",
    [
        (
            "foreach: bool? = none, keyword",
            "    while k < 3:\n        k <- k + 1\n        if k == 2:\n            break\n",
            [("E335", 7), ("E335", 10)],
        ),
        (
            "foreach: bool? = none, keyword",
            "    for d in range(size(param, 0)):\n        k <- k + d\n",
            [("E335", 7)],
        ),
        (
            "fused: bool? = none, keyword",
            "    for d in range(3):\n        k <- k + d\n",
            [("E335", 7)],
        ),
    ],
    ids=[
        "while_and_break_with_foreach",
        "per_parameter_range_with_foreach",
        "for_with_fused",
    ],
)
def test_a_loop_a_path_cannot_run_refuses_its_flag_at_the_loop(flag, loop, codes):
    text = (
        "optimizer X\ninput lr: float = 0.1\n"
        f"input {flag}\n"
        'check not is_complex(param) else "no complex"\n'
        "update:\n    k <- 0\n" + loop + "    param <- param - lr * k * grad\n"
    )
    assert _codes(text) == codes


@pytest.mark.parametrize(
    "body, code",
    [
        ("    break\n", "E504"),
        ("    for d in range(3):\n        d <- 2\n", "E319"),
        ("    for d in range(lr):\n        k <- k + d\n", "E323"),
        ("    for lr in range(3):\n        k <- k + lr\n", "E319"),
        ("    while grad > 0:\n        k <- k + 1\n", "E308"),
    ],
    ids=[
        "break_outside_a_loop",
        "assigning_the_loop_variable",
        "a_bound_that_is_not_whole",
        "a_loop_variable_named_like_an_input",
        "a_tensor_as_the_condition",
    ],
)
def test_misused_loops_are_refused_with_their_code(body, code):
    text = (
        "optimizer X\ninput lr: float = 0.1\nupdate:\n    k <- 0\n"
        + body
        + "    param <- param - lr * k * grad\n"
    )
    assert code in [c for c, _ in _codes(text)]
