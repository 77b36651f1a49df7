"""`optimgen plot`: trajectories of optimizers on a 2-D test function, over its contour plot, with
a loss-against-step panel beside it; a PNG, or an animated GIF of the descent (the seed
tutorials' Rosenbrock video and pathological-curvature plots, in one command).

An optimizer is named as `NAME[:key=value,...]`: a generated class (`Adam`), a torch.optim or
other class by its dotted path (`torch.optim.SGD`), or a spec file (`specs/my.optim`, built in
memory). Values are Python literals (`lr=0.01`, `betas=(0.9,0.99)`), read with ast.literal_eval,
never evaluated as code. matplotlib is an optional extra (`pip install optimgen[plot]`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from generator.commands.common import (
    PLOT_EXTRA,
    LiteralError,
    literal_kwargs,
    progress_wanted,
    pyplot,
)
from generator.commands.progress import Progress, add_progress_arguments
from generator.commands.common import backward_with_graph, optimizer_class
from generator.verify.harness import needs_closure

# name → (f(torch, x, y), start, (x range), (y range), minimum or None)
FUNCTIONS = {
    "rosenbrock": (
        lambda t, x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
        (-1.5, 2.0),
        (-2.0, 2.0),
        (-1.0, 3.0),
        (1.0, 1.0),
    ),
    "pathological": (
        lambda t, x, y: t.tanh(x) ** 2 + 0.01 * t.abs(x) + t.sigmoid(y),
        (2.5, 2.5),
        (-3.0, 3.0),
        (-4.0, 3.0),
        None,
    ),
    "quadratic": (  # badly conditioned: a ravine 50x steeper across than along
        lambda t, x, y: 0.5 * x**2 + 25 * y**2,
        (-4.0, 1.5),
        (-5.0, 5.0),
        (-2.0, 2.0),
        (0.0, 0.0),
    ),
    "himmelblau": (
        lambda t, x, y: (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
        (0.0, 0.0),
        (-5.0, 5.0),
        (-5.0, 5.0),
        None,
    ),
}


def add_arguments(p) -> None:
    p.add_argument(
        "optimizers",
        nargs="+",
        metavar="OPTIMIZER[:k=v,...]",
        help="e.g. Adam:lr=0.1  torch.optim.SGD:lr=0.001,momentum=0.9  specs/my.optim:lr=0.01",
    )
    p.add_argument("--function", choices=sorted(FUNCTIONS), default="rosenbrock")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--start", type=float, nargs=2, metavar=("X", "Y"))
    p.add_argument("--out", required=True, help="a .png, or a .gif for an animation")
    p.add_argument("--frames", type=int, default=60, help="frames of a GIF")
    add_progress_arguments(p)


class PlotError(Exception):
    pass


def parse_optimizer(text: str) -> tuple[str, dict[str, Any]]:
    """`Adam:lr=0.1,betas=(0.9,0.99)` → ("Adam", {"lr": 0.1, "betas": (0.9, 0.99)})."""
    name, _, rest = text.partition(":")
    try:
        return name, literal_kwargs(rest)
    except LiteralError as e:
        if e.key is None:
            raise PlotError(f"`{e.item}` in `{text}` is not key=value") from None
        raise PlotError(
            f"`{e.item}` for {e.key} in `{text}` is not a Python literal "
            "(a number, True/False/None, a quoted string or a tuple)"
        ) from None


def resolve(name: str):
    """A class of the project's package or of `generated` by name, a class by dotted path, or a
    spec file built in memory."""

    try:
        return optimizer_class(name)
    except LookupError as exc:
        raise PlotError(str(exc)) from None


def trajectory(torch, cls, kwargs, function, start, steps):
    f = FUNCTIONS[function][0]
    xy = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = cls([xy], **kwargs)
    points, losses = [xy.detach().clone()], []

    def closure():
        opt.zero_grad()
        loss = f(torch, xy[0], xy[1])
        # (AdaHessian's step differentiates the gradients)
        backward_with_graph(loss, getattr(opt, "requires_create_graph", False))
        return loss

    # a step that re-evaluates the function (LBFGS's line search) takes the closure
    with_closure = needs_closure(opt)
    for _ in range(steps):
        with torch.enable_grad():
            losses.append(closure().detach().item())
        opt.step(closure) if with_closure else opt.step()
        points.append(xy.detach().clone())
    return torch.stack(points).numpy(), losses


def run(args) -> int:
    try:
        plt = pyplot()
    except ImportError:
        print(f"optimgen plot needs matplotlib: {PLOT_EXTRA}", file=sys.stderr)
        return 1
    import torch

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".gif"):
        print("optimgen plot: --out must end in .png or .gif", file=sys.stderr)
        return 1
    try:
        chosen = [parse_optimizer(t) for t in args.optimizers]
        classes = [(name, resolve(name), kw) for name, kw in chosen]
    except PlotError as e:
        print(f"optimgen plot: {e}", file=sys.stderr)
        return 1
    f, default_start, xr, yr, minimum = FUNCTIONS[args.function]
    start = tuple(args.start) if args.start else default_start
    progress = Progress(len(classes) + 1, progress_wanted(args))
    runs = []
    for name, cls, kw in classes:
        progress.advance(name, 0, force=True)
        try:
            path, losses = trajectory(torch, cls, kw, args.function, start, args.steps)
        except (
            TypeError,
            ValueError,
        ) as e:  # a bad hyperparameter, in the user's terms
            progress.clear()
            print(f"optimgen plot: {name}{kw}: {e}", file=sys.stderr)
            return 1
        shown = name if "." in name and not name.endswith(".optim") else cls.__name__
        label = shown + "".join(f" {k}={v}" for k, v in kw.items())
        runs.append((label, path, losses))
        progress.advance(name)
    fig, (ax, lx) = plt.subplots(
        1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 2]}
    )
    gx = torch.linspace(*xr, 300, dtype=torch.float64)
    gy = torch.linspace(*yr, 300, dtype=torch.float64)
    X, Y = torch.meshgrid(gx, gy, indexing="xy")
    Z = f(torch, X, Y)
    levels = torch.quantile(
        Z.flatten(), torch.linspace(0, 0.95, 30, dtype=torch.float64)
    )
    ax.contourf(
        X.numpy(),
        Y.numpy(),
        Z.numpy(),
        levels=levels.unique().numpy(),
        cmap="viridis",
        alpha=0.8,
    )
    if minimum is not None:
        ax.plot(
            *minimum, marker="*", color="white", markersize=14, markeredgecolor="black"
        )
    ax.set(
        xlim=xr,
        ylim=yr,
        xlabel="x",
        ylabel="y",
        title=f"{args.function}, {args.steps} steps",
    )
    lx.set(xlabel="step", ylabel="loss", yscale="log", title="loss")
    lines, dots, curves = [], [], []
    for label, path, losses in runs:
        (line,) = ax.plot(path[:, 0], path[:, 1], lw=1.5, label=label)
        (dot,) = ax.plot(path[-1:, 0], path[-1:, 1], "o", color=line.get_color())
        (curve,) = lx.plot(
            range(1, len(losses) + 1), losses, color=line.get_color(), label=label
        )
        lines.append(line), dots.append(dot), curves.append(curve)
    ax.plot(*start, "x", color="red", markersize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        fig.savefig(out, dpi=100)
    else:
        from matplotlib.animation import FuncAnimation, PillowWriter

        frames = max(2, min(args.frames, args.steps + 1))

        def draw(k):
            n = 1 + round(k * args.steps / (frames - 1))
            for (label, path, losses), line, dot, curve in zip(
                runs, lines, dots, curves
            ):
                line.set_data(path[:n, 0], path[:n, 1])
                dot.set_data(path[n - 1 : n, 0], path[n - 1 : n, 1])
                curve.set_data(range(1, n), losses[: n - 1])
            return lines + dots + curves

        FuncAnimation(fig, draw, frames=frames, blit=True).save(
            out, writer=PillowWriter(fps=15)
        )
    plt.close(fig)
    progress.advance("written")
    progress.clear()
    print(f"wrote {out}")
    for label, path, losses in runs:
        print(
            f"  {label}: loss {losses[0]:.4g} -> {losses[-1]:.4g}, ends at ({path[-1, 0]:.4g}, {path[-1, 1]:.4g})"
        )
    return 0
