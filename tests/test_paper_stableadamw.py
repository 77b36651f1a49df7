"""StableAdamW (specs/stableadamw.optim) against pytorch_optimizer.StableAdamW."""

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

STATE = {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}

GRID = [
    {},
    {"foreach": False},
    {"foreach": True},
    {"lr": 1e-2, "betas": (0.8, 0.95), "eps": 1e-6},
    {
        "lr": 1e-2,
        "eps": 1e-3,
    },  # the floor eps^2 under v in the RMS matters for small gradients
    {"lr": 1e-2, "kahan_sum": False},
    {"lr": 1e-2, "weight_decay": 0.0},
    {"lr": 1e-2, "weight_decay": 0.1, "foreach": False},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False, "foreach": False},
    {"lr": 1e-2, "maximize": True},
    {"lr": 1e-2, "maximize": True, "weight_decouple": False, "foreach": True},
    {"lr": torch.tensor(1e-2, dtype=torch.float64)},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_stableadamw_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("stableadamw", "StableAdamW", kwargs, state_keys=STATE)


def test_stableadamw_counts_steps_per_group_as_pytorch_optimizer():
    _, ours = paper_reference._run(
        generated("stableadamw", "StableAdamW"), {}, torch.float64, 0, 6
    )
    _, theirs = paper_reference._run(reference("StableAdamW"), {}, torch.float64, 0, 6)
    assert (
        [g["step"] for g in ours.param_groups]
        == [g["step"] for g in theirs.param_groups]
        == [6, 6]
    )
    assert not any("step" in s for s in ours.state.values())


def test_stableadamw_foreach_and_fused_equal_the_for_loop():
    # fused: the RMS that clips the learning rate is a reduction over the whole tensor
    assert_implementations_agree(
        "stableadamw",
        "StableAdamW",
        {"lr": 1e-2, "eps": 1e-3, "weight_decay": 0.1},
    )


def test_stableadamw_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("stableadamw", "StableAdamW")
    assert_same_validation_errors(
        "stableadamw",
        "StableAdamW",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.99)},
            {"betas": (0.9, -0.1)},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ],
    )
    cls = generated("stableadamw", "StableAdamW")
    with pytest.raises(TypeError):
        cls([torch.zeros(2, requires_grad=True)], use_gc=True)
    with pytest.raises(ValueError, match="complex"):
        cls([torch.zeros(2, dtype=torch.complex128, requires_grad=True)])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_stableadamw_refuses_kahan_sum_for_low_precision_parameters(dtype):
    cls = generated("stableadamw", "StableAdamW")
    p = torch.zeros(3, dtype=dtype, requires_grad=True)
    p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match="kahan_sum=True is not supported"):
        cls([p]).step()
    cls([p], kahan_sum=False).step()  # without it the step runs
