"""Helpers the `optimgen` commands share, each written once: reading their options (comma lists
of known names, ``k=v`` lists of Python literals), loading what they run lazily (torch and the
`generated` package, matplotlib's pyplot), whether to show a progress line, measuring a step
(waiting for the device, pausing the garbage collector, medians and spreads of step times, the
bytes of an optimizer's state), and writing their results (plain-text tables, JSON reports).
Nothing here imports torch, the `generated` package or matplotlib at import: the CLI starts
without them.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import importlib
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

from generator import project as P
from generator.api import load_spec

# ---- options --------------------------------------------------------------------------------------


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` → ["a", "b", "c"]."""
    return [item.strip() for item in text.split(",") if item.strip()]


def choices(value: str, valid: Sequence[str], what: str) -> list[str]:
    """The names of a comma list, each one of ``valid`` (spelt in any case; each once, in
    order); ValueError names one that is not, or says that none was given."""
    by_lower = {v.lower(): v for v in valid}
    out = []
    for item in comma_list(value):
        if item.lower() not in by_lower:
            raise ValueError(
                f"unknown {what} {item!r} (choose from {', '.join(valid)})"
            )
        if by_lower[item.lower()] not in out:
            out.append(by_lower[item.lower()])
    if not out:
        raise ValueError(f"no {what} given")
    return out


