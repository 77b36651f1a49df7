"""Matrix functions: ``inverse_root(A, p)`` with states of their own shape, against Shampoo.

``inverse_root(A, p)`` is ``A^(-1/p)`` of a symmetric positive semidefinite matrix, computed by
the generated modules' runtime (generator.runtime.linalg) as pytorch_optimizer computes Shampoo's
preconditioners. The spec below is Shampoo on matrices, written with two states of their own
shape (``eps * eye(size(param, 0))``) instead of specs/shampoo.optim's list per dimension: the
statistics are refreshed every few steps into their inverse fourth roots, the gradient
preconditioned on both sides (``Li @ g @ Ri``). It follows pytorch_optimizer.Shampoo within rtol
1e-10 after each of 20 steps, over a grid of its options and gradients over five orders of
magnitude; unlike the optimizer's spec it declares foreach, whose path equals its for-loop.
"""

from __future__ import annotations

import pytest
import torch

from generator import load_spec
from diagnosed import errors_of

SHAMPOO_ON_MATRICES = """\
optimizer Shampoo
input lr: float = 1e-3
    requires lr >= 0 else "learning rate must be positive. ({lr} > 0)"
input weight_decay: float = 0.0
input weight_decouple: bool = false
input fixed_decay: bool = false
input preconditioning_compute_steps: int = 1
input matrix_eps: float = 1e-6
input maximize: bool = false
input foreach: bool? = none
check dim(param) == 2 else "matrices only"
check not is_complex(param) else "real parameters only"
state group t (step): count <- 0
state L (pre_cond_0) <- matrix_eps * eye(size(param, 0))
state R (pre_cond_1) <- matrix_eps * eye(size(param, 1))
state Li (inv_pre_cond_0) <- zeros(size(param, 0), size(param, 0))
state Ri (inv_pre_cond_1) <- zeros(size(param, 1), size(param, 1))
update group:
    t <- t + 1
update:
    use maximize
    use decay
    L <- L + g @ transpose(g)
    R <- R + transpose(g) @ g
    if t % preconditioning_compute_steps == 0:
        Li <- inverse_root(L, 4)
        Ri <- inverse_root(R, 4)
    d <- Li @ g @ Ri
    param <- param - lr * d
"""

SHAPES = [(4, 3), (2, 5), (3, 3), (6, 2)]
GRID = [
    {},
    {"lr": 1e-2},
    {"lr": 1e-2, "preconditioning_compute_steps": 3},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True, "fixed_decay": True},
    {"lr": 1e-2, "maximize": True},
    {"lr": 1e-2, "matrix_eps": 1e-3},
]
STATES = ("pre_cond_0", "pre_cond_1", "inv_pre_cond_0", "inv_pre_cond_1")


def _run(cls, kwargs, seed=0, steps=20, on_step=None):
    gen = torch.Generator().manual_seed(seed)
    params = [
        torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_()
        for s in SHAPES
    ]
    opt = cls(params, **kwargs)
    for step in range(steps):
        for p in params:
            scale = 10.0 ** float(torch.randint(-3, 2, (), generator=gen))
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64) * scale
        opt.step()
        if on_step is not None:
            on_step(step, params, opt)
    return params, opt


@pytest.mark.parametrize("kwargs", GRID, ids=lambda kw: ",".join(kw) or "defaults")
def test_shampoo_on_matrices_follows_pytorch_optimizer(kwargs):
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    reference = []
    _run(
        pytorch_optimizer.Shampoo,
        kwargs,
        on_step=lambda step, ps, opt: reference.append(
            (
                [p.detach().clone() for p in ps],
                [{k: opt.state[p][k].clone() for k in STATES} for p in ps],
            )
        ),
    )

    def check(step, params, opt):
        theirs, their_states = reference[step]
        for k, (p, q) in enumerate(zip(params, theirs)):
            torch.testing.assert_close(
                p.detach(),
                q,
                rtol=1e-10,
                atol=1e-14,
                msg=lambda m: f"step {step + 1}, parameter {k}: {m}",
            )
            for key in STATES:
                torch.testing.assert_close(
                    opt.state[p][key],
                    their_states[k][key],
                    rtol=1e-10,
                    atol=1e-14,
                    msg=lambda m: f"step {step + 1}, parameter {k}, {key}: {m}",
                )

    _run(load_spec(SHAMPOO_ON_MATRICES), kwargs, on_step=check)


