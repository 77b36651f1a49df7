"""LBFGS, the flat-update twin: trained side by side with torch.optim.LBFGS through the closure.

The harness of test_torch_parity feeds gradients from outside; LBFGS computes its own, by calling
the closure (again at every trial point of its line search), and takes one param group. Here each
step evaluates a loss whose gradients span 1e-6..10 (a coupled quadratic plus a quartic, with
per-element scales), over parameters of several shapes, one of them in the loss only on odd
steps (its gradient is None on the others: the zeros path of the flat gradient, mid-run). For
every CPU config of torch's
optim_db, in float32, float64 and complex, parameters, returned losses and the whole
``state_dict()`` (history lists included) must equal torch's after every step, bit for bit.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from generator.verify.compare import EXACT, compare_params, compare_state_dicts
from generator.verify.problems import stable_seed
from parity import (
    CompareContext,
    RecordKey,
    describe_kwargs,
    dtype_name,
    generated_class,
    optim_info,
    slug,
)

NAME = "LBFGS"
STEPS = 6
SHAPES = ((5, 4), (4,), (3, 3, 2))
DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)
# beyond optim_db: a short history (the oldest pair dropped), few iterations (the last one
# without a new evaluation), no iteration at all, and a tolerance met at once (the early return)
EXTRA_CONFIGS = (
    {"history_size": 2, "max_iter": 7},
    {"history_size": 2, "line_search_fn": "strong_wolfe", "lr": 0.5},
    {"max_iter": 1},
    {"max_iter": 0},
    {"tolerance_grad": 1e6},
    {"max_eval": 3, "line_search_fn": "strong_wolfe"},
)


def _configs():
    configs = [
        (slug(inp.desc), inp.kwargs)
        for inp in optim_info(NAME).optim_inputs_func(device="cpu")
    ]
    configs += [(slug(describe_kwargs(kw)), kw) for kw in EXTRA_CONFIGS]
    return configs


CONFIGS = _configs()


class Problem:
    """Parameters and a loss over them: the same numbers on both sides."""

    def __init__(self, dtype: torch.dtype, seed: int, device: str = "cpu"):
        gen = torch.Generator().manual_seed(seed)
        real = torch.float64

        def draw(shape):
            if dtype.is_complex:
                return torch.complex(
                    torch.randn(shape, generator=gen, dtype=real),
                    torch.randn(shape, generator=gen, dtype=real),
                ).to(dtype)
            return torch.randn(shape, generator=gen, dtype=real).to(dtype)

        self.initial = [draw(s) for s in SHAPES] + [draw((2,))]
        self.step = 0  # the last parameter is in the loss on odd steps only
        n = sum(
            2 * torch.Size(s).numel() if dtype.is_complex else torch.Size(s).numel()
            for s in SHAPES
        )
        rdtype = torch.float32 if dtype in (torch.float32, torch.complex64) else real
        self.scale = (10.0 ** (torch.rand(n, generator=gen, dtype=real) * 7 - 6)).to(
            rdtype
        )
        self.coupling = (torch.randn(n, n, generator=gen, dtype=real) / n).to(rdtype)
        self.target = torch.randn(n, generator=gen, dtype=real).to(rdtype)
        self.initial = [t.to(device) for t in self.initial]
        self.scale, self.coupling, self.target = (
            t.to(device) for t in (self.scale, self.coupling, self.target)
        )

    def params(self):
        return [t.clone().requires_grad_(True) for t in self.initial]

    def closure(self, opt, params):
        def closure():
            opt.zero_grad()
            parts = [
                torch.view_as_real(p) if p.is_complex() else p for p in params[:-1]
            ]
            x = torch.cat([p.reshape(-1) for p in parts])
            r = self.coupling @ x - self.target
            loss = (self.scale * r * r).sum() / 2 + 0.01 * (x**4).sum()
            if self.step % 2 == 1:
                extra = params[-1]
                extra = torch.view_as_real(extra) if extra.is_complex() else extra
                loss = loss + 1e-3 * (extra**2).sum()
            loss.backward()
            return loss

        return closure


def _run(cls, problem, kwargs, steps, opt_state=None):
    params = problem.params()
    opt = cls(params, **copy.deepcopy(kwargs))
    if opt_state is not None:
        opt.load_state_dict(copy.deepcopy(opt_state))
    losses = [opt.step(problem.closure(opt, params)) for _ in range(steps)]
    return params, opt, losses


def _ctx(label, step, dtype=None):
    record = (
        None
        if dtype is None
        else RecordKey(NAME, "vs torch", dtype_name(dtype), "for-loop")
    )
    return CompareContext(
        label=label, step=step, tol=EXACT, compare_grads=False, record=record
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("desc,kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_lbfgs_matches_torch_bit_for_bit(desc, kwargs, dtype):
    _side_by_side(desc, kwargs, dtype, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("desc,kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_lbfgs_matches_torch_on_cuda(desc, kwargs):
    kwargs = {
        k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()
    }
    _side_by_side(desc, kwargs, torch.float32, "cuda")


def _side_by_side(desc, kwargs, dtype, device):
    problem = Problem(dtype, stable_seed(NAME, desc, dtype), device)
    label = f"LBFGS({describe_kwargs(kwargs)}), {dtype}"
    sides = []
    for cls in (torch.optim.LBFGS, generated_class(NAME)):
        params = problem.params()
        sides.append((params, cls(params, **copy.deepcopy(kwargs))))
    (tp, topt), (gp, gopt) = sides
    for step in range(STEPS):
        problem.step = step
        expected = topt.step(problem.closure(topt, tp))
        actual = gopt.step(problem.closure(gopt, gp))
        assert torch.isfinite(expected), f"{label}, step {step}: the problem diverged"
        assert torch.equal(
            actual, expected
        ), f"{label}, step {step}: step() returned {actual!r}, torch {expected!r}"
        ctx = _ctx(label, step, dtype)
        compare_params(gp, tp, ctx)
        compare_state_dicts(gopt.state_dict(), topt.state_dict(), ctx)


@pytest.mark.parametrize("direction", ["torch_to_generated", "generated_to_torch"])
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_state_dict_loads_across_and_continues_identically(
    direction, line_search_fn
):
    kwargs = {"history_size": 3, "max_iter": 4, "line_search_fn": line_search_fn}
    problem = Problem(torch.float64, stable_seed(NAME, "load", line_search_fn))
    first, second = (
        (torch.optim.LBFGS, generated_class(NAME))
        if direction == "torch_to_generated"
        else (generated_class(NAME), torch.optim.LBFGS)
    )
    params, opt, _ = _run(first, problem, kwargs, 3)
    problem.initial = [p.detach().clone() for p in params]
    state = opt.state_dict()
    assert state["state"][0][
        "old_dirs"
    ], "the history should not be empty after 3 steps"
    runs = [_run(cls, problem, kwargs, 3, state) for cls in (first, second)]
    (p1, o1, l1), (p2, o2, l2) = runs
    ctx = _ctx(f"LBFGS state_dict {direction}", "3 more steps")
    assert [x.item() for x in l2] == [x.item() for x in l1], ctx.where("losses differ")
    compare_params(p2, p1, ctx)
    compare_state_dicts(o2.state_dict(), o1.state_dict(), ctx)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_lbfgs_copy_continues_like_the_original(how):
    problem = Problem(torch.float32, stable_seed(NAME, how))
    params, opt, _ = _run(generated_class(NAME), problem, {"history_size": 4}, 2)
    holder = {"params": params, "opt": opt}
    copied = (
        copy.deepcopy(holder)
        if how == "deepcopy"
        else pickle.loads(pickle.dumps(holder))
    )
    for h in (holder, copied):
        h["loss"] = h["opt"].step(problem.closure(h["opt"], h["params"]))
    assert torch.equal(copied["loss"], holder["loss"])
    compare_params(copied["params"], holder["params"], _ctx(f"LBFGS {how}", 2))


def test_lbfgs_refuses_parameter_groups_like_torch():
    messages = []
    for cls in (torch.optim.LBFGS, generated_class(NAME)):
        groups = [{"params": [torch.zeros(2)]}, {"params": [torch.zeros(3)], "lr": 0.1}]
        with pytest.raises(ValueError) as info:
            cls(groups)
        messages.append(str(info.value))
    assert messages[1] == messages[0]


def test_lbfgs_follows_a_scheduler_like_torch():
    problem = Problem(torch.float64, stable_seed(NAME, "scheduler"))
    runs = []
    for cls in (torch.optim.LBFGS, generated_class(NAME)):
        params = problem.params()
        opt = cls(params, lr=0.8, max_iter=3)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        losses = []
        for _ in range(6):
            losses.append(float(opt.step(problem.closure(opt, params))))
            sched.step()
        runs.append((params, losses, opt.param_groups[0]["lr"]))
    (tp, tl, tlr), (gp, gl, glr) = runs
    assert gl == tl and glr == tlr
    compare_params(gp, tp, _ctx("LBFGS with StepLR", 6))


def test_lbfgs_step_hooks_fire_and_closure_is_required():
    problem = Problem(torch.float32, 0)
    params = problem.params()
    opt = generated_class(NAME)(params)
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    opt.step(problem.closure(opt, params))
    assert seen == ["pre", "post"]
    with pytest.raises(TypeError):
        opt.step()
