"""Matrix functions: ``inverse_root(A, p)`` with states of their own shape, against Shampoo.

``inverse_root(A, p)`` is ``A^(-1/p)`` of a symmetric positive semidefinite matrix, computed by
the generated modules' runtime (generator.runtime.linalg) as pytorch_optimizer computes Shampoo's
preconditioners. The spec below is Shampoo on matrices: two statistics of their own shape
(``eps * eye(size(param, 0))``), refreshed every few steps into their inverse fourth roots, the
gradient preconditioned on both sides. On matrices (pytorch_optimizer's Shampoo takes any rank; a
spec of the optimizer itself needs the per-dimension loop the language does not have yet) it
follows pytorch_optimizer.Shampoo within rtol 1e-10 after each of 20 steps, over a grid of its
options and gradients over five orders of magnitude; its foreach path equals its for-loop.
"""

from __future__ import annotations

import pytest
import torch

from generator import load_spec
from generator.api import check_text
from generator.language.diagnostics import SpecError

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
                atol=1e-12,
                msg=lambda m: f"step {step + 1}, parameter {k}: {m}",
            )
            for key in STATES:
                torch.testing.assert_close(
                    opt.state[p][key],
                    their_states[k][key],
                    rtol=1e-10,
                    atol=1e-12,
                    msg=lambda m: f"step {step + 1}, parameter {k}, {key}: {m}",
                )

    _run(load_spec(SHAMPOO_ON_MATRICES), kwargs, on_step=check)


@pytest.mark.parametrize("kwargs", [{"lr": 1e-2, "preconditioning_compute_steps": 2}])
def test_shampoo_on_matrices_foreach_equals_its_for_loop(kwargs):
    cls = load_spec(SHAMPOO_ON_MATRICES)
    loop, _ = _run(cls, {**kwargs, "foreach": False})
    multi, _ = _run(cls, {**kwargs, "foreach": True})
    for k, (a, b) in enumerate(zip(loop, multi)):
        assert torch.equal(a, b), f"parameter {k}: foreach differs by {(a - b).abs().max()}"


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
    try:
        check_text(text)
    except SpecError as e:
        return [f"{d.code} {d.message}" for d in e.diagnostics]
    return []


def test_inverse_root_of_a_matrix_that_is_not_square_is_refused():
    errors = _codes("    d <- inverse_root(grad, 4) @ grad\n")
    assert any(e.startswith("E336 `inverse_root` takes a square matrix") for e in errors)


def test_inverse_root_has_no_fused_form():
    errors = _codes(
        "    d <- inverse_root(grad @ transpose(grad), 4) @ grad\n",
        "input fused: bool? = none, keyword\n",
    )
    assert any(e.startswith("E326") for e in errors), errors