@pytest.mark.parametrize("kwargs", [{"lr": 1e-2, "preconditioning_compute_steps": 2}])
def test_shampoo_on_matrices_foreach_equals_its_for_loop(kwargs):
    cls = load_spec(SHAMPOO_ON_MATRICES)
    loop, _ = _run(cls, {**kwargs, "foreach": False})
    multi, _ = _run(cls, {**kwargs, "foreach": True})
    for k, (a, b) in enumerate(zip(loop, multi)):
        assert torch.equal(
            a, b
        ), f"parameter {k}: foreach differs by {(a - b).abs().max()}"


def test_inverse_root_is_imported_from_the_runtime_not_pasted():
    from generator.api import compile_text

    src = compile_text(SHAMPOO_ON_MATRICES)
    assert "from generator.runtime.linalg import inverse_root" in src
    assert "inv_pre_cond_0.copy_(inverse_root(pre_cond_0, 4))" in src
    assert "def inverse_root" not in src


def _codes(update: str, extra: str = "") -> list[str]:
    text = (
        "optimizer X\ninput lr: float = 1\n"
        f'check dim(param) == 2 else "matrices"\ncheck not is_complex(param) else "real"\n'
        f"{extra}update:\n{update}    param <- param - lr * d\n"
    )
    return errors_of(text)


def test_inverse_root_of_a_matrix_that_is_not_square_is_refused():
    errors = _codes("    d <- inverse_root(grad, 4) @ grad\n")
    assert any(
        e.startswith("E336 `inverse_root` takes a square matrix") for e in errors
    )


def test_inverse_root_has_no_fused_form():
    errors = _codes(
        "    d <- inverse_root(grad @ transpose(grad), 4) @ grad\n",
        "input fused: bool? = none, keyword\n",
    )
    assert any(e.startswith("E326") for e in errors), errors


# ---- one dimension at a time: unfold and mode_product, and a list state made for each dimension ----

RANKS = [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2)]


@pytest.mark.parametrize("shape", RANKS, ids=lambda s: f"rank{len(s)}")
def test_unfold_and_mode_product_are_the_tensor_algebra_of_one_dimension(shape):
    from generator.runtime.linalg import mode_product, unfold

    gen = torch.Generator().manual_seed(len(shape))
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    letters = "abcd"[: len(shape)]
    for k, n in enumerate(shape):
        a = torch.randn(n, n, generator=gen, dtype=torch.float64)
        m = a + a.T  # (the preconditioners are symmetric)
        u = unfold(x, k)
        assert u.shape == (n, x.numel() // n)
        # row i holds the fiber at index i of dimension k, the others in their order
        assert torch.equal(u, x.movedim(k, 0).reshape(n, -1))
        out = letters.replace(letters[k], "z")
        expected = torch.einsum(f"z{letters[k]},{letters}->{out}", m, x)
        torch.testing.assert_close(mode_product(x, m, k), expected, rtol=1e-13, atol=0)


SHAMPOO_LIKE_LISTS = """\
optimizer X
input lr: float = 1
input foreach: bool? = none
check not is_complex(param) else "real"
state P (pre_cond) <- [eye(size(param, k)) for k in range(dim(param))]
update:
    d <- grad
    for k in range(len(P)):
        U <- unfold(grad, k)
        P[k] <- P[k] + U @ transpose(U)
        d <- mode_product(d, inverse_root(P[k], 4), k)
    param <- param - lr * d
"""


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            # (a length the rank alone decides runs on foreach, once per rank:
            # tests/test_rank_loops.py)
            "for k in range(dim(param))]",
            "for k in range(min(dim(param), size(param, 0)))]",
            "E335 a list whose length differs between parameters has no foreach",
        ),
        (
            "range(dim(param))]",
            "range(lr)]",
            "E303 a list is made for each k of `range(n)`",
        ),
        (
            "[eye(size(param, k))",
            "[k * grad",
            "E303 each item is a tensor of its own shape",
        ),
        (
            "range(dim(param))]",
            "range(dim(param))], stored as bfloat16",
            "E206 a list made for each k cannot have `stored as`",
        ),
        (
            "    d <- grad\n",
            "    d <- grad\n    xs <- [grad for k in range(2)]\n    d <- d + xs[0]\n",
            "E507 a list made for each k is the first value of a state",
        ),
    ],
    ids=[
        "foreach",
        "a_count_that_is_not_whole",
        "an_item_not_made_by_a_constructor",
        "a_storage_dtype",
        "in_the_update",
    ],
)
def test_a_list_made_for_each_dimension_misused_is_refused(old, new, expected):
    text = SHAMPOO_LIKE_LISTS if old is None else SHAMPOO_LIKE_LISTS.replace(old, new)
    errors = errors_of(text)
    assert any(e.startswith(expected) for e in errors), (expected, errors)


