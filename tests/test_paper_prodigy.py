"""Prodigy (specs/prodigy.optim) against pytorch_optimizer.Prodigy: two passes over the
parameters per step, with sums over all of them (`state optimizer ...: total`) between.
"""

from __future__ import annotations

import copy

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

STATE_KEYS = {"s": "s", "p0": "p0", "exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}

# The reference takes the first group's lr for every group (the harness gives the second group
# half the lr when `lr` is set): the grid varies the other options, lr stays the default 1.
GRID = [
    {},
    {"foreach": False},
    {"betas": (0.8, 0.99), "beta3": 0.95},
    {"d0": 1e-3, "d_coef": 0.5},
    {"d0": 1e-4, "growth_rate": 1.5},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "fixed_decay": True, "foreach": False},
    {"weight_decay": 0.1, "weight_decouple": False},
    {"bias_correction": True},
    {"safeguard_warmup": True, "d0": 1e-3},
    {"eps": None},
    {"eps": None, "bias_correction": True, "foreach": False},
    {"maximize": True, "d0": 1e-3},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_prodigy_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("prodigy", "Prodigy", kwargs, state_keys=STATE_KEYS)


def test_prodigy_keeps_d_and_the_sums_where_the_reference_does():
    """d, d_max and step in every group (equal across groups); the sums in the optimizer's
    state, equal to those the reference keeps in its groups."""
    kwargs = {"weight_decay": 0.1, "fixed_decay": True}
    _, ours = paper_reference._run(
        generated("prodigy", "Prodigy"), kwargs, torch.float64, 0, 8
    )
    _, theirs = paper_reference._run(reference("Prodigy"), kwargs, torch.float64, 0, 8)
    for key in ("step", "d", "d_max"):
        got = [g[key] for g in ours.param_groups]
        want = [g[key] for g in theirs.param_groups]
        assert got == want, f"group[{key!r}]: {got}, reference {want}"
    assert ours.param_groups[0]["d"] > 1e-6, "d never grew from d0"
    for key in ("d_numerator", "d_de_nom"):
        assert torch.equal(ours.state[key], theirs.param_groups[0][key]), key


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"bias_correction": True},
        {"eps": None},
        {"growth_rate": 1.1, "bias_correction": True},
        {"eps": None, "weight_decay": 0.01, "beta3": 0.9},
    ],
    ids=str,
)
def test_prodigy_estimates_d_on_a_quadratic_as_pytorch_optimizer(kwargs):
    """On a badly scaled quadratic (gradients pointing at a solution far from x0) d grows by
    orders of magnitude; the parameters and d agree with the reference at every step."""
    torch.manual_seed(0)
    scales = [torch.logspace(-2, 1, 12).reshape(3, 4), torch.logspace(0, -3, 5)]
    targets = [torch.randn(3, 4, dtype=torch.float64) * 3, torch.randn(5).double()]
    runs = []
    for cls in (reference("Prodigy"), generated("prodigy", "Prodigy")):
        params = [torch.zeros_like(t, requires_grad=True) for t in targets]
        opt = cls([{"params": params[:1]}, {"params": params[1:]}], **kwargs)
        seen = []
        for _ in range(40):
            for p, a, t in zip(params, scales, targets):
                p.grad = a.double() * (p.detach() - t)
            opt.step()
            seen.append(
                ([p.detach().clone() for p in params], opt.param_groups[1]["d"])
            )
        runs.append(seen)
    for step, ((theirs, d_ref), (ours, d)) in enumerate(zip(*runs)):
        assert d == d_ref, f"{kwargs}, step {step}: d {d}, reference {d_ref}"
        for i, (a, e) in enumerate(zip(ours, theirs)):
            paper_reference._close(
                a,
                e,
                paper_reference.RTOL,
                paper_reference.ATOL,
                f"{kwargs}, step {step}, param #{i}",
            )
    assert runs[1][-1][1] > 10 * 1e-6, f"d only reached {runs[1][-1][1]}"


def test_prodigy_stops_before_the_update_when_the_denominator_is_zero():
    """Zero gradients from the start: s stays 0, the step ends before touching a parameter,
    as the reference's does."""
    params = [torch.randn(3, requires_grad=True) for _ in range(2)]
    before = [p.detach().clone() for p in params]
    opt = generated("prodigy", "Prodigy")(params, weight_decay=0.5)
    for p in params:
        p.grad = torch.zeros(3)
    opt.step()
    assert all(torch.equal(p.detach(), b) for p, b in zip(params, before))
    assert opt.param_groups[0]["d"] == 1e-6 and opt.param_groups[0]["step"] == 2


def test_prodigy_state_dict_round_trip_continues_identically():
    cls = generated("prodigy", "Prodigy")
    params_a, opt_a = paper_reference._run(cls, {"d0": 1e-3}, torch.float64, 3, 5)
    params_b = [p.detach().clone().requires_grad_(True) for p in params_a]
    opt_b = cls(paper_reference._groups(params_b, {}), d0=1e-3)
    # (a deep copy: a state_dict holds the optimizer's own tensors)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    for step in range(5, 9):
        grads = paper_reference.gradients_for_step(step, params_a, 3)
        for pa, pb, g in zip(params_a, params_b, grads):
            pa.grad = None if g is None else g.clone()
            pb.grad = None if g is None else g.clone()
        opt_a.step()
        opt_b.step()
    for a, b in zip(params_a, params_b):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"d0": 1e-3, "weight_decay": 0.1, "bias_correction": True},
        {"d0": 1e-3, "eps": None, "safeguard_warmup": True, "maximize": True},
    ],
    ids=str,
)
def test_prodigy_foreach_and_fused_equal_the_for_loop(kwargs):
    # fused: a kernel per pass; the first adds each parameter's terms to the sums in place
    assert_implementations_agree("prodigy", "Prodigy", kwargs)


def test_prodigy_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("prodigy", "Prodigy")
    assert_same_validation_errors(
        "prodigy",
        "Prodigy",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, 1.0)},
            {"beta3": 1.5},
            {"beta3": -0.1},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ],
    )
