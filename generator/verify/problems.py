"""The seeded problems of the differential harness: the starting parameters and the gradients of
every step, drawn from a seed, so that two optimizers (or two runs of one) see the same inputs.

A :class:`Problem` holds the starting values, a function from a step to its gradients and one from
the parameters to the param groups an optimizer is given; the runners of generator.verify.harness
step optimizers on it. There are two problems, kept apart because each suite's numbers (and the
bounds measured on them) are tied to its own draws. `optimgen verify`'s (:func:`problem`,
:class:`Layout`): six parameters of ranks 1-3 in two param groups, gradients spread over five
orders of magnitude drawn in order from one generator, a parameter without a gradient on some
steps, a whole group without one on others, a row that never gets one. The stepwise problem of
the parity tests (:func:`make_initial_params`, :func:`gradients_for_step`): four parameters,
gradients ``randn * 10**uniform(-6, 1)`` drawn afresh for every (step, parameter) from a seed of
their own, so that any step's gradients can be asked for, and one parameter without a gradient
on :data:`NONE_STEPS`; the paper suite (tests/paper_reference.py) runs on it too, in two param
groups (:func:`paper_problem`). torch is imported when a problem is drawn.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Problem:
    """Starting values, the gradients of each step, and the param groups of the parameters."""

    initial: list  # the starting values (tensors that are not leaves of a graph)
    gradients: Callable[
        [int], list
    ]  # step → a gradient per parameter (None: none that step)
    groups: Callable[[list], list] = (
        list  # the parameters → what the optimizer is given
    )
    # the gradients carry the graph of a quadratic model (:func:`curved`), for an optimizer
    # whose step differentiates them (``requires_create_graph``: AdaHessian)
    curved: bool = False

    def set_grads(self, params, step: int, seed: int = 0, row=None) -> None:
        """Give ``params`` this step's gradients (``row``, where the caller has drawn them
        already), with their graph where ``curved``."""
        curvature = stable_seed("curvature", seed, step) if self.curved else None
        set_grads(params, self.gradients(step) if row is None else row, curvature)


def set_grads(params, grads, curvature: int | None = None) -> None:
    """Give each parameter a copy of its gradient (None: none). With ``curvature`` (a seed),
    for an optimizer whose step differentiates the gradients (``requires_create_graph``,
    AdaHessian's Hessian estimate), each gradient carries the graph of a quadratic model whose
    gradient at the parameters is exactly the one given: see :func:`curved`."""
    if curvature is not None:
        curved(params, grads, curvature)
        return
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.clone()


def seed_draws(seed: int) -> None:
    """Seed what an optimizer's step may draw from, alike before each side runs: torch's
    generator (AdaHessian's probes, ScalableShampoo's power iterations, Kron's probes) and
    numpy's global one where numpy is installed (Kron's balancing decision, drawn as its
    reference draws it)."""
    import torch

    torch.manual_seed(seed)
    try:
        import numpy
    except ImportError:  # (then nothing draws from it: host_uniform imports it)
        return
    numpy.random.seed(seed)


def _model_curvature(params, grads, seed: int) -> tuple[list, list]:
    """The curvature of :func:`curved`'s quadratic model over the parameters that have a
    gradient (None elsewhere): ``c`` in [0.5, 1.5) and ``d`` normal, drawn from ``seed`` in
    float64 whatever the dtype (so that runs in two dtypes see one model), every ``d`` first.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)

    def draw(shape, sample, like):
        return sample(shape, generator=gen, dtype=torch.float64).to(like.dtype)

    d = [
        None if g is None else draw(p.shape, torch.randn, p)
        for p, g in zip(params, grads)
    ]
    c = [
        None if g is None else 0.5 + draw(p.shape, torch.rand, p)
        for p, g in zip(params, grads)
    ]
    return c, d


def curved(params, grads, seed: int) -> None:
    """``p.grad = g + c ⊙ (p - p₀) + d ⊙ Σ_q d_q · (q - q₀)`` at ``p₀ = p``, with its graph: the
    gradient of the quadratic model ``L = Σ g·p + ½ Σ c (p - p₀)² + ½ (Σ d·(p - p₀))²``, whose
    value is ``g`` to the bit (every ``p - p₀`` is zero) and whose Hessian ``diag(c) + d dᵀ``
    (``c`` in [0.5, 1.5), ``d`` normal, drawn from ``seed`` over the parameters that have a
    gradient) couples the parameters, so that Hutchinson's probes change the estimate.
    Parameters must require gradients."""
    import torch

    c, d = _model_curvature(params, grads, seed)
    with torch.enable_grad():
        moved = [p - p.detach() for p in params]
        coupling = sum((m * v).sum() for m, v in zip(moved, d) if v is not None)
        for p, g, m, cp, v in zip(params, grads, moved, c, d):
            p.grad = None if g is None else g + cp * m + v * coupling


def quadratic_closure(params, grads, seed: int):
    """A closure whose loss is :func:`curved`'s quadratic model around the parameters as they
    are now: its gradients here are ``grads`` to the bit, and they move with the parameters,
    so that an optimizer evaluating it elsewhere (SAM, at weights it has moved) sees other
    gradients. Each call sets the gradients afresh (None where ``grads`` has none) and returns
    the loss."""
    import torch

    c, d = _model_curvature(params, grads, seed)
    start = [p.detach().clone() for p in params]

    def closure():
        with torch.enable_grad():
            loss, coupling = 0, 0
            for p, s, g, cp, v in zip(params, start, grads, c, d):
                p.grad = None
                if g is None:
                    continue
                moved = p - s
                loss = loss + (g * p).sum() + 0.5 * (cp * moved * moved).sum()
                coupling = coupling + (v * moved).sum()
            loss = loss + 0.5 * coupling * coupling
            loss.backward()
        return loss.detach()

    return closure


