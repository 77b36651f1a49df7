"""The generated twins raise torch's errors: same exception type, same message.

* ``test_optim_db_error``: every case of torch's ``optim_error_inputs_func(device="cpu",
  dtype=torch.float32)``, checked exactly like torch's ``test_optim.py::test_errors`` does
  (construction or step error, exception type, ``error_regex``; warnings with
  ``assertWarnsRegex`` semantics) and, in addition, the message must equal the one torch
  itself produces for the same input.
* ``test_validation_error_matches_torch``: more invalid arguments, not in optim_db, whose
  exception type and message are compared with what torch raises live.
"""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from torch.testing._internal.common_optimizers import OptimizerErrorEnum

from generator.verify.compare import (
    EXACT,
    assert_same_exception,
    call_capturing,
    compare_optimizers,
)
from parity import (
    ALL_TWIN_NAMES,
    CompareContext,
    generated_class,
    optim_info,
    slug,
    torch_class,
)

DTYPE = torch.float32


def _error_inputs(name):
    return optim_info(name).optim_error_inputs_func(device="cpu", dtype=DTYPE)


def _error_cases():
    cases = []
    for name in ALL_TWIN_NAMES:
        for index, err in enumerate(_error_inputs(name)):
            desc = err.optimizer_error_input.desc
            cases.append(
                pytest.param(name, index, desc, id=f"{name}-{index}-{slug(desc)}")
            )
    return cases


def _cuda_error_cases():
    """optim_db's CUDA-only error cases, shown as skipped (they allocate CUDA tensors, so
    on a CPU-only torch they cannot even be enumerated)."""
    cases = []
    for name in ALL_TWIN_NAMES:
        try:
            cuda = optim_info(name).optim_error_inputs_func(device="cuda", dtype=DTYPE)
        except (
            Exception
        ) as exc:  # noqa: BLE001 - "Torch not compiled with CUDA enabled"
            cases.append(
                pytest.param(
                    name,
                    "(not enumerable without CUDA)",
                    id=f"{name}-cuda_only_cases",
                    marks=pytest.mark.skip(
                        reason=f"optim_error_inputs_func({name}, device='cuda') needs "
                        f"CUDA to build its cases ({exc}); they test CUDA-only kwargs"
                    ),
                )
            )
            continue
        cpu_descs = {e.optimizer_error_input.desc for e in _error_inputs(name)}
        for err in cuda:
            desc = err.optimizer_error_input.desc
            if desc in cpu_descs:
                continue
            cases.append(
                pytest.param(
                    name,
                    desc,
                    id=f"{name}-cuda-{slug(desc)}",
                    marks=pytest.mark.skip(
                        reason=f"optim_db error case {desc!r} of {name} needs CUDA"
                    ),
                )
            )
    return cases


def _check_like_torch_test_errors(cls, err):
    """Mirror of torch's test_optim.py::TestOptimRenewed.test_errors for one case;
    returns the exception / warning message produced."""
    optim_input = err.optimizer_error_input
    params, kwargs = optim_input.params, optim_input.kwargs
    what = f"{cls.__module__}.{cls.__name__}({optim_input.desc!r}, kwargs={kwargs})"
    if err.error_on == OptimizerErrorEnum.CONSTRUCTION_ERROR:
        action = lambda: cls(params, **kwargs)  # noqa: E731
    elif err.error_on == OptimizerErrorEnum.STEP_ERROR:
        optim = cls(params, **kwargs)
        action = optim.step
    else:  # pragma: no cover
        raise NotImplementedError(f"Unknown error type {err.error_on}")

    if issubclass(err.error_type, Warning):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            action()
        matching = [
            w
            for w in caught
            if issubclass(w.category, err.error_type)
            and re.search(err.error_regex, str(w.message))
        ]
        assert matching, (
            f"{what}: expected a {err.error_type.__name__} matching "
            f"{err.error_regex!r}; got {[(w.category.__name__, str(w.message)) for w in caught]}"
        )
        return str(matching[0].message)

    with pytest.raises(err.error_type, match=err.error_regex) as info:
        action()
    assert type(info.value) is err.error_type or isinstance(
        info.value, err.error_type
    ), what
    return str(info.value)


@pytest.mark.parametrize("name,index,desc", _error_cases())
def test_optim_db_error(name, index, desc):
    # fresh inputs for each side: a case may hold tensors an optimizer would mutate
    theirs = _error_inputs(name)[index]
    ours = _error_inputs(name)[index]
    assert ours.optimizer_error_input.desc == desc
    expected_message = _check_like_torch_test_errors(torch_class(name), theirs)
    message = _check_like_torch_test_errors(generated_class(name), ours)
    assert message == expected_message, (
        f"generated.{name}: {desc!r}: message differs from torch's\n"
        f"  expected {expected_message!r}\n  got      {message!r}"
    )


@pytest.mark.parametrize("name,desc", _cuda_error_cases())
def test_optim_db_cuda_only_error(name, desc):
    """Placeholder so that optim_db's CUDA-only error cases show up as skipped."""
    raise AssertionError("unreachable: CUDA-only error cases are skipped on CPU")


