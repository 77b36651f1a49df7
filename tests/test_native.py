"""The fused path's native CPU kernel (printed by generator.emit.cpp.kernel, compiled and called
by generator.runtime.native): which optimizers have one, that a CPU fused step runs every
parameter it can on it (never silently the compiled kernel), that it computes what the Python
kernel computes over the spec's grid in float32, and what it leaves to the compiled kernel.

Against the references it runs in test_every_path_vs_reference.py (the fused rows, float64) and
test_torch_parity.py (torch's optim_db configurations).
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import pytest
import torch

import generated
from generator.api import check_text
from generator.runtime import kernels as K
from generator.runtime import native as N
from generator.verify.grid import grid, required_arguments
from paths import PRECISION_POLICIES, seeded_grads, seeded_params

ROOT = Path(__file__).resolve().parents[1]
SPECS = {
    check_text(p.read_bytes(), f"specs/{p.name}").name: p
    for p in sorted((ROOT / "specs").glob("*.optim"))
}

# The passes with a native kernel, per optimizer. A kernel that loses its native form (the
# printer refuses an operation it wrote before) fails here, not as a slower step.
NATIVE = {
    name: ("",)
    for name in (
        # torch.optim's twins with a fused path
        "ASGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "RAdam",
        "RMSprop", "Rprop", "SGD",
        # paper optimizers and variants
        "AdaBound", "AdaMod", "BertAdamW", "GrokFastAdamW",
        "Kate", "LookaheadAdam", "LookaheadSGD", "QHAdam",
        "ScheduleFreeAdamW", "SignSGD", "Tiger", "Yogi",
    )
}  # fmt: skip
# SAM's four passes: the first two sum the gradients' norm (an optimizer's total) and move the
# weights by it; the last two, after the closure, move them back and take the base's step
NATIVE.update(
    {name: ("_pass3", "_pass4") for name in ("SAMAdam", "SAMAdamW", "SAMSGD")}
)

# Fused kernels that keep the compiled kernel alone, and the operation that decides it.
COMPILED_ONLY = {
    "MADGRAD": "pow",  # (the cube root: the C library's pow does not vectorize)
    "AdaBelief": "norm",  # (AdaNorm's gradient norm)
    "Adan": "mean_except",  # (gradient centralization)
    "AdEMAMix": "type_as",  # (the cautious mask)
    "ADOPT": "type_as",
    "CAME": "mean",
    "CLion": "mean_except",
    "DiffGrad": "norm",
    "LARS": "norm",
    "Lamb": "norm",
    "LaProp": "type_as",
    "Lion": "mean_except",
    "LookaheadLion": "mean_except",
    "MARS": "norm",
    "NovoGrad": "norm",
    "OrthoAdam": "at_least_float32",
    "OrthoAdamW": "at_least_float32",
    "OrthoLion": "at_least_float32",
    "Prodigy": "total",  # (its first pass sums the optimizer's totals; the second, atan2)
    "StableAdamW": "norm",
}


def _natives(cls) -> dict[str, N.NativeKernel]:
    module = sys.modules[cls.__module__]
    return {k: v for k, v in vars(module).items() if isinstance(v, N.NativeKernel)}


def _fused_classes() -> dict[str, type]:
    """The generated classes with a fused path (a ``_fused_<name>`` functional)."""
    return {
        name: getattr(generated, name)
        for name in SPECS
        if hasattr(generated, name)
        and any(
            k.startswith("_fused_")
            for k in vars(sys.modules[getattr(generated, name).__module__])
        )
    }


def test_the_optimizers_with_a_native_kernel_are_the_ones_the_suite_expects():
    found = {}
    for name, cls in _fused_classes().items():
        natives = _natives(cls)
        if natives:
            found[name] = tuple(
                sorted(re.search(r"(_pass\d+)?$", k).group() for k in natives)
            )
    assert found == NATIVE, (
        f"native kernels gained: {sorted(set(found) - set(NATIVE))}, "
        f"lost: {sorted(set(NATIVE) - set(found))}, "
        f"passes differ: {sorted(n for n in found if n in NATIVE and found[n] != NATIVE[n])}"
    )
    # every fused optimizer is in one table or the other
    assert set(_fused_classes()) == set(NATIVE) | set(COMPILED_ONLY)


@pytest.mark.parametrize("name", sorted(COMPILED_ONLY))
def test_a_kernel_without_a_native_form_says_which_operation_keeps_it_compiled(name):
    from generator.driver import lowered
    from generator.emit.cpp.kernel import why_not_native

    checked = check_text(SPECS[name].read_bytes(), f"specs/{SPECS[name].name}")
    why = why_not_native(lowered(checked))
    assert why is not None and COMPILED_ONLY[name] in why, why


def _make(cls, params, **kwargs):
    return cls(params, **{**required_arguments(cls), **kwargs})


# (an empty tensor has no block of the kernel's; the last spans two)
SHAPES = [(7,), (4, 3), (), (0, 3), (2, 3, 4), (70000,)]


def _spy(monkeypatch):
    """Counts the rows the native kernels run, and fails any compiled kernel call."""
    rows = []
    run = N.Batch.run

    def counted(self):
        rows.append(sum(len(r[1]) for r in self.rows.values()))
        run(self)

    def refused(self, *args, **kwargs):
        raise AssertionError(f"the compiled kernel {self.fn.__name__} ran")

    monkeypatch.setattr(N.Batch, "run", counted)
    monkeypatch.setattr(K.CompiledKernel, "call", refused)
    return rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(
    "name", sorted(n for n, passes in NATIVE.items() if passes == ("",))
)
def test_a_cpu_fused_step_runs_every_parameter_on_the_native_kernel(
    name, dtype, monkeypatch
):
    cls = getattr(generated, name)
    params = [p.to(dtype).requires_grad_() for p in seeded_params(SHAPES)]
    opt = _make(cls, params, fused=True)
    rows = _spy(monkeypatch)
    for grads in seeded_grads(SHAPES, 3, seed=1):
        for p, g in zip(params, grads):
            p.grad = g.to(dtype)
        opt.step()
    assert rows == [len(params)] * 3, f"rows run natively per step: {rows}"


# (a bfloat16 parameter, states and compensation, computed in float32; a float64 parameter
# read where it is, with bfloat16 states: each kernel compiled twice more, not once per policy)
@pytest.mark.parametrize("policy", ["bf16-kahan", "f64-bf16-state"])
@pytest.mark.parametrize(
    "name", sorted(n for n, passes in NATIVE.items() if passes == ("",))
)
def test_every_native_kernel_runs_each_policy_natively(name, policy, monkeypatch):
    """Every native kernel's policy form compiles and takes every parameter (the compiled
    kernel refused), over blocks and chunks of every size, and lands within a bfloat16
    spacing (of each tensor's size) of the compiled kernel's steps (stochastic rounding,
    whose bits differ: a spacing per step); the policy's own arithmetic is pinned by the
    test above, on Adam, AdamW and SGD."""
    cls = getattr(generated, name)
    dtype, options = PRECISION_POLICIES[policy]
    start = [p.to(dtype) for p in seeded_params(SHAPES)]
    steps = list(seeded_grads(SHAPES, 3, seed=1))

    def run(native: bool):
        params = [p.clone().requires_grad_() for p in start]
        opt = _make(cls, params, fused=True, **options)
        for grads in steps:
            for p, g in zip(params, grads):
                p.grad = g.to(dtype)
            with K.eager_kernels(), N.native_kernels(native):
                opt.step()
        return [p.detach().double() for p in params]

    want = run(False)
    rows = _spy(monkeypatch)
    got = run(True)
    assert rows == [len(SHAPES)] * 3, f"rows run natively per step: {rows}"
    spacings = len(steps) if options.get("param_rounding") == "stochastic" else 1
    for k, (a, b) in enumerate(zip(got, want)):
        size = b.abs().max().item() if b.numel() else 0.0
        gap = (a - b).abs().max().item() if b.numel() else 0.0
        bound = spacings * 2.0**-7 * size + 1e-12
        assert gap <= bound, f"{name} param {k}: {gap:.3g} of {size:.3g}"


def test_what_the_native_kernel_cannot_take_runs_the_compiled_kernel(monkeypatch):
    # a transposed parameter (not contiguous) and a bfloat16 one run the compiled kernel,
    # the others the native one, in one step
    torch.manual_seed(0)
    params = [
        torch.nn.Parameter(torch.randn(6, 5).t()),
        torch.nn.Parameter(torch.randn(3, dtype=torch.bfloat16)),
        torch.nn.Parameter(torch.randn(8)),
        torch.nn.Parameter(torch.randn(2, 2)),
    ]
    compiled = []
    rows = []
    run = N.Batch.run
    call = K.CompiledKernel.call

    def counted(self):
        rows.append(sum(len(r[1]) for r in self.rows.values()))
        run(self)

    def seen(self, *args, **kwargs):
        compiled.append(args[0].dtype)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(N.Batch, "run", counted)
    monkeypatch.setattr(K.CompiledKernel, "call", seen)
    reference = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt = generated.Adam(params, lr=0.01, fused=True)
    loop = generated.Adam(reference, lr=0.01, foreach=False)
    with K.eager_kernels():
        for _ in range(3):
            for p, q in zip(params, reference):
                g = torch.randn_like(p)
                p.grad, q.grad = g.clone(), g.clone()
            opt.step()
            loop.step()
    assert rows == [2, 2, 2] and compiled == [torch.float32, torch.bfloat16] * 3, (
        rows,
        compiled,
    )
    for p, q in zip(params, reference):
        if p.dtype == torch.bfloat16:
            # (the Python kernel and the for-loop part by one bfloat16 rounding on 7 of 40
            # seeds of this setting: the compiled kernel's own path, which the native kernel
            # does not change)
            torch.testing.assert_close(p, q)  # (bfloat16's own tolerance)
        else:
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)


def test_a_native_step_tells_autograd_it_changed_the_tensors_in_place():
    # (as torch's in-place operations do: a graph that saved the parameter before the step
    # then refuses to backpropagate through it, rather than use the changed values)
    param = torch.nn.Parameter(torch.randn(4))
    saved = (param * param).sum()  # (mul saves param for its backward)
    opt = generated.Adam([param], lr=0.01, fused=True)
    param.grad = torch.randn(4)
    before = param._version
    opt.step()
    state = opt.state[param]
    assert param._version > before and state["exp_avg"]._version > 0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.backward()


def test_the_native_kernel_compiles_once_per_configuration_not_per_shape_or_value(
    monkeypatch,
):
    # every library this kernel loads, from nothing: two sets of shapes, a learning rate
    # changed at every step, one configuration (Adam's defaults) after the first step
    kernel = generated.adam._native_adam
    monkeypatch.setattr(kernel, "_libraries", {})
    loaded = []
    load = N._load
    monkeypatch.setattr(
        N, "_load", lambda name, *rest: loaded.append(name) or load(name, *rest)
    )
    for shapes in ([(3,), (4, 5)], [(2, 2, 2), (9,), ()]):
        params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
        opt = generated.Adam(params, lr=0.01, fused=True)
        for step in range(3):
            for g in opt.param_groups:
                g["lr"] = 0.01 / (step + 1)
            for p in params:
                p.grad = torch.randn_like(p)
            opt.step()
    assert list(kernel._libraries) == [(torch.float32, (False, False, False, False))]
    assert loaded == ["adam"], loaded


def test_turned_off_the_compiled_kernel_runs(monkeypatch):
    rows = []
    run = N.Batch.run
    monkeypatch.setattr(
        N.Batch, "run", lambda self: rows.append(len(self.rows)) or run(self)
    )
    params = [torch.nn.Parameter(torch.randn(5))]
    opt = generated.Adam(params, lr=0.01, fused=True)
    params[0].grad = torch.randn(5)
    with K.eager_kernels(), N.native_kernels(False):
        opt.step()
    assert rows == []
    opt.step()
    assert rows == [1]


# The precision policies the native kernel runs: every one of the tests' table
POLICIES = PRECISION_POLICIES


def _policy_run(name, dtype, options, native: bool, steps=4, monkeypatch=None):
    torch.manual_seed(0)
    params = [
        torch.nn.Parameter((torch.randn(s) * 0.1).to(dtype))
        for s in ((64, 33), (17,), (5, 3, 2))
    ]
    opt = getattr(generated, name)(params, lr=1e-3, fused=True, **options)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen).to(dtype)
        with K.eager_kernels(), N.native_kernels(native):
            opt.step()
    return params, opt


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD"])
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_a_precision_policy_runs_natively_as_the_compiled_kernel_computes(
    name, policy, monkeypatch
):
    """Under a policy the native kernel loads each tensor from its storage dtype, computes in
    the policy's dtype and lands the parameter by its rounding: as the (uncompiled) kernel
    does, within 1e-6 of each tensor's size (the Kahan compensation: of the parameter's), as
    the float32 kernels agree (torch's vectorized lerp rounds once, ours twice); stochastic
    rounding draws other bits (the kernel's own generator, keyed from the policy's): after
    one step both lie on the two bfloat16 values around the same float32 result."""
    dtype, options = POLICIES[policy]
    stochastic = options.get("param_rounding") == "stochastic"
    steps = 1 if stochastic else 4
    want, want_opt = _policy_run(name, dtype, options, native=False, steps=steps)
    rows = []
    run = N.Batch.run
    monkeypatch.setattr(
        N.Batch,
        "run",
        lambda self: rows.append(sum(len(r[1]) for r in self.rows.values()))
        or run(self),
    )
    got, got_opt = _policy_run(name, dtype, options, native=True, steps=steps)
    assert rows == [3] * steps, f"{name} under {policy}: native rows per step {rows}"

    def close(mine, value, bound, what):
        gap = (mine.double() - value.double()).abs().max().item()
        assert gap <= bound, f"{name} under {policy}: {what} {gap:.3g} apart"

    for p, q in zip(got, want):
        assert p.dtype == q.dtype == dtype
        size = q.double().abs().max().item()
        if stochastic:
            spacing = 2.0**-7 * torch.maximum(p.float().abs(), q.float().abs())
            worst = ((p.float() - q.float()).abs() - spacing).max().item()
            assert worst <= 0, f"{name} under {policy}: {worst:.3g} beyond a spacing"
        else:
            close(p, q, 1e-6 * size, "the parameter")
        for key, value in want_opt.state[q].items():
            mine = got_opt.state[p][key]
            if not torch.is_tensor(value) or value.dim() == 0:
                continue
            assert mine.dtype == value.dtype, f"{policy}: {key} {mine.dtype}"
            if not stochastic:
                own = value.double().abs().max().item()
                bound = 1e-6 * own
                if key == "kahan_comp":
                    # what the parameter lost, rounded into the compensation's dtype: within
                    # 1e-6 of the parameter's size or one spacing of the compensation's own
                    bound = max(1e-6 * size, torch.finfo(value.dtype).eps * own)
                close(mine, value, bound, key)


def test_native_stochastic_rounding_is_unbiased_and_seeded():
    """SGD steps of a third of bfloat16's spacing: rounded to nearest, a parameter never
    moves; stochastically, it moves by the exact amount on average, each element by its own
    draws at each step (a binomial spread, not all or nothing), and the key drawn from the
    policy's generator makes the same seed the same run."""
    start = torch.full((4096,), 1.0, dtype=torch.bfloat16)
    spacing = 2.0**-7  # bfloat16's spacing in [1, 2)

    def run(seed):
        p = torch.nn.Parameter(start.clone())
        opt = generated.SGD(
            [p], lr=1.0, fused=True, param_rounding="stochastic", rounding_seed=seed
        )
        for _ in range(30):
            p.grad = torch.full_like(p, -spacing / 3)
            opt.step()
        return p.detach().float()

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    moved = (a.mean() - 1.0).item()
    exact = 30 * spacing / 3
    assert abs(moved - exact) < 0.05 * exact, (moved, exact)
    # Binomial(30, 1/3) spacings: a spread of 2.6 spacings (bits reused at every step: 14)
    spread = (a - 1.0).std().item() / spacing
    assert 1.5 < spread < 4, spread


def _murmur_bits(key: int, k: int) -> int:
    # the hash written out on Python's integers: og_random16's (and hashed_bits's) 32 bits
    mask = 0xFFFFFFFF
    h = ((k & mask) * 0x9E3779B9 + (k >> 32) * 0x85EBCA77 + (key & mask)) & mask
    h ^= key >> 32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def test_stochastic_roundings_bits_are_the_same_in_the_native_and_compiled_kernels():
    """Both fused kernels make stochastic rounding's bits from a key per parameter and step
    and each element's index (murmur3's finalizer): the compiled kernel's tensor arithmetic
    (runtime.precision.hashed_bits, in int64 without overflow) gives the hash written out
    here, and SGD's steps, whose float32 arithmetic both kernels do alike, land on the same
    bfloat16 values natively, compiled by inductor and uncompiled."""
    from generator.runtime.precision import _hash32, hashed_bits

    index = [0, 1, 2, 12345, (1 << 31) - 1, 1 << 31, (1 << 32) + 7, (1 << 40) + 3]
    for key in (0, 1, 0x2F00_0000_0000_0001, (1 << 62) - 1):
        bits = _hash32(torch.tensor([key]), torch.tensor(index)).tolist()
        assert bits == [_murmur_bits(key, k) for k in index], key
        shaped = hashed_bits(torch.tensor([key]), torch.empty(3, 5))
        assert shaped.shape == (3, 5)
        assert shaped.flatten().tolist() == [_murmur_bits(key, k) for k in range(15)]
    start = torch.randn(70001, generator=torch.Generator().manual_seed(0)).bfloat16()
    grads = seeded_grads([(70001,)], 3, seed=2)

    def run(native: bool, eager: bool):
        p = torch.nn.Parameter(start.clone())
        opt = generated.SGD(
            [p], lr=1e-3, fused=True, param_rounding="stochastic", rounding_seed=5
        )
        with N.native_kernels(native), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for (g,) in grads:
                p.grad = g.bfloat16()
                if eager:
                    with K.eager_kernels():
                        opt.step()
                else:
                    opt.step()
        return p.detach()

    native = run(True, False)
    assert not torch.equal(native, start)
    for eager in (False, True):
        other = run(False, eager)
        differ = (native != other).sum().item()
        assert differ == 0, f"compiled kernel (eager={eager}): {differ} elements differ"


def _vectorized_lines(source: str, kind) -> set[int]:
    """The source lines GCC reports a loop vectorized at, compiled with the flags of a
    kernel of ``kind``."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        path = f"{work}/kernel.cpp"
        with open(path, "w") as f:
            f.write(source)
        done = subprocess.run(
            [
                N._compiler()[0],
                *N.flags_for(kind),
                "-fopt-info-vec-optimized",
                path,
                "-o",
                path + ".so",
            ],
            capture_output=True,
            text=True,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        int(m.group(1))
        for m in re.finditer(
            r"kernel\.cpp:(\d+):\d+: optimized: loop vectorized", done.stderr
        )
    }


@pytest.mark.skipif(
    N._compiler() is None
    or "g++" not in N._compiler()[1].lower()
    and "gcc" not in N._compiler()[1].lower(),
    reason="GCC's vectorization report",
)
@pytest.mark.parametrize("policy", ["float32", "float64", *sorted(PRECISION_POLICIES)])
def test_the_native_kernels_element_loop_is_vectorized(policy):
    """The element loop of Adam's native kernel, plain and under each precision policy, is
    vectorized with the kernels' compiler flags: a flag that keeps the compiler from it
    (-mno-avx512f left the policy loops scalar, 3-7x slower) fails here, not as a slower step.
    """
    kernel = generated.adam._native_adam
    decisions = (False,) * len(kernel.decisions)
    if policy in ("float32", "float64"):
        kind = getattr(torch, policy)
    else:
        dtype, options = PRECISION_POLICIES[policy]
        param = torch.zeros(3, dtype=dtype, requires_grad=True)
        opt = generated.Adam([param], fused=True, **options)
        param.grad = torch.zeros_like(param)
        kinds = []
        add = N.Batch._add_under_policy

        def seen(self, index, args):
            ok = add(self, index, args)
            kinds.extend(config[0] for config in self.rows)
            return ok

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(N.Batch, "_add_under_policy", seen)
            opt.step()
        assert kinds, f"{policy}: the native kernel did not take the parameter"
        kind = kinds[0]
    source = kernel.source(kind, decisions)
    lines = source.splitlines()
    loop = next(
        n
        for n, line in enumerate(lines, 1)
        if re.match(r"\s*for \(int64_t [ik] = lo; [ik] < hi; \+\+[ik]\)", line)
    )
    vectorized = _vectorized_lines(source, kind)
    assert loop in vectorized, f"{policy}: the element loop (line {loop}) is scalar"


def _accepted(cls):
    def accepted(kwargs) -> bool:
        for shape in ((2, 2), (2,)):
            try:
                _make(cls, [torch.zeros(shape, requires_grad=True)], **kwargs)
                return True
            except Exception:
                pass
        return False

    return accepted


def _trajectory(cls, kwargs, dtype, native: bool, steps: int):
    params = [p.to(dtype).requires_grad_() for p in seeded_params(SHAPES[:5], seed=3)]
    opt = _make(cls, params, fused=True, **kwargs)
    for grads in seeded_grads(SHAPES[:5], steps, seed=4):
        for p, g in zip(params, grads):
            p.grad = g.to(dtype)
        with K.eager_kernels(), N.native_kernels(native), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize(
    "name", sorted(n for n, passes in NATIVE.items() if passes == ("",))
)
def test_the_native_kernel_computes_what_the_python_kernel_computes(name):
    # float32, every configuration of the spec's grid, 8 steps of gradients from 1e-6 to
    # 1e2: the two compute the same operations in the same order (each a float32 rounding;
    # torch's own functions may differ from the C library's by an ulp), so they stay
    # within a few float32 ulps of each other's size (the largest measured: 2.8e-7, QHAdam)
    cls = getattr(generated, name)
    checked = check_text(SPECS[name].read_bytes(), f"specs/{SPECS[name].name}")
    configs, _ = grid(checked, cls, None, 8, _accepted(cls))
    differ = []
    for config in configs:
        kwargs = config.as_dict()
        ours = _trajectory(cls, kwargs, torch.float32, True, 8)
        python = _trajectory(cls, kwargs, torch.float32, False, 8)
        for k, (a, b) in enumerate(zip(ours, python)):
            if b.numel() == 0:
                continue
            scale = b.abs().max().item() or 1.0
            gap = (a - b).abs().max().item() / scale
            if not gap <= 1e-6:
                differ.append(f"{config.label} param {k}: {gap:.2e} of its size")
    assert not differ, "native kernel differs from the Python kernel:\n" + "\n".join(
        differ
    )


EDGES = """optimizer EdgeOps
check not is_complex(param) else "real parameters only"
input lr: float = 0.5
input fused: bool? = none, keyword
state a (a) <- param
state b (b) <- param
state c (c) <- param
state d (d) <- param
state e (e) <- param
update:
    a <- max(a, grad)
    b <- min(b, grad)
    c <- clamp(c + grad, -1, 1)
    d <- lerp(d, grad, 0.75) + abs(d)
    e <- sign(grad) + sign(e)
    param <- param - lr * where(grad > 0, a, b)
"""

SPECIAL = [
    float("nan"),
    float("inf"),
    float("-inf"),
    0.0,
    -0.0,
    1e-30,
    -1e30,
    0.5,
    -2.0,
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_the_native_kernel_keeps_torchs_rules_for_nan_infinities_and_signed_zeros(
    dtype,
):
    # NaN in, NaN out for maximum, minimum and clamp (either operand), sign of NaN and of -0
    # is 0, lerp's two formulas: every pair of special values, against the Python kernel
    from generator.api import compile_text, load_spec

    assert "og_maximum(" in compile_text(EDGES)  # (it has a native kernel)
    cls = load_spec(EDGES)
    values = torch.tensor(SPECIAL, dtype=dtype)
    grid_p, grid_g = torch.meshgrid(values, values, indexing="ij")
    runs = []
    for native in (True, False):
        param = torch.nn.Parameter(grid_p.flatten().clone())
        opt = cls([param], fused=True)
        with K.eager_kernels(), N.native_kernels(native), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for step in range(3):
                param.grad = grid_g.flatten().roll(step)
                opt.step()
        runs.append([param.detach()] + [opt.state[param][k] for k in "abcde"])
    for name, a, b in zip(["param", "a", "b", "c", "d", "e"], *runs):
        torch.testing.assert_close(
            a, b, rtol=0, atol=0, equal_nan=True, msg=lambda m: f"{name}: {m}"
        )


# ---- the host side of a fused CPU step --------------------------------------------------------


def test_a_number_tensor_is_made_once_per_value_keeping_the_sign_of_zero():
    # the compiled kernel's numbers are 0-d float64 tensors made once per value (a step
    # makes none anew); -0.0 equals 0.0 but must not take its tensor (nor the reverse)
    assert K._number_tensor(0.25) is K._number_tensor(0.25)
    assert K._number_tensor(0.25).dtype == torch.float64
    for first, second in ((0.0, -0.0), (-0.0, 0.0)):
        a, b = K._number_tensor(first), K._number_tensor(second)
        assert torch.signbit(a).item() == (str(first) == "-0.0"), (first, a)
        assert torch.signbit(b).item() == (str(second) == "-0.0"), (second, b)
    assert K._number_tensor(None) is None
    t = torch.tensor(3.0)
    assert K._number_tensor(t) is t
    assert torch.signbit(K._device_number(-0.0, torch.device("cpu"))).item()


def test_no_fused_kernel_writes_its_numbers(monkeypatch):
    # the numbers' tensors are shared by every call and step (made once per value): a kernel
    # must only read them. Every fused kernel, uncompiled, with its numbers made fresh and
    # counted
    made = []

    def fresh(x, negative_zero, device):
        made.append(torch.tensor(x, dtype=torch.float64, device=device))
        return made[-1]

    monkeypatch.setattr(K, "_scalar", fresh)
    params = [p.requires_grad_() for p in seeded_params([(4, 3), (5,)])]
    grads = seeded_grads([(4, 3), (5,)], 2, seed=1)

    def closure():
        for p, g in zip(params, grads[0]):
            p.grad = g.clone()
        return torch.tensor(0.0)

    with K.eager_kernels(), N.native_kernels(False), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, cls in sorted(_fused_classes().items()):
            opt = _make(cls, params, fused=True)
            for step in range(2):
                closure()
                opt.step(closure)
    assert made, "no number tensor was made: the compiled kernels did not run"
    written = [t.item() for t in made if t._version != 0]
    assert not written, f"kernels wrote their numbers: {written}"


def test_a_fused_step_enters_dynamos_settings_once_for_its_compiled_calls(monkeypatch):
    # the compiled kernel's calls run after the host loop under dynamo's settings (one
    # compiled kernel per configuration, up to 64; floats as constants), entered once per
    # step, not per parameter; a step the native kernel takes whole enters none
    entered, seen = [], []
    configured, call = K.CompiledKernel.configured, K.CompiledKernel.call

    def counted(self):
        entered.append(self.fn.__name__)
        return configured(self)

    def spied(self, *args, **kwargs):
        config = torch._dynamo.config
        seen.append((config.recompile_limit, config.specialize_float))
        return call(self, *args, **kwargs)

    monkeypatch.setattr(K.CompiledKernel, "configured", counted)
    monkeypatch.setattr(K.CompiledKernel, "call", spied)
    for name, expected in (("Lion", 1), ("Adam", 0)):
        entered.clear(), seen.clear()
        params = [p.float().requires_grad_() for p in seeded_params(SHAPES[:4])]
        opt = getattr(generated, name)(params, lr=1e-3, fused=True)
        with K.eager_kernels(), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for step in range(2):
                for p in params:
                    p.grad = torch.randn_like(p)
                opt.step()
        assert len(entered) == 2 * expected, (name, entered)
        assert seen == [(64, True)] * (2 * 4 * expected), (name, seen)


# ---- rounding as torch's eager kernels round --------------------------------------------------

ROUNDING_SPEC = """\
optimizer Rounding
input lr: float = 1e-2
input foreach: bool? = none
input fused: bool? = none, keyword
state m (exp_avg) <- 0
state v (exp_avg_sq) <- 0
check not is_complex(param) else "no complex parameters"
update:
    m <- lerp(m, grad, 0.1)
    w <- lerp(m, grad, 0.75)
    v <- 0.99 * v + 0.01 * grad^2
    param <- param - lr * w / (v + 1e-8)
    param <- param - 0.5 * lr * grad
"""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(
    "name, options",
    [
        ("SGD", {}),
        ("SGD", {"momentum": 0.9}),
        ("SGD", {"momentum": 0.9, "dampening": 0.1, "weight_decay": 0.1}),
        ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
        ("Rounding", {}),
    ],
    ids=str,
)
def test_the_native_kernel_rounds_as_torchs_eager_kernels(name, options, dtype):
    """Without a square root (torch's CPU sqrt, MKL's, is not correctly rounded; the native
    kernel's is), the native fused step equals the for-loop's torch operations bit for bit:
    `add` with alpha, `addcmul` and `lerp` rounded once where torch's kernels round them once
    (a fused multiply-add: runtime.native.torch_fuses), `addcdiv` and the rest twice."""
    from generator.api import load_spec

    cls = load_spec(ROUNDING_SPEC) if name == "Rounding" else getattr(generated, name)
    if name == "Rounding":  # (its kernel prints each of the three)
        module = sys.modules[cls.__module__]
        body = next(
            v for v in vars(module).values() if isinstance(v, N.NativeKernel)
        ).body
        for call in ("og_lerp", "og_addcmul", "og_add_alpha"):
            assert call in body, f"{call} not in the kernel:\n{body}"
    shapes = [(70001,), (33, 17), (5,), ()]
    start = [p.to(dtype) for p in seeded_params(shapes)]
    steps = seeded_grads(shapes, 6, seed=3)

    def run(fused: bool):
        params = [p.clone().requires_grad_() for p in start]
        flags = {"fused": True} if fused else {"foreach": False}
        opt = cls(params, lr=1e-2, **options, **flags)
        for grads in steps:
            for p, g in zip(params, grads):
                p.grad = g.to(dtype)
            opt.step()
        return [p.detach() for p in params]

    rows_before = []
    with pytest.MonkeyPatch.context() as patch:
        rows_before = _spy(patch)
        fused = run(True)
    assert rows_before == [len(shapes)] * len(steps), rows_before
    loop = run(False)
    for k, (a, b) in enumerate(zip(fused, loop)):
        differ = (a != b).sum().item()
        assert differ == 0, f"param {k}: {differ} of {a.numel()} elements differ"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_the_probe_of_torchs_multiply_adds_says_what_its_kernels_do(dtype):
    # on random data: the probe's answer for each operation is the form (one rounding or
    # two) that torch's eager result takes, element for element; one rounding computed
    # exactly (fractions), then rounded to the dtype
    from fractions import Fraction

    gen = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(512, generator=gen, dtype=dtype) for _ in range(3))
    s = torch.tensor(0.3, dtype=dtype).item()
    t1 = (
        b * 0.3
    )  # (addcmul's value folded into its first factor, as torch's kernel does)

    def once(xs, ys, zs) -> torch.Tensor:
        exact = [Fraction(x) + Fraction(y) * Fraction(z) for x, y, z in zip(xs, ys, zs)]
        return torch.tensor([float(e) for e in exact], dtype=torch.float64).to(dtype)

    once_of = {
        "add": once(a.tolist(), b.tolist(), [s] * 512),
        "addcmul": once(a.tolist(), t1.tolist(), c.tolist()),
        "lerp": once(a.tolist(), [s] * 512, (b - a).tolist()),
    }
    eager = {
        "add": a.add(b, alpha=0.3),
        "addcmul": a.addcmul(b, c, value=0.3),
        "lerp": a.lerp(b, 0.3),
    }
    fuses = N.torch_fuses(dtype)
    for op in N.FUSED_OPS:
        assert torch.equal(eager[op], once_of[op]) == fuses[op], (op, fuses)
