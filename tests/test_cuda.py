"""The generated twins on a CUDA device, against torch.optim on the same device.

CI has no GPU: every test here is skipped there. On a machine with one, run
``python -m pytest tests/test_cuda.py``. What it pins:

* ``test_matches_torch_on_cuda``: every configuration torch's optim_db makes for CUDA
  (including the ``capturable=True`` ones it never runs on CPU) x for-loop / foreach / fused,
  float32, 10 steps, parameters and state_dicts compared after every step. The capturable and
  fused ones compare with torch's own float32 tolerance for kernels that order the arithmetic
  their own way (``parity.FUSED_FLOAT32``); the rest with ``parity.tolerance_for``.
* ``test_cuda_graph_replay_equals_eager_steps``: a ``capturable=True`` step captured in a CUDA
  graph and replayed gives bit for bit what the same steps give eagerly, and stays within
  tolerance of torch's class captured the same way.
* ``test_foreach_none_picks_the_path_torch_picks_on_cuda``: ``foreach=None`` takes the
  multi-tensor path on CUDA exactly where torch's class does.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.overrides import TorchFunctionMode

from generator.verify.compare import EXACT, compare_optimizers
from generator.verify.problems import (
    clone_params,
    make_gradient,
    make_initial_params,
    stable_seed,
)
from paths import PRECISION_POLICIES
from parity import (
    reference_kwargs,
    FUSED_FLOAT32,
    FUSED_GENERATED,
    TWIN_NAMES,
    CompareContext,
    RecordKey,
    describe_kwargs,
    foreach_kwargs,
    generated_class,
    has_foreach,
    optim_info,
    run_side_by_side,
    shapes_for,
    slug,
    tolerance_for,
    torch_class,
)

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (CI has none)"
)

STEPS = 10


def _cuda_inputs(name):
    # optim_inputs_func only builds keyword arguments: it runs without a GPU too
    return optim_info(name).optim_inputs_func(device="cuda", dtype=torch.float32)


def _impls(name):
    return (
        ["for-loop"]
        + (["foreach"] if has_foreach(name) else [])
        + (["fused"] if name in FUSED_GENERATED else [])
    )


def _cases():
    cases = []
    for name in TWIN_NAMES:
        try:
            inputs = _cuda_inputs(name)
        except Exception:  # noqa: BLE001 - an optim_db that needs a GPU to enumerate
            continue
        for index, inp in enumerate(inputs):
            for impl in _impls(name):
                cases.append(
                    pytest.param(
                        name,
                        index,
                        inp.desc,
                        impl,
                        id=f"{name}_with_{slug(inp.desc)}-{impl}",
                    )
                )
    return cases


def _impl_kwargs(name, impl):
    if impl == "fused":
        return {"fused": True}
    return foreach_kwargs(name, impl == "foreach")


@pytest.mark.parametrize("name,index,desc,impl", _cases())
def test_matches_torch_on_cuda(request, name, index, desc, impl):
    inp = _cuda_inputs(name)[index]
    assert inp.desc == desc, "optim_db changed order between collection and run"
    kwargs = {**inp.kwargs, **_impl_kwargs(name, impl)}
    reference, ignore = reference_kwargs(name, impl, kwargs)
    normalize = None
    if impl == "fused" and not kwargs.get("capturable", False):
        # fused=True keeps the counters on the parameter's device (and float32), as torch's
        # fused Adam and Adagrad do; the for-loop reference keeps them on the host
        normalize = _counters_on_host
    own_order = impl == "fused" or kwargs.get("capturable", False)
    tol = FUSED_FLOAT32 if own_order else tolerance_for(torch.float32)
    result = run_side_by_side(
        torch_class(name),
        generated_class(name),
        expected_kwargs=reference,
        actual_kwargs=kwargs,
        ignore_group_keys=ignore,
        dtype=torch.float32,
        label=f"generated.{name} vs torch.optim.{name} on cuda | config {desc!r} "
        f"{describe_kwargs(kwargs)} | {impl}",
        tol=tol,
        seed=stable_seed(name, desc, "cuda"),
        steps=STEPS,
        shapes=shapes_for(name),
        record=RecordKey(name, "vs torch (cuda)", "float32", impl),
        test_id=request.node.nodeid,
        device="cuda",
        normalize_state_dict=normalize,
    )
    if result.raised is None:
        assert result.steps_run == STEPS


def _counters_on_host(state_dict):
    state = {
        k: {
            key: (
                v.to("cpu", torch.float32) if torch.is_tensor(v) and v.dim() == 0 else v
            )
            for key, v in s.items()
        }
        for k, s in state_dict["state"].items()
    }
    return {**state_dict, "state": state}


CAPTURABLE = [
    name
    for name in TWIN_NAMES
    if "capturable" in inspect.signature(generated_class(name)).parameters
]


def _graph_case(cls, params, kwargs):
    """An optimizer over ``params`` with static gradients (a captured graph reads the same
    memory at every replay), and the function that writes a step's gradients there."""
    for p in params:
        p.grad = torch.zeros_like(p)
    opt = cls(params, **kwargs)

    def set_grads(grads):
        for p, g in zip(params, grads):
            p.grad.copy_(g)

    return opt, set_grads


