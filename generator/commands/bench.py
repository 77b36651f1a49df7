"""`optimgen bench`: a benchmark (not a test) of the optimizer step of the generated
optimizers against their references, torch.optim's twins (and, for the optimizers from papers,
pytorch_optimizer's class of the same name, where it is installed), measured side by side in one
run. For every
optimizer and implementation (for-loop or foreach) it builds two identical copies of a
transformer-like parameter set with the same fixed random gradients, then interleaves
single steps of the generated and the torch optimizer (alternating which goes first) and
reports the median step times, their ratio, an effective bandwidth estimated from the
tensors each step reads and writes, and, for reference, a streaming-copy bandwidth
measured in the same run. torch and the `generated` package are imported lazily inside
`run` so the generator starts fast.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import gc
import math
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Sequence

from generator.commands.common import (
    choices,
    gc_paused,
    import_torch_and_generated,
    median_ms,
    progress_wanted,
    spread_pct,
    synchronizer,
    table,
    timed,
    write_json,
)
from generator.commands.progress import Progress, add_progress_arguments
from generator.verify.problems import curved, seed_draws

TWINS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")  # the default selection
ALL_TWINS = TWINS + (
    "Adamax",
    "Adadelta",
    "NAdam",
    "RAdam",
    "ASGD",
    "Rprop",
    "Adafactor",
    "Muon",
)
MATRICES_ONLY = {"Muon"}  # optimizes the 2-D tensors of the parameter set only
NO_FOREACH = {"Muon"}  # torch.optim.Muon has no foreach implementation


def paper_references(torch: Any, gen: Any) -> dict[str, Any]:
    """The generated optimizers from papers with a class of the same name in pytorch_optimizer
    (their reference implementation), by name: none where it is not installed."""
    try:
        import pytorch_optimizer
    except ImportError:
        return {}
    return {
        n: getattr(pytorch_optimizer, n)
        for n in getattr(gen, "__all__", ())
        if n not in ALL_TWINS
        and not hasattr(torch.optim, n)
        and isinstance(getattr(pytorch_optimizer, n, None), type)
    }


def _takes(cls, name: str) -> bool:
    """Whether an optimizer class's constructor takes the argument ``name``."""
    import inspect

    return name in inspect.signature(cls.__init__).parameters


def has_fused(cls) -> bool:
    """Whether an optimizer class takes ``fused`` (the generated ones whose spec declares it;
    torch's with a fused kernel). Where torch's twin has none, a fused row compares the
    generated kernel with torch's foreach path."""
    return _takes(cls, "fused")


IMPLS = {"for-loop": False, "foreach": True, "fused": None}
DTYPES = ("float32", "float64", "bfloat16")

# Hyper-parameters used for both sides; chosen so every optimizer keeps some state.
BENCH_KWARGS: dict[str, dict[str, Any]] = {
    "SGD": dict(lr=1e-3, momentum=0.9, weight_decay=1e-4),
    "Adam": dict(lr=1e-3),
    "AdamW": dict(lr=1e-3, weight_decay=1e-2),
    "RMSprop": dict(lr=1e-3),
    "Adagrad": dict(lr=1e-2),
    "Adamax": dict(lr=2e-3),
    "Adadelta": dict(lr=1.0),
    "NAdam": dict(lr=2e-3),
    "RAdam": dict(lr=1e-3),
    "ASGD": dict(lr=1e-2, t0=1),
    "Rprop": dict(lr=1e-2),
    "Adafactor": dict(lr=1e-2),
    "Muon": dict(lr=2e-2),
    # (the GaLore paper's projection: without a rank, GaLore is AdamW)
    "GaLore": dict(
        lr=1e-3, rank=128, update_proj_gap=200, scale=0.25, projection_type="std"
    ),
}

