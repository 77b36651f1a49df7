"""The differential harness: an optimizer class run against a reference over seeded steps of a
problem (generator.verify.problems), its parameters and states compared after every step within
a tolerance, on each implementation path the class declares.

Two runners share the problems, the stepping (gradients handed over as copies, a closure where
the step needs one, whatever construction or a step raises caught and kept) and the paths.
:func:`trajectory` runs one optimizer and keeps its parameters after every step and its state
after the last; a crash, or a refusal the generated module documents, ends it and is reported,
not raised. :func:`first_difference`, :func:`state_difference` and :func:`non_finite` then hold
one trajectory to another: `optimgen verify` and the fuzzer compare a class's paths, and the class
with its reference, so. :func:`run_side_by_side` steps two optimizers in lockstep and asserts
after every step (generator.verify.compare) that parameters, gradients, the step's return value
and the whole ``state_dict()`` agree, and that both raise alike: the parity tests hold the
generated twins to torch.optim so. :func:`run_steps` only steps one optimizer, for a test
that asserts after every step itself (the paper suite). :func:`implementations` and
:func:`impl_kwargs` name a class's paths (for-loop, foreach, fused, and the for-loop with
``differentiable=True``) and the keyword arguments that choose each; a :class:`Reference` is
whatever makes the optimizer held to. torch is imported by the functions that run optimizers
(or handed to them), never at import.
"""

from __future__ import annotations

import copy
import inspect
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from generator.verify.compare import (
    CompareContext,
    Tolerance,
    assert_same_exception,
    call_capturing,
    compare_optimizers,
    compare_value,
)
from generator.verify.problems import (
    seed_draws,
    FULL,
    NONE_STEPS,
    STEPWISE_SHAPES,
    Layout,
    Problem,
    clone_params,
    quadratic_closure,
    set_grads,
    stable_seed,
    stepwise_problem,
    verify_problem,
)

# ---- implementation paths and references ----------------------------------------------------------

# (differentiable: the for-loop with differentiable=True, torch's other form of each in-place
# update, out of place where autograd would need the old value)
IMPLS = ("for-loop", "foreach", "fused", "differentiable")


def implementations(cls) -> list[str]:
    """The paths ``cls`` declares, the for-loop first."""
    takes = inspect.signature(cls.__init__).parameters
    return ["for-loop"] + [i for i in IMPLS[1:] if i in takes]


def impl_kwargs(cls, impl: str) -> dict[str, Any]:
    """The keyword arguments that put ``cls`` on the path ``impl``."""
    takes = inspect.signature(cls.__init__).parameters
    if impl == "fused":
        return {"fused": True}
    if impl == "differentiable":
        return {
            "differentiable": True,
            **({"foreach": False} if "foreach" in takes else {}),
        }
    if "foreach" in takes:
        return {"foreach": impl == "foreach"}
    return {}


def keywords(fn) -> frozenset[str] | None:
    """The keyword arguments ``fn`` takes besides its parameters; None: any (``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(n for n in params if n not in ("self", "params"))


def accepts_kwarg(cls: type, name: str) -> bool:
    """Whether the constructor of ``cls`` takes the keyword argument ``name``."""
    takes = keywords(cls.__init__)
    return takes is None or name in takes


@dataclass(frozen=True)
class Reference:
    name: str
    make: Any  # (params, **kwargs) -> torch.optim.Optimizer
    takes: frozenset[str] | None  # keyword arguments it accepts; None: any

    def accepts(self, name: str) -> bool:
        return self.takes is None or name in self.takes


def needs_closure(opt) -> bool:
    """A step that must be given a closure (LBFGS's line search evaluates the loss again): one
    whose ``closure``, or another positional parameter, has no default."""
    try:
        params = inspect.signature(opt.step).parameters
    except (TypeError, ValueError):
        return False
    closure = params.get("closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        return True
    return any(
        p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        for p in params.values()
    )


# ---- one optimizer's trajectory -----------------------------------------------------------------


@dataclass
class Trajectory:
    """Parameters after each step, or where it stopped."""

    params: list = field(default_factory=list)  # per step: a list of tensors
    # after the last step, per parameter (by its index) its state: {key: tensor or number}
    states: dict = field(default_factory=dict)
    refused: str | None = None  # a refusal the spec documents, at construction
    error: str | None = None  # anything else that went wrong, with its step


def documented_refusal(exc: BaseException, module_file: str | None) -> bool:
    """Raised on purpose by the generated module's own checks (its requires and checks) or by
    a check of torch's it calls (torch's fused kernels take floating-point tensors only): the
    last frame is a `raise` statement, and the module is on the way to it. A failure inside
    an operation, or a Python error such as NameError, is no refusal."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or module_file is None:
        return False
    if not any(f.filename == module_file for f in frames):
        return False
    return (frames[-1].line or "").lstrip().startswith("raise ")


def trajectory(
    torch, make, kwargs, dtype, seed, steps, module_file=None, layout: Layout = FULL
) -> Trajectory:
    """``make(groups, **kwargs)`` run ``steps`` steps of verify's problem on ``layout``'s
    parameters (``module_file``: the generated module, whose refusals are documented).
    """
    problem = verify_problem(torch, dtype, seed, steps, layout)
    return run_trajectory(torch, make, kwargs, problem, seed, steps, module_file)


