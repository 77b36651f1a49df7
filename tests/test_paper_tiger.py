"""Tiger (specs/tiger.optim) against pytorch_optimizer.Tiger."""

from __future__ import annotations

import pytest
import torch

from paper_reference import (
    assert_implementations_agree,
    assert_matches_reference,
    assert_same_signature,
    assert_same_validation_errors,
    generated,
)

GRID = [
    {},
    {"lr": 3e-3, "beta": 0.9},
    {"lr": 1e-3, "weight_decay": 0.0},
    {"lr": 1e-3, "weight_decay": 0.1, "fixed_decay": True},
    {"lr": 1e-3, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-3, "maximize": True, "beta": 0.0},
    {"lr": torch.tensor(2e-3), "weight_decay": 0.05},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_tiger_matches_pytorch_optimizer(kwargs):
    assert_matches_reference(
        "tiger", "Tiger", kwargs, state_keys={"exp_avg": "exp_avg"}
    )


def test_tiger_foreach_and_fused_equal_the_for_loop():
    assert_implementations_agree("tiger", "Tiger", {"lr": 1e-3, "weight_decay": 0.1})


def test_tiger_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("tiger", "Tiger")
    assert_same_validation_errors(
        "tiger",
        "Tiger",
        [{"lr": -1.0}, {"beta": 1.0}, {"beta": -0.1}, {"weight_decay": -0.1}],
    )
    with pytest.raises(TypeError):
        generated("tiger", "Tiger")([torch.zeros(2, requires_grad=True)], use_gc=True)
    with pytest.raises(ValueError, match="complex"):
        generated("tiger", "Tiger")(
            [torch.zeros(2, dtype=torch.complex128, requires_grad=True)]
        )