# Transformer-like parameter sets: token + position embeddings, GPT-2 style blocks
# (qkv, attention projection, MLP up/down, two layer norms) and a final layer norm.
SIZES: dict[str, dict[str, int]] = {
    "large": dict(vocab=50304, ctx=1024, d=1024, blocks=12),  # ~204M parameters
    "default": dict(vocab=8192, ctx=1024, d=768, blocks=2),  # ~21.3M parameters
    "small": dict(vocab=2048, ctx=256, d=256, blocks=2),  # ~2.2M parameters
    "tiny": dict(vocab=64, ctx=16, d=16, blocks=1),  # ~5K parameters
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of `optimgen bench`."""
    parser.add_argument(
        "--optimizers",
        default=None,
        metavar="LIST",
        help=f"comma-separated optimizers, of {', '.join(ALL_TWINS)} "
        f"(default: {','.join(TWINS)}; Muon takes the 2-D tensors only, for-loop only), "
        "or a generated optimizer from a paper, against pytorch_optimizer's class of the "
        "same name (AggMo, Lion, ...: where pytorch_optimizer is installed); "
        "with --policies, any generated optimizer (default: Adam,Lion)",
    )
    parser.add_argument(
        "--policies",
        default=None,
        metavar="LIST",
        help="instead of generated against torch: the cost of precision policies, of "
        "float32, bf16, bf16-kahan, bf16-stochastic, bf16-state (as `optimgen train`), "
        "step time relative to float32 and state memory per policy",
    )
    parser.add_argument(
        "--impl",
        default=",".join(IMPLS),
        metavar="LIST",
        help="comma-separated implementations: for-loop, foreach, fused (default: all). fused: "
        "the generated kernel (compiled in the warm-up steps) against torch's fused kernel, or "
        "torch's foreach path where torch has no fused kernel (RMSprop, Adamax, Adadelta, NAdam, "
        "RAdam, ASGD, Rprop)",
    )
    parser.add_argument(
        "--baseline",
        default="reference",
        choices=("reference", "own-foreach"),
        help="what each generated path is timed against: the reference class (default: "
        "torch.optim's twin, pytorch_optimizer's class), or own-foreach: the generated class's "
        "own foreach path (a paper optimizer's fused kernel against its foreach path)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--dtype", default="float32", choices=DTYPES, help="parameter dtype"
    )
    parser.add_argument(
        "--size",
        default="default",
        choices=tuple(SIZES),
        help=(
            "parameter set: default ~21M (8192x768 embedding + 2 GPT-2-small blocks), "
            "large ~204M (50304x1024 embedding + 12 blocks of width 1024), small ~2M, tiny ~5K"
        ),
    )
    parser.add_argument(
        "--steps", type=int, default=20, help="timed steps per side (default 20)"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed steps per side first (default 3)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of parameters and gradients"
    )
    parser.add_argument(
        "--options",
        default=None,
        metavar="K=V,...",
        help="hyper-parameters given to both sides of every optimizer of the run, over the "
        "bench's own, as Python literals (start_preconditioning_step=1, "
        "betas=(0.9, 0.99)): a matrix optimizer's defaults may refresh nothing in a short run",
    )
    parser.add_argument(
        "--json", metavar="FILE", default=None, help="also write raw results to FILE"
    )
    add_progress_arguments(parser)


def parse_options(text: str | None) -> dict[str, Any]:
    """``K=V,...`` as keyword arguments, each value a Python literal (read by
    ``ast.literal_eval``: never evaluated as code); ValueError, saying which, otherwise.
    """
    if not text:
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError:
        raise ValueError(
            f"--options {text!r}: write name=value pairs separated by commas"
        ) from None
    if not isinstance(call, ast.Call) or call.args:
        raise ValueError(f"--options {text!r}: write name=value pairs, not bare values")
    options = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise ValueError(f"--options {text!r}: write name=value pairs")
        try:
            options[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            raise ValueError(
                f"--options: {kw.arg}'s value is not a Python literal (a number, a "
                "string in quotes, True, False, None or a tuple of them)"
            ) from None
    return options


# --------------------------------------------------------------------------- helpers


def _shapes(size: str) -> list[tuple[str, tuple[int, ...]]]:
    cfg = SIZES[size]
    d, shapes = cfg["d"], []
    shapes.append(("wte", (cfg["vocab"], d)))
    shapes.append(("wpe", (cfg["ctx"], d)))
    for b in range(cfg["blocks"]):
        shapes += [
            (f"h{b}.ln1.weight", (d,)),
            (f"h{b}.ln1.bias", (d,)),
            (f"h{b}.attn.qkv.weight", (3 * d, d)),
            (f"h{b}.attn.qkv.bias", (3 * d,)),
            (f"h{b}.attn.proj.weight", (d, d)),
            (f"h{b}.attn.proj.bias", (d,)),
            (f"h{b}.ln2.weight", (d,)),
            (f"h{b}.ln2.bias", (d,)),
            (f"h{b}.mlp.fc.weight", (4 * d, d)),
            (f"h{b}.mlp.fc.bias", (4 * d,)),
            (f"h{b}.mlp.proj.weight", (d, 4 * d)),
            (f"h{b}.mlp.proj.bias", (d,)),
        ]
    shapes += [("ln_f.weight", (d,)), ("ln_f.bias", (d,))]
    return shapes


def machine(torch: Any, device: Any) -> str:
    """The machine a run measured, in words: the CPU's model (and the GPU's)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} logical CPUs"
    if device.type == "cuda":
        text = f"{torch.cuda.get_device_name(device)}; host {text}"
    return text


