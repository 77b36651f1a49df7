"""MARS (specs/mars.optim) against pytorch_optimizer.MARS.

``mars_type="shampoo"`` runs on matrices and vectors (the generated class refuses it for tensors of
more than two dimensions).
"""

from __future__ import annotations

import functools

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
from parity import make_initial_params

STATE = {
    "exp_avg": "exp_avg",
    "exp_avg_sq": "exp_avg_sq",
    "last_grad": "last_grad",
    "max_exp_avg_sq": "max_exp_avg_sq",
}

GRID = [
    {},
    {"foreach": False},
    {"lr": 1e-2, "betas": (0.9, 0.95), "gamma": 0.1, "eps": 1e-6},
    {"lr": 1e-2, "lr_1d": 2e-2, "betas_1d": (0.8, 0.9), "weight_decay_1d": 0.3},
    {"optimize_1d": True, "gamma": 0.5},
    {"mars_type": "adamw", "ams_bound": True},
    {"mars_type": "lion", "lr": 1e-3},
    {"mars_type": "lion", "optimize_1d": True, "cautious": True},
    {"cautious": True, "foreach": False},
    {"cautious": True, "ams_bound": True, "optimize_1d": True},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "fixed_decay": True, "weight_decay_1d": 0.0},
    {"weight_decay": 0.1, "weight_decouple": False},
    {
        "weight_decay": 0.1,
        "weight_decouple": False,
        "optimize_1d": True,
        "foreach": False,
    },
    {"maximize": True, "weight_decay": 0.05},
    {"lr": torch.tensor(1e-2, dtype=torch.float64)},
    {"foreach": True, "cautious": True, "ams_bound": True, "weight_decay": 0.1},
    {
        "foreach": True,
        "mars_type": "lion",
        "maximize": True,
        "weight_decay_1d": 0.2,
        "weight_decouple": False,
    },
    {"mars_type": "lion", "optimize_1d": True},
    {
        "mars_type": "lion",
        "optimize_1d": True,
        "lr": 1e-2,
        "cautious": True,
        "weight_decay": 0.1,
    },
]

# "shampoo" takes tensors of at most two dimensions: its grid runs on matrices (one of them wide,
# two tall: the Newton-Schulz iteration runs on the transpose of a tall one) and vectors.
SHAMPOO = [
    {"mars_type": "shampoo"},
    {"mars_type": "shampoo", "foreach": True},
    {"mars_type": "shampoo", "optimize_1d": True, "lr": 1e-2, "eps": 1e-3},
    {
        "mars_type": "shampoo",
        "cautious": True,
        "ams_bound": True,
        "weight_decay": 0.1,
        "maximize": True,
    },
]
MATRICES = ((5, 4), (4,), (3, 6), (2,), (4, 4))


@pytest.mark.parametrize("kwargs", GRID, ids=str)
def test_mars_matches_pytorch_optimizer(kwargs):
    assert_matches_reference("mars", "MARS", kwargs, state_keys=STATE)


@pytest.mark.parametrize("kwargs", SHAMPOO, ids=str)
def test_mars_shampoo_matches_pytorch_optimizer(kwargs, monkeypatch):
    monkeypatch.setattr(
        paper_reference,
        "make_initial_params",
        functools.partial(make_initial_params, shapes=MATRICES),
    )
    assert_matches_reference("mars", "MARS", kwargs, state_keys=STATE)


def test_mars_counts_steps_per_group_as_pytorch_optimizer():
    _, ours = paper_reference._run(generated("mars", "MARS"), {}, torch.float64, 0, 6)
    _, theirs = paper_reference._run(reference("MARS"), {}, torch.float64, 0, 6)
    assert (
        [g["step"] for g in ours.param_groups]
        == [g["step"] for g in theirs.param_groups]
        == [6, 6]
    )
    assert not any("step" in s for s in ours.state.values())
    # maximize and fused last, only in ours
    assert list(ours.defaults)[:-2] == list(theirs.defaults)
    assert list(ours.defaults)[-2:] == ["maximize", "fused"]


def test_mars_foreach_and_fused_equal_the_for_loop():
    # fused: the clipping norm is a whole-tensor reduction, in the kernel
    assert_implementations_agree(
        "mars",
        "MARS",
        {"cautious": True, "weight_decay": 0.1, "ams_bound": True},
    )
    assert_implementations_agree(
        "mars",
        "MARS",
        {"mars_type": "lion", "weight_decay": 0.1, "weight_decouple": False},
    )


def test_mars_signature_and_errors_match_pytorch_optimizer():
    assert_same_signature("mars", "MARS")
    assert_same_validation_errors(
        "mars",
        "MARS",
        [
            {"lr": -1.0},
            {"lr_1d": -1.0},
            {"betas": (1.0, 0.99)},
            {"betas": (0.9, -0.1)},
            {"betas_1d": (0.9, 1.0)},
            {"mars_type": "sgd"},
            {"gamma": -0.1},
            {"weight_decay": -0.1},
            {"weight_decay_1d": -0.1},
            {"eps": -1e-8},
        ],
    )
    cls = generated("mars", "MARS")
    with pytest.raises(TypeError):
        cls([torch.zeros(2, requires_grad=True)], use_gc=True)
    with pytest.raises(ValueError, match="complex"):
        cls([torch.zeros(2, dtype=torch.complex128, requires_grad=True)])
    # shampoo on a tensor of more than two dimensions: refused at construction, and at the step
    # where only a group asks for shampoo
    with pytest.raises(ValueError, match="at most 2 dimensions"):
        cls([torch.zeros(2, 2, 2, requires_grad=True)], mars_type="shampoo")
    p = torch.zeros(2, 2, 2, requires_grad=True)
    p.grad = torch.ones_like(p)
    opt = cls([{"params": [p], "mars_type": "shampoo"}])
    with pytest.raises(ValueError, match="at most 2 dimensions"):
        opt.step()


def test_mars_shampoo_fused_equals_the_for_loop():
    """Shampoo's Newton-Schulz iterations (a `repeat` of matrix products in bfloat16) unrolled
    in the kernel, which takes the matrices unflattened. The orthogonalisation runs in
    bfloat16 in both paths, and inductor rounds fused bfloat16 arithmetic once where eager
    rounds after each operation: over six steps the displacements agree within four bfloat16
    ulps (4 * 2^-7 relative; a wrong formula is off by O(1)), the moments, computed in float32
    before the orthogonalisation, to float32 rounding."""
    cls = generated("mars", "MARS")
    gen = torch.Generator().manual_seed(5)
    shapes = [(5, 4), (3, 6), (4,)]
    start = [torch.randn(s, generator=gen) for s in shapes]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(6)]
    runs = []
    for fused in (False, True):
        params = [t.clone().requires_grad_(True) for t in start]
        opt = cls(params, lr=1e-2, mars_type="shampoo", fused=fused, foreach=False)
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = g.clone()
            opt.step()
        runs.append((params, opt))
    (loop, opt_loop), (fused, opt_fused) = runs
    for i, (a, b) in enumerate(zip(loop, fused)):
        moved = (b.detach() - start[i]).abs().max()
        diff = (a.detach() - b.detach()).abs().max()
        assert (
            diff <= 4 * 2**-7 * moved
        ), f"param #{i}: {diff:.3e} apart, moved {moved:.3e}"
        torch.testing.assert_close(
            opt_fused.state[b]["exp_avg"],
            opt_loop.state[a]["exp_avg"],
            rtol=2e-6,
            atol=1e-6,
        )
