"""Updates that loop over a parameter's dimensions, on every path: SM3's accumulators.

A loop over ``range(dim(param))`` and a list state made for each dimension differ between
parameters of other ranks. The for-loop path runs them per parameter; the foreach path runs once
for each rank in a group (generator.runtime.linalg.by_rank), where ``dim(param)`` is one number,
so a group mixing 0-d, vector, matrix and 4-d parameters gives both the same result, to the last
bit against plain torch written from the algorithm. A loop whose range reads the parameter's
sizes differs between parameters of one rank: foreach is refused there (E335). Also pinned here:
two lowering bugs this update shape exposed (a loop that runs no iteration left a local that names
a state marked private, so it was updated in place; the foreach path's name for a list's item
outlived a loop that rebound it).
"""

from __future__ import annotations

import pytest
import torch

from generator import load_spec
from generator.api import compile_text
from diagnosed import errors_of
from paths import run_path
from test_matrix_functions import SHAMPOO_LIKE_LISTS

PER_DIMENSION = """\
optimizer PerDimension
input lr: float = 0.1
input foreach: bool? = none
check not is_complex(param) else "real parameters only"
state A (acc) <- [zeros_along(param, k) for k in range(max(dim(param), 1))]
update:
    first <- A[0]
    for k in range(dim(param)):
        A[k] <- A[k] + max_except(grad * grad, k)
    A[0] <- A[0] + 1
    if dim(param) == 0:
        A[0] <- A[0] + grad * grad
    s <- first
    for k in range(1, dim(param)):
        s <- min(s, A[k])
    param <- param - lr * grad / sqrt(s + A[0] + 1)
"""

# every rank from 0 to 4 in one group, mixed
SHAPES = [(2, 3, 2), (), (4,), (3, 5), (1,), (2, 2, 2, 2), (5, 1)]


def _max_except(x, k):
    others = tuple(d for d in range(x.dim()) if d != k)
    return x.amax(dim=others, keepdim=True) if others else x


def _reference(params, grads_per_step, lr):
    """Plain torch, from the algorithm."""
    params = [p.clone() for p in params]
    accs = []
    for p in params:
        shapes = [[1] * p.dim() for _ in range(max(p.dim(), 1))]
        for k, shape in enumerate(shapes):
            if p.dim():
                shape[k] = p.size(k)
        accs.append([torch.zeros(s, dtype=p.dtype) for s in shapes])
    for grads in grads_per_step:
        for p, g, acc in zip(params, grads, accs):
            first = acc[0].clone()
            for k in range(p.dim()):
                acc[k].add_(_max_except(g * g, k))
            acc[0].add_(1)
            if p.dim() == 0:
                acc[0].add_(g * g)
            s = first
            for k in range(1, p.dim()):
                s = torch.minimum(s, acc[k])
            p.sub_(lr * g / (s + acc[0] + 1).sqrt())
    return params, accs


@pytest.mark.parametrize("impl", ["for-loop", "foreach"])
def test_a_loop_over_dimensions_runs_on_each_path_as_plain_torch(impl):
    cls = load_spec(PER_DIMENSION)
    opt, params, grads = run_path(cls, impl, SHAPES, 6, lr=0.05)
    start = run_path(cls, "for-loop", SHAPES, 0)[1]
    expected, accs = _reference(start, grads, 0.05)
    for k, (p, e) in enumerate(zip(params, expected)):
        assert torch.equal(p, e), (
            f"{impl}, parameter {k} of shape {tuple(p.shape)}: differs from plain torch by "
            f"{(p - e).abs().max().item():.3e}"
        )
        mine = opt.state[opt.param_groups[0]["params"][k]]["acc"]
        assert [a.shape for a in mine] == [a.shape for a in accs[k]], (
            f"{impl}, parameter {k}: accumulators shaped {[tuple(a.shape) for a in mine]}, "
            f"expected {[tuple(a.shape) for a in accs[k]]}"
        )
        for j, (a, b) in enumerate(zip(mine, accs[k])):
            assert torch.equal(a, b), f"{impl}, parameter {k}: accumulator {j} differs"


def test_the_foreach_path_splits_a_group_by_rank_only_where_the_update_loops_over_dimensions():
    looped = compile_text(PER_DIMENSION)
    assert "by_rank(\n" in looped
    elementwise = compile_text(
        "optimizer Plain\ninput lr: float = 0.1\ninput foreach: bool? = none\n"
        "update:\n    param <- param - lr * grad\n"
    )
    assert "by_rank" not in elementwise


LOOP_MAY_NOT_RUN = """\
optimizer LoopMayNotRun
input lr: float = 0.1
input n: int = 0
input foreach: bool? = none
state m (m) <- 0
update:
    x <- m
    for k in range(n):
        x <- 2 * x
    x <- x + grad
    m <- 0.5 * m + grad
    param <- param - lr * x
"""