# ---------------------------------------------------------------------------------------
# More invalid arguments, compared with torch live.
# ---------------------------------------------------------------------------------------

# (optimizer, id, kwargs, when) -- ``when`` is "construct" or "step"
VALIDATION_CASES = [
    ("SGD", "negative_lr", dict(lr=-0.1), "construct"),
    ("SGD", "negative_weight_decay", dict(lr=0.1, weight_decay=-0.1), "construct"),
    ("SGD", "nesterov_without_momentum", dict(lr=0.1, nesterov=True), "construct"),
    (
        "SGD",
        "nesterov_with_dampening",
        dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
        "construct",
    ),
    ("SGD", "fused_and_foreach", dict(lr=0.1, fused=True, foreach=True), "construct"),
    ("SGD", "fused_and_differentiable", dict(fused=True, differentiable=True), "step"),
    ("Adam", "negative_lr", dict(lr=-1e-3), "construct"),
    ("Adam", "negative_eps", dict(eps=-1e-8), "construct"),
    ("Adam", "beta2_is_one", dict(betas=(0.9, 1.0)), "construct"),
    ("Adam", "negative_beta1", dict(betas=(-0.1, 0.999)), "construct"),
    ("Adam", "fused_and_foreach", dict(fused=True, foreach=True), "construct"),
    ("Adam", "capturable_on_cpu", dict(capturable=True, foreach=False), "step"),
    ("Adam", "capturable_on_cpu_foreach", dict(capturable=True, foreach=True), "step"),
    ("AdamW", "negative_lr", dict(lr=-1e-3), "construct"),
    ("AdamW", "negative_eps", dict(eps=-1e-8), "construct"),
    ("AdamW", "beta1_is_one", dict(betas=(1.0, 0.999)), "construct"),
    ("AdamW", "negative_weight_decay", dict(weight_decay=-0.01), "construct"),
    (
        "AdamW",
        "tensor_lr_with_foreach",
        dict(lr=torch.tensor(1e-3), foreach=True),
        "construct",
    ),
    ("AdamW", "fused_and_foreach", dict(fused=True, foreach=True), "construct"),
    ("AdamW", "capturable_on_cpu", dict(capturable=True, foreach=False), "step"),
    ("RMSprop", "negative_lr", dict(lr=-0.01), "construct"),
    ("RMSprop", "negative_eps", dict(eps=-1e-8), "construct"),
    ("RMSprop", "negative_alpha", dict(alpha=-0.5), "construct"),
    ("RMSprop", "negative_weight_decay", dict(weight_decay=-0.5), "construct"),
    ("RMSprop", "capturable_on_cpu", dict(capturable=True, foreach=False), "step"),
    ("Adagrad", "negative_lr", dict(lr=-0.01), "construct"),
    ("Adagrad", "negative_weight_decay", dict(weight_decay=-0.1), "construct"),
    (
        "Adagrad",
        "negative_initial_accumulator_value",
        dict(initial_accumulator_value=-0.1),
        "construct",
    ),
    ("Adagrad", "negative_eps", dict(eps=-1e-10), "construct"),
    ("Adagrad", "fused_and_foreach", dict(fused=True, foreach=True), "construct"),
    (
        "Adagrad",
        "tensor_lr_multi_element",
        dict(lr=torch.tensor([0.1, 0.1])),
        "construct",
    ),
    ("Adafactor", "negative_lr", dict(lr=-0.01), "construct"),
    ("Adafactor", "negative_eps2", dict(eps=(None, -1e-3)), "construct"),
    ("Adafactor", "negative_weight_decay", dict(weight_decay=-0.1), "construct"),
    (
        "Adafactor",
        "tensor_lr_multi_element",
        dict(lr=torch.tensor([0.1, 0.1])),
        "construct",
    ),
    ("Muon", "negative_lr", dict(lr=-0.01), "construct"),
    ("Muon", "negative_momentum", dict(momentum=-0.1), "construct"),
    ("Muon", "negative_weight_decay", dict(weight_decay=-0.1), "construct"),
    ("Muon", "unknown_adjust_lr_fn", dict(adjust_lr_fn="rms"), "construct"),
    ("Muon", "tensor_lr_multi_element", dict(lr=torch.tensor([0.1, 0.1])), "construct"),
    ("Muon", "ns_steps_100", dict(ns_steps=100), "step"),
    ("Muon", "two_ns_coefficients", dict(ns_coefficients=(3.4, -4.7)), "step"),
    (
        "Muon",
        "four_ns_coefficients",
        dict(ns_coefficients=(3.4, -4.7, 2.0, 0.1)),
        "step",
    ),
]
_MUON_NS_COEFFICIENTS = (
    "known difference: torch's Muon checks the length of ns_coefficients per parameter at "
    "step time (ValueError 'Coefficients must be a tuple of exactly 3 values', raised after "
    "that parameter's momentum buffer was updated); the generated step() unpacks a tuple "
    "input into its names (`a, b, c = group['ns_coefficients']`) when the step starts, so it "
    "raises Python's ValueError 'not enough / too many values to unpack' before touching "
    "any state"
)
#: (optimizer, id) -> strict xfail reason
VALIDATION_XFAILS = {
    ("Muon", "two_ns_coefficients"): _MUON_NS_COEFFICIENTS,
    ("Muon", "four_ns_coefficients"): _MUON_NS_COEFFICIENTS,
}
#: twins whose step-time validation cases also compare the optimizer state after the error
STATE_AFTER_ERROR_NAMES = ("Adafactor", "Muon")
# sparse gradients: SGD, Adagrad and SparseAdam accept them (Adagrad not with weight decay), the
# Adam family refuses them at step time
SPARSE_CASES = [
    ("SGD", {}),
    ("SGD", dict(momentum=0.9)),
    ("Adagrad", {}),
    ("Adagrad", dict(foreach=True)),
    ("Adagrad", dict(weight_decay=0.1)),
    ("SparseAdam", {}),
    ("Adam", {}),
    ("AdamW", {}),
    ("RMSprop", {}),
    ("Adafactor", {}),
    ("Muon", {}),
]


