"""`optimgen demo`: replays the seed tutorials' scenarios with the generated
optimizers side by side with their torch.optim twins and prints how close they are. It
runs the tutorials' x² descent and pathological-curvature examples, the Rosenbrock
function with every twin (both the for-loop and the foreach path), the two custom
optimizers without a torch twin (WeirdDescent's random coordinate path, BertAdamW
against torch's AdamW), and a small two-layer MLP trained with two parameter groups
and a ReduceLROnPlateau scheduler. It is a demonstration, not a test: it reports deviations
instead of asserting on them, and exits non-zero only when an optimizer could not be
built or stepped at all. torch and the `generated` package are imported lazily inside
`run` so the generator starts fast.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Any, Callable, Sequence

from generator.commands.common import import_torch_and_generated, table

# The five generated optimizers with a torch.optim twin.
TWINS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")
IMPLS = (("for-loop", False), ("foreach", True))

# Rosenbrock hyper-parameters, chosen so that 1000 steps from (-1.5, 2) get somewhere.
ROSENBROCK_START = (-1.5, 2.0)
ROSENBROCK_KWARGS: dict[str, dict[str, Any]] = {
    "SGD": dict(lr=5e-4, momentum=0.9),
    "Adam": dict(lr=0.05),
    "AdamW": dict(lr=0.05, weight_decay=0.01),
    "RMSprop": dict(lr=0.01),
    "Adagrad": dict(lr=1.0),
}
# MLP hyper-parameters: lr of group 0 (first layer); group 1 (second layer) gets 0.3×.
MLP_KWARGS: dict[str, dict[str, Any]] = {
    "SGD": dict(lr=0.05, momentum=0.9),
    "Adam": dict(lr=1e-2),
    "AdamW": dict(lr=1e-2, weight_decay=0.01),
    "RMSprop": dict(lr=3e-3),
    "Adagrad": dict(lr=0.1),
}
WEIRD_LR = 2e-4
DEFAULT_ROSENBROCK_STEPS = 1000
DEFAULT_MLP_STEPS = 200
QUICK_ROSENBROCK_STEPS = 200
QUICK_MLP_STEPS = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of `optimgen demo`."""
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help=(
            "optimizer steps for the Rosenbrock and MLP scenarios (default: "
            f"{DEFAULT_ROSENBROCK_STEPS} and {DEFAULT_MLP_STEPS}; the tutorial "
            "scenarios always run their 100 iterations)"
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            f"fewer steps ({QUICK_ROSENBROCK_STEPS} Rosenbrock, {QUICK_MLP_STEPS} MLP) "
            "unless --steps is given"
        ),
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for data and WeirdDescent (default 0)"
    )


# --------------------------------------------------------------------------- output


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain-text table: text columns left-aligned, numeric ones right-aligned."""
    cells = [[str(c) for c in row] for row in rows]

    def numeric(col: int) -> bool:
        vals = [row[col] for row in cells if row[col] not in ("", "-")]
        return bool(vals) and all(_looks_numeric(v) for v in vals)

    return table(headers, cells, right={i for i in range(len(headers)) if numeric(i)})


def _looks_numeric(s: str) -> bool:
    s = s.strip("[]() ")
    try:
        float(s.split(",")[0])
        return True
    except ValueError:
        return s in ("nan", "inf", "-inf")


def _section(title: str) -> None:
    print()
    print(title)
    print("=" * max(len(line) for line in title.splitlines()))


def _g(x: float, digits: int = 7) -> str:
    return f"{x:.{digits}g}"


def _delta(x: float) -> str:
    """A deviation: 0 prints as 0 (bit-identical), anything else in scientific form."""
    if x == 0:
        return "0"
    if math.isnan(x):
        return "nan"
    return f"{x:.2e}"


def _point(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


class _Errors:
    """Collects failures so that one broken optimizer does not hide the others."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def record(self, what: str, exc: BaseException) -> str:
        self.items.append(f"{what}: {type(exc).__name__}: {exc}")
        return f"ERROR ({type(exc).__name__})"


# --------------------------------------------------------------------------- helpers


