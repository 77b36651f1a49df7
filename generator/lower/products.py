"""The multi-tensor path's algebra: products regrouped into one fused foreach operation.

The for-loop is held to torch's for-loop bit for bit, so the lowering keeps the spec's order of
operations: RAdam's ``param - m_hat * lr * adaptive_lr * rect`` with ``m_hat = m / bc1`` and
``adaptive_lr = bc2^0.5 / (sqrt(v) + eps)`` is a division, a square root, an addition, a
reciprocal and five multiplications, each a pass over every tensor, two of them into new ones.
The foreach path is held to a tolerance instead (torch's own foreach paths regroup, its RAdam
computes ``param.addcmul_(m, buffer)`` with the bias corrections folded into the numbers), and
passes over memory are what its time is made of. This pass rewrites the foreach path's IR:

* a local that is a product (``m_hat = m / bc1``, ``adaptive_lr = s / (sqrt(v) + eps)``) and is
  read only as a factor of an update's product is replaced by its value there (a scaled tensor
  wherever it is read, any product where it is read once), so it is never made;
* an update ``x ± c·Πnum/Πden`` becomes ``x.addcdiv_(a, d, value=±c)`` or ``x.addcmul_(a, b,
  value=±c)`` with every number of the product gathered in ``c`` (computed on the host, per
  tensor where it varies), or ``x.add_(a, alpha=±c)`` for one tensor and a number the same for
  every tensor.

RAdam's step then reads ``param.addcdiv_(m, sqrt(v) + eps, value=-(lr·rect·√bc2 / bc1))``: three
passes after the moments where torch's foreach makes six. Only products of whole tensors
(parameter, gradient, states shaped like it, their elementwise functions) are regrouped: a
reduced or a differently typed one keeps its own operations, whose broadcasting or casts matter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from generator import ir

# Operations computed element by element on operands of one shape: a product's factor built of
# them over whole tensors is a whole tensor too.
ELEMENTWISE = frozenset(
    {
        "abs",
        "add",
        "addcdiv",
        "addcmul",
        "atan2",
        "clamp",
        "clamp_max",
        "clamp_min",
        "clone",
        "cos",
        "div",
        "exp",
        "lerp",
        "log",
        "maximum",
        "minimum",
        "mul",
        "neg",
        "pow",
        "reciprocal",
        "rsqrt",
        "sign",
        "sin",
        "sqrt",
        "square",
        "sub",
        "where",
    }
)


def _tensor(x) -> bool:
    return isinstance(x, (ir.TRef, ir.TOp, ir.TList))


@dataclass
class _Product:
    """``Π coef_num / Π coef_den · Π num / Π den``, factors in the order they were met."""

    num: list
    den: list
    coef_num: list
    coef_den: list

    def inverted(self) -> "_Product":
        return _Product(self.den, self.num, self.coef_den, self.coef_num)

    def times(self, other: "_Product") -> "_Product":
        return _Product(
            self.num + other.num,
            self.den + other.den,
            self.coef_num + other.coef_num,
            self.coef_den + other.coef_den,
        )


def _flatten(e) -> _Product:
    """The factors of a product tree of mul, div and reciprocal (anything else is a factor)."""
    if isinstance(e, ir.TOp) and not e.kwargs:
        if e.op == "mul" and len(e.args) == 2:
            left = _flatten(e.args[0])
            b = e.args[1]
            right = _flatten(b) if _tensor(b) else _Product([], [], [b], [])
            return left.times(right)
        if e.op == "div" and len(e.args) == 2:
            left = _flatten(e.args[0])
            b = e.args[1]
            right = _flatten(b) if _tensor(b) else _Product([], [], [b], [])
            return left.times(right.inverted())
        if e.op == "reciprocal" and len(e.args) == 1:
            return _flatten(e.args[0]).inverted()
    return _Product([e], [], [], [])


def _scalar_product(factors: list, divisors: list, sign: int):
    """``sign · Π factors / Π divisors`` as one scalar expression (None: exactly 1)."""
    value = None
    for f in factors:
        value = f if value is None else ir.SBin("*", value, f)
    for d in divisors:
        value = ir.SBin("/", ir.number("1") if value is None else value, d)
    if sign < 0:
        value = ir.number("-1") if value is None else ir.SUnary("-", value)
    return value


def _varying(e) -> bool:
    return ir.uses(e, lambda r: isinstance(r, ir.SRef) and r.varying)


class _Algebra:
    def __init__(self, opt: ir.Optimizer):
        # states shaped and typed like the parameter: whole tensors
        self.whole_states = {
            s.var
            for s in opt.states
            if s.kind == ir.StateKind.TENSOR
            and s.scope == ir.Scope.PARAMETER
            and s.reduced is None
            and s.shape is None
            and s.length is None
            and s.dtype is None
            and s.stored_as is None
        }
        self.whole_locals: set[str] = set()
        self.var_of = {s.key: s.var for s in opt.states}

    # ---- which expressions are whole tensors ---------------------------------------------

    def whole(self, e) -> bool:
        if isinstance(e, ir.TRef):
            if e.index is not None:
                return False
            if e.role in (ir.Role.PARAM, ir.Role.GRAD):
                return True
            if e.role == ir.Role.STATE:
                return e.name in self.whole_states
            return e.role == ir.Role.LOCAL and e.name in self.whole_locals
        if isinstance(e, ir.TOp):
            return e.op in ELEMENTWISE and all(
                self.whole(a) for a in e.args if _tensor(a)
            )
        return False

    def product(self, e) -> _Product | None:
        """The factors of ``e`` where every one is a whole tensor or a number."""
        p = _flatten(e)
        if not p.num and not p.den:
            return None
        if not all(self.whole(f) for f in p.num + p.den):
            return None
        return p

    # ---- updates: x ± c·Πnum/Πden as one fused operation ----------------------------------------

    def fused_op(self, op: ir.TOp) -> ir.TOp:
        """An in-place operation's regrouped form (the operation itself where none is better)."""
        update = _update_product(op)
        if update is None:
            return op
        sign, coef, p = update
        if not p.num or not all(self.whole(f) for f in p.num + p.den):
            return op
        factors = coef + p.coef_num
        if len(p.num) == 1 and not p.den:
            if not p.coef_num and not p.coef_den:
                return op  # (nothing to gather)
            value = _scalar_product(factors, p.coef_den, sign)
            if not _varying(value):
                return ir.TOp("add", (p.num[0],), (("alpha", value),))
            # (foreach's alpha= takes one number: one product by the numbers' list, then the
            # sum, as the operation was)
            scale = _scalar_product(p.coef_num, p.coef_den, 1)
            return replace(op, args=(ir.TOp("mul", (p.num[0], scale)),))
        value = _scalar_product(factors, p.coef_den, sign)
        kw = () if value is None else (("value", value),)
        if p.den:
            num = _rebuild(p.num)
            den = _rebuild(p.den)
            return ir.TOp("addcdiv", (num, den), kw)
        return ir.TOp("addcmul", (_rebuild(p.num[:-1]), p.num[-1]), kw)

    # ---- locals read only as factors: replaced by their value -----------------------------

    def block(self, stmts: tuple) -> tuple:
        stmts, done = list(stmts), []
        k = 0
        while k < len(stmts):
            s = stmts[k]
            if isinstance(s, ir.TensorLet):
                inlined = self._inline(s, stmts, k)
                if inlined is not None:
                    stmts = inlined  # (s is gone: the next statement is at k)
                    continue
            done.append(self.stmt(s))
            k += 1
        return tuple(done)

    def stmt(self, s):
        if isinstance(s, ir.TensorLet):
            if not s.alias and self.whole(s.value):
                self.whole_locals.add(s.name)
            else:
                self.whole_locals.discard(s.name)
            return s
        if isinstance(s, ir.InPlace):
            if not self.whole(s.target):
                return s
            return replace(s, ops=tuple(self.fused_op(op) for op in s.ops))
        if isinstance(s, ir.If):
            before = set(self.whole_locals)
            then = self.block(s.then)
            self.whole_locals = set(before)
            orelse = self.block(s.orelse)
            self.whole_locals = set(before)
            traced = None if s.traced is None else self.block(s.traced)
            self.whole_locals = before
            return replace(s, then=then, orelse=orelse, traced=traced)
        if isinstance(s, ir.LazyInit):
            before = set(self.whole_locals)
            update = self.block(s.update)
            self.whole_locals = before
            return replace(s, update=update)
        if isinstance(s, (ir.Repeat, ir.ForRange)):
            before = set(self.whole_locals)
            body = self.block(s.body)
            self.whole_locals = before
            return replace(s, body=body)
        return s

    def written(self, stmts) -> set[str]:
        """The names these statements (and nested ones) change or bind: tensors in place,
        locals, scalars, counters (by key), lazily made states (by key and by name); "*" for a
        statement of another kind, across which nothing is moved."""
        names: set[str] = set()
        for t in _statements(stmts):
            if isinstance(t, ir.InPlace):
                names.add(t.target.name)
            elif isinstance(t, (ir.TensorLet, ir.ScalarLet)):
                names.add(t.name)
            elif isinstance(t, (ir.CountUpdate, ir.LazyInit)):
                names.update((t.state, self.var_of.get(t.state, t.state)))
            elif isinstance(t, (ir.SetItem, ir.ListAppend, ir.ListPopFirst)):
                names.add(t.target.name)
            elif not isinstance(t, (ir.If, ir.Probe, ir.Raise)):
                names.add("*")
        return names

    def _inline(self, s: ir.TensorLet, stmts: list, k: int) -> list | None:
        """``stmts`` with the local ``s`` binds replaced by its value where it is read, and
        ``s`` gone; None where that would compute more or read a changed value."""
        if s.alias or not self.whole(s.value):
            return None
        p = self.product(s.value)
        if p is None or len(p.num) + len(p.den) == 0:
            return None
        local = ir.TRef(s.name, ir.Role.LOCAL)
        rest = stmts[k + 1 :]
        reads = [_reads_of(r, s.name) for r in rest]
        count = sum(n for n, _ in reads)
        if count == 0:
            return None
        if any(not ok for _, ok in reads):
            return None
        factors = p.num + p.den
        scaled = bool(p.coef_num or p.coef_den)
        if count == 1 and not (scaled or len(factors) > 1):
            return None  # (one factor and no number: nothing to regroup)
        # read more than once: only a scaled tensor costs nothing where it is read
        if count > 1 and not (
            scaled and len(factors) == 1 and isinstance(factors[0], ir.TRef)
        ):
            return None
        if s.name in self.written(rest):
            return None  # (bound again: a later read may be of the new value)
        last = max(j for j, (n, _) in enumerate(reads) if n)
        changed = self.written(rest[: last + 1])
        read = set(ir.refs(s.value, ir.TRef)) | set(ir.refs(s.value, ir.SRef))
        if "*" in changed or read & changed:
            return None
        if any(_loops(r) for r, (n, _) in zip(rest, reads) if n):
            return None
        return stmts[:k] + [ir.substitute(r, local, s.value) for r in rest]


