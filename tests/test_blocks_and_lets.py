"""Blocks, merged shapes and `let`: the language's pieces of Scalable Shampoo, each pinned.

specs/scalable_shampoo.optim is checked against pytorch_optimizer.ScalableShampoo in the paper
suite. Here each piece is checked against its own definition: ``merge_dims`` against the
reference's examples of shape interpretation, ``block`` / ``put_block`` / ``block_count`` as a
tiling of the tensor in the reference's order, ``newton_inverse_root`` against the inverse root
computed through an eigendecomposition, and ``let`` as the same spec with its values written
out: computed once where a parameter's states are made and where its update starts, never
assigned, refused with a located error where it cannot be.
"""

from __future__ import annotations

import pytest
import torch

from diagnosed import errors_of
from generator import load_spec
from generator.api import compile_text
from generator.commands.fmt import format_text
from generator.runtime.linalg import (
    block,
    block_count,
    merge_dims,
    newton_inverse_root,
    one_shape,
    put_block,
)


def run(cls, shapes, steps, seed=0):
    """(optimizer, parameters, gradients of each step) after ``steps`` float64 steps of the
    for-loop from seeded parameters of ``shapes``."""
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    start = [p.clone() for p in params]
    opt = cls([p.requires_grad_() for p in params])
    history = []
    for _ in range(steps):
        grads = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        history.append(grads)
    return opt, start, [p.detach() for p in params], history


# (shape, limit, merged shape): the first two are the examples of pytorch_optimizer's
# merge_small_dims docstring; one merged dimension is a vector here (the reference says [1])
@pytest.mark.parametrize(
    "shape,limit,merged",
    [
        ((1, 2, 512, 1, 2048, 1, 3, 4), 1024, (1024, 2048, 12)),
        ((1, 2, 768, 1, 2048), 1024, (2, 768, 2048)),
        ((1000,), 512, (1, 1000)),  # a dimension over the limit closes an empty run: 1
        ((1000, 20), 512, (1, 1000, 20)),
        ((10, 20), 512, (200,)),
        ((100, 20), 512, (100, 20)),
        ((3,), 512, (3,)),
        ((), 512, (1,)),
    ],
)
def test_merge_dims_merges_neighbouring_dimensions_while_their_product_fits(
    shape, limit, merged
):
    x = torch.arange(torch.Size(shape).numel(), dtype=torch.float64).reshape(shape)
    got = merge_dims(x, limit)
    assert tuple(got.shape) == merged, f"{shape} at {limit}: {tuple(got.shape)}"
    assert torch.equal(got.reshape(-1), x.reshape(-1)), "the elements moved"