def _descend(
    torch: Any,
    make_opt: Callable[[list], Any],
    start: Sequence[float],
    loss_fn: Callable[[Any], Any],
    steps: int,
    grad_fn: Callable[[list[float]], list[float]] | None = None,
) -> list[list[float]]:
    """Minimise loss_fn over one float32 parameter tensor; return the path (start
    included). With grad_fn (point -> gradient, in Python floats) autograd is skipped,
    which makes the long runs several times faster."""
    p = torch.tensor(list(start), dtype=torch.float32, requires_grad=True)
    opt = make_opt([p])
    path = [p.detach().tolist()]
    for _ in range(steps):
        opt.zero_grad()
        if grad_fn is None:
            loss_fn(p).backward()
        else:
            p.grad = torch.tensor(grad_fn(path[-1]), dtype=torch.float32)
        opt.step()
        path.append(p.detach().tolist())
    return path


def _max_path_delta(a: list[list[float]], b: list[list[float]]) -> float:
    worst = 0.0
    for pa, pb in zip(a, b):
        for u, v in zip(pa, pb):
            d = abs(u - v)
            if math.isnan(d):
                return math.nan
            worst = max(worst, d)
    return worst


def _rosenbrock(p: Any) -> Any:
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _rosenbrock_grad(pt: Sequence[float]) -> list[float]:
    x, y = pt
    return [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)]


def _rosenbrock_value(pt: Sequence[float]) -> float:
    x, y = pt
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


# --------------------------------------------------------------------------- scenarios


def _scenario_parabola(torch: Any, gen: Any, errors: _Errors) -> None:
    _section("1. x² from x = 15: SGD lr=0.05, 100 iterations (x_k = 15·0.9^k)")
    cols: dict[str, list[float] | None] = {}
    for label, cls, kw in (
        ("generated for-loop", getattr(gen, "SGD", None), dict(foreach=False)),
        ("generated foreach", getattr(gen, "SGD", None), dict(foreach=True)),
        ("torch.optim", torch.optim.SGD, dict(foreach=False)),
    ):
        try:
            if cls is None:
                raise AttributeError("generated has no SGD")
            path = _descend(
                torch,
                lambda ps: cls(ps, lr=0.05, **kw),
                [15.0],
                lambda p: (p**2).sum(),
                100,
            )
            cols[label] = [pt[0] for pt in path]
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            errors.record(f"x² {label}", exc)
            cols[label] = None
    rows = []
    for k in range(0, 101, 20):
        row: list[Any] = [k]
        for path in cols.values():
            row.append("ERROR" if path is None else _g(path[k]))
        row.append(_g(15 * 0.9**k))
        rows.append(row)
    print(_table(["iteration", *cols, "exact 15·0.9^k"], rows))
    print("tutorial: 15.0, 1.8236…, 0.2217…, 0.02696…, 0.003277…, 0.0003984…")


def _scenario_pathological(torch: Any, gen: Any, errors: _Errors) -> None:
    _section(
        "2. Pathological curvature tanh(x)²+0.01|x|+sigmoid(y) from (2.5, 2.5): "
        "SGD lr=0.02 momentum=0.99"
    )

    def f(p: Any) -> Any:
        return torch.tanh(p[0]) ** 2 + 0.01 * torch.abs(p[0]) + torch.sigmoid(p[1])

    paths: dict[str, list[list[float]] | None] = {}
    for label, cls, kw in (
        ("generated for-loop", getattr(gen, "SGD", None), dict(foreach=False)),
        ("generated foreach", getattr(gen, "SGD", None), dict(foreach=True)),
        ("torch.optim", torch.optim.SGD, dict(foreach=False)),
    ):
        try:
            if cls is None:
                raise AttributeError("generated has no SGD")
            paths[label] = _descend(
                torch,
                lambda ps: cls(ps, lr=0.02, momentum=0.99, **kw),
                [2.5, 2.5],
                f,
                100,
            )
        except Exception as exc:  # noqa: BLE001
            errors.record(f"pathological {label}", exc)
            paths[label] = None
    ref = paths.get("torch.optim")
    rows: list[list[Any]] = [["course (100-point path)", "[0.8110, -6.3344]", "-", "-"]]
    for label, path in paths.items():
        if path is None:
            rows.append([label, "ERROR", "ERROR", "-"])
            continue
        dev = "-" if ref is None or path is ref else _delta(_max_path_delta(path, ref))
        rows.append([label, _point(path[99]), _point(path[100]), dev])
    print(
        _table(
            ["source", "after 99 steps", "after 100 steps", "max |Δ| vs torch"], rows
        )
    )
    print(
        "note: the course's path holds 100 points (start + 99 steps), so its last "
        "point is the 99-step iterate."
    )


