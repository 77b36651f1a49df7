"""Shapes checked at build time: a product or an elementwise operation that cannot run is refused.

The checker shapes the tensors of a per-parameter update symbolically (generator.check.shapes):
the parameter's shape is ``(size(param, 0), size(param, 1))`` where a requirement or a branch
says it is a matrix, a transpose swaps the two, ``@`` follows torch's rules. A spec whose product
would fail at the first step (or run only for square parameters) is refused with both shapes
(E336); where a shape is not known, nothing is claimed, so every spec that runs still builds.
"""

from __future__ import annotations

import pytest
import torch

from diagnosed import errors_of

MATRICES = 'check dim(param) == 2 else "matrices"\n'
REAL = 'check not is_complex(param) else "real parameters"\n'


def _spec(checks: str, update: str, states: str = "") -> str:
    return (
        f"optimizer X\ninput lr: float = 1\n{checks}{REAL}{states}update:\n{update}"
        "    param <- param - lr * x\n"
    )


M, N = "size(param, 0)", "size(param, 1)"

REFUSED = [
    (
        "a_product_whose_inner_dimensions_differ",
        MATRICES,
        "    x <- grad @ grad\n",
        "",
        f"E336 the product of shapes ({M}, {N}) and ({M}, {N}) is not defined: "
        f"{N} columns against {M} rows",
    ),
    (
        "a_statistic_of_another_shape_stored_in_a_state",
        MATRICES,
        "    m <- grad @ transpose(grad)\n    x <- m\n",
        "state m <- 0\n",
        f"E336 `m` has the parameter's shape ({M}, {N}); the value has shape ({M}, {M})",
    ),
    (
        "an_elementwise_sum_of_a_matrix_and_its_transpose",
        MATRICES,
        "    x <- grad + transpose(grad)\n",
        "",
        f"E336 shapes ({M}, {N}) and ({N}, {M}) do not broadcast",
    ),
    (
        "a_product_under_a_branch_on_the_rank",
        "",
        "    x <- grad\n    if dim(param) == 2:\n        x <- grad @ grad\n",
        "",
        "E336 the product of shapes",
    ),
    (
        "a_product_of_a_local_named_after_a_size",
        MATRICES,
        "    rows <- size(param, 0)\n    y <- transpose(grad) @ grad\n"
        "    x <- grad @ (y + rows)\n    x <- x @ grad\n",
        "",
        "E336 the product of shapes",
    ),
]


@pytest.mark.parametrize(
    "checks, update, states, expected",
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_a_product_that_cannot_run_is_refused_with_both_shapes(
    checks, update, states, expected
):
    errors = errors_of(_spec(checks, update, states))
    assert any(e.startswith(expected) for e in errors), (expected, errors)


ACCEPTED = [
    # Muon's Gram matrix and its product with the matrix
    ("a_gram_matrix", MATRICES, "    x <- grad @ transpose(grad) @ grad\n"),
    # a rank no requirement decides: nothing is claimed
    ("an_unknown_rank", "", "    x <- grad @ grad\n"),
    # a shape that differs between the branches is not known after them
    (
        "a_transpose_under_a_condition",
        MATRICES,
        "    X <- grad\n    if size(grad, 0) > size(grad, 1):\n        X <- transpose(X)\n"
        "    x <- grad * norm(X @ X)\n",
    ),
    # a reduction along a dimension keeps it, of size 1: it broadcasts back
    ("a_reduction_along_a_dimension", MATRICES, "    x <- grad / norm(grad, 1)\n"),
    (
        "a_vector_times_itself",
        'check dim(param) == 1 else "vectors"\n',
        "    x <- (grad @ grad) * grad\n",
    ),
]


@pytest.mark.parametrize(
    "checks, update",
    [case[1:] for case in ACCEPTED],
    ids=[case[0] for case in ACCEPTED],
)
def test_a_product_that_runs_is_accepted(checks, update):
    assert errors_of(_spec(checks, update)) == []


def test_max_except_keeps_one_dimension_of_a_matrix():
    """``max_except(g, 0)`` of a matrix is a column: stored in a state shaped like the
    parameter it broadcasts (it builds); added to a statistic of shape (size(param, 1),
    size(param, 1)), a column of size(param, 0) rows is refused."""
    base = (
        'optimizer X\ninput lr: float = 0.1\ncheck dim(param) == 2 else "matrices"\n'
        'check not is_complex(param) else "real"\n'
        "state L (left) <- eye(size(param, 1))\nstate m (m) <- 0\nupdate:\n"
    )
    step = "    param <- param - lr * m\n"
    assert errors_of(base + "    m <- m + max_except(grad, 0)\n" + step) == []
    errors = errors_of(base + "    L <- L + max_except(grad, 0)\n" + step)
    assert any(e.startswith("E336") for e in errors), errors


# A local holding a value of another shape than the parameter's (a reduction along one
# dimension, an item of a list made for each dimension) took in-place updates whose other
# operand broadcast it wider: `torch.minimum(u, acc[1], out=u)` with u of (3, 1) and the
# result (3, 4) raised "output with shape [3, 1] doesn't match the broadcast shape [3, 4]".
WIDENED = [
    (
        "r <- mean(grad, 0)\n    r <- r + mean(grad, 1)\n    param <- param - lr * r\n",
        lambda g: g.mean(0, keepdim=True) + g.mean(1, keepdim=True),
    ),
    (
        "r <- 2 * mean(grad, 1)\n    r <- min(r, mean(grad, 0))\n"
        "    param <- param - lr * r\n",
        lambda g: torch.minimum(2 * g.mean(1, keepdim=True), g.mean(0, keepdim=True)),
    ),
]


@pytest.mark.parametrize("impl", ["for-loop", "foreach"])
@pytest.mark.parametrize("body, step", WIDENED, ids=["sum", "minimum"])
def test_a_local_of_another_shape_is_widened_out_of_place(body, step, impl):
    from generator import load_spec

    cls = load_spec(
        "optimizer Widened\ninput lr: float = 0.1\ninput foreach: bool? = none\n"
        'check not is_complex(param) else "real"\ncheck dim(param) == 2 else "matrices"\n'
        "update:\n    " + body
    )
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    start = p.detach().clone()
    opt = cls([p], foreach=impl == "foreach")
    p.grad = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    opt.step()
    assert torch.equal(p.detach(), start.add(step(p.grad), alpha=-0.1))
