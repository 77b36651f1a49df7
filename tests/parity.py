"""What the parity tests add to the differential harness (generator.verify; not a test module).

The harness itself (the stepwise problem in generator.verify.problems, the strict comparisons in
generator.verify.compare, the lockstep runner in generator.verify.harness) lives in the generator
and the tests import it from there. Here is what is about this suite: the twins of torch.optim
under test and what is known of torch's implementations of them (its optim_db, the paths it
computes with other formulas, the 2-D-only Muon), the tolerances the suite holds them to, the
options of a second param group, and the deviation report.

:func:`run_side_by_side` is the harness's runner on the shapes of the twin under test, its
deviations recorded: it builds identical parameters for two optimizer classes, feeds both the
same gradients (spread over magnitudes 1e-6..10, fresh every step, one parameter whose gradient
is ``None`` on some steps, two param groups with different hyperparameters, ``step(closure)`` on
every other step) and after EVERY step compares the parameters, their gradients, the closure's
return value and the full ``state_dict()`` (state keys, tensor dtypes/devices/shapes/values,
every ``param_groups`` entry). A mismatch raises an ``AssertionError`` naming the optimizer, the
config, the step, the tensor / state key and the max abs / rel deviation.

Every tensor comparison made with this module's :class:`CompareContext` also records the
deviation it saw into :data:`REPORT`, which ``conftest.py`` prints as a table at the end of the
session and writes to ``tests/.parity-report.json``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import re
import signal
import threading
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from generator.verify import compare, harness
from generator.verify.compare import Tolerance
from generator.verify.problems import STEPWISE_SHAPES

TWIN_NAMES = (
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adamax",
    "Adadelta",
    "NAdam",
    "RAdam",
    "ASGD",
    "Rprop",
    "Adafactor",
    "Muon",
)
#: Twins whose step needs the closure and that take one param group (torch's LBFGS): the
#: harness here feeds gradients from outside, so they have side-by-side tests of their own
#: (test_lbfgs.py); the tests of declarations (signature, defaults, errors) run on them too.
CLOSURE_TWINS = ("LBFGS",)
ALL_TWIN_NAMES = TWIN_NAMES + CLOSURE_TWINS
CUSTOM_NAMES = ("WeirdDescent", "BertAdamW")
# torch's foreach NAdam, RAdam and ASGD compute with other formulas than their for-loops (sqrt(v)/sqrt(bc)
# for NAdam, a rect-or-zero list for RAdam, one addcmul for ASGD's decay and step); the generated foreach paths follow the for-loop's formulas, so
# where a test needs exact agreement their reference is torch's for-loop.
TORCH_FOREACH_DIFFERS = frozenset({"NAdam", "RAdam", "ASGD", "Adafactor"})
# Twins whose generated foreach path regroups a product into one fused operation
# (generator.lower.products: RAdam's step is one addcdiv_ with the bias corrections and the
# rectification in its numbers). It rounds apart from the for-loop, as torch's own foreach RAdam
# does: held to a tolerance, never bit for bit (test_regrouped_products derives this set).
FOREACH_REGROUPED = frozenset({"RAdam"})
# Twins whose generated class adds `fused` (keyword-only, default None, last in `defaults`), a
# flag torch's class does not have: the generated fused path exists for them too.
FUSED_EXTENSION = frozenset(
    {"RMSprop", "Adamax", "Adadelta", "NAdam", "RAdam", "ASGD", "Rprop"}
)
# Every twin with a generated fused path (compared with the for-loop in test_torch_parity)
FUSED_GENERATED = frozenset({"SGD", "Adam", "AdamW", "Adagrad"}) | FUSED_EXTENSION

# ---------------------------------------------------------------------------------------
# Tolerances (generator.verify.compare.Tolerance: ``rtol`` elementwise, ``atol`` tensor-scaled
# unless given; ``EXACT`` for bit equality).
# ---------------------------------------------------------------------------------------

TOLERANCES = {
    torch.float32: Tolerance(1e-6),
    torch.complex64: Tolerance(1e-6),
    torch.float64: Tolerance(1e-12),
    torch.complex128: Tolerance(1e-12),
}


def tolerance_for(dtype: torch.dtype) -> Tolerance:
    return TOLERANCES[dtype]


# The fused path against the for-loop in float32: torch's own test of its fused kernels against
# its for-loops (test_optim.py, test_fused_matches_forloop) compares with assertEqual's float32
# defaults, rtol 1.3e-6 and atol 1e-5; a kernel that orders the arithmetic its own way differs by
# rounding, which ill-conditioned steps (RMSprop's centered `v - m^2`) amplify. float64 keeps
# the tight tolerance.
FUSED_FLOAT32 = Tolerance(1.3e-6, atol=1e-5)


def complex_dtype_for(dtype: torch.dtype) -> torch.dtype:
    return {torch.float32: torch.complex64, torch.float64: torch.complex128}[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# ---------------------------------------------------------------------------------------
# Deviation report (printed by conftest's terminal summary, dumped to JSON at the end).
# Key: (optimizer, comparison, dtype name, implementation).
# ---------------------------------------------------------------------------------------

REPORT: dict[tuple[str, str, str, str], dict[str, Any]] = {}


@dataclass(frozen=True)
class RecordKey:
    optimizer: str
    comparison: str  # e.g. "vs torch", "vs reference", "foreach vs for-loop"
    dtype: str
    impl: str  # "for-loop" / "foreach" / ...

    def as_tuple(self) -> tuple[str, str, str, str]:
        return (self.optimizer, self.comparison, self.dtype, self.impl)


def record_deviation(
    key: RecordKey | None, max_abs: float, max_rel: float, test_id: str | None = None
) -> None:
    if key is None:
        return
    entry = REPORT.setdefault(
        key.as_tuple(),
        {"max_abs": 0.0, "max_rel": 0.0, "tensors_compared": 0, "tests": set()},
    )
    entry["max_abs"] = max(entry["max_abs"], max_abs)
    entry["max_rel"] = max(entry["max_rel"], max_rel)
    entry["tensors_compared"] += 1
    if test_id:
        entry["tests"].add(test_id)


def report_as_json_rows() -> list[dict[str, Any]]:
    rows = []
    for (opt, comparison, dtype, impl), entry in sorted(REPORT.items()):
        rows.append(
            {
                "optimizer": opt,
                "comparison": comparison,
                "dtype": dtype,
                "impl": impl,
                "max_abs": _json_float(entry["max_abs"]),
                "max_rel": _json_float(entry["max_rel"]),
                "tensors_compared": entry["tensors_compared"],
                "tests": len(entry["tests"]),
            }
        )
    return rows


def merge_report(entries: list) -> None:
    """Fold another process's ``REPORT`` (as ``report_entries()``) into this one's: the
    pytest-xdist controller collects its workers' deviations."""
    for key, max_abs, max_rel, compared, tests in entries:
        entry = REPORT.setdefault(
            tuple(key),
            {"max_abs": 0.0, "max_rel": 0.0, "tensors_compared": 0, "tests": set()},
        )
        entry["max_abs"] = max(entry["max_abs"], max_abs)
        entry["max_rel"] = max(entry["max_rel"], max_rel)
        entry["tensors_compared"] += compared
        entry["tests"].update(tests)


