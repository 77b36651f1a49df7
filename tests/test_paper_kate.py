"""Kate (specs/kate.optim) against pytorch_optimizer.Kate."""

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
    {"foreach": False},
    {"lr": 3e-2, "delta": 1e-8},
    {"lr": 1e-2, "delta": 0.5, "eps": 1e-3},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False, "foreach": False},
    {"lr": 1e-2, "maximize": True},
    {"lr": 1e-2, "maximize": True, "foreach": False},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_kate_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("kate", "Kate", kwargs, state_keys={"m": "m", "b": "b"})


def test_kate_foreach_and_fused_equal_the_for_loop():
    assert_implementations_agree(
        "kate",
        "Kate",
        {
            "lr": 1e-2,
            "delta": 1e-2,
            "weight_decay": 0.1,
            "weight_decouple": False,
            "maximize": True,
        },
    )


def test_kate_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("kate", "Kate")
    assert_same_validation_errors(
        "kate",
        "Kate",
        [
            {"lr": -1.0},
            {"delta": -0.1},
            {"delta": 1.0},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ],
    )
