"""Lazy states made inside branches decided per parameter, on every path: GaLore's shape.

GaLore makes its projection matrix on a matrix's first step, on the side the matrix's shape
decides (its rows or its columns), and keeps its moments in the projected shape. The foreach
path runs such a branch on its part of the group's lists; a state made there must be put in
that part, in every enclosing part and in the list the optimizer stores (it was put at the
branch's own positions of the group's list: an IndexError, or another parameter's state). A
state assigned a choice between two tensors (`q <- (q + m if c else q) initially m`) was an
internal error in the lowering; it is an `if` around the state's two updates.
"""

from __future__ import annotations

import pytest
import torch

from generator import load_spec
from paths import run_path

LAZY_IN_BRANCHES = """\
optimizer LazyInBranches
input lr: float = 0.1
input foreach: bool? = none
check not is_complex(param) else "real parameters only"
state m (m) lazy
state q (q) lazy
update:
    if dim(param) == 2:
        if size(param, 0) >= size(param, 1):
            m <- m + grad  initially 2 * grad
        else:
            m <- m - grad  initially 3 * grad
    else:
        m <- m + grad  initially grad
    q <- (q + m if size(param, 0) > 2 else q)  initially m
    param <- param - lr * (m + q)
"""

SHAPES = [(3, 2), (2, 3), (4,), (2,), (5, 5), (1,), (2, 4)]


def _reference(params, grads_per_step, lr):
    """Plain torch, from the algorithm."""
    params = [p.clone() for p in params]
    ms: list = [None] * len(params)
    qs: list = [None] * len(params)
    for grads in grads_per_step:
        for k, (p, g) in enumerate(zip(params, grads)):
            m = ms[k]
            if p.dim() == 2 and p.size(0) >= p.size(1):
                m = 2 * g if m is None else m + g
            elif p.dim() == 2:
                m = 3 * g if m is None else m - g
            else:
                m = g.clone() if m is None else m + g
            q = qs[k]
            if q is None:
                q = m.clone()
            elif p.size(0) > 2:
                q = q + m
            ms[k], qs[k] = m, q
            p.add_(m + q, alpha=-lr)
    return params, ms, qs


@pytest.mark.parametrize("impl", ["for-loop", "foreach"])
def test_a_lazy_state_made_in_nested_per_parameter_branches_is_each_parameters_own(
    impl,
):
    cls = load_spec(LAZY_IN_BRANCHES)
    opt, params, grads = run_path(cls, impl, SHAPES, 4, lr=0.05)
    start = run_path(cls, "for-loop", SHAPES, 0)[1]
    expected, ms, qs = _reference(start, grads, 0.05)
    for k, (p, e) in enumerate(zip(params, expected)):
        state = opt.state[opt.param_groups[0]["params"][k]]
        for key, want in (("m", ms[k]), ("q", qs[k])):
            assert torch.equal(state[key], want), (
                f"{impl}, parameter {k} of shape {tuple(p.shape)}: state {key!r} differs "
                f"from plain torch by {(state[key] - want).abs().max().item():.3e}"
            )
        assert torch.equal(p, e), (
            f"{impl}, parameter {k} of shape {tuple(p.shape)}: differs from plain torch by "
            f"{(p - e).abs().max().item():.3e}"
        )