@pytest.mark.parametrize(
    "shape,size", [((5, 4), 2), ((7, 3, 5), 3), ((9,), 4), ((3, 3), 0), ((), 2)]
)
def test_blocks_tile_the_tensor_with_the_last_dimension_running_fastest(shape, size):
    x = torch.randn(shape, dtype=torch.float64)
    count = block_count(x, size)
    expected = 1
    for d in shape:
        expected *= 1 if size <= 0 or size >= d else -(-d // size)
    assert count == expected, f"{shape} in blocks of {size}: {count} blocks"
    rebuilt = torch.zeros_like(x)
    for b in range(count):
        piece = block(x, b, size)
        assert piece.data_ptr() >= x.data_ptr(), "a block is a view of the tensor"
        assert all(
            n <= max(size, 1) or size <= 0 or n == d for n, d in zip(piece.shape, shape)
        )
        put_block(rebuilt, b, size, piece, out=rebuilt)
    assert torch.equal(rebuilt, x), f"the blocks of {shape} do not cover it"
    if shape == (
        5,
        4,
    ):  # block 1: rows 0-1, columns 2-3; block 2: rows 2-3, columns 0-1
        assert torch.equal(block(x, 1, 2), x[0:2, 2:4])
        assert torch.equal(block(x, 2, 2), x[2:4, 0:2])
        assert torch.equal(block(x, 5, 2), x[4:5, 2:4])


def test_put_block_out_of_place_leaves_its_argument_as_it_was():
    x = torch.zeros(4, 4)
    y = put_block(x, 3, 2, torch.ones(2, 2))
    assert torch.equal(x, torch.zeros(4, 4)), "put_block changed its argument"
    assert y[2:, 2:].eq(1).all() and y[:2].eq(0).all()


def test_one_shape_says_whether_a_list_holds_one_shape():
    assert one_shape([torch.zeros(2, 2), torch.ones(2, 2)])
    assert not one_shape([torch.zeros(2, 2), torch.ones(3, 3)])
    assert not one_shape([]), "an empty list (the reference's filtered shapes) is False"


@pytest.mark.parametrize("n,p", [(2, 2), (5, 4), (12, 6), (1, 4)])
def test_newton_inverse_root_is_the_regularized_inverse_root(n, p):
    gen = torch.Generator().manual_seed(n * p)
    a = torch.randn(n, 2 * n, generator=gen, dtype=torch.float64)
    matrix = a @ a.T + 1e-3 * torch.eye(n, dtype=torch.float64)
    ridge = 1e-6
    values, vectors = torch.linalg.eigh(matrix)
    top = values.max()
    regularized = values + (ridge * top if n > 1 else ridge * values)
    exact = (vectors * regularized.pow(-1.0 / p)) @ vectors.T
    torch.manual_seed(0)
    got = newton_inverse_root(matrix, p, ridge)
    # (the iteration stops once ‖M - I‖∞ ≤ 1e-3: the root is as close as that allows)
    error = ((got - exact).abs().max() / exact.abs().max()).item()
    assert error < 1e-3, f"{n} x {n}, p = {p}: relative error {error:.2e}"
    torch.manual_seed(0)
    assert torch.equal(newton_inverse_root(matrix, p, ridge), got), (
        "the power iteration's start is drawn from torch's generator: the same seed, "
        "the same root"
    )


# ---- let ------------------------------------------------------------------------------------

WITH_LET = """\
optimizer Blocked
input lr: float = 0.1
input n: int = 2 "block size"
check not is_complex(param) else "no complex parameters"
let X <- merge_dims(param, 6)
let order <- dim(X)
let big <- numel(param) > 3
state S (stats) <- [eye(size(block(X, j // order, n), j % order)) for j in range(block_count(X, n) * order if big else 0)]
update:
    G <- reshape_as(grad, X)
    D <- 0 * G
    for b in range(block_count(G, n)):
        B <- block(G, b, n)
        for k in range(order):
            if big:
                S[b * order + k] <- S[b * order + k] + gram(B, k)
                B <- contract_first(B, S[b * order + k])
            else:
                B <- rotate(B)
        D <- put_block(D, b, n, B)
    param <- param - lr * reshape_as(D, param)
"""

WRITTEN_OUT = """\
optimizer Blocked
input lr: float = 0.1
input n: int = 2 "block size"
check not is_complex(param) else "no complex parameters"
state S (stats) <- [eye(size(block(merge_dims(param, 6), j // dim(merge_dims(param, 6)), n), j % dim(merge_dims(param, 6)))) for j in range(block_count(merge_dims(param, 6), n) * dim(merge_dims(param, 6)) if numel(param) > 3 else 0)]
update:
    X <- merge_dims(param, 6)
    order <- dim(X)
    G <- reshape_as(grad, X)
    D <- 0 * G
    for b in range(block_count(G, n)):
        B <- block(G, b, n)
        for k in range(order):
            if numel(param) > 3:
                S[b * order + k] <- S[b * order + k] + gram(B, k)
                B <- contract_first(B, S[b * order + k])
            else:
                B <- rotate(B)
        D <- put_block(D, b, n, B)
    param <- param - lr * reshape_as(D, param)
"""

SHAPES = [(5, 4), (3,), (2, 3, 4), ()]


def test_a_let_runs_as_its_value_written_out_where_it_is_read():
    runs = []
    for text in (WITH_LET, WRITTEN_OUT):
        opt, _, params, _ = run(load_spec(text), SHAPES, 4)
        runs.append((opt, params))
    for k, (a, b) in enumerate(zip(runs[0][1], runs[1][1])):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"parameter {k} differs")
    stats = [
        len(runs[0][0].state[p]["stats"]) for p in runs[0][0].param_groups[0]["params"]
    ]
    # (5 x 4 and 2 x 3 x 4 merge to 5 x 4 and 6 x 4: 6 blocks of 2 x 2, two dimensions each)
    assert stats == [12, 0, 12, 0], f"statistics per parameter: {stats}"


def test_a_let_is_computed_once_where_the_states_are_made_and_where_the_update_starts():
    src = compile_text(WITH_LET)
    init = src[src.index("def _init_state") : src.index("def _init_group")]
    assert "X = merge_dims(p, 6)" in init and "order = X.dim()" in init, init
    assert "big = p.numel() > 3" in init, init
    assert 'block(X, j // order, group["n"]).size(j % order)' in init, init
    assert init.count("merge_dims") == 1, "the states repeat the let's value"
    body = src[src.index("def _single_tensor_blocked") :]
    assert "X = merge_dims(param, 6)" in body
    # (a condition is written out in the update: an update keeps no true-or-false values)
    assert "big =" not in body and "if param.numel() > 3:" in body
    # the blocks are put back in place into the update's own tensor
    assert "put_block(D, b, n, B, out=D)" in body