def test_a_list_made_for_each_dimension_builds_without_foreach():
    from generator.api import compile_text

    src = compile_text(SHAMPOO_LIKE_LISTS.replace("input foreach: bool? = none\n", ""))
    assert (
        'state["pre_cond"] = [\n            torch.eye(p.size(k), dtype=p.dtype, '
        "device=p.device) for k in range(p.dim())\n        ]"
    ) in src
    assert (
        "from generator.runtime.linalg import inverse_root, mode_product, unfold" in src
    )


def test_a_state_that_starts_as_the_gradient_copies_the_raw_first_gradient():
    """`state B <- grad`: made with the gradient the first step sees, before the update reads
    it (pytorch_optimizer's Shampoo keeps its momentum buffer so, even when maximizing).
    """
    cls = load_spec(
        "optimizer X\ninput lr: float = 1\ninput maximize: bool = false\n"
        "state B (buffer) <- grad\nupdate:\n    use maximize\n    B <- B + g\n"
        "    param <- param - lr * B\n"
    )
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = cls([p], maximize=True)
    p.grad = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    opt.step()
    # the buffer started as +grad (raw), then the update added g = -grad
    assert torch.equal(opt.state[p]["buffer"], torch.zeros(3, dtype=torch.float64))
    assert opt.state[p]["buffer"] is not p.grad


# ---- trace, diag, cholesky: torch's, one table entry each ---------------------------------------------

FACTORS = """\
optimizer Factors
input lr: float = 0.1
input foreach: bool? = none
check dim(param) == 2 else "matrices only"
check not is_complex(param) else "real parameters only"
state I (identity) <- eye(size(param, 1))
update:
    S <- transpose(grad) @ grad + I
    L <- cholesky(S)
    E <- diag(diag(S))
    d <- (grad @ L) / (trace(S) + 1) + (grad @ E) / (norm(E) + 1)
    param <- param - lr * d
"""


def _factors_reference(params, grads_per_step, lr):
    params = [p.clone() for p in params]
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            s = (g.T @ g).add_(torch.eye(g.size(1), dtype=g.dtype))
            chol = torch.linalg.cholesky(s)
            e = s.diag().diag()
            d = (g @ chol).div(s.trace().add(1)).add_((g @ e).div(e.norm().add(1)))
            p.add_(d, alpha=-lr)
    return params


@pytest.mark.parametrize("impl", ["for-loop", "foreach"])
def test_trace_diag_and_cholesky_run_on_every_path_as_torch(impl):
    from paths import run_path

    cls = load_spec(FACTORS)
    shapes = [(4, 3), (2, 5), (3, 3)]
    _, params, grads = run_path(cls, impl, shapes, 6, lr=0.05)
    start = run_path(cls, "for-loop", shapes, 0)[1]
    for k, (p, e) in enumerate(zip(params, _factors_reference(start, grads, 0.05))):
        torch.testing.assert_close(
            p, e, rtol=1e-13, atol=0, msg=lambda m: f"{impl}, parameter {k}: {m}"
        )


def test_trace_diag_and_cholesky_are_spelled_as_torch_spells_them():
    from generator.api import compile_text

    src = compile_text(FACTORS)
    assert "torch.linalg.cholesky(S)" in src and "S.trace()" in src
    assert "S.diag().diag()" in src


@pytest.mark.parametrize(
    "expr, code",
    [
        ("cholesky(grad)", "E336 `cholesky` takes a square matrix"),
        ("grad * trace(grad)", "E336 `trace` takes a square matrix"),
    ],
)
def test_a_factor_of_a_matrix_that_is_not_square_is_refused(expr, code):
    errors = _codes(f"    d <- {expr}\n")
    assert any(e.startswith(code) for e in errors), errors
