"""Shapes: the tensors of a per-parameter update, shaped symbolically, and the products that cannot run.

Part of the check stage (language → check → lower → emit). Once generator.check.flow has followed
the update, this pass follows it again with the shape of every tensor: the parameter's is
``(size(param, 0), ..., size(param, r-1))`` where its rank ``r`` is known (a requirement
``check dim(param) == 2``, or a branch ``if dim(param) == 2:``), and unknown otherwise; a
transpose reverses a matrix's; a product ``a @ b`` has torch's shape rules; an elementwise
operation broadcasts; a reduction keeps the dimensions it keeps. A matrix product whose inner
dimensions are not provably equal, an elementwise operation whose operands do not broadcast, or a
value stored in a state or the parameter with another shape than theirs, would fail at the first
step (or run only for square parameters): it is refused here (E336), with both shapes. Where a shape
is unknown (a rank no check decides, a value that differs between the branches that set it), nothing
is claimed: the pass reports only what it can prove.

A dimension is an int literal, ``size(param, k)`` (the gradient's and every parameter-shaped
state's are the parameter's), or an int input; two dimensions are provably equal only when they
are the same symbol (``size(param, 0)`` and ``size(param, 1)`` may differ), and a literal 1
broadcasts.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.language import syntax as S
from generator.language.builtins import BUILTINS
from generator.language.diagnostics import Collector
from generator.language.types import Kind, ListOf

# a dimension: ("int", n), ("size", k) of the parameter, ("input", name); a shape: a tuple of
# dimensions (() a number or a 0-d tensor), PARAM (the parameter's, whose rank is not known
# here: its dimensions once a branch or a check decides it), or None (not known)
Dim = tuple
PARAM = "the parameter's shape"
Shape = tuple | str | None

# the names whose shape is the parameter's
_LIKE_PARAM = ("param", "grad")


def _show_dim(d: Dim) -> str:
    kind, value = d
    return {"int": str, "size": lambda k: f"size(param, {k})", "input": str}[kind](
        value
    )


def show(shape: tuple) -> str:
    return (
        "("
        + ", ".join(_show_dim(d) for d in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )


@dataclass
class _Env:
    rank: int | None  # the parameter's, where it is known
    shapes: dict[str, Shape]  # locals
    dims: dict[
        str, Dim
    ]  # whole-number locals of a known dimension (`rows <- size(param, 0)`)

    def copy(self) -> "_Env":
        return _Env(self.rank, dict(self.shapes), dict(self.dims))

    @property
    def param(self) -> Shape:
        return (
            PARAM if self.rank is None else tuple(("size", k) for k in range(self.rank))
        )

    def resolved(self, shape: Shape) -> Shape:
        """``shape`` with PARAM made the parameter's dimensions where the rank is known."""
        return self.param if shape == PARAM else shape


def _rank_condition(e) -> int | None:
    """The rank ``dim(param) == r`` (or of ``grad``) says, in a condition or a check."""
    if (
        isinstance(e, S.Compare)
        and e.ops == ("==",)
        and isinstance(e.operands[0], S.Call)
        and e.operands[0].func == "dim"
        and e.operands[0].args
        and isinstance(e.operands[0].args[0], S.Name)
        and e.operands[0].args[0].id in _LIKE_PARAM
        and isinstance(e.operands[1], S.Number)
        and e.operands[1].is_integer_literal
    ):
        return int(e.operands[1].text)
    if isinstance(e, S.Binary) and e.op == "and":
        return _rank_condition(e.left) or _rank_condition(e.right)
    return None