def report_entries() -> list:
    """``REPORT`` as plain data that pytest-xdist can send from a worker."""
    return [
        [
            list(key),
            e["max_abs"],
            e["max_rel"],
            e["tensors_compared"],
            sorted(e["tests"]),
        ]
        for key, e in REPORT.items()
    ]


def _json_float(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


def write_report_json(path) -> None:
    with open(path, "w") as f:
        json.dump(
            {"torch": torch.__version__, "deviations": report_as_json_rows()},
            f,
            indent=2,
        )
        f.write("\n")


@dataclass
class CompareContext(compare.CompareContext):
    """The harness's comparison context, the deviations it sees recorded into :data:`REPORT`
    under ``record`` (and ``test_id``)."""

    record: RecordKey | None = None
    test_id: str | None = None

    def observe(self, max_abs: float, max_rel: float) -> None:
        record_deviation(self.record, max_abs, max_rel, self.test_id)


# ---------------------------------------------------------------------------------------
# Access to the classes under test and to torch's optimizer database.
# ---------------------------------------------------------------------------------------


def generated_module():
    try:
        import generated
    except Exception as exc:  # pragma: no cover - only when the package is broken
        pytest.fail(f"cannot import the `generated` package: {exc!r}", pytrace=False)
    return generated


def generated_class(name: str) -> type:
    mod = generated_module()
    cls = getattr(mod, name, None)
    if cls is None:
        exported = sorted(n for n in dir(mod) if not n.startswith("_"))
        pytest.fail(
            f"`generated` exports no {name!r} (it exports {exported}, "
            f"from {getattr(mod, '__file__', None) or list(getattr(mod, '__path__', []))})",
            pytrace=False,
        )
    return cls


def torch_class(name: str) -> type:
    return getattr(torch.optim, name)


def optim_info(name: str):
    from torch.testing._internal.common_optimizers import optim_db

    matches = [info for info in optim_db if info.optim_cls is torch_class(name)]
    assert len(matches) == 1, f"expected one OptimizerInfo for {name}, got {matches}"
    return matches[0]


def has_impl(name: str, impl: str) -> bool:
    """Whether torch's ``name`` has the implementation ``impl`` ("foreach",
    "differentiable", "fused"), according to optim_db's ``supported_impls``."""
    return impl in optim_info(name).supported_impls


def has_foreach(name: str) -> bool:
    """torch's ``name`` takes a ``foreach`` argument (torch.optim.Muon does not)."""
    return has_impl(name, "foreach")


def foreach_cases(names=TWIN_NAMES) -> list:
    """``pytest.param(name, foreach)`` for ``foreach`` in (False, True), ids
    ``{name}-for_loop`` / ``{name}-foreach`` (those of a stacked parametrisation); a twin
    without a foreach implementation in torch has only its for-loop case."""
    return [
        pytest.param(name, foreach, id=f"{name}-{'foreach' if foreach else 'for_loop'}")
        for name in names
        for foreach in (False, True)
        if not foreach or has_foreach(name)
    ]


def reference_kwargs(
    name: str, impl: str, kwargs: dict[str, Any]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(torch's keyword arguments, group keys left out of the comparison) to hold the
    generated ``impl`` with ``kwargs`` against.

    Where torch's foreach path computes another formula than its for-loop (NAdam, RAdam,
    ASGD, Adafactor), the generated foreach path follows the for-loop, and is held to it. The
    generated fused path is held to torch's for-loop too (which the generated for-loop equals
    bit for bit): torch's own fused kernels are not the reference, since its fused SGD with
    momentum raises a TypeError when a parameter gets its first gradient after step 0 (its
    momentum buffer list holds None), and its fused Adagrad with a tensor lr parts from its
    for-loop by ~5e-11 in float64."""
    if impl == "foreach" and name in TORCH_FOREACH_DIFFERS:
        return {**kwargs, "foreach": False}, ("foreach",)
    if impl == "fused":
        return {k: v for k, v in kwargs.items() if k != "fused"}, ("fused",)
    return kwargs, ()


def foreach_kwargs(name: str, foreach: bool) -> dict[str, Any]:
    """``{"foreach": foreach}``, or ``{}`` for the for-loop of a twin without the
    argument (asking such a twin for foreach is a test bug)."""
    if has_foreach(name):
        return {"foreach": foreach}
    assert not foreach, f"torch.optim.{name} has no foreach implementation"
    return {}


@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    """Fail (instead of hanging the whole suite) if the block runs longer than ``seconds``.
    Uses SIGALRM, so it only works on the main thread of a POSIX process (else no limit).
    """
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"{what}: still running after {seconds} s (endless loop?)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def slug(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


def constructor_default(cls: type, name: str) -> Any:
    return inspect.signature(cls.__init__).parameters[name].default


def describe_kwargs(kwargs: dict[str, Any]) -> str:
    def fmt(v):
        if isinstance(v, torch.Tensor):
            return f"tensor({v.tolist()})"
        if isinstance(v, tuple):
            return "(" + ", ".join(fmt(x) for x in v) + ")"
        return repr(v)

    return "{" + ", ".join(f"{k}={fmt(v)}" for k, v in kwargs.items()) + "}"


# ---------------------------------------------------------------------------------------
# The problems' shapes for the twins, and the second param group's options.
# ---------------------------------------------------------------------------------------

#: twins whose torch counterpart refuses anything but 2-D parameters (ValueError at
#: construction): their problems use :data:`MATRIX_SHAPES` and bias-free models
MATRIX_ONLY = frozenset({"Muon"})
#: 2-D only: a tall matrix (Muon orthogonalises the transpose of those), two wide ones
#: and a square one (the index-``SOMETIMES_NONE`` one of generator.verify.problems, whose
#: gradient is sometimes None)
MATRIX_SHAPES: tuple[tuple[int, ...], ...] = ((5, 4), (4, 6), (3, 3), (2, 7))


def shapes_for(name: str | None) -> tuple[tuple[int, ...], ...]:
    """The parameter shapes of the problems built for the twin ``name``."""
    return MATRIX_SHAPES if name in MATRIX_ONLY else STEPWISE_SHAPES


def vector_shape(name: str | None, n: int) -> tuple[int, ...]:
    """The shape of a small ad-hoc parameter with ``n`` rows: ``(n,)``, or ``(n, 2)`` for
    a twin in :data:`MATRIX_ONLY`."""
    return (n, 2) if name in MATRIX_ONLY else (n,)


def _scaled(value, factor):
    if isinstance(value, torch.Tensor):
        return value.detach().clone() * factor
    return value * factor


def second_group_overrides(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters for the second param group: different from the first group's."""
    cls = torch_class(name)

    def get(key):
        return kwargs[key] if key in kwargs else constructor_default(cls, key)

    out: dict[str, Any] = {"lr": _scaled(get("lr"), 0.5)}
    if "weight_decay" in inspect.signature(cls.__init__).parameters:
        wd = get("weight_decay")
        out["weight_decay"] = (
            0.05 if (not isinstance(wd, torch.Tensor) and wd == 0) else 0
        )
    if name == "SGD":
        if get("momentum") != 0:
            out["momentum"] = 0.5
    elif name in ("Adam", "AdamW"):
        betas = get("betas")
        if not any(isinstance(b, torch.Tensor) for b in betas):
            out["betas"] = (0.8, 0.99)
        out["eps"] = 1e-6
    elif name == "RMSprop":
        out["alpha"] = 0.9
        out["eps"] = 1e-6
        if get("momentum") != 0:
            out["momentum"] = 0.5
    elif name == "Adagrad":
        out["lr_decay"] = 0.01 if get("lr_decay") == 0 else 0
        out["eps"] = 1e-8
        out["initial_accumulator_value"] = 0.05
    elif name in ("Adamax", "NAdam", "RAdam"):
        out["betas"] = (0.8, 0.99)
        out["eps"] = 1e-6
    elif name == "Rprop":
        out["etas"] = (0.4, 1.3)
        out["step_sizes"] = (1e-5, 1.0)
    elif name == "ASGD":
        out["lambd"] = 1e-3
        out["t0"] = 3.0
    elif name == "Adadelta":
        out["rho"] = 0.8
        out["eps"] = 1e-5
    elif name == "Adafactor":
        out["beta2_decay"] = -0.6 if get("beta2_decay") != -0.6 else -0.8
        out["eps"] = (1e-10, 5e-3)  # an explicit eps1 (the first group's is None)
        out["d"] = 1.25 if get("d") != 1.25 else 1.0
    elif name == "Muon":
        out["momentum"] = 0.9 if get("momentum") != 0.9 else 0.95
        out["nesterov"] = not get("nesterov")
        out["adjust_lr_fn"] = (
            "match_rms_adamw" if get("adjust_lr_fn") != "match_rms_adamw" else None
        )
    return out


# ---------------------------------------------------------------------------------------
# The side-by-side runner, on the twin's shapes, its deviations recorded.
# ---------------------------------------------------------------------------------------


def run_side_by_side(
    expected_cls: type,
    actual_cls: type,
    *,
    record: RecordKey | None = None,
    test_id: str | None = None,
    shapes=None,
    **options: Any,
) -> harness.SideBySideResult:
    """:func:`generator.verify.harness.run_side_by_side`, on the parameters' ``shapes``, by
    default :func:`shapes_for` the expected class's name (2-D only for a twin in
    :data:`MATRIX_ONLY`); the deviations it sees are recorded under ``record``."""
    if shapes is None:
        shapes = shapes_for(expected_cls.__name__)
    return harness.run_side_by_side(
        expected_cls,
        actual_cls,
        shapes=shapes,
        context=functools.partial(CompareContext, record=record, test_id=test_id),
        **options,
    )
