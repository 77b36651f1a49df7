"""Every implementation path of every generated optimizer against its reference (torch.optim, the
pytorch_optimizer class, or the hand-written class in reference.py), not only against its own
for-loop: the for-loop, foreach and fused paths in float64, over the configurations
`optimgen verify` derives from the spec, until every branch of the spec's update has run.

Complex parameters run too, where the spec takes them (complex128). The fused kernels run
uncompiled here (generator.runtime.kernels.eager_kernels): their code, host split and
arithmetic are what is held to the reference; inductor's compilation of them is checked against
the for-loop in test_fused.py and by the fuzzer. A branch that no configuration reaches must be
listed below with the reason it cannot be reached, and a path that may part from the reference by
more than float64 rounding, with the bound it keeps and why.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import pytorch_optimizer
import torch

import generated
import reference
from generator.commands import verify as V
from generator.api import check_text
from generator.check.queries import refuses_complex
from generator.runtime.kernels import eager_kernels
from paper_optim_db import PAPER_OPTIMIZERS
from wrapped_db import WRAPPED_BASES, WRAPPER_REFERENCES

ROOT = Path(__file__).resolve().parents[1]
SPECS = {
    check_text(p.read_bytes(), f"specs/{p.name}").name: p
    for p in sorted((ROOT / "specs").glob("*.optim"))
}

# Branches no constructor configuration reaches, and why (by the probe's "path:line:col way").
WEIGHT_DECAY_BELOW_0 = "weight decay below 0 (`elif weight_decay > 0` false) is refused"
UNREACHABLE = {
    "specs/fragments/decay.frag:6:10 else": WEIGHT_DECAY_BELOW_0,
    "specs/signsgd.optim:31:14 else": WEIGHT_DECAY_BELOW_0,
    "specs/fragments/adam_update.frag:7:8 else": "AdamW fixes decoupled_weight_decay to True",
    "specs/adabound.optim:39:22 then": "needs a group built with lr 0 that a scheduler "
    "later gives a positive lr (base_lr == 0 and lr > 0)",
    "specs/muon.optim:47:10 else": "adjust_lr_fn takes None, 'original' or "
    "'match_rms_adamw' only: the else is refused at construction",
    "specs/kron.optim:54:12 else": "Kron's schedule fits the factors at every step of the "
    "first 500 (verify runs 12); a probability given fits them at some steps only",
}

# Branches one optimizer cannot take where others that share the line can (a variant fixes the
# option a modifier's branch reads)
UNREACHABLE_IN = {
    "CLion": {
        "specs/fragments/cautious.frag:10:8 else": "CLion fixes cautious to True"
    },
}

# Configurations the grid does not derive (it combines the inputs above a branch two at a
# time, and reads no input through a state's declaration), and why they are needed.
EXTRA_CONFIGS = {
    # the refresh of a parameter's first gradient (`n == 1` with `s % frequency == 0`) on a
    # step after the first: verify's late parameter is a vector, which keeps a statistic only
    # with precondition_1d (its `size(GG[k], 0) > 0` both ways)
    # a fit at some steps only (`c >= 1 / p`: the grid reads no value of p through a
    # quotient), and balancing at every fit (decided by a draw, `host_uniform() < p`)
    "Kron": [
        {"pre_conditioner_update_probability": 0.5, "balance_prob": 1.0},
        {"balance_prob": 1.0},
    ],
    "SOAP": [
        {"precondition_frequency": 1},
        {"precondition_frequency": 1, "precondition_1d": True},
    ],
}

# (optimizer, path): the largest relative deviation from the reference it may show, and why.
BOUNDS = {
    ("Prodigy", "fused"): (
        1e-8,
        "the kernel folds alpha= into a multiplication (1 ulp apart), and Prodigy's estimate "
        "d_hat = num / den amplifies that: num sums dot products that nearly cancel "
        "(measured 2e-10 by step 3 with betas=(0.45, 0.999))",
    ),
}

# How each reference is built, where it is another class (a variant's base: CLion is Lion with
# cautious on) or its default differs from what it is compared as (LaProp's foreach path rounds
# its step sizes to float32): as the paper table says
REFERENCE_CLASS = {i.name: i.reference_name for i in PAPER_OPTIMIZERS}
REFERENCE_OPTIONS = {
    i.name: i.reference_overrides for i in PAPER_OPTIMIZERS if i.reference_overrides
}

# How a configuration's options are given to the reference, where it reads one otherwise.
REFERENCE_KWARGS = {
    # pytorch_optimizer's GaLore projects every matrix of a group that has the key `rank`,
    # on all its singular vectors when rank is None; the generated class's rank=None (its
    # default) projects nothing (the spec's note): the reference is given no rank then
    "GaLore": lambda kw: {k: v for k, v in kw.items() if k != "rank" or v is not None},
}

# Rows where the reference itself computes something else, and why (measured, not assumed):
# (optimizer, dtype, predicate on the configuration's keyword arguments).
REFERENCE_DIFFERS = {
    ("Kate", "complex128"): (
        lambda kw: not kw.get("weight_decouple", True)
        and kw.get("weight_decay", 0.0) != 0,
        "pytorch_optimizer's Kate leaves out L2 decay for complex parameters "
        "(weight_decay=0.1 and 0.0 give the same trajectory there)",
    ),
    ("BertAdamW", "complex128"): (
        lambda kw: True,
        "reference.BertAdamW squares a complex gradient as g * g, not g * conj(g)",
    ),
}

NOT_HERE = {
    "SparseAdam": "takes sparse gradients only: tests/test_sparse_gradients.py",
}


def _reference(name: str) -> V.Reference:
    target = REFERENCE_CLASS.get(name, name)
    if name in WRAPPER_REFERENCES:  # (OrthoGrad(torch.optim.Adam) for OrthoAdam)
        make = WRAPPER_REFERENCES[name]
        ref = V.Reference(make.__name__, make, V.keywords(WRAPPED_BASES[name]))
    elif hasattr(torch.optim, name):
        ref = V.reference(f"torch.optim.{name}")
    elif hasattr(pytorch_optimizer, target):
        ref = V.reference(f"pytorch_optimizer.{target}")
    else:
        make = getattr(reference, name)
        ref = V.Reference(f"reference.{name}", make, V.keywords(make))
    options = REFERENCE_OPTIONS.get(name)
    if options:
        base = ref.make
        ref = V.Reference(
            ref.name, lambda params, **kw: base(params, **kw, **options), ref.takes
        )
    given = REFERENCE_KWARGS.get(name)
    if given:
        made = ref.make
        ref = V.Reference(
            ref.name, lambda params, **kw: made(params, **given(kw)), ref.takes
        )
    return ref


def run(name: str, cls=None) -> tuple[V.Report, object]:
    """Every path of `cls` (the generated class by default) against `name`'s reference over
    the spec's grid: (the report, the checked spec)."""
    path = SPECS[name]
    checked = check_text(path.read_bytes(), f"specs/{path.name}")
    cls = cls or getattr(generated, name)
    with warnings.catch_warnings(), eager_kernels():
        warnings.simplefilter("ignore")
        report = V.verify(
            checked,
            cls,
            _reference(name),
            impls=V.implementations(cls),
            dtypes=["float64"] + ["complex128"] * (not refuses_complex(checked.spec)),
            steps=12,
            configs=EXTRA_CONFIGS.get(name, ()),
        )
    return report, checked


