"""The fused path's native CPU kernel: the same kernel statements generator.emit.python.fused
gives inductor, printed as the body of a C++ loop over one tensor's elements.

The host split is fused's own (``_Split``, ``kernel_inputs``): the numbers arrive as doubles, the
decisions as ``constexpr bool`` of the configuration being compiled (so every `if` of the kernel
is resolved by the C++ compiler and the loop vectorizes), the tensors as ``__restrict`` arrays
indexed by ``i``. Each statement reads and writes the arrays' element ``i`` directly; a local
tensor is a local value, and a name that may stand for another tensor (an alias, ``g = grad``)
a pointer to the element it stands for, so that an update in place through it updates the
tensor, as in the Python kernel.

Types follow torch's promotion: an element is of the parameter's dtype ``T``, a number a double
that becomes ``T`` where it meets an element, a comparison a ``bool`` that becomes ``T`` in
arithmetic. Operations with a formula of torch's own are the runtime's (``og_lerp``,
``og_add_alpha``, ``og_maximum``, ... in generator.runtime.native's prelude). What the printer
cannot write (a reduction, a shape, a cast, a list state, an optimizer's total, or a function
the C library would compute one element at a time: exp, log, cos, sin, atan2, pow to most
exponents) makes ``native_kernel`` return None, and ``why_not_native`` says what; the compiled
kernel is then the fused path's only one.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator import ir
from generator.emit.python.fused import (
    _Split,
    _kernel_stmts,
    first_values_on_host,
    kept_kernel_stmts,
    kernel_inputs,
)
from generator.emit.python.single import fold_call_keywords

# C++ keywords and the names the kernel's source defines, which a spec's name must not shadow
RESERVED = frozenset(
    """alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
    char16_t char32_t class compl concept const consteval constexpr constinit const_cast continue
    co_await co_return co_yield decltype default delete do double dynamic_cast else enum explicit
    export extern false float for friend goto if inline int long mutable namespace new noexcept
    not not_eq nullptr operator or or_eq private protected public register reinterpret_cast
    requires return short signed sizeof static static_assert static_cast struct switch template
    this thread_local throw true try typedef typeid typename union unsigned using virtual void
    volatile wchar_t while xor xor_eq T i lo hi p num n std int64_t""".split()
)


def c_name(name: str) -> str:
    """A spec's name in the kernel's source: one C++ reserves takes a trailing underscore."""
    return name + "_" if name in RESERVED or name.startswith("og_") else name


class Unsupported(Exception):
    """What the native printer cannot write (the compiled kernel then runs alone)."""


@dataclass(frozen=True)
class NativeSource:
    """A kernel's element loop body and what it takes, named as the source names them."""

    tensors: tuple[str, ...]
    written: tuple[str, ...]
    numbers: tuple[str, ...]
    decisions: tuple[str, ...]
    body: str


def native_kernel(opt: ir.Optimizer) -> NativeSource | None:
    """The C++ of one pass's fused kernel, or None where some statement is not elementwise
    arithmetic the printer knows (see the module's docstring)."""
    return _printed(opt)[0]


def why_not_native(opt: ir.Optimizer) -> str | None:
    """None when the kernel has a native form, else what stands in the way."""
    return _printed(opt)[1]


def _printed(opt: ir.Optimizer) -> tuple[NativeSource | None, str | None]:
    try:
        return _Printer(opt).source(), None
    except Unsupported as exc:
        return None, str(exc)


