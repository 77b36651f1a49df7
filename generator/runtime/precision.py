"""The precision policy of every generated optimizer, at run time.

Generated modules import this one module (as torch's optimizers import torch/optim/optimizer.py);
the generator itself never does. A policy is four constructor options, kept in each param group
only when they differ from torch's behaviour (so a default optimizer's state_dict is torch's):

- ``state_dtype``: the storage dtype of the tensor states (one dtype for all, or one per
  state_dict key); a spec's ``stored as`` declarations are its defaults;
- ``compute_dtype``: the dtype the update computes in (default float32, widened to the
  parameter's dtype: a float64 parameter is never computed in float32);
- ``param_rounding``: how the update lands on a bfloat16/float16 parameter: ``"nearest"`` (a
  plain cast), ``"stochastic"`` (unbiased stochastic rounding) or ``"kahan"`` (Kahan-compensated
  summation, the compensation kept in the state as ``kahan_comp``, in the parameter's dtype
  unless ``state_dtype`` names it: a bfloat16 parameter and a bfloat16 compensation hold about
  16 significant bits together, with a float32 one about 32);
- ``rounding_seed``: the seed of stochastic rounding's own generator (default: torch's global
  generator, so ``torch.manual_seed`` makes a run reproducible). The fused kernels on the CPU
  draw one key per parameter and step from it (``rounding_key``) and make their random bits in
  their own loop from the key and each element's index (``hashed_bits``: murmur3's 32-bit
  finalizer), the native kernel (runtime.native) and the compiled one alike, with the same bits:
  as reproducible, not the bits ``torch.randint`` gives the for-loop and foreach paths, and
  without a pass over memory to write them (torch.randint took longer than the whole step).

Under a policy the functional API receives a :class:`Precision`. Its :meth:`Precision.chunks`
hands the unchanged update (for-loop, foreach or fused) copies of the parameter, gradient and
states in the compute dtype, then stores the results back: states by a rounding copy into their
storage tensors, the parameter by the chosen rounding. The for-loop path gets one parameter at a
time, so its extra memory is one parameter's copies; the foreach and fused paths get the group.
Without a policy none of this runs: the update is torch's, bit for bit.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

ROUNDINGS = ("nearest", "stochastic", "kahan")
# the group keys of a policy, in the order of the constructor's arguments
POLICY_KEYS = ("state_dtype", "compute_dtype", "param_rounding", "rounding_seed")


def policy_defaults(
    cls_name: str,
    tensor_states: Sequence[str],
    declared: dict[str, torch.dtype],
    state_dtype,
    compute_dtype,
    param_rounding,
    rounding_seed,
) -> dict:
    """The constructor's options checked and made group entries; ``{}`` for torch's behaviour.

    ``tensor_states`` are the state_dict keys of the optimizer's tensor states (its counters are
    never cast), ``declared`` the spec's ``stored as`` dtypes.
    """
    _check_rounding(param_rounding)
    dtypes = dict(declared)
    if isinstance(state_dtype, torch.dtype):
        dtypes.update({key: state_dtype for key in (*tensor_states, "kahan_comp")})
    elif isinstance(state_dtype, dict):
        for key, dtype in state_dtype.items():
            if key not in tensor_states and key != "kahan_comp":
                known = ", ".join(repr(k) for k in (*tensor_states, "kahan_comp"))
                raise ValueError(
                    f"state_dtype: {cls_name} has no tensor state {key!r} "
                    f"(its tensor states: {known})"
                )
            dtypes[key] = dtype
    elif state_dtype is not None:
        raise TypeError(
            "state_dtype must be a torch.dtype, a dict from state names to torch.dtype, "
            f"or None, not {type(state_dtype).__name__}"
        )
    for key, dtype in dtypes.items():
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(
                f"state_dtype[{key!r}] must be a floating-point torch.dtype, not {dtype!r}"
            )
    if compute_dtype is not None and not (
        isinstance(compute_dtype, torch.dtype) and compute_dtype.is_floating_point
    ):
        raise ValueError(
            f"compute_dtype must be a floating-point torch.dtype, not {compute_dtype!r}"
        )
    if rounding_seed is not None:
        if not isinstance(rounding_seed, int) or isinstance(rounding_seed, bool):
            raise TypeError(
                f"rounding_seed must be an int or None, not {type(rounding_seed).__name__}"
            )
        if param_rounding != "stochastic":
            raise ValueError(
                "rounding_seed seeds stochastic rounding: it needs param_rounding='stochastic'"
            )
    out: dict = {}
    if dtypes:
        out["state_dtype"] = dtypes
    if compute_dtype is not None:
        out["compute_dtype"] = compute_dtype
    if param_rounding != "nearest":
        out["param_rounding"] = param_rounding
    if rounding_seed is not None:
        out["rounding_seed"] = rounding_seed
    return out


def _check_rounding(rounding) -> None:
    if rounding not in ROUNDINGS:
        raise ValueError(
            f"Invalid param_rounding: {rounding!r} "
            "(expected 'nearest', 'stochastic' or 'kahan')"
        )


def store_state_dtypes(state: dict, group: dict) -> None:
    """A parameter's new state in the dtypes the group's policy stores it in."""
    for key, dtype in (group.get("state_dtype") or {}).items():
        value = state.get(key)
        if isinstance(value, Tensor) and value.dtype != dtype:
            state[key] = value.to(dtype)


# stochastic rounding's generators, per optimizer, device and seed (not pickled with the
# optimizer: a copy starts again from the seed)
_generators: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class Precision:
    """A group's policy for one step: what the functional API's ``precision`` argument holds."""

    compute_dtype: torch.dtype
    rounding: str
    state_dtype: dict[str, torch.dtype]
    kahan_comps: list[Tensor | None] | None = None
    seed: int | None = None
    generators: dict = field(default_factory=dict)

    def dtype_for(self, param: Tensor) -> torch.dtype:
        return torch.promote_types(param.dtype, self.compute_dtype)

    def chunks(
        self, lists: list[list], keys: Sequence[str | None], per_tensor: bool
    ) -> Iterator[list[list]]:
        """The functional's lists in the compute dtype: one parameter at a time when
        ``per_tensor`` (the for-loop), else all at once. ``keys`` names each list: "param",
        "grad", a tensor state's key (of a tensor, or of a list state's list of tensors), or
        None for counters (passed as they are). After each chunk has been updated (the
        caller's loop body), its results are stored back."""
        params = lists[0]
        n = len(params)
        spans = [(i, i + 1) for i in range(n)] if per_tensor else [(0, n)]
        for lo, hi in spans:
            work = []
            for lst, key in zip(lists, keys, strict=True):
                part = lst[lo:hi]
                if key is None or not part:
                    work.append(part)
                    continue
                work.append(
                    [
                        (
                            None
                            if t is None
                            else (
                                [
                                    _in_dtype(x, self.dtype_for(params[lo + j]))
                                    for x in t
                                ]
                                if isinstance(t, list)
                                else _in_dtype(t, self.dtype_for(params[lo + j]))
                            )
                        )
                        for j, t in enumerate(part)
                    ]
                )
            yield work
            for lst, key, done in zip(lists, keys, work, strict=True):
                if not done:
                    continue
                for j, new in enumerate(done):
                    i = lo + j
                    old = lst[i]
                    if key == "param":
                        if new is not old:
                            self.land(old, new, i)
                    elif key is None:  # a counter (kept as a number: replaced)
                        lst[i] = new
                    elif isinstance(old, list):  # a list state: each tensor stored back
                        for o, n_ in zip(old, new, strict=True):
                            if n_ is not o:
                                o.copy_(n_)
                    elif (
                        old is None
                    ):  # a state the update made (lazy), in its storage dtype
                        dtype = self.state_dtype.get(key, params[i].dtype)
                        lst[i] = None if new is None else new.to(dtype)
                    elif new is not None and new is not old and key != "grad":
                        old.copy_(new)

    def land(self, param: Tensor, new: Tensor, i: int) -> None:
        """Writes ``new`` (the updated parameter in the compute dtype) into ``param``."""
        comp = self.kahan_comps[i] if self.rounding == "kahan" else None
        land_(param, new, self.rounding, comp, generator=self._generator(param.device))

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        gen = self.generators.get(device)
        if gen is None:
            gen = self.generators[device] = torch.Generator(device=device)
            gen.manual_seed(self.seed)
        return gen


def stored_dtype(precision: Precision | None, key: str):
    """The dtype a state made during the step (lazily) is stored in; None: the parameter's."""
    return None if precision is None else precision.state_dtype.get(key)


def compute_dtype(precision: Precision | None, t: Tensor) -> torch.dtype:
    """The dtype the update computes ``t`` in: its own, or the policy's promotion of it."""
    return t.dtype if precision is None else precision.dtype_for(t)


def kernel_policy(precision: Precision | None, param: Tensor, index: int):
    """The fused kernel's policy inputs for one parameter (the ``index``-th of the group):
    (compute dtype, rounding, Kahan compensation, stochastic rounding's key); under torch's
    behaviour, None, "nearest", None, None."""
    if precision is None:
        return None, "nearest", None, None
    dtype = precision.dtype_for(param)
    if dtype == param.dtype:  # the parameter needs no rounding
        return dtype, "nearest", None, None
    comp = key = None
    if precision.rounding == "kahan":
        comp = precision.kahan_comps[index]
    elif precision.rounding == "stochastic":
        key = rounding_key(precision._generator(param.device), param.device)
    return dtype, precision.rounding, comp, key


def rounding_key(generator=None, device=None) -> Tensor:
    """A fused kernel's key of stochastic rounding's bits for one parameter and step: 62
    random bits (one int64) from the policy's generator, on the parameter's device."""
    return torch.randint(
        0, 1 << 62, (1,), dtype=torch.int64, device=device, generator=generator
    )


def _mul32(a: Tensor, c: int) -> Tensor:
    # (a * c) mod 2**32 for 0 <= a < 2**32, in int64 without overflow: the constant in
    # halves of 16 bits (each product below 2**49)
    return (a * (c & 0xFFFF) + (((a * (c >> 16)) & 0xFFFF) << 16)) & 0xFFFFFFFF


def hashed_bits(key: Tensor, like: Tensor) -> Tensor:
    """32 random bits (int64 in [0, 2**32)) per element of ``like``: murmur3's finalizer (a
    bijection of 32 bits) of the element's index in the flat tensor under ``key``, the native
    kernel's ``og_random16`` computed with tensors (traced into the compiled kernel's loop:
    nothing is written to memory). Unsigned 32-bit arithmetic is kept in int64 between 0 and
    2**32, where torch's shifts are logical."""
    k = torch.arange(like.numel(), dtype=torch.int64, device=like.device)
    return _hash32(key, k).reshape(like.shape)


def _hash32(key: Tensor, k: Tensor) -> Tensor:
    h = (
        _mul32(k & 0xFFFFFFFF, 0x9E3779B9)
        + _mul32(k >> 32, 0x85EBCA77)
        + (key & 0xFFFFFFFF)
    ) & 0xFFFFFFFF
    h = h ^ ((key >> 32) & 0xFFFFFFFF)
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def hashed_noise(key: Tensor, dst: Tensor) -> Tensor:
    """What rounding_noise draws, made from ``key`` (hashed_bits): the high 16 bits for a
    bfloat16 ``dst`` (as og_random16), else a uniform number in [0, 1) of 24 bits."""
    bits = hashed_bits(key, dst)
    if dst.dtype == torch.bfloat16:
        return (bits >> 16).to(torch.int32)
    return (bits >> 8).to(torch.float32) * 2.0**-24


def rounding_noise(param: Tensor, generator=None) -> Tensor:
    """The random numbers stochastic rounding into ``param``'s dtype consumes (see
    stochastic_round_): 16 random bits per element for bfloat16, a uniform number in [0, 1)
    otherwise."""
    if param.dtype == torch.bfloat16:
        return torch.randint(
            0,
            1 << 16,
            param.shape,
            dtype=torch.int32,
            device=param.device,
            generator=generator,
        )
    return torch.rand(
        param.shape, dtype=torch.float32, device=param.device, generator=generator
    )


def to_compute(dtype, *tensors):
    """The fused kernel's prologue: its tensors in the compute dtype (the same tensor where
    it already is; None stays None). torch.compile traces it with the kernel, so the casts
    fuse into the kernel's loop."""
    return tuple(None if t is None else _in_dtype(t, dtype) for t in tensors)


def store_back(stored, computed, rounding, comp, key) -> None:
    """The fused kernel's epilogue: ``computed[0]`` (the parameter) lands on ``stored[0]`` by
    the rounding (stochastic: with bits made from ``key``), the states are copied into their
    storage tensors."""
    if computed[0] is not stored[0]:
        land_(stored[0], computed[0], rounding, comp, key=key)
    for dst, src in zip(stored[1:], computed[1:], strict=True):
        if dst is not None and src is not dst:
            dst.copy_(src)


def land_(
    param: Tensor, new: Tensor, rounding: str, comp=None, key=None, generator=None
) -> None:
    """``param`` set to ``new`` (the update's result in the compute dtype) by the rounding:
    Kahan where a compensation is kept, stochastic where the dtypes differ (its bits made from
    a fused kernel's ``key``, else drawn from ``generator``), else nearest.
    """
    if rounding == "kahan" and comp is not None:
        kahan_add_(param, new, comp)
    elif rounding == "stochastic" and param.dtype != new.dtype:
        noise = None if key is None else hashed_noise(key, param)
        stochastic_round_(param, new, generator, noise=noise)
    else:
        param.copy_(new)


def _in_dtype(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` itself when it is already in ``dtype`` (no copy), else a copy in ``dtype``."""
    if t.dtype == dtype or not t.is_floating_point():
        return t
    return t.to(dtype)


def group_precision(optimizer, group: dict, params: list[Tensor]) -> Precision | None:
    """The group's policy for this step, or None for torch's behaviour (nothing to do)."""
    state_dtype = group.get("state_dtype") or {}
    compute_dtype = group.get("compute_dtype")
    rounding = group.get("param_rounding", "nearest")
    if not state_dtype and compute_dtype is None and rounding == "nearest":
        return None
    _check_rounding(rounding)
    for p in params:
        if torch.is_complex(p):
            raise ValueError(
                "the precision policy (state_dtype, compute_dtype, param_rounding) is for "
                "real floating-point parameters; this group holds a complex one"
            )
    policy = Precision(
        compute_dtype=compute_dtype or torch.float32,
        rounding=rounding,
        state_dtype=state_dtype,
        seed=group.get("rounding_seed"),
    )
    if rounding == "kahan":
        policy.kahan_comps = []
        for p in params:
            state = optimizer.state[p]
            comp = state.get("kahan_comp")
            if comp is None and policy.dtype_for(p) != p.dtype:
                comp = state["kahan_comp"] = torch.zeros_like(
                    p,
                    dtype=state_dtype.get("kahan_comp", p.dtype),
                    memory_format=torch.preserve_format,
                )
            policy.kahan_comps.append(comp)
    if policy.seed is not None:
        policy.generators = _generators.setdefault(optimizer, {}).setdefault(
            policy.seed, {}
        )
    return policy


def stochastic_round_(
    dst: Tensor, src: Tensor, generator=None, noise: Tensor | None = None
) -> Tensor:
    """Writes ``src`` into the lower-precision ``dst`` rounded stochastically: to one of the
    two neighbouring values of ``dst``'s dtype, the farther one with probability equal to the
    fraction of the gap ``src`` covers, so that the expected result is ``src`` exactly.
    ``noise`` is what rounding_noise draws (a fused kernel's, made by hashed_noise), else
    drawn from ``generator``.
    """
    if noise is None:
        noise = rounding_noise(dst, generator)
    if dst.dtype == torch.bfloat16 and src.dtype == torch.float32:
        # bfloat16 is float32 without its low 16 bits: adding 16 random bits to the bit
        # pattern carries into the kept bits with probability (dropped bits) / 2**16, for
        # either sign (the pattern is sign and magnitude), subnormals included
        rounded = src.view(torch.int32).add(noise).bitwise_and_(-65536)
        return dst.copy_(torch.where(src.isfinite(), rounded.view(torch.float32), src))
    nearest = src.to(dst.dtype)
    error = src - nearest.to(src.dtype)
    other = _neighbour(nearest, error > 0)
    gap = other.to(src.dtype) - nearest.to(src.dtype)
    # error 0 (or a non-finite value): probability 0, the nearest value stays
    chance = torch.nan_to_num(error / gap, nan=0.0, posinf=0.0, neginf=0.0)
    return dst.copy_(torch.where(noise < chance, other, nearest))


# the integer of a float's size, for its bit pattern (sign and magnitude)
_BITS = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
}


def _neighbour(x: Tensor, up: Tensor) -> Tensor:
    """The next value of ``x``'s dtype above ``x`` where ``up``, else below: torch.nextafter
    toward ±inf, from the bit pattern. (Inductor computes a float16's nextafter in float32,
    whose neighbour rounds back to ``x``: compiled, stochastic rounding into float16 never
    moved a parameter.) The magnitude steps by one unit of its bits, away from zero where the
    step and the sign agree; from zero, to the smallest subnormal of the step's sign."""
    ints = _BITS.get(x.dtype)
    if ints is None:
        return torch.nextafter(x, torch.where(up, torch.inf, -torch.inf).to(x.dtype))
    width = torch.iinfo(ints).bits
    sign_bit = 1 << (width - 1)
    bits = (x + 0.0).view(ints).to(torch.int64) & ((1 << width) - 1)  # (-0 as +0)
    negative = bits >= sign_bit
    magnitude = bits & (sign_bit - 1)
    zero = magnitude == 0
    away = (up != negative) | zero
    magnitude = magnitude + torch.where(away, 1, -1)
    negative = torch.where(zero, ~up, negative)
    pattern = magnitude - torch.where(negative, sign_bit, 0)  # (as a signed integer)
    return pattern.to(ints).view(x.dtype)


def kahan_add_(param: Tensor, new: Tensor, comp: Tensor) -> Tensor:
    """``param`` moved to ``new`` with Kahan-compensated summation: the part of the update that
    the parameter's dtype cannot hold is kept in ``comp`` and added at the next step."""
    # this step's update plus what earlier steps lost
    update = new.sub_(param).add_(comp)
    previous = param.to(update.dtype, copy=True)
    param.add_(update)
    # what landed is param - previous, taken in the update's (wider) dtype: in the
    # parameter's own it rounds when a step is large against the parameter (a parameter near
    # 0, Kate's first step); the rest is carried
    return comp.copy_(update.sub_(param.to(update.dtype).sub_(previous)))


def load_keeping_policy(optimizer, state_dict: dict, load, counters=()) -> None:
    """``Optimizer.load_state_dict`` that keeps this optimizer's policy: torch casts every
    floating-point state to its parameter's dtype; a state the policy stores in another dtype is
    made again from the saved tensor (a float32 state of a bfloat16 parameter loses nothing).
    A saved Kahan compensation is dropped when this optimizer does not use one.

    ``counters`` (ASGD's ``eta`` and ``mu``, NAdam's ``mu_product``) keep the dtype they were
    saved in, as torch keeps ``step``: cast to a float64 parameter's dtype, a float32 counter
    would continue in other arithmetic than the run that saved it. So do the states a spec
    makes in a dtype of its own (``, dtype NAME``: Kron's float32 factors of a float64
    parameter), tensors or lists of them."""
    policies = [
        {key: group[key] for key in POLICY_KEYS if key in group}
        for group in optimizer.param_groups
    ]
    load(state_dict)
    saved_ids = [pid for g in state_dict["param_groups"] for pid in g["params"]]
    saved_state = state_dict["state"]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for group, policy in zip(optimizer.param_groups, policies, strict=True):
        for key in POLICY_KEYS:
            group.pop(key, None)
        group.update(policy)
    by_param = dict(zip(params, saved_ids, strict=True))
    for group in optimizer.param_groups:
        dtypes = group.get("state_dtype") or {}
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                continue
            if group.get("param_rounding") != "kahan":
                state.pop("kahan_comp", None)
            saved = saved_state.get(by_param[p], {})
            for key in counters:
                value = saved.get(key)
                if key not in state:
                    continue
                if isinstance(value, Tensor):
                    state[key] = value.to(device=state[key].device, copy=True)
                elif isinstance(value, list) and all(map(torch.is_tensor, value)):
                    state[key] = [t.to(device=p.device, copy=True) for t in value]
            for key, dtype in dtypes.items():
                if isinstance(saved.get(key), Tensor):
                    state[key] = saved[key].to(device=p.device, dtype=dtype, copy=True)


__all__ = [
    "Precision",
    "group_precision",
    "kahan_add_",
    "kernel_policy",
    "land_",
    "load_keeping_policy",
    "policy_defaults",
    "rounding_key",
    "rounding_noise",
    "stochastic_round_",
    "store_back",
    "store_state_dtypes",
    "stored_dtype",
    "to_compute",
]
