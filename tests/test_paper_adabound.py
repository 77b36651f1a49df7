"""AdaBound (specs/adabound.optim) against pytorch_optimizer.AdaBound.

The step count is the group's (``group['step']``), as the reference keeps it: the grid runs on
the harness's problem unchanged (a parameter without a gradient on steps 0, 4 and 5).
"""

from __future__ import annotations

import pytest
import torch
from parity import clone_params, gradients_for_step, make_initial_params

from paper_reference import (
    assert_implementations_agree,
    assert_matches_reference,
    assert_same_signature,
    assert_same_validation_errors,
    generated,
    reference,
)

GRID = [
    {},
    {"ams_bound": True},
    {"lr": 1e-2, "final_lr": 1e-2, "gamma": 1.0},  # tight bounds from the first step
    {
        "lr": 1e-2,
        "final_lr": 1e-2,
        "gamma": 0.5,
        "ams_bound": True,
        "betas": (0.8, 0.99),
    },
    {"lr": 1e-2, "final_lr": 0.0, "eps": 1e-6},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False, "ams_bound": True},
    {"lr": 1e-2, "maximize": True},
]
STATE_KEYS = {
    "exp_avg": "exp_avg",
    "exp_avg_sq": "exp_avg_sq",
    "max_exp_avg_sq": "max_exp_avg_sq",
}


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_adabound_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("adabound", "AdaBound", kwargs, state_keys=STATE_KEYS)


def _run_with_lr_changes(cls, start_lr, warm_up=False):
    """Two groups (the second at half the lr); lr raised from 0 at step 2 when
    ``start_lr`` is 0, halved at step 10, and with ``warm_up`` a LinearLR scheduler (which
    sets lr when it is made, before the first step)."""
    params = clone_params(make_initial_params(torch.float64, 7))
    opt = cls(
        [{"params": params[:2]}, {"params": params[2:], "lr": start_lr / 2}],
        lr=start_lr,
        final_lr=1e-2,
        gamma=1.0,
    )
    sched = (
        torch.optim.lr_scheduler.LinearLR(opt, 0.25, total_iters=8) if warm_up else None
    )
    for step in range(20):
        if step == 2 and start_lr == 0.0:
            for group, lr in zip(opt.param_groups, (1e-2, 5e-3)):
                group["lr"] = lr
        if step == 10:
            for group in opt.param_groups:
                group["lr"] *= 0.5
        for p, g in zip(params, gradients_for_step(step, params, 7)):
            p.grad = g
        opt.step()
        if sched is not None:
            sched.step()
    return params, opt


@pytest.mark.parametrize("start_lr", [1e-2, 0.0])
def test_adabound_bounds_follow_a_changed_lr(start_lr):
    """lr changed mid-run (as a scheduler would): the bounds scale by lr / base_lr, as the
    reference's do. A group built with lr 0 takes the first positive lr it steps with.
    """
    ref, ref_opt = _run_with_lr_changes(reference("AdaBound"), start_lr)
    ours, opt = _run_with_lr_changes(generated("adabound", "AdaBound"), start_lr)
    assert [g["step"] for g in opt.param_groups] == [
        g["step"] for g in ref_opt.param_groups
    ]
    assert [g["base_lr"] for g in opt.param_groups] == ref_opt.base_lrs
    for a, e in zip(ours, ref):
        torch.testing.assert_close(a.detach(), e.detach(), rtol=1e-10, atol=1e-14)


def test_adabound_base_lr_is_the_lr_it_was_built_with():
    """A warm-up scheduler sets lr before the first step; base_lr is still the lr the
    optimizer was built with (an `eager` group counter), as the reference's base_lrs."""
    ref, ref_opt = _run_with_lr_changes(reference("AdaBound"), 1e-2, warm_up=True)
    ours, opt = _run_with_lr_changes(
        generated("adabound", "AdaBound"), 1e-2, warm_up=True
    )
    assert ref_opt.base_lrs == [1e-2, 5e-3]
    assert [g["base_lr"] for g in opt.param_groups] == ref_opt.base_lrs
    for a, e in zip(ours, ref):
        torch.testing.assert_close(a.detach(), e.detach(), rtol=1e-10, atol=1e-14)


def test_adabound_foreach_and_fused_equal_the_for_loop():
    """weight_decouple=False: the L2 branch (an `elif` of the decay fragment) in the kernel."""
    assert_implementations_agree(
        "adabound",
        "AdaBound",
        {
            "lr": 1e-2,
            "final_lr": 1e-2,
            "gamma": 0.5,
            "weight_decay": 0.1,
            "weight_decouple": False,
            "ams_bound": True,
        },
    )


def test_adabound_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("adabound", "AdaBound")
    assert_same_validation_errors(
        "adabound",
        "AdaBound",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, -0.1)},
            {"gamma": 0.0},
            {"weight_decay": -0.1},
            {"eps": -1e-3},
        ],
    )
    for extra in ("adam_debias", "use_gc"):
        with pytest.raises(TypeError):
            generated("adabound", "AdaBound")(
                [torch.zeros(2, requires_grad=True)], **{extra: True}
            )
