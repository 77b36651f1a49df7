"""QHAdam (specs/qhadam.optim) against pytorch_optimizer.QHAdam."""

from __future__ import annotations

import pytest
import torch

from paper_reference import (
    assert_implementations_agree,
    assert_matches_reference,
    assert_same_signature,
    assert_same_validation_errors,
)

STATE = {
    "exp_avg": "exp_avg",
    "exp_avg_sq": "exp_avg_sq",
    "beta1_weight": "beta1_weight",
    "beta2_weight": "beta2_weight",
}

GRID = [
    {},
    {"lr": 3e-3, "betas": (0.95, 0.98), "eps": 1e-6},
    {"lr": 1e-2, "nus": (0.7, 1.0)},
    {"lr": 1e-2, "nus": (1.0, 0.8)},
    {"lr": 1e-2, "nus": (0.0, 0.5), "betas": (0.8, 0.99)},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True, "fixed_decay": True},
    {"lr": 1e-2, "nus": (0.7, 0.9), "maximize": True},
    {"lr": 1e-2, "nus": (0.7, 0.9), "foreach": False},
    {"lr": torch.tensor(1e-2)},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_qhadam_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("qhadam", "QHAdam", kwargs, state_keys=STATE)


def test_qhadam_foreach_and_fused_equal_the_for_loop():
    assert_implementations_agree(
        "qhadam", "QHAdam", {"lr": 1e-2, "nus": (0.7, 0.9), "weight_decay": 0.1}
    )


def test_qhadam_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("qhadam", "QHAdam")
    assert_same_validation_errors(
        "qhadam",
        "QHAdam",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.99)},
            {"betas": (0.9, -0.1)},
            {"nus": (1.5, 1.0)},
            {"nus": (1.0, -0.5)},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ],
    )
