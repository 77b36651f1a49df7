"""Variants that take a wrapper modifier, against pytorch_optimizer's wrapper around the base.

`optimizer OrthoAdam from Adam` with `with orthograd` is Adam whose update first projects the
gradient orthogonally to the parameter (specs/fragments/orthograd.frag, at `grad`, the gradient as
the step receives it). Its reference is pytorch_optimizer's ``OrthoGrad`` wrapped around
``torch.optim.Adam``: it changes ``p.grad``, then calls the wrapped step, and its state_dict is
the wrapped optimizer's. Each variant is compared step for step (float64, the paper suite's
problem and tolerance, 20 steps) on every implementation path it has, its states under the base's
names, and its state_dict loads into the wrapper and back.
"""

from __future__ import annotations

import copy
import pytest
import torch
from generator.runtime.kernels import eager_kernels
from generator.verify.problems import quadratic_closure
from paper_reference import assert_matches_reference, generated, run
from wrapped_db import WRAPPED

PATH_OPTIONS = {
    "for-loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}


def _cases():
    for w in WRAPPED:
        for kwargs in w.grid:
            for path in w.paths:
                label = ",".join(f"{k}={v}" for k, v in kwargs.items())
                yield pytest.param(w, kwargs, path, id=f"{w.name}-{label}-{path}")


@pytest.mark.parametrize("wrapped,kwargs,path", _cases())
def test_a_wrapper_variant_matches_the_wrapper_around_its_base(wrapped, kwargs, path):
    # (the fused kernels run uncompiled: their code and arithmetic are what is held to the
    # wrapper here; inductor's compilation of them is checked against the for-loop by the
    # paper suite's agreement rows and test_fused.py, and compiling each configuration anew
    # would cost minutes in a clean checkout)
    with eager_kernels():
        assert_matches_reference(
            wrapped.module,
            wrapped.name,
            {**kwargs, **PATH_OPTIONS[path]},
            state_keys={k: k for k in wrapped.states},
            ref_kwargs=kwargs,
            reference_name=wrapped.reference,
        )


@pytest.mark.parametrize(
    "wrapped", [w for w in WRAPPED if w.state_dict is not None], ids=lambda w: w.name
)
def test_a_wrapper_variants_state_dict_loads_into_the_wrapper_and_back(wrapped):
    # for each row of the grid: five steps of ours, loaded into the wrapper (in its layout:
    # Lookahead's keeps its states apart), and the wrapper's loaded back into ours; three more
    # steps on each, the same parameters (Lookahead's k of 3 and less pull in them)
    to_theirs, to_ours = wrapped.state_dict
    for kwargs in wrapped.grid:
        _state_dict_round_trip(wrapped, dict(kwargs), to_theirs, to_ours)


def _state_dict_round_trip(wrapped, kwargs, to_theirs, to_ours):
    label = f"{wrapped.name}({kwargs})"
    cls = generated(wrapped.module, wrapped.name)
    _, ours = run(cls, kwargs, torch.float64, 0, 5)

    def same_groups():  # (the problem's two groups; their options come with the state_dict)
        return [
            {"params": [p.detach().clone().requires_grad_() for p in g["params"]]}
            for g in ours.param_groups
        ]

    def params_of(opt):
        return [p for g in opt.param_groups for p in g["params"]]

    # (copies: torch's load_state_dict keeps a loaded tensor of the parameter's dtype as it is,
    # so the two optimizers would otherwise step one shared state)
    theirs = wrapped.reference(same_groups(), **kwargs)
    theirs.load_state_dict(to_theirs(copy.deepcopy(ours.state_dict())))
    again = cls(same_groups(), **kwargs)
    again.load_state_dict(to_ours(copy.deepcopy(theirs.state_dict())))
    for p_ours, p_theirs, p_again in zip(
        params_of(ours), params_of(theirs), params_of(again), strict=True
    ):
        for key in wrapped.states:
            if key not in ours.state[p_ours]:
                continue
            assert torch.equal(
                ours.state[p_ours][key], theirs.state[p_theirs][key]
            ), f"{label}: state {key!r} differs after loading into the wrapper"
            assert torch.equal(
                again.state[p_again][key], ours.state[p_ours][key]
            ), f"{label}: state {key!r} differs after loading back"
    # the next steps alike: the same gradients to both (and, where the step evaluates a
    # closure, SAM's, the same quadratic model around each side's weights)
    for step in range(3):
        grads = [torch.sin(p.detach() * (step + 2)) for p in params_of(again)]
        for p_theirs, p_again, grad in zip(
            params_of(theirs), params_of(again), grads, strict=True
        ):
            p_theirs.grad, p_again.grad = grad.clone(), grad.clone()
        if getattr(wrapped.reference, "needs_closure", False):
            theirs.step(quadratic_closure(params_of(theirs), grads, step))
            again.step(quadratic_closure(params_of(again), grads, step))
        else:
            theirs.step()
            again.step()
    for k, (p_theirs, p_again) in enumerate(
        zip(params_of(theirs), params_of(again), strict=True)
    ):
        torch.testing.assert_close(
            p_again,
            p_theirs,
            rtol=1e-10,
            atol=1e-14,
            msg=lambda m: f"{label}: parameter {k} after the round trip: {m}",
        )


def test_orthograd_refuses_complex_parameters():
    # (the wrapper skips them and steps the base with their gradient as it is: a class named
    # for OrthoGrad that did not project would be another optimizer)
    cls = generated("orthoadam", "OrthoAdam")
    p = torch.ones(3, dtype=torch.complex128, requires_grad=True)
    p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match="OrthoGrad does not support complex"):
        cls([p]).step()