def test_a_let_the_states_alone_read_is_not_computed_by_the_update():
    text = (
        "optimizer X\ninput lr: float = 0.1\n"
        'check not is_complex(param) else "no complex parameters"\n'
        "let P <- merge_dims(param, 4)\n"
        "state S (S) <- [eye(size(P, k)) for k in range(dim(P))]\n"
        "update:\n    param <- param - lr * grad\n"
        "    for k in range(len(S)):\n        S[k] <- S[k] * 2\n"
    )
    src = compile_text(text)
    assert "P = merge_dims(p, 4)" in src
    assert "merge_dims(param" not in src, "the update computes a value it never reads"


def test_a_let_line_keeps_its_layout_under_fmt():
    text = WITH_LET.replace(
        "let X <- merge_dims(param, 6)", "let   X<-merge_dims( param,6 )"
    )
    assert format_text(text) == WITH_LET


HEAD = "optimizer X\ninput lr: float = 0.1\n"
EACH = "update:\n    param <- param - lr * grad * k\n"


@pytest.mark.parametrize(
    "text,code,words",
    [
        (
            HEAD
            + "let k <- dim(param)\nupdate:\n    k <- 2\n    param <- param - lr * grad * k\n",
            "E317",
            "cannot assign to `k`, a `let` value",
        ),
        (HEAD + "let lr <- dim(param)\n" + EACH, "E207", "`lr` is declared twice"),
        (
            HEAD + "let k <- dim(param)\nlet k <- 2\n" + EACH,
            "E207",
            "`k` is declared twice",
        ),
        (
            HEAD + "let lambda <- dim(param)\n" + EACH.replace("k", "lambda"),
            "E201",
            "Python keyword",
        ),
        (
            HEAD + "let k <- 2\nupdate flat:\n    param <- param - lr * grad\n",
            "E329",
            "a `let` is a value of each parameter",
        ),
        (HEAD + "let k <- dim(grad) + j\n" + EACH, "E306", "undefined name `j`"),
        (HEAD + "let j <- dim(param)\n" + EACH.replace("k", "2"), "E402", "never used"),
    ],
    ids=[
        "assigned",
        "named_like_an_input",
        "twice",
        "python_keyword",
        "no_per_parameter_update",
        "undefined",
        "never_read",
    ],
)
def test_a_let_that_cannot_be_is_a_located_error(text, code, words):
    errors = errors_of(text)
    assert errors and errors[0].split()[0] == code, errors
    assert words in errors[0], errors


def test_a_choice_of_tensors_by_a_counter_is_an_if_around_the_assignment():
    # (it was an internal error: only choices by the hyperparameters were split)
    text = """\
optimizer Choice
input lr: float = 0.1
state group t (step): count <- 0
state m (m) <- 0
update group:
    t <- t + 1
update:
    m <- 0.5 * m + grad
    u <- m if t >= 2 else grad
    param <- param - lr * u
"""
    src = compile_text(text)
    assert "u = exp_avg if" in src or "u = m if step >= 2 else grad" in src, src
    _, (start,), (end,), grads = run(load_spec(text), [(3,)], 3)
    m = torch.zeros(3, dtype=torch.float64)
    for t, (g,) in enumerate(grads, start=1):
        m = 0.5 * m + g
        start = start - 0.1 * (m if t >= 2 else g)
    torch.testing.assert_close(end, start, rtol=1e-15, atol=0)


def test_the_algorithm_box_shows_a_let_once_among_the_first_values():
    from generator.api import check_text
    from generator.emit.docs.latex import algorithm_box

    box = algorithm_box(check_text(WITH_LET))
    init = next(line for line in box.splitlines() if r"\textbf{initialize}" in line)
    assert r"X \leftarrow \operatorname{merge}_{6}" in init, init
    # the states read it by name, and a conditional length is parenthesised before `- 1`
    assert (
        r"\operatorname{block}_{n}\left(X, j \mathbin{//} \textit{order}\right)" in init
    )
    assert r"\textbf{ else } 0\right) - 1}" in init, init
    body = box[box.index(r"\textbf{for} \: t=1") :]
    assert r"X \leftarrow" not in body, "the update repeats the let"
