"""ScheduleFreeAdamW (specs/schedulefree_adamw.optim) against pytorch_optimizer.ScheduleFreeAdamW,
in training mode and after its `eval()` / `train()` switches (a spec `method`)."""

from __future__ import annotations

import pytest
import torch

import paper_reference
from paper_reference import (
    _close,
    assert_implementations_agree,
    assert_matches_reference,
    assert_same_signature,
    assert_same_validation_errors,
    generated,
    reference,
)

STATE_KEYS = {"z": "z", "exp_avg_sq": "exp_avg_sq", "max_exp_avg_sq": "max_exp_avg_sq"}
GROUP_KEYS = ("step", "weight_sum", "lr_max", "train_mode")

GRID = [
    {},
    {"foreach": False},
    {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "warmup_steps": 5},
    {"lr": 1e-2, "warmup_steps": 5, "r": 1.0, "weight_lr_power": 1.0},
    {"lr": 1e-2, "weight_lr_power": 0.0, "foreach": False},
    {"lr": 1e-2, "decoupling_c": 3},
    {"lr": 1e-2, "ams_bound": True},
    {"lr": 1e-2, "ams_bound": True, "weight_decay": 0.1, "foreach": False},
    {"lr": 1e-2, "maximize": True, "warmup_steps": 3},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_schedulefree_adamw_matches_pytorch_optimizer(kwargs):
    assert_matches_reference(
        "schedulefree_adamw", "ScheduleFreeAdamW", kwargs, state_keys=STATE_KEYS
    )


def _switch_and_compare(kwargs, dtype, steps=12):
    """Both optimizers: `steps` steps, eval(), eval() again, train(), then `steps` more; the
    parameters and the group values agree after every switch and every step."""
    label = f"ScheduleFreeAdamW({kwargs}, {dtype})"
    seed = paper_reference.stable_seed("schedulefree-switch", dtype)
    runs = []
    for cls in (
        reference("ScheduleFreeAdamW"),
        generated("schedulefree_adamw", "ScheduleFreeAdamW"),
    ):
        params, opt = paper_reference._run(cls, kwargs, dtype, seed, steps)
        seen = [[p.detach().clone() for p in params]]
        for switch in ("eval", "eval", "train"):
            getattr(opt, switch)()
            seen.append([p.detach().clone() for p in params])
        seen.append([{k: g[k] for k in GROUP_KEYS} for g in opt.param_groups])
        opt.eval()
        opt.train()
        seen.append([p.detach().clone() for p in params])
        runs.append(seen)
    theirs, ours = runs
    for k, (a, e) in enumerate(zip(ours, theirs)):
        if k == 4:
            assert a == e, f"{label}: group values {a}, reference {e}"
            continue
        for i, (x, y) in enumerate(zip(a, e)):
            _close(
                x,
                y,
                paper_reference.RTOL,
                paper_reference.ATOL,
                f"{label}, after switch #{k}, param #{i}",
            )


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"lr": 1e-2, "betas": (0.5, 0.99), "weight_decay": 0.1, "warmup_steps": 4}],
    ids=str,
)
def test_schedulefree_adamw_eval_and_train_match_pytorch_optimizer(kwargs):
    _switch_and_compare(kwargs, torch.float64)


def test_schedulefree_adamw_complex_parameters_match_pytorch_optimizer():
    """Complex parameters run on their real views, in the step and in eval()/train()."""
    _switch_and_compare({"lr": 1e-2, "ams_bound": True}, torch.complex128)


def test_schedulefree_adamw_eval_moves_parameters_to_the_average_and_back():
    """eval() gives x = (y - (1 - beta1) z) / beta1, train() returns to y, and a parameter the
    step has not reached (no state yet) is left alone."""
    cls = generated("schedulefree_adamw", "ScheduleFreeAdamW")
    torch.manual_seed(0)
    w, untouched = torch.randn(5, requires_grad=True), torch.randn(
        3, requires_grad=True
    )
    opt = cls([w, untouched], lr=0.1, betas=(0.75, 0.999))
    for _ in range(3):
        w.grad = torch.randn(5)
        opt.step()
    y, z, u = w.detach().clone(), opt.state[w]["z"].clone(), untouched.detach().clone()
    opt.eval()
    torch.testing.assert_close(w.detach(), (y - 0.25 * z) / 0.75, rtol=1e-6, atol=1e-7)
    assert torch.equal(untouched.detach(), u)
    assert untouched not in opt.state, "eval() made state for a parameter without one"
    assert opt.param_groups[0]["train_mode"] is False
    opt.train()
    torch.testing.assert_close(w.detach(), y, rtol=1e-6, atol=1e-7)
    assert opt.param_groups[0]["train_mode"] is True


def test_schedulefree_adamw_state_dict_carries_the_mode_and_the_average_weights():
    cls = generated("schedulefree_adamw", "ScheduleFreeAdamW")
    w = torch.randn(4, requires_grad=True)
    opt = cls([w])
    w.grad = torch.ones(4)
    opt.step()
    opt.eval()
    sd = opt.state_dict()
    group = sd["param_groups"][0]
    assert (group["train_mode"], group["step"]) == (False, 1)
    assert group["lr_max"] == 2.5e-3 and group["weight_sum"] == 2.5e-3**2
    assert set(sd["state"][0]) == {"z", "exp_avg_sq"}
    w2 = w.detach().clone().requires_grad_(True)
    opt2 = cls([w2])
    opt2.load_state_dict(sd)
    opt.train()
    opt2.train()
    assert torch.equal(w.detach(), w2.detach())


def test_schedulefree_adamw_foreach_and_fused_equal_the_for_loop():
    assert_implementations_agree(
        "schedulefree_adamw",
        "ScheduleFreeAdamW",
        {"lr": 1e-2, "weight_decay": 0.1, "warmup_steps": 4, "ams_bound": True},
    )


def test_schedulefree_adamw_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("schedulefree_adamw", "ScheduleFreeAdamW")
    assert_same_validation_errors(
        "schedulefree_adamw",
        "ScheduleFreeAdamW",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.0, 0.999)},
            {"betas": (0.9, 1.0)},
            {"decoupling_c": -1},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ],
    )