def _scenario_rosenbrock(torch: Any, gen: Any, errors: _Errors, steps: int) -> None:
    x0, y0 = ROSENBROCK_START
    _section(
        f"3. Rosenbrock (1-x)²+100(y-x²)² from ({x0}, {y0}), {steps} steps, float32 "
        "(minimum at [1, 1])"
    )
    rows = []
    for name in TWINS:
        kw = ROSENBROCK_KWARGS[name]
        for impl, foreach in IMPLS:
            try:
                cls = getattr(gen, name)
                g = _descend(
                    torch,
                    lambda ps: cls(ps, foreach=foreach, **kw),
                    ROSENBROCK_START,
                    _rosenbrock,
                    steps,
                    _rosenbrock_grad,
                )
                t = _descend(
                    torch,
                    lambda ps: getattr(torch.optim, name)(ps, foreach=foreach, **kw),
                    ROSENBROCK_START,
                    _rosenbrock,
                    steps,
                    _rosenbrock_grad,
                )
                rows.append(
                    [
                        name,
                        impl,
                        _point(g[-1]),
                        _g(_rosenbrock_value(g[-1]), 5),
                        _g(_rosenbrock_value(t[-1]), 5),
                        _delta(_max_path_delta(g, t)),
                    ]
                )
            except Exception as exc:  # noqa: BLE001
                rows.append([name, impl, errors.record(f"{name} {impl}", exc)])
                rows[-1] += [""] * 3
    print(
        _table(
            [
                "optimizer",
                "impl",
                "final point (generated)",
                "final loss (generated)",
                "final loss (torch)",
                "max |Δ| over path",
            ],
            rows,
        )
    )
    print(
        "hyper-parameters: "
        + "; ".join(
            f"{name} "
            + ", ".join(f"{k}={v}" for k, v in ROSENBROCK_KWARGS[name].items())
            for name in TWINS
        )
    )


def _scenario_weird(
    torch: Any, gen: Any, errors: _Errors, steps: int, seed: int
) -> None:
    _section(
        f"4. WeirdDescent on Rosenbrock (lr={WEIRD_LR}, seed {seed}, {steps} steps): "
        "random coordinate descent, lr×100 every 100th step"
    )
    try:
        torch.manual_seed(seed)
        path = _descend(
            torch,
            lambda ps: gen.WeirdDescent(ps, lr=WEIRD_LR),
            ROSENBROCK_START,
            _rosenbrock,
            steps,
            _rosenbrock_grad,
        )
    except Exception as exc:  # noqa: BLE001
        print(errors.record("WeirdDescent", exc))
        return
    moves = []  # (step, changed coordinates, largest |Δ|)
    for k in range(1, len(path)):
        d = [abs(a - b) for a, b in zip(path[k], path[k - 1])]
        changed = "".join(c for c, di in zip("xy", d) if di != 0) or "-"
        moves.append((k, changed, max(d)))
    show = sorted(
        {k for k in (1, 2, 3, 99, 100, 101, 199, 200, 201) if k <= steps}
        | ({steps} if steps else set())
    )
    rows = []
    for k in show:
        _, changed, big = moves[k - 1]
        rows.append(
            [
                k,
                _g(path[k][0]),
                _g(path[k][1]),
                changed,
                _delta(big),
                _g(_rosenbrock_value(path[k]), 5),
            ]
        )
    print(_table(["step", "x", "y", "changed", "|Δ|", "loss"], rows))
    counts: dict[int, int] = {}
    for _, changed, _ in moves:
        n = 0 if changed == "-" else len(changed)
        counts[n] = counts.get(n, 0) + 1
    summary = ", ".join(
        f"{n} coordinate{'s' if n != 1 else ''} in {c} step{'s' if c != 1 else ''}"
        for n, c in sorted(counts.items())
    )
    print(f"coordinates changed per step: {summary}")
    jumps = [m[2] for m in moves if m[0] % 100 == 0]
    others = [m[2] for m in moves if m[0] % 100 != 0]
    if jumps and others:
        mj, mo = statistics.median(jumps), statistics.median(others)
        ratio = f" ({mj / mo:.0f}×)" if mo > 0 else ""
        print(
            f"median |Δ| at steps 100, 200, …: {_delta(mj)}; at the other steps: "
            f"{_delta(mo)}{ratio}"
        )
    print(
        f"loss {_g(_rosenbrock_value(path[0]), 5)} → "
        f"{_g(_rosenbrock_value(path[-1]), 5)}, final point {_point(path[-1])}"
    )