class Shapes:
    """Follows the per-parameter blocks of ``checker`` (a generator.check.checker.Checker)."""

    def __init__(self, checker):
        self.c = checker
        self.out: Collector = checker.out
        states = checker.states
        # (a lazy state takes the shape of its first value, which may be any)
        self.param_shaped = {
            n
            for n, st in states.items()
            if st.kind == "tensor"
            and st.repeated is None
            and st.reduced is None
            and st.shaped is None
            and not st.lazy
        }
        self.inputs = set(checker.inputs)
        # states of their own shape (`eps * eye(size(param, 0))`): their dimensions, read as
        # the pass reads a whole number's (the parameter's rank is not needed for them)
        self.own_shape = {
            n: st.shaped[0].args
            for n, st in states.items()
            if st.shaped is not None and st.scope == "parameter"
        }

    def run(self, blocks) -> None:
        rank = next(
            (
                r
                for v in self.c.spec.validations
                if (r := _rank_condition(v.expr)) is not None
            ),
            None,
        )
        for b in blocks:
            if b.mode in ("each", "random"):
                self.body(b.body, _Env(rank, {}, {}))

    # -- statements -------------------------------------------------------------------------------------
    def body(self, stmts, env: _Env) -> _Env:
        for s in stmts:
            env = self.stmt(s, env)
        return env

    def stmt(self, s, env: _Env) -> _Env:
        if isinstance(s, S.Assign):
            shape = self.shape(s.value, env)
            name = s.target.id
            if name.endswith("_t") and name[:-2] in self.param_shaped:
                name = name[:-2]
            if name in self.param_shaped or name == "param":
                self.stored(name, shape, env.param, s.value.span)
            elif name in self.own_shape:
                own = self.s_Name(S.Name(name, None, s.target.span), env)
                self.stored(name, shape, own, s.value.span, "its own shape")
            elif name not in self.c.states and name not in self.inputs:
                env.shapes[name] = shape
                dim = self.dim(s.value, env)
                if dim is not None:
                    env.dims[name] = dim
                else:
                    env.dims.pop(name, None)
            return env
        if isinstance(s, S.Check):
            self.shape(s.expr, env)
            rank = _rank_condition(s.expr)
            if rank is not None:
                env = env.copy()
                env.rank = rank
            return env
        if isinstance(s, S.If):
            outs = []
            for cond, body in s.branches:
                self.shape(cond, env)
                inner = env.copy()
                rank = _rank_condition(cond)
                if rank is not None:
                    inner.rank = rank
                after = self.body(body, inner)
                if env.rank is None and inner.rank is not None:
                    # (the parameter's shape, as the branch knew it, is PARAM after it)
                    after.shapes = {
                        n: PARAM if v == inner.param else v
                        for n, v in after.shapes.items()
                    }
                after.rank = env.rank
                outs.append(after)
            outs.append(self.body(s.orelse, env.copy()))
            return _join(env, outs)
        if isinstance(s, (S.Repeat, S.For, S.While)):
            head = {S.Repeat: "count", S.For: "iterable", S.While: "cond"}[type(s)]
            self.shape(getattr(s, head), env)
            # once, then once more from the shapes the first pass left: a value whose shape a
            # pass changes is not known after the loop
            first = self.body(s.body, env.copy())
            return _join(env, [env, self.body(s.body, _join(env, [env, first]))])
        for e in S.expressions(s):
            self.shape(e, env)
        for b in S.sub_blocks(s):
            env = _join(env, [env, self.body(b, env.copy())])
        return env

    def stored(
        self, name: str, shape: Shape, want: Shape, span, whose="the parameter's shape"
    ) -> None:
        if shape is None or want is None or shape == () or shape == want:
            return
        if PARAM in (shape, want) or _broadcasts(shape, want) == want:
            return  # (a rank not known: nothing to prove)
        self.error(
            f"`{name}` has {whose} {show(want)}; the value has shape {show(shape)}",
            span,
            hint="make the value the state's shape (a `transpose`, the other order of a "
            "product), or keep it in a value of its own",
        )

    # -- expressions ------------------------------------------------------------------------------------
    def dim(self, e, env: _Env) -> Dim | None:
        """The dimension a whole number is, where it names one."""
        if isinstance(e, S.Number) and e.is_integer_literal:
            return ("int", int(e.text))
        if isinstance(e, S.Name):
            if e.id in env.dims:
                return env.dims[e.id]
            sym = self.c.inputs.get(e.id)
            if sym is not None and sym.kind == Kind.INT:
                return ("input", e.id)
            return None
        if (
            isinstance(e, S.Call)
            and e.func == "size"
            and len(e.args) == 2
            and isinstance(e.args[0], S.Name)
            and (e.args[0].id in _LIKE_PARAM or e.args[0].id in self.param_shaped)
            and isinstance(e.args[1], S.Number)
            and e.args[1].is_integer_literal
        ):
            k = int(e.args[1].text)
            if env.rank is not None and k >= env.rank:
                return None
            return ("size", k)
        return None

    def shape(self, e, env: _Env) -> Shape:
        method = getattr(self, "s_" + type(e).__name__, None)
        if method is None:
            for c in S.children(e):
                self.shape(c, env)
            return None
        return method(e, env)

    def s_Number(self, e, env):
        return ()

    def s_Bool(self, e, env):
        return ()

    def s_String(self, e, env):
        return ()

    def s_NoneLit(self, e, env):
        return ()

    def s_Name(self, e: S.Name, env):
        name = (
            e.id[:-2]
            if e.id.endswith("_t") and e.id[:-2] in self.param_shaped
            else e.id
        )
        if name in _LIKE_PARAM or name in self.param_shaped:
            return env.param
        if name in env.shapes:
            return env.resolved(env.shapes[name])
        if name in self.own_shape:
            call, dims = self.c.states[name].shaped[0], self.own_shape[name]
            shape = tuple(self.dim(d, _Env(None, {}, {})) for d in dims)
            if call.func == "eye":
                shape = shape * 2
            return None if None in shape else shape
        if name in self.inputs or name in self.c.states:
            sym = self.c.inputs.get(name)
            st = self.c.states.get(name)
            if (sym is not None and not isinstance(sym.kind, ListOf)) or (
                st is not None and st.kind in ("count", "flag")
            ):
                return ()  # a number (a tuple input's items are read by index)
        return None

    def s_Index(self, e: S.Index, env):
        self.shape(e.index, env)
        value = e.value
        if isinstance(value, S.Name) and value.id in self.c.states:
            # (a list state `[0] * n` holds tensors shaped like the parameter; a list made for
            # each dimension, tensors of their own shapes)
            st = self.c.states[value.id]
            return env.param if st.repeated is not None else None
        if isinstance(value, S.Name) and value.id in self.inputs:
            return ()
        return None

    def s_Unary(self, e: S.Unary, env):
        return self.shape(e.operand, env)

    def s_Conditional(self, e: S.Conditional, env):
        self.shape(e.cond, env)
        a, b = self.shape(e.then, env), self.shape(e.orelse, env)
        return a if a == b else None

    def s_Compare(self, e: S.Compare, env):
        shapes = [self.shape(x, env) for x in e.operands]
        return self.broadcast(shapes, e)

    def s_Binary(self, e: S.Binary, env):
        a, b = self.shape(e.left, env), self.shape(e.right, env)
        if e.op in ("and", "or"):
            return self.broadcast([a, b], e)
        if e.op == "@":
            return self.matmul(a, b, e)
        return self.broadcast([a, b], e)

    def s_Call(self, e: S.Call, env):
        shapes = [self.shape(a, env) for a in e.args]
        b = BUILTINS.get(e.func)
        if b is None:
            return None
        if b.result in (Kind.INT, Kind.SCALAR, Kind.BOOL):
            return ()
        if (
            PARAM in shapes
            and e.func not in ("bfloat16", "clone")
            and not b.elementwise
        ):
            return None  # (a shape read off a rank not known)
        if e.func == "transpose":
            x = shapes[0]
            if x is None or len(x) != 2:
                return None if x is None or len(x) > 2 else x
            return (x[1], x[0])
        if e.func in ("sum", "dot"):
            return ()
        if e.func in ("norm", "mean"):
            x = shapes[0]
            if len(e.args) == 1:
                return ()
            d = self.dim(e.args[1], env)
            if x is None or d is None or d[0] != "int":
                return None
            k = d[1] if d[1] >= 0 else len(x) + d[1]
            return None if not 0 <= k < len(x) else x[:k] + (("int", 1),) + x[k + 1 :]
        if e.func in ("max_except", "mean_except"):
            x, d = shapes[0], self.dim(e.args[1], env)
            if x is None or d is None or d[0] != "int" or not -len(x) <= d[1] < len(x):
                return None if x != () else ()
            k = d[1] % len(x)
            return tuple(n if i == k else ("int", 1) for i, n in enumerate(x))
        if e.func == "onehot":
            return env.param
        if b.elementwise:
            return self.broadcast(shapes, e)
        if e.func in ("bfloat16", "clone"):
            return shapes[0]
        if e.func == "trace":
            x = shapes[0]
            self.square(e, x)
            return ()
        if e.func == "diag":
            x = shapes[0]
            if x is None or len(x) not in (1, 2):
                return None
            if len(x) == 1:
                return (x[0], x[0])
            return None if x[0] != x[1] else (x[0],)
        if e.func in ("inverse_root", "cholesky"):
            x = shapes[0]
            if x is not None and len(x) == 2 and x[0] != x[1]:
                self.error(
                    f"`{e.func}` takes a square matrix; this one has shape {show(x)}",
                    e.args[0].span,
                    hint="a product with its transpose is square: "
                    "`inverse_root(g @ transpose(g), 4)`",
                )
                return None
            return x
        return None

    def square(self, e: S.Call, x: Shape) -> None:
        if x is not None and x != PARAM and len(x) == 2 and x[0] != x[1]:
            self.error(
                f"`{e.func}` takes a square matrix; this one has shape {show(x)}",
                e.args[0].span,
                hint="a product with its transpose is square: `g @ transpose(g)`",
            )

    # -- the rules --------------------------------------------------------------------------------------
    def broadcast(self, shapes: list[Shape], e) -> Shape:
        known = [s for s in shapes if s is not None]
        if len(known) < len(shapes):
            # a number broadcasts to anything; an unknown shape leaves the result unknown
            return None
        if PARAM in known:  # (the parameter's shape, with numbers, is the parameter's)
            return PARAM if all(s in ((), PARAM) for s in known) else None
        out: tuple = ()
        for s in known:
            joined = _broadcasts(out, s)
            if joined is None:
                self.error(
                    f"shapes {show(out)} and {show(s)} do not broadcast: the operation "
                    "is elementwise",
                    e.span,
                    hint="the dimensions must be equal, or one of them 1 (two sizes of "
                    "the parameter count as different: they differ for most parameters)",
                )
                return None
            out = joined
        return out

    def matmul(self, a: Shape, b: Shape, e) -> Shape:
        if a is None or b is None or a == () or b == () or PARAM in (a, b):
            return None  # (a number's `@` is E309's; a rank not known proves nothing)
        inner_a = a[-1]
        inner_b = b[0] if len(b) == 1 else b[-2]
        if inner_a != inner_b:
            self.error(
                f"the product of shapes {show(a)} and {show(b)} is not defined: "
                f"{_show_dim(inner_a)} columns against {_show_dim(inner_b)} rows",
                e.span,
                hint="transpose one side (`transpose(x)`), or multiply in the other order",
            )
            return None
        if len(a) == 1 and len(b) == 1:
            return ()
        if len(a) == 1:
            return b[:-2] + b[-1:]
        if len(b) == 1:
            return a[:-1]
        if len(a) == 2 and len(b) == 2:
            return (a[0], b[1])
        return None  # (batched products: torch's broadcasting of the batch dimensions)

    def error(self, message: str, span, hint: str | None = None) -> None:
        self.out.error("E336", message, span, hint=hint)


