"""One seeded run of an optimizer class on one implementation path, for the tests that hold
each path (for-loop, foreach, fused) to a computation written in the test."""

from __future__ import annotations

import warnings
from contextlib import nullcontext

import torch

from generator.runtime.kernels import eager_kernels

IMPL_FLAGS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}}


def run_path(cls, impl, shapes, steps, seed=0, eager=False, **kwargs):
    """(optimizer, parameters, gradients of each step) after ``steps`` float64 steps of
    ``cls`` on ``impl`` ("for-loop", "foreach", "fused"), from seeded parameters of
    ``shapes``; with ``eager``, the fused kernels run uncompiled (their fallback warning
    silenced)."""
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
        with eager_kernels() if eager else nullcontext(), warnings.catch_warnings():
            if eager:
                warnings.simplefilter("ignore", RuntimeWarning)
            opt.step()
        history.append(grads)
    return opt, [p.detach() for p in params], history
