"""Shared helpers for the parity tests (not a test module).

The central piece is :func:`run_side_by_side`: it builds identical parameters for two
optimizer classes, feeds both the same gradients (spread over magnitudes 1e-6..10, fresh
every step, one parameter whose gradient is ``None`` on some steps, two param groups with
different hyperparameters, ``step(closure)`` on every other step) and after EVERY step
compares the parameters, their gradients, the closure's return value and the full
``state_dict()`` (state keys, tensor dtypes/devices/shapes/values, every ``param_groups``
entry).  A mismatch raises an ``AssertionError`` naming the optimizer, the config, the step,
the tensor / state key and the max abs / rel deviation.

Every tensor comparison also records the deviation it saw into :data:`REPORT`, which
``conftest.py`` prints as a table at the end of the session and writes to
``tests/.parity-report.json``.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import math
import re
import signal
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import torch

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
# for NAdam, a rect-or-zero list for RAdam, one addcmul for ASGD's decay and step); the generated foreach paths follow the for-loop, so
# where a test needs exact agreement their reference is torch's for-loop.
TORCH_FOREACH_DIFFERS = frozenset({"NAdam", "RAdam", "ASGD", "Adafactor"})
# Twins whose generated class adds `fused` (keyword-only, default None, last in `defaults`), a
# flag torch's class does not have: the generated fused path exists for them too.
FUSED_EXTENSION = frozenset(
    {"RMSprop", "Adamax", "Adadelta", "NAdam", "RAdam", "ASGD", "Rprop"}
)
# Every twin with a generated fused path (compared with the for-loop in test_torch_parity)
FUSED_GENERATED = frozenset({"SGD", "Adam", "AdamW", "Adagrad"}) | FUSED_EXTENSION

# ---------------------------------------------------------------------------------------
# Tolerances.  ``rtol`` is elementwise; ``atol`` is ``rtol`` times the largest magnitude in
# the expected tensor ("tensor-scaled"), so that entries that cancel down to ~0 (momentum
# buffers, tiny gradients) are judged against the scale of their tensor rather than
# against themselves.  Exactness claims use ``EXACT`` (rtol = atol = 0).
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    scaled_atol: bool = True
    atol: float | None = None  # an absolute atol instead of the tensor-scaled one

    @property
    def exact(self) -> bool:
        return self.rtol == 0.0 and not self.atol

    def __str__(self) -> str:
        if self.exact:
            return "exact (rtol=0, atol=0)"
        if self.atol is not None:
            return f"rtol={self.rtol:g}, atol={self.atol:g}"
        return f"rtol={self.rtol:g}, atol={self.rtol:g}*max|expected|"


EXACT = Tolerance(0.0)
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


def stable_seed(*parts: Any) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def constructor_default(cls: type, name: str) -> Any:
    return inspect.signature(cls.__init__).parameters[name].default


def accepts_kwarg(cls: type, name: str) -> bool:
    params = inspect.signature(cls.__init__).parameters
    return name in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def describe_kwargs(kwargs: dict[str, Any]) -> str:
    def fmt(v):
        if isinstance(v, torch.Tensor):
            return f"tensor({v.tolist()})"
        if isinstance(v, tuple):
            return "(" + ", ".join(fmt(x) for x in v) + ")"
        return repr(v)

    return "{" + ", ".join(f"{k}={fmt(v)}" for k, v in kwargs.items()) + "}"


# ---------------------------------------------------------------------------------------
# The problem: parameters, gradients, param groups.
# ---------------------------------------------------------------------------------------

SHAPES: tuple[tuple[int, ...], ...] = ((5, 4), (4,), (3, 3, 2), (2,))
#: twins whose torch counterpart refuses anything but 2-D parameters (ValueError at
#: construction): their problems use :data:`MATRIX_SHAPES` and bias-free models
MATRIX_ONLY = frozenset({"Muon"})
#: 2-D only: a tall matrix (Muon orthogonalises the transpose of those), two wide ones
#: and a square one (the index-:data:`SOMETIMES_NONE` one, whose gradient is sometimes None)
MATRIX_SHAPES: tuple[tuple[int, ...], ...] = ((5, 4), (4, 6), (3, 3), (2, 7))
#: index of the parameter whose gradient is ``None`` on :data:`NONE_STEPS`
SOMETIMES_NONE = 3
#: step 0 (lazy state creation on a later step) and two steps mid-run
NONE_STEPS = frozenset({0, 4, 5})


def shapes_for(name: str | None) -> tuple[tuple[int, ...], ...]:
    """The parameter shapes of the problems built for the twin ``name``."""
    return MATRIX_SHAPES if name in MATRIX_ONLY else SHAPES


def vector_shape(name: str | None, n: int) -> tuple[int, ...]:
    """The shape of a small ad-hoc parameter with ``n`` rows: ``(n,)``, or ``(n, 2)`` for
    a twin in :data:`MATRIX_ONLY`."""
    return (n, 2) if name in MATRIX_ONLY else (n,)


def make_initial_params(
    dtype: torch.dtype, seed: int, shapes=SHAPES
) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for shape in shapes:
        if dtype.is_complex:
            t = torch.complex(
                torch.randn(shape, generator=gen, dtype=torch.float64),
                torch.randn(shape, generator=gen, dtype=torch.float64),
            )
        else:
            t = torch.randn(shape, generator=gen, dtype=torch.float64)
        out.append(t.to(dtype))
    return out


def clone_params(initial: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().clone().requires_grad_(True) for t in initial]


def make_gradient(
    step: int, index: int, shape, dtype: torch.dtype, seed: int
) -> torch.Tensor:
    """``randn * 10**uniform(-6, 1)`` elementwise; a fresh draw for every (step, param)."""
    gen = torch.Generator().manual_seed(stable_seed(seed, step, index))

    def one():
        scale = 10.0 ** (torch.rand(shape, generator=gen, dtype=torch.float64) * 7 - 6)
        return torch.randn(shape, generator=gen, dtype=torch.float64) * scale

    g = torch.complex(one(), one()) if dtype.is_complex else one()
    return g.to(dtype)


def gradients_for_step(
    step: int, params: list[torch.Tensor], seed: int, none_steps=NONE_STEPS
) -> list[torch.Tensor | None]:
    grads = []
    for i, p in enumerate(params):
        if i == SOMETIMES_NONE and step in none_steps:
            grads.append(None)
        else:
            g = make_gradient(step, i, tuple(p.shape), p.dtype, seed)
            grads.append(g.to(p.device))
    return grads


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


def make_param_groups(params: list[torch.Tensor], group2: dict[str, Any] | None):
    if group2 is None:
        return list(params)
    return [{"params": params[:2]}, {"params": params[2:], **copy.deepcopy(group2)}]


# ---------------------------------------------------------------------------------------
# Comparison.
# ---------------------------------------------------------------------------------------


@dataclass
class CompareContext:
    label: str  # who vs whom, which config
    step: int | str
    tol: Tolerance
    record: RecordKey | None = None
    test_id: str | None = None
    ignore_group_keys: frozenset[str] = frozenset()
    compare_grads: bool = True
    #: applied to both state_dicts before comparing (e.g. to compare values, not types)
    normalize_state_dict: Callable[[dict], dict] | None = None
    #: the gradients as they were handed to the optimizers this step (see compare_params)
    pristine_grads: list[torch.Tensor | None] | None = None
    param_names: list[str] = field(default_factory=list)

    def where(self, what: str) -> str:
        return f"{self.label}\n  after step {self.step}: {what}"


def deviation(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """(max |a - e|, max |a - e| / |e|) over all elements, NaN-aware (NaN == NaN)."""
    wide = torch.complex128 if expected.is_complex() else torch.float64
    a = actual.detach().to("cpu", wide)
    e = expected.detach().to("cpu", wide)
    if a.numel() == 0:
        return 0.0, 0.0
    both_nan = torch.isnan(a) & torch.isnan(e)
    same = (a == e) | both_nan
    diff = torch.where(same, torch.zeros((), dtype=torch.float64), (a - e).abs())
    diff = torch.nan_to_num(diff, nan=math.inf)
    denom = e.abs()
    rel = torch.where(
        diff == 0,
        torch.zeros((), dtype=torch.float64),
        diff
        / torch.where(denom > 0, denom, torch.full((), math.nan, dtype=denom.dtype)),
    )
    rel = torch.nan_to_num(rel, nan=math.inf)
    return float(diff.max()), float(rel.max())


def compare_tensor(
    actual: Any,
    expected: torch.Tensor,
    what: str,
    ctx: CompareContext,
    record: bool = True,
) -> None:
    if not isinstance(actual, torch.Tensor):
        raise AssertionError(
            ctx.where(
                f"{what}: expected a tensor {_tensor_brief(expected)}, "
                f"got {type(actual).__name__} {actual!r}"
            )
        )
    for attr in ("dtype", "device", "shape", "requires_grad", "is_sparse"):
        va, ve = getattr(actual, attr), getattr(expected, attr)
        if va != ve:
            raise AssertionError(
                ctx.where(f"{what}: {attr} differs: expected {ve}, got {va}")
            )
    record_key = ctx.record if record else None
    if torch.equal(actual.detach(), expected.detach()):  # fast path: bit-identical
        # (torch.equal is False for NaNs, which then go the slow, NaN-aware way)
        record_deviation(record_key, 0.0, 0.0, ctx.test_id)
        return
    max_abs, max_rel = deviation(actual, expected)
    record_deviation(record_key, max_abs, max_rel, ctx.test_id)
    if ctx.tol.exact:
        rtol = atol = 0.0
    else:
        rtol = ctx.tol.rtol
        scale = float(expected.detach().abs().max()) if expected.numel() else 0.0
        atol = rtol * scale if ctx.tol.scaled_atol else 0.0
        if ctx.tol.atol is not None:
            atol = ctx.tol.atol
        if not math.isfinite(atol):
            atol = 0.0

    def msg(default: str) -> str:
        return ctx.where(
            f"{what} differs (tolerance {ctx.tol}): "
            f"max abs deviation {max_abs:.3e}, max rel deviation {max_rel:.3e}\n"
            + default
        )

    torch.testing.assert_close(
        actual.detach(),
        expected.detach(),
        rtol=rtol,
        atol=atol,
        equal_nan=True,
        check_device=True,
        check_dtype=True,
        msg=msg,
    )


def _tensor_brief(t: torch.Tensor) -> str:
    return f"(dtype={t.dtype}, device={t.device}, shape={tuple(t.shape)})"


def compare_value(actual: Any, expected: Any, what: str, ctx: CompareContext) -> None:
    """Compare state / param-group values: tensors by :func:`compare_tensor`, containers
    recursively, everything else by type and ``==``."""
    if isinstance(expected, torch.Tensor):
        compare_tensor(actual, expected, what, ctx)
        return
    if isinstance(expected, (tuple, list)):
        if type(actual) is not type(expected) or len(actual) != len(expected):
            raise AssertionError(
                ctx.where(f"{what}: expected {expected!r}, got {actual!r}")
            )
        for i, (a, e) in enumerate(zip(actual, expected)):
            compare_value(a, e, f"{what}[{i}]", ctx)
        return
    if isinstance(expected, dict):
        compare_keys(actual, expected, what, ctx)
        for k in expected:
            compare_value(actual[k], expected[k], f"{what}[{k!r}]", ctx)
        return
    if type(actual) is not type(expected) or not (
        actual == expected or _both_nan(actual, expected)
    ):
        raise AssertionError(
            ctx.where(
                f"{what}: expected {expected!r} ({type(expected).__name__}), "
                f"got {actual!r} ({type(actual).__name__})"
            )
        )


def _both_nan(a, b) -> bool:
    return isinstance(a, float) and isinstance(b, float) and a != a and b != b


def compare_keys(actual: Any, expected: dict, what: str, ctx: CompareContext) -> None:
    if not isinstance(actual, dict):
        raise AssertionError(
            ctx.where(f"{what}: expected a dict, got {type(actual).__name__}")
        )
    ka, ke = set(actual), set(expected)
    if ka != ke:
        raise AssertionError(
            ctx.where(
                f"{what}: keys differ: missing {sorted(map(repr, ke - ka))}, "
                f"unexpected {sorted(map(repr, ka - ke))} "
                f"(expected keys {list(expected)}, got {list(actual)})"
            )
        )


def compare_state_dicts(actual: dict, expected: dict, ctx: CompareContext) -> None:
    if ctx.normalize_state_dict is not None:
        actual = ctx.normalize_state_dict(actual)
        expected = ctx.normalize_state_dict(expected)
    compare_keys(actual, expected, "state_dict()", ctx)
    sa, se = actual["state"], expected["state"]
    compare_keys(sa, se, "state_dict()['state'] (parameter indices)", ctx)
    for k in se:
        name = (
            f" ({ctx.param_names[k]})"
            if isinstance(k, int) and k < len(ctx.param_names)
            else ""
        )
        if isinstance(se[k], dict):
            compare_keys(sa[k], se[k], f"state[{k!r}]{name} keys", ctx)
            for key in se[k]:
                compare_value(
                    sa[k][key], se[k][key], f"state[{k!r}]{name}[{key!r}]", ctx
                )
        else:
            compare_value(sa[k], se[k], f"state[{k!r}]", ctx)
    ga, ge = actual["param_groups"], expected["param_groups"]
    if len(ga) != len(ge):
        raise AssertionError(
            ctx.where(
                f"number of param_groups differs: expected {len(ge)}, got {len(ga)}"
            )
        )
    for i, (a, e) in enumerate(zip(ga, ge)):
        a = {k: v for k, v in a.items() if k not in ctx.ignore_group_keys}
        e = {k: v for k, v in e.items() if k not in ctx.ignore_group_keys}
        # the generated twins in FUSED_EXTENSION add a `fused` flag torch's class lacks
        for one, other in ((a, e), (e, a)):
            if "fused" in one and "fused" not in other and not one["fused"]:
                del one["fused"]
        compare_keys(a, e, f"param_groups[{i}] keys", ctx)
        for key in e:
            compare_value(a[key], e[key], f"param_groups[{i}][{key!r}]", ctx)


def compare_params(
    actual: list[torch.Tensor], expected: list[torch.Tensor], ctx: CompareContext
) -> None:
    """Parameter values, then (``ctx.compare_grads``) their ``.grad`` after the step.

    Gradients must equal the expected side's -- except that where the expected optimizer
    modified its gradient in place (torch's foreach SGD with nesterov adds the momentum
    buffer into ``p.grad`` when the group's weight_decay is 0) the actual one may instead
    leave the gradient exactly as it was handed over (``ctx.pristine_grads``)."""
    for i, (a, e) in enumerate(zip(actual, expected)):
        compare_tensor(a, e, f"param #{i} {_tensor_brief(e)}", ctx)
    if not ctx.compare_grads:
        return
    for i, (a, e) in enumerate(zip(actual, expected)):
        if (a.grad is None) != (e.grad is None):
            raise AssertionError(
                ctx.where(f"param #{i}.grad: expected {e.grad!r}, got {a.grad!r}")
            )
        if e.grad is None:
            continue
        try:
            compare_tensor(
                a.grad, e.grad, f"param #{i}.grad (after step)", ctx, record=False
            )
        except AssertionError:
            pristine = ctx.pristine_grads[i] if ctx.pristine_grads else None
            if pristine is None or not torch.equal(a.grad, pristine):
                raise


def compare_optimizers(actual_opt, expected_opt, actual_params, expected_params, ctx):
    compare_params(actual_params, expected_params, ctx)
    compare_state_dicts(actual_opt.state_dict(), expected_opt.state_dict(), ctx)


# ---------------------------------------------------------------------------------------
# Errors: "torch raises X" must mean "we raise the same X".
# ---------------------------------------------------------------------------------------


def call_capturing(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return fn(), None
    except Exception as exc:  # noqa: BLE001 - we compare whatever torch raises
        return None, exc


def assert_same_exception(
    actual: BaseException | None, expected: BaseException | None, what: str
) -> None:
    if expected is None and actual is None:
        return
    if expected is None:
        raise AssertionError(
            f"{what}: the reference succeeded but the class under test raised "
            f"{type(actual).__name__}: {actual}"
        ) from actual
    if actual is None:
        raise AssertionError(
            f"{what}: the reference raised {type(expected).__name__}: {expected}\n"
            f"  but the class under test did not raise"
        )
    if type(actual) is not type(expected) or str(actual) != str(expected):
        raise AssertionError(
            f"{what}: exception differs:\n"
            f"  expected {type(expected).__name__}: {expected}\n"
            f"  got      {type(actual).__name__}: {actual}"
        ) from actual


# ---------------------------------------------------------------------------------------
# The side-by-side runner.
# ---------------------------------------------------------------------------------------


@dataclass
class SideBySideResult:
    steps_run: int
    raised: BaseException | None  # the error both sides raised identically, if any
    expected_opt: Any = None
    actual_opt: Any = None
    expected_params: list = field(default_factory=list)
    actual_params: list = field(default_factory=list)


def run_side_by_side(
    expected_cls: type,
    actual_cls: type,
    *,
    expected_kwargs: dict[str, Any],
    actual_kwargs: dict[str, Any] | None = None,
    dtype: torch.dtype,
    label: str,
    tol: Tolerance,
    seed: int,
    steps: int = 10,
    group2: dict[str, Any] | None = None,
    record: RecordKey | None = None,
    test_id: str | None = None,
    ignore_group_keys=(),
    shapes=None,
    none_steps=NONE_STEPS,
    closure_every: int = 2,
    compare_grads: bool = True,
    normalize_state_dict: Callable[[dict], dict] | None = None,
    device: str = "cpu",
) -> SideBySideResult:
    """Step ``expected_cls`` and ``actual_cls`` on identical inputs, comparing after every
    step.  If the expected class raises (at construction or at some step), the actual class
    must raise the same exception type with the same message at the same point.

    ``compare_grads``: also compare ``p.grad`` after each step (an optimizer that mutates
    the gradients in place must do so exactly like the expected one).

    ``shapes``: the parameters' shapes; by default :func:`shapes_for` the expected
    class's name (2-D only for a twin in :data:`MATRIX_ONLY`)."""
    if actual_kwargs is None:
        actual_kwargs = expected_kwargs
    if shapes is None:
        shapes = shapes_for(expected_cls.__name__)
    initial = [t.to(device) for t in make_initial_params(dtype, seed, shapes)]
    e_params, a_params = clone_params(initial), clone_params(initial)
    ctx = CompareContext(
        label=label,
        step="(construction)",
        tol=tol,
        record=record,
        test_id=test_id,
        ignore_group_keys=frozenset(ignore_group_keys),
        compare_grads=compare_grads,
        normalize_state_dict=normalize_state_dict,
        param_names=[f"param #{i}, shape {tuple(s)}" for i, s in enumerate(shapes)],
    )

    e_opt, e_exc = call_capturing(
        lambda: expected_cls(
            make_param_groups(e_params, group2), **copy.deepcopy(expected_kwargs)
        )
    )
    a_opt, a_exc = call_capturing(
        lambda: actual_cls(
            make_param_groups(a_params, group2), **copy.deepcopy(actual_kwargs)
        )
    )
    assert_same_exception(a_exc, e_exc, f"{label}\n  constructor")
    if e_exc is not None:
        return SideBySideResult(0, e_exc)

    compare_optimizers(a_opt, e_opt, a_params, e_params, ctx)

    for step in range(steps):
        ctx.step = step
        grads = gradients_for_step(step, initial, seed, none_steps)
        ctx.pristine_grads = grads
        calls = {"expected": 0, "actual": 0}

        def set_grads(params, grads=grads):
            for p, g in zip(params, grads):
                p.grad = None if g is None else g.clone()

        def make_closure(params, side):
            def closure():
                calls[side] += 1
                set_grads(params)
                return torch.tensor(float(step), dtype=torch.float64)

            return closure

        use_closure = closure_every and step % closure_every == 1
        if use_closure:
            e_out, e_exc = call_capturing(
                lambda: e_opt.step(make_closure(e_params, "expected"))
            )
            a_out, a_exc = call_capturing(
                lambda: a_opt.step(make_closure(a_params, "actual"))
            )
        else:
            set_grads(e_params)
            set_grads(a_params)
            e_out, e_exc = call_capturing(e_opt.step)
            a_out, a_exc = call_capturing(a_opt.step)
        assert_same_exception(a_exc, e_exc, f"{label}\n  step {step}")
        if e_exc is not None:
            return SideBySideResult(step, e_exc, e_opt, a_opt, e_params, a_params)
        if calls["actual"] != calls["expected"]:
            raise AssertionError(
                ctx.where(
                    f"closure called {calls['actual']} times, expected {calls['expected']}"
                )
            )
        compare_value(a_out, e_out, "return value of step()", ctx)
        compare_optimizers(a_opt, e_opt, a_params, e_params, ctx)

    return SideBySideResult(steps, None, e_opt, a_opt, e_params, a_params)
