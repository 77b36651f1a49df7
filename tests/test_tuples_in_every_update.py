"""Tuples in a per-parameter update: ``a, b <- (x, y)`` assigns several names at once.

As in ``update flat:``, every value is computed before any name changes: ``a, b <- (b, a + g)``
swaps through new names (``a_value``, ``b_value``), and where no value reads a name assigned
before it the assignments are made one after the other. Checked against plain torch in float64,
to the last bit, on the for-loop and foreach paths.
"""

from __future__ import annotations

import pytest
import torch

from generator import load_spec
from generator.api import check_text
from generator.language.diagnostics import SpecError
from paths import seeded_grads, seeded_params

SWAP = """\
optimizer Swap
summary "two states exchanged through a tuple assignment"
input lr: float = 0.1 "learning rate"
input foreach: bool? = none, keyword
state a <- 0
state b <- param
update:
    a, b <- (b, a + grad)
    x, y <- (grad, 2 * grad)
    param <- param - lr * (a + x - y) - 1e-3 * b
"""

SHAPES = [(5,), (4, 3), (2, 3, 2)]


@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_a_tuple_assignment_computes_every_value_before_any_name_changes(foreach):
    cls = load_spec(SWAP)
    params = seeded_params(SHAPES)
    expected = [p.clone() for p in params]
    states = [(torch.zeros_like(p), p.clone()) for p in params]
    opt = cls(params, lr=0.1, foreach=foreach)
    for grads in seeded_grads(SHAPES, 6, 7):
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for k, (e, g) in enumerate(zip(expected, grads)):
            a, b = states[k]
            a, b = b, a + g
            states[k] = (a, b)
            # (as torch adds scaled terms: add_ with alpha)
            e.add_(a.add(g).sub_(g.mul(2)), alpha=-0.1).add_(b, alpha=-1e-3)
    for k, (p, e) in enumerate(zip(params, expected)):
        assert torch.equal(p, e), f"parameter {k}: {(p - e).abs().max():.3e} apart"
        assert torch.equal(opt.state[p]["a"], states[k][0]), "state a differs"
        assert torch.equal(opt.state[p]["b"], states[k][1]), "state b differs"


def test_a_tuple_of_another_length_is_refused_at_the_value():
    text = SWAP.replace("a, b <- (b, a + grad)", "a, b <- (b, a, grad)")
    with pytest.raises(SpecError) as info:
        check_text(text)
    found = [(d.code, d.span.line, d.message) for d in info.value.diagnostics]
    assert ("E507", 8, "2 names, but the value is a tuple of 3") in found, found
