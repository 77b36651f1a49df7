"""The foreach path's regrouped products (generator.lower.products): a local read only as a
factor is not made, and ``x - c·a/d`` is one ``addcdiv_`` with the numbers gathered.

Each spec below runs its foreach path against its for-loop in float64 (the regrouped path
rounds apart by an ulp, never more): the safe cases must be regrouped (the generated source
says so, or the case would test nothing), the unsafe ones (the local's operand or number
changed before it is read, the local bound again) must read what the for-loop reads. RAdam's
regrouped step must make no more passes over its tensors than torch's foreach RAdam.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import generated
from generator.api import compile_text, load_spec
from generator import driver, project
from generator.emit.python.items import bind_items
from generator.lower.products import regroup
from parity import FOREACH_REGROUPED, TWIN_NAMES
from paths import steps_with_a_missing_gradient

HEADER = """\
optimizer Regrouped
input lr: float = 1e-2
input foreach: bool? = none
state m (exp_avg) <- 0
check not is_complex(param) else "no complex parameters"
"""
# what a case declares besides
RADAM_LIKE = """\
input eps: float = 1e-8
state t (step): count <- 0
state v (exp_avg_sq) <- 0
"""

# (declarations, update, what the foreach source must show: the regrouping happened, or None for a case where
# it must not change what is read)
CASES = {
    # RAdam's shape: a scaled local read in both branches of a per-parameter `if`
    "scaled_local_in_both_branches": (
        RADAM_LIKE,
        """
    t <- t + 1
    m <- 0.9 * m + 0.1 * grad
    v <- 0.99 * v + 0.01 * grad^2
    m_hat <- m / (1 - 0.9^t)
    if t > 2:
        r <- 1 / (sqrt(v) + eps)
        param <- param - m_hat * lr * r * (t / (t + 1))
    else:
        param <- param - m_hat * lr
""",
        r"_foreach_addcdiv_\(\s*device_params_\w+,\s*device_exp_avgs_\w+",
    ),
    # RAdam's spelling: the product in parentheses, subtracted whole (`sub_` of it)
    "subtracted_product_in_parentheses": (
        RADAM_LIKE,
        """
    t <- t + 1
    m <- 0.9 * m + 0.1 * grad
    v <- 0.99 * v + 0.01 * grad^2
    m_hat <- m / (1 - 0.9^t)
    r <- (1 - 0.99^t)^0.5 / (sqrt(v) + eps)
    param <- param - (m_hat * lr * r * 2)
""",
        r"_foreach_addcdiv_\(\s*device_params,\s*device_exp_avgs,",
    ),
    # a factor reduced over a dimension broadcasts: the product keeps its operations
    "reduced_factor": (
        "state s (row) <- 0, reduced over -1\n",
        """
    m <- 0.9 * m + grad
    s <- 0.9 * s + 0.1 * mean(grad^2, -1)
    u <- s * m
    param <- param - lr * u * 0.5
""",
        None,
    ),
    "two_tensor_product": (
        "",
        """
    m <- 0.9 * m + grad
    u <- m * grad
    param <- param - lr * u * 0.5
""",
        r"_foreach_addcmul_\(\s*device_params,\s*device_exp_avgs,\s*device_grads,",
    ),
    "one_tensor_with_a_number": (
        "",
        """
    m <- 0.9 * m + grad
    d <- m / 4
    param <- param - d * lr
""",
        r"_foreach_add_\(\s*device_params,\s*device_exp_avgs,\s*alpha=",
    ),
    "operand_changed_before_the_read": (
        "",
        """
    m <- 0.9 * m + grad
    x <- m / 3
    m <- 0.5 * m + grad
    param <- param - lr * x * grad
""",
        None,
    ),
    "number_changed_before_the_read": (
        "",
        """
    m <- 0.9 * m + grad
    c <- lr * 3
    x <- m * c
    c <- 7
    param <- param - x * grad * c
""",
        None,
    ),
    "local_bound_again": (
        "",
        """
    m <- 0.9 * m + grad
    x <- m * 3
    param <- param - lr * x * grad
    x <- grad * 2
    param <- param - lr * x
""",
        None,
    ),
    "product_read_twice": (
        "state v (exp_avg_sq) <- 0\n",
        """
    m <- 0.9 * m + grad
    u <- m * grad
    param <- param - lr * u
    v <- v + u
""",
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_regrouped_foreach_path_reads_what_the_for_loop_reads(case):
    declarations, update, regrouped = CASES[case]
    text = HEADER + declarations + "update:" + update
    if regrouped is not None:
        source = compile_text(text)
        multi = source[source.index("def _multi_tensor_") :]
        assert re.search(regrouped, multi), (
            f"{case}: the foreach path is not regrouped as expected "
            f"(no match for {regrouped!r})"
        )
    cls = load_spec(text)
    loop, multi = (
        steps_with_a_missing_gradient(cls, 6, foreach=f) for f in (False, True)
    )
    for step, (a, b) in enumerate(zip(multi, loop)):
        for i, (x, y) in enumerate(zip(a, b)):
            torch.testing.assert_close(
                x,
                y,
                rtol=1e-12,
                atol=0,
                msg=lambda m, step=step, i=i: (
                    f"{case}: foreach parts from the for-loop at step {step}, "
                    f"param #{i}: {m}"
                ),
            )


def _twin_ir(name: str):
    spec = project.standard_library() / f"{name.lower()}.optim"
    checked, _ = driver.check_all(
        [spec], project.fragment_files([project.standard_fragments()])
    )
    return driver.lowered(checked[0])


def test_the_twins_whose_foreach_path_is_regrouped_are_the_table():
    found = set()
    for name in TWIN_NAMES:
        opt = _twin_ir(name)
        body = bind_items(opt.body)
        if regroup(opt, body) != tuple(body):
            found.add(name)
    assert found == FOREACH_REGROUPED, (
        f"regrouped twins {sorted(found)}, the table (tests/parity.py) says "
        f"{sorted(FOREACH_REGROUPED)}"
    )


class _ForeachCalls(TorchDispatchMode):
    """The foreach operations a step runs, and how many of them make new tensors."""

    def __init__(self):
        super().__init__()
        self.calls, self.new = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name.startswith("_foreach_"):
            self.calls += 1
            self.new += not name.endswith("_")
        return func(*args, **(kwargs or {}))


def _count(cls, steps: int = 8):
    torch.manual_seed(0)
    params = [torch.randn(64, 32, requires_grad=True) for _ in range(3)]
    opt = cls(params, lr=1e-3, foreach=True)
    for _ in range(steps):  # (past RAdam's first steps: rho_t > 5 for every tensor)
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    for p in params:
        p.grad = torch.randn_like(p)
    with _ForeachCalls() as counted:
        opt.step()
    return counted.calls, counted.new


def test_radam_foreach_makes_no_more_passes_than_torchs():
    ours, theirs = _count(generated.RAdam), _count(torch.optim.RAdam)
    assert ours[0] <= theirs[0] and ours[1] <= theirs[1], (
        f"generated RAdam's foreach step runs {ours[0]} foreach operations, {ours[1]} of "
        f"them into new tensors; torch's runs {theirs[0]} and {theirs[1]}"
    )