def split_top_level(text: str) -> list[str]:
    """Split at the commas outside parentheses, brackets and braces; blank parts dropped."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p for p in parts + [cur] if p.strip()]


class LiteralError(ValueError):
    """An entry of a ``k=v`` list that is not NAME=VALUE (``key`` None), or whose value is
    not a Python literal (``key`` its name); each command words it in its own terms."""

    def __init__(self, item: str, key: str | None = None):
        super().__init__(item if key is None else f"{key}={item}")
        self.item, self.key = item, key


def literal_kwargs(text: str) -> dict[str, Any]:
    """``'k=3,lr=0.1,betas=(0.8, 0.9)'`` → {"k": 3, "lr": 0.1, "betas": (0.8, 0.9)}; values are
    Python literals (read with ast.literal_eval, never evaluated). LiteralError otherwise.
    """
    out: dict[str, Any] = {}
    for item in split_top_level(text):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise LiteralError(item.strip())
        try:
            out[name] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise LiteralError(value.strip(), name) from None
    return out


def progress_wanted(args) -> bool:
    """``--progress``/``--no-progress``, or by default whether stderr is a terminal."""
    return args.progress if args.progress is not None else sys.stderr.isatty()


# ---- what the commands load lazily ----------------------------------------------------------------


def import_torch_and_generated(command: str):
    """(torch, the `generated` package), or None after saying on stderr why not."""
    try:
        import torch
    except ImportError as exc:
        print(f"optimgen {command}: needs torch ({exc})", file=sys.stderr)
        return None
    try:
        import generated
    except ImportError as exc:
        print(
            f"optimgen {command}: cannot import the generated package ({exc}); "
            "run `optimgen build` first",
            file=sys.stderr,
        )
        return None
    return torch, generated


#: how to get matplotlib, for the commands that draw
PLOT_EXTRA = "pip install 'optimgen[plot]' (or pip install matplotlib)"


def pyplot():
    """matplotlib.pyplot on the Agg backend (files, no window); ImportError without matplotlib
    (say :data:`PLOT_EXTRA`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---- measuring a step -------------------------------------------------------------------------


def synchronizer(torch: Any, device: Any) -> Callable[[], None]:
    """Wait for queued device work (a no-op on CPU)."""
    if device.type == "cpu":
        return lambda: None
    backend = getattr(torch, device.type, None)
    sync = getattr(backend, "synchronize", None)
    if sync is None:
        return lambda: None
    if device.type == "cuda":
        return lambda: sync(device)
    return sync


@contextlib.contextmanager
def gc_paused():
    """No cyclic garbage collection inside (a full collection costs ~0.1 s once torch._dynamo
    is imported, noise in a timed loop); tensors are still freed by reference counting.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def backward_with_graph(loss: Any, create_graph: bool) -> None:
    """``loss.backward()``, keeping the gradients' graph where the optimizer differentiates
    them (``requires_create_graph``: AdaHessian); torch's note on the reference cycle that
    makes is not shown, since each step sets the gradients to None first."""
    if not create_graph:
        loss.backward()
        return
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Using backward\(\) with create_graph=True"
        )
        loss.backward(create_graph=True)


def timed(step: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> float:
    """Seconds ``step()`` takes, the device's queued work waited for before and after."""
    sync()
    t0 = time.perf_counter()
    step()
    sync()
    return time.perf_counter() - t0


def median_ms(samples: Sequence[float]) -> float:
    """The median of step times in seconds, in milliseconds (NaN without any)."""
    return statistics.median(samples) * 1e3 if samples else math.nan


def spread_pct(samples: Sequence[float]) -> float:
    """Interquartile range relative to the median, in percent (a noise indicator)."""
    if len(samples) < 4:
        return math.nan
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(samples) * 100


def state_bytes(optimizer: Any) -> int:
    """Bytes of every tensor in `optimizer.state` (steps and all)."""
    import torch

    total = 0
    for per_param in optimizer.state.values():
        for value in per_param.values():
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
    return total


# ---- writing results --------------------------------------------------------------------------


def table(
    headers: Sequence[Any], rows: Sequence[Sequence[Any]], right: Collection[int] = ()
) -> str:
    """A plain-text table: cells joined by " | ", a rule under the headers; the columns whose
    index is in ``right`` right-aligned (numbers), the others left-aligned; no trailing blanks.
    """
    lines = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [len(h) for h in lines[0]]
    for row in lines[1:]:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def fmt(row: Sequence[str]) -> str:
        return " | ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip()

    return "\n".join(
        [fmt(lines[0]), "-+-".join("-" * w for w in widths)]
        + [fmt(r) for r in lines[1:]]
    )


def write_json(path: str, payload: Any, command: str) -> bool:
    """``payload`` as indented JSON (what JSON has no form for, as its str); False after
    saying on stderr why it could not be written."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, default=str)
            fh.write("\n")
    except OSError as exc:
        print(f"optimgen {command}: cannot write {path}: {exc}", file=sys.stderr)
        return False
    return True


def optimizer_class(name: str):
    """An optimizer class by the name a user gives a command: a spec file (compiled in memory),
    a dotted path (``torch.optim.SGD``), or a class name (case-insensitive) of the project's
    package, else of optimgen's ``generated``. Raises LookupError saying what was tried.
    """
    if name.endswith(P.SPEC_SUFFIX):
        if not Path(name).is_file():
            raise LookupError(f"no spec file {name}")
        return load_spec(Path(name))
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr, None)
        except ImportError as exc:
            raise LookupError(f"cannot import `{module}`: {exc}") from None
        if not isinstance(cls, type):
            raise LookupError(f"`{module}` has no class `{attr}`")
        return cls
    packages = []
    here = P.find()
    if here is not None and (here.out / "__init__.py").is_file():
        if str(here.root) not in sys.path:
            sys.path.insert(0, str(here.root))
        packages.append(here.package)
    packages.append("generated")
    for package in packages:
        try:
            module = importlib.import_module(package)
        except ImportError as exc:
            raise LookupError(f"cannot import `{package}`: {exc}") from None
        for attr in getattr(module, "__all__", dir(module)):
            cls = getattr(module, attr, None)
            if attr.lower() == name.lower() and isinstance(cls, type):
                return cls
    raise LookupError(
        f"no optimizer class `{name}` in {' or '.join(packages)} (a class name, a "
        "dotted path such as torch.optim.SGD, or a spec file)"
    )
