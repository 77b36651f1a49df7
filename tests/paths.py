"""One seeded run of an optimizer class on one implementation path, for the tests that hold
each path (for-loop, foreach, fused) to a computation written in the test; and the seeded
parameters and gradients (over many magnitudes) of tests that step an optimizer themselves.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext

import torch

from generator.runtime.kernels import eager_kernels
from generator.runtime.native import native_kernels

IMPL_FLAGS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}}

# Precision policies (generator.runtime.precision) the tests run: (parameter dtype, options)
PRECISION_POLICIES = {
    "bf16-state": (torch.float32, dict(state_dtype=torch.bfloat16)),
    "bf16-compute-f32": (torch.bfloat16, dict(compute_dtype=torch.float32)),
    "bf16-kahan": (torch.bfloat16, dict(param_rounding="kahan")),
    "bf16-kahan-float32-state": (
        torch.bfloat16,
        dict(param_rounding="kahan", state_dtype=torch.float32),
    ),
    "bf16-stochastic": (
        torch.bfloat16,
        dict(param_rounding="stochastic", rounding_seed=0),
    ),
    "f64-bf16-state": (torch.float64, dict(state_dtype=torch.bfloat16)),
}


def steps_with_a_missing_gradient(cls, steps: int, **kwargs) -> list:
    """The float64 parameters (shapes (3, 2), (4,), (5,)) after each of ``steps`` steps of
    ``cls(params, **kwargs)``, the second parameter without a gradient at steps 1 and 2 (its
    counters then part from the others'), for the tests that hold one path to another.
    """
    gen = torch.Generator().manual_seed(0)
    params = [
        torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_(True)
        for shape in ((3, 2), (4,), (5,))
    ]
    opt = cls(params, **kwargs)
    history = []
    for step in range(steps):
        g = torch.Generator().manual_seed(100 + step)
        for i, p in enumerate(params):
            missing = i == 1 and step in (1, 2)
            p.grad = (
                None if missing else torch.randn(p.shape, generator=g, dtype=p.dtype)
            )
        opt.step()
        history.append([p.detach().clone() for p in params])
    return history


def seeded_params(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]


def seeded_grads(shapes, steps, seed):
    """The gradients of ``steps`` steps, each tensor scaled by 1e-6 … 1e2."""
    gen = torch.Generator().manual_seed(seed)
    return [
        [
            torch.randn(s, generator=gen, dtype=torch.float64)
            * 10.0 ** float(torch.randint(-6, 3, (), generator=gen))
            for s in shapes
        ]
        for _ in range(steps)
    ]


def run_path(cls, impl, shapes, steps, seed=0, eager=False, native=True, **kwargs):
    """(optimizer, parameters, gradients of each step) after ``steps`` float64 steps of
    ``cls`` on ``impl`` ("for-loop", "foreach", "fused"), from seeded parameters of
    ``shapes``; with ``eager``, the fused kernels run uncompiled (their fallback warning
    silenced); without ``native``, the fused path runs its Python kernel where it has a
    native one (generator.runtime.native)."""
    kwargs = {**kwargs, **IMPL_FLAGS.get(impl, {"fused": True})}
    gen = torch.Generator().manual_seed(seed)
    params = [
        torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_()
        for s in shapes
    ]
    opt = cls(params, **kwargs)
    history = []
    for _ in range(steps):
        grads = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        with (
            eager_kernels() if eager else nullcontext(),
            native_kernels(native),
            warnings.catch_warnings(),
        ):
            if eager:
                warnings.simplefilter("ignore", RuntimeWarning)
            opt.step()
        history.append(grads)
    return opt, [p.detach() for p in params], history