def _scenario_bert(torch: Any, gen: Any, errors: _Errors, steps: int) -> None:
    _section(
        f"5. BertAdamW on Rosenbrock ({steps} steps, lr=0.05, eps=1e-6) vs torch AdamW "
        "(no exact twin)"
    )
    rows = []
    for correct_bias, wd in ((True, 0.0), (True, 0.01), (False, 0.01)):
        kw = dict(lr=0.05, betas=(0.9, 0.999), eps=1e-6, weight_decay=wd)
        try:
            g = _descend(
                torch,
                lambda ps: gen.BertAdamW(ps, correct_bias=correct_bias, **kw),
                ROSENBROCK_START,
                _rosenbrock,
                steps,
                _rosenbrock_grad,
            )
            t = _descend(
                torch,
                lambda ps: torch.optim.AdamW(ps, foreach=False, **kw),
                ROSENBROCK_START,
                _rosenbrock,
                steps,
                _rosenbrock_grad,
            )
            rows.append(
                [
                    correct_bias,
                    wd,
                    _point(g[-1]),
                    _g(_rosenbrock_value(g[-1]), 5),
                    _point(t[-1]),
                    _g(_rosenbrock_value(t[-1]), 5),
                    _delta(_max_path_delta(g, t)),
                ]
            )
        except Exception as exc:  # noqa: BLE001
            rows.append(
                [
                    correct_bias,
                    wd,
                    errors.record(
                        f"BertAdamW correct_bias={correct_bias} weight_decay={wd}", exc
                    ),
                ]
                + [""] * 4
            )
    print(
        _table(
            [
                "correct_bias",
                "weight_decay",
                "BertAdamW final point",
                "loss",
                "torch AdamW final point",
                "loss",
                "max |Δ| over path",
            ],
            rows,
        )
    )
    print(
        "expected differences: BertAdamW adds eps to sqrt(v) before bias correction "
        "(torch: sqrt(v/(1-β2^t)) + eps),\napplies weight decay after the Adam update "
        "(torch: before), and with correct_bias=False skips bias correction entirely."
    )