def _describe_size(size: str) -> str:
    cfg = SIZES[size]
    d, blocks = cfg["d"], cfg["blocks"]
    return (
        f"{cfg['vocab']}x{d} token + {cfg['ctx']}x{d} position embedding, "
        f"{blocks} GPT-2 block{'s' if blocks != 1 else ''} of width {d}"
    )


def _bytes_per_step(params: Sequence[Any], state: Any) -> int:
    """Read+write param, read grad, read+write every param-shaped state tensor (the items
    of a list of them too, AggMo's buffers; of a dict, pytorch_optimizer's)."""
    total = 0
    for p in params:
        total += 2 * p.numel() * p.element_size()
        if p.grad is not None:
            total += p.grad.numel() * p.grad.element_size()
        for value in state.get(p, {}).values():
            items = value.values() if isinstance(value, dict) else value
            items = (
                items
                if isinstance(items, (list, tuple, type({}.values())))
                else [value]
            )
            for t in items:
                if hasattr(t, "shape") and tuple(t.shape) == tuple(p.shape):
                    total += 2 * t.numel() * t.element_size()
    return total


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n:,}"


def _mib(n: float) -> str:
    return "-" if math.isnan(n) else f"{n / 2**20:.1f}"


def _geomean(values: Sequence[float]) -> float:
    good = [v for v in values if v > 0 and math.isfinite(v)]
    if not good:
        return math.nan
    return math.exp(sum(math.log(v) for v in good) / len(good))


# --------------------------------------------------------------------------- measuring


def _copy_bandwidth(
    torch: Any, device: Any, nbytes: int, reps: int, sync: Callable[[], None]
) -> list[float]:
    """Seconds per `dst.copy_(src)` of an nbytes buffer (read and written once)."""
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    for _ in range(2):
        dst.copy_(src)
    sync()
    copy = functools.partial(dst.copy_, src)
    samples = [timed(copy, sync) for _ in range(reps)]
    del src, dst, copy
    return samples


