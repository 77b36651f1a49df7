"""Bit-for-bit fingerprints of every generated optimizer, to prove a refactor changes no number.

A refactor of the compiler should leave every generated optimizer computing exactly the same
values. This script runs each class of the committed ``generated`` package through every
implementation path it accepts (for-loop, foreach, fused; capturable for-loop and foreach where
the class has the flag, run on CPU as tests/test_capturable_on_cpu.py does) and several
precisions (float64, float32, bfloat16, and where the class has a precision policy: bfloat16
with Kahan or stochastic rounding, float32 with bfloat16 states) on one seeded problem: two
param groups with different learning rates, gradients spread over magnitudes 1e-6..10, 12 steps.
An optimizer whose step needs a closure (LBFGS) minimises a seeded quadratic instead. Each run
is reduced to one sha256 of its parameters, its state (tensors by their bytes, the rest by repr)
and its param groups' entries; a run that raises records ``error: ...`` instead. Run it on the
tree before the refactor and on the tree after, then ``--compare`` the two JSON files:

    python tests/tools/fingerprint.py --out before.json [--compiled] [--only Adam,SGD]
    python tests/tools/fingerprint.py --compare before.json after.json

The package is imported from the tree the script lies in (its repository root goes first on
``sys.path``), so a copy of the script in another worktree fingerprints that worktree. Fused
kernels run uncompiled by default (``OPTIMGEN_EAGER_KERNELS=1``, read by the generated modules'
runtime, generator/runtime/kernels.py, formerly generator/kernels.py: the same kernel code,
executed as Python); ``--compiled`` compiles them with torch.compile (slow: several
seconds a configuration; narrow it with ``--paths fused --dtypes float32``). Compare only files
made with the same mode and filters: under torch.compile a kernel that hits dynamo's recompile
limit runs uncompiled from then on, so which configurations compile depends on what ran before.
This script imports only torch and the generated package (and the standard library).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import sys
import time
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 12
SEED = 20261206
SHAPES = [[(5,), (3, 4)], [(2, 3, 2), (4,)]]  # the two param groups
SHAPES_2D = [[(3, 4), (4, 3)], [(2, 5), (5, 5)]]  # for Muon, which takes matrices only
PATHS = {  # implementation path -> constructor keywords (the keywords must be in the signature)
    "for-loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
    "for-loop+capturable": {"foreach": False, "capturable": True},
    "foreach+capturable": {"foreach": True, "capturable": True},
}
PRECISIONS = {  # label -> (parameter dtype name, precision-policy keywords)
    "float64": ("float64", {}),
    "float32": ("float32", {}),
    "bfloat16": ("bfloat16", {}),
    "bfloat16+kahan": ("bfloat16", {"param_rounding": "kahan"}),
    "bfloat16+stochastic": (
        "bfloat16",
        {"param_rounding": "stochastic", "rounding_seed": 7},
    ),
    "float32+bf16-state": ("float32", {"state_dtype": "bfloat16"}),
}


def paths_of(cls) -> list[str]:
    """The implementation paths a class accepts; "default" for a class with a single one."""
    params = inspect.signature(cls.__init__).parameters
    found = [name for name, kw in PATHS.items() if all(k in params for k in kw)]
    return found or ["default"]


def precisions_of(cls) -> list[str]:
    params = inspect.signature(cls.__init__).parameters
    return [
        label for label, (_, kw) in PRECISIONS.items() if all(k in params for k in kw)
    ]


def needs_closure(cls) -> bool:
    closure = inspect.signature(cls.step).parameters.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


def spread(gen, shape, dtype):
    """Seeded values whose magnitudes spread log-uniformly over 1e-6..10, either sign."""
    exponent = torch.rand(shape, generator=gen, dtype=torch.float64) * 7 - 6
    sign = torch.randint(0, 2, shape, generator=gen).to(torch.float64) * 2 - 1
    return (sign * 10**exponent).to(dtype)


def quadratic(opt, params, gen, dtype):
    """The closure of a seeded quadratic loss, sum(a * (p - t)^2) with a > 0."""
    weights = [spread(gen, p.shape, torch.float64).abs().to(dtype) for p in params]
    targets = [spread(gen, p.shape, torch.float64).to(dtype) for p in params]

    def closure():
        opt.zero_grad()
        loss = sum(
            (a * (p - t) ** 2).sum() for p, a, t in zip(params, weights, targets)
        )
        loss.backward()
        return loss

    return closure


def allow_capturable_on_cpu(cls) -> None:
    """torch (and the generated twins) refuse capturable=True on CPU by a device check; tell the
    class's module that CPU is supported, as tests/test_capturable_on_cpu.py does."""
    module = sys.modules[cls.__module__]
    if hasattr(module, "_get_capturable_supported_devices"):
        module._get_capturable_supported_devices = cpu_and_cuda


