"""States of their own shape: ``state L <- eps * eye(size(param, 0))``, Shampoo's statistics.

A state may be a tensor of a shape other than the parameter's, made by a constructor (``eye(n)``,
``zeros(d0, ...)``, ``ones(d0, ...)``, perhaps times a number) when the state is: its dimensions
are whole numbers the inputs and the parameter's shape decide, it lives on the parameter's device
in its dtype, the shape checker knows its shape (a product stored in it with another shape is
E336), and it runs on the for-loop and foreach paths, to the last bit against plain torch written
from the algorithm; fused is refused at it (E335), complex parameters must be refused (E327),
and misuse is refused with its rule.
"""

from __future__ import annotations

import copy

import pytest
import torch

from generator import load_spec
from generator.api import check_text
from generator.language.diagnostics import SpecError
from diagnosed import errors_of
from paths import run_path

SHAMPOO_LIKE = """\
optimizer ShampooLike
input lr: float = 0.1
input eps: float = 1e-4
input ones_at: int = 3
input foreach: bool? = none
check dim(param) == 2 else "matrices only"
check not is_complex(param) else "real parameters only"
state L (left) <- eps * eye(size(param, 0))
state R (right) <- eye(size(param, 1)) * eps
state S (seen) <- zeros(1, size(param, 1))
state T (total) <- 2 * ones(ones_at, size(param, 0))
update:
    L <- L + grad @ transpose(grad)
    R <- R + transpose(grad) @ grad
    S <- S + norm(grad, 0)
    T <- T + 1
    d <- grad / (sqrt(norm(L) * norm(R)) + eps)
    param <- param - lr * d
"""

SHAPES = [(4, 3), (2, 5), (3, 3)]


def _reference(params, grads_per_step, lr, eps, ones_at):
    """Plain torch, from the algorithm."""
    params = [p.clone() for p in params]
    states = [
        (
            torch.eye(p.size(0), dtype=p.dtype).mul_(eps),
            torch.eye(p.size(1), dtype=p.dtype).mul_(eps),
            torch.zeros(1, p.size(1), dtype=p.dtype),
            torch.full((ones_at, p.size(0)), 2.0, dtype=p.dtype),
        )
        for p in params
    ]
    for grads in grads_per_step:
        for p, g, (left, right, seen, total) in zip(params, grads, states):
            left.addmm_(g, g.T)
            right.addmm_(g.T, g)
            seen.add_(g.norm(dim=0, keepdim=True))
            total.add_(1)
            d = g.div(left.norm().mul_(right.norm()).sqrt_().add_(eps))
            p.add_(d, alpha=-lr)
    return params, states


@pytest.mark.parametrize("impl", ["for-loop", "foreach"])
def test_states_of_their_own_shape_run_on_every_path_as_plain_torch(impl):
    cls = load_spec(SHAMPOO_LIKE)
    opt, params, grads = run_path(cls, impl, SHAPES, 8, lr=0.05, eps=1e-3, ones_at=2)
    start = run_path(cls, "for-loop", SHAPES, 0)[1]
    expected, states = _reference(start, grads, 0.05, 1e-3, 2)
    for k, (p, e) in enumerate(zip(params, expected)):
        assert torch.equal(p, e), (
            f"{impl}, parameter {k}: differs from plain torch by "
            f"{(p - e).abs().max().item():.3e}"
        )
    held = opt.param_groups[0]["params"]
    for k, (p, theirs) in enumerate(zip(held, states)):
        mine = [opt.state[p][key] for key in ("left", "right", "seen", "total")]
        for key, a, b in zip(("left", "right", "seen", "total"), mine, theirs):
            assert a.shape == b.shape and a.dtype == p.dtype, (key, a.shape, b.shape)
            assert torch.equal(a, b), f"{impl}, parameter {k}, state {key!r} differs"


def test_a_state_of_its_own_shape_survives_a_state_dict_round_trip():
    cls = load_spec(SHAMPOO_LIKE)
    opt, params, _ = run_path(cls, "for-loop", SHAPES, 3)
    held = opt.param_groups[0]["params"]
    saved = copy.deepcopy(opt.state_dict())
    fresh = cls([p.detach().clone().requires_grad_() for p in held])
    fresh.load_state_dict(saved)
    for p, q in zip(held, fresh.param_groups[0]["params"]):
        assert opt.state[p]["left"].shape == (p.size(0), p.size(0))
        assert torch.equal(opt.state[p]["left"], fresh.state[q]["left"])


def test_a_state_of_its_own_shape_is_made_in_the_parameters_dtype():
    cls = load_spec(SHAMPOO_LIKE)
    p = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    opt = cls([p], eps=0.5)
    p.grad = torch.ones_like(p)
    opt.step()
    left = opt.state[p]["left"]
    assert left.dtype == torch.float64 and left.device == p.device
    assert torch.equal(left, 0.5 * torch.eye(3, dtype=torch.float64) + 2.0)