# torch's elementwise functions of one tensor, as C++ expressions of its element
UNARY = {
    "neg": "(-{0})",
    "reciprocal": "(T(1) / {0})",
    "square": "({0} * {0})",
    "sqrt": "og_sqrt({0})",
    "rsqrt": "(T(1) / og_sqrt({0}))",
    "abs": "og_abs({0})",
    "sign": "og_sign({0})",
    "clone": "{0}",
}
# (exp, log, cos, sin, atan2 and pow to other exponents are left to the compiled kernel: the C
# library's functions do not vectorize without -ffast-math, where inductor's do)
BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
COMPARE = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
CALLS = {
    "maximum": "og_maximum",
    "minimum": "og_minimum",
    "clamp_min": "og_clamp_min",
    "clamp_max": "og_clamp_max",
}
# functions of numbers (doubles)
NUMBER_CALLS = {
    "sqrt": "__builtin_sqrt",
    "abs": "__builtin_fabs",
    "exp": "__builtin_exp",
    "log": "__builtin_log",
    "cos": "__builtin_cos",
    "sin": "__builtin_sin",
    "atan2": "__builtin_atan2",
}
# pow(x, c) with a constant exponent as torch's CPU kernel computes it
POWERS = {
    2.0: "({0} * {0})",
    3.0: "({0} * {0} * {0})",
    0.5: "og_sqrt({0})",
    -0.5: "(T(1) / og_sqrt({0}))",
    -1.0: "(T(1) / {0})",
    -2.0: "(T(1) / ({0} * {0}))",
}


