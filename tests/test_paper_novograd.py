"""NovoGrad (specs/novograd.optim) against pytorch_optimizer.NovoGrad."""

from __future__ import annotations

import pytest
import torch

from paper_reference import (
    assert_implementations_agree,
    assert_matches_reference,
    assert_same_signature,
    assert_same_validation_errors,
)

GRID = [
    {},
    {"lr": 1e-2, "betas": (0.9, 0.5), "eps": 1e-3},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True, "fixed_decay": True},
    {"lr": 1e-2, "grad_averaging": True},
    {"lr": 1e-2, "maximize": True, "weight_decay": 0.01},
    {"lr": 1e-2, "foreach": False, "grad_averaging": True, "weight_decay": 0.1},
    {"lr": torch.tensor(1e-2), "weight_decay": 0.1, "weight_decouple": True},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_novograd_matches_pytorch_optimizer(kwargs):
    assert_matches_reference(
        "novograd",
        "NovoGrad",
        kwargs,
        state_keys={"grads_ema": "grads_ema", "moments": "moments"},
    )


def test_novograd_foreach_and_fused_equal_the_for_loop():
    assert_implementations_agree(
        "novograd",
        "NovoGrad",
        {"lr": 1e-2, "weight_decay": 0.1, "grad_averaging": True},
    )


def test_novograd_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("novograd", "NovoGrad")
    assert_same_validation_errors(
        "novograd",
        "NovoGrad",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.98)},
            {"betas": (0.9, -0.1)},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ],
    )
