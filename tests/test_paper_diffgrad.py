"""DiffGrad (specs/diffgrad.optim) against pytorch_optimizer.DiffGrad, on the harness's problem
(a parameter without gradient on steps 0, 4, 5; two param groups). The step count is the group's,
group['step'], as in the reference."""

from __future__ import annotations

import paper_reference
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

STATE = {
    "exp_avg": "exp_avg",
    "exp_avg_sq": "exp_avg_sq",
    "previous_grad": "previous_grad",
    "max_exp_avg_sq": "max_exp_avg_sq",
}

GRID = [
    {},
    {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 1e-2, "ams_bound": True},
    {"lr": 1e-2, "rectify": True},
    {"lr": 1e-2, "rectify": True, "betas": (0.9, 0.8), "n_sma_threshold": 4},
    {"lr": 1e-2, "rectify": True, "degenerated_to_sgd": False, "betas": (0.9, 0.9)},
    {"lr": 1e-2, "rectify": True, "ams_bound": True, "betas": (0.9, 0.9)},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-2, "maximize": True, "foreach": False},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_diffgrad_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("diffgrad", "DiffGrad", kwargs, state_keys=STATE)


def test_diffgrad_counts_steps_per_group_as_pytorch_optimizer():
    _, ours = paper_reference._run(
        generated("diffgrad", "DiffGrad"), {}, torch.float64, 0, 6
    )
    _, theirs = paper_reference._run(reference("DiffGrad"), {}, torch.float64, 0, 6)
    assert (
        [g["step"] for g in ours.param_groups]
        == [g["step"] for g in theirs.param_groups]
        == [6, 6]
    )
    assert not any("step" in s for s in ours.state.values())


def test_diffgrad_foreach_and_fused_equal_the_for_loop():
    # L2 decay (weight_decouple=False, weight_decay > 0): the decay fragment's elif in the kernel
    assert_implementations_agree(
        "diffgrad",
        "DiffGrad",
        {
            "lr": 1e-2,
            "rectify": True,
            "ams_bound": True,
            "betas": (0.9, 0.9),
            "weight_decay": 0.1,
            "weight_decouple": False,
        },
    )


def test_diffgrad_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("diffgrad", "DiffGrad")
    assert_same_validation_errors(
        "diffgrad",
        "DiffGrad",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.99)},
            {"betas": (0.9, 1.0)},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ],
    )