def _scenario_mlp(torch: Any, gen: Any, errors: _Errors, steps: int, seed: int) -> None:
    _section(
        f"6. MLP 16→64→1 (tanh) regression, 512 seeded samples, {steps} full-batch "
        "steps, float32;\n   param groups: layer 1 (lr), layer 2 (0.3·lr); "
        "ReduceLROnPlateau (factor 0.5, patience 5) on group 0 only"
    )
    nn = torch.nn
    gdata = torch.Generator().manual_seed(seed)
    X = torch.randn(512, 16, generator=gdata)
    w = torch.randn(16, 1, generator=gdata) / 4
    y = (
        torch.sin(X @ w)
        + 0.1 * torch.cos(3 * X[:, :1])
        + 0.01 * torch.randn(512, 1, generator=gdata)
    )
    torch.manual_seed(seed)
    template = nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 1))
    init_state = {k: v.clone() for k, v in template.state_dict().items()}

    def train(cls: Any, kw: dict[str, Any]) -> tuple[float, Any, int]:
        model = nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 1))
        model.load_state_dict(init_state)
        lr = kw["lr"]
        rest = {k: v for k, v in kw.items() if k != "lr"}
        opt = cls(
            [
                {"params": model[0].parameters(), "lr": lr},
                {"params": model[2].parameters(), "lr": 0.3 * lr},
            ],
            lr=lr,
            **rest,
        )
        # min_lr pins group 1 at its lr, so the scheduler only acts on group 0.
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=5, threshold=1e-3, min_lr=[0.0, 0.3 * lr]
        )
        cuts, last_lr = 0, lr
        loss = torch.tensor(math.nan)
        for _ in range(steps):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(X), y)
            loss.backward()
            opt.step()
            sched.step(loss.item())
            if opt.param_groups[0]["lr"] < last_lr:
                cuts, last_lr = cuts + 1, opt.param_groups[0]["lr"]
        with torch.no_grad():
            final = nn.functional.mse_loss(model(X), y).item()
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        return final, flat, cuts

    with torch.no_grad():
        start_loss = nn.functional.mse_loss(template(X), y).item()
    rows = []
    for name in TWINS:
        for impl, foreach in IMPLS:
            kw = dict(MLP_KWARGS[name], foreach=foreach)
            try:
                gl, gp, gc = train(getattr(gen, name), kw)
                tl, tp, tc = train(getattr(torch.optim, name), kw)
                dev = (gp - tp).abs().max().item()
                rows.append(
                    [name, impl, steps, _g(gl, 6), _g(tl, 6), _delta(dev), f"{gc}/{tc}"]
                )
            except Exception as exc:  # noqa: BLE001
                rows.append(
                    [name, impl, steps, errors.record(f"MLP {name} {impl}", exc)]
                    + [""] * 3
                )
    print(
        _table(
            [
                "optimizer",
                "impl",
                "steps",
                "final loss (generated)",
                "final loss (torch)",
                "max |Δparam|",
                "lr cuts (gen/torch)",
            ],
            rows,
        )
    )
    print(f"initial loss {_g(start_loss, 6)}")


# --------------------------------------------------------------------------- entry


def run(args: argparse.Namespace) -> int:
    """Run every scenario; 0 unless some optimizer failed to build or step."""
    started = time.perf_counter()
    loaded = import_torch_and_generated("demo")
    if loaded is None:
        return 1
    torch, gen = loaded

    steps = getattr(args, "steps", None)
    quick = getattr(args, "quick", False)
    seed = getattr(args, "seed", 0)
    if steps is not None and steps < 1:
        print("optimgen demo: --steps must be at least 1", file=sys.stderr)
        return 2
    rosen_steps = steps or (
        QUICK_ROSENBROCK_STEPS if quick else DEFAULT_ROSENBROCK_STEPS
    )
    mlp_steps = steps or (QUICK_MLP_STEPS if quick else DEFAULT_MLP_STEPS)

    # The problems are tiny: one intra-op thread is as fast and, unlike two, does not
    # collapse when the machine is busy. Both sides run under the same setting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    print(
        f"optimgen demo: generated ({getattr(gen, '__file__', '?')}) vs torch.optim "
        f"{torch.__version__}, 1 thread"
    )
    errors = _Errors()
    try:
        _scenario_parabola(torch, gen, errors)
        _scenario_pathological(torch, gen, errors)
        _scenario_rosenbrock(torch, gen, errors, rosen_steps)
        _scenario_weird(torch, gen, errors, rosen_steps, seed)
        _scenario_bert(torch, gen, errors, rosen_steps)
        _scenario_mlp(torch, gen, errors, mlp_steps, seed)
    finally:
        torch.set_num_threads(threads)

    print()
    if errors.items:
        print(f"{len(errors.items)} failure(s):")
        for item in errors.items:
            print(f"  {item}")
    print(f"demo finished in {time.perf_counter() - started:.1f} s")
    return 1 if errors.items else 0
