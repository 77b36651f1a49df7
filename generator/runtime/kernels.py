"""Runtime of the generated modules around torch.compile: a compiled kernel that never fails a
step, GradScaler's protocol for fused steps, and the hyperparameters of a traced step.

Generated modules import this (with generator.runtime.precision) as torch's optimizers import
torch/optim/optimizer.py; the generator itself never does. A fused kernel is plain torch code
compiled by ``torch.compile``. Two things outside the optimizer's control can stop that compilation
while the arithmetic itself is fine: dynamo's recompile limit, which counts the configurations
(decisions, dtypes, devices, ranks) of one kernel across the whole process, and with
``fullgraph=True`` raises instead of falling back; and a compiler bug in inductor for one
configuration (torch 2.13's CPU codegen fails on an in-place update of a state fed by a
reduction along a dimension, ``m += g - mean(g, 1)`` then ``param += m``). In both cases the step
runs the same kernel uncompiled, for that configuration from then on, and says so once with a
warning: slower, never wrong, never an exception out of ``step()``.

A class with a fused path says ``_step_supports_amp_scaling`` when built with ``fused=True``, as
torch's fused optimizers do: ``torch.amp.GradScaler`` then leaves the unscaling and the skipping
to the step, giving it ``grad_scale`` and ``found_inf``. ``amp_skips_step`` keeps torch's
contract: the gradients are divided by the scale in place, and a step whose scaled gradients held
an inf or NaN changes nothing (torch's kernels test the flag on the device; here it is read once
per step on the host, as GradScaler itself does for optimizers without the protocol).

A kernel's inputs: its tensors flattened (``_flat``: one compiled kernel serves every shape), its
numbers as 0-d float64 tensors (``_number_tensor``: inputs, not constants compiled in), and on an
accelerator the numbers a scheduler changes as device tensors made once per value
(``_device_number``).

Under an enclosing ``torch.compile`` (a compiled ``opt.step()``), ``graph_constants`` makes the
float hyperparameters constants of the graph: torch 2.13's dynamo traces a float read from a param
group as a symbolic float once it has changed, and then kept a stale value of one used by two
operations (``param.mul_(1 - lr * wd)`` then ``param.add_(u, alpha=-lr)``) without a word.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import warnings

import torch

__all__ = [
    "CompiledKernel",
    "KernelCalls",
    "amp_skips_step",
    "eager_kernels",
    "graph_constants",
]
# (and, for the generated modules as torch.optim.optimizer's helpers are for torch's: the kernel
# inputs _flat, _shaped, _number_tensor and _device_number)

# With OPTIMGEN_EAGER_KERNELS=1 (or inside `eager_kernels()`) every kernel runs uncompiled: the
# same arithmetic, executed as Python, for line coverage and mutation runs of the fused paths'
# code and for quick checks (the fast slice of `optimgen fuzz`).
EAGER = os.environ.get("OPTIMGEN_EAGER_KERNELS") == "1"


@contextlib.contextmanager
def eager_kernels():
    global EAGER
    before, EAGER = EAGER, True
    try:
        yield
    finally:
        EAGER = before


def _compile_failures() -> tuple[type[BaseException], ...]:
    found = []
    for module, name in (
        (torch._dynamo.exc, "FailOnRecompileLimitHit"),
        (torch._dynamo.exc, "BackendCompilerFailed"),
        (getattr(torch._inductor, "exc", None), "InductorError"),
    ):
        cls = getattr(module, name, None) if module is not None else None
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def _configuration(args, kwargs) -> tuple:
    """What decides a compilation: the decisions and the tensors' dtype, device and rank."""
    key = []
    for a in (*args, *sorted(kwargs.items())):
        if isinstance(a, tuple):  # a keyword argument: its name, then its value
            key.append(a[0])
            a = a[1]
        if isinstance(a, list):  # the multi-tensor path's lists
            a = a[0] if a else None
        if isinstance(a, torch.Tensor):
            key.append((a.dtype, a.device, a.dim()))
        elif a is None or isinstance(a, (bool, int, str)):
            key.append(a)
        else:
            key.append(type(a))
    return tuple(key)


# dynamo's settings while a kernel runs (and may compile): one compiled kernel per
# configuration (its decisions), dtype and device, more than dynamo's default of 8 per function
# for an optimizer with several flags; floats compiled in as constants: with dynamic floats,
# torch 2.13 reused a graph with a stale `1 - lr * weight_decay` when lr also entered tensor
# arithmetic (`lr / bias_correction1`)
DYNAMO_CONFIG = {"recompile_limit": 64, "specialize_float": True}


class CompiledKernel:
    """``torch.compile(fn, **options)``, made at the first call, that runs ``fn`` itself for a
    configuration the compiler refuses (see the module's docstring), under dynamo's settings
    ``dynamo_config``."""

    def __init__(self, fn, *, dynamo_config=DYNAMO_CONFIG, **options):
        self.fn = fn
        self.options = options
        self.dynamo_config = dict(dynamo_config)
        self.compiled = None
        self.eager: set[tuple] = set()  # configurations run uncompiled

    def __call__(self, *args, **kwargs):
        with self.configured():
            return self.call(*args, **kwargs)

    def configured(self):
        """dynamo's settings for running (and compiling) this kernel: entered once per step
        (7-20 µs), not once per parameter (a compiled call takes 30-70 µs)."""
        return torch._dynamo.config.patch(**self.dynamo_config)

    def batch(self) -> "KernelCalls":
        """A step's calls, run together after its host loop (``KernelCalls``)."""
        return KernelCalls(self)

    def call(self, *args, **kwargs):
        """One call, in settings entered by the caller (``configured``)."""
        # (the configuration is computed only once something has failed: the common case
        # pays for one attribute test)
        if EAGER or (self.eager and _configuration(args, kwargs) in self.eager):
            return self.fn(*args, **kwargs)
        if self.compiled is None:
            self.compiled = torch.compile(self.fn, **self.options)
        try:
            return self.compiled(*args, **kwargs)
        except _compile_failures() as exc:
            # raised while compiling, before the kernel ran: the tensors are untouched
            self.eager.add(_configuration(args, kwargs))
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            warnings.warn(
                f"{self.fn.__name__}: torch.compile failed for this configuration "
                f"({type(exc).__name__}: {reason[:200]}); the fused step runs the same "
                "kernel uncompiled for it",
                RuntimeWarning,
                stacklevel=2,
            )
            return self.fn(*args, **kwargs)


