"""Procedures called from a per-parameter update, inlined where they are called.

``x <- f(a, b)`` and ``a, b <- f(x)`` in an `update:` run the procedure's statements in place of
the call (its names renamed after it), so the procedure runs on every path the update has: the
for-loop, foreach and fused paths, each checked here against plain torch written from the
algorithm, to the last bit in float64. A Muon-like Newton-Schulz orthogonalisation is one
procedure; a clipped update that returns two values is another. Misused procedures are refused
with their codes.
"""

from __future__ import annotations

import pytest
import torch

from generator import load_spec
from generator.api import check_text
from generator.language.diagnostics import SpecError
from paths import run_path, seeded_grads, seeded_params

ORTHOGONAL = """\
optimizer Orthogonal
summary "momentum, orthogonalised by Newton-Schulz iterations"
input lr: float = 0.02 "learning rate"
input momentum: float = 0.95 "momentum"
input ns_steps: int = 5 "Newton-Schulz iterations"
input foreach: bool? = none, keyword
check not is_complex(param) else "no complex parameters"
state buf (momentum_buffer) <- 0
update:
    buf <- momentum * buf + grad
    if dim(param) == 2:
        u <- orthogonalize(buf, ns_steps)
    else:
        u <- buf
    param <- param - lr * u

procedure orthogonalize(G, steps, eps = 1e-7):
    X <- G / (norm(G) + eps)
    repeat steps:
        A <- X @ transpose(X)
        B <- -4.7750 * A + 2.0315 * (A @ A)
        X <- 3.4445 * X + B @ X
    return X
"""

CLIPPED = """\
optimizer Clipped
summary "sign descent with a clipped step and a clipped memory"
input lr: float = 0.01 "learning rate"
input beta: float = 0.9 "decay"
input foreach: bool? = none, keyword
input fused: bool? = none, keyword
state m <- 0
update:
    m <- beta * m + (1 - beta) * grad
    step, kept <- clip_both(m, grad, bound = 0.5)
    m <- kept
    param <- param - lr * step

procedure clip_both(a, b, bound):
    low <- -bound
    return clamp(a + b, low, bound), clamp(a, low, bound)
"""


def _newton_schulz(g, steps, eps=1e-7):
    x = g / (g.norm() + eps)
    for _ in range(steps):
        a = x @ x.T
        # (-4.7750 a + 2.0315 a², then 3.4445 x + b x: each a matrix product added in one
        # rounding, as torch.addmm adds it)
        b = torch.addmm(a, a, a, beta=-4.7750, alpha=2.0315)
        x = torch.addmm(x, b, x, beta=3.4445)
    return x


@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_a_procedure_orthogonalises_the_momentum_of_matrices(foreach):
    cls = load_spec(ORTHOGONAL)
    shapes = [(4, 3), (5,), (3, 6)]
    params = seeded_params(shapes)
    expected = [p.clone() for p in params]
    opt = cls(params, lr=0.02, momentum=0.9, ns_steps=3, foreach=foreach)
    bufs = [torch.zeros_like(p) for p in expected]
    for grads in seeded_grads(shapes, 4, 1):
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        for e, b, g in zip(expected, bufs, grads):
            b.mul_(0.9).add_(g)
            u = _newton_schulz(b, 3) if b.dim() == 2 else b
            e.add_(u, alpha=-0.02)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p, e, rtol=0, atol=0)
    # the state keeps torch's key
    assert set(opt.state_dict()["state"][0]) == {"momentum_buffer"}


@pytest.mark.parametrize("impl", ["for-loop", "foreach", "fused"])
def test_a_procedure_returning_two_values_runs_on_every_path(impl):
    """(The fused kernel runs uncompiled: its code, not inductor's rounding of `lerp`.)"""
    cls = load_spec(CLIPPED)
    shapes = [(4, 3), (5,), (2, 2, 2)]
    _, got, history = run_path(cls, impl, shapes, 5, eager=True, lr=0.01, beta=0.8)
    gen = torch.Generator().manual_seed(0)  # run_path's parameters, drawn first
    expected = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    ms = [torch.zeros_like(p) for p in expected]
    for grads in history:
        for e, m, g in zip(expected, ms, grads):
            m.lerp_(g, 1 - 0.8)  # (an average as torch's optimizers take it)
            step = (m + g).clamp(-0.5, 0.5)
            m.copy_(m.clamp(-0.5, 0.5))
            e.add_(step, alpha=-0.01)
    for p, e in zip(got, expected):
        torch.testing.assert_close(p, e, rtol=0, atol=0)


def _codes(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        check_text(text)
    return [d.code for d in info.value.diagnostics]


BASE = "optimizer X\ninput lr: float = 0.1\nupdate:\n    d <- {call}\n    param <- param - lr * d\n\n"


@pytest.mark.parametrize(
    "call, procedure, code",
    [
        ("f(grad)", "procedure f(g):\n    return g * lr\n", "E502"),
        ("f(grad, grad)", "procedure f(g):\n    return g\n", "E503"),
        ("f(grad, h = 1)", "procedure f(g):\n    return g\n", "E503"),
        ("f()", "procedure f(g):\n    return g\n", "E503"),
        ("f(grad)", "procedure f(g):\n    h <- g\n", "E504"),
        (
            "f(grad)",
            "procedure f(g):\n    if lr > 0:\n        return g\n    return -g\n",
            "E504",
        ),
        ("f(grad)", "procedure f(g):\n    return g, g\n", "E504"),
        ("f(grad)", "procedure f(g):\n    return f(g)\n", "E403"),
        ("grad", "procedure f(g):\n    return g\n", "E506"),
        ("2 * f(grad)", "procedure f(g):\n    return g\n", "E503"),
    ],
    ids=[
        "reads_a_name_not_its_own",
        "too_many_arguments",
        "an_unknown_keyword",
        "a_missing_argument",
        "no_return",
        "a_return_before_its_end",
        "two_values_for_one_name",
        "calls_itself",
        "never_called",
        "called_inside_an_expression",
    ],
)
def test_misused_procedures_are_refused_with_their_code(call, procedure, code):
    assert code in _codes(BASE.format(call=call) + procedure)