def _make_param():
    p = torch.randn(3, 2, requires_grad=True)
    p.grad = torch.randn(3, 2)
    return p


@pytest.mark.parametrize(
    "name,kwargs,when",
    [
        pytest.param(
            n,
            kw,
            w,
            id=f"{n}-{i}",
            marks=(
                pytest.mark.xfail(strict=True, reason=VALIDATION_XFAILS[n, i])
                if (n, i) in VALIDATION_XFAILS
                else ()
            ),
        )
        for n, i, kw, w in VALIDATION_CASES
    ],
)
def test_validation_error_matches_torch(name, kwargs, when):
    """Same exception type and message; for the twins in STATE_AFTER_ERROR_NAMES a
    step-time error must also leave the same optimizer state and parameter behind."""
    outcomes = []
    for cls in (torch_class(name), generated_class(name)):
        torch.manual_seed(0)
        p = _make_param()
        opt, exc = call_capturing(lambda: cls([p], **kwargs))
        if exc is None and when == "step":
            _, exc = call_capturing(opt.step)
        outcomes.append((exc, opt, p))
    (expected, t_opt, t_p), (actual, g_opt, g_p) = outcomes
    assert expected is not None, f"torch.optim.{name}(**{kwargs}) no longer raises"
    label = f"generated.{name}(**{kwargs}) ({when})"
    assert_same_exception(actual, expected, label)
    if when == "step" and name in STATE_AFTER_ERROR_NAMES:
        ctx = CompareContext(label=label, step="0 (raised)", tol=EXACT)
        compare_optimizers(g_opt, t_opt, [g_p], [t_p], ctx)


@pytest.mark.parametrize("shape", [(4,), (2, 3, 2), ()], ids=["1d", "3d", "0d"])
def test_muon_step_rejects_a_non_matrix_added_later_like_torch(shape):
    """Muon's constructor refuses non-2-D parameters, ``add_param_group`` does not:
    such a parameter must then fail the step like in torch (same exception, same state).
    """
    outcomes = []
    for cls in (torch_class("Muon"), generated_class("Muon")):
        torch.manual_seed(0)
        p = _make_param()
        opt = cls([p])
        q = torch.randn(shape, requires_grad=True)
        q.grad = torch.randn(shape)
        opt.add_param_group({"params": [q]})
        _, exc = call_capturing(opt.step)
        outcomes.append((exc, opt, [p, q]))
    (expected, t_opt, t_params), (actual, g_opt, g_params) = outcomes
    assert expected is not None, "torch.optim.Muon no longer rejects it"
    label = f"generated.Muon.step() with a parameter of shape {shape} in group 1"
    assert_same_exception(actual, expected, label)
    ctx = CompareContext(label=label, step="0 (raised)", tol=EXACT)
    compare_optimizers(g_opt, t_opt, g_params, t_params, ctx)


@pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")
@pytest.mark.parametrize(
    "name,kwargs",
    [
        (
            pytest.param(*case.values, marks=case.marks, id=f"{case.values[0]}-default")
            if isinstance(case, type(pytest.param(0)))
            else pytest.param(*case, id=f"{case[0]}-{'-'.join(case[1]) or 'default'}")
        )
        for case in SPARSE_CASES
    ],
)
def test_sparse_gradient_handling_matches_torch(name, kwargs):
    results = []
    for cls in (torch_class(name), generated_class(name)):
        p = torch.zeros(5, 3, requires_grad=True)
        opt = cls([p], lr=0.1, **kwargs)
        p.grad = torch.sparse_coo_tensor(
            torch.tensor([[0, 3, 3]]),
            torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.5, 0.5, 0.5]]),
            (5, 3),
            check_invariants=True,
        )
        _, exc = call_capturing(opt.step)
        results.append((exc, p.detach().clone()))
    (t_exc, t_p), (g_exc, g_p) = results
    assert_same_exception(
        g_exc, t_exc, f"generated.{name}({kwargs}).step() with a sparse grad"
    )
    torch.testing.assert_close(g_p, t_p, rtol=0, atol=0)
