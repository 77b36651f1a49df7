"""MADGRAD (specs/madgrad.optim) against pytorch_optimizer.MADGRAD.

Both count the optimizer's steps (state['k']), so a parameter that went without a gradient on
some steps still takes the optimizer's k when it steps again.
"""

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

STATE_KEYS = {"grad_sum_sq": "grad_sum_sq", "s": "s", "x0": "x0"}

GRID = [
    {},
    {"foreach": False},
    {"lr": 1e-2, "momentum": 0.0},
    {"lr": 1e-2, "momentum": 0.0, "eps": 0.0},
    {"lr": 1e-2, "momentum": 0.0, "eps": 0.0, "foreach": False},
    {"lr": 1e-2, "momentum": 0.5, "eps": 0.0},
    {"lr": 0.0},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "foreach": False},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True, "momentum": 0.0},
    {"lr": 1e-2, "maximize": True},
    {"lr": 1e-2, "maximize": True, "momentum": 0.0, "foreach": False},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_madgrad_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("madgrad", "MADGRAD", kwargs, state_keys=STATE_KEYS)


def test_madgrad_counts_steps_per_optimizer_as_pytorch_optimizer():
    counts = []
    for cls in (reference("MADGRAD"), generated("madgrad", "MADGRAD")):
        p = torch.zeros(3, requires_grad=True)
        opt = cls([p])
        for _ in range(4):
            p.grad = torch.ones(3)
            opt.step()
        counts.append(int(opt.state["k"].item()))
        assert "step" not in opt.state[p]
    assert counts[1] == counts[0] == 4


def test_madgrad_foreach_and_fused_equal_the_for_loop():
    assert_implementations_agree(
        "madgrad",
        "MADGRAD",
        {"lr": 1e-2, "weight_decay": 0.1, "maximize": True},
    )


def test_madgrad_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("madgrad", "MADGRAD")
    assert_same_validation_errors(
        "madgrad",
        "MADGRAD",
        [
            {"lr": -1.0},
            {"momentum": -0.1},
            {"momentum": 1.0},
            {"weight_decay": -0.1},
            {"eps": -1e-6},
        ],
    )


def test_madgrad_refuses_sparse_gradients():
    p = torch.zeros(3, 2, requires_grad=True)
    p.grad = torch.zeros(3, 2).to_sparse()
    with pytest.raises(ValueError, match="MADGRAD does not support sparse gradient."):
        generated("madgrad", "MADGRAD")([p], momentum=0.0).step()