class KernelCalls:
    """The calls of a compiled kernel in one step's host loop (a parameter each), run after the
    loop under dynamo's settings entered once. The parameters' updates are independent, so
    running them after the loop is running them in it (as the native kernel's batch does).
    """

    __slots__ = ("kernel", "calls")

    def __init__(self, kernel: CompiledKernel):
        self.kernel = kernel
        self.calls: list[tuple] = []

    def add(self, *args) -> None:
        self.calls.append(args)

    def run(self) -> None:
        if not self.calls:
            return
        calls, self.calls = self.calls, []
        with self.kernel.configured():
            for args in calls:
                self.kernel.call(*args)


def amp_skips_step(optimizer) -> bool:
    """GradScaler's fused-step protocol: True when the step must change nothing (an inf or
    NaN among the scaled gradients); else the gradients are unscaled in place first."""
    found_inf = getattr(optimizer, "found_inf", None)
    grad_scale = getattr(optimizer, "grad_scale", None)
    if found_inf is not None and bool(found_inf.item()):
        return True
    if grad_scale is not None:
        by_device: dict[torch.device, list] = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    by_device.setdefault(p.grad.device, []).append(p.grad)
        for device, grads in by_device.items():
            torch._foreach_div_(grads, grad_scale.to(device))
    return False


def drop_transient(optimizer, keys: tuple[str, ...]) -> None:
    """The end of a step that carried values from one of its blocks to a later one (states
    declared ``, transient``: SAM's old_p and gradient norm): they leave the state, so that
    none is kept between steps or saved in a state_dict, as SAM's own step pops them."""
    for key in keys:  # (an optimizer's total)
        optimizer.state.pop(key, None)
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state:
                for key in keys:
                    state.pop(key, None)


def graph_constants(*values):
    """The hyperparameters, the Python floats among them as constants of the graph being
    traced (guarded by value: a new value recompiles). Called only under torch.compile.

    ``math.ldexp(x, 0)`` is ``x`` exactly; dynamo cannot trace it on a symbolic float, so it
    specializes the float, as ``torch._dynamo.config.specialize_float`` would. A tuple of
    numbers (``betas: tuple of float``) has its floats specialized alike."""
    return tuple(
        (
            math.ldexp(v, 0)
            if isinstance(v, float)
            else graph_constants(*v) if isinstance(v, tuple) else v
        )
        for v in values
    )


def _flat(t):
    """The kernel is elementwise: a contiguous tensor goes in as a 1-D tensor over the same
    memory, so that one compiled kernel serves every shape. Not as a view: dynamo guards a
    view's base, and would compile once per rank of the bases. A DTensor (FSDP2's shard of
    a parameter, its gradient and states) goes in as its local tensor: elementwise, the
    update of each shard is the shard of the update."""
    to_local = getattr(t, "to_local", None)  # (torch.distributed.tensor.DTensor only)
    if to_local is not None:
        t = to_local()
    if t is None or not t.is_contiguous():
        return t
    return t.new_empty(0).set_(
        t.untyped_storage(), t.storage_offset(), (t.numel(),), (1,)
    )


def _shaped(t):
    """A kernel that keeps its tensors' shapes (a reduction along a dimension, a matrix
    product) takes each as it is, except a 0-d one: that goes in as one element of one
    dimension over the same memory. Among 0-d tensors only, the kernel's numbers (0-d float64
    tensors) would carry a float32 update's arithmetic to float64, and `lerp` would refuse
    them; beside a tensor of one dimension they compute in its dtype, as Python numbers do.
    """
    if t is None or t.dim() != 0:
        return t
    return _flat(t)


def _number_tensor(x):
    """A number as a 0-d float64 tensor: a kernel input, not a constant compiled into it (and,
    0-d, it computes in the dtype of the tensors it meets, as a Python number does), made once
    per value (kernels only read their numbers). An optional input left at None stays None:
    the kernel reads it only where it is set."""
    if x is None or isinstance(x, torch.Tensor):
        return x
    return _scalar(x, _negative_zero(x), None)


def _negative_zero(x) -> bool:
    # (0.0 == -0.0: a cache keyed by the value alone would give -0.0 the sign of 0.0)
    return x == 0 and math.copysign(1.0, x) < 0


@functools.lru_cache(maxsize=256)
def _scalar(x, negative_zero: bool, device: torch.device | None) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, device=device)


def _device_number(x, device):
    """A number as a 0-d float64 tensor on ``device``, made once per value (no copy from the
    host at every step); a tensor stays as it is."""
    if isinstance(x, torch.Tensor):
        return x
    x = float(x)
    return _scalar(x, _negative_zero(x), device)
