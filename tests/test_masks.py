"""Masks as values: an elementwise comparison of tensors named, joined and chosen by.

`agree <- m * grad > 0` is a mask (a boolean tensor); `and`, `or` and `not` join masks element
by element; where(mask, a, b) chooses by one. Each path runs them (foreach per tensor, the
fused kernel inside it) as plain torch does. A mask is not a number: arithmetic on it, a
comparison of it, storing it in a state, an `if` on it, a mask beside a condition and a chained
comparison of tensors are located errors that say how to write it.
"""

from __future__ import annotations

import pytest
import torch

from diagnosed import errors_of
from generator import load_spec
from generator.api import compile_text
from paths import run_path

CAUTIOUS = """\
optimizer Cautious
input lr: float = 0.1
input beta: float = 0.9
input foreach: bool? = none
input fused: bool? = none, keyword
state m (m) <- 0
update:
    m <- beta * m + (1 - beta) * grad
    agree <- m * grad > 0
    big <- abs(grad) > 0.5
    keep <- agree and not big
    either <- agree or big
    u <- where(keep, m, 0) + where(either, 0.1 * grad, 0)
    param <- param - lr * u
"""

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def _reference(params, grads_per_step, lr=0.1, beta=0.9):
    params = [p.clone() for p in params]
    ms = [torch.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for p, g, m in zip(params, grads, ms):
            m.mul_(beta).add_((1 - beta) * g)
            agree = m * g > 0
            big = g.abs() > 0.5
            keep = agree & ~big
            either = agree | big
            u = torch.where(keep, m, 0) + torch.where(either, 0.1 * g, 0)
            p.add_(u, alpha=-lr)
    return params


@pytest.mark.parametrize("impl", ["for-loop", "foreach", "fused"])
def test_masks_joined_and_chosen_by_run_on_each_path_as_plain_torch(impl):
    cls = load_spec(CAUTIOUS)
    opt, params, grads = run_path(cls, impl, SHAPES, 5, eager=True)
    start = run_path(cls, "for-loop", SHAPES, 0)[1]
    for k, (p, e) in enumerate(zip(params, _reference(start, grads))):
        torch.testing.assert_close(
            p, e, rtol=1e-14, atol=1e-15, msg=f"{impl}, parameter {k}: differs"
        )


def test_a_mask_is_spelled_with_torch_comparisons_and_logical_ops():
    src = compile_text(CAUTIOUS)
    assert "agree = m.mul(grad).gt(0)" in src
    assert "agree.logical_and(big.logical_not())" in src
    assert "agree.logical_or(big)" in src


HEAD = "optimizer X\ninput lr: float = 0.1\ninput flag: bool = false\nupdate:\n"


@pytest.mark.parametrize(
    "body,code,words",
    [
        (
            "    mask <- grad > 0\n    param <- param - lr * mask\n",
            "E309",
            "operand of `*`",
        ),
        (
            "    mask <- grad > 0\n    if mask:\n        param <- param - lr * grad\n",
            "E308",
            "condition of `if`",
        ),
        ("    mask <- grad > 0\n    param <- mask\n", "E319", "cannot be stored"),
        (
            "    mask <- (grad > 0) and flag\n    param <- param - lr * where(mask, grad, 0)\n",
            "E307",
            "not one of each",
        ),
        (
            "    param <- param - lr * where(0 < grad < 1, grad, 0)\n",
            "E307",
            "join two",
        ),
        (
            "    mask <- grad > 0\n    param <- param - lr * abs(mask)\n",
            "E312",
            "does not take a mask",
        ),
        (
            "    mask <- grad > 0\n    param <- param - lr * where(mask > 0, grad, 0)\n",
            "E309",
            "cannot be compared",
        ),
    ],
    ids=[
        "arithmetic",
        "if",
        "stored",
        "with_a_condition",
        "chained",
        "function",
        "compared",
    ],
)
def test_a_mask_used_as_a_number_is_a_located_error(body, code, words):
    errors = errors_of(HEAD + body)
    assert errors and errors[0].split()[0] == code, errors
    assert words in errors[0], errors
