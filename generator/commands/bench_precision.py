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
import json
import statistics
import sys
import time

from generator.commands.bench import (
    _count,
    _describe_size,
    _mib,
    _median_ms,
    _shapes,
    _split,
    _spread_pct,
    _step_peak_bytes,
    _synchronizer,
    _table,
)
from generator.commands.progress import Progress
from generator.commands.train import POLICIES

DEFAULT_OPTIMIZERS = ("Adam", "Lion")
LR = {"Lion": 1e-4, "SGD": 1e-2}


def run(args: argparse.Namespace) -> int:
    try:
        policies = _split(args.policies, tuple(POLICIES), "policy")
        impls = _split(args.impl, ("for-loop", "foreach", "fused"), "impl")
    except ValueError as exc:
        print(f"optimgen bench: {exc}", file=sys.stderr)
        return 2
    if "float32" not in policies:
        policies = ["float32"] + policies  # the baseline of the ratios
    import torch

    import generated as gen

    names = args.optimizers.split(",") if args.optimizers else list(DEFAULT_OPTIMIZERS)
    unknown = [n for n in names if not hasattr(gen, n)]
    if unknown:
        print(
            f"optimgen bench: no generated optimizer {', '.join(unknown)}",
            file=sys.stderr,
        )
        return 2
    device = torch.device(args.device)
    sync = _synchronizer(torch, device)
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
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
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                for i in range(args.warmup + args.steps):
                    k = i % len(policies)
                    for policy in policies[k:] + policies[:k]:
                        sync()
                        t0 = time.perf_counter()
                        opts[policy].step()
                        sync()
                        if i >= args.warmup:
                            times[policy].append(time.perf_counter() - t0)
                        progress.advance(f"{name} {impl} {policy}")
            finally:
                if gc_was_enabled:
                    gc.enable()
            for policy in policies:
                state_bytes = sum(
                    v.numel() * v.element_size()
                    for st in opts[policy].state.values()
                    for v in st.values()
                    if torch.is_tensor(v)
                )
                peak = _step_peak_bytes(torch, device, opts[policy].step, sync)
                ratio = statistics.median(
                    a / b for a, b in zip(times[policy], times["float32"])
                )
                r = {
                    "optimizer": name,
                    "impl": impl,
                    "policy": policy,
                    "median_ms": _median_ms(times[policy]),
                    "spread_pct": _spread_pct(times[policy]),
                    "ratio_vs_float32": ratio,
                    "state_bytes": state_bytes,
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
                        f"{state_bytes / numel:.1f}",
                        _mib(state_bytes),
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
        _table(
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
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "device": str(device),
                    "torch": torch.__version__,
                    "size": args.size,
                    "results": results,
                },
                f,
                indent=1,
            )
    return 0
