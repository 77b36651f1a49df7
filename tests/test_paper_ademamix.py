"""AdEMAMix (specs/ademamix.optim) against pytorch_optimizer.AdEMAMix."""

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
    "exp_avg_slow": "exp_avg_slow",
}

GRID = [
    {},
    {"foreach": False},
    {"lr": 1e-2, "betas": (0.8, 0.99, 0.999), "alpha": 2.0, "eps": 1e-6},
    {"lr": 1e-2, "t_alpha_beta3": 10.0},
    {"lr": 1e-2, "t_alpha_beta3": 100.0, "betas": (0.85, 0.99, 0.99)},
    {"lr": 1e-2, "t_alpha_beta3": 10.0, "foreach": False},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True, "fixed_decay": True},
    {"lr": 1e-2, "maximize": True},
    {"lr": 1e-2, "maximize": True, "weight_decay": 0.1, "foreach": False},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_ademamix_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("ademamix", "AdEMAMix", kwargs, state_keys=STATE_KEYS)


def test_ademamix_counts_steps_per_group_as_pytorch_optimizer():
    _, ours = paper_reference._run(
        generated("ademamix", "AdEMAMix"), {}, torch.float64, 0, 6
    )
    _, theirs = paper_reference._run(reference("AdEMAMix"), {}, torch.float64, 0, 6)
    assert (
        [g["step"] for g in ours.param_groups]
        == [g["step"] for g in theirs.param_groups]
        == [6, 6]
    )
    assert not any("step" in s for s in ours.state.values())


def test_ademamix_foreach_and_fused_equal_the_for_loop():
    # L2 decay (weight_decouple=False, weight_decay > 0): the decay fragment's elif in the kernel
    assert_implementations_agree(
        "ademamix",
        "AdEMAMix",
        {"lr": 1e-2, "t_alpha_beta3": 10.0, "weight_decay": 0.1},
    )


def test_ademamix_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("ademamix", "AdEMAMix")
    assert_same_validation_errors(
        "ademamix",
        "AdEMAMix",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.999, 0.9999)},
            {"betas": (0.9, 1.0, 0.9999)},
            {"betas": (0.9, 0.999, 1.5)},
            {"alpha": -1.0},
            {"t_alpha_beta3": -1.0},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ],
    )
