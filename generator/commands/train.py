"""`optimgen train`: a small, real training run that compares the precision policies of the
generated optimizers. It trains one MLP (64 -> 256 -> 256 -> 10, GELU) on scikit-learn's bundled
digits data set (1797 8x8 images, 10 classes, standardised features, a fixed seeded 1437/360
split) with mini-batches, once per policy -- float32, plain bfloat16 parameters (torch's
behaviour: state and arithmetic in bf16), bf16 parameters with Kahan-compensated or stochastic
rounding of the update, and float32 parameters with bf16 optimizer state -- from the same
initial weights and the same batch order, and reports per policy the final train loss, the test
loss and accuracy, the bytes the optimizer state takes, and the median time of
`optimizer.step()`; optionally a PNG of the train-loss curves (matplotlib) and a JSON file of all
the numbers. torch, scikit-learn and the `generated` package are imported lazily inside the
functions so the generator starts fast; scikit-learn is an optional extra.
"""

from __future__ import annotations

import argparse
import importlib
import math
import platform
import sys
import time
from typing import Any, Sequence

from generator.commands.common import (
    backward_with_graph,
    PLOT_EXTRA,
    choices,
    median_ms,
    progress_wanted,
    pyplot,
    state_bytes,
    table as text_table,
    timed,
    write_json,
)
from generator.commands.progress import Progress, add_progress_arguments
from generator.commands.common import optimizer_class
from generator.verify.harness import accepts_kwarg

# name -> (parameter dtype, optimizer options); dtypes by name so torch stays unimported
POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "float32": ("float32", {}),
    "bf16": ("bfloat16", {}),
    "bf16-kahan": ("bfloat16", {"param_rounding": "kahan"}),
    "bf16-stochastic": (
        "bfloat16",
        {"param_rounding": "stochastic", "rounding_seed": 0},
    ),
    "bf16-state": ("float32", {"state_dtype": "bfloat16"}),
}
POLICY_HELP = {
    "float32": "float32 parameters, default optimizer options",
    "bf16": "bfloat16 parameters, default options (state and arithmetic in bf16)",
    "bf16-kahan": 'bf16 parameters, param_rounding="kahan"',
    "bf16-stochastic": 'bf16 parameters, param_rounding="stochastic", rounding_seed=0',
    "bf16-state": "float32 parameters, state_dtype=torch.bfloat16",
}

DEFAULT_OPTIMIZER = "AdamW"
DEFAULT_LR = 1e-4
DEFAULT_EPOCHS = 40
DEFAULT_BATCH = 64
HIDDEN = 256
TEST_SIZE = 360

JSON_FIELDS = (
    "policy",
    "param_dtype",
    "options",
    "train_loss",
    "test_loss",
    "test_accuracy",
    "final_train_loss",
    "final_test_loss",
    "final_test_accuracy",
    "state_bytes",
    "state_bytes_per_param",
    "step_ms",
    "step_median_ms",
    "step_ratio_vs_float32",
)


class TrainError(Exception):
    """A problem reported as one line (a missing extra, an unknown optimizer)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of `optimgen train`."""
    parser.add_argument(
        "--policies",
        default=",".join(POLICIES),
        metavar="LIST",
        help="comma-separated precision policies (default: all): "
        + "; ".join(f"{k}: {v}" for k, v in POLICY_HELP.items()),
    )
    parser.add_argument(
        "--optimizer",
        default=DEFAULT_OPTIMIZER,
        metavar="NAME",
        help=f"an optimizer: a class of your project's package or of optimgen's (default "
        f"{DEFAULT_OPTIMIZER}; e.g. Adam, Lion, MyAdam), a dotted path or a spec file",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=DEFAULT_LR,
        help=f"learning rate (default {DEFAULT_LR:g}: small enough that many AdamW "
        "updates fall below bf16's resolution, so plain bf16 stalls; try 1e-3 too)",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="weight decay (default: the optimizer's own default)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=DEFAULT_EPOCHS,
        help=f"passes over the training set (default {DEFAULT_EPOCHS})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help=f"mini-batch size (default {DEFAULT_BATCH}; 0: full batch)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the split, the initial weights and the batch order",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: the model is tiny, and one thread keeps the step "
        "times steady on a busy machine; 0: torch's default)",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help="write the train-loss curves (log scale), one line per policy "
        "(needs matplotlib: pip install 'optimgen[plot]')",
    )
    parser.add_argument(
        "--json", metavar="FILE", default=None, help="also write all numbers to FILE"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print only the table (no header, no notes, no progress line)",
    )
    add_progress_arguments(parser)


# --------------------------------------------------------------------------- helpers


def _split_policies(value: str) -> list[str]:
    try:
        return choices(value, tuple(POLICIES), "policy")
    except ValueError as exc:
        raise TrainError(str(exc)) from None


