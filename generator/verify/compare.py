"""The strict comparisons of the differential harness: two live optimizers (their parameters,
the gradients after a step, the step's return value, the whole ``state_dict()``) held to each
other within a :class:`Tolerance`, and "the reference raises X" held to "we raise the same X".

A mismatch raises an ``AssertionError`` that names the comparison (:class:`CompareContext`'s
label), the step, the tensor or state key, and the largest absolute and relative deviation.
Every tensor compared is also shown to the context's :meth:`CompareContext.observe` with its
deviations (the parity tests keep them for their report). ``rtol`` is elementwise; the absolute
tolerance is ``rtol`` times the largest magnitude in the expected tensor ("tensor-scaled"), so
that entries that cancel down to ~0 (momentum buffers, tiny gradients) are judged against the
scale of their tensor, unless an absolute ``atol`` is given; :data:`EXACT` asks for bit
equality. Two NaNs (or two equal infinities) agree, unless the tolerance is ``finite_only``.
generator.verify.harness's ``run_side_by_side`` applies these after every step; torch is
imported when a comparison runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    scaled_atol: bool = True
    atol: float | None = None  # an absolute atol instead of the tensor-scaled one
    #: a NaN or an infinity, on either side, is a difference even where both sides hold it
    #: (by default two NaNs, or two equal infinities, agree): for values that must stay finite
    finite_only: bool = False

    @property
    def exact(self) -> bool:
        return self.rtol == 0.0 and not self.atol

    def __str__(self) -> str:
        finite = ", finite only" if self.finite_only else ""
        if self.exact:
            return f"exact (rtol=0, atol=0){finite}"
        if self.atol is not None:
            return f"rtol={self.rtol:g}, atol={self.atol:g}{finite}"
        return f"rtol={self.rtol:g}, atol={self.rtol:g}*max|expected|{finite}"


EXACT = Tolerance(0.0)


@dataclass
class CompareContext:
    label: str  # who vs whom, which config
    step: int | str
    tol: Tolerance
    ignore_group_keys: frozenset[str] = frozenset()
    compare_grads: bool = True
    #: applied to both state_dicts before comparing (e.g. to compare values, not types)
    normalize_state_dict: Callable[[dict], dict] | None = None
    #: the gradients as they were handed to the optimizers this step (see compare_params)
    pristine_grads: list[torch.Tensor | None] | None = None
    param_names: list[str] = field(default_factory=list)

    def where(self, what: str) -> str:
        return f"{self.label}\n  after step {self.step}: {what}"

    def observe(self, max_abs: float, max_rel: float) -> None:
        """The deviation of a tensor compared (0 and 0 where bit-identical); a hook for reports."""


def deviation(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """(max |a - e|, max |a - e| / |e|) over all elements, NaN-aware (NaN == NaN)."""
    import torch

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
    """``record``: show the deviation to ``ctx.observe``."""
    import torch

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
    if ctx.tol.finite_only:
        _assert_finite(actual, expected, what, ctx)
    if torch.equal(actual.detach(), expected.detach()):  # fast path: bit-identical
        # (torch.equal is False for NaNs, which then go the slow, NaN-aware way)
        if record:
            ctx.observe(0.0, 0.0)
        return
    max_abs, max_rel = deviation(actual, expected)
    if record:
        ctx.observe(max_abs, max_rel)
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


def _assert_finite(
    actual: torch.Tensor, expected: torch.Tensor, what: str, ctx: CompareContext
) -> None:
    """(``ctx.tol.finite_only``) No NaN or infinity in either tensor."""
    import torch

    a, e = actual.detach(), expected.detach()
    bad = ~(torch.isfinite(a) & torch.isfinite(e))
    if bool(bad.any()):
        k = int(bad.flatten().nonzero()[0])
        raise AssertionError(
            ctx.where(
                f"{what}: {int(bad.sum())} of {bad.numel()} elements NaN or infinite "
                f"(tolerance {ctx.tol}); first at flat index {k}: "
                f"{a.flatten()[k].item()!r}, expected {e.flatten()[k].item()!r}"
            )
        )


def _tensor_brief(t: torch.Tensor) -> str:
    return f"(dtype={t.dtype}, device={t.device}, shape={tuple(t.shape)})"


def compare_value(actual: Any, expected: Any, what: str, ctx: CompareContext) -> None:
    """Compare state / param-group values: tensors by :func:`compare_tensor`, containers
    recursively, everything else by type and ``==``."""
    import torch

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
        # a generated class may add a `fused` flag its reference lacks (the twins of torch's
        # classes without a fused kernel): off, it is no difference
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
    import torch

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


# ---- errors: "the reference raises X" must mean "we raise the same X" ---------------------------


def call_capturing(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """(what ``fn()`` returns, None), or (None, what it raised)."""
    try:
        return fn(), None
    except Exception as exc:  # noqa: BLE001 - we compare whatever the reference raises
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