# ---- `optimgen verify`'s problem ------------------------------------------------------------------

# two groups: the first two tensors, then the rest; shapes of ranks 1-3, sizes below and above
# small thresholds a spec may test (`size(param, 0) > 2`, `numel(param) > 4`)
SHAPES = ((5, 4), (4,), (3, 3, 2), (2,), (2, 6), (7,))


@dataclass(frozen=True)
class Layout:
    """The parameters of a run: their shapes, and whether they form two param groups."""

    shapes: tuple = SHAPES
    grouped: bool = True
    note: str = ""  # why it is not the whole problem
    # gradients with the graph of a quadratic model (Problem.curved)
    curved: bool = False

    def groups(self, params) -> list[dict]:
        if not self.grouped or len(params) < 3:
            return [{"params": params}]
        return [{"params": params[:2]}, {"params": params[2:]}]


FULL = Layout()
# where a spec reads the parameter's rank (a branch on it, a list made for each dimension): a
# 0-d parameter too, whose rank has no dimension to loop over
WITH_SCALAR = Layout(SHAPES + ((),))


def problem(torch, dtype, seed: int, steps: int, shapes=SHAPES, grouped: bool = False):
    """(starting values, gradients per step) of verify's problem."""
    gen = torch.Generator().manual_seed(seed)
    start = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    if len(start) > 3:
        start[3].zero_()  # a bias starting at zero: norms and ratios of a zero tensor
    grads = []
    for step in range(steps):
        row = []
        for i, s in enumerate(shapes):
            if i == 1 and step % 4 == 0:
                # a parameter without a gradient on some steps, the first among them (its
                # states are made a step after the others')
                row.append(None)
                continue
            if grouped and i >= 2 and step % 5 == 3:
                row.append(None)  # and a whole param group without one (a frozen layer)
                continue
            scale = 10 ** (torch.rand(s, generator=gen, dtype=torch.float64) * 5 - 4)
            g = torch.randn(s, generator=gen, dtype=dtype) * scale.to(dtype)
            if i == 0 and step % 3 == 1:
                g[0] = (
                    0  # a row without gradient on some steps (an embedding row not looked up)
                )
            if i == 4:
                g[0] = (
                    0  # and one that never gets any (a dead unit): its states stay zero
                )
            row.append(g)
        grads.append(row)
    return start, grads


def verify_problem(
    torch, dtype, seed: int, steps: int, layout: Layout = FULL
) -> Problem:
    """verify's problem on the parameters of ``layout``."""
    start, grads = problem(
        torch,
        dtype,
        seed,
        steps,
        layout.shapes,
        layout.grouped and len(layout.shapes) > 2,
    )
    return Problem(start, grads.__getitem__, layout.groups, layout.curved)


# ---- the stepwise problem of the parity tests -----------------------------------------------------

STEPWISE_SHAPES: tuple[tuple[int, ...], ...] = ((5, 4), (4,), (3, 3, 2), (2,))
#: index of the parameter whose gradient is ``None`` on :data:`NONE_STEPS`
SOMETIMES_NONE = 3
#: step 0 (lazy state creation on a later step) and two steps mid-run
NONE_STEPS = frozenset({0, 4, 5})


def stable_seed(*parts: Any) -> int:
    """A seed from any values, the same in every process (unlike ``hash``)."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def make_initial_params(
    dtype: torch.dtype, seed: int, shapes=STEPWISE_SHAPES
) -> list[torch.Tensor]:
    import torch

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
    import torch

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


def make_param_groups(params: list[torch.Tensor], group2: dict[str, Any] | None):
    """One group, or two: the first two parameters, then the rest with ``group2``'s options."""
    if group2 is None:
        return list(params)
    return [{"params": params[:2]}, {"params": params[2:], **copy.deepcopy(group2)}]


def stepwise_problem(
    dtype: torch.dtype,
    seed: int,
    shapes=STEPWISE_SHAPES,
    none_steps=NONE_STEPS,
    group2: dict[str, Any] | None = None,
    device: str = "cpu",
    curved: bool = False,
) -> Problem:
    """The parity tests' problem on ``device``, with a second param group where ``group2``
    (gradients with a graph where ``curved``)."""
    initial = [t.to(device) for t in make_initial_params(dtype, seed, shapes)]
    return Problem(
        initial,
        lambda step: gradients_for_step(step, initial, seed, none_steps),
        lambda params: make_param_groups(params, group2),
        curved,
    )


# ---- the paper suite's problem ----------------------------------------------------------------


def paper_group2(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options of the paper suite's second param group: half the learning rate where
    ``kwargs`` gives a float ``lr``, none otherwise (two groups all the same)."""
    lr = kwargs.get("lr")
    return {"lr": lr * 0.5} if isinstance(lr, float) else {}


def paper_problem(
    dtype: torch.dtype,
    seed: int,
    kwargs: dict[str, Any],
    shapes=STEPWISE_SHAPES,
    curved: bool = False,
) -> Problem:
    """The problem of the paper suite (tests/paper_reference.py): the parity tests' stepwise
    problem, always in two param groups (:func:`paper_group2` for an optimizer given
    ``kwargs``), its gradients with a graph where ``curved``."""
    return stepwise_problem(
        dtype, seed, shapes, group2=paper_group2(kwargs), curved=curved
    )
