"""The wrapper variants and their references: each generated class that takes a wrapper
modifier (specs/fragments/orthograd.frag), the pytorch_optimizer wrapper around its base that it
is compared with, and its grid. Read by tests/test_wrappers.py (step for step, state_dicts) and
tests/test_every_path_vs_reference.py (every path, over the spec's grid)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch_optimizer import Lion, OrthoGrad

from paper_optim_db import Kwargs


def orthograd(base: type):
    def make(params, **kwargs):
        return OrthoGrad(base, params=params, **kwargs)

    make.__name__ = f"OrthoGrad({base.__name__})"
    make.base = base
    return make


@dataclass(frozen=True)
class Wrapped:
    name: str  # the variant's class, in generated.<module>
    module: str
    reference: object  # (params, **kwargs) -> the wrapper around the base
    grid: tuple[Kwargs, ...]
    states: tuple[str, ...]  # state keys, the base's (and the wrapper's state_dict's)
    paths: tuple[str, ...] = ("for-loop", "foreach", "fused")

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
WRAPPER_REFERENCES = {w.name: w.reference for w in WRAPPED}
# generated class -> the base the wrapper takes (its constructor's keywords are the reference's)
WRAPPED_BASES = {w.name: w.base for w in WRAPPED}