def run_trajectory(
    torch, make, kwargs, problem: Problem, seed: int, steps: int, module_file=None
) -> Trajectory:
    """``make(problem.groups(params), **kwargs)`` run ``steps`` steps of ``problem``."""
    # a differentiable step updates its parameters in place with autograd on: parameters that
    # do not require gradients (their .grad is set by hand here) keep that legal
    params = [
        t.clone().requires_grad_(not kwargs.get("differentiable", False))
        for t in problem.initial
    ]
    # an optimizer that draws (WeirdDescent, Kron) draws alike on each side
    seed_draws(seed)
    out = Trajectory()
    opt, e = call_capturing(lambda: make(problem.groups(params), **kwargs))
    if e is not None:  # the finding is the refusal itself
        what = f"at construction: {type(e).__name__}: {e}"
        if documented_refusal(e, module_file):
            out.refused = what
        else:
            out.error = what
        return out
    with_closure = needs_closure(opt)
    for step in range(steps):
        row = problem.gradients(step)
        problem.set_grads(params, step, seed, row)

        def closure(row=row):
            # a loss whose gradient is this step's gradient (LBFGS evaluates it again)
            with torch.enable_grad():
                for p in params:
                    p.grad = None
                terms = [
                    (p * g.conj()).real.sum() if p.is_complex() else (p * g).sum()
                    for p, g in zip(params, row)
                    if g is not None
                ]
                loss = torch.stack(terms).sum()
                if loss.requires_grad:
                    loss.backward()
                else:  # (a differentiable step's parameters take their gradients by hand)
                    for p, g in zip(params, row):
                        p.grad = None if g is None else g.clone()
            return loss

        _, e = call_capturing(lambda: opt.step(closure) if with_closure else opt.step())
        if e is not None:
            where = f"at step {step + 1}"
            if documented_refusal(e, module_file):
                out.refused = f"{where}: {type(e).__name__}: {e}"
            else:
                out.error = f"{where}: {type(e).__name__}: {e}"
            return out
        out.params.append([p.detach().clone() for p in params])
    for i, p in enumerate(params):
        out.states[i] = {
            k: v.detach().clone() if torch.is_tensor(v) else v
            for k, v in opt.state.get(p, {}).items()
        }
    return out


def run_steps(make, kwargs, problem: Problem, steps: int, on_step=None):
    """``make(problem.groups(params), **kwargs)`` stepped ``steps`` times on ``problem`` (each
    step's gradients handed over as copies, ``step()`` without a closure), calling
    ``on_step(step, params, opt)`` after every step; returns (params, opt). A step that needs
    a closure (``make.needs_closure``, or its signature's: SAM's) is given one whose loss is
    a quadratic model with the step's gradients at the parameters
    (:func:`quadratic_closure`). Unlike
    :func:`run_trajectory` it keeps nothing, catches nothing (what construction, a step or
    ``on_step`` raises propagates: a test's failure, with its traceback) and leaves torch's
    global generator alone: a test that asserts as the optimizer steps."""
    params = clone_params(problem.initial)
    opt = make(problem.groups(params), **kwargs)
    with_closure = getattr(make, "needs_closure", False) or needs_closure(opt)
    for step in range(steps):
        if with_closure:
            grads = problem.gradients(step)
            problem.set_grads(params, step, row=grads)
            opt.step(quadratic_closure(params, grads, stable_seed("closure", step)))
        else:
            problem.set_grads(params, step)
            opt.step()
        if on_step is not None:
            on_step(step, params, opt)
    return params, opt


# ---- holding one trajectory to another ----------------------------------------------------------


def _widened(torch, t):
    """A tensor in float64 to compare, a complex one as its real pairs."""
    t = t.detach()
    if t.is_complex():
        t = torch.view_as_real(t)
    return t.double()


def mismatch(torch, a, e, rtol, atol):
    """The elements of ``a`` beyond ``atol + rtol * |e|`` of ``e``; two equal infinities
    agree, and so do two NaNs (both sides diverged alike)."""
    bad = ~((a - e).abs() <= atol + rtol * e.abs())
    bad &= ~((a == e) & torch.isinf(a))
    bad &= ~(torch.isnan(a) & torch.isnan(e))
    return bad


def first_difference(torch, got: Trajectory, want: Trajectory, rtol, atol):
    """(max abs deviation, first difference beyond the tolerance or None)."""
    worst, first = 0.0, None
    for step, (a_params, e_params) in enumerate(zip(got.params, want.params)):
        for i, (a, e) in enumerate(zip(a_params, e_params)):
            a, e = _widened(torch, a), _widened(torch, e)
            diff = (a - e).abs()
            finite = torch.isfinite(diff)
            if finite.any():
                worst = max(worst, diff[finite].max().item())
            bad = mismatch(torch, a, e, rtol, atol)
            if first is None and bool(bad.any()):
                k = int(bad.flatten().nonzero()[0])
                first = (
                    f"step {step + 1}, param #{i} {tuple(a.shape)}, element {k}: "
                    f"{a.flatten()[k].item()!r} vs {e.flatten()[k].item()!r}"
                )
    return worst, first


