"""Lamb (specs/lamb.optim) against pytorch_optimizer.Lamb.

The step count is the group's (``group['step']``), as the reference keeps it: the grid runs on
the harness's problem unchanged (a parameter without a gradient on steps 0, 4 and 5).
"""

from __future__ import annotations

import pytest
import torch

import paper_reference
from paper_reference import (
    assert_implementations_agree,
    assert_matches_reference,
    assert_same_signature,
    assert_same_validation_errors,
    generated,
    reference,
)

GRID = [
    {},
    {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-8},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-2, "grad_averaging": False},
    {"lr": 1e-2, "adam": True, "weight_decay": 0.1},
    {"lr": 1e-2, "rectify": True},
    {"lr": 1e-2, "rectify": True, "degenerated_to_sgd": True, "weight_decay": 0.1},
    {
        "lr": 1e-2,
        "rectify": True,
        "degenerated_to_sgd": True,
        "n_sma_threshold": 8,
        "weight_decay": 0.1,
        "weight_decouple": False,
    },
    {"lr": 1e-2, "rectify": True, "adam": True, "n_sma_threshold": 7},
    {"lr": 1e-2, "max_grad_norm": 2.0, "maximize": True},
    {"lr": 1e-2, "foreach": False, "weight_decay": 0.1, "weight_decouple": False},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_lamb_matches_pytorch_optimizer(kwargs):
    assert_matches_reference(
        "lamb",
        "Lamb",
        kwargs,
        state_keys={"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"},
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.1},
        {"lr": 0.1, "weight_decay": 0.1, "weight_decouple": False, "foreach": False},
        {"lr": 0.1, "rectify": True, "degenerated_to_sgd": True},
    ],
    ids=str,
)
def test_lamb_norm_edge_cases_match_pytorch_optimizer(kwargs):
    """The trust ratio's edge cases: a zero matrix (ratio 1), a matrix whose norm is clamped
    to 10, a zero gradient (a zero update: ratio 1), as the reference handles them."""
    runs = []
    for cls in (generated("lamb", "Lamb"), reference("Lamb")):
        gen = torch.Generator().manual_seed(0)
        params = [
            torch.zeros(3, 2, dtype=torch.float64, requires_grad=True),
            torch.full((4, 4), 10.0, dtype=torch.float64, requires_grad=True),
            torch.ones(2, 2, dtype=torch.float64, requires_grad=True),
        ]
        opt = cls(params, **kwargs)
        for _ in range(8):
            for p in params[:2]:
                p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            params[2].grad = torch.zeros(2, 2, dtype=torch.float64)
            opt.step()
        runs.append([p.detach().clone() for p in params])
    for ours, theirs in zip(*runs):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": 0.1}, {"lr": 0.1, "rectify": True, "degenerated_to_sgd": True}],
    ids=str,
)
def test_lamb_complex_parameters_match_pytorch_optimizer(kwargs):
    """Complex parameters: the reference runs on their real views (its per-parameter path)."""
    runs = []
    for cls in (generated("lamb", "Lamb"), reference("Lamb")):
        gen = torch.Generator().manual_seed(1)
        params = [
            torch.randn(s, dtype=torch.complex128, generator=gen).requires_grad_()
            for s in ((3, 2), (4,))
        ]
        opt = cls(params, **kwargs)
        for _ in range(8):
            for p in params:
                p.grad = torch.randn(p.shape, dtype=torch.complex128, generator=gen)
            opt.step()
        runs.append([p.detach().clone() for p in params])
    for ours, theirs in zip(*runs):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-15)


def test_lamb_step_count_is_the_groups_as_in_the_reference():
    """``group['step']`` after every step equals the reference's; no per-parameter ``step``."""
    steps = []
    for cls in (generated("lamb", "Lamb"), reference("Lamb")):
        _, opt = paper_reference._run(cls, {"lr": 1e-2}, torch.float64, 0, 6)
        steps.append([g["step"] for g in opt.param_groups])
        assert all("step" not in s for s in opt.state.values())
    assert steps[0] == steps[1] == [6, 6]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
        {"lr": 1e-2, "rectify": True},
        {"lr": 1e-2, "rectify": True, "degenerated_to_sgd": True, "adam": True},
    ],
    ids=str,
)
def test_lamb_foreach_and_fused_equal_the_for_loop(kwargs):
    # fused: the trust ratio's norms are reductions over the whole tensor, in the kernel
    assert_implementations_agree("lamb", "Lamb", kwargs)


def test_lamb_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("lamb", "Lamb")
    assert_same_validation_errors(
        "lamb",
        "Lamb",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, 1.0)},
            {"weight_decay": -0.1},
            {"max_grad_norm": -1.0},
            {"eps": -1e-6},
        ],
    )


def test_lamb_rejects_pre_norm():
    reference("Lamb")([torch.zeros(2, requires_grad=True)], pre_norm=True)
    with pytest.raises(ValueError, match="pre_norm=True is not supported"):
        generated("lamb", "Lamb")([torch.zeros(2, requires_grad=True)], pre_norm=True)