@pytest.mark.parametrize("impl", ["for-loop", "foreach"])
@pytest.mark.parametrize("n", [0, 2])
def test_a_loop_that_may_run_no_iteration_leaves_the_state_a_local_names_as_it_was(
    impl, n
):
    cls = load_spec(LOOP_MAY_NOT_RUN)
    opt, params, grads = run_path(cls, impl, [(3,), (2, 2)], 3, lr=0.1, n=n)
    start = run_path(cls, "for-loop", [(3,), (2, 2)], 0)[1]
    for i, (p, p0) in enumerate(zip(params, start)):
        m, expected = torch.zeros_like(p0), p0.clone()
        for step in grads:
            x = m * 2**n + step[i]
            m = 0.5 * m + step[i]
            expected -= 0.1 * x
        state = opt.state[opt.param_groups[0]["params"][i]]["m"]
        assert torch.allclose(state, m, rtol=1e-15, atol=0), (
            f"{impl}, n={n}, parameter {i}: the state m was changed through the local "
            f"that names it (max |diff| {(state - m).abs().max().item():.3e})"
        )
        assert torch.allclose(p, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    "update, message",
    [
        (
            "    for k in range(size(param, 0)):\n        param <- param - lr * grad\n",
            "E335 a `for` loop over a range that differs between parameters has no "
            "foreach form",
        ),
        (
            "    n <- size(param, 0) - 1\n    for k in range(n):\n"
            "        param <- param - lr * grad\n",
            "E335 a `for` loop over a range that differs between parameters has no "
            "foreach form",
        ),
    ],
    ids=["range_of_a_size", "range_of_a_local_read_off_a_size"],
)
def test_foreach_is_refused_where_a_range_differs_between_parameters_of_one_rank(
    update, message
):
    spec = (
        "optimizer Sized\ninput lr: float = 0.1\ninput foreach: bool? = none\n"
        "update:\n" + update
    )
    errors = errors_of(spec)
    assert any(e.startswith(message) for e in errors), errors


def test_a_range_of_the_rank_runs_on_foreach():
    spec = (
        "optimizer Ranked\ninput lr: float = 0.1\ninput foreach: bool? = none\n"
        'check not is_complex(param) else "real parameters only"\n'
        "update:\n    n <- dim(param) - 1\n    for k in range(n):\n"
        "        param <- param - lr * grad\n"
    )
    assert errors_of(spec) == []


def test_matrix_work_per_dimension_runs_on_foreach_as_on_the_for_loop():
    """Shampoo's shape of update (a preconditioner per dimension, an inverse root each): the
    foreach path groups the matrix work per tensor, rank by rank, to the for-loop's bits.
    """
    # (the root's order read off the list, `len(P)`, inside each tensor's product)
    cls = load_spec(
        SHAMPOO_LIKE_LISTS.replace(
            "inverse_root(P[k], 4)", "inverse_root(P[k], 2 * len(P))"
        )
    )
    shapes = [(3,), (2, 3), (2, 2, 2), (4,), (3, 1)]
    _, loop, _ = run_path(cls, "for-loop", shapes, 4)
    _, multi, _ = run_path(cls, "foreach", shapes, 4)
    for k, (a, b) in enumerate(zip(loop, multi)):
        assert torch.equal(a, b), (
            f"parameter {k} of shape {tuple(a.shape)}: foreach differs from the for-loop by "
            f"{(a - b).abs().max().item():.3e}"
        )


def test_a_state_the_step_makes_reaches_the_optimizer_from_each_rank_call():
    """A lazy state is made by the step's first run (`initially`); the foreach path's call for
    one rank makes it in its part of the group's list, which must reach the whole list (and so
    the optimizer's state): it was lost, and the next step made it anew."""
    spec = PER_DIMENSION.replace(
        "update:\n", "state z (z) lazy\nupdate:\n    z <- 0.5 * z  initially 2 * grad\n"
    ).replace("param <- param - lr * grad /", "param <- param - lr * (grad + z) /")
    cls = load_spec(spec)
    opt_loop, loop, _ = run_path(cls, "for-loop", SHAPES, 4, lr=0.05)
    opt_multi, multi, _ = run_path(cls, "foreach", SHAPES, 4, lr=0.05)
    for k, (a, b) in enumerate(zip(loop, multi)):
        assert torch.equal(a, b), (
            f"parameter {k} of shape {tuple(a.shape)}: foreach differs from the for-loop by "
            f"{(a - b).abs().max().item():.3e}"
        )


def test_a_local_made_from_a_dimensions_accumulator_widens_out_of_place():
    """``u <- 2 * A[0]`` holds a (n, 1) vector; ``min(u, A[1])`` is (n, m): it was computed
    in place into u (``out=u``), which raised at the first step of every matrix."""
    spec = PER_DIMENSION.replace("    s <- first\n", "    s <- 2 * first\n")
    cls = load_spec(spec)
    _, loop, _ = run_path(cls, "for-loop", SHAPES, 3, lr=0.05)
    _, multi, _ = run_path(cls, "foreach", SHAPES, 3, lr=0.05)
    for k, (a, b) in enumerate(zip(loop, multi)):
        assert torch.equal(a, b), f"parameter {k} of shape {tuple(a.shape)}"