def _errors(states: str, update: str = "    param <- param - lr * grad\n", extra=""):
    text = (
        f"optimizer X\ninput lr: float = 1\ninput n: int = 3\n{extra}"
        'check not is_complex(param) else "real"\n'
        f"{states}update:\n{update}"
    )
    return errors_of(text)


@pytest.mark.parametrize(
    "states, update, extra, expected",
    [
        (
            "state L <- eye(size(param, 0))\n",
            "    L <- L + grad\n    param <- param - lr * grad\n",
            'check dim(param) == 2 else "matrices"\n',
            "E336 shapes (size(param, 0), size(param, 0)) and (size(param, 0), "
            "size(param, 1)) do not broadcast",
        ),
        (
            "state L <- eye(size(param, 0))\n",
            "    L <- grad @ transpose(L)\n    param <- param - lr * grad\n",
            'check dim(param) == 2 else "matrices"\n',
            "E336 the product of shapes",
        ),
        (
            "state L <- eye(lr)\n",
            "    param <- param - lr * L[0]\n",
            "",
            "E303 a dimension",
        ),
        ("state L <- eye(2, 3)\n", None, "", "E311 `eye` takes 1 dimension, got 2"),
        (
            "state L <- grad * eye(n)\n",
            None,
            "",
            "E303 a state's initial value cannot use `grad`",
        ),
        (
            "state L <- eye(n), eager\n",
            None,
            "",
            "E206 a state of its own shape cannot",
        ),
        ("", "    x <- eye(n)\n    param <- param - lr * x\n", "", "E310 `eye` makes"),
        (
            "state L <- eye(n)\n",
            None,
            "input fused: bool? = none, keyword\n",
            "E335 a state of its own shape has no fused form",
        ),
    ],
    ids=[
        "its_shape_against_the_parameters",
        "a_product_of_the_wrong_order",
        "a_dimension_that_is_not_a_whole_number",
        "eye_of_two_dimensions",
        "a_tensor_times_the_constructor",
        "eager",
        "a_constructor_in_the_update",
        "fused",
    ],
)
def test_a_state_of_its_own_shape_misused_is_refused(states, update, extra, expected):
    if update is None:
        update = "    param <- param - lr * grad\n"
    errors = _errors(states, update, extra)
    assert any(e.startswith(expected) for e in errors), (expected, errors)


def test_a_value_stored_with_a_broadcast_shape_is_refused():
    """`S <- S + norm(grad, 0)` on a vector state: the sum is (1, n), which the state's (n,)
    cannot hold in place (torch fails at the first step)."""
    errors = _errors(
        "state S <- zeros(size(param, 1))\n",
        "    S <- S + norm(grad, 0)\n    param <- param - lr * grad\n",
        'check dim(param) == 2 else "matrices"\n',
    )
    assert (
        "E336 `S` has its own shape (size(param, 1),); the value has shape "
        "(1, size(param, 1))"
    ) in errors, errors


def test_a_state_shaped_from_the_parameter_refuses_complex_parameters_unless_checked():
    text = (
        "optimizer X\ninput lr: float = 1\nstate L <- eye(size(param, 0))\n"
        "update:\n    param <- param - lr * grad\n"
    )
    with pytest.raises(SpecError) as info:
        check_text(text)
    assert [d.code for d in info.value.diagnostics] == ["E327"]


def test_a_value_shaped_like_the_parameter_before_the_branch_that_decides_its_rank():
    """`x <- grad` before `if dim(param) == 2:` is the parameter's shape, whatever its rank;
    inside the branch it is a matrix's, which the state of its own shape cannot hold (the
    fuzzer's program 3076, shrunk: it built, and failed at the first step)."""
    errors = _errors(
        "state sm <- 0.5 * eye(size(param, 0)) if dim(param) == 2\n",
        "    x <- grad\n    if dim(param) == 2:\n        sm <- x\n    param <- param - lr * x\n",
    )
    assert (
        "E336 `sm` has its own shape (size(param, 0), size(param, 0)); the value has "
        "shape (size(param, 0), size(param, 1))"
    ) in errors, errors


def test_the_documentation_counts_a_state_of_its_own_shape_in_its_own_elements():
    """Shampoo's page: its lists made for each dimension hold the sum over k of
    size(param, k)^2 elements, not the parameter's memory (only its momentum buffer is).
    """
    from pathlib import Path

    page = (
        Path(__file__).resolve().parents[1] / "generated/docs/shampoo.md"
    ).read_text()
    assert (
        "| `pre_cond` | list of tensors, one per k | "
        "`[matrix_eps * eye(size(param, k)) for k in range(dim(param))]` | "
        "sum over k < dim(param) of size(param, k)^2 elements |"
    ) in page
    assert "Full-size tensor states: 1 × the parameter's memory." in page
    assert r"P_{t-1}[k]^{-\frac{1}{2 \cdot \textit{order}}}" in page