def cpu_and_cuda(supports_xla: bool = True) -> list[str]:
    return ["cpu", "cuda"]


def run(cls, path: str, precision: str) -> str:
    """One seeded run; the sha256 of everything it leaves, or ``error: ...``."""
    dtype_name, policy = PRECISIONS[precision]
    dtype = getattr(torch, dtype_name)
    policy = {
        k: getattr(torch, v) if k == "state_dtype" else v for k, v in policy.items()
    }
    # the global generator too: optimizers that draw from it (WeirdDescent)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    shapes = SHAPES_2D if cls.__name__ == "Muon" else SHAPES
    groups = [
        [spread(gen, s, torch.float64).to(dtype).requires_grad_() for s in group]
        for group in shapes
    ]
    signature = inspect.signature(cls.__init__).parameters
    lr = signature["lr"].default
    lr = 0.01 if lr is inspect.Parameter.empty else lr
    kwargs = {**PATHS.get(path, {}), **policy}
    if "capturable" in kwargs:
        allow_capturable_on_cpu(cls)
    closure = loss = None
    try:
        if needs_closure(cls):
            # all parameters in one group (LBFGS refuses groups)
            params = [p for group in groups for p in group]
            opt = cls(params, lr=lr, **kwargs)
            closure = quadratic(opt, params, gen, dtype)
        else:
            second = {"params": groups[1], "lr": lr * 0.5}
            if "weight_decay" in signature:
                second["weight_decay"] = 0.01
            opt = cls([{"params": groups[0]}, second], lr=lr, **kwargs)
        # schedule-free optimizers: steps in train mode, evaluated in eval mode
        modes = hasattr(opt, "train") and hasattr(opt, "eval")
        if modes:
            opt.train()
        for step in range(STEPS):
            if closure is None:
                params = [p for group in groups for p in group]
                grads = [spread(gen, p.shape, torch.float64).to(dtype) for p in params]
                if getattr(cls, "requires_create_graph", False):
                    from generator.verify.problems import curved

                    curved(params, grads, step)  # (AdaHessian differentiates them)
                else:
                    for p, grad in zip(params, grads):
                        sparse = cls.__name__ == "SparseAdam"
                        p.grad = grad.to_sparse() if sparse else grad
                opt.step()
            else:
                loss = opt.step(closure)
        if modes:
            opt.eval()  # the parameters a schedule-free optimizer evaluates at
    except Exception as exc:  # noqa: BLE001 (the fingerprint records what failed)
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"error: {type(exc).__name__}: {first[:300]}"
    return digest(opt, loss)