def load_digits_split(seed: int = 0) -> dict[str, Any]:
    """The digits data as float32 tensors: a seeded, stratified 1437/360 split, features
    standardised with the training set's mean and standard deviation."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise TrainError(
            "needs scikit-learn (for its bundled digits data set): "
            "pip install 'optimgen[train]' (or pip install scikit-learn)"
            f" [{exc}]"
        ) from None
    import numpy as np
    import torch

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data,
        digits.target,
        test_size=TEST_SIZE,
        random_state=seed,
        stratify=digits.target,
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0  # the always-blank corner pixels

    def features(x: Any) -> Any:
        return torch.from_numpy(((x - mean) / std).astype(np.float32))

    def labels(y: Any) -> Any:
        return torch.from_numpy(y.astype(np.int64))

    return {
        "x_train": features(x_train),
        "y_train": labels(y_train),
        "x_test": features(x_test),
        "y_test": labels(y_test),
    }


def make_model(torch: Any, seed: int) -> Any:
    """The MLP 64 -> 256 -> 256 -> 10 (GELU), float32, initialised from `seed`."""
    nn = torch.nn
    init = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(64, HIDDEN),
        nn.GELU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.GELU(),
        nn.Linear(HIDDEN, 10),
    )
    with torch.no_grad():  # torch's default init (kaiming-uniform), from our generator
        for layer in model:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=init)
                layer.bias.uniform_(-bound, bound, generator=init)
    return model


def resolve_optimizer(name: str) -> Any:
    """An optimizer class by name: of the project's package or of `generated` (case-insensitive),
    a dotted path, or a spec file."""

    try:
        return optimizer_class(name)
    except LookupError as exc:
        raise TrainError(str(exc)) from None


def unsupported_options(cls: Any, options: dict[str, Any]) -> list[str]:
    """The policy options the optimizer's constructor does not take."""
    return [k for k in options if not accepts_kwarg(cls, k)]


def _evaluate(torch: Any, model: Any, x: Any, y: Any) -> tuple[float, float]:
    with torch.no_grad():
        logits = model(x).float()
        loss = torch.nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return loss, accuracy


def train_policy(
    policy: str,
    data: dict[str, Any],
    optimizer_cls: Any,
    optimizer_kwargs: dict[str, Any],
    epochs: int,
    batch_size: int,
    seed: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train a fresh model under one policy; the per-epoch losses, the final metrics, the
    optimizer state's bytes and the step times."""
    import torch

    param_dtype_name, options = POLICIES[policy]
    param_dtype = getattr(torch, param_dtype_name)
    kwargs = dict(optimizer_kwargs)
    for key, value in options.items():
        kwargs[key] = getattr(torch, value) if key == "state_dtype" else value

    model = make_model(torch, seed).to(param_dtype)
    x_train = data["x_train"].to(param_dtype)
    x_test = data["x_test"].to(param_dtype)
    y_train, y_test = data["y_train"], data["y_test"]
    n = x_train.shape[0]
    batch = n if batch_size <= 0 else min(batch_size, n)
    optimizer = optimizer_cls(model.parameters(), **kwargs)
    order = torch.Generator().manual_seed(seed + 1)  # the same batches for every policy

    train_loss, test_loss, test_acc, step_s = [], [], [], []
    loss0, _ = _evaluate(torch, model, x_train, y_train)
    tl0, ta0 = _evaluate(torch, model, x_test, y_test)
    train_loss.append(loss0)
    test_loss.append(tl0)
    test_acc.append(ta0)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=order)
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            logits = model(x_train[idx]).float()
            loss = torch.nn.functional.cross_entropy(logits, y_train[idx])
            # (AdaHessian's step differentiates the gradients)
            backward_with_graph(
                loss, getattr(optimizer, "requires_create_graph", False)
            )
            step_s.append(timed(optimizer.step))
            if progress is not None:
                progress.advance(f"{policy} epoch {epoch + 1}/{epochs}")
        model.eval()
        loss_e, _ = _evaluate(torch, model, x_train, y_train)
        tl, ta = _evaluate(torch, model, x_test, y_test)
        train_loss.append(loss_e)
        test_loss.append(tl)
        test_acc.append(ta)

    numel = sum(p.numel() for p in model.parameters())
    sbytes = state_bytes(optimizer)
    by_key: dict[str, int] = {}
    for per_param in optimizer.state.values():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                size = value.numel() * value.element_size()
                by_key[str(key)] = by_key.get(str(key), 0) + size
    return {
        "policy": policy,
        "param_dtype": param_dtype_name,
        "options": {k: str(v) for k, v in options.items()},
        "train_loss": train_loss,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "final_train_loss": train_loss[-1],
        "final_test_loss": test_loss[-1],
        "final_test_accuracy": test_acc[-1],
        "numel": numel,
        "state_bytes": sbytes,
        "state_bytes_per_param": sbytes / numel,
        "state_bytes_by_key": by_key,
        "state_dtypes": {
            str(key): str(value.dtype)
            for per_param in optimizer.state.values()
            for key, value in per_param.items()
            if isinstance(value, torch.Tensor)
        },
        "step_ms": [s * 1e3 for s in step_s],
        "step_median_ms": median_ms(step_s),
    }


