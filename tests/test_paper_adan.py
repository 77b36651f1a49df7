"""Adan (specs/adan.optim) against pytorch_optimizer.Adan."""

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

STATE_KEYS = {
    "exp_avg": "exp_avg",
    "exp_avg_sq": "exp_avg_sq",
    "exp_avg_diff": "exp_avg_diff",
    "previous_grad": "previous_grad",
}

GRID = [
    {},
    {"foreach": False},
    {"lr": 1e-2, "betas": (0.9, 0.8, 0.999), "eps": 1e-6},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "foreach": False},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
    {"lr": 1e-2, "maximize": True},
    {"lr": 1e-2, "maximize": True, "weight_decay": 0.1, "foreach": False},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_adan_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("adan", "Adan", kwargs, state_keys=STATE_KEYS)


def test_adan_counts_steps_per_group_as_pytorch_optimizer():
    _, ours = paper_reference._run(generated("adan", "Adan"), {}, torch.float64, 0, 6)
    _, theirs = paper_reference._run(reference("Adan"), {}, torch.float64, 0, 6)
    assert (
        [g["step"] for g in ours.param_groups]
        == [g["step"] for g in theirs.param_groups]
        == [6, 6]
    )
    assert not any("step" in s for s in ours.state.values())


def test_adan_foreach_and_fused_equal_the_for_loop():
    assert_implementations_agree(
        "adan", "Adan", {"lr": 1e-2, "weight_decay": 0.1, "maximize": True}
    )


def test_adan_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("adan", "Adan")
    assert_same_validation_errors(
        "adan",
        "Adan",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.92, 0.99)},
            {"betas": (0.98, -0.1, 0.99)},
            {"betas": (0.98, 0.92, 1.5)},
            {"weight_decay": -0.1},
            {"max_grad_norm": -1.0},
            {"eps": -1e-8},
        ],
    )


def test_adan_refuses_max_grad_norm():
    with pytest.raises(ValueError, match="max_grad_norm > 0 .* is not supported"):
        generated("adan", "Adan")(
            [torch.zeros(2, requires_grad=True)], max_grad_norm=1.0
        )