def canonical(value, out: list) -> None:
    """Append a deterministic description of ``value`` to ``out``: tensors by their bytes."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.is_sparse:
            t = t.coalesce()
            canonical(("sparse", t.indices(), t.values()), out)
            return
        t = t.cpu().contiguous()
        raw = bytes(t.reshape(-1).view(torch.uint8).tolist())
        out.append(
            f"tensor {t.dtype} {tuple(t.shape)} {hashlib.sha256(raw).hexdigest()}"
        )
    elif isinstance(value, dict):
        out.append("{")
        for key in sorted(value, key=repr):
            out.append(repr(key))
            canonical(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append(f"{type(value).__name__}[")
        for item in value:
            canonical(item, out)
        out.append("]")
    elif callable(value):  # e.g. Muon's adjust_lr_fn: by name, never by address
        out.append(f"callable {getattr(value, '__qualname__', type(value).__name__)}")
    else:
        out.append(repr(value))  # floats: repr round-trips every bit


def digest(opt, loss) -> str:
    out: list[str] = []
    index = {}
    for g, group in enumerate(opt.param_groups):
        for i, p in enumerate(group["params"]):
            index[id(p)] = f"param {g}.{i}"
            out.append(index[id(p)])
            canonical(p, out)
        canonical({k: v for k, v in group.items() if k != "params"}, out)
    # the state: a parameter's under its place in the groups, any other key (a global counter)
    # under its repr
    state = {
        index.get(id(k), repr(k)) if not isinstance(k, str) else k: v
        for k, v in opt.state.items()
    }
    canonical(state, out)
    canonical(loss, out)
    return hashlib.sha256("\n".join(out).encode()).hexdigest()


def fingerprint(args) -> int:
    # the kernels' mode is read when the generated modules import their runtime: set it first
    os.environ["OPTIMGEN_EAGER_KERNELS"] = "0" if args.compiled else "1"
    sys.path.insert(0, ROOT)
    import generated

    loaded = sorted(
        {
            m.__file__
            for n, m in sys.modules.items()
            if n.split(".")[0] in ("generated", "generator")
            and "." not in n
            and getattr(m, "__file__", None)
        }
    )
    print(f"importing from: {', '.join(loaded)}", file=sys.stderr)
    print(
        f"kernels: {'compiled' if args.compiled else 'eager'}; torch {torch.__version__}",
        file=sys.stderr,
    )
    names = sorted(generated.__all__)
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(names)
        if unknown:
            sys.exit(f"unknown optimizers: {', '.join(sorted(unknown))}")
        names = [n for n in names if n in wanted]
    results, started = {}, time.perf_counter()
    caught = []
    for name in names:
        cls = getattr(generated, name)
        t0 = time.perf_counter()
        for path in paths_of(cls):
            if args.paths and path not in args.paths.split(","):
                continue
            for precision in precisions_of(cls):
                if args.dtypes and precision not in args.dtypes.split(","):
                    continue
                with warnings.catch_warnings(record=True) as seen:
                    warnings.simplefilter("always")
                    results[f"{name}/{path}/{precision}"] = run(cls, path, precision)
                caught += [f"{name}/{path}/{precision}: {w.message}" for w in seen]
        print(f"  {name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    errors = sum(v.startswith("error:") for v in results.values())
    print(
        f"{len(results)} entries ({errors} errors) in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    fallbacks = sorted({c for c in caught if "torch.compile failed" in c})
    for line in fallbacks:  # a compiled kernel that ran uncompiled (see the runtime)
        print(f"  warning: {line[:240]}", file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")
    return 0


def compare(a_path: str, b_path: str) -> int:
    with open(a_path) as f:
        a = json.load(f)
    with open(b_path) as f:
        b = json.load(f)
    keys = sorted(set(a) | set(b))
    differ = [k for k in keys if a.get(k) != b.get(k)]

    def short(v):
        return "(missing)" if v is None else v if v.startswith("error:") else v[:16]

    if differ:
        width = max(len(k) for k in differ)
        print(f"{'entry':<{width}}  {a_path}  |  {b_path}")
        for k in differ:
            print(f"{k:<{width}}  {short(a.get(k))}  |  {short(b.get(k))}")
    print(f"{len(keys) - len(differ)} of {len(keys)} identical")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the fingerprints (JSON) here")
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="compare two fingerprint files; exit 1 on any difference",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--eager-kernels",
        action="store_true",
        help="run fused kernels uncompiled (OPTIMGEN_EAGER_KERNELS=1; the default)",
    )
    mode.add_argument(
        "--compiled",
        action="store_true",
        help="compile fused kernels with torch.compile (slow)",
    )
    parser.add_argument(
        "--only", help="comma-separated optimizer classes (default: all)"
    )
    parser.add_argument(
        "--paths", help=f"comma-separated paths among {', '.join(PATHS)}"
    )
    parser.add_argument(
        "--dtypes", help=f"comma-separated precisions among {', '.join(PRECISIONS)}"
    )
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if not args.out:
        parser.error("give --out FILE.json or --compare A.json B.json")
    return fingerprint(args)


if __name__ == "__main__":
    sys.exit(main())
