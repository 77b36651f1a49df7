"""The generated twins (``parity.TWIN_NAMES``) are drop-in twins of torch.optim's.

Every configuration that torch's own optimizer database (``optim_db``) runs on CPU is run
here for >= 10 steps in float32 and float64, with ``foreach=False`` (compared with torch's
for-loop implementation) and ``foreach=True`` (compared with torch's multi-tensor one).
After every step the parameters, gradients and the full ``state_dict()`` are compared.
Only the implementations torch has (optim_db's ``supported_impls``) are run: no foreach
case for a twin without a ``foreach`` argument (Muon), no differentiable case for a twin
without ``differentiable`` (Adafactor, Muon).  Muon only accepts 2-D parameters: its
problems use ``parity.shapes_for("Muon")``.

* ``test_matches_torch``: within a tight tolerance (see ``parity.TOLERANCES``);
* ``test_for_loop_is_bit_identical_to_torch``: the exactness claim, kept separate so that
  it can be inspected on its own;
* ``test_complex_matches_torch``: complex parameters, for optimizers torch marks
  ``supports_complex``;
* ``test_foreach_matches_for_loop``: the generated class against itself;
* ``test_differentiable_matches_torch``: ``differentiable=True`` (values and the gradient
  that flows back through the steps), for twins torch runs differentiably.

Configs torch itself does not run on CPU (``capturable`` ones, CUDA-only) and the fused
backend are skipped with a reason.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from generator.verify.compare import (
    EXACT,
    compare_optimizers,
    compare_params,
    compare_state_dicts,
    compare_tensor,
)
from generator.verify.problems import (
    clone_params,
    gradients_for_step,
    make_initial_params,
    make_param_groups,
    stable_seed,
)
from parity import (
    reference_kwargs,
    CLOSURE_TWINS,
    FUSED_FLOAT32,
    FUSED_EXTENSION,
    FUSED_GENERATED,
    RecordKey,
    ALL_TWIN_NAMES,
    TWIN_NAMES,
    CompareContext,
    complex_dtype_for,
    describe_kwargs,
    dtype_name,
    foreach_kwargs,
    generated_class,
    has_foreach,
    has_impl,
    optim_info,
    run_side_by_side,
    second_group_overrides,
    shapes_for,
    slug,
    tolerance_for,
    torch_class,
)

STEPS = 10
DTYPES = (torch.float32, torch.float64)


# ---------------------------------------------------------------------------------------
# Parametrisation straight from torch's optim_db.
# ---------------------------------------------------------------------------------------


def _cpu_inputs(name, dtype=torch.float32):
    return optim_info(name).optim_inputs_func(device="cpu", dtype=dtype)


def _cuda_only_cases(name):
    """Configs optim_db only produces for CUDA/XPU devices (capturable, tensor betas ...).
    torch does not run them on CPU (capturable=True asserts on CPU), neither do we: each
    becomes a skipped test, so that none of them vanishes silently (tests/test_cuda.py runs
    them on a GPU)."""
    cpu_descs = {inp.desc for inp in _cpu_inputs(name)}
    try:
        cuda = optim_info(name).optim_inputs_func(device="cuda", dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - today it needs no CUDA tensor
        return [
            pytest.param(
                name,
                "(not enumerable)",
                id=f"{name}_cuda_only_configs",
                marks=pytest.mark.skip(
                    reason=f"optim_inputs_func({name}, device='cuda') failed on this "
                    f"machine ({exc}); its CUDA-only configs are not run on CPU"
                ),
            )
        ]
    return [
        pytest.param(
            name,
            inp.desc,
            id=f"{name}_with_{slug(inp.desc)}",
            marks=pytest.mark.skip(
                reason=f"optim_db config {inp.desc!r} of {name} is CUDA/XPU-only in "
                "torch (capturable=True needs CUDA; torch does not run it on CPU); "
                "tests/test_cuda.py runs it where a GPU is"
            ),
        )
        for inp in cuda
        if inp.desc not in cpu_descs
    ]


def _config_cases(names=TWIN_NAMES, *, complex_only=False, impls=None):
    """One case per optim_db config (x implementation, when ``impls`` is given)."""
    cases = []
    for name in names:
        info = optim_info(name)
        if complex_only and not info.supports_complex:
            continue
        name_impls = [None] if impls is None else list(impls)
        if impls is not None and "foreach" in impls and not has_foreach(name):
            name_impls.remove("foreach")  # e.g. torch.optim.Muon: no foreach argument
        if impls is not None and "fused" in impls and name not in FUSED_GENERATED:
            name_impls.remove("fused")  # no fused path, generated or torch's
        for impl in name_impls:
            extra = () if impl is None else (impl,)
            suffix = "" if impl is None else "-" + slug(impl)
            for index, inp in enumerate(_cpu_inputs(name)):
                marks = ()
                cases.append(
                    pytest.param(
                        name,
                        index,
                        inp.desc,
                        *extra,
                        id=f"{name}_with_{slug(inp.desc)}{suffix}",
                        marks=marks,
                    )
                )
    return cases


CONFIGS = _config_cases()
#: twins whose torch counterpart has a foreach / a differentiable implementation (optim_db)
FOREACH_CONFIGS = _config_cases([n for n in TWIN_NAMES if has_foreach(n)])
DIFFERENTIABLE_CONFIGS = _config_cases(
    [n for n in TWIN_NAMES if has_impl(n, "differentiable")]
)
CONFIGS_X_IMPLS = _config_cases(impls=("for-loop", "foreach", "fused"))
COMPLEX_CONFIGS_X_IMPLS = _config_cases(
    complex_only=True, impls=("for-loop", "foreach")
)
DTYPE_PARAMS = [pytest.param(d, id=dtype_name(d)) for d in DTYPES]
CUDA_ONLY_CONFIGS = [case for name in TWIN_NAMES for case in _cuda_only_cases(name)]


def _config(name, index, desc, dtype):
    inputs = _cpu_inputs(name, dtype)
    inp = inputs[index]
    assert inp.desc == desc, "optim_db changed order between collection and run"
    return dict(inp.kwargs)


def _impl_kwargs(name, impl):
    """``foreach=`` for the implementation (``fused=True`` for the fused one); nothing for a
    twin without the argument."""
    assert impl in ("for-loop", "foreach", "fused"), impl
    if impl == "fused":
        return {"fused": True}
    return foreach_kwargs(name, impl == "foreach")


def _label(name, desc, kwargs, dtype, impl, what="vs torch.optim"):
    return (
        f"generated.{name} {what}.{name} | config {desc!r} {describe_kwargs(kwargs)} | "
        f"{dtype_name(dtype)} | {impl}"
    )


def _run_vs_torch(request, name, index, desc, dtype, impl, tol, *, param_dtype=None):
    config = _config(name, index, desc, dtype)
    _run_config_vs_torch(
        request, name, desc, config, dtype, impl, tol, param_dtype=param_dtype
    )


def _run_config_vs_torch(
    request,
    name,
    desc,
    config,
    dtype,
    impl,
    tol,
    *,
    param_dtype=None,
    two_groups=True,
    comparison="vs torch",
):
    """``config`` (+ the implementation's ``foreach=``) for STEPS steps, torch's twin
    against the generated class; ``dtype`` is the real dtype of the same precision."""
    kwargs = {**config, **_impl_kwargs(name, impl)}
    param_dtype = param_dtype or dtype
    comparison += " (complex)" if param_dtype.is_complex else ""
    reference, ignore = reference_kwargs(name, impl, kwargs)
    result = run_side_by_side(
        torch_class(name),
        generated_class(name),
        expected_kwargs=reference,
        actual_kwargs=kwargs,
        ignore_group_keys=ignore,
        dtype=param_dtype,
        label=_label(name, desc, kwargs, param_dtype, impl),
        tol=tol,
        seed=stable_seed(name, desc, dtype),
        steps=STEPS,
        group2=second_group_overrides(name, kwargs) if two_groups else None,
        shapes=shapes_for(name),
        record=RecordKey(name, comparison, dtype_name(dtype), impl),
        test_id=request.node.nodeid,
    )
    # every config here is a working config in torch: make sure we really stepped
    assert result.raised is None and result.steps_run == STEPS, result.raised


# ---------------------------------------------------------------------------------------
# The API surface: class name, constructor signature, defaults.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_TWIN_NAMES)
def test_class_is_a_drop_in_twin_of_torch(name):
    ours, theirs = generated_class(name), torch_class(name)
    assert ours is not theirs, f"generated.{name} is torch.optim.{name} re-exported"
    assert ours.__name__ == name
    assert ours.__module__.split(".")[0] == "generated", ours.__module__
    assert issubclass(ours, torch.optim.Optimizer)


@pytest.mark.parametrize("name", ALL_TWIN_NAMES)
def test_constructor_signature_matches_torch(name):
    ours = inspect.signature(generated_class(name).__init__).parameters
    theirs = inspect.signature(torch_class(name).__init__).parameters

    def shape(params):
        return [(p.name, p.kind.name, p.default) for p in params.values()]

    # the precision policy every generated optimizer adds, keyword-only, last (not LBFGS,
    # whose state is flat vectors over all parameters: see README, precision policy)
    policy = shape(ours)[-4:] if name not in CLOSURE_TWINS else []
    assert name in CLOSURE_TWINS or policy == [
        ("state_dtype", "KEYWORD_ONLY", None),
        ("compute_dtype", "KEYWORD_ONLY", None),
        ("param_rounding", "KEYWORD_ONLY", "nearest"),
        ("rounding_seed", "KEYWORD_ONLY", None),
    ], policy
    ours = dict(list(ours.items())[: len(ours) - len(policy)])
    if name in FUSED_EXTENSION:  # the one other addition: keyword-only `fused=None`
        extra = shape(ours)[-1]
        assert extra == ("fused", "KEYWORD_ONLY", None), extra
        ours = dict(list(ours.items())[:-1])
    assert shape(ours) == shape(theirs), (
        f"generated.{name}.__init__ signature differs from torch.optim.{name}'s\n"
        f"  expected {shape(theirs)}\n  got      {shape(ours)}"
    )


@pytest.mark.parametrize("name", ALL_TWIN_NAMES)
def test_defaults_match_torch(name):
    p = torch.zeros(shapes_for(name)[-1], requires_grad=True)
    ours = generated_class(name)([p]).defaults
    theirs = torch_class(name)([p]).defaults
    if name in FUSED_EXTENSION:  # the one addition, last: `fused`, None
        assert list(ours)[-1] == "fused" and ours["fused"] is None, ours
        ours = {k: v for k, v in ours.items() if k != "fused"}
    assert list(ours) == list(theirs), "defaults keys (and their order) differ"
    for k in theirs:
        assert (
            type(ours[k]) is type(theirs[k]) and ours[k] == theirs[k]
        ), f"defaults[{k!r}]: expected {theirs[k]!r}, got {ours[k]!r}"


# ---------------------------------------------------------------------------------------
# Numerical parity.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,desc", CUDA_ONLY_CONFIGS)
def test_cuda_only_config_matches_torch(name, desc):
    """Placeholder so that optim_db's CUDA-only configs show up as skipped, not vanish."""
    raise AssertionError("unreachable: CUDA-only configs are skipped on CPU")


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("name,index,desc,impl", CONFIGS_X_IMPLS)
def test_matches_torch(request, name, index, desc, dtype, impl):
    tol = tolerance_for(dtype)
    if impl == "fused" and dtype == torch.float32:
        tol = FUSED_FLOAT32
    _run_vs_torch(request, name, index, desc, dtype, impl, tol)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("name,index,desc", CONFIGS)
def test_for_loop_is_bit_identical_to_torch(request, name, index, desc, dtype):
    _run_vs_torch(request, name, index, desc, dtype, "for-loop", EXACT)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("name,index,desc,impl", COMPLEX_CONFIGS_X_IMPLS)
def test_complex_matches_torch(request, name, index, desc, dtype, impl):
    cdtype = complex_dtype_for(dtype)
    _run_vs_torch(
        request,
        name,
        index,
        desc,
        dtype,
        impl,
        tolerance_for(cdtype),
        param_dtype=cdtype,
    )


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("name,index,desc", FOREACH_CONFIGS)
def test_foreach_matches_for_loop(request, name, index, desc, dtype):
    """The generated multi-tensor path equals the generated for-loop path."""
    kwargs = _config(name, index, desc, dtype)
    cls = generated_class(name)
    result = run_side_by_side(
        cls,
        cls,
        expected_kwargs={**kwargs, "foreach": False},
        actual_kwargs={**kwargs, "foreach": True},
        dtype=dtype,
        label=_label(name, desc, kwargs, dtype, "foreach", "foreach vs for-loop of"),
        tol=tolerance_for(dtype),
        seed=stable_seed(name, desc, dtype, "self"),
        steps=STEPS,
        group2=second_group_overrides(name, kwargs),
        shapes=shapes_for(name),
        record=RecordKey(name, "foreach vs for-loop", dtype_name(dtype), "foreach"),
        test_id=request.node.nodeid,
        ignore_group_keys=("foreach",),
        # torch's own foreach SGD with nesterov (and weight_decay == 0) adds the momentum
        # buffer into p.grad in place, its for-loop does not: grads may legitimately differ
        compare_grads=False,
    )
    assert result.raised is None and result.steps_run == STEPS, result.raised


DIFFERENTIABLE_STEPS = 3


# torch's differentiable Adam, AdamW and NAdam switch to another formula (their capturable one): the bias
# corrections come from the float32 `step` tensor, so torch's differentiable values differ from its
# own for-loop by up to ~5e-6 relative in float64. The generated classes keep one arithmetic whatever
# `differentiable` says: their values are checked against torch's for-loop (exactly), and the
# gradient through `step` with torch.autograd.gradcheck instead of against torch's other formula.
SEPARATE_DIFFERENTIABLE_FORMULA = {"Adam", "AdamW", "NAdam"}


def _differentiable_setup(cls, kwargs, seed, group2, differentiable=True):
    """``differentiable=True`` needs non-leaf params: clone leaves that require grad."""
    initial = make_initial_params(torch.float64, seed, shapes_for(cls.__name__))
    leaves = clone_params(initial)
    params = [leaf.clone() for leaf in leaves]
    for p in params:
        p.retain_grad()
    opt = cls(
        make_param_groups(params, group2), **kwargs, differentiable=differentiable
    )
    return initial, leaves, params, opt


def _gradcheck_through_step(cls, kwargs, seed, group2):
    """d(params after one step)/d(params before), analytic vs finite differences (float64)."""
    initial = make_initial_params(torch.float64, seed, shapes_for(cls.__name__))
    grads = gradients_for_step(0, initial, seed)

    def one_step(*leaves):
        params = [leaf.clone() for leaf in leaves]
        opt = cls(make_param_groups(params, group2), **kwargs, differentiable=True)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        return tuple(params)

    leaves = tuple(p.detach().clone().requires_grad_(True) for p in initial)
    assert torch.autograd.gradcheck(one_step, leaves, eps=1e-6, atol=1e-5, rtol=1e-4)


def _set_grads(params, initial, step, seed):
    for p, g in zip(params, gradients_for_step(step, initial, seed)):
        p.grad = g


@pytest.mark.parametrize("name,index,desc", DIFFERENTIABLE_CONFIGS)
def test_differentiable_matches_torch(request, name, index, desc):
    """``differentiable=True`` (for-loop): same values for 3 steps, and the same gradient
    flowing back through one step to the initial parameters.  (Backward through several
    steps fails in torch itself: the state is updated in place.)"""
    kwargs = {**_config(name, index, desc, torch.float64), "foreach": False}
    seed = stable_seed(name, desc, "differentiable")
    group2 = second_group_overrides(name, kwargs)
    ctx = CompareContext(
        label=_label(
            name, desc, kwargs, torch.float64, "for-loop, differentiable=True"
        ),
        step=0,
        tol=tolerance_for(torch.float64),
        record=RecordKey(name, "vs torch (differentiable)", "float64", "for-loop"),
        test_id=request.node.nodeid,
    )
    separate = name in SEPARATE_DIFFERENTIABLE_FORMULA
    runs = [
        _differentiable_setup(torch_class(name), kwargs, seed, group2, not separate),
        _differentiable_setup(generated_class(name), kwargs, seed, group2),
    ]
    for step in range(DIFFERENTIABLE_STEPS):
        ctx.step = step
        for initial, _, params, opt in runs:
            _set_grads(params, initial, step, seed)
            opt.step()
        (_, _, t_params, t_opt), (_, _, g_params, g_opt) = runs
        if separate:
            # The reference ran with differentiable=False: only that flag and the autograd
            # history of the state (requires_grad) may differ, the values may not.
            expected, actual = t_opt.state_dict(), g_opt.state_dict()
            for group in expected["param_groups"]:
                group["differentiable"] = True
            for state in actual["state"].values():
                for key, value in state.items():
                    if torch.is_tensor(value):
                        state[key] = value.detach()
            compare_params(g_params, t_params, ctx)
            compare_state_dicts(actual, expected, ctx)
        else:
            compare_optimizers(g_opt, t_opt, g_params, t_params, ctx)

    ctx.step = "0 (fresh optimizer, then backward)"
    if separate:
        _gradcheck_through_step(generated_class(name), kwargs, seed, group2)
        return
    grads = []
    for cls in (torch_class(name), generated_class(name)):
        initial, leaves, params, opt = _differentiable_setup(cls, kwargs, seed, group2)
        _set_grads(params, initial, 0, seed)
        opt.step()
        weights = make_initial_params(torch.float64, seed + 1, shapes_for(name))
        loss = sum((p * w).sum() for p, w in zip(params, weights))
        grads.append(torch.autograd.grad(loss, leaves))
    for i, (t, g) in enumerate(zip(*grads)):
        compare_tensor(g, t, f"d(loss)/d(initial param #{i}) through step()", ctx)


# ---------------------------------------------------------------------------------------
# Configurations and inputs optim_db does not have, for the twins whose optim_db entry is
# thin (Adafactor, Muon).
# ---------------------------------------------------------------------------------------

#: (twin, description, config): run like an optim_db config (two groups, float32 and
#: float64, every implementation torch has)
EXTRA_CONFIGS = [
    ("Adafactor", "explicit eps1", dict(eps=(1e-12, 1e-3))),
    ("Adafactor", "Tensor lr", dict(lr=torch.tensor(0.02))),
    (
        "Adafactor",
        "maximize, d, beta2_decay, weight_decay",
        dict(maximize=True, d=2.0, beta2_decay=-0.5, weight_decay=0.05),
    ),
    ("Muon", "nesterov=False", dict(nesterov=False)),
    ("Muon", "adjust_lr_fn='original'", dict(adjust_lr_fn="original")),
    (
        "Muon",
        "adjust_lr_fn='match_rms_adamw'",
        dict(adjust_lr_fn="match_rms_adamw", lr=0.02),
    ),
    ("Muon", "momentum=0, eps=1e-3", dict(momentum=0.0, eps=1e-3)),
]
EXTRA_CASES = [
    pytest.param(
        name,
        desc,
        config,
        impl,
        id=f"{name}_with_{slug(desc)}-{slug(impl)}",
    )
    for name, desc, config in EXTRA_CONFIGS
    for impl in ("for-loop", "foreach")
    if impl == "for-loop" or has_foreach(name)
]


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("name,desc,config,impl", EXTRA_CASES)
def test_config_missing_from_optim_db_matches_torch(
    request, name, desc, config, impl, dtype
):
    """Bit-identical for the for-loop path, the foreach path within tolerance."""
    tol = EXACT if impl == "for-loop" else tolerance_for(dtype)
    _run_config_vs_torch(request, name, desc, config, dtype, impl, tol)


_MUON_BF16_ALIASING = (
    "torch bug, deliberately not reproduced: for a bfloat16 parameter with "
    "nesterov=False, torch's Muon orthogonalises the momentum buffer itself: "
    "`grad.bfloat16()` returns the very buffer and `ortho_grad.div_(norm)` normalises it "
    "in place, so torch's momentum_buffer is divided by its norm on every step; "
    "generated.Muon divides a copy (`X.div(...)`), its buffer stays unnormalised and "
    "the trajectories part from step 1 on"
)

#: (twin, description, config, parameter dtype, xfail reason or None): one param group,
#: STEPS steps, exact
LOW_PRECISION_CASES = [
    ("Adafactor", "bfloat16 params", {}, torch.bfloat16, None),
    ("Muon", "bfloat16 params", {}, torch.bfloat16, None),
    (
        "Muon",
        "bfloat16 params, nesterov=False",
        dict(nesterov=False),
        torch.bfloat16,
        _MUON_BF16_ALIASING,
    ),
]


@pytest.mark.parametrize(
    "name,desc,config,param_dtype",
    [
        pytest.param(
            name,
            desc,
            config,
            param_dtype,
            id=f"{name}_with_{slug(desc)}",
            marks=pytest.mark.xfail(strict=True, reason=xfail) if xfail else (),
        )
        for name, desc, config, param_dtype, xfail in LOW_PRECISION_CASES
    ],
)
def test_low_precision_params_match_torch(request, name, desc, config, param_dtype):
    result = run_side_by_side(
        torch_class(name),
        generated_class(name),
        expected_kwargs=config,
        dtype=param_dtype,
        label=_label(name, desc, config, param_dtype, "for-loop"),
        tol=EXACT,
        seed=stable_seed(name, desc),
        steps=STEPS,
    )
    assert result.raised is None and result.steps_run == STEPS, result.raised


_ADAFACTOR_EPS1_DTYPE = (
    "torch quirk, deliberately not reproduced: with eps=(None, eps2) torch's Adafactor "
    "assigns `eps1 = torch.finfo(param.dtype).eps` to the function argument inside its loop "
    "(foreach: per dtype group), so the FIRST parameter's dtype decides eps1 for the whole "
    "param group; generated.Adafactor takes every parameter's own dtype"
)


@pytest.mark.parametrize(
    "eps1,impl",
    [
        pytest.param(
            eps1,
            impl,
            id=f"eps1_{eps1}-{slug(impl)}",
            marks=(
                pytest.mark.xfail(strict=True, reason=_ADAFACTOR_EPS1_DTYPE)
                if eps1 is None
                else ()
            ),
        )
        for eps1 in (None, 1e-16)
        for impl in ("for-loop", "foreach")
    ],
)
def test_adafactor_mixed_dtypes_in_one_group_match_torch(eps1, impl):
    """float32 first, then float64 parameters in one group, gradients small enough
    (~1e-9) that eps1 matters; compared with torch's for-loop, exactly.  eps1=None: the
    machine epsilon of the parameter's dtype (torch: of the first parameter's dtype)."""
    shapes = ((4,), (3, 2), (5,), (2, 3))
    dtypes = (torch.float32, torch.float64, torch.float64, torch.float32)
    seed = stable_seed("Adafactor", "mixed dtypes")
    initial = [
        make_initial_params(dtype, seed + i, (shape,))[0]
        for i, (shape, dtype) in enumerate(zip(shapes, dtypes))
    ]
    runs = []
    eps = (eps1, 1e-3)
    for cls, kwargs in (
        (torch_class("Adafactor"), {"foreach": False, "eps": eps}),
        (generated_class("Adafactor"), {**_impl_kwargs("Adafactor", impl), "eps": eps}),
    ):
        params = clone_params(initial)
        runs.append((cls(params, **kwargs), params))
    (t_opt, t_params), (g_opt, g_params) = runs
    ctx = CompareContext(
        label=f"generated.Adafactor ({impl}, eps1={eps1}) vs torch's for-loop, "
        "float32 + float64 params in one group",
        step=0,
        tol=EXACT,
        ignore_group_keys=frozenset({"foreach"}),
    )
    for step in range(STEPS):
        ctx.step = step
        grads = [g * 1e-9 for g in gradients_for_step(step, initial, seed, ())]
        for _, params in runs:
            for p, g in zip(params, grads):
                p.grad = g.clone()
        t_opt.step()
        g_opt.step()
        compare_optimizers(g_opt, t_opt, g_params, t_params, ctx)