def failures(name: str, report: V.Report) -> list[str]:
    """The rows that fail, less those this file explains (BOUNDS, REFERENCE_DIFFERS)."""
    out = []
    for row in report.rows:
        if row.status != "FAIL":
            continue
        bound = BOUNDS.get((name, row.impl))
        if bound is not None and row.why.startswith("vs reference:"):
            rel = _relative(row.why)
            if rel is not None and rel <= bound[0]:
                continue
        differs = REFERENCE_DIFFERS.get((name, row.dtype))
        if (
            differs is not None
            and row.why.startswith("vs reference:")
            and "; " not in row.why
            and differs[0](dict(row.config.kwargs))
        ):
            # the reference cannot decide it: the path must still agree with the for-loop
            if row.impl == "for-loop" or (
                row.vs_loop is not None and row.vs_loop <= 1e-9
            ):
                continue
        out.append(f"{row.config.label} ({row.impl}, {row.dtype}): {row.why}")
    return out


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_path_matches_the_reference_over_the_spec_grid(name):
    if name in NOT_HERE:
        pytest.skip(NOT_HERE[name])
    report, checked = run(name)
    failed = failures(name, report)
    assert not failed, f"{name}:\n" + "\n".join(failed)
    assert any(r.status == "pass" for r in report.rows), f"{name}: no row compared"
    missed = {p.label for p in report.probes if p.label not in report.hits}
    unexplained = sorted(
        missed - UNREACHABLE.keys() - UNREACHABLE_IN.get(name, {}).keys()
    )
    assert not unexplained, f"{name}: branches never taken: {unexplained}\n" + (
        V.coverage_text(checked, report)
    )


def _relative(why: str) -> float | None:
    """The relative difference of the first element a row names (`... : a vs b`)."""
    try:
        a, b = why.split(": ", 2)[-1].split(" vs ")
        a, b = float(a), float(b.split(";")[0])
    except ValueError:
        return None
    return abs(a - b) / max(abs(b), 1e-300)


def test_every_unreachable_branch_is_one_a_spec_has():
    labels = set()
    for name, path in SPECS.items():
        checked = check_text(path.read_bytes(), f"specs/{path.name}")
        labels |= {p.label for p in V.Coverage(checked).probes}
    assert UNREACHABLE.keys() <= labels, sorted(UNREACHABLE.keys() - labels)
    for name, unreachable in UNREACHABLE_IN.items():
        path = SPECS[name]
        checked = check_text(path.read_bytes(), f"specs/{path.name}")
        own = {p.label for p in V.Coverage(checked).probes}
        assert unreachable.keys() <= own, (name, sorted(unreachable.keys() - own))
