"""SignSGD (specs/signsgd.optim) against pytorch_optimizer.SignSGD."""

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

GRID = [
    {},
    {"lr": 3e-3, "momentum": 0.0},
    {"lr": 1e-3, "momentum": 0.5, "weight_decay": 0.1},
    {"lr": 1e-3, "momentum": 0.0, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-3, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-3, "maximize": True},
    {"lr": 1e-3, "maximize": True, "momentum": 0.0, "weight_decay": 0.05},
    {"lr": torch.tensor(2e-3), "weight_decay": 0.05},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_signsgd_matches_pytorch_optimizer(kwargs):
    assert_matches_reference(
        "signsgd", "SignSGD", kwargs, state_keys={"momentum_buffer": "momentum_buffer"}
    )


def test_signsgd_foreach_and_fused_equal_the_for_loop():
    assert_implementations_agree(
        "signsgd", "SignSGD", {"lr": 1e-3, "weight_decay": 0.1}
    )


def test_signsgd_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("signsgd", "SignSGD")
    assert_same_validation_errors(
        "signsgd",
        "SignSGD",
        [{"lr": -1.0}, {"momentum": 1.0}, {"momentum": -0.1}, {"weight_decay": -0.1}],
    )
    with pytest.raises(TypeError):
        generated("signsgd", "SignSGD")(
            [torch.zeros(2, requires_grad=True)], use_gc=True
        )
    with pytest.raises(ValueError, match="complex"):
        generated("signsgd", "SignSGD")(
            [torch.zeros(2, dtype=torch.complex128, requires_grad=True)]
        )