class _Printer:
    def __init__(self, opt: ir.Optimizer):
        self.opt = opt
        self.split = _Split(opt, opt.body)
        tensors, numbers, decisions = kernel_inputs(opt, self.split)
        self.arrays = {t: c_name(t) for t in tensors}
        self.numbers = {n: c_name(n) for n in numbers}
        self.decisions = {d: c_name(d) for d in decisions}
        self.tensor_list, self.number_list, self.decision_list = (
            tensors,
            numbers,
            decisions,
        )
        # names bound as aliases anywhere: pointers to the element they stand for
        self.pointers = {
            s.name for s in ir.walk(opt.body) if isinstance(s, ir.TensorLet) and s.alias
        }
        self.kinds: dict[str, str] = {}  # plain locals: "T", "bool" or "double"
        self.storage: list[str] = []  # a pointer name's values, one per binding
        self.written: set[str] = set()
        self.lines: list[str] = []
        self.depth = 0

    def source(self) -> NativeSource:
        for s in self.opt.states:
            if s.kind == "total" and s.key in self.opt.hyper:
                raise Unsupported("an optimizer's total summed by the kernel")
        self.body(self.opt.body)
        if not self.lines:
            raise Unsupported("an empty kernel")
        decls = [f"T* {c_name(n)};" for n in sorted(self.pointers)]
        decls += [f"T {v};" for v in self.storage]
        decls += [f"{k} {c_name(n)};" for n, k in self.kinds.items()]
        written = tuple(t for t in self.tensor_list if t in self.written)
        return NativeSource(
            tensors=tuple(self.arrays[t] for t in self.tensor_list),
            written=tuple(self.arrays[t] for t in written),
            numbers=tuple(self.numbers[n] for n in self.number_list),
            decisions=tuple(self.decisions[d] for d in self.decision_list),
            body="\n".join(decls + self.lines),
        )

    # ---- statements ------------------------------------------------------------------

    def out(self, line: str) -> None:
        self.lines.append("  " * self.depth + line)

    def block(self, stmts) -> None:
        self.depth += 1
        self.body(stmts)
        self.depth -= 1

    def _kept(self, stmts) -> list:
        return kept_kernel_stmts(self.opt, stmts)

    def _state(self, key: str):
        return next(b for b in self.opt.states if b.key == key)

    def body(self, stmts) -> None:
        for s in _kernel_stmts(stmts):
            if isinstance(s, ir.If):
                name = self.decisions.get(self.split.name(s))
                if name is None:
                    raise Unsupported("a decision the kernel is not given")
                then, orelse = self._kept(s.then), self._kept(s.orelse)
                if not then and not orelse:
                    continue
                if then:
                    self.out(f"if ({name}) {{")
                    self.block(then)
                    if orelse:
                        self.out("} else {")
                        self.block(orelse)
                else:
                    self.out(f"if (!{name}) {{")
                    self.block(orelse)
                self.out("}")
            elif isinstance(s, ir.LazyInit):
                st = self._state(s.state)
                target = self._array(st.var)
                self.written.add(st.var)
                first = self.decisions.get(f"_first_{st.var}")
                if st.var in first_values_on_host(self.opt):  # copied before the kernel
                    if s.update:
                        self.out(f"if (!{first}) {{")
                        self.block(s.update)
                        self.out("}")
                    continue
                if first is None:
                    raise Unsupported("a lazy state made by another pass")
                self.out(f"if ({first}) {{")
                self.depth += 1
                self.out(f"{target} = {self.as_t(*self.expr(s.first))};")
                self.depth -= 1
                if s.update:
                    self.out("} else {")
                    self.block(s.update)
                self.out("}")
            elif isinstance(s, ir.TensorLet):
                self.let(s)
            elif isinstance(s, ir.InPlace):
                self.inplace(s)
            elif isinstance(s, ir.Repeat):
                if not isinstance(s.count, ir.SConst):
                    raise Unsupported("a repeat count that is not a constant")
                self.out(f"for (int og_r = 0; og_r < {int(s.count.value)}; ++og_r) {{")
                self.block(s.body)
                self.out("}")
            else:  # (ScalarLet and the other host statements are not kernel statements)
                raise Unsupported(f"a {type(s).__name__} in the kernel")

    def let(self, s: ir.TensorLet) -> None:
        name = c_name(s.name)
        if s.name in self.pointers:
            if s.alias:
                self.out(f"{name} = {self.address(s.value)};")
                return
            text, kind = self.expr(s.value)
            value = f"og_{s.name}_{len(self.storage)}"
            self.storage.append(value)
            self.out(f"{value} = {self.as_t(text, kind)};")
            self.out(f"{name} = &{value};")
            return
        text, kind = self.expr(s.value)
        if self.kinds.setdefault(s.name, kind) != kind:
            raise Unsupported(f"`{s.name}` holds values of two types")
        self.out(f"{name} = {text};")

    def address(self, e) -> str:
        """Where an alias points: an array's element, or what another alias points at."""
        if not isinstance(e, ir.TRef) or e.index is not None:
            raise Unsupported("an alias of something other than a tensor")
        if e.name in self.pointers:
            return c_name(e.name)
        if e.name in self.arrays:
            self.written.add(e.name)  # (it may be updated through the alias)
            return f"&{self.arrays[e.name]}[i]"
        raise Unsupported(f"an alias of `{e.name}`")

    def inplace(self, s: ir.InPlace) -> None:
        target = s.target
        lvalue = self.lvalue(target)
        for op in s.ops:
            if op.kwargs and op.op in ("copy", "fill"):
                raise Unsupported(f"`{op.op}` with keyword arguments")
            if op.op == "copy":
                text, kind = self.expr(op.args[0])
                value = self.as_t(text, kind)
            elif op.op == "fill":
                value = self.as_t(self.number(op.args[0]), "double")
            else:
                # (as a call on the target: its keywords are op's, see op)
                text, kind = self.expr(ir.TOp(op.op, (target,) + op.args, op.kwargs))
                value = self.as_t(text, kind)
            self.out(f"{lvalue} = {value};")

    def lvalue(self, target: ir.TRef) -> str:
        if target.index is not None:
            raise Unsupported("a list state")
        if target.name in self.pointers:
            return f"(*{c_name(target.name)})"
        if target.name in self.arrays:
            self.written.add(target.name)
            return self._array(target.name)
        if self.kinds.get(target.name) == "T":
            return c_name(target.name)
        raise Unsupported(f"an update in place of `{target.name}`")

    def _array(self, name: str) -> str:
        if name not in self.arrays:
            raise Unsupported(f"`{name}`, a tensor the kernel is not given")
        return f"{self.arrays[name]}[i]"

    # ---- expressions -------------------------------------------------------------------

    @staticmethod
    def as_t(text: str, kind: str) -> str:
        return text if kind == "T" else f"T({text})"

    def expr(self, e) -> tuple[str, str]:
        """An element expression and its kind: "T", "bool" or "double" (a number)."""
        if isinstance(e, ir.TRef):
            if e.index is not None:
                raise Unsupported("a list state")
            if e.role in (ir.Role.TOTAL, ir.Role.FRESH):
                raise Unsupported(f"a {e.role} tensor")
            if e.name in self.pointers:
                return f"(*{c_name(e.name)})", "T"
            if e.name in self.kinds:
                return c_name(e.name), self.kinds[e.name]
            return self._array(e.name), "T"
        if isinstance(e, ir.TOp):
            return self.op(e)
        if isinstance(e, ir.TList):
            raise Unsupported("a list")
        return self.number(e), "double"

    def operands(self, args) -> list[tuple[str, str]]:
        return [self.expr(a) for a in args]

    def op(self, e: ir.TOp) -> tuple[str, str]:
        kwargs = dict(e.kwargs)
        if e.op in ("add", "sub") and set(kwargs) == {"alpha"} and len(e.args) == 2:
            # torch's add(x, y, alpha=a) is one multiply-add (sub: of -a), rounded as its
            # kernel rounds it (runtime.native.og_add_alpha)
            (x, xk), (y, yk), (a, ak) = self.operands((*e.args, kwargs["alpha"]))
            if ak == "double" and "T" in (xk, yk):
                sign = "-" if e.op == "sub" else ""
                return (
                    f"og_add_alpha({self.as_t(x, xk)}, {self.as_t(y, yk)}, T({sign}{a}))",
                    "T",
                )
        if e.kwargs:
            e = fold_call_keywords(e)
            if e.kwargs:
                raise Unsupported(f"`{e.op}` with keyword arguments")
        op, args = e.op, e.args
        if op == "number_like":
            return f"T({self.number(args[1])})", "T"
        vals = self.operands(args)
        arith = "T" if any(k == "T" for _, k in vals) else "double"

        def t(k: int) -> str:  # operand k in the arithmetic's type
            text, kind = vals[k]
            if arith == "double" and kind == "double":
                return text
            return self.as_t(text, kind)

        if op in UNARY and len(vals) == 1:
            if vals[0][1] == "double" and op != "clone":
                raise Unsupported(f"`{op}` of a number inside the kernel")
            return UNARY[op].format(t(0)), vals[0][1] if op == "clone" else "T"
        if op in BINARY and len(vals) == 2:
            return f"({t(0)} {BINARY[op]} {t(1)})", arith
        if op in COMPARE and len(vals) == 2:
            return f"({t(0)} {COMPARE[op]} {t(1)})", "bool"
        if op in CALLS and len(vals) == 2:
            if arith != "T":
                raise Unsupported(f"`{op}` of numbers inside the kernel")
            return f"{CALLS[op]}({t(0)}, {t(1)})", "T"
        if arith != "T" and op not in (
            "where",
            "logical_and",
            "logical_or",
            "logical_not",
        ):
            raise Unsupported(f"`{op}` of numbers inside the kernel")
        if op == "pow" and len(vals) == 2:
            exponent = args[1]
            if isinstance(exponent, ir.SConst) and isinstance(
                exponent.value, (int, float)
            ):
                pattern = POWERS.get(float(exponent.value))
                if pattern is not None:
                    return pattern.format(t(0)), "T"
            raise Unsupported("`pow` to an exponent other than 2, 3, 0.5, -0.5, -1, -2")
        if op == "addcmul" and len(vals) == 3:
            return f"og_addcmul({t(0)}, {t(1)}, {t(2)})", "T"
        if op == "addcdiv" and len(vals) == 3:
            return f"({t(0)} + {t(1)} / {t(2)})", "T"
        if op == "lerp" and len(vals) == 3:
            return f"og_lerp({t(0)}, {t(1)}, {t(2)})", "T"
        if op == "clamp" and len(vals) == 3:
            low, high = args[1], args[2]
            text = t(0)
            if not _none(low):
                text = f"og_clamp_min({text}, {t(1)})"
            if not _none(high):
                text = f"og_clamp_max({text}, {t(2)})"
            return text, "T"
        if op == "where" and len(vals) == 3:
            cond = self.truth(vals[0])
            if vals[1][1] == "double" and vals[2][1] == "double":
                # (torch.where of two numbers: the parameter's dtype, as in the kernel)
                return f"({cond} ? T({vals[1][0]}) : T({vals[2][0]}))", "T"
            return f"({cond} ? {self.as_t(*vals[1])} : {self.as_t(*vals[2])})", "T"
        if op in ("logical_and", "logical_or") and len(vals) == 2:
            sym = "&&" if op == "logical_and" else "||"
            return f"({self.truth(vals[0])} {sym} {self.truth(vals[1])})", "bool"
        if op == "logical_not" and len(vals) == 1:
            return f"(!{self.truth(vals[0])})", "bool"
        raise Unsupported(f"`{op}`, which the native kernel does not write")

    @staticmethod
    def truth(val: tuple[str, str]) -> str:
        text, kind = val
        return text if kind == "bool" else f"({text} != 0)"

    def number(self, e) -> str:
        """A number (SExpr) as a double expression."""
        if isinstance(e, ir.SConst):
            v = e.value
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, (int, float)):
                v = float(v)
                if v != v:
                    return '__builtin_nan("")'
                if v in (float("inf"), float("-inf")):
                    return "__builtin_inf()" if v > 0 else "(-__builtin_inf())"
                return repr(v)
            raise Unsupported(f"the constant {v!r}")
        if isinstance(e, ir.SRef):
            if e.name in self.numbers:
                return self.numbers[e.name]
            if e.name in self.decisions:
                return self.decisions[e.name]
            raise Unsupported(f"`{e.name}`, a number the kernel is not given")
        if isinstance(e, ir.SBin):
            a, b = self.number(e.left), self.number(e.right)
            if e.op in ("+", "-", "*", "/"):
                return f"({a} {e.op} {b})"
            if e.op == "**":
                return f"__builtin_pow({a}, {b})"
            if e.op in ("and", "or"):
                return f"({a} {'&&' if e.op == 'and' else '||'} {b})"
            if e.op in ("==", "!=", "<", "<=", ">", ">="):
                return f"({a} {e.op} {b})"
            raise Unsupported(f"`{e.op}` of numbers in the kernel")
        if isinstance(e, ir.SCompare):
            parts = [self.number(x) for x in e.operands]
            return (
                "("
                + " && ".join(
                    f"({parts[k]} {op} {parts[k + 1]})" for k, op in enumerate(e.ops)
                )
                + ")"
            )
        if isinstance(e, ir.SUnary):
            return f"({'-' if e.op == '-' else '!'}{self.number(e.operand)})"
        if isinstance(e, ir.SCond):
            c, a, b = self.number(e.cond), self.number(e.then), self.number(e.orelse)
            return f"({c} ? {a} : {b})"
        if isinstance(e, ir.SCall):
            if e.func == "numel" and len(e.args) == 1:
                return "double(og_numel)"
            if e.func in NUMBER_CALLS:
                return f"{NUMBER_CALLS[e.func]}({', '.join(self.number(a) for a in e.args)})"
            if e.func in ("min", "max") and len(e.args) == 2:
                # Python's min/max: the first unless the second is smaller/larger
                a, b = (self.number(x) for x in e.args)
                cmp = "<" if e.func == "min" else ">"
                return f"({b} {cmp} {a} ? {b} : {a})"
            raise Unsupported(f"`{e.func}` in the kernel")
        raise Unsupported(f"a {type(e).__name__} in the kernel")


def _none(e) -> bool:
    return isinstance(e, ir.SConst) and e.value is None
