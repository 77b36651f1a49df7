"""Runtime of the fused path's native CPU kernels: C++ printed from the IR by the generator
(generator.emit.cpp.kernel), compiled here with the system's C++ compiler on first use, cached on
disk, and called once per parameter group through ctypes.

Why not torch.compile on the CPU: a compiled call per parameter pays dynamo's guards and
inductor's wrapper (50–150 µs each), which left the fused step 1.3–1.5× torch's fused one, and
one compiled function over the whole list costs an 11 s compilation per set of shapes. A
kernel that takes a table of tensor addresses instead compiles in 0.1-0.15 s with the decisions
of its configuration known (an `if` on a group flag is resolved by the compiler, so the element
loop vectorizes), serves every set of shapes, and its host side is one foreign call per group.

The generated ``_fused_<name>`` asks ``batch()`` for a batch at the start of a step (None: the
compiled per-parameter kernel runs), offers each parameter's tensors, numbers
and decisions with ``add`` (False: that parameter runs the compiled kernel, e.g. a bfloat16 or
non-contiguous tensor), and ``run``s the batch after its host loop: the parameters' updates are
independent, so running them after the loop is running them in it. Under a precision policy
(runtime.precision) the kernel is compiled for the tensors' storage dtypes (float32, float64,
bfloat16) and the policy's compute dtype: each element is loaded into the compute type,
updated by the same loop body, and stored back, the parameter by the policy's rounding
(nearest, Kahan, or stochastic with bits made in the kernel from a key the policy's generator
draws per parameter). A kernel is compiled once per configuration (the decisions) and dtype
(float32, float64) or policy layout, in a process-wide cache and on disk under
``$OPTIMGEN_CACHE_DIR`` (else ``~/.cache/optimgen``) ``/native``, keyed by the source, the
compiler and its flags (``flags_for``: a plain kernel's differ from a policy's). If no
compiler works, or one configuration fails to compile, a warning says so once and that
configuration runs the compiled kernel: slower, never wrong.

The arithmetic is torch's: each element is computed in the parameter's dtype, numbers in double
cast to it where they meet a tensor (as a 0-d float64 tensor or a Python number does in eager
mode), a multiply-add rounded once only where torch's CPU kernel of the operation rounds it once
(``add`` with alpha, ``addcmul``, ``lerp``: ``torch_fuses`` asks torch, once per dtype), no other
contraction (``-ffp-contract=off``), torch's own formulas where an operation has one (``lerp``,
NaN-propagating ``maximum``/``clamp``, ``sign``). Without a square root the native step then
equals the for-loop's bit for bit (SGD, measured and tested); torch's CPU ``sqrt`` (MKL's) is
not correctly rounded, 1 ulp off for about a sixth of float32 elements, where the kernel's is.
The OpenMP runtime is the one torch has loaded (``libgomp.so.1``): one thread pool,
``torch.get_num_threads()`` threads.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
from dataclasses import dataclass
import functools
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings

import torch

from generator.runtime.precision import rounding_key

__all__ = ["NativeKernel", "native_kernels"]

# OPTIMGEN_NATIVE_KERNELS=0 (or `native_kernels(False)`): the CPU fused step runs the compiled
# per-parameter kernel instead, e.g. to compare the two
ENABLED = os.environ.get("OPTIMGEN_NATIVE_KERNELS", "1") != "0"


@contextlib.contextmanager
def native_kernels(enabled: bool = True):
    global ENABLED
    before, ENABLED = ENABLED, enabled
    try:
        yield
    finally:
        ENABLED = before


FLAGS = (
    "-O3",
    "-march=native",
    # (the machine's widest vectors for a precision policy's loop, its conversions and bits:
    # with 256-bit ones it stepped 1.3x slower (-mprefer-vector-width=256), and without
    # AVX-512's narrowing conversions it stayed unvectorized, 3-7x slower (-mno-avx512f):
    # measured, Adam under bf16 Kahan and stochastic; a plain kernel: PLAIN_FLAGS)
    "-fopenmp",
    "-fno-math-errno",  # (errno from sqrt would keep the loop from vectorizing)
    "-ffp-contract=off",  # (a multiply-add rounds once only where torch's does: og_madd)
    "-std=c++17",
    "-shared",
    "-fPIC",
)
# A plain kernel (no precision policy) streams its tensors: on x86 it prefers 256-bit vectors.
# Measured on an AMD EPYC (Zen 4, AVX-512 double-pumped), Adam over 21.3M parameters: one
# thread 0.92x torch's fused kernel with them, 1.10-1.22x with 512-bit ones; two threads
# 0.97-1.01x against 1.00-1.02x (bound by memory). A policy's loop (conversions, Kahan's
# compensation, stochastic rounding's bits) computes more per byte and keeps the machine's
# widest: with 256-bit vectors its steps took 1.3x as long.
PLAIN_FLAGS = (
    ("-mprefer-vector-width=256",)
    if platform.machine().lower() in ("x86_64", "amd64")
    else ()
)


def flags_for(kind) -> tuple[str, ...]:
    """The compiler's flags for a kernel of ``kind`` (a dtype, or a policy's Layout)."""
    return FLAGS if isinstance(kind, Layout) else FLAGS + PLAIN_FLAGS


# the element types a native kernel computes in, and those it stores (under a precision policy)
DTYPES = {torch.float32: "float", torch.float64: "double"}
STORED = {**DTYPES, torch.bfloat16: "og_bf16"}
_PLAIN = (torch.Tensor, torch.nn.Parameter)

# The operations whose CPU kernel in torch may round a multiply-add once (a fused multiply-add:
# torch's vectorized `add` with alpha and `lerp` call one, `addcmul`'s expression is contracted
# by the compiler that built torch); the native kernels round each as torch does here.
FUSED_OPS = ("add", "addcmul", "lerp")


@functools.cache
def torch_fuses(dtype: torch.dtype) -> dict[str, bool]:
    """Whether torch's eager CPU kernel of each of FUSED_OPS rounds its multiply-add once, for
    ``dtype``: probed on x = 1 + 2**-k (k half the mantissa's bits), whose square x*x =
    1 + 2**(1-k) + 2**-2k loses its last term when rounded, so that a result of exactly 0
    (x*x rounded, minus its rounding) means two roundings and 2**-2k one."""
    k = (round(-math.log2(torch.finfo(dtype).eps)) + 2) // 2
    x = 1.0 + 2.0**-k
    square = 1.0 + 2.0 ** (1 - k)  # x * x rounded (to even)

    def one(*values):
        return torch.tensor(values, dtype=dtype)

    results = {
        "add": one(-square).add(one(x), alpha=x),
        "addcmul": one(-square).addcmul(one(x), one(x)),
        # (s + w * (e - s) with w = x / 4 and e - s = x, both exact)
        "lerp": one(-square / 4).lerp(one(x - square / 4), x / 4),
    }
    return {op: r.item() != 0.0 for op, r in results.items()}


# Operations with torch's own formula or NaN rule, for the kernels' element expressions.
PRELUDE = r"""// no headers: the compiler's builtins (a header costs more to parse than the kernel)
typedef long long int64_t;

namespace {
inline float og_sqrt(float x) { return __builtin_sqrtf(x); }
inline double og_sqrt(double x) { return __builtin_sqrt(x); }
inline float og_abs(float x) { return __builtin_fabsf(x); }
inline double og_abs(double x) { return __builtin_fabs(x); }
// a * b + c rounded once where torch's kernel of the operation does (og_fused_*, probed)
template <bool fused> inline float og_madd(float a, float b, float c) {
  return fused ? __builtin_fmaf(a, b, c) : a * b + c;
}
template <bool fused> inline double og_madd(double a, double b, double c) {
  return fused ? __builtin_fma(a, b, c) : a * b + c;
}
// torch's add(x, y, alpha=a) and addcmul(x, t1, t2) (value folded into t1)
template <typename T> inline T og_add_alpha(T x, T y, T a) {
  return og_madd<og_fused_add>(y, a, x);
}
template <typename T> inline T og_addcmul(T x, T t1, T t2) {
  return og_madd<og_fused_addcmul>(t1, t2, x);
}
// torch's lerp: from the end's side for a weight of 0.5 or more (exact at weight 1)
template <typename T> inline T og_lerp(T s, T e, T w) {
  return og_abs(w) < T(0.5) ? og_madd<og_fused_lerp>(w, e - s, s)
                            : og_madd<og_fused_lerp>(w - T(1), e - s, e);
}
// torch.maximum / torch.minimum: NaN if either is
template <typename T> inline T og_maximum(T a, T b) {
  return (a != a || b != b) ? a + b : (a > b ? a : b);
}
template <typename T> inline T og_minimum(T a, T b) {
  return (a != a || b != b) ? a + b : (a < b ? a : b);
}
// torch.clamp_min / clamp_max: NaN stays NaN (as does a NaN bound)
template <typename T> inline T og_clamp_min(T a, T lo) {
  return (a != a || lo != lo) ? a + lo : (a < lo ? lo : a);
}
template <typename T> inline T og_clamp_max(T a, T hi) {
  return (a != a || hi != hi) ? a + hi : (a > hi ? hi : a);
}
template <typename T> inline T og_sign(T a) { return T((T(0) < a) - (a < T(0))); }
// storage other than the compute type (a precision policy's): bfloat16 is the high half of a
// float32, rounded to nearest even as torch's c10::BFloat16 does (NaN: 0x7FC0); a double
// reaches bfloat16 through float, as torch converts it
// (its bits, not a struct: a struct's copy keeps the store loops from vectorizing)
typedef unsigned short og_bf16;
inline float og_load(og_bf16 v) {
  unsigned int u = (unsigned int)v << 16; float f; __builtin_memcpy(&f, &u, 4); return f;
}
inline float og_load(float v) { return v; }
inline double og_load(double v) { return v; }
inline og_bf16 og_bf16_of(float f) {
  unsigned int u; __builtin_memcpy(&u, &f, 4);
  if (f != f) return 0x7FC0;
  return (og_bf16)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
template <typename S> struct og_store_as;
template <> struct og_store_as<float> {
  static float of(float v) { return v; } static float of(double v) { return (float)v; } };
template <> struct og_store_as<double> {
  static double of(float v) { return v; } static double of(double v) { return v; } };
template <> struct og_store_as<og_bf16> {
  static og_bf16 of(float v) { return og_bf16_of(v); }
  static og_bf16 of(double v) { return og_bf16_of((float)v); } };
// stochastic rounding of a float into bfloat16 with 16 random bits (runtime.precision's
// stochastic_round_: carried into the kept bits with the dropped bits' probability)
inline og_bf16 og_bf16_stochastic(float f, int noise) {
  if (!(f - f == 0.0f)) return og_bf16_of(f);  // (inf, NaN: rounded to nearest)
  unsigned int u; __builtin_memcpy(&u, &f, 4);
  return (og_bf16)((u + (unsigned int)noise) >> 16);
}
// its 16 random bits: murmur3's finalizer (a bijection of 32 bits) of the element's index
// under a key drawn from the policy's generator for the parameter: independent of blocks
// and threads, 32-bit lanes (torch.randint's 16 bits per element cost more than the step);
// the compiled kernel makes the same ones (runtime.precision.hashed_bits)
inline int og_random16(unsigned long long key, long long k) {
  unsigned int h = (unsigned int)k * 0x9E3779B9u + (unsigned int)(k >> 32) * 0x85EBCA77u
                   + (unsigned int)key;
  h ^= (unsigned int)(key >> 32);
  h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
  return (int)(h >> 16);
}
}  // namespace
"""

# The entry point around a kernel's element loop: the rows (tensors) split in blocks, the
# blocks shared among the threads.
DRIVER = r"""
extern "C" void og_step(int64_t rows, void* const* ptrs, const int64_t* numel,
                        const double* nums, int threads) {
  const int64_t block = 32768;
  // starts[r]: the first block of row r (a row of no elements has none)
  int64_t* starts = static_cast<int64_t*>(__builtin_malloc(sizeof(int64_t) * (rows + 1)));
  starts[0] = 0;
  for (int64_t r = 0; r < rows; ++r) starts[r + 1] = starts[r] + (numel[r] + block - 1) / block;
  const int64_t blocks = starts[rows];
  int64_t total = 0;
  for (int64_t r = 0; r < rows; ++r) total += numel[r];
  // threads only for more than a block's worth of elements in all (torch's grain size)
#pragma omp parallel for schedule(static) num_threads(threads) if (total > block)
  for (int64_t b = 0; b < blocks; ++b) {
    int64_t first = 0, last = rows - 1;  // the row whose blocks hold b
    while (first < last) {
      const int64_t mid = (first + last + 1) / 2;
      if (starts[mid] <= b) first = mid; else last = mid - 1;
    }
    const int64_t lo = (b - starts[first]) * block;
    const int64_t hi = lo + block < numel[first] ? lo + block : numel[first];
    og_rows(lo, hi, numel[first], ptrs + first * OG_TENSORS, nums + first * OG_NUMBERS);
  }
  __builtin_free(starts);
}
"""


class NativeKernel:
    """One fused kernel's C++ element loop (printed by generator.emit.cpp.kernel), with what it
    takes in order, named as the source names them: its tensors (those it writes among them),
    its numbers and its decisions."""

    def __init__(
        self,
        name: str,
        *,
        tensors: tuple[str, ...],
        written: tuple[str, ...],
        numbers: tuple[str, ...],
        decisions: tuple[str, ...],
        source: str,
    ):
        self.name = name
        self.tensors, self.numbers, self.decisions = tensors, numbers, decisions
        self.n_tensors, self.n_numbers = len(tensors), len(numbers)
        self.written = tuple(tensors.index(t) for t in written)
        self.body = source
        # (kind: a dtype or a policy's Layout, decisions) -> entry, or None
        self._libraries: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def batch(self, precision=None) -> "Batch | None":
        """A batch for one group's step (under ``precision``, a runtime.precision.Precision
        or None), or None where the compiled kernel runs: a step traced by torch.compile, or
        native kernels turned off."""
        if not ENABLED or _compiler() is None:
            return None
        if torch.compiler.is_compiling():
            return None
        return Batch(self, precision)

    def source(self, kind, decisions: tuple[bool, ...]) -> str:
        """The whole C++ source of one configuration and ``kind``: a dtype (every tensor in
        it), or a precision policy's Layout."""
        if isinstance(kind, Layout):
            return self._policy_source(kind, decisions)
        lines = self._head(kind, decisions, max(len(self.tensors), 1))
        for k, t in enumerate(self.tensors):
            const = "" if k in self.written else "const "
            lines.append(f"  {const}T* __restrict {t} = ({const}T*)p[{k}];")
        lines += self._numbers()
        lines.append("  for (int64_t i = lo; i < hi; ++i) {")
        lines += ["    " + line for line in self.body.splitlines()]
        lines.append("  }")
        lines.append("}")
        lines.append(DRIVER)
        return "\n".join(lines)

    def _head(self, compute: torch.dtype, decisions: tuple, row_tensors: int) -> list:
        """The source up to ``og_rows``'s opening brace: the prelude, the compute type, the
        configuration's decisions, the row's layout."""
        fused = torch_fuses(compute)
        lines = [
            f"constexpr bool og_fused_{op} = {'true' if fused[op] else 'false'};"
            for op in FUSED_OPS
        ]
        lines += [PRELUDE, f"using T = {DTYPES[compute]};"]
        lines += [
            f"constexpr bool {d} = {'true' if v else 'false'};"
            for d, v in zip(self.decisions, decisions)
        ]
        lines.append(f"constexpr int64_t OG_TENSORS = {row_tensors};")
        lines.append(f"constexpr int64_t OG_NUMBERS = {max(len(self.numbers), 1)};")
        lines.append(
            "static inline void og_rows(int64_t lo, int64_t hi, int64_t og_numel, "
            "void* const* p, const double* num) {"
        )
        return lines

    def _numbers(self) -> list:
        return [f"  const double {n} = num[{k}];" for k, n in enumerate(self.numbers)]

    def _policy_source(self, layout: "Layout", decisions: tuple[bool, ...]) -> str:
        """A policy's kernel: each element loaded from its storage types into the compute
        type, the same element loop's body on it, then the written states stored back rounded
        to nearest (a rounding copy, as Precision does) and the parameter landed by the
        policy's rounding (runtime.precision.land_). A tensor stored in the compute type is
        read and written where it is, as in the plain kernel. (One loop: the compiler keeps
        each element's one-item buffers in registers and vectorizes the whole.)"""
        n = len(self.tensors)
        stored = [STORED[t] if t is not None else "T" for t in layout.types]
        direct = [t is None or t == layout.compute for t in layout.types]
        lines = self._head(layout.compute, decisions, n + 2)
        for k, t in enumerate(self.tensors):
            lines.append(f"  {stored[k]}* __restrict {t}_s = ({stored[k]}*)p[{k}];")
        comp = STORED[layout.comp] if layout.comp is not None else "T"
        lines.append(f"  {comp}* __restrict og_comp = ({comp}*)p[{n}];")
        lines.append(
            f"  const unsigned long long og_key = p[{n + 1}] ? "
            f"*(const unsigned long long*)p[{n + 1}] : 0;"
        )
        lines += self._numbers()
        lines.append("  for (int64_t k = lo; k < hi; ++k) {")
        for j, t in enumerate(self.tensors):
            if direct[j]:
                # (an optional tensor left unset is null: never read, by the decisions)
                lines.append(f"    T* __restrict {t} = {t}_s + k;")
            else:
                # (loaded without a test: the layout knows which tensors are set, and a
                # branch in the loop keeps it from vectorizing)
                lines.append(f"    T {t}_b[1] = {{T(og_load({t}_s[k]))}};")
                lines.append(f"    T* __restrict {t} = {t}_b;")
        lines.append("    {")
        lines.append("      const int64_t i = 0;")
        lines += ["      " + line for line in self.body.splitlines()]
        lines.append("    }")
        for j, t in enumerate(self.tensors):
            if j == 0 or j not in self.written or not layout.back[j] or direct[j]:
                continue
            lines.append(f"    {t}_s[k] = og_store_as<{stored[j]}>::of({t}_b[0]);")
        param, kind = self.tensors[0], stored[0]
        if layout.rounding == "kahan":
            # kahan_add_: this step's update plus what earlier ones lost; what landed is
            # taken in the compute type, the rest carried
            lines += [
                f"    const T old = T(og_load({param}_s[k]));",
                f"    const T update = ({param}_b[0] - old) + T(og_load(og_comp[k]));",
                f"    const {kind} landed = og_store_as<{kind}>::of(T(old + update));",
                f"    {param}_s[k] = landed;",
                f"    og_comp[k] = og_store_as<{comp}>::of("
                "T(update - (T(og_load(landed)) - old)));",
            ]
        elif layout.rounding == "stochastic":
            lines.append(
                f"    {param}_s[k] = "
                f"og_bf16_stochastic({param}_b[0], og_random16(og_key, k));"
            )
        elif not direct[0]:
            lines.append(f"    {param}_s[k] = og_store_as<{kind}>::of({param}_b[0]);")
        lines.append("  }")
        lines.append("}")
        lines.append(DRIVER)
        return "\n".join(lines)

    def entry(self, kind, decisions: tuple[bool, ...]):
        """The compiled ``og_step`` of one configuration and kind (a dtype, or a policy's
        Layout), compiled on first use; None where compiling failed (said once by a
        warning)."""
        key = (kind, decisions)
        found = self._libraries.get(key, _MISSING)
        if found is not _MISSING:
            return found
        with self._lock:
            if key not in self._libraries:
                self._libraries[key] = _load(
                    self.name, self.source(kind, decisions), flags_for(kind)
                )
        return self._libraries[key]


_MISSING = object()


@dataclass(frozen=True)
class Layout:
    """A precision policy's kernel: the compute dtype, each tensor's storage dtype (None for
    an optional one left unset), whether each is stored back (a written state; the gradient
    only where it is computed on in place), the parameter's rounding and the Kahan
    compensation's dtype."""

    compute: torch.dtype
    types: tuple
    back: tuple
    rounding: str
    comp: torch.dtype | None


class Batch:
    """The rows of one native kernel call: per parameter its tensors' addresses and its
    numbers, grouped by configuration and dtype."""

    __slots__ = ("kernel", "rows", "changed", "precision", "keep")

    def __init__(self, kernel: NativeKernel, precision=None):
        self.kernel = kernel
        self.precision = precision
        self.rows: dict[tuple, tuple[list, list, list]] = {}
        self.changed: list[torch.Tensor] = []
        # (stochastic rounding's keys, alive until the kernel has read them)
        self.keep: list[torch.Tensor] = []

    def add(self, index: int, *args) -> bool:
        """Takes the update of the group's ``index``-th parameter (tensors, numbers,
        decisions, in the kernel's order); False where the native kernel cannot run it (the
        caller then runs the compiled one)."""
        if self.precision is not None:
            return self._add_under_policy(index, args)
        # (the host cost of a step is mostly here, once per parameter: checks kept to what
        # decides, each a call into torch's C++)
        k = self.kernel
        param = args[0]
        dtype = param.dtype
        if dtype not in DTYPES or type(param) not in _PLAIN or not param.is_cpu:
            return False
        numel = param.numel()
        n, m = k.n_tensors, k.n_tensors + k.n_numbers
        tensors = args[:n]
        # (0: an optional state left unset, read only where it is set; -1: a tensor refused)
        ptrs = [
            (
                0
                if t is None
                else (
                    t.data_ptr()
                    if t.dtype is dtype and t.is_contiguous() and t.numel() == numel
                    else -1
                )
            )
            for t in tensors
        ]
        if -1 in ptrs:
            return False
        config = (dtype,) + args[m:]
        rows = self.rows.get(config)
        if rows is None:
            if k.entry(dtype, tuple(map(bool, config[1:]))) is None:
                return False
            rows = self.rows[config] = ([], [], [])
        rows[0].extend(ptrs)
        rows[1].append(numel)
        rows[2].extend(args[n:m])
        self.changed.append(tensors)
        return True

    def _add_under_policy(self, index: int, args: tuple) -> bool:
        """``add`` under a precision policy: the tensors in their storage dtypes (float32,
        float64, bfloat16), computed in the policy's dtype for the parameter, the parameter
        landed by its rounding: the group's Kahan compensation, or stochastic rounding's
        bits, made in the kernel from a key drawn here, in the parameter's turn, from the
        policy's generator (so a seed makes a run reproducible, as with torch.randint's bits
        on the other paths, though not with the same bits)."""
        k, precision = self.kernel, self.precision
        param = args[0]
        if type(param) not in _PLAIN or not param.is_cpu:
            return False
        compute = precision.dtype_for(param)
        if compute not in DTYPES or param.dtype not in STORED:
            return False
        numel = param.numel()
        types, ptrs = [], []
        for t in args[: k.n_tensors]:
            if t is None:
                types.append(None)
                ptrs.append(0)
            elif t.dtype in STORED and t.is_contiguous() and t.numel() == numel:
                types.append(t.dtype)
                ptrs.append(t.data_ptr())
            else:
                return False
        rounding = "nearest" if compute == param.dtype else precision.rounding
        comp = None
        if rounding == "kahan":
            comp = precision.kahan_comps[index]
            if comp is None or comp.dtype not in STORED or not comp.is_contiguous():
                return False
        elif rounding == "stochastic" and not (
            param.dtype == torch.bfloat16 and compute == torch.float32
        ):
            return False  # (float16's stochastic rounding: the compiled kernel's)
        grad = k.tensors.index("grad") if "grad" in k.tensors else -1
        # states are stored back; the gradient only where it is computed on in place (in the
        # compute dtype already), as the compiled kernel's copies do
        back = tuple(j != grad or types[j] == compute for j in range(len(k.tensors)))
        layout = Layout(
            compute, tuple(types), back, rounding, None if comp is None else comp.dtype
        )
        config = (layout, *args[k.n_tensors + k.n_numbers :])
        rows = self.rows.get(config)
        if rows is None:
            if k.entry(layout, tuple(map(bool, config[1:]))) is None:
                return False
            rows = self.rows[config] = ([], [], [])
        key = None
        if rounding == "stochastic":  # (drawn once nothing can refuse the parameter)
            key = rounding_key(precision._generator(param.device))
        rows[0].extend(ptrs)
        rows[0].append(0 if comp is None else comp.data_ptr())
        rows[0].append(0 if key is None else key.data_ptr())
        rows[1].append(numel)
        rows[2].extend(args[k.n_tensors : k.n_tensors + k.n_numbers])
        changed = [args[w] for w in k.written if w != 0 and back[w]]
        changed.append(param)  # (landed whether or not the update wrote it)
        changed.append(comp)
        self.changed.append(changed)
        if key is not None:
            self.keep.append(key)
        return True

    def run(self) -> None:
        threads = torch.get_num_threads()
        k = self.kernel
        for config, (ptrs, numel, nums) in self.rows.items():
            # (the rows as C arrays: array.array copies a list in C, ctypes item by item)
            try:
                numbers = array.array("d", nums or [0.0])
            except TypeError:  # (a 0-d tensor, or an optional number left at None)
                numbers = array.array(
                    "d", [0.0 if x is None else float(x) for x in nums]
                )
            addresses = array.array("q", ptrs)
            sizes = array.array("q", numel)
            k.entry(config[0], tuple(map(bool, config[1:])))(
                len(numel),
                addresses.buffer_info()[0],
                sizes.buffer_info()[0],
                numbers.buffer_info()[0],
                threads,
            )
        if self.changed:
            # as torch's in-place operations do: autograd then knows these were changed
            # (the kernel's written tensors, set; all of each row's under a policy)
            written = self.kernel.written if self.precision is None else None
            torch._C._increment_version(
                [
                    t
                    for row in self.changed
                    for t in (row if written is None else (row[w] for w in written))
                    if t is not None
                ]
            )
        self.rows.clear()
        self.changed = []
        self.keep = []


# ---- the compiler and the cache ---------------------------------------------------------


_COMPILER: list = []  # [(command, version)] or [None], once per process


def _compiler() -> tuple[str, str] | None:
    """The C++ compiler ($CXX, else g++, else c++) and its version line; None if none runs."""
    if not _COMPILER:
        found = None
        for cxx in (os.environ.get("CXX"), "g++", "c++"):
            path = shutil.which(cxx) if cxx else None
            if path is None:
                continue
            try:
                version = subprocess.run(
                    [path, "--version"], capture_output=True, text=True, timeout=30
                ).stdout.splitlines()[:1]
            except (OSError, subprocess.SubprocessError):
                continue
            found = (path, version[0] if version else "")
            break
        _COMPILER.append(found)
    return _COMPILER[0]


def cache_dir() -> str:
    root = os.environ.get("OPTIMGEN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "optimgen"
    )
    return os.path.join(root, "native")


def _load(name: str, source: str, flags: tuple[str, ...] = FLAGS):
    """``og_step`` of ``source``, compiled (or found in the disk cache) and loaded; None, with
    a warning, where the compiler fails."""
    cxx, version = _compiler()
    digest = hashlib.sha256(
        "\n".join((source, cxx, version, *flags)).encode()
    ).hexdigest()[:24]
    folder = cache_dir()
    library = os.path.join(folder, f"{name}_{digest}.so")
    if not os.path.exists(library):
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as work:
                src = os.path.join(work, "kernel.cpp")
                with open(src, "w") as f:
                    f.write(source)
                built = os.path.join(work, "kernel.so")
                done = subprocess.run(
                    [cxx, *flags, src, "-o", built],
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                if done.returncode != 0:
                    raise RuntimeError(done.stderr.strip()[-2000:] or "no output")
                os.replace(built, library)  # (atomic: another process may race us)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            warnings.warn(
                f"{name}: the native CPU kernel did not compile ({exc}); the fused step "
                "runs the compiled per-parameter kernel instead",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
    entry = ctypes.CDLL(library).og_step
    entry.restype = None
    # (the rows' addresses, sizes and numbers: the addresses of array.array buffers)
    entry.argtypes = [
        ctypes.c_int64,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
    ]
    return entry
