"""The paper optimizers' test table (issue 19, "Tests as tables"), in the style of torch's
``optim_db`` (torch/testing/_internal/common_optimizers.py): one frozen ``PaperOptimizerInfo``
per optimizer generated from a paper's spec, and the generic tests of
``test_paper_optimizers.py`` parametrized over it. The harness the tests run on (the problem,
the tolerances, the comparisons) is ``paper_reference.py``.

What an entry holds, and the test that reads it:

* ``grid`` (and ``other_shapes``): options run for 20 steps beside ``pytorch_optimizer.<name>``;
  parameters and the ``state_keys`` state compared after every step
  (``test_matches_pytorch_optimizer``).
* ``agreement``: options under which foreach (float64) and fused (float32) equal the
  generated for-loop (``test_foreach_and_fused_equal_the_for_loop``).
* ``bad_arguments``: refused by both, with the reference's message
  (``test_rejects_invalid_arguments_as_pytorch_optimizer``); the signature is checked for
  every entry (``test_signature_matches_pytorch_optimizer``), with ``schedule_defaults`` and
  ``added_defaults``.
* ``refusals``: what the generated class refuses where the reference runs, or refuses with its
  own message (``test_refuses_what_it_cannot_express``).
* ``step_count``: where the step count lives, as the reference keeps it
  (``test_counts_steps_as_pytorch_optimizer``).
* ``problems``: small problems of their own for edge cases the harness's problem does not
  reach (``test_matches_pytorch_optimizer_on_its_own_problem``).

This module imports only torch: the table can be read without ``pytorch_optimizer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import torch

Kwargs = Mapping[str, Any]


def same_keys(*names: str) -> dict[str, str]:
    """A state key map where the generated class and the reference use the same names."""
    return {n: n for n in names}


@dataclass(frozen=True)
class ShapedGrid:
    """Options run on the harness's problem with other parameter shapes (an option that is
    only defined for some shapes)."""

    name: str  # in the test id: test_matches_pytorch_optimizer[MARS-on_<name>-...]
    shapes: tuple[tuple[int, ...], ...]
    grid: tuple[Kwargs, ...]


@dataclass(frozen=True)
class Refusal:
    """An input the generated class refuses (``error`` whose message matches ``match``, a
    regular expression searched in ``str(error)``), where the reference accepts it or refuses
    it otherwise. The call is ``cls(params, **kwargs)`` on one zero parameter of ``shape`` and
    ``dtype`` (in a group with ``group``'s options when given), followed by a ``step()`` with a
    gradient of ones (or sparse zeros) when ``at_step``."""

    name: str  # the test id
    error: type[Exception]
    match: str | None = None
    kwargs: Kwargs = field(default_factory=dict)
    shape: tuple[int, ...] = (2,)
    dtype: torch.dtype = torch.float32
    group: Kwargs = field(default_factory=dict)
    at_step: bool = False
    sparse_grad: bool = False
    reference_accepts: bool = False  # the reference runs the same call without an error
    accepted_with: Kwargs | None = (
        None  # these options added, the same call goes through
    )


@dataclass(frozen=True)
class StepCount:
    """Where the step count lives, pinned against the reference.

    ``"group"``: ``group['step']`` of each group, equal to the reference's and 6 after the
    harness's 6 steps (``kwargs``), and no per-parameter ``step`` in either;
    ``per_param`` counters the generated class keeps per parameter, with their values then.
    ``"optimizer"``: the optimizer's own ``state[counter]``, 4 after 4 steps of one parameter
    in both, and no per-parameter ``step`` in either."""

    kept_in: Literal["group", "optimizer"]
    kwargs: Kwargs = field(default_factory=dict)
    counter: str = "step"
    per_param: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """A problem of its own: both classes start from ``params(gen)`` and step ``steps`` times
    with ``set_grads(step, params, gen)`` (``gen`` a generator seeded ``seed``, fresh for each
    class), once per ``grid`` item; the parameters after the last step agree within
    ``rtol`` / ``atol`` (``torch.testing.assert_close``)."""

    name: str
    why: str
    params: Callable[[torch.Generator], list[torch.Tensor]]
    set_grads: Callable[[int, list[torch.Tensor], torch.Generator], None]
    grid: tuple[Kwargs, ...]
    steps: int
    rtol: float
    atol: float
    seed: int = 0


@dataclass(frozen=True)
class PaperOptimizerInfo:
    name: str  # the class in generated.<module>
    module: str  # generated/<module>.py
    grid: tuple[Kwargs, ...]
    state_keys: Mapping[str, str]  # generated state key -> reference state key
    agreement: tuple[Kwargs, ...]  # foreach and fused against the for-loop
    bad_arguments: tuple[Kwargs, ...]  # refused by both with the same message
    reference: str = ""  # the class in pytorch_optimizer; "" for the same name
    reference_overrides: Kwargs = field(
        default_factory=dict
    )  # added to the reference's options
    other_shapes: tuple[ShapedGrid, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    step_count: StepCount | None = None
    # constructor defaults that are schedules: an expression in `step` in the generated class,
    # a callable in the reference; they agree at steps 1, 2, 7 and 20
    schedule_defaults: Mapping[str, str] = field(default_factory=dict)
    # `defaults` holds the reference's keys in its order, then these (only the generated class's)
    added_defaults: tuple[str, ...] | None = None
    # options the reference reads from a param group (its constructor's **kwargs) and the
    # generated class takes as keyword arguments: left out of the signature comparison
    group_options: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    notes: str = ""

    @property
    def reference_name(self) -> str:
        return self.reference or self.name

    def reference_kwargs(self, kwargs: Kwargs) -> dict[str, Any]:
        return {**kwargs, **self.reference_overrides}


# -- readable test ids ----------------------------------------------------------------------


def _value_id(v: Any) -> str:
    if torch.is_tensor(v):
        dtype = (
            ""
            if v.dtype == torch.float32
            else f",{str(v.dtype).removeprefix('torch.')}"
        )
        return f"tensor({v.item():g}{dtype})"
    if isinstance(v, tuple):
        return "(" + ",".join(_value_id(x) for x in v) + ")"
    if callable(v):
        return getattr(v, "__name__", "callable")
    return repr(v) if isinstance(v, float) else str(v)


def kwargs_id(kwargs: Kwargs) -> str:
    """``lr=0.01,weight_decay=0.1``; ``defaults`` for no options."""
    return ",".join(f"{k}={_value_id(v)}" for k, v in kwargs.items()) or "defaults"


# -- shared inputs ----------------------------------------------------------------------------

COMPLEX_AT_CONSTRUCTION = Refusal(
    "complex_parameters", ValueError, "complex", dtype=torch.complex128
)
# refused at construction, where the reference refuses them at its step
COMPLEX_REFUSED_BEFORE_THE_REFERENCE = Refusal(
    "complex_parameters",
    ValueError,
    "complex",
    dtype=torch.complex128,
    reference_accepts=True,
)
SPARSE_AT_STEP = Refusal(
    "sparse_gradients",
    ValueError,
    "does not support sparse gradient",
    at_step=True,
    sparse_grad=True,
)
USE_GC = Refusal("use_gc", TypeError, kwargs={"use_gc": True})

# GaLore's projections: every projection_type, ranks below, at and above a matrix's smaller
# size, refreshes every 1 to 4 steps (so twice or more in 20 steps), scales and betas
GALORE_PROJECTIONS: tuple[Kwargs, ...] = (
    {"rank": 2, "update_proj_gap": 3, "scale": 1.0, "projection_type": "std"},
    {"rank": 3, "update_proj_gap": 4, "scale": 0.25, "projection_type": "reverse_std"},
    {"rank": 2, "update_proj_gap": 2, "scale": 1.0, "projection_type": "right"},
    {"rank": 2, "update_proj_gap": 3, "scale": 0.5, "projection_type": "left"},
    {"rank": 2, "update_proj_gap": 3, "scale": 1.0, "projection_type": "full"},
    {"rank": 2, "update_proj_gap": 1, "scale": 1.0, "projection_type": "random"},
    {
        "rank": 10,
        "update_proj_gap": 2,
        "scale": 2.0,
        "projection_type": "std",
        "weight_decay": 0.1,
        "maximize": True,
    },
    {
        "rank": 4,
        "update_proj_gap": 3,
        "scale": 1.0,
        "projection_type": "std",
        "betas": (0.3, 0.9),
        "eps": 1e-8,
    },
)


# -- problems of their own --------------------------------------------------------------------


def _lamb_norm_params(gen):
    return [
        torch.zeros(3, 2, dtype=torch.float64, requires_grad=True),
        torch.full((4, 4), 10.0, dtype=torch.float64, requires_grad=True),
        torch.ones(2, 2, dtype=torch.float64, requires_grad=True),
    ]


def _lamb_norm_grads(step, params, gen):
    for p in params[:2]:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
    params[2].grad = torch.zeros(2, 2, dtype=torch.float64)


def _complex_params(gen):
    return [
        torch.randn(s, dtype=torch.complex128, generator=gen).requires_grad_()
        for s in ((3, 2), (4,))
    ]


def _complex_grads(step, params, gen):
    for p in params:
        p.grad = torch.randn(p.shape, dtype=torch.complex128, generator=gen)


def _lars_zero_norm_params(gen):
    return [
        torch.zeros(3, 2, dtype=torch.float64, requires_grad=True),
        torch.ones(2, 2, dtype=torch.float64, requires_grad=True),
    ]


def _lars_zero_norm_grads(step, params, gen):
    params[0].grad = torch.full((3, 2), 0.5 * (step + 1), dtype=torch.float64)
    params[1].grad = torch.zeros(2, 2, dtype=torch.float64)


def _stacked_statistics_grads(step, params, gen):
    # (gradients over four magnitudes, 1e-2 to 10)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64) * 10.0 ** (
            step % 4 - 2
        )


def _step_to_the_quarter(step):
    return step**0.25


# -- the table --------------------------------------------------------------------------------

# The inputs every Adam-like reference refuses the same way (lr, both betas, decay, eps).
ADAM_STYLE_BAD_ARGUMENTS = (
    {"lr": -1.0},
    {"betas": (1.0, 0.99)},
    {"betas": (0.9, 1.0)},
    {"weight_decay": -0.1},
    {"eps": -1e-8},
)

PAPER_OPTIMIZERS: tuple[PaperOptimizerInfo, ...] = (
    PaperOptimizerInfo(
        "AdaHessian",
        module="adahessian",
        # (its gradients carry the graph of a quadratic model that couples the parameters:
        # generator.verify.problems.curved; the probes are drawn alike on each side)
        grid=(
            {},
            {"lr": 1e-2},
            {"lr": 1e-2, "update_period": 3},
            {"lr": 1e-2, "num_samples": 3},
            {"lr": 1e-2, "hessian_distribution": "gaussian", "num_samples": 2},
            {"lr": 1e-2, "hessian_power": 0.5, "betas": (0.5, 0.9)},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-2, "maximize": True, "eps": 1e-8},
            {"lr": 1e-2, "foreach": False, "update_period": 2},
            {"lr": 1e-2, "foreach": True, "update_period": 2, "num_samples": 2},
            {"lr": 1e-2, "foreach": True, "weight_decay": 0.1, "maximize": True},
            # (the adam_debias modifier, as the reference's option)
            {"lr": 1e-2, "adam_debias": True},
        ),
        state_keys=same_keys("exp_avg", "exp_hessian_diag_sq", "hessian"),
        agreement=(
            {"lr": 1e-2},
            {"lr": 1e-2, "update_period": 3, "weight_decay": 0.1},
        ),
        group_options=("adam_debias",),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, -0.1)},
            {"weight_decay": -0.1},
            {"eps": -1e-16},
            {"hessian_power": 0.0},
            {"hessian_power": 1.5},
        ),
        refusals=(
            COMPLEX_REFUSED_BEFORE_THE_REFERENCE,
            SPARSE_AT_STEP,
            Refusal(
                "gradient_without_graph",
                RuntimeError,
                r"create_graph=True",
                at_step=True,
            ),
            Refusal(
                "update_period_0",
                ValueError,
                "update_period must be positive",
                kwargs={"update_period": 0},
                reference_accepts=True,  # (a ZeroDivisionError at its step)
            ),
            Refusal(
                "num_samples_0",
                ValueError,
                "num_samples must be positive",
                kwargs={"num_samples": 0},
                reference_accepts=True,  # (its estimate stays zero)
            ),
            Refusal(
                "unknown_distribution",
                ValueError,
                "hessian with distribution uniform is not implemented",
                kwargs={"hessian_distribution": "uniform"},
                reference_accepts=True,  # (a NotImplementedError at its step)
            ),
        ),
        step_count=StepCount("group"),
        added_defaults=(
            "update_period",
            "num_samples",
            "hessian_distribution",
            "maximize",
            "adam_debias",  # (a modifier's option, last)
        ),
    ),
    PaperOptimizerInfo(
        "AdaBelief",
        module="adabelief",
        grid=(
            {},
            {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-10},
            {"lr": 1e-2, "ams_bound": True},
            {"lr": 1e-2, "rectify": True},
            {"lr": 1e-2, "rectify": True, "betas": (0.9, 0.8), "n_sma_threshold": 4},
            {
                "lr": 1e-2,
                "rectify": True,
                "degenerated_to_sgd": False,
                "betas": (0.9, 0.9),
            },
            {"lr": 1e-2, "rectify": True, "ams_bound": True, "betas": (0.9, 0.9)},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-2, "maximize": True, "foreach": False},
            # (the adanorm modifier, as the reference's option)
            {"lr": 1e-2, "adanorm": True},
            {"lr": 1e-2, "adanorm": True, "adanorm_r": 0.5, "rectify": True},
            # (the adam_debias modifier, as the reference's option)
            {"lr": 1e-2, "adam_debias": True},
            {
                "lr": 1e-2,
                "adam_debias": True,
                "rectify": True,
                "degenerated_to_sgd": True,
            },
        ),
        state_keys=same_keys("exp_avg", "exp_avg_var", "max_exp_avg_var"),
        agreement=(
            # L2 decay (weight_decouple=False, weight_decay > 0): the decay fragment's elif
            {
                "lr": 1e-2,
                "rectify": True,
                "ams_bound": True,
                "betas": (0.9, 0.9),
                "weight_decay": 0.1,
                "weight_decouple": False,
            },
        ),
        bad_arguments=ADAM_STYLE_BAD_ARGUMENTS,
        group_options=("adanorm", "adanorm_r", "adam_debias"),
        step_count=StepCount("group"),
    ),
    PaperOptimizerInfo(
        "AdaBound",
        module="adabound",
        grid=(
            {},
            {"ams_bound": True},
            {
                "lr": 1e-2,
                "final_lr": 1e-2,
                "gamma": 1.0,
            },  # tight bounds from the first step
            {
                "lr": 1e-2,
                "final_lr": 1e-2,
                "gamma": 0.5,
                "ams_bound": True,
                "betas": (0.8, 0.99),
            },
            {"lr": 1e-2, "final_lr": 0.0, "eps": 1e-6},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
            {
                "lr": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": False,
                "ams_bound": True,
            },
            {"lr": 1e-2, "maximize": True},
        ),
        state_keys=same_keys("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
        agreement=(
            # weight_decouple=False: the L2 branch (an `elif` of the decay fragment) in the kernel
            {
                "lr": 1e-2,
                "final_lr": 1e-2,
                "gamma": 0.5,
                "weight_decay": 0.1,
                "weight_decouple": False,
                "ams_bound": True,
            },
        ),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, -0.1)},
            {"gamma": 0.0},
            {"weight_decay": -0.1},
            {"eps": -1e-3},
        ),
        refusals=(
            # (the reference's constructor takes adam_debias and drops it: it leaves its
            # **kwargs out of its defaults, so only a param group holding the key turns it on)
            Refusal("adam_debias", TypeError, kwargs={"adam_debias": True}),
            USE_GC,
        ),
        notes="The step count is the group's, as the reference keeps it (its bounds under a "
        "changed lr and its base_lr: TestAdaBound).",
    ),
    PaperOptimizerInfo(
        "AdaMod",
        module="adamod",
        grid=(
            {},
            {
                "lr": 1e-2,
                "betas": (0.8, 0.9, 0.5),
            },  # a fast step-size average: the cap binds
            {"lr": 1e-2, "betas": (0.9, 0.999, 1.0), "eps": 1e-6},
            {"lr": 1e-2, "betas": (0.9, 0.99, 0.0)},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-2, "maximize": True, "betas": (0.9, 0.99, 0.9)},
            # (the adam_debias modifier, as the reference's option)
            {"lr": 1e-2, "adam_debias": True},
        ),
        state_keys=same_keys("exp_avg", "exp_avg_sq", "exp_avg_lr"),
        agreement=(
            # weight_decouple=False: the L2 branch (an `elif` of the decay fragment) in the kernel
            {
                "lr": 1e-2,
                "betas": (0.8, 0.9, 0.5),
                "weight_decay": 0.1,
                "weight_decouple": False,
            },
        ),
        group_options=("adam_debias",),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.99, 0.9999)},
            {"betas": (0.9, -0.1, 0.9999)},
            {"betas": (0.9, 0.99, 1.5)},
            {"weight_decay": -0.1},
            {"eps": -1e-3},
        ),
        refusals=(USE_GC,),
        step_count=StepCount("group", kwargs={"lr": 1e-2}),
    ),
    PaperOptimizerInfo(
        "Adan",
        module="adan",
        grid=(
            {},
            {"foreach": False},
            {"lr": 1e-2, "betas": (0.9, 0.8, 0.999), "eps": 1e-6},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "foreach": False},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
            {"lr": 1e-2, "maximize": True},
            {"lr": 1e-2, "maximize": True, "weight_decay": 0.1, "foreach": False},
            # (the gradient_centralization and adanorm modifiers, as the reference's options)
            {"lr": 1e-2, "use_gc": True},
            {"lr": 1e-2, "use_gc": True, "maximize": True, "weight_decay": 0.1},
            {"lr": 1e-2, "adanorm": True},
            {"lr": 1e-2, "adanorm": True, "adanorm_r": 0.5, "use_gc": True},
        ),
        state_keys=same_keys("exp_avg", "exp_avg_sq", "exp_avg_diff", "previous_grad"),
        agreement=({"lr": 1e-2, "weight_decay": 0.1, "maximize": True},),
        group_options=("use_gc", "adanorm", "adanorm_r"),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.92, 0.99)},
            {"betas": (0.98, -0.1, 0.99)},
            {"betas": (0.98, 0.92, 1.5)},
            {"weight_decay": -0.1},
            {"max_grad_norm": -1.0},
            {"eps": -1e-8},
        ),
        refusals=(
            Refusal(
                "max_grad_norm",
                ValueError,
                "max_grad_norm > 0 .* is not supported",
                kwargs={"max_grad_norm": 1.0},
            ),
        ),
        step_count=StepCount("group"),
    ),
    PaperOptimizerInfo(
        "AggMo",
        module="aggmo",
        grid=(
            {},
            {"lr": 1e-2},
            {"lr": 1e-2, "betas": (0.5, 0.9)},  # two buffers
            {"lr": 1e-2, "betas": (0.0, 0.5, 0.9, 0.99, 0.999)},  # five
            {"lr": 1e-2, "betas": (0.9, 0.0, 0.99)},  # not in order
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
            {
                "lr": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": True,
                "fixed_decay": True,
            },
            {"lr": 1e-2, "maximize": True},
            {"lr": 1e-2, "foreach": True},
        ),
        # the reference's dict of buffers keyed by decay rate, in its order, against our list
        state_keys=same_keys("momentum_buffer"),
        agreement=(
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "betas": (0.0, 0.5, 0.9, 0.99), "maximize": True},
        ),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.9)},
            {"betas": (0.0, -0.1, 0.99)},
            {"betas": (0.0, 0.9, 1.5)},
            {"weight_decay": -0.1},
        ),
        refusals=(
            Refusal(
                "one_decay_rate",
                ValueError,
                "two decay rates or more",
                kwargs={"betas": (0.9,)},
            ),
            Refusal(
                "fused",
                TypeError,
                "fused",
                kwargs={"fused": True},
            ),
            Refusal(
                "sparse_gradients",
                ValueError,
                "does not support sparse gradients",
                at_step=True,
                sparse_grad=True,
            ),
        ),
        added_defaults=("maximize",),  # the reference keeps it on the optimizer
    ),
    PaperOptimizerInfo(
        "AdEMAMix",
        module="ademamix",
        grid=(
            {},
            {"foreach": False},
            {"lr": 1e-2, "betas": (0.8, 0.99, 0.999), "alpha": 2.0, "eps": 1e-6},
            {"lr": 1e-2, "t_alpha_beta3": 10.0},
            {"lr": 1e-2, "t_alpha_beta3": 100.0, "betas": (0.85, 0.99, 0.99)},
            {"lr": 1e-2, "t_alpha_beta3": 10.0, "foreach": False},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
            {
                "lr": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": True,
                "fixed_decay": True,
            },
            {"lr": 1e-2, "maximize": True},
            {"lr": 1e-2, "maximize": True, "weight_decay": 0.1, "foreach": False},
            # (the cautious modifier, as the reference's option)
            {"lr": 1e-2, "cautious": True},
            {"lr": 1e-2, "cautious": True, "t_alpha_beta3": 10.0, "foreach": False},
            # (the stable_adamw modifier, as the reference's option; after cautious)
            {"lr": 1e-2, "stable_adamw": True},
            {"lr": 1e-2, "stable_adamw": True, "cautious": True, "t_alpha_beta3": 10.0},
        ),
        state_keys=same_keys("exp_avg", "exp_avg_sq", "exp_avg_slow"),
        agreement=(
            # L2 decay (weight_decouple=False, weight_decay > 0): the decay fragment's elif
            {"lr": 1e-2, "t_alpha_beta3": 10.0, "weight_decay": 0.1},
            {"lr": 1e-2, "cautious": True, "weight_decay": 0.1},
            {"lr": 1e-2, "stable_adamw": True, "maximize": True},
        ),
        group_options=("cautious", "stable_adamw"),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.999, 0.9999)},
            {"betas": (0.9, 1.0, 0.9999)},
            {"betas": (0.9, 0.999, 1.5)},
            {"alpha": -1.0},
            {"t_alpha_beta3": -1.0},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ),
        step_count=StepCount("group"),
    ),
    PaperOptimizerInfo(
        "ADOPT",
        module="adopt",
        grid=(
            {},
            {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-8},
            {"lr": 1e-2, "clip_lambda": None},
            {"lr": 1e-2, "betas": (0.9, 0.5), "eps": 1e-3},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
            {
                "lr": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": True,
                "fixed_decay": True,
            },
            {"lr": 1e-2, "maximize": True, "foreach": False},
            # (the cautious modifier, as the reference's option: against the normed gradient)
            {"lr": 1e-2, "cautious": True},
            {"lr": 1e-2, "cautious": True, "clip_lambda": None, "weight_decay": 0.1},
            # (the stable_adamw modifier, as the reference's option; after cautious)
            {"lr": 1e-2, "stable_adamw": True},
            {"lr": 1e-2, "stable_adamw": True, "cautious": True, "maximize": True},
        ),
        state_keys=same_keys("exp_avg", "exp_avg_sq"),
        agreement=(
            # L2 decay (weight_decouple=False, the default, weight_decay > 0): the elif
            {"lr": 1e-2, "betas": (0.9, 0.5), "weight_decay": 0.1},
            {"lr": 1e-2, "cautious": True},
            {"lr": 1e-2, "stable_adamw": True, "weight_decay": 0.1},
        ),
        group_options=("cautious", "stable_adamw"),
        bad_arguments=ADAM_STYLE_BAD_ARGUMENTS,
        refusals=tuple(
            Refusal(name, ValueError, "clip_lambda must be", kwargs={"clip_lambda": v})
            for name, v in (
                ("a_callable", _step_to_the_quarter),
                ("true", True),
                ("another_schedule", "step ** 0.5"),
            )
        ),
        step_count=StepCount("group"),
        schedule_defaults={"clip_lambda": "step ** 0.25"},
        notes="The group's first step only initialises the second moment, and a parameter "
        "whose first gradient comes later starts from a zero second moment (its gradient "
        "divided by eps, clipped). clip_lambda, a callable in the reference, is "
        '"step ** 0.25" (the reference\'s default schedule) or None.',
    ),
    PaperOptimizerInfo(
        "CAME",
        module="came",
        grid=(
            {},
            {"foreach": False},
            {"lr": 1e-2, "betas": (0.8, 0.99, 0.999)},
            {"lr": 1e-2, "betas": (0.9, 0.95, 0.99), "eps1": 1e-20, "eps2": 1e-10},
            {"lr": 1e-2, "clip_threshold": 0.05},
            {"lr": 1e-2, "clip_threshold": 0.05, "foreach": False},
            {"lr": 1e-2, "ams_bound": True},
            {"lr": 1e-2, "ams_bound": True, "foreach": False},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {
                "lr": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": False,
                "foreach": False,
            },
            {"lr": 1e-2, "maximize": True, "weight_decay": 0.05},
            {"lr": torch.tensor(1e-2, dtype=torch.float64)},
            {
                "lr": 1e-2,
                "ams_bound": True,
                "weight_decay": 0.1,
                "maximize": True,
                "foreach": True,
            },
        ),
        # the factored statistics keep the reduced dimension (size 1); the harness compares
        # them reshaped to the reference's layout
        state_keys=same_keys(
            "exp_avg",
            "exp_avg_sq_row",
            "exp_avg_sq_col",
            "exp_avg_res_row",
            "exp_avg_res_col",
            "exp_avg_sq",
            "exp_avg_sq_hat",
        ),
        # fused: the row and column means and the factored product need the tensors' shapes,
        # so the kernel takes them unflattened (compiled once per number of dimensions)
        agreement=(
            {"lr": 1e-2, "ams_bound": False, "weight_decay": 0.1},
            {"lr": 1e-2, "ams_bound": True, "weight_decay": 0.1},
        ),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.999, 0.9999)},
            {"betas": (0.9, -0.1, 0.9999)},
            {"betas": (0.9, 0.999, 1.5)},
            {"weight_decay": -0.1},
            {"eps1": -1e-30},
            {"eps2": -1e-16},
        ),
        refusals=(
            USE_GC,
            Refusal(
                "complex_parameters",
                ValueError,
                "CAME does not support complex parameter.",
                dtype=torch.complex128,
                at_step=True,
            ),
        ),
    ),
    PaperOptimizerInfo(
        # a variant (`optimizer CLion from Lion`, cautious fixed on): pytorch_optimizer's Lion
        # with its cautious option
        "CLion",
        module="clion",
        reference="Lion",
        reference_overrides={"cautious": True},
        grid=(
            {},
            {"lr": 3e-3, "betas": (0.95, 0.98)},
            {"lr": 1e-3, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-3, "maximize": True, "foreach": False},
            # (its base's other modifiers come with it)
            {"lr": 1e-3, "use_gc": True, "adanorm": True},
        ),
        state_keys=same_keys("exp_avg"),
        agreement=({"lr": 1e-3, "weight_decay": 0.1},),
        bad_arguments=({"lr": -1.0}, {"betas": (1.0, 0.99)}, {"weight_decay": -0.1}),
        group_options=("use_gc", "adanorm", "adanorm_r"),
    ),
    PaperOptimizerInfo(
        "DiffGrad",
        module="diffgrad",
        grid=(
            {},
            {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6},
            {"lr": 1e-2, "ams_bound": True},
            {"lr": 1e-2, "rectify": True},
            {"lr": 1e-2, "rectify": True, "betas": (0.9, 0.8), "n_sma_threshold": 4},
            {
                "lr": 1e-2,
                "rectify": True,
                "degenerated_to_sgd": False,
                "betas": (0.9, 0.9),
            },
            {"lr": 1e-2, "rectify": True, "ams_bound": True, "betas": (0.9, 0.9)},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-2, "maximize": True, "foreach": False},
            # (the adanorm modifier, as the reference's option)
            {"lr": 1e-2, "adanorm": True},
            {"lr": 1e-2, "adanorm": True, "adanorm_r": 0.5, "rectify": True},
            # (the adam_debias modifier, as the reference's option)
            {"lr": 1e-2, "adam_debias": True},
            {"lr": 1e-2, "adam_debias": True, "rectify": True},
        ),
        state_keys=same_keys(
            "exp_avg", "exp_avg_sq", "previous_grad", "max_exp_avg_sq"
        ),
        agreement=(
            # L2 decay (weight_decouple=False, weight_decay > 0): the decay fragment's elif
            {
                "lr": 1e-2,
                "rectify": True,
                "ams_bound": True,
                "betas": (0.9, 0.9),
                "weight_decay": 0.1,
                "weight_decouple": False,
            },
        ),
        bad_arguments=ADAM_STYLE_BAD_ARGUMENTS,
        group_options=("adanorm", "adanorm_r", "adam_debias"),
        step_count=StepCount("group"),
    ),
    PaperOptimizerInfo(
        "GaLore",
        module="galore",
        grid=(
            {},
            {"lr": 1e-2, "foreach": False},
            {"lr": 1e-2, "weight_decay": 0.1, "maximize": True, "foreach": False},
            *(
                {"lr": 1e-2, "foreach": foreach, **projection}
                for projection in GALORE_PROJECTIONS
                for foreach in (False, True)
            ),
        ),
        other_shapes=(
            # a wide matrix, a tall one, and one whose first gradient comes at the second
            # step (the harness's parameter 3 misses steps 0, 4 and 5): its projection is
            # made then, between two refreshes
            ShapedGrid(
                "wide_tall_and_late_matrices",
                shapes=((5, 4), (3, 6), (3, 3, 2), (2, 7), (4,)),
                grid=tuple(
                    {"lr": 1e-2, "foreach": foreach, **projection}
                    for projection in GALORE_PROJECTIONS
                    for foreach in (False, True)
                ),
            ),
        ),
        # the reference keeps its projection in a GaLoreProjector object, not a tensor
        state_keys=same_keys("exp_avg", "exp_avg_sq"),
        agreement=tuple(
            {"lr": 1e-2, **projection} for projection in GALORE_PROJECTIONS[:3]
        ),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, -0.1)},
            {"weight_decay": -0.1},
            {"eps": -1e-6},
        ),
        refusals=(
            COMPLEX_REFUSED_BEFORE_THE_REFERENCE,
            SPARSE_AT_STEP,
        ),
        step_count=StepCount("group"),
        added_defaults=(
            "maximize",
            "rank",
            "update_proj_gap",
            "scale",
            "projection_type",
        ),
        group_options=("rank", "update_proj_gap", "scale", "projection_type"),
        notes="The projection options are given to both classes in full: the reference "
        "reads update_proj_gap, scale and projection_type from any group that sets rank.",
    ),
    PaperOptimizerInfo(
        "Kate",
        module="kate",
        grid=(
            {},
            {"foreach": False},
            {"lr": 3e-2, "delta": 1e-8},
            {"lr": 1e-2, "delta": 0.5, "eps": 1e-3},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {
                "lr": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": False,
                "foreach": False,
            },
            {"lr": 1e-2, "maximize": True},
            {"lr": 1e-2, "maximize": True, "foreach": False},
        ),
        state_keys=same_keys("m", "b"),
        agreement=(
            {
                "lr": 1e-2,
                "delta": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": False,
                "maximize": True,
            },
        ),
        bad_arguments=(
            {"lr": -1.0},
            {"delta": -0.1},
            {"delta": 1.0},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ),
    ),
    PaperOptimizerInfo(
        "Kron",
        module="kron",
        # (the factors are fitted at every step of the first 500 by default: the grid also
        # fits them at some steps only, balances them at every fit, keeps factors diagonal
        # by each memory mode and size limit, and in every dtype)
        grid=(
            {},
            {"lr": 1e-2},
            {"lr": 1e-2, "memory_save_mode": "one_diag"},
            {"lr": 1e-2, "memory_save_mode": "smart_one_diag"},
            {"lr": 1e-2, "memory_save_mode": "all_diag"},
            {"lr": 1e-2, "balance_prob": 1.0},
            {"lr": 1e-2, "pre_conditioner_update_probability": 0.3},
            {"lr": 1e-2, "pre_conditioner_update_probability": 0.0},
            {"lr": 1e-2, "max_size_triangular": 3, "min_ndim_triangular": 1},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-2, "precondition_dtype": torch.float64, "momentum": 0.5},
            {"lr": 1e-2, "mu_dtype": torch.float32},
            {
                "lr": 1e-2,
                "precondition_dtype": None,
                "momentum_into_precondition_update": False,
                "maximize": True,
            },
        ),
        other_shapes=(
            ShapedGrid(
                # (the 9 > max_size_triangular keeps a diagonal factor; (6, 6) ties for
                # one_diag, which takes its last dimension)
                "ranks_0_to_4",
                shapes=((2, 3, 2, 2), (), (3,), (4, 2, 3), (6, 1), (7, 9), (6, 6)),
                grid=(
                    {"lr": 1e-2, "max_size_triangular": 8, "balance_prob": 1.0},
                    {"lr": 1e-2, "memory_save_mode": "one_diag"},
                    {"lr": 1e-2, "memory_save_mode": "smart_one_diag"},
                    {"lr": 1e-2, "min_ndim_triangular": 3, "balance_prob": 0.5},
                ),
            ),
        ),
        # (the reference also keeps its einsum expressions in the state, as strings)
        state_keys=same_keys("momentum_buffer", "Q"),
        agreement=(),
        bad_arguments=(
            {"lr": -1.0},
            {"momentum": 1.0},
            {"momentum": -0.1},
            {"weight_decay": -0.1},
        ),
        refusals=(
            COMPLEX_REFUSED_BEFORE_THE_REFERENCE,
            SPARSE_AT_STEP,
            Refusal(
                "memory_save_mode",
                ValueError,
                "invalid memory_save_mode",
                kwargs={"memory_save_mode": "two_diag"},
                reference_accepts=True,
            ),
            Refusal(
                "callable_schedule",
                TypeError,
                "callable schedule is not supported",
                kwargs={"pre_conditioner_update_probability": lambda n: 0.5},
                reference_accepts=True,
            ),
        ),
        step_count=StepCount("group"),
        added_defaults=("balance_prob", "maximize"),
    ),
    PaperOptimizerInfo(
        "Lamb",
        module="lamb",
        grid=(
            {},
            {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-8},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-2, "grad_averaging": False},
            {"lr": 1e-2, "adam": True, "weight_decay": 0.1},
            {"lr": 1e-2, "rectify": True},
            {
                "lr": 1e-2,
                "rectify": True,
                "degenerated_to_sgd": True,
                "weight_decay": 0.1,
            },
            {
                "lr": 1e-2,
                "rectify": True,
                "degenerated_to_sgd": True,
                "n_sma_threshold": 8,
                "weight_decay": 0.1,
                "weight_decouple": False,
            },
            {"lr": 1e-2, "rectify": True, "adam": True, "n_sma_threshold": 7},
            {"lr": 1e-2, "max_grad_norm": 2.0, "maximize": True},
            {
                "lr": 1e-2,
                "foreach": False,
                "weight_decay": 0.1,
                "weight_decouple": False,
            },
            # (the adanorm modifier, as the reference's option)
            {"lr": 1e-2, "adanorm": True},
            {"lr": 1e-2, "adanorm": True, "adanorm_r": 0.5, "grad_averaging": False},
            # (the adam_debias modifier, as the reference's option)
            {"lr": 1e-2, "adam_debias": True},
            {
                "lr": 1e-2,
                "adam_debias": True,
                "rectify": True,
                "degenerated_to_sgd": True,
            },
        ),
        state_keys=same_keys("exp_avg", "exp_avg_sq"),
        # fused: the trust ratio's norms are reductions over the whole tensor, in the kernel
        agreement=(
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-2, "rectify": True},
            {"lr": 1e-2, "rectify": True, "degenerated_to_sgd": True, "adam": True},
        ),
        group_options=("adanorm", "adanorm_r", "adam_debias"),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, 1.0)},
            {"weight_decay": -0.1},
            {"max_grad_norm": -1.0},
            {"eps": -1e-6},
        ),
        refusals=(
            Refusal(
                "pre_norm",
                ValueError,
                "pre_norm=True is not supported",
                kwargs={"pre_norm": True},
                reference_accepts=True,
            ),
        ),
        step_count=StepCount("group", kwargs={"lr": 1e-2}),
        problems=(
            Problem(
                "trust_ratio_norms",
                "the trust ratio's edge cases: a zero matrix (ratio 1), a matrix whose norm "
                "is clamped to 10, a zero gradient (a zero update: ratio 1)",
                _lamb_norm_params,
                _lamb_norm_grads,
                grid=(
                    {"lr": 0.1},
                    {
                        "lr": 0.1,
                        "weight_decay": 0.1,
                        "weight_decouple": False,
                        "foreach": False,
                    },
                    {"lr": 0.1, "rectify": True, "degenerated_to_sgd": True},
                ),
                steps=8,
                rtol=1e-12,
                atol=1e-15,
                seed=0,
            ),
            Problem(
                "complex_parameters",
                "complex parameters: the reference runs on their real views (its "
                "per-parameter path)",
                _complex_params,
                _complex_grads,
                grid=(
                    {"lr": 0.1},
                    {"lr": 0.1, "rectify": True, "degenerated_to_sgd": True},
                ),
                steps=8,
                rtol=1e-12,
                atol=1e-15,
                seed=1,
            ),
        ),
    ),
    PaperOptimizerInfo(
        "LaProp",
        module="laprop",
        grid=(
            {},
            {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-8},
            {"lr": 1e-2, "centered": True},
            {"lr": 1e-2, "centered": True, "steps_before_using_centered": 3},
            {"lr": 1e-2, "ams_bound": True},
            {
                "lr": 1e-2,
                "centered": True,
                "steps_before_using_centered": 5,
                "ams_bound": True,
            },
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-2, "maximize": True, "foreach": False},
            {"lr": torch.tensor(1e-2, dtype=torch.float64)},
            # (the cautious modifier, as the reference's option)
            {"lr": 1e-2, "cautious": True},
            {"lr": 1e-2, "cautious": True, "centered": True, "foreach": False},
        ),
        state_keys=same_keys(
            "exp_avg", "exp_avg_sq", "exp_mean_avg_beta2", "max_exp_avg_sq"
        ),
        # the reference's default foreach path rounds the step sizes to float32, which puts
        # its two paths up to ~1e-8 apart: it runs on its for-loop
        reference_overrides={"foreach": False},
        agreement=(
            {
                "lr": 1e-2,
                "centered": True,
                "steps_before_using_centered": 5,
                "ams_bound": True,
                "weight_decay": 0.1,
            },
            {"lr": 1e-2, "cautious": True, "weight_decay": 0.1},
        ),
        group_options=("cautious",),
        bad_arguments=ADAM_STYLE_BAD_ARGUMENTS,
        # the parameter without gradient on steps 0, 4 and 5 has had 3 momentum steps
        step_count=StepCount("group", per_param={"momentum_step": (6, 6, 6, 3)}),
        notes="The second moment's bias correction and the centered switch count the group's "
        "steps (group['step']), as the reference does; the momentum's bias correction counts "
        "the parameter's own steps (momentum_step), where the reference keeps a per-parameter "
        "moving average of lr (exp_avg_lr_1): the two agree while lr is constant "
        "(TestLaProp.test_a_changed_lr_is_not_followed pins down the difference).",
    ),
    PaperOptimizerInfo(
        "LARS",
        module="lars",
        grid=(
            {},
            {"lr": 1e-2, "trust_coefficient": 0.02},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "momentum": 0.0, "weight_decay": 0.05},
            {"lr": 1e-2, "momentum": 0.8, "dampening": 0.3},
            {"lr": 1e-2, "nesterov": True, "weight_decay": 0.01},
            {"lr": 1e-2, "maximize": True},
            {"lr": 1e-2, "foreach": False, "weight_decay": 0.1, "nesterov": True},
        ),
        state_keys=same_keys("momentum_buffer"),
        # fused: `if dim(param) > 1` is decided on the host, the norms are in the kernel
        agreement=({"lr": 1e-2, "weight_decay": 0.1, "nesterov": True},),
        bad_arguments=(
            {"lr": -1.0},
            {"weight_decay": -0.1},
            {"momentum": 1.0},
            {"momentum": -0.1},
            {"dampening": 1.0},
            {"trust_coefficient": -1e-3},
        ),
        refusals=(
            Refusal(
                "complex_parameters",
                ValueError,
                "Lars does not support complex parameter.",
                shape=(3,),
                dtype=torch.complex128,
                at_step=True,
            ),
        ),
        problems=(
            Problem(
                "zero_norms",
                "the trust ratio's edge cases: a zero matrix (ratio 1), a zero gradient "
                "(ratio 1 when the denominator is 0)",
                _lars_zero_norm_params,
                _lars_zero_norm_grads,
                grid=(
                    {"lr": 0.1, "weight_decay": 0.0},
                    {"lr": 0.1, "weight_decay": 0.1},
                ),
                steps=3,
                rtol=1e-12,
                atol=0,
            ),
        ),
    ),
    PaperOptimizerInfo(
        "Lion",
        module="lion",
        grid=(
            {},
            {"lr": 3e-3, "betas": (0.95, 0.98)},
            {"lr": 1e-3, "weight_decay": 0.1},
            {"lr": 1e-3, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-3, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-3, "maximize": True},
            # (the cautious modifier, as the reference's option: keyword, read from the group)
            {"lr": 1e-3, "cautious": True},
            {
                "lr": 3e-3,
                "cautious": True,
                "weight_decay": 0.1,
                "weight_decouple": False,
            },
            {"lr": 1e-3, "cautious": True, "maximize": True, "foreach": False},
            # (the gradient_centralization and adanorm modifiers, as the reference's options)
            {"lr": 1e-3, "use_gc": True},
            {"lr": 1e-3, "use_gc": True, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-3, "adanorm": True},
            {"lr": 3e-3, "adanorm": True, "adanorm_r": 0.5, "maximize": True},
            {
                "lr": 1e-3,
                "use_gc": True,
                "adanorm": True,
                "cautious": True,
                "weight_decay": 0.1,
                "weight_decouple": False,
            },
        ),
        state_keys=same_keys("exp_avg"),
        agreement=(
            {"lr": 1e-3, "weight_decay": 0.1},
            {"lr": 1e-3, "weight_decay": 0.1, "cautious": True},
            {"lr": 1e-3, "use_gc": True, "adanorm": True, "cautious": True},
        ),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.99)},
            {"weight_decay": -0.1},
        ),
        group_options=("cautious", "use_gc", "adanorm", "adanorm_r"),
    ),
    PaperOptimizerInfo(
        "MADGRAD",
        module="madgrad",
        grid=(
            {},
            {"foreach": False},
            {"lr": 1e-2, "momentum": 0.0},
            {"lr": 1e-2, "momentum": 0.0, "eps": 0.0},
            {"lr": 1e-2, "momentum": 0.0, "eps": 0.0, "foreach": False},
            {"lr": 1e-2, "momentum": 0.5, "eps": 0.0},
            {"lr": 0.0},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "foreach": False},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True, "momentum": 0.0},
            {"lr": 1e-2, "maximize": True},
            {"lr": 1e-2, "maximize": True, "momentum": 0.0, "foreach": False},
        ),
        state_keys=same_keys("grad_sum_sq", "s", "x0"),
        agreement=({"lr": 1e-2, "weight_decay": 0.1, "maximize": True},),
        bad_arguments=(
            {"lr": -1.0},
            {"momentum": -0.1},
            {"momentum": 1.0},
            {"weight_decay": -0.1},
            {"eps": -1e-6},
        ),
        refusals=(
            Refusal(
                "sparse_gradients",
                ValueError,
                "MADGRAD does not support sparse gradient.",
                kwargs={"momentum": 0.0},
                shape=(3, 2),
                at_step=True,
                sparse_grad=True,
            ),
        ),
        # both count the optimizer's steps (state['k']): a parameter that went without a
        # gradient on some steps still takes the optimizer's k when it steps again
        step_count=StepCount("optimizer", counter="k"),
    ),
    PaperOptimizerInfo(
        "MARS",
        module="mars",
        grid=(
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
        ),
        # "shampoo" takes tensors of at most two dimensions: its grid runs on matrices (one of
        # them wide, two tall: the Newton-Schulz iteration runs on the transpose of a tall
        # one) and vectors
        other_shapes=(
            ShapedGrid(
                "matrices",
                shapes=((5, 4), (4,), (3, 6), (2,), (4, 4)),
                grid=(
                    {"mars_type": "shampoo"},
                    {"mars_type": "shampoo", "foreach": True},
                    {
                        "mars_type": "shampoo",
                        "optimize_1d": True,
                        "lr": 1e-2,
                        "eps": 1e-3,
                    },
                    {
                        "mars_type": "shampoo",
                        "cautious": True,
                        "ams_bound": True,
                        "weight_decay": 0.1,
                        "maximize": True,
                    },
                ),
            ),
        ),
        state_keys=same_keys("exp_avg", "exp_avg_sq", "last_grad", "max_exp_avg_sq"),
        # fused: the clipping norm is a whole-tensor reduction, in the kernel (shampoo's
        # fused path: TestMARS)
        agreement=(
            {"cautious": True, "weight_decay": 0.1, "ams_bound": True},
            {"mars_type": "lion", "weight_decay": 0.1, "weight_decouple": False},
        ),
        bad_arguments=(
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
        ),
        refusals=(
            USE_GC,
            COMPLEX_AT_CONSTRUCTION,
            # shampoo on a tensor of more than two dimensions: refused at construction, and at
            # the step where only a group asks for shampoo
            Refusal(
                "shampoo_on_3d_tensors",
                ValueError,
                "at most 2 dimensions",
                kwargs={"mars_type": "shampoo"},
                shape=(2, 2, 2),
            ),
            Refusal(
                "shampoo_group_on_3d_tensors",
                ValueError,
                "at most 2 dimensions",
                group={"mars_type": "shampoo"},
                shape=(2, 2, 2),
                at_step=True,
            ),
        ),
        step_count=StepCount("group"),
        added_defaults=("maximize", "fused"),  # maximize and fused last, only in ours
    ),
    PaperOptimizerInfo(
        "NovoGrad",
        module="novograd",
        grid=(
            {},
            {"lr": 1e-2, "betas": (0.9, 0.5), "eps": 1e-3},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
            {
                "lr": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": True,
                "fixed_decay": True,
            },
            {"lr": 1e-2, "grad_averaging": True},
            {"lr": 1e-2, "maximize": True, "weight_decay": 0.01},
            {"lr": 1e-2, "foreach": False, "grad_averaging": True, "weight_decay": 0.1},
            {"lr": torch.tensor(1e-2), "weight_decay": 0.1, "weight_decouple": True},
            # (the reference's adam_debias keyword: the step size times sqrt(1 - beta2^t))
            {"lr": 1e-2, "adam_debias": True},
            {
                "lr": 1e-2,
                "adam_debias": True,
                "betas": (0.9, 0.5),
                "grad_averaging": True,
            },
        ),
        state_keys=same_keys("grads_ema", "moments"),
        agreement=({"lr": 1e-2, "weight_decay": 0.1, "grad_averaging": True},),
        group_options=("adam_debias",),
        step_count=StepCount("group"),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.98)},
            {"betas": (0.9, -0.1)},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ),
    ),
    PaperOptimizerInfo(
        "Prodigy",
        module="prodigy",
        # the reference takes the first group's lr for every group (the harness gives the
        # second group half the lr when `lr` is set): the grid varies the other options, lr
        # stays the default 1
        grid=(
            {},
            {"foreach": False},
            {"betas": (0.8, 0.99), "beta3": 0.95},
            {"d0": 1e-3, "d_coef": 0.5},
            {"d0": 1e-4, "growth_rate": 1.5},
            {"weight_decay": 0.1},
            {"weight_decay": 0.1, "fixed_decay": True, "foreach": False},
            {"weight_decay": 0.1, "weight_decouple": False},
            {"bias_correction": True},
            {"safeguard_warmup": True, "d0": 1e-3},
            {"eps": None},
            {"eps": None, "bias_correction": True, "foreach": False},
            {"maximize": True, "d0": 1e-3},
        ),
        state_keys=same_keys("s", "p0", "exp_avg", "exp_avg_sq"),
        # fused: a kernel per pass; the first adds each parameter's terms to the sums in place
        agreement=(
            {"d0": 1e-3, "weight_decay": 0.1, "bias_correction": True},
            {"d0": 1e-3, "eps": None, "safeguard_warmup": True, "maximize": True},
        ),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, 1.0)},
            {"beta3": 1.5},
            {"beta3": -0.1},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ),
        notes="Two passes over the parameters per step, with sums over all of them "
        "(`state optimizer ...: total`) between (d, its sums and its step: TestProdigy).",
    ),
    PaperOptimizerInfo(
        "QHAdam",
        module="qhadam",
        grid=(
            {},
            {"lr": 3e-3, "betas": (0.95, 0.98), "eps": 1e-6},
            {"lr": 1e-2, "nus": (0.7, 1.0)},
            {"lr": 1e-2, "nus": (1.0, 0.8)},
            {"lr": 1e-2, "nus": (0.0, 0.5), "betas": (0.8, 0.99)},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
            {
                "lr": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": True,
                "fixed_decay": True,
            },
            {"lr": 1e-2, "nus": (0.7, 0.9), "maximize": True},
            {"lr": 1e-2, "nus": (0.7, 0.9), "foreach": False},
            {"lr": torch.tensor(1e-2)},
        ),
        state_keys=same_keys("exp_avg", "exp_avg_sq", "beta1_weight", "beta2_weight"),
        agreement=({"lr": 1e-2, "nus": (0.7, 0.9), "weight_decay": 0.1},),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.99)},
            {"betas": (0.9, -0.1)},
            {"nus": (1.5, 1.0)},
            {"nus": (1.0, -0.5)},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ),
    ),
    PaperOptimizerInfo(
        "ScheduleFreeAdamW",
        module="schedulefree_adamw",
        grid=(
            {},
            {"foreach": False},
            {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "warmup_steps": 5},
            {"lr": 1e-2, "warmup_steps": 5, "r": 1.0, "weight_lr_power": 1.0},
            {"lr": 1e-2, "weight_lr_power": 0.0, "foreach": False},
            {"lr": 1e-2, "decoupling_c": 3},
            {"lr": 1e-2, "ams_bound": True},
            {"lr": 1e-2, "ams_bound": True, "weight_decay": 0.1, "foreach": False},
            {"lr": 1e-2, "maximize": True, "warmup_steps": 3},
        ),
        state_keys=same_keys("z", "exp_avg_sq", "max_exp_avg_sq"),
        agreement=(
            {"lr": 1e-2, "weight_decay": 0.1, "warmup_steps": 4, "ams_bound": True},
        ),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.0, 0.999)},
            {"betas": (0.9, 1.0)},
            {"decoupling_c": -1},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ),
        notes="In training mode here; its eval() / train() switches (a spec `method`): "
        "TestScheduleFreeAdamW.",
    ),
    PaperOptimizerInfo(
        "Shampoo",
        module="shampoo",
        grid=(
            {},
            {"lr": 1e-2},
            {"lr": 1e-2, "preconditioning_compute_steps": 3},
            {"lr": 1e-2, "momentum": 0.5},
            {"lr": 1e-2, "momentum": 0.9, "maximize": True},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True},
            {
                "lr": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": True,
                "fixed_decay": True,
            },
            {"lr": 1e-2, "maximize": True},
            {"lr": 1e-2, "matrix_eps": 1e-3},
        ),
        other_shapes=(
            ShapedGrid(
                "ranks_0_to_4",
                shapes=((2, 3, 2, 2), (), (3,), (4, 2, 3), (6, 1)),
                grid=(
                    {"lr": 1e-2},
                    {"lr": 1e-2, "momentum": 0.5, "preconditioning_compute_steps": 2},
                ),
            ),
        ),
        # the reference's pre_cond_0, pre_cond_1, ... against our list, dimension by dimension
        state_keys={"pre_cond": "pre_cond_*", "inv_pre_cond": "inv_pre_cond_*"},
        agreement=(),
        bad_arguments=(
            {"lr": -1.0},
            {"momentum": 1.0},
            {"momentum": -0.1},
            {"weight_decay": -0.1},
            {"preconditioning_compute_steps": 0},
            {"matrix_eps": -1e-6},
        ),
        refusals=(
            COMPLEX_AT_CONSTRUCTION,
            SPARSE_AT_STEP,
            Refusal("foreach", TypeError, "foreach", kwargs={"foreach": True}),
        ),
        step_count=StepCount("group"),
        added_defaults=("preconditioning_compute_steps", "maximize"),
    ),
    PaperOptimizerInfo(
        "ScalableShampoo",
        module="scalable_shampoo",
        # (the defaults precondition nothing in 20 steps: from step 25, refreshed every 1000;
        # the rest start early, refresh every 1 to 3 steps and cut the tensors in blocks)
        grid=(
            {},
            {
                "lr": 1e-2,
                "start_preconditioning_step": 2,
                "preconditioning_compute_steps": 3,
                "block_size": 4,
            },
            {
                "lr": 1e-2,
                "start_preconditioning_step": 1,
                "preconditioning_compute_steps": 1,
                "block_size": 2,
                "graft_type": 2,
            },
            {
                "lr": 1e-2,
                "start_preconditioning_step": 5,
                "preconditioning_compute_steps": 2,
                "block_size": 4,
                "graft_type": 3,
                "nesterov": False,
            },
            {
                "lr": 1e-2,
                "start_preconditioning_step": 1,
                "preconditioning_compute_steps": 2,
                "block_size": 4,
                "graft_type": 4,
                "moving_average_for_momentum": True,
            },
            {
                "lr": 1e-2,
                "start_preconditioning_step": 1,
                "preconditioning_compute_steps": 2,
                "block_size": 4,
                "graft_type": 0,
                "use_svd": True,
            },
            {
                "lr": 1e-2,
                "start_preconditioning_step": 1,
                "preconditioning_compute_steps": 2,
                "block_size": 8,
                "pre_conditioner_type": 1,
                "weight_decay": 0.1,
            },
            {
                "lr": 1e-2,
                "start_preconditioning_step": 1,
                "preconditioning_compute_steps": 2,
                "block_size": 8,
                "pre_conditioner_type": 2,
                "weight_decay": 0.1,
                "decoupled_weight_decay": True,
            },
            {
                "lr": 1e-2,
                "start_preconditioning_step": 1,
                "preconditioning_compute_steps": 2,
                "block_size": 4,
                "shape_interpretation": False,
                "decoupled_learning_rate": False,
                "maximize": True,
            },
            {
                "lr": 1e-2,
                "betas": (0.5, 0.9),
                "start_preconditioning_step": 1,
                "preconditioning_compute_steps": 1,
                "statistics_compute_steps": 2,
                "block_size": 0,
                "inverse_exponent_override": 3,
            },
            # the 3-d tensor is not preconditioned (its rank), nor the matrix (its 5 > 4)
            {
                "lr": 1e-2,
                "start_preconditioning_step": 1,
                "preconditioning_compute_steps": 1,
                "block_size": 3,
                "skip_preconditioning_rank_lt": 3,
                "no_preconditioning_for_layers_with_dim_gt": 4,
            },
        ),
        other_shapes=(
            ShapedGrid(
                "ranks_0_to_4",
                shapes=((2, 3, 2, 2), (), (3,), (4, 2, 3), (6, 1), (7, 9)),
                grid=(
                    {
                        "lr": 1e-2,
                        "start_preconditioning_step": 1,
                        "preconditioning_compute_steps": 2,
                        "block_size": 3,
                    },
                    {
                        "lr": 1e-2,
                        "start_preconditioning_step": 3,
                        "preconditioning_compute_steps": 1,
                        "block_size": 2,
                        "graft_type": 3,
                        "shape_interpretation": False,
                    },
                    {
                        "lr": 1e-2,
                        "start_preconditioning_step": 1,
                        "preconditioning_compute_steps": 3,
                        "block_size": 100,
                        "pre_conditioner_type": 2,
                        "use_svd": True,
                    },
                ),
            ),
        ),
        # (the reference keeps its statistics and preconditioners in a PreConditioner object,
        # and the graft's in a Graft object: compared through the parameters)
        state_keys=same_keys("momentum"),
        agreement=(),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, -0.1)},
            {"weight_decay": -0.1},
            {"start_preconditioning_step": 0},
            {"preconditioning_compute_steps": 0},
            {"statistics_compute_steps": 0},
            {"diagonal_eps": -1e-10},
            {"matrix_eps": -1e-6},
        ),
        refusals=(
            COMPLEX_REFUSED_BEFORE_THE_REFERENCE,
            SPARSE_AT_STEP,
            Refusal(
                "pre_conditioner_type",
                ValueError,
                "pre_conditioner_type must be",
                kwargs={"pre_conditioner_type": 3},
                reference_accepts=True,
            ),
        ),
        problems=(
            Problem(
                "stacked_statistics",
                "bit for bit where the reference stacks a tensor's statistics (all of one "
                "shape) and adds their products with one baddbmm_ of row-major unfoldings "
                "(the spec's one_shape branch, and its contiguous copy of an unfolding along "
                "the last dimension: each measured 5e-13 to 1e-12 apart without)",
                params=lambda gen: [
                    torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_()
                    for s in ((12, 10), (32, 48), (6, 5, 4))
                ],
                set_grads=_stacked_statistics_grads,
                grid=(
                    {
                        "lr": 1e-2,
                        "start_preconditioning_step": 1,
                        "preconditioning_compute_steps": 2,
                        "block_size": 16,
                        "pre_conditioner_type": 2,
                    },
                ),
                steps=20,
                rtol=0.0,
                atol=0.0,
            ),
        ),
        step_count=StepCount("group"),
        added_defaults=(
            "inverse_exponent_override",
            "start_preconditioning_step",
            "preconditioning_compute_steps",
            "statistics_compute_steps",
            "block_size",
            "skip_preconditioning_rank_lt",
            "no_preconditioning_for_layers_with_dim_gt",
            "shape_interpretation",
            "graft_type",
            "pre_conditioner_type",
            "diagonal_eps",
            "matrix_eps",
            "use_svd",
            "maximize",
        ),
    ),
    PaperOptimizerInfo(
        "SM3",
        module="sm3",
        grid=(
            {},
            {"lr": 1e-2},
            {"lr": 1e-2, "beta": 0.9},  # an exponential average: max with the last
            {"lr": 1e-2, "beta": 1.0},
            {"lr": 1e-2, "momentum": 0.5},
            {"lr": 1e-2, "momentum": 0.9, "beta": 0.5, "maximize": True},
            {"lr": 1e-2, "eps": 1e-8},
            {"lr": 1e-2, "maximize": True},
            {"lr": 1e-2, "foreach": True},
            {"lr": 1e-2, "beta": 0.9, "momentum": 0.5, "foreach": True},
        ),
        other_shapes=(
            ShapedGrid(
                "ranks_0_to_4",
                shapes=((2, 3, 2, 2), (), (3,), (4, 2, 3), (6, 1), (1, 5)),
                grid=(
                    {"lr": 1e-2},
                    {"lr": 1e-2, "beta": 0.9, "momentum": 0.5},
                    {"lr": 1e-2, "beta": 0.9, "momentum": 0.5, "foreach": True},
                ),
            ),
        ),
        # the reference's accumulator_0, accumulator_1, ... against our list (a 0-d
        # parameter's one accumulator_0 included)
        state_keys={"accumulator": "accumulator_*"},
        agreement=(
            {"lr": 1e-2},
            {"lr": 1e-2, "beta": 0.9, "momentum": 0.5, "maximize": True},
        ),
        bad_arguments=(
            {"lr": -1.0},
            {"momentum": 1.0},
            {"momentum": -0.1},
            {"beta": 1.1},
            {"beta": -0.1},
            {"eps": -1e-8},
        ),
        refusals=(
            COMPLEX_AT_CONSTRUCTION,
            Refusal(
                "sparse_gradients",
                ValueError,
                "does not support sparse gradients",
                at_step=True,
                sparse_grad=True,
            ),
        ),
        step_count=StepCount("group"),
        added_defaults=("maximize",),
    ),
    PaperOptimizerInfo(
        "SOAP",
        module="soap",
        grid=(
            {},
            {"lr": 1e-2},
            {"lr": 1e-2, "precondition_frequency": 1},
            {"lr": 1e-2, "precondition_frequency": 3},
            {"lr": 1e-2, "precondition_1d": True, "precondition_frequency": 2},
            # the matrices' and the 3-d tensor's larger dimensions left as they are
            {"lr": 1e-2, "max_precondition_dim": 3, "precondition_frequency": 2},
            {"lr": 1e-2, "shampoo_beta": 0.5, "betas": (0.9, 0.99)},
            {"lr": 1e-2, "correct_bias": False, "normalize_gradient": True},
            {"lr": 1e-2, "weight_decay": 0.0, "maximize": True, "eps": 1e-6},
            {"lr": 1e-2, "weight_decay": 0.1, "data_format": "channels_last"},
        ),
        other_shapes=(
            ShapedGrid(
                "ranks_0_to_4",
                shapes=((2, 3, 2, 2), (), (3,), (2, 7), (4, 2, 3), (6, 1)),
                grid=(
                    {"lr": 1e-2, "precondition_frequency": 2},
                    {"lr": 1e-2, "precondition_1d": True, "precondition_frequency": 1},
                    {
                        "lr": 1e-2,
                        "max_precondition_dim": 2,
                        "precondition_frequency": 3,
                    },
                ),
            ),
        ),
        # (the reference's GG and Q hold [] for a dimension left as it is, ours 0 x 0
        # tensors: the bases are compared through the parameters and the second moment)
        state_keys=same_keys("exp_avg", "exp_avg_sq"),
        agreement=(),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.95)},
            {"betas": (0.95, -0.1)},
            {"shampoo_beta": -0.1},
            {"weight_decay": -0.1},
            {"precondition_frequency": 0},
            {"max_precondition_dim": 0},
            {"eps": -1e-8},
        ),
        refusals=(
            COMPLEX_REFUSED_BEFORE_THE_REFERENCE,
            SPARSE_AT_STEP,
            Refusal(
                "merge_dims",
                ValueError,
                "merge_dims=True",
                kwargs={"merge_dims": True},
                reference_accepts=True,
            ),
        ),
        step_count=StepCount("group", per_param={"step_count": (6, 6, 6, 3)}),
        added_defaults=("data_format", "maximize"),
    ),
    PaperOptimizerInfo(
        "SignSGD",
        module="signsgd",
        grid=(
            {},
            {"lr": 3e-3, "momentum": 0.0},
            {"lr": 1e-3, "momentum": 0.5, "weight_decay": 0.1},
            {
                "lr": 1e-3,
                "momentum": 0.0,
                "weight_decay": 0.1,
                "weight_decouple": False,
            },
            {"lr": 1e-3, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-3, "maximize": True},
            {"lr": 1e-3, "maximize": True, "momentum": 0.0, "weight_decay": 0.05},
            {"lr": torch.tensor(2e-3), "weight_decay": 0.05},
        ),
        state_keys=same_keys("momentum_buffer"),
        agreement=({"lr": 1e-3, "weight_decay": 0.1},),
        bad_arguments=(
            {"lr": -1.0},
            {"momentum": 1.0},
            {"momentum": -0.1},
            {"weight_decay": -0.1},
        ),
        refusals=(USE_GC, COMPLEX_AT_CONSTRUCTION),
    ),
    PaperOptimizerInfo(
        "StableAdamW",
        module="stableadamw",
        grid=(
            {},
            {"foreach": False},
            {"foreach": True},
            {"lr": 1e-2, "betas": (0.8, 0.95), "eps": 1e-6},
            # the floor eps^2 under v in the RMS matters for small gradients
            {"lr": 1e-2, "eps": 1e-3},
            {"lr": 1e-2, "kahan_sum": False},
            {"lr": 1e-2, "weight_decay": 0.0},
            {"lr": 1e-2, "weight_decay": 0.1, "foreach": False},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {
                "lr": 1e-2,
                "weight_decay": 0.1,
                "weight_decouple": False,
                "foreach": False,
            },
            {"lr": 1e-2, "maximize": True},
            {"lr": 1e-2, "maximize": True, "weight_decouple": False, "foreach": True},
            {"lr": torch.tensor(1e-2, dtype=torch.float64)},
        ),
        state_keys=same_keys("exp_avg", "exp_avg_sq"),
        # fused: the RMS that clips the learning rate is a reduction over the whole tensor
        agreement=({"lr": 1e-2, "eps": 1e-3, "weight_decay": 0.1},),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.99)},
            {"betas": (0.9, -0.1)},
            {"weight_decay": -0.1},
            {"eps": -1e-8},
        ),
        refusals=(USE_GC, COMPLEX_AT_CONSTRUCTION)
        + tuple(
            Refusal(
                f"kahan_sum_for_{str(dtype).removeprefix('torch.')}_parameters",
                ValueError,
                "kahan_sum=True is not supported",
                shape=(3,),
                dtype=dtype,
                at_step=True,
                accepted_with={"kahan_sum": False},
            )
            for dtype in (torch.bfloat16, torch.float16)
        ),
        step_count=StepCount("group"),
    ),
    PaperOptimizerInfo(
        "Tiger",
        module="tiger",
        grid=(
            {},
            {"lr": 3e-3, "beta": 0.9},
            {"lr": 1e-3, "weight_decay": 0.0},
            {"lr": 1e-3, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-3, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-3, "maximize": True, "beta": 0.0},
            {"lr": torch.tensor(2e-3), "weight_decay": 0.05},
        ),
        state_keys=same_keys("exp_avg"),
        agreement=({"lr": 1e-3, "weight_decay": 0.1},),
        bad_arguments=(
            {"lr": -1.0},
            {"beta": 1.0},
            {"beta": -0.1},
            {"weight_decay": -0.1},
        ),
        refusals=(USE_GC, COMPLEX_AT_CONSTRUCTION),
    ),
    PaperOptimizerInfo(
        "Yogi",
        module="yogi",
        grid=(
            {},
            {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6},
            {"lr": 1e-2, "initial_accumulator": 0.5},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "fixed_decay": True},
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
            {"lr": 1e-2, "maximize": True, "initial_accumulator": 0.0},
            # (the adam_debias modifier, as the reference's option)
            {"lr": 1e-2, "adam_debias": True},
        ),
        state_keys=same_keys("exp_avg", "exp_avg_sq"),
        agreement=(
            # weight_decouple=False: the L2 branch (an `elif` of the decay fragment) in the kernel
            {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
        ),
        group_options=("adam_debias",),
        bad_arguments=(
            {"lr": -1.0},
            {"betas": (1.0, 0.999)},
            {"betas": (0.9, -0.1)},
            {"weight_decay": -0.1},
            {"eps": -1e-3},
        ),
        refusals=(USE_GC, COMPLEX_AT_CONSTRUCTION),
        step_count=StepCount("group", kwargs={"lr": 1e-2}),
    ),
)

BY_NAME: dict[str, PaperOptimizerInfo] = {info.name: info for info in PAPER_OPTIMIZERS}
