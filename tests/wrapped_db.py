"""The wrapper variants and their references: each generated class that takes a wrapper
modifier (specs/fragments/orthograd.frag), the pytorch_optimizer wrapper around its base that it
is compared with, and its grid. Read by tests/test_wrappers.py (step for step, state_dicts) and
tests/test_every_path_vs_reference.py (every path, over the spec's grid)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from pytorch_optimizer import SAM, Lion, Lookahead, OrthoGrad
from pytorch_optimizer.optimizer.grokfast import gradfilter_ema

from generator.runtime.wrappers import (
    from_lookahead_state_dict,
    to_lookahead_state_dict,
)
from paper_optim_db import Kwargs


def orthograd(base: type):
    def make(params, **kwargs):
        return OrthoGrad(base, params=params, **kwargs)

    make.__name__ = f"OrthoGrad({base.__name__})"
    make.base = base
    return make


def lookahead(base: type):
    def make(params, k=5, alpha=0.5, pullback_momentum="none", **kwargs):
        return Lookahead(
            base,
            k=k,
            alpha=alpha,
            pullback_momentum=pullback_momentum,
            params=params,
            **kwargs,
        )

    make.__name__ = f"Lookahead({base.__name__})"
    make.base = base
    return make


def sam(base: type):
    # (its step needs a closure: the harness gives one, a quadratic model whose gradients at
    # the weights are the step's, so that those at the moved weights differ)
    def make(params, **kwargs):
        return SAM(params, base, **kwargs)

    make.__name__ = f"SAM({base.__name__})"
    make.base = base
    make.needs_closure = True
    return make


class _Parameters:
    """What gradfilter_ema reads of a model: its named parameters (an optimizer's, in order)."""

    def __init__(self, opt):
        self.opt = opt

    def named_parameters(self):
        params = [p for g in self.opt.param_groups for p in g["params"]]
        return ((str(i), p) for i, p in enumerate(params))


def grokfast_ema(base: type):
    # (the paper's use: gradfilter_ema on the model's gradients, then the optimizer's step)
    def make(params, grokfast_alpha=0.98, grokfast_lamb=2.0, **kwargs):
        opt = base(params, **kwargs)
        model, averages, step = _Parameters(opt), {}, opt.step

        def filtered_step(closure=None):
            gradfilter_ema(model, averages, alpha=grokfast_alpha, lamb=grokfast_lamb)
            return step(closure)

        opt.step = filtered_step
        return opt

    make.__name__ = f"gradfilter_ema + {base.__name__}"
    make.base = base
    return make


def _same(state_dict):
    return state_dict


LOOKAHEAD_LAYOUT = (to_lookahead_state_dict, from_lookahead_state_dict)


@dataclass(frozen=True)
class Wrapped:
    name: str  # the variant's class, in generated.<module>
    module: str
    reference: object  # (params, **kwargs) -> the wrapper around the base
    grid: tuple[Kwargs, ...]
    states: tuple[str, ...]  # state keys, the base's (and the wrapper's state_dict's)
    paths: tuple[str, ...] = ("for-loop", "foreach", "fused")
    # ours -> the wrapper's state_dict and back: the same for OrthoGrad's and SAM's (the base's);
    # Lookahead's is {'lookahead_state', 'base_optimizer'} (generator.runtime.wrappers); None
    # where the wrapper keeps its states outside any state_dict (gradfilter_ema's dict)
    state_dict: tuple[Callable, Callable] | None = (_same, _same)

    @property
    def base(self) -> type:
        return self.reference.base


ADAM_GRID: tuple[Kwargs, ...] = (
    {"lr": 1e-2},
    {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "amsgrad": True, "maximize": True},
)
WRAPPED = (
    Wrapped(
        "OrthoAdam",
        "orthoadam",
        orthograd(torch.optim.Adam),
        ADAM_GRID,
        ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    ),
    Wrapped(
        "OrthoAdamW",
        "orthoadamw",
        orthograd(torch.optim.AdamW),
        ADAM_GRID,
        ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    ),
    Wrapped(
        "OrthoLion",
        "ortholion",
        orthograd(Lion),
        (
            {"lr": 1e-3},
            {"lr": 1e-3, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-3, "maximize": True},
            # (Lion's own options act after the wrapper's projection, as in the reference)
            {"lr": 1e-3, "use_gc": True, "adanorm": True, "cautious": True},
        ),
        ("exp_avg",),
    ),
)

# generated class -> (params, **kwargs) -> its reference, the wrapper around its base
# Lookahead: k of 1 (a pull at every step), 3 (several in 20 steps), 20 (one, at the last);
# alpha 0 (the weights put back to the slow ones) and near 1 (hardly pulled)
LOOKAHEAD_OPTIONS: tuple[Kwargs, ...] = (
    {},
    {"k": 1, "alpha": 0.3},
    {"k": 3, "alpha": 0.8},
    {"k": 20, "alpha": 0.0},
    {"k": 2, "alpha": 0.99},
)
WRAPPED = WRAPPED + (
    Wrapped(
        "LookaheadAdam",
        "lookaheadadam",
        lookahead(torch.optim.Adam),
        tuple({"lr": 1e-2, **o} for o in LOOKAHEAD_OPTIONS)
        + (
            {"lr": 1e-2, "k": 3, "amsgrad": True, "weight_decay": 0.1},
            # (Adam has no momentum buffer: the reference adds one it never reads)
            {"lr": 1e-2, "k": 3, "pullback_momentum": "pullback"},
        ),
        ("slow_params",),
        state_dict=LOOKAHEAD_LAYOUT,
    ),
    Wrapped(
        "LookaheadLion",
        "lookaheadlion",
        lookahead(Lion),
        tuple({"lr": 1e-3, **o} for o in LOOKAHEAD_OPTIONS)
        + ({"lr": 1e-3, "k": 3, "cautious": True, "use_gc": True},),
        ("slow_params",),
        state_dict=LOOKAHEAD_LAYOUT,
    ),
    Wrapped(
        "LookaheadSGD",
        "lookaheadsgd",
        lookahead(torch.optim.SGD),
        tuple({"lr": 1e-2, "momentum": 0.9, **o} for o in LOOKAHEAD_OPTIONS)
        + (
            {
                "lr": 1e-2,
                "k": 3,
                "nesterov": True,
                "momentum": 0.9,
                "weight_decay": 0.1,
            },
            # (the pulls of SGD's momentum buffer, which it exposes as `momentum`)
            {"lr": 1e-2, "momentum": 0.9, "k": 3, "pullback_momentum": "reset"},
            {"lr": 1e-2, "momentum": 0.9, "k": 3, "pullback_momentum": "pullback"},
            {
                "lr": 1e-2,
                "momentum": 0.9,
                "dampening": 0.1,
                "k": 2,
                "alpha": 0.3,
                "pullback_momentum": "pullback",
            },
            # (without momentum there is no buffer to pull)
            {"lr": 1e-2, "k": 3, "pullback_momentum": "pullback"},
        ),
        ("slow_params", "slow_momentum"),
        state_dict=LOOKAHEAD_LAYOUT,
    ),
)
WRAPPED = WRAPPED + (
    Wrapped(
        "GrokFastAdamW",
        "grokfastadamw",
        grokfast_ema(torch.optim.AdamW),
        (
            {"lr": 1e-2},
            {"lr": 1e-2, "grokfast_alpha": 0.5, "grokfast_lamb": 5.0},
            {"lr": 1e-2, "grokfast_lamb": 0.0, "weight_decay": 0.1},
            {"lr": 1e-2, "amsgrad": True, "maximize": True},
        ),
        ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
        # (the filter's averages live outside the optimizer, in gradfilter_ema's dict)
        state_dict=None,
    ),
)

# SAM: rho from none to large, ASAM's adaptive ball, gradient centralization, the eps of the norm
SAM_OPTIONS: tuple[Kwargs, ...] = (
    {},
    {"rho": 0.5, "adaptive": True},
    {"rho": 0.0},
    {"rho": 0.2, "use_gc": True, "perturb_eps": 1e-3},
)
WRAPPED = WRAPPED + (
    Wrapped(
        "SAMSGD",
        "samsgd",
        sam(torch.optim.SGD),
        tuple({"lr": 1e-2, "momentum": 0.9, **o} for o in SAM_OPTIONS)
        + ({"lr": 1e-2, "nesterov": True, "momentum": 0.9, "weight_decay": 0.1},),
        ("momentum_buffer",),
    ),
    Wrapped(
        "SAMAdam",
        "samadam",
        sam(torch.optim.Adam),
        tuple({"lr": 1e-2, **o} for o in SAM_OPTIONS)
        + ({"lr": 1e-2, "amsgrad": True, "maximize": True, "rho": 0.1},),
        ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    ),
    Wrapped(
        "SAMAdamW",
        "samadamw",
        sam(torch.optim.AdamW),
        tuple({"lr": 1e-2, **o} for o in SAM_OPTIONS)
        + ({"lr": 1e-2, "weight_decay": 0.1, "adaptive": True},),
        ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    ),
)

WRAPPER_REFERENCES = {w.name: w.reference for w in WRAPPED}
# generated class -> the base the wrapper takes (its constructor's keywords are the reference's)
WRAPPED_BASES = {w.name: w.base for w in WRAPPED}
