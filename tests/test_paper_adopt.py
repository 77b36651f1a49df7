"""ADOPT (specs/adopt.optim) against pytorch_optimizer.ADOPT, on the harness's problem (a parameter
without gradient on steps 0, 4, 5; two param groups). The step count is the group's, group['step'],
as in the reference: the group's first step only initialises the second moment, and a parameter whose
first gradient comes later starts from a zero second moment (its gradient divided by eps, clipped).
clip_lambda, a callable in the reference, is "step ** 0.25" (the reference's default schedule) or None.
"""

from __future__ import annotations

import inspect

import paper_reference
import pytest
import torch

from paper_reference import (
    POLICY_ARGS,
    assert_implementations_agree,
    assert_matches_reference,
    assert_same_validation_errors,
    generated,
    reference,
)

STATE = {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}

GRID = [
    {},
    {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-8},
    {"lr": 1e-2, "clip_lambda": None},
    {"lr": 1e-2, "betas": (0.9, 0.5), "eps": 1e-3},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True, "fixed_decay": True},
    {"lr": 1e-2, "maximize": True, "foreach": False},
]


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_adopt_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("adopt", "ADOPT", kwargs, state_keys=STATE)


def test_adopt_counts_steps_per_group_as_pytorch_optimizer():
    _, ours = paper_reference._run(generated("adopt", "ADOPT"), {}, torch.float64, 0, 6)
    _, theirs = paper_reference._run(reference("ADOPT"), {}, torch.float64, 0, 6)
    assert (
        [g["step"] for g in ours.param_groups]
        == [g["step"] for g in theirs.param_groups]
        == [6, 6]
    )
    assert not any("step" in s for s in ours.state.values())


def test_adopt_foreach_and_fused_equal_the_for_loop():
    # L2 decay (weight_decouple=False, the default, weight_decay > 0): the decay fragment's elif in the kernel
    assert_implementations_agree(
        "adopt", "ADOPT", {"lr": 1e-2, "betas": (0.9, 0.5), "weight_decay": 0.1}
    )


def test_adopt_signature_and_errors_match_pytorch_optimizer():
    def args(cls):
        return [
            (p.name, p.default)
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
            and p.name not in ("self", "fused", *POLICY_ARGS)
        ]

    ours, theirs = dict(args(generated("adopt", "ADOPT"))), dict(
        args(reference("ADOPT"))
    )
    assert list(ours) == list(theirs)
    assert ours.pop("clip_lambda") == "step ** 0.25"
    schedule = theirs.pop("clip_lambda")
    assert [schedule(t) for t in (1, 2, 7, 20)] == [t**0.25 for t in (1, 2, 7, 20)]
    assert ours == theirs
    assert_same_validation_errors(
        "adopt",
        "ADOPT",
        [
            {"lr": -1.0},
            {"betas": (1.0, 0.99)},
            {"betas": (0.9, 1.0)},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ],
    )


@pytest.mark.parametrize(
    "clip_lambda",
    [lambda step: step**0.25, True, "step ** 0.5"],
    ids=["a_callable", "true", "another_schedule"],
)
def test_adopt_refuses_a_clip_schedule_it_cannot_express(clip_lambda):
    with pytest.raises(ValueError, match="clip_lambda must be"):
        generated("adopt", "ADOPT")(
            [torch.zeros(2, requires_grad=True)], clip_lambda=clip_lambda
        )