@contextlib.contextmanager
def _stderr_silenced():
    """The profiler's C++ side announces its start and stop on file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _step_peak_bytes(torch: Any, device: Any, step: Callable[[], Any], sync) -> float:
    """Bytes a step allocates above what existed before it, at its peak (its temporaries):
    CUDA's allocator statistics on a GPU; on CPU, the allocations and frees torch's profiler
    records during the step, summed in time order (the peak of the memory timeline that
    ``_memory_profile()`` gives, measured equal on Adam, RAdam, Rprop, Adagrad, Adadelta and
    ScalableShampoo, without its analysis of the recorded stacks: 6 s a step for
    ScalableShampoo's many small operations). NaN where neither is available.
    """
    if device.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        sync()
        return float(torch.cuda.max_memory_allocated(device) - before)
    try:
        from torch.profiler import ProfilerActivity, profile
    except ImportError:  # pragma: no cover - a torch without the profiler
        return math.nan
    with (
        _stderr_silenced(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
        step()
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:  # pragma: no cover - a torch without Kineto's results
        return math.nan
    changes = sorted(
        (e.start_ns(), e.nbytes()) for e in results.events() if e.name() == "[memory]"
    )
    current = peak = 0
    for _, size in changes:
        current += size
        peak = max(peak, current)
    return float(peak)


def _bench_one(
    torch: Any,
    gen_cls: Any,
    torch_cls: Any,
    kwargs: dict[str, Any],
    torch_kwargs: dict[str, Any] | None,
    base: Sequence[Any],
    grads: Sequence[Any],
    steps: int,
    warmup: int,
    sync: Callable[[], None],
    progress: Progress,
    label: str,
) -> dict[str, Any]:
    """Interleave steps of the two optimizers on identical parameter copies."""

    def copies() -> list[Any]:
        ps = []
        for b, g in zip(base, grads):
            p = torch.nn.Parameter(b.clone())
            p.grad = g.clone()
            ps.append(p)
        return ps

    sides = {"generated": copies(), "torch": copies()}
    opts = {
        "generated": gen_cls(sides["generated"], **kwargs),
        "torch": torch_cls(sides["torch"], **(torch_kwargs or kwargs)),
    }
    times: dict[str, list[float]] = {"generated": [], "torch": []}
    order = ("generated", "torch")
    # a step that differentiates the gradients (AdaHessian's) is given, before each step and
    # untimed, gradients that carry the graph of a quadratic model
    # (generator.verify.problems.curved): its Hessian-vector products are then timed with it
    curve = getattr(gen_cls, "requires_create_graph", False)

    def ready(side: str, i: int) -> None:
        if curve:
            curved(sides[side], grads, i)
        else:
            # (each step's gradient afresh, untimed: an optimizer may change p.grad in place,
            # as pytorch_optimizer's maximize and gradient centralization do, and would
            # otherwise step on its own leftovers)
            with torch.no_grad():
                for p, g in zip(sides[side], grads):
                    p.grad.copy_(g)
        # (what a step draws from torch's or numpy's generator, alike on both sides:
        # AdaHessian's probes, ScalableShampoo's power iterations, Kron's probes and balancing)
        seed_draws(i)

    with gc_paused():
        for i in range(warmup + steps):
            for side in order if i % 2 == 0 else order[::-1]:
                ready(side, i)
                dt = timed(opts[side].step, sync)
                if i >= warmup:
                    times[side].append(dt)
                progress.advance(f"{label} step {i + 1}/{warmup + steps}")
    # one more step per side, untimed, for the memory it allocates
    peak_bytes = {}
    for side in order:
        ready(side, warmup + steps)
        peak_bytes[side] = _step_peak_bytes(
            torch, sides[side][0].device, opts[side].step, sync
        )
    bytes_per_step = {
        side: _bytes_per_step(sides[side], opts[side].state) for side in sides
    }
    with torch.no_grad():
        deviation = max(
            (a - b).abs().max().item()
            for a, b in zip(sides["generated"], sides["torch"])
        )
    result: dict[str, Any] = {
        "generated_s": times["generated"],
        "torch_s": times["torch"],
        "bytes_per_step": bytes_per_step,
        "peak_step_bytes": peak_bytes,
        "max_abs_param_diff": deviation,
    }
    for side in sides:
        med = median_ms(times[side])
        result[f"{side}_median_ms"] = med
        result[f"{side}_GBps"] = bytes_per_step[side] / (med * 1e-3) / 1e9
    result["ratio"] = result["generated_median_ms"] / result["torch_median_ms"]
    result["spread_pct"] = max(spread_pct(times[s]) for s in sides)
    # Steps i of both sides ran back to back, so their ratio cancels slow drifts.
    result["paired_ratio_median"] = statistics.median(
        g / t for g, t in zip(times["generated"], times["torch"])
    )
    return result


# --------------------------------------------------------------------------- entry


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; 0 on success, 1 if an optimizer failed, 2 on bad options,
    130 when interrupted (completed results are still printed and written)."""
    try:
        impls = choices(getattr(args, "impl", ",".join(IMPLS)), tuple(IMPLS), "impl")
    except ValueError as exc:
        print(f"optimgen bench: {exc}", file=sys.stderr)
        return 2
    try:
        options = parse_options(getattr(args, "options", None))
    except ValueError as exc:
        print(f"optimgen bench: {exc}", file=sys.stderr)
        return 2
    steps, warmup = args.steps, args.warmup
    if steps < 1 or warmup < 0:
        print("optimgen bench: need --steps >= 1 and --warmup >= 0", file=sys.stderr)
        return 2

    loaded = import_torch_and_generated("bench")
    if loaded is None:
        return 1
    torch, gen = loaded
    papers = paper_references(torch, gen)
    own = getattr(args, "baseline", "reference") == "own-foreach"
    valid = ALL_TWINS + tuple(papers)
    if own:  # any generated optimizer with a foreach path
        valid = tuple(
            n
            for n in getattr(gen, "__all__", dir(gen))
            if isinstance(getattr(gen, n, None), type)
            and issubclass(getattr(gen, n), torch.optim.Optimizer)
            and _takes(getattr(gen, n), "foreach")
        )
    try:
        optimizers = choices(
            getattr(args, "optimizers", None) or ",".join(TWINS), valid, "optimizer"
        )
    except ValueError as exc:
        print(f"optimgen bench: {exc}", file=sys.stderr)
        return 2
    # each optimizer's reference: torch.optim's twin, pytorch_optimizer's class, or with
    # --baseline own-foreach the generated class itself (on its foreach path)
    references = {
        n: getattr(gen, n) if own else papers.get(n) or getattr(torch.optim, n)
        for n in optimizers
    }
    try:
        device = torch.device(args.device)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as exc:
        print(
            f"optimgen bench: device {args.device!r} unusable: {exc}", file=sys.stderr
        )
        return 2
    dtype = getattr(torch, args.dtype)
    sync = synchronizer(torch, device)
    show_progress = progress_wanted(args)

    gen_seed = torch.Generator().manual_seed(args.seed)
    shapes = _shapes(args.size)
    base, grads = [], []
    for _, shape in shapes:
        base.append((torch.randn(shape, generator=gen_seed) * 0.02).to(device, dtype))
        grads.append((torch.randn(shape, generator=gen_seed) * 1e-3).to(device, dtype))
    numel = sum(p.numel() for p in base)
    param_bytes = sum(p.numel() * p.element_size() for p in base)
    copy_bytes = min(256 << 20, max(32 << 20, 2 * param_bytes))
    copy_reps = 10

    # torch's fused kernels and the devices they run on (Adagrad's: CPU only)
    fused_devices = {"Adagrad": ("cpu",)}
    torch_fused = {
        n
        for n in optimizers
        if has_fused(references[n])
        and device.type in fused_devices.get(n, (device.type,))
    }
    combos = [
        (name, impl)
        for name in optimizers
        for impl in impls
        if not (impl == "foreach" and name in NO_FOREACH)
        and not (impl == "foreach" and not _takes(getattr(gen, name), "foreach"))
        and not (impl == "fused" and not has_fused(getattr(gen, name)))
    ]
    print(
        f"optimgen bench: {_count(numel)} parameters in {len(shapes)} tensors "
        f"({args.size}: {_describe_size(args.size)}), {args.dtype} on {device}"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{steps} timed + {warmup} warm-up steps per side, generated/reference interleaved "
        "step by step (order alternates); fixed random gradients"
    )
    print(f"machine: {machine(torch, device)}")
    from_papers = [n for n in optimizers if n in papers]
    if own:
        print("reference: the generated class's own foreach path")
    else:
        print(
            "reference: torch.optim's class of the same name"
            + (
                f"; pytorch_optimizer's for {', '.join(from_papers)}"
                if from_papers
                else ""
            )
        )

    def hyper(name: str) -> dict[str, Any]:
        return {**BENCH_KWARGS.get(name, {}), **options}

    print(
        "hyper-parameters: "
        + "; ".join(
            f"{n} "
            + (
                ", ".join(f"{k}={v}" for k, v in hyper(n).items())
                if hyper(n)
                else "defaults"
            )
            for n in optimizers
        )
    )

    progress = Progress(
        len(combos) * 2 * (steps + warmup) + 2 * copy_reps, show_progress
    )
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    copy_samples: list[float] = []
    interrupted = False
    started = time.perf_counter()
    # The first Optimizer imports torch._dynamo (~1e6 objects); do it now and freeze the
    # heap so the collections between runs only scan what the runs allocated.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    gc.collect()
    gc.freeze()
    try:
        progress.advance("copy bandwidth", 0, force=True)
        copy_samples += _copy_bandwidth(torch, device, copy_bytes, copy_reps, sync)
        progress.advance("copy bandwidth", copy_reps)
        for name, impl in combos:
            label = f"{name} {impl}"
            kwargs = hyper(name)
            reference = references[name]
            torch_kwargs = None
            if own:
                torch_kwargs = dict(hyper(name), foreach=True)
            if impl == "fused":
                kwargs["fused"] = True
                if name not in torch_fused:
                    torch_kwargs = dict(hyper(name), foreach=True)
            elif name not in NO_FOREACH and _takes(getattr(gen, name), "foreach"):
                kwargs["foreach"] = IMPLS[impl]
                if not _takes(reference, "foreach"):  # (its one path)
                    torch_kwargs = hyper(name)
            matrices = [k for k, p in enumerate(base) if p.dim() == 2]
            keep = matrices if name in MATRICES_ONLY else range(len(base))
            try:
                gen_cls = getattr(gen, name)
                res = _bench_one(
                    torch,
                    gen_cls,
                    reference,
                    kwargs,
                    torch_kwargs,
                    [base[k] for k in keep],
                    [grads[k] for k in keep],
                    steps,
                    warmup,
                    sync,
                    progress,
                    label,
                )
            except Exception as exc:  # noqa: BLE001 - reported, the rest still runs
                errors.append(f"{label}: {type(exc).__name__}: {exc}")
                res = {"error": f"{type(exc).__name__}: {exc}"}
                progress.advance(label, 2 * (steps + warmup))
            results.append({"optimizer": name, "impl": impl, "kwargs": kwargs, **res})
            gc.collect()  # cheap: everything older is frozen
        progress.advance("copy bandwidth", 0, force=True)
        copy_samples += _copy_bandwidth(torch, device, copy_bytes, copy_reps, sync)
        progress.advance("done", copy_reps, force=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.clear()
        gc.unfreeze()
    elapsed = time.perf_counter() - started

    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["optimizer"], r["impl"], "ERROR"] + [""] * 8)
            continue
        peak = r["peak_step_bytes"]
        rows.append(
            [
                r["optimizer"],
                r["impl"],
                f"{r['generated_median_ms']:.3f}",
                f"{r['torch_median_ms']:.3f}",
                f"{r['ratio']:.3f}",
                f"{r['generated_GBps']:.1f}",
                f"{r['torch_GBps']:.1f}",
                ("-" if math.isnan(r["spread_pct"]) else f"{r['spread_pct']:.0f}"),
                _mib(peak["generated"]),
                _mib(peak["torch"]),
                f"{r['max_abs_param_diff']:.1e}" if r["max_abs_param_diff"] else "0",
            ]
        )
    print()
    print(
        table(
            [
                "optimizer",
                "impl",
                "generated median ms",
                "reference median ms",
                "ratio (gen/ref)",
                "gen eff. GB/s",
                "ref eff. GB/s",
                "IQR %",
                "gen step peak MiB",
                "ref step peak MiB",
                "max |Δparam|",
            ],
            rows,
            right=range(2, 11),  # the numbers; the optimizer and impl on the left
        )
    )
    copy_gbps = (
        2 * copy_bytes / statistics.median(copy_samples) / 1e9
        if copy_samples
        else math.nan
    )
    print()
    print(
        f"streaming copy (Tensor.copy_ of {copy_bytes >> 20} MiB, read+write): "
        f"{copy_gbps:.1f} GB/s median of {len(copy_samples)}"
        + (
            " (before and after the optimizers)"
            if len(copy_samples) > copy_reps
            else ""
        )
    )
    print(
        "effective GB/s = (2·param + grad + 2·each param-shaped state tensor) bytes "
        "per step / median step time;\nIQR % = interquartile range of the step times "
        "over their median (worse side): large values mean a noisy machine;\n"
        "step peak MiB = memory a step allocates above what existed before it, at its peak "
        "(one extra untimed step; CUDA allocator statistics, or torch's profiler on CPU)"
    )
    versus_foreach = sorted(
        {r["optimizer"] for r in results if r["impl"] == "fused"} - torch_fused
    )
    if versus_foreach and not own:
        print(
            f"fused rows of {', '.join(versus_foreach)}: torch has no fused kernel on this device for "
            "them, its side is its foreach path"
        )
    geomeans: dict[str, float] = {}
    counts: dict[str, int] = {}
    for impl in impls:
        ratios = [r["ratio"] for r in results if r["impl"] == impl and "ratio" in r]
        if ratios:
            geomeans[impl], counts[impl] = _geomean(ratios), len(ratios)
    if geomeans:
        print(
            "geometric-mean ratio generated/reference: "
            + ", ".join(
                f"{impl} {g:.3f} (n={counts[impl]})" for impl, g in geomeans.items()
            )
        )
    print(f"bench took {elapsed:.1f} s")
    if interrupted:
        print(
            f"interrupted: {len(results)} of {len(combos)} runs completed",
            file=sys.stderr,
        )
    for e in errors:
        print(f"error: {e}", file=sys.stderr)

    if args.json:
        payload = {
            "config": {
                "optimizers": optimizers,
                "impls": impls,
                "device": str(device),
                "dtype": args.dtype,
                "size": args.size,
                "shapes": {n: list(s) for n, s in shapes},
                "numel": numel,
                "steps": steps,
                "warmup": warmup,
                "seed": args.seed,
            },
            "environment": {
                "machine": machine(torch, device),
                "baseline": getattr(args, "baseline", "reference"),
                "torch": torch.__version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "threads": torch.get_num_threads(),
                "generated": getattr(gen, "__file__", None),
            },
            "copy_bandwidth": {
                "bytes": copy_bytes,
                "samples_s": copy_samples,
                "median_GBps": copy_gbps,
            },
            "results": results,
            "geomean_ratio": geomeans,
            "interrupted": interrupted,
            "elapsed_s": elapsed,
        }
        if not write_json(args.json, payload, "bench"):
            return 1
    if interrupted:
        return 130
    return 1 if errors else 0