def _update_product(op: ir.TOp):
    """An in-place operation that adds a product, ``x ± c·P`` (``add``/``sub`` with its
    ``alpha``, ``addcmul``/``addcdiv`` with its ``value``), as (sign, [c], P's factors); None
    for any other."""
    kwargs = dict(op.kwargs)
    if not all(_tensor(a) for a in op.args):
        return None
    if op.op in ("add", "sub") and len(op.args) == 1 and set(kwargs) <= {"alpha"}:
        p = _flatten(op.args[0])
        key = "alpha"
    elif (
        op.op in ("addcmul", "addcdiv")
        and len(op.args) == 2
        and set(kwargs) <= {"value"}
    ):
        second = _flatten(op.args[1])
        p = _flatten(op.args[0]).times(
            second if op.op == "addcmul" else second.inverted()
        )
        key = "value"
    else:
        return None
    return (-1 if op.op == "sub" else 1), [kwargs[key]] if key in kwargs else [], p


def _rebuild(factors: list):
    acc = factors[0]
    for f in factors[1:]:
        acc = ir.TOp("mul", (acc, f))
    return acc


def _reads_of(s, name: str) -> tuple[int, bool]:
    """(how often ``s`` and its nested statements read the local ``name``, whether every read
    is a factor of an update's product: a position where the value is absorbed)."""
    count, ok = 0, True
    for t in _statements([s]):
        for e in ir.expressions(t):
            n = _count(e, name)
            if not n:
                continue
            count += n
            if not (isinstance(t, ir.InPlace) and _factor_reads(t, name) == n):
                ok = False
        if isinstance(t, ir.InPlace) and t.target.name == name:
            ok = False
    return count, ok