def _broadcasts(a: tuple, b: tuple) -> tuple | None:
    """torch's broadcast of two known shapes, or None where a dimension pair cannot be."""
    out = []
    for k in range(1, max(len(a), len(b)) + 1):
        x = a[-k] if k <= len(a) else ("int", 1)
        y = b[-k] if k <= len(b) else ("int", 1)
        if x == y or y == ("int", 1):
            out.append(x)
        elif x == ("int", 1):
            out.append(y)
        else:
            return None
    return tuple(reversed(out))


def _join(before: _Env, envs: list[_Env]) -> _Env:
    """After branches (or a loop that may run again): a local's shape where all agree."""
    out = before.copy()
    names = set().union(*(e.shapes for e in envs))
    for name in names:
        values = [e.shapes.get(name, before.shapes.get(name)) for e in envs]
        out.shapes[name] = values[0] if all(v == values[0] for v in values) else None
    dims = set().union(*(e.dims for e in envs))
    for name in dims:
        values = [e.dims.get(name) for e in envs]
        if all(v == values[0] for v in values) and values[0] is not None:
            out.dims[name] = values[0]
        else:
            out.dims.pop(name, None)
    return out


def check_shapes(checker, blocks) -> None:
    """E336 for every product, elementwise operation or stored value whose shapes cannot run."""
    Shapes(checker).run(blocks)
