"""Branches the foreach path must follow exactly as the for-loop does: an `elif` decided per
parameter (nested list partitions), a per-parameter `elif` after a hyperparameter `if`, a number
set before a per-parameter reassignment inside a hyperparameter `if`, a tensor local replaced
inside a per-parameter `if`, and a choice inside a tensor expression. Each spec is compiled with
``load_spec`` and run both ways on the same gradients (one parameter without a gradient on some
steps); the parameters must be equal bit for bit after every step.
"""

from __future__ import annotations

import pytest
import torch

from generator import load_spec
from paths import steps_with_a_missing_gradient

HEADER = """\
optimizer Branchy
input lr: float = 1e-2
input flag: bool = false
input foreach: bool? = none
state t (step): count <- 0
state m (exp_avg) <- 0
state w (weight): count <- 0
state v_max (max_exp_avg_sq) <- 0 if flag
state b (previous) lazy
check not is_complex(param) else "Branchy does not support complex parameters"
"""

UPDATES = {
    "elif_per_parameter": """
    t <- t + 1
    if t >= 5:
        param <- param - (2 * lr if flag else lr) * grad
    elif t >= 3:
        param <- param - 2 * lr * grad
    m <- m + grad
""",
    "elif_per_parameter_after_flag": """
    t <- t + 1
    if flag:
        param <- param - lr * grad
    elif t >= 3:
        param <- param - 2 * lr * grad
    m <- m + grad
""",
    "number_made_per_parameter_under_flag": """
    t <- t + 1
    c <- 1
    if flag:
        c <- 1 / t
    m <- m + grad
    param <- param - lr * c * grad
""",
    "tensor_local_replaced_per_parameter": """
    t <- t + 1
    m <- m + grad
    d <- m / 2
    if t < 3:
        d <- m
    param <- param - (2 * lr if flag else lr) * d
""",
    "counter_from_its_own_value": """
    t <- t + 1
    w <- w * 0.5 + (2 if flag else 1)
    m <- m + grad
    param <- param - lr / w * m
""",
    "per_parameter_if_elif_else_assigning_a_local": """
    t <- t + 1
    m <- m + grad
    if dim(param) == 1:
        u <- sign(m)
    elif dim(param) == 2:
        u <- m * 2
    else:
        u <- m
    param <- param - (2 * lr if flag else lr) * u
""",
    "per_parameter_if_inside_a_flag": """
    t <- t + 1
    m <- m + grad
    if flag:
        if dim(param) >= 2:
            u <- sign(m)
        else:
            u <- m
    else:
        u <- m * 2
    param <- param - lr * u
""",
    "optional_state_inside_a_per_parameter_branch": """
    t <- t + 1
    m <- 0.9 * m + 0.1 * grad^2
    if dim(param) >= 2:
        if flag:
            v_max <- max(v_max, m)
            d <- sqrt(v_max)
        else:
            d <- sqrt(m)
        param <- param - lr * grad / (d + 1e-8)
""",
    "lazy_state_assigned_again_later": """
    t <- t + 1
    b <- b initially -grad
    m <- m + grad
    param <- param - (2 * lr if flag else lr) * (m + b)
    b <- -grad
""",
    "choice_inside_a_tensor_expression": """
    t <- t + 1
    m <- m + grad
    r <- norm(m)
    param <- param - lr * (1 if flag else r) * grad
""",
}


def _run(cls, foreach, flag, steps=7):
    return steps_with_a_missing_gradient(cls, steps, foreach=foreach, flag=flag)


@pytest.mark.parametrize("flag", [False, True])
@pytest.mark.parametrize("case", sorted(UPDATES))
def test_foreach_follows_the_for_loop_through_branches(case, flag):
    cls = load_spec(HEADER + "update:" + UPDATES[case])
    loop, multi = _run(cls, False, flag), _run(cls, True, flag)
    for step, (a, b) in enumerate(zip(multi, loop)):
        for i, (x, y) in enumerate(zip(a, b)):
            assert torch.equal(x, y), (
                f"{case}, flag={flag}: foreach parts from the for-loop at step {step}, "
                f"param #{i}: max |diff| {(x - y).abs().max().item():.3e}"
            )


ELIF_FUSED = """\
optimizer ElifFused
input lr: float = 1e-2
input weight_decay: float = 0.1
input decouple: bool = false
input foreach: bool? = none
input fused: bool? = none, keyword
state m (exp_avg) <- 0
update:
    g <- grad
    if decouple:
        param <- param * (1 - lr * weight_decay)
    elif weight_decay > 0:
        g <- g + weight_decay * param
    m <- 0.9 * m + g
    param <- param - lr * m
"""


@pytest.mark.parametrize("decouple", [False, True])
def test_fused_kernel_tests_an_elif_by_its_own_decision(decouple):
    cls = load_spec(ELIF_FUSED)
    results = []
    for fused in (False, True):
        p = torch.linspace(-1, 1, 6).requires_grad_(True)
        opt = cls([p], fused=fused, decouple=decouple)
        for step in range(3):
            p.grad = torch.full_like(p, 0.5 + step)
            opt.step()
        results.append(p.detach().clone())
    torch.testing.assert_close(results[1], results[0], rtol=1e-6, atol=1e-7)


REBOUND = """\
optimizer Rebound
input lr: float = 0.5
input foreach: bool? = none
update:
    if lr > 0.25:
        r <- 2.0
    else:
        r <- 1
    s <- lr * 2
    s <- s * r
    param <- param - s * grad
"""


@pytest.mark.parametrize("foreach", [False, True])
def test_a_number_rebound_in_the_update_is_not_carried_to_the_next_parameter(foreach):
    """`s <- lr * 2` then `s <- s * r`: every parameter steps by lr * 2 * r (a hoisted `s`
    would be multiplied by r once more for each parameter); `r` is 2.0 or 1, a number
    either way."""
    cls = load_spec(REBOUND)
    params = [torch.zeros(2, requires_grad=True) for _ in range(3)]
    opt = cls(params, foreach=foreach)
    for p in params:
        p.grad = torch.ones(2)
    opt.step()
    for i, p in enumerate(params):
        assert torch.equal(p.detach(), torch.full((2,), -2.0)), (i, p)


FIRST_ITERATE = """\
optimizer FirstIterate
input lr: float = 1e-1
input wd: float = 0.1
input foreach: bool? = none
input fused: bool? = none, keyword
state x0 (x0) lazy
update:
    g <- grad + wd * param
    x0 <- x0 initially param
    param <- param - lr * (g + (param - x0))
"""


def test_fused_keeps_the_first_iterate_taken_before_the_parameter_moves():
    """`x0 <- x0 initially param`, then `param` updated in place: inside a compiled kernel,
    inductor would copy the parameter after its update (pytorch/pytorch#198131), so the copy
    is made before the kernel runs; fused then equals the for-loop (it was 0.1 off)."""
    cls = load_spec(FIRST_ITERATE)
    results = []
    for fused in (False, True):
        gen = torch.Generator().manual_seed(0)
        p = torch.randn(1000, generator=gen).requires_grad_(True)
        opt = cls([p], fused=fused)
        for _ in range(4):
            p.grad = torch.randn(1000, generator=gen)
            opt.step()
        results.append(p.detach().clone())
    torch.testing.assert_close(results[1], results[0], rtol=1e-6, atol=1e-6)
