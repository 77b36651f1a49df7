"""Lion (specs/lion.optim) against pytorch_optimizer.Lion."""

from __future__ import annotations

import pytest

from paper_reference import (
    assert_implementations_agree,
    assert_matches_reference,
    assert_same_signature,
    assert_same_validation_errors,
)

GRID = [
    {},
    {"lr": 3e-3, "betas": (0.95, 0.98)},
    {"lr": 1e-3, "weight_decay": 0.1},
    {"lr": 1e-3, "weight_decay": 0.1, "fixed_decay": True},
    {"lr": 1e-3, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-3, "maximize": True},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_lion_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("lion", "Lion", kwargs, state_keys={"exp_avg": "exp_avg"})


def test_lion_foreach_and_fused_equal_the_for_loop():
    assert_implementations_agree("lion", "Lion", {"lr": 1e-3, "weight_decay": 0.1})


def test_lion_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("lion", "Lion")
    assert_same_validation_errors(
        "lion", "Lion", [{"lr": -1.0}, {"betas": (1.0, 0.99)}, {"weight_decay": -0.1}]
    )
