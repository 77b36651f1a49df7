"""CAME (specs/came.optim) against pytorch_optimizer.CAME."""

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

# The factored statistics keep the reduced dimension (size 1); the harness compares them
# reshaped to the reference's layout.
STATE = {
    "exp_avg": "exp_avg",
    "exp_avg_sq_row": "exp_avg_sq_row",
    "exp_avg_sq_col": "exp_avg_sq_col",
    "exp_avg_res_row": "exp_avg_res_row",
    "exp_avg_res_col": "exp_avg_res_col",
    "exp_avg_sq": "exp_avg_sq",
    "exp_avg_sq_hat": "exp_avg_sq_hat",
}

GRID = [
    {},
    {"foreach": False},
    {"lr": 1e-2, "betas": (0.8, 0.99, 0.999)},
    {"lr": 1e-2, "betas": (0.9, 0.95, 0.99), "eps1": 1e-20, "eps2": 1e-10},
    {"lr": 1e-2, "clip_threshold": 0.05},
    {"lr": 1e-2, "clip_threshold": 0.05, "foreach": False},
    {"lr": 1e-2, "ams_bound": True},
    {"lr": 1e-2, "ams_bound": True, "foreach": False},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False, "foreach": False},
    {"lr": 1e-2, "maximize": True, "weight_decay": 0.05},
    {"lr": torch.tensor(1e-2, dtype=torch.float64)},
    {
        "lr": 1e-2,
        "ams_bound": True,
        "weight_decay": 0.1,
        "maximize": True,
        "foreach": True,
    },
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_came_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("came", "CAME", kwargs, state_keys=STATE)


@pytest.mark.parametrize("ams_bound", [False, True])
def test_came_foreach_and_fused_equal_the_for_loop(ams_bound):
    # fused: the row and column means and the factored product need the tensors' shapes, so
    # the kernel takes them unflattened (compiled once per number of dimensions)
    assert_implementations_agree(
        "came",
        "CAME",
        {"lr": 1e-2, "ams_bound": ams_bound, "weight_decay": 0.1},
    )


def test_came_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("came", "CAME")
    assert_same_validation_errors(
        "came",
        "CAME",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.999, 0.9999)},
            {"betas": (0.9, -0.1, 0.9999)},
            {"betas": (0.9, 0.999, 1.5)},
            {"weight_decay": -0.1},
            {"eps1": -1e-30},
            {"eps2": -1e-16},
        ],
    )
    cls = generated("came", "CAME")
    with pytest.raises(TypeError):
        cls([torch.zeros(2, requires_grad=True)], use_gc=True)
    p = torch.zeros(2, dtype=torch.complex128, requires_grad=True)
    p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match="CAME does not support complex parameter."):
        cls([p]).step()