@pytest.mark.parametrize("foreach", [False, True], ids=["for-loop", "foreach"])
@pytest.mark.parametrize("name", CAPTURABLE)
def test_cuda_graph_replay_equals_eager_steps(name, foreach):
    seed = stable_seed(name, "cuda graph")
    shapes = shapes_for(name)
    initial = [t.cuda() for t in make_initial_params(torch.float32, seed, shapes)]
    kwargs = {"capturable": True, **foreach_kwargs(name, foreach)}
    if name == "ASGD":
        kwargs["t0"] = 3  # the averaging starts mid-run, inside the graph
    warmup = 3

    def grads_for(step):
        return [
            make_gradient(step, i, s, torch.float32, seed).cuda()
            for i, s in enumerate(shapes)
        ]

    runs = {}
    for side, cls in (
        ("generated", generated_class(name)),
        ("torch", torch_class(name)),
    ):
        params = clone_params(initial)
        opt, set_grads = _graph_case(cls, params, kwargs)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for step in range(warmup):
                set_grads(grads_for(step))
                opt.step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            opt.step()
        for step in range(warmup, STEPS):
            set_grads(grads_for(step))
            graph.replay()
        torch.cuda.synchronize()
        runs[side] = (opt, params)

    eager_params = clone_params(initial)
    eager = generated_class(name)(eager_params, **kwargs)
    for step in range(STEPS):
        for p, g in zip(eager_params, grads_for(step)):
            p.grad = g
        eager.step()

    label = f"generated.{name} {describe_kwargs(kwargs)} on cuda"
    opt, params = runs["generated"]
    for what, (other, other_params), tol in (
        ("eager steps", (eager, eager_params), EXACT),
        (f"torch.optim.{name}'s graph replay", runs["torch"], FUSED_FLOAT32),
    ):
        ctx = CompareContext(
            label=f"{label}: graph replay vs {what}",
            step=STEPS - 1,
            tol=tol,
            compare_grads=False,
        )
        compare_optimizers(opt, other, params, other_params, ctx)


class _ForeachCalls(TorchFunctionMode):
    """Records whether any torch._foreach_* function runs: the multi-tensor path."""

    def __init__(self):
        super().__init__()
        self.seen = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen |= getattr(func, "__name__", "").startswith("_foreach_")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", [n for n in TWIN_NAMES if has_foreach(n)])
def test_foreach_none_picks_the_path_torch_picks_on_cuda(name):
    taken = {}
    for side, cls in (
        ("generated", generated_class(name)),
        ("torch", torch_class(name)),
    ):
        params = [
            t.cuda().requires_grad_()
            for t in make_initial_params(torch.float32, 0, shapes_for(name))
        ]
        opt = cls(params)
        for p in params:
            p.grad = torch.ones_like(p)
        with _ForeachCalls() as calls:
            opt.step()
        taken[side] = calls.seen
    assert taken["generated"] == taken["torch"], (
        f"foreach=None on cuda: generated.{name} took the "
        f"{'foreach' if taken['generated'] else 'for-loop'} path, torch.optim.{name} the "
        f"{'foreach' if taken['torch'] else 'for-loop'} one"
    )


