"""`optimgen verify`: a differential test of a spec's generated class against any reference class
(torch.optim, a package, the user's own hand-written optimizer), over a grid of the spec's
hyperparameters.

Both classes get identical copies of a small problem (parameters of several shapes in two param
groups, gradients spread over five orders of magnitude, a fresh draw each step, one parameter
without a gradient on some steps) and run side by side; after every step each parameter is
compared. The grid is the defaults, then one change per hyperparameter the reference accepts
(a number halved or, when 0, set to 0.01; a flag flipped; a tuple's first entry halved). A
configuration the reference refuses at construction is listed as skipped; one that the generated
class refuses while the reference accepts it fails. torch is imported when the command runs.
"""

from __future__ import annotations

import importlib
import inspect
import math
import sys
from typing import Any

from .progress import Progress, add_progress_arguments

SHAPES = ((5, 4), (4,), (3, 3, 2), (2,))
IMPLEMENTATION_FLAGS = {"foreach", "fused", "differentiable", "capturable"}
TOLERANCES = {
    "float64": (1e-10, 1e-14),
    "float32": (1e-5, 1e-7),
    "bfloat16": (2e-2, 1e-3),
}


def add_arguments(p) -> None:
    p.add_argument(
        "spec",
        help="the spec whose generated class is checked: a file, or the name of one of "
        "your specs or of optimgen's optimizers",
    )
    p.add_argument(
        "--against",
        required=True,
        metavar="MODULE.CLASS",
        help="the reference class, e.g. torch.optim.Adam or pytorch_optimizer.Lion",
    )
    p.add_argument("--steps", type=int, default=20, help="steps per configuration")
    p.add_argument(
        "--dtype", choices=sorted(TOLERANCES), default="float64", help="parameter dtype"
    )
    p.add_argument("--rtol", type=float, help="relative tolerance (default: by dtype)")
    p.add_argument("--atol", type=float, help="absolute tolerance (default: by dtype)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--spec-dir",
        help="a spec folder to use instead of the project's (its fragments)",
    )
    add_progress_arguments(p)


def reference_class(dotted: str):
    module, _, name = dotted.rpartition(".")
    if not module:
        raise LookupError(f"`{dotted}` is not MODULE.CLASS (e.g. torch.optim.Adam)")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise LookupError(f"cannot import `{module}`: {e}") from None
    cls = getattr(mod, name, None)
    if not isinstance(cls, type):
        raise LookupError(f"`{module}` has no class `{name}`")
    return cls


def grid(generated_cls, reference_cls) -> list[dict[str, Any]]:
    """The defaults, then one change per hyperparameter both classes take."""
    ours = inspect.signature(generated_cls.__init__).parameters
    theirs = inspect.signature(reference_cls.__init__).parameters
    configs: list[dict[str, Any]] = [{}]
    for name, p in ours.items():
        if name in ("self", "params") or name in IMPLEMENTATION_FLAGS:
            continue
        if name not in theirs or p.default is inspect.Parameter.empty:
            continue
        default = p.default
        if isinstance(default, int) and not isinstance(default, bool):
            if "float" in str(p.annotation):  # `weight_decay: float = 0`
                default = float(default)
        value = _changed(default)
        if value is not None:
            configs.append({name: value})
    return configs


def shared_defaults(generated_cls, reference_cls) -> dict[str, tuple[Any, Any]]:
    """Hyperparameters both classes take, as (ours, theirs) defaults."""
    ours = inspect.signature(generated_cls.__init__).parameters
    theirs = inspect.signature(reference_cls.__init__).parameters
    return {
        name: (p.default, theirs[name].default)
        for name, p in ours.items()
        if name in theirs
        and name not in ("self", "params")
        and name not in IMPLEMENTATION_FLAGS
        and p.default is not inspect.Parameter.empty
    }


def _changed(default):
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        if math.isinf(default) or math.isnan(default):
            return None
        return 0.01 if default == 0 else default * 0.5
    if isinstance(default, tuple) and default and isinstance(default[0], float):
        return (_changed(default[0]),) + default[1:]
    return None


def _problem(torch, dtype, seed, steps):
    gen = torch.Generator().manual_seed(seed)
    start = [
        torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES
    ]
    grads = []
    for step in range(steps):
        row = []
        for i, s in enumerate(SHAPES):
            if i == 1 and step % 4 == 2:
                row.append(None)  # a parameter without a gradient on some steps
                continue
            scale = 10 ** (torch.rand(s, generator=gen, dtype=torch.float64) * 5 - 4)
            row.append(
                (torch.randn(s, generator=gen, dtype=torch.float64) * scale).to(dtype)
            )
        grads.append(row)
    return start, grads