def _count(e, name: str) -> int:
    found = [0]

    def visit(x):
        if isinstance(x, ir.TRef) and x.name == name and x.role == ir.Role.LOCAL:
            found[0] += 1
        return False

    ir.uses(e, visit)
    return found[0]


def _factor_reads(s: ir.InPlace, name: str) -> int:
    """The reads of ``name`` in ``s`` that are factors of an ``add``/``sub`` operand's product."""
    n = 0
    for op in s.ops:
        update = _update_product(op)
        if update is not None:
            p = update[2]
            n += sum(
                1
                for f in p.num + p.den
                if isinstance(f, ir.TRef) and f.name == name and f.role == ir.Role.LOCAL
            )
    return n


def _loops(s) -> bool:
    return any(
        isinstance(t, (ir.Repeat, ir.ForRange, ir.While)) for t in _statements([s])
    )


def _statements(stmts):
    """Every statement, nested ones after their parent, an `if`'s traced form included
    (``ir.walk`` leaves it out; the local is replaced there too, so its reads count)."""
    for s in ir.walk(stmts):
        yield s
        if isinstance(s, ir.If) and s.traced is not None:
            yield from _statements(s.traced)


def regroup(opt: ir.Optimizer, stmts) -> tuple:
    """The foreach path's form of ``stmts`` (see the module's docstring)."""
    return _Algebra(opt).block(tuple(stmts))