def train_digits(
    policies: Sequence[str] = tuple(POLICIES),
    optimizer: str = DEFAULT_OPTIMIZER,
    lr: float = DEFAULT_LR,
    weight_decay: float | None = None,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH,
    seed: int = 0,
    show_progress: bool = False,
    threads: int | None = 1,
) -> dict[str, Any]:
    """The core of `optimgen train`: every policy trained from the same start; returns the
    configuration, one result per policy (an ``error`` or ``skipped`` entry where it could
    not run) and the elapsed time. Raises TrainError for a missing extra or optimizer.
    ``threads``: torch's intra-op threads for the run (restored after it); None keeps
    torch's setting. One is the default: the model is tiny, so more threads gain little,
    and on a shared machine they make the step times jump (the numbers are the same).
    """
    import torch

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train_digits(
            torch,
            policies,
            optimizer,
            lr,
            weight_decay,
            epochs,
            batch_size,
            seed,
            show_progress,
        )
    finally:
        torch.set_num_threads(previous_threads)


def _train_digits(
    torch: Any,
    policies: Sequence[str],
    optimizer: str,
    lr: float,
    weight_decay: float | None,
    epochs: int,
    batch_size: int,
    seed: int,
    show_progress: bool,
) -> dict[str, Any]:

    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise TrainError(f"unknown policy {unknown[0]!r}")
    cls = resolve_optimizer(optimizer)
    data = load_digits_split(seed)
    kwargs: dict[str, Any] = {"lr": lr}
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    n_train = data["x_train"].shape[0]
    batch = n_train if batch_size <= 0 else min(batch_size, n_train)
    steps_per_epoch = math.ceil(n_train / batch)
    progress = Progress(len(policies) * epochs * steps_per_epoch, show_progress)
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for policy in policies:
            missing = unsupported_options(cls, POLICIES[policy][1])
            if missing:
                results.append(
                    {
                        "policy": policy,
                        "skipped": f"{cls.__name__} takes no {', '.join(missing)}",
                    }
                )
                progress.advance(policy, epochs * steps_per_epoch)
                continue
            try:
                # anything drawing from torch's global RNG draws the same numbers each run
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    t0 = time.perf_counter()
                    res = train_policy(
                        policy, data, cls, kwargs, epochs, batch_size, seed, progress
                    )
                    res["elapsed_s"] = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - reported, the rest still runs
                res = {"policy": policy, "error": f"{type(exc).__name__}: {exc}"}
            results.append(res)
    finally:
        progress.clear()
    base = next(
        (r for r in results if r["policy"] == "float32" and "step_median_ms" in r),
        None,
    )
    for r in results:
        if "step_median_ms" in r:
            r["step_ratio_vs_float32"] = (
                r["step_median_ms"] / base["step_median_ms"] if base else None
            )
    return {
        "config": {
            "data": "sklearn digits",
            "n_train": n_train,
            "n_test": data["x_test"].shape[0],
            "model": f"MLP 64-{HIDDEN}-{HIDDEN}-10 GELU",
            "numel": sum(p.numel() for p in make_model(torch, seed).parameters()),
            "optimizer": cls.__name__,
            "optimizer_kwargs": kwargs,
            "policies": list(policies),
            "epochs": epochs,
            "batch_size": batch,
            "steps_per_epoch": steps_per_epoch,
            "seed": seed,
        },
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
        },
        "results": results,
        "elapsed_s": time.perf_counter() - started,
    }


HEADERS = (
    "policy",
    "final train loss",
    "test loss",
    "test acc %",
    "state bytes",
    "bytes/param",
    "step ms (median)",
    "step vs float32",
)


def table(report: dict[str, Any]) -> str:
    """The results as a text table, one row per policy."""
    rows = []
    for r in report["results"]:
        if "skipped" in r or "error" in r:
            word = "skipped" if "skipped" in r else "ERROR"
            rows.append([r["policy"], word] + [""] * (len(HEADERS) - 2))
            continue
        ratio = r.get("step_ratio_vs_float32")
        rows.append(
            [
                r["policy"],
                f"{r['final_train_loss']:.4g}",
                f"{r['final_test_loss']:.4g}",
                f"{100 * r['final_test_accuracy']:.1f}",
                f"{r['state_bytes']:,}",
                f"{r['state_bytes_per_param']:.2f}",
                f"{r['step_median_ms']:.3f}",
                "-" if ratio is None else f"{ratio:.2f}",
            ]
        )
    return text_table(HEADERS, rows, right=range(1, len(HEADERS)))