# ---- the precision policy on the device (generator.runtime.precision) -------------------------------------

POLICIES = {
    name: PRECISION_POLICIES[name]
    for name in (
        "bf16-state",
        "bf16-kahan",
        "bf16-kahan-float32-state",
        "bf16-stochastic",
    )
}
IMPL_FLAGS = {
    "for-loop": dict(foreach=False),
    "foreach": dict(foreach=True),
    "fused": dict(fused=True),
}


def _policy_run(name, dtype, device, flags, policy, steps=8):
    g = torch.Generator().manual_seed(0)
    shapes = [(64, 33), (129,), (7, 5, 3)]
    params = [
        torch.nn.Parameter((torch.randn(s, generator=g) + 1).to(device, dtype))
        for s in shapes
    ]
    grads = [
        [(torch.randn(s, generator=g) * 1e-2).to(device, dtype) for s in shapes]
        for _ in range(steps)
    ]
    opt = getattr(__import__("generated"), name)(params, lr=1e-3, **flags, **policy)
    for k in range(steps):
        for p, grad in zip(params, grads[k]):
            p.grad = grad.clone()
        opt.step()
    return params, opt


@pytest.mark.parametrize("impl", IMPL_FLAGS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", ["Adam", "SGD", "Lion"])
def test_precision_policy_on_cuda_agrees_with_cpu(name, policy, impl):
    dtype, options = POLICIES[policy]
    flags = IMPL_FLAGS[impl]
    on_cuda, opt = _policy_run(name, dtype, "cuda", flags, options)
    on_cpu, _ = _policy_run(name, dtype, "cpu", dict(foreach=False), options)
    for k, (a, b) in enumerate(zip(on_cuda, on_cpu)):
        assert a.dtype == dtype
        a, b = a.detach().cpu().float(), b.detach().float()
        if policy == "bf16-stochastic":
            # the device draws other random bits than the CPU: each run is off the exact
            # value by at most one bfloat16 spacing per step (8 steps, 2**-7 relative at
            # most), and both are unbiased
            assert ((a - b).abs() <= 2 * 8 * 2**-7 * b.abs() + 1e-6).all(), (
                name,
                impl,
                k,
            )
            assert (a - b).mean().abs() <= 2**-7 * b.abs().mean() / 4, (name, impl, k)
            continue
        # the same arithmetic in float32 on another device (fused: compiled, with fused
        # multiply-adds): a rounding may land on the other side of a bfloat16 tie, one
        # spacing; Lion's sign() of a momentum within rounding of 0 may flip, and a moved
        # parameter changes later momenta (seen on an H100: 3.5% of the elements of one
        # tensor after 8 steps with a bfloat16 state), each flip by 2 lr (the bound below)
        close = torch.isclose(
            a, b, rtol=2**-7 if dtype == torch.bfloat16 else 1e-5, atol=1e-6
        )
        allowed = 0.05 if name == "Lion" else 0.0
        assert (~close).float().mean() <= allowed, (
            f"{name} {policy} {impl} param {k}: {(~close).sum()} of {a.numel()} "
            f"elements differ, max {(a - b).abs().max():.3e}"
        )
        if name == "Lion":
            assert ((a - b).abs() <= 2 * 8 * 1e-3 + 1e-6).all()
    for p in on_cuda:
        for key, value in opt.state[p].items():
            if key in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
                want = options.get("state_dtype", dtype)
                assert value.dtype == want and value.is_cuda, (key, value.dtype)


@pytest.mark.parametrize("impl", IMPL_FLAGS)
def test_stochastic_rounding_on_cuda_is_reproducible_with_a_seed(impl):
    dtype, options = POLICIES["bf16-stochastic"]
    a, _ = _policy_run("Adam", dtype, "cuda", IMPL_FLAGS[impl], options)
    b, _ = _policy_run("Adam", dtype, "cuda", IMPL_FLAGS[impl], options)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