def state_difference(
    torch, got: Trajectory, want: Trajectory, rtol, atol
) -> str | None:
    """The first state both sides keep under one key that differs after the last step (for
    a reference whose state layout the class promises to keep: torch's)."""
    for i, theirs in want.states.items():
        ours = got.states.get(i, {})
        for key in sorted(theirs.keys() & ours.keys()):
            diff = _value_difference(torch, ours[key], theirs[key], rtol, atol)
            if diff:
                return f"param #{i} state {key!r}{diff}"
    return None


def _value_difference(torch, a, e, rtol, atol) -> str | None:
    if isinstance(e, (list, tuple)):
        if not isinstance(a, (list, tuple)) or len(a) != len(e):
            return f": {_kind(a)} vs {_kind(e)}"
        for k, (x, y) in enumerate(zip(a, e)):
            diff = _value_difference(torch, x, y, rtol, atol)
            if diff:
                return f"[{k}]{diff}"
        return None
    if torch.is_tensor(a) != torch.is_tensor(e):
        return f": {_kind(a)} vs {_kind(e)}"
    if not torch.is_tensor(a):
        return None if a == e else f": {a!r} vs {e!r}"
    if a.shape != e.shape or a.is_complex() != e.is_complex():
        return f": {_kind(a)} vs {_kind(e)}"
    a, e = _widened(torch, a), _widened(torch, e)
    bad = mismatch(torch, a, e, rtol, atol)
    if not bool(bad.any()):
        return None
    k = int(bad.flatten().nonzero()[0])
    return f", element {k}: {a.flatten()[k].item()!r} vs {e.flatten()[k].item()!r}"


def _kind(v) -> str:
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        return f"{v.dtype} {tuple(v.shape)}"
    if isinstance(v, (list, tuple)):
        return f"{type(v).__name__} of {len(v)}"
    return type(v).__name__


def non_finite(torch, traj: Trajectory) -> str | None:
    """The first parameter that holds a NaN or an infinity, with its step."""
    for step, params in enumerate(traj.params):
        for i, p in enumerate(params):
            if not bool(torch.isfinite(p).all()):
                return f"step {step + 1}, param #{i} {tuple(p.shape)}: NaN or inf"
    return None


# ---- two optimizers in lockstep -------------------------------------------------------------------


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
    dtype,
    label: str,
    tol: Tolerance,
    seed: int,
    steps: int = 10,
    group2: dict[str, Any] | None = None,
    ignore_group_keys=(),
    shapes=STEPWISE_SHAPES,
    none_steps=NONE_STEPS,
    closure_every: int = 2,
    compare_grads: bool = True,
    normalize_state_dict: Callable[[dict], dict] | None = None,
    device: str = "cpu",
    context: Callable[..., CompareContext] = CompareContext,
) -> SideBySideResult:
    """Step ``expected_cls`` and ``actual_cls`` on identical inputs (the stepwise problem, with
    ``group2`` the options of a second param group, ``step(closure)`` every ``closure_every``
    steps), comparing after every step. If the expected class raises (at construction or at
    some step), the actual class must raise the same exception type with the same message at
    the same point.

    ``compare_grads``: also compare ``p.grad`` after each step (an optimizer that mutates
    the gradients in place must do so exactly like the expected one). ``context`` makes the
    :class:`CompareContext` of the comparisons (one that keeps the deviations it sees).
    """
    import torch

    if actual_kwargs is None:
        actual_kwargs = expected_kwargs
    problem = stepwise_problem(dtype, seed, shapes, none_steps, group2, device)
    e_params, a_params = clone_params(problem.initial), clone_params(problem.initial)
    ctx = context(
        label=label,
        step="(construction)",
        tol=tol,
        ignore_group_keys=frozenset(ignore_group_keys),
        compare_grads=compare_grads,
        normalize_state_dict=normalize_state_dict,
        param_names=[f"param #{i}, shape {tuple(s)}" for i, s in enumerate(shapes)],
    )

    e_opt, e_exc = call_capturing(
        lambda: expected_cls(problem.groups(e_params), **copy.deepcopy(expected_kwargs))
    )
    a_opt, a_exc = call_capturing(
        lambda: actual_cls(problem.groups(a_params), **copy.deepcopy(actual_kwargs))
    )
    assert_same_exception(a_exc, e_exc, f"{label}\n  constructor")
    if e_exc is not None:
        return SideBySideResult(0, e_exc)

    compare_optimizers(a_opt, e_opt, a_params, e_params, ctx)

    for step in range(steps):
        ctx.step = step
        grads = problem.gradients(step)
        ctx.pristine_grads = grads
        calls = {"expected": 0, "actual": 0}

        def make_closure(params, side):
            def closure():
                calls[side] += 1
                set_grads(params, grads)
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
            problem.set_grads(e_params, step, row=grads)
            problem.set_grads(a_params, step, row=grads)
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
