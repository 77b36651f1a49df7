"""LARS (specs/lars.optim) against pytorch_optimizer.LARS."""

from __future__ import annotations

import pytest
import torch

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
    {"lr": 1e-2, "trust_coefficient": 0.02},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "momentum": 0.0, "weight_decay": 0.05},
    {"lr": 1e-2, "momentum": 0.8, "dampening": 0.3},
    {"lr": 1e-2, "nesterov": True, "weight_decay": 0.01},
    {"lr": 1e-2, "maximize": True},
    {"lr": 1e-2, "foreach": False, "weight_decay": 0.1, "nesterov": True},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_lars_matches_pytorch_optimizer(kwargs):
    assert_matches_reference(
        "lars", "LARS", kwargs, state_keys={"momentum_buffer": "momentum_buffer"}
    )


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_lars_zero_norms_match_pytorch_optimizer(weight_decay):
    """The trust ratio's edge cases: a zero matrix (ratio 1), a zero gradient (ratio 1 when
    the denominator is 0), as the reference handles them."""
    runs = []
    for cls in (generated("lars", "LARS"), reference("LARS")):
        params = [
            torch.zeros(3, 2, dtype=torch.float64, requires_grad=True),
            torch.ones(2, 2, dtype=torch.float64, requires_grad=True),
        ]
        opt = cls(params, lr=0.1, weight_decay=weight_decay)
        for step in range(3):
            params[0].grad = torch.full((3, 2), 0.5 * (step + 1), dtype=torch.float64)
            params[1].grad = torch.zeros(2, 2, dtype=torch.float64)
            opt.step()
        runs.append([p.detach().clone() for p in params])
    for ours, theirs in zip(*runs):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)


def test_lars_refuses_complex_parameters():
    p = torch.zeros(3, dtype=torch.complex128, requires_grad=True)
    p.grad = torch.ones(3, dtype=torch.complex128)
    with pytest.raises(ValueError, match="Lars does not support complex parameter."):
        generated("lars", "LARS")([p]).step()


def test_lars_foreach_and_fused_equal_the_for_loop():
    # fused: `if dim(param) > 1` is decided on the host, the norms are in the kernel
    assert_implementations_agree(
        "lars", "LARS", {"lr": 1e-2, "weight_decay": 0.1, "nesterov": True}
    )


def test_lars_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("lars", "LARS")
    assert_same_validation_errors(
        "lars",
        "LARS",
        [
            {"lr": -1.0},
            {"weight_decay": -0.1},
            {"momentum": 1.0},
            {"momentum": -0.1},
            {"dampening": 1.0},
            {"trust_coefficient": -1e-3},
        ],
    )
