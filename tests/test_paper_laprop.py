"""LaProp (specs/laprop.optim) against pytorch_optimizer.LaProp, on the harness's problem (a parameter
without gradient on steps 0, 4, 5; two param groups).

The reference is run on its for-loop path (foreach=False): its default foreach path rounds the step
sizes to float32, which puts its two paths up to ~1e-8 apart.
The second moment's bias correction and the centered switch count the group's steps (group['step']),
as the reference does; the momentum's bias correction counts the parameter's own steps
(momentum_step), where the reference keeps a per-parameter moving average of lr (exp_avg_lr_1):
the two agree while lr is constant (test_a_changed_lr_is_not_followed pins down the difference).
"""

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
from parity import gradients_for_step, make_initial_params

STATE = {
    "exp_avg": "exp_avg",
    "exp_avg_sq": "exp_avg_sq",
    "exp_mean_avg_beta2": "exp_mean_avg_beta2",
    "max_exp_avg_sq": "max_exp_avg_sq",
}

GRID = [
    {},
    {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-8},
    {"lr": 1e-2, "centered": True},
    {"lr": 1e-2, "centered": True, "steps_before_using_centered": 3},
    {"lr": 1e-2, "ams_bound": True},
    {"lr": 1e-2, "centered": True, "steps_before_using_centered": 5, "ams_bound": True},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-2, "maximize": True, "foreach": False},
    {"lr": torch.tensor(1e-2, dtype=torch.float64)},
]


def _for_loop(kwargs):
    return {**kwargs, "foreach": False}


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_laprop_matches_pytorch_optimizer(kwargs):
    assert_matches_reference(
        "laprop", "LaProp", kwargs, state_keys=STATE, ref_kwargs=_for_loop(kwargs)
    )


def test_laprop_counts_steps_per_group_as_pytorch_optimizer():
    params, ours = paper_reference._run(
        generated("laprop", "LaProp"), {}, torch.float64, 0, 6
    )
    _, theirs = paper_reference._run(
        reference("LaProp"), _for_loop({}), torch.float64, 0, 6
    )
    assert (
        [g["step"] for g in ours.param_groups]
        == [g["step"] for g in theirs.param_groups]
        == [6, 6]
    )
    # the parameter without gradient on steps 0, 4 and 5 has had 3 momentum steps
    assert [ours.state[p]["momentum_step"].item() for p in params] == [6, 6, 6, 3]
    assert not any("step" in s for s in ours.state.values())


def test_a_changed_lr_is_not_followed():
    """Equal to the reference until lr changes (step 3 here); after that the reference's
    exp_avg_lr_1 / lr is no longer 1 - beta1^k."""
    runs = []
    for cls, kwargs in (
        (generated("laprop", "LaProp"), {}),
        (reference("LaProp"), _for_loop({})),
    ):
        params = [
            p.detach().clone().requires_grad_()
            for p in make_initial_params(torch.float64, 0)
        ]
        opt = cls(params, lr=1e-2, **kwargs)
        trace = []
        for step in range(5):
            if step == 3:
                opt.param_groups[0]["lr"] = 5e-3
            for p, g in zip(params, gradients_for_step(step, params, 0)):
                p.grad = g
            opt.step()
            trace.append(torch.cat([p.detach().flatten() for p in params]))
        runs.append(trace)
    for step, (a, e) in enumerate(zip(*runs)):
        close = torch.allclose(a, e, rtol=1e-10, atol=1e-14)
        assert close == (step < 3), f"step {step}"


def test_laprop_foreach_and_fused_equal_the_for_loop():
    assert_implementations_agree(
        "laprop",
        "LaProp",
        {
            "lr": 1e-2,
            "centered": True,
            "steps_before_using_centered": 5,
            "ams_bound": True,
            "weight_decay": 0.1,
        },
    )


def test_laprop_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("laprop", "LaProp")
    assert_same_validation_errors(
        "laprop",
        "LaProp",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.99)},
            {"betas": (0.9, 1.0)},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ],
    )
