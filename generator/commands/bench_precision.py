"""`optimgen bench --policies`: the step-time and memory cost of the precision policies
(generator.runtime.precision), a benchmark, not a test. For each optimizer and implementation it
builds one copy of the transformer-like parameter set of `optimgen bench` per policy (in the
policy's parameter dtype, with the same fixed gradients), interleaves single steps of all
policies (rotating which goes first), and reports per policy the median step time, its ratio
to the float32 policy's (the median of the per-round ratios, which cancels slow drifts), the
bytes of optimizer state, and the memory a step allocates at its peak. The policies are those
of `optimgen train` (generator.commands.train.POLICIES).
"""

from __future__ import annotations

import argparse
import gc
import inspect
import statistics
import sys

from generator.commands.bench import (
    _count,
    _describe_size,
    _mib,
    _shapes,
    _step_peak_bytes,
)
from generator.commands.common import (
    choices,
    gc_paused,
    import_torch_and_generated,
    median_ms,
    progress_wanted,
    spread_pct,
    state_bytes,
    synchronizer,
    table,
    timed,
    write_json,
)
from generator.commands.progress import Progress
from generator.commands.train import POLICIES

DEFAULT_OPTIMIZERS = ("Adam", "Lion")
LR = {"Lion": 1e-4, "SGD": 1e-2}


def run(args: argparse.Namespace) -> int:
    try:
        policies = choices(args.policies, tuple(POLICIES), "policy")
        impls = choices(args.impl, ("for-loop", "foreach", "fused"), "impl")
    except ValueError as exc:
        print(f"optimgen bench: {exc}", file=sys.stderr)
        return 2
    if "float32" not in policies:
        policies = ["float32"] + policies  # the baseline of the ratios
    loaded = import_torch_and_generated("bench")
    if loaded is None:
        return 1
    torch, gen = loaded
    names = args.optimizers.split(",") if args.optimizers else list(DEFAULT_OPTIMIZERS)
    unknown = [n for n in names if not hasattr(gen, n)]
    if unknown:
        print(
            f"optimgen bench: no generated optimizer {', '.join(unknown)}",
            file=sys.stderr,
        )
        return 2
    device = torch.device(args.device)
    sync = synchronizer(torch, device)
    show_progress = progress_wanted(args)
    seed = torch.Generator().manual_seed(args.seed)
    shapes = _shapes(args.size)
    base = [torch.randn(s, generator=seed) * 0.02 for _, s in shapes]
    grads = [torch.randn(s, generator=seed) * 1e-3 for _, s in shapes]
    numel = sum(b.numel() for b in base)
    combos = []
    for name in names:
        accepts = inspect.signature(getattr(gen, name)).parameters
        for impl in impls:
            flag = {"for-loop": "foreach", "foreach": "foreach", "fused": "fused"}[impl]
            if flag in accepts and "param_rounding" in accepts:
                combos.append((name, impl))
    print(
        f"optimgen bench --policies: {_count(numel)} parameters in {len(shapes)} tensors "
        f"({args.size}: {_describe_size(args.size)}) on {device}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.steps} timed + {args.warmup} warm-up "
        "steps per policy, policies interleaved step by step"
    )
    progress = Progress(
        len(combos) * len(policies) * (args.steps + args.warmup), show_progress
    )
    rows, results = [], []
    try:
        for name, impl in combos:
            cls = getattr(gen, name)
            flags = {
                "for-loop": dict(foreach=False),
                "foreach": dict(foreach=True),
            }.get(impl, dict(fused=True))
            opts, params = {}, {}
            for policy in policies:
                dtype_name, options = POLICIES[policy]
                dtype = getattr(torch, dtype_name)
                kwargs = {
                    k: getattr(torch, v) if k == "state_dtype" else v
                    for k, v in options.items()
                }
                ps = []
                for b, g in zip(base, grads):
                    p = torch.nn.Parameter(b.to(device, dtype))
                    p.grad = g.to(device, dtype)
                    ps.append(p)
                params[policy] = ps
                opts[policy] = cls(ps, lr=LR.get(name, 1e-3), **flags, **kwargs)
            times = {p: [] for p in policies}
            with gc_paused():
                for i in range(args.warmup + args.steps):
                    k = i % len(policies)
                    for policy in policies[k:] + policies[:k]:
                        dt = timed(opts[policy].step, sync)
                        if i >= args.warmup:
                            times[policy].append(dt)
                        progress.advance(f"{name} {impl} {policy}")
            for policy in policies:
                nbytes = state_bytes(opts[policy])
                peak = _step_peak_bytes(torch, device, opts[policy].step, sync)
                ratio = statistics.median(
                    a / b for a, b in zip(times[policy], times["float32"])
                )
                r = {
                    "optimizer": name,
                    "impl": impl,
                    "policy": policy,
                    "median_ms": median_ms(times[policy]),
                    "spread_pct": spread_pct(times[policy]),
                    "ratio_vs_float32": ratio,
                    "state_bytes": nbytes,
                    "peak_step_bytes": peak,
                    "samples_s": times[policy],
                }
                results.append(r)
                rows.append(
                    [
                        name,
                        impl,
                        policy,
                        f"{r['median_ms']:.2f}",
                        f"{ratio:.2f}",
                        f"{nbytes / numel:.1f}",
                        _mib(nbytes),
                        _mib(peak),
                        f"{r['spread_pct']:.0f}%",
                    ]
                )
            del opts, params
            gc.collect()
    except KeyboardInterrupt:
        progress.clear()
        print("interrupted: the rows so far", file=sys.stderr)
    progress.clear()
    print(
        table(
            [
                "optimizer",
                "impl",
                "policy",
                "step ms",
                "vs float32",
                "state B/param",
                "state MiB",
                "step peak MiB",
                "IQR",
            ],
            rows,
            right=range(2, 9),  # the policy and the numbers
        )
    )
    print(
        "vs float32 = median over rounds of (policy step time / float32 step time), the "
        "steps of one round run back to back; step peak = memory a step allocates above "
        "what existed before it; policies: "
        + "; ".join(
            f"{p}: {POLICIES[p][0]} params"
            + (f", {POLICIES[p][1]}" if POLICIES[p][1] else "")
            for p in policies
        )
    )
    if args.json:
        payload = {
            "device": str(device),
            "torch": torch.__version__,
            "size": args.size,
            "results": results,
        }
        if not write_json(args.json, payload, "bench"):
            return 1
    return 0