def compare(gen_cls, ref_cls, kwargs, dtype, steps, seed, rtol, atol, torch) -> dict:
    start, grads = _problem(torch, dtype, seed, steps)
    runs = []
    for cls in (ref_cls, gen_cls):
        params = [t.clone().requires_grad_(True) for t in start]
        groups = [{"params": params[:2]}, {"params": params[2:]}]
        try:
            opt = cls(groups, **kwargs)
        except Exception as e:  # the refusal is the finding, reported as such
            runs.append(f"{type(e).__name__}: {e}")
            continue
        runs.append((params, opt))
    if isinstance(runs[0], str):
        return {"status": "skipped", "why": f"the reference refuses it ({runs[0]})"}
    if isinstance(runs[1], str):
        return {
            "status": "FAIL",
            "why": f"refused, the reference accepts it ({runs[1]})",
        }
    (ref_params, ref_opt), (params, opt) = runs
    worst_abs = worst_rel = 0.0
    first = None
    for step in range(steps):
        for ps in (ref_params, params):
            for p, g in zip(ps, grads[step]):
                p.grad = None if g is None else g.clone()
        ref_opt.step()
        opt.step()
        for i, (a, e) in enumerate(zip(params, ref_params)):
            a, e = a.detach().double(), e.detach().double()
            diff = (a - e).abs()
            worst_abs = max(worst_abs, diff.max().item())
            worst_rel = max(worst_rel, (diff / e.abs().clamp_min(1e-300)).max().item())
            if first is None and not bool((diff <= atol + rtol * e.abs()).all()):
                k = int((diff > atol + rtol * e.abs()).flatten().nonzero()[0])
                first = (
                    f"step {step + 1}, param #{i} {tuple(a.shape)}, element {k}: "
                    f"{a.flatten()[k].item()!r} vs {e.flatten()[k].item()!r}"
                )
    return {
        "status": "FAIL" if first is not None else "pass",
        "abs": worst_abs,
        "rel": worst_rel,
        "why": first or "",
    }


def run(args) -> int:
    import torch

    from . import project as P
    from .api import load_spec

    try:
        ref_cls = reference_class(args.against)
    except LookupError as e:
        print(f"optimgen verify: {e}", file=sys.stderr)
        return 1
    where = P.around(args.spec_dir, None)
    path = P.spec_named(args.spec, where)
    if path is None:
        print(f"optimgen verify: no spec `{args.spec}`", file=sys.stderr)
        return 1
    shown = P.display(path, where.root if where else None)
    gen_cls = load_spec(path, P.fragment_dirs(where, [path]))
    dtype = getattr(torch, args.dtype)
    rtol, atol = TOLERANCES[args.dtype]
    rtol = args.rtol if args.rtol is not None else rtol
    atol = args.atol if args.atol is not None else atol
    configs = grid(gen_cls, ref_cls)
    # Both classes get the spec's defaults: the comparison is of the algorithms, not of
    # which defaults each chose (those that differ are listed).
    shared = shared_defaults(gen_cls, ref_cls)
    base = {k: ours for k, (ours, _) in shared.items()}
    differ = {k: v for k, v in shared.items() if not _same(*v)}
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = Progress(len(configs), show)
    rows = []
    for kwargs in configs:
        progress.advance(f"{kwargs or 'defaults'}", 0, force=True)
        result = compare(
            gen_cls,
            ref_cls,
            {**base, **kwargs},
            dtype,
            args.steps,
            args.seed,
            rtol,
            atol,
            torch,
        )
        rows.append((kwargs, result))
        progress.advance(f"{kwargs or 'defaults'}")
    progress.clear()
    print(
        f"{gen_cls.__name__} ({shown}) vs {args.against}: {args.steps} steps, "
        f"{args.dtype}, rtol {rtol:g}, atol {atol:g}"
    )
    if differ:
        print(
            "defaults that differ, the spec's given to both: "
            + ", ".join(f"{k}={o!r} (reference {t!r})" for k, (o, t) in differ.items())
        )
    print(_table(rows))
    failed = sum(r["status"] == "FAIL" for _, r in rows)
    skipped = sum(r["status"] == "skipped" for _, r in rows)
    print(f"{len(rows) - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # a tensor default: compare by identity only
        return a is b


def _table(rows) -> str:
    headers = (
        "configuration",
        "result",
        "max abs dev",
        "max rel dev",
        "first difference",
    )
    body = []
    for kwargs, r in rows:
        config = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "defaults"
        dev = lambda k: "-" if k not in r else f"{r[k]:.1e}"  # noqa: E731
        body.append((config, r["status"], dev("abs"), dev("rel"), r["why"]))
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *body)]
    fmt = lambda row: " | ".join(
        str(x).ljust(w) for x, w in zip(row, widths)
    )  # noqa: E731
    return "\n".join(
        [fmt(headers), "-+-".join("-" * w for w in widths)]
        + [fmt(r).rstrip() for r in body]
    )
