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
independent, so running them after the loop is running them in it. A kernel is compiled once per
configuration (the decisions) and dtype (float32, float64), in a process-wide cache and on disk
under ``$OPTIMGEN_CACHE_DIR`` (else ``~/.cache/optimgen``) ``/native``, keyed by the source, the
compiler and its flags. If no compiler works, or one configuration fails to compile, a warning
says so once and that configuration runs the compiled kernel: slower, never wrong.

The arithmetic is torch's: each element is computed in the parameter's dtype, numbers in double
cast to it where they meet a tensor (as a 0-d float64 tensor or a Python number does in eager
mode), no contraction into fused multiply-adds (``-ffp-contract=off``), torch's own formulas where
an operation has one (``lerp``, NaN-propagating ``maximum``/``clamp``, ``sign``). The OpenMP
runtime is the one torch has loaded (``libgomp.so.1``): one thread pool, ``torch.get_num_threads()``
threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import warnings

import torch

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
    "-fopenmp",
    "-fno-math-errno",  # (errno from sqrt would keep the loop from vectorizing)
    "-ffp-contract=off",  # torch rounds each multiply and add on its own
    "-std=c++17",
    "-shared",
    "-fPIC",
)

# the element types a native kernel is compiled for
DTYPES = {torch.float32: "float", torch.float64: "double"}
_PLAIN = (torch.Tensor, torch.nn.Parameter)

# Operations with torch's own formula or NaN rule, for the kernels' element expressions.
PRELUDE = r"""// no headers: the compiler's builtins (a header costs more to parse than the kernel)
typedef long long int64_t;

namespace {
inline float og_sqrt(float x) { return __builtin_sqrtf(x); }
inline double og_sqrt(double x) { return __builtin_sqrt(x); }
inline float og_abs(float x) { return __builtin_fabsf(x); }
inline double og_abs(double x) { return __builtin_fabs(x); }
// torch's lerp: the end's side for a weight of 0.5 or more (exact at weight 1)
template <typename T> inline T og_lerp(T s, T e, T w) {
  return og_abs(w) < T(0.5) ? s + w * (e - s) : e - (e - s) * (T(1) - w);
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
        self._libraries: dict[tuple, object] = {}  # (dtype, decisions) -> entry or None
        self._lock = threading.Lock()

    def batch(self, precision=None) -> "Batch | None":
        """A batch for one group's step, or None where the compiled kernel runs: a precision
        policy (its casts and rounding are the compiled kernel's), a step traced by
        torch.compile, or native kernels turned off."""
        if precision is not None or not ENABLED or _compiler() is None:
            return None
        if torch.compiler.is_compiling():
            return None
        return Batch(self)

    def source(self, dtype: torch.dtype, decisions: tuple[bool, ...]) -> str:
        """The whole C++ source of one configuration and dtype."""
        lines = [PRELUDE, f"using T = {DTYPES[dtype]};"]
        lines += [
            f"constexpr bool {d} = {'true' if v else 'false'};"
            for d, v in zip(self.decisions, decisions)
        ]
        lines.append(f"constexpr int64_t OG_TENSORS = {max(len(self.tensors), 1)};")
        lines.append(f"constexpr int64_t OG_NUMBERS = {max(len(self.numbers), 1)};")
        lines.append(
            "static inline void og_rows(int64_t lo, int64_t hi, int64_t og_numel, "
            "void* const* p, const double* num) {"
        )
        for k, t in enumerate(self.tensors):
            const = "" if k in self.written else "const "
            lines.append(f"  {const}T* __restrict {t} = ({const}T*)p[{k}];")
        for k, n in enumerate(self.numbers):
            lines.append(f"  const double {n} = num[{k}];")
        lines.append("  for (int64_t i = lo; i < hi; ++i) {")
        lines += ["    " + line for line in self.body.splitlines()]
        lines.append("  }")
        lines.append("}")
        lines.append(DRIVER)
        return "\n".join(lines)

    def entry(self, dtype: torch.dtype, decisions: tuple[bool, ...]):
        """The compiled ``og_step`` of one configuration and dtype (compiled on first use), or
        None where compiling failed (said once by a warning)."""
        key = (dtype, decisions)
        found = self._libraries.get(key, _MISSING)
        if found is not _MISSING:
            return found
        with self._lock:
            if key not in self._libraries:
                self._libraries[key] = _load(self.name, self.source(dtype, decisions))
        return self._libraries[key]


_MISSING = object()


class Batch:
    """The rows of one native kernel call: per parameter its tensors' addresses and its
    numbers, grouped by configuration and dtype."""

    __slots__ = ("kernel", "rows", "changed")

    def __init__(self, kernel: NativeKernel):
        self.kernel = kernel
        self.rows: dict[tuple, tuple[list, list, list]] = {}
        self.changed: list[torch.Tensor] = []

    def add(self, *args) -> bool:
        """Takes one parameter's update (tensors, numbers, decisions, in the kernel's order);
        False where the native kernel cannot run it (the caller then runs the compiled one).
        """
        # (the host cost of a step is mostly here: checks kept to what decides)
        k = self.kernel
        param = args[0]
        dtype = param.dtype
        if dtype not in DTYPES or type(param) not in _PLAIN or not param.is_cpu:
            return False
        numel = param.numel()
        ptrs = []
        for t in args[: k.n_tensors]:
            if t is None:  # (an optional state the kernel reads only where it is set)
                ptrs.append(None)
            elif t.dtype is dtype and t.is_contiguous() and t.numel() == numel:
                ptrs.append(t.data_ptr())
            else:
                return False
        config = (dtype, *args[k.n_tensors + k.n_numbers :])
        rows = self.rows.get(config)
        if rows is None:
            if k.entry(dtype, tuple(map(bool, config[1:]))) is None:
                return False
            rows = self.rows[config] = ([], [], [])
        rows[0].extend(ptrs)
        rows[1].append(numel)
        rows[2].extend(args[k.n_tensors : k.n_tensors + k.n_numbers])
        for w in k.written:
            if args[w] is not None:
                self.changed.append(args[w])
        return True

    def run(self) -> None:
        threads = torch.get_num_threads()
        k = self.kernel
        for config, (ptrs, numel, nums) in self.rows.items():
            n = len(numel)
            try:
                numbers = (ctypes.c_double * max(len(nums), 1))(*nums)
            except TypeError:  # (a 0-d tensor, or an optional number left at None)
                nums = [0.0 if x is None else float(x) for x in nums]
                numbers = (ctypes.c_double * max(len(nums), 1))(*nums)
            k.entry(config[0], tuple(map(bool, config[1:])))(
                n,
                (ctypes.c_void_p * len(ptrs))(*ptrs),
                (ctypes.c_int64 * n)(*numel),
                numbers,
                threads,
            )
        if self.changed:
            # as torch's in-place operations do: autograd then knows these were changed
            torch._C._increment_version(self.changed)
        self.rows.clear()
        self.changed = []


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


def _load(name: str, source: str):
    """``og_step`` of ``source``, compiled (or found in the disk cache) and loaded; None, with
    a warning, where the compiler fails."""
    cxx, version = _compiler()
    digest = hashlib.sha256(
        "\n".join((source, cxx, version, *FLAGS)).encode()
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
                    [cxx, *FLAGS, src, "-o", built],
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
    entry.argtypes = [
        ctypes.c_int64,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_int64),
        ctypes.POINTER(ctypes.c_double),
        ctypes.c_int,
    ]
    return entry
