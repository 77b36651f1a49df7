"""Yogi (specs/yogi.optim) against pytorch_optimizer.Yogi.

The step count is the group's (``group['step']``), as the reference keeps it: the grid runs on
the harness's problem unchanged (a parameter without a gradient on steps 0, 4 and 5).
"""

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
)

GRID = [
    {},
    {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 1e-2, "initial_accumulator": 0.5},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-2, "maximize": True, "initial_accumulator": 0.0},
]
STATE_KEYS = {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_yogi_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("yogi", "Yogi", kwargs, state_keys=STATE_KEYS)


def test_yogi_step_count_is_the_groups_as_in_the_reference():
    """``group['step']`` after every step equals the reference's; no per-parameter ``step``."""
    steps = []
    for cls in (generated("yogi", "Yogi"), paper_reference.reference("Yogi")):
        _, opt = paper_reference._run(cls, {"lr": 1e-2}, torch.float64, 0, 6)
        steps.append([g["step"] for g in opt.param_groups])
        assert all("step" not in s for s in opt.state.values())
    assert steps[0] == steps[1] == [6, 6]


def test_yogi_foreach_and_fused_equal_the_for_loop():
    """weight_decouple=False: the L2 branch (an `elif` of the decay fragment) in the kernel."""
    assert_implementations_agree(
        "yogi", "Yogi", {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False}
    )


def test_yogi_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("yogi", "Yogi")
    assert_same_validation_errors(
        "yogi",
        "Yogi",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, -0.1)},
            {"weight_decay": -0.1},
            {"eps": -1e-3},
        ],
    )
    for extra in ("adam_debias", "use_gc"):
        with pytest.raises(TypeError):
            generated("yogi", "Yogi")(
                [torch.zeros(2, requires_grad=True)], **{extra: True}
            )
    with pytest.raises(ValueError, match="complex"):
        generated("yogi", "Yogi")(
            [torch.zeros(2, dtype=torch.complex128, requires_grad=True)]
        )