def plot(report: dict[str, Any], path: str) -> None:
    """A PNG of the train loss per epoch, log scale, one line per policy."""
    try:
        plt = pyplot()
        import matplotlib.ticker
    except ImportError:
        raise TrainError(f"--plot needs matplotlib: {PLOT_EXTRA}") from None
    cfg = report["config"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    # lines that coincide (the policies that track float32) stay visible: the first drawn
    # is the widest, the later ones narrower and dashed
    styles = ["-", "--", "-.", ":", (0, (5, 2, 1, 2))]
    curves = [r for r in report["results"] if "train_loss" in r]
    for k, r in enumerate(curves):
        ax.plot(
            range(len(r["train_loss"])),
            r["train_loss"],
            label=r["policy"],
            linestyle=styles[k % len(styles)],
            linewidth=max(1.0, 3.0 - 0.5 * k),
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("train loss (cross-entropy, full training set)")
    kw = ", ".join(f"{k}={v:g}" for k, v in cfg["optimizer_kwargs"].items())
    ax.set_title(
        f"{cfg['optimizer']} ({kw}) on scikit-learn digits\n"
        f"{cfg['model']}, batch {cfg['batch_size']}, seed {cfg['seed']}",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- entry


def run(args: argparse.Namespace) -> int:
    """Train under every policy and print the table; 0 on success, 1 if a policy failed
    or an extra is missing, 2 on bad options, 130 when interrupted."""
    quiet = getattr(args, "quiet", False)
    try:
        policies = _split_policies(args.policies)
    except TrainError as exc:
        print(f"optimgen train: {exc}", file=sys.stderr)
        return 2
    if args.epochs < 1 or args.batch_size < 0 or args.threads < 0 or not args.lr > 0:
        print(
            "optimgen train: need --epochs >= 1, --batch-size >= 0, --threads >= 0 "
            "and --lr > 0",
            file=sys.stderr,
        )
        return 2
    if args.plot:  # before minutes of training, not after
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            print(
                f"optimgen train: --plot needs matplotlib: {PLOT_EXTRA}",
                file=sys.stderr,
            )
            return 1
    show_progress = False if quiet else progress_wanted(args)
    try:
        report = train_digits(
            policies,
            optimizer=args.optimizer,
            lr=args.lr,
            weight_decay=args.weight_decay,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            show_progress=show_progress,
            threads=args.threads or None,
        )
    except TrainError as exc:
        print(f"optimgen train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    cfg = report["config"]
    if not quiet:
        kw = ", ".join(f"{k}={v:g}" for k, v in cfg["optimizer_kwargs"].items())
        print(
            f"optimgen train: {cfg['model']} on scikit-learn digits "
            f"({cfg['n_train']} train / {cfg['n_test']} test), {cfg['optimizer']}({kw}), "
            f"{cfg['epochs']} epochs x {cfg['steps_per_epoch']} steps of batch "
            f"{cfg['batch_size']}, seed {cfg['seed']}"
        )
        threads = report["environment"]["threads"]
        print(
            f"torch {report['environment']['torch']}, "
            f"{threads} thread{'s' if threads != 1 else ''}"
        )
        print()
    print(table(report))
    if not quiet:
        print()
        print(
            "losses: cross-entropy in float32 over the whole train / test set after the "
            "last epoch;\nstate bytes: every tensor in optimizer.state; bytes/param: "
            f"over the model's {cfg['numel']:,} parameters;\n"
            "step ms: median time of optimizer.step() alone; step vs float32: its ratio "
            "to the float32 policy's"
        )
        print(f"train took {report['elapsed_s']:.1f} s")
    sys.stdout.flush()
    errors = [r for r in report["results"] if "error" in r]
    for r in report["results"]:
        if "skipped" in r:
            print(f"skipped {r['policy']}: {r['skipped']}", file=sys.stderr)
    for r in errors:
        print(f"error: {r['policy']}: {r['error']}", file=sys.stderr)
    status = 1 if errors else 0
    if args.plot:
        try:
            plot(report, args.plot)
        except TrainError as exc:
            print(f"optimgen train: {exc}", file=sys.stderr)
            status = 1
        except OSError as exc:
            print(f"optimgen train: cannot write {args.plot}: {exc}", file=sys.stderr)
            status = 1
        else:
            if not quiet:
                print(f"wrote {args.plot}")
    if args.json and not write_json(args.json, report, "train"):
        status = 1
    return status
