"""Expressions and their types: the typer of the per-parameter blocks.

Part of the check stage (language → check → lower → emit). ``Typer`` gives an expression its type
in the language's lattice (generator.language.types: ``bool``, ``scalar``, ``int``, ``str``,
``tensor``, ``tensorbool`` for an elementwise comparison inside ``where``, a list of tensors) and
whether it is *dynamic* (depends on a counter) or *varying* (differs between parameters),
reporting every misuse (an unknown name or function, a tensor as a condition, a wrong argument,
a list where one of its items belongs). Each expression of these blocks has one type (a flat
update's names may hold several: generator.check.types infers their unions).
generator.check.checker types requirements and state initial values with it;
generator.check.flow types the update's statements, and the typer reports each name it reads back
to that flow (read before assigned, subscripts, state conditions).
"""

from __future__ import annotations

from generator.language import syntax as S
from generator.language.builtins import BUILTINS, CONSTANTS, LIST
from generator.language.diagnostics import Collector, Note, did_you_mean
from generator.language.names import BUILTIN_TENSORS
from generator.language.spec_printer import print_expr
from generator.language.types import TENSORS, Kind, ListOf
from generator.check.model import NoForm

MASK_HINT = (
    "a mask is true or false per element: where(mask, a, b) chooses by it, "
    "where(mask, 1, 0) makes it numbers"
)


class Typer:
    """The kind of one expression in one context ("validation", "state", "state_condition",
    "update", "where"); ``checker`` is the generator.check.checker.Checker whose names and
    collector it uses, ``flow`` the generator.check.flow.Flow that follows the update (None
    outside it)."""

    def __init__(self, checker, context: str, env: dict, flow):
        self.c, self.context, self.env, self.flow = checker, context, env, flow
        self.dynamic = False
        self.varying = False

    def error(self, *a, **k):
        self.c.out.error(*a, **k)

    def kind(self, e) -> Kind | None:
        """The type of ``e``, a value that is not a list (a list is read by its items)."""
        k = self.any_kind(e)
        if isinstance(k, ListOf):
            self.error(
                "E507",
                f"`{print_expr(e)}` is a list: a value here is one of its items",
                e.span,
                hint=f"read an item, `{print_expr(e)}[k]`, or its length, "
                f"`len({print_expr(e)})`",
            )
            return None
        return k

    def any_kind(self, e) -> Kind | ListOf | None:
        """The type of ``e``, which may be a list (the operand of an index or of ``len``)."""
        method = getattr(self, "k_" + type(e).__name__)
        return method(e)

    def k_Number(self, e):
        return Kind.INT if e.is_integer_literal else Kind.SCALAR

    def k_Bool(self, e):
        return Kind.BOOL

    def k_NoneLit(self, e):
        self.error(
            "E305",
            "`none` is only a default value, or compared with `==` / `!=`",
            e.span,
        )

    def k_String(self, e):
        return Kind.STR

    def k_Tuple(self, e):
        self.error("E305", "a tuple is only a default value", e.span)

    def k_Index(self, e):
        lk = self.any_kind(e.value)
        ik = self.kind(e.index)
        if ik not in (Kind.INT, None):
            self.error(
                "E507",
                "a list's item is chosen by a whole number (a loop's counter)",
                e.index.span,
            )
        if lk is None:
            return None
        if not isinstance(lk, ListOf):
            self.error("E507", f"`{print_expr(e.value)}` is not a list", e.value.span)
            return None
        (item,) = lk.item  # (a list of a per-parameter update holds items of one type)
        if lk != TENSORS and self.flow is not None:
            # (a fused kernel takes its numbers one by one, as 0-d tensors)
            self.flow.no_form(
                NoForm("an item of a tuple of numbers", e.span, frozenset({"fused"}))
            )
        return item

    def k_List(self, e):
        for x in e.items:
            k = self.kind(x)
            if k not in (Kind.TENSOR, None):
                self.error(
                    "E507",
                    "a per-parameter update's list holds tensors",
                    x.span,
                    hint="numbers decided per step are names of their own; a whole-vector "
                    "algorithm's lists of numbers belong to `update flat:`",
                )
        return TENSORS

    def k_ListOver(self, e: S.ListOver):
        self.error(
            "E507",
            "a list made for each k is the first value of a state: "
            "`state P <- [eps * eye(size(param, k)) for k in range(dim(param))]`",
            e.span,
            hint="in an update, loop over its items: `for k in range(len(P)):`",
        )
        return None

    def _repeated_list(self, items: S.List, count: S.Expr):
        """``[x] * n``: a list of n items."""
        t = self.any_kind(items)
        if self.kind(count) not in (Kind.INT, None):
            self.error("E507", "a list is repeated a whole number of times", count.span)
        return t

    def k_Name(self, e: S.Name):
        if e.id in CONSTANTS and e.id not in self.env:
            # `pi` (a spec naming something `pi` has had its error from check_name: its own
            # symbol is read then, so that no other error follows from that one)
            if e.subscript is not None:
                self.error(
                    "E306", f"`{e.id}` is a constant: it has no time subscript", e.span
                )
                return None
            return CONSTANTS[e.id].kind
        sym = self.env.get(e.id)
        name, sub = e.id, e.subscript
        if (
            sym is None
            and sub is None
            and name.endswith("_t")
            and name[:-2] in self.env
        ):
            name, sub = name[:-2], "t"
            sym = self.env[name]
        if sym is None:
            if self.flow is not None and name in self.flow.pending:
                self.error(
                    "E306",
                    f"`{name}` is used before it is assigned",
                    e.span,
                    notes=[Note("assigned here", self.flow.pending[name])],
                )
                return None
            if self.context == "state" and (
                name in self.c.states or name in BUILTIN_TENSORS
            ):
                self.error(
                    "E303",
                    f"a state's initial value cannot use `{name}`: it is a number known when "
                    "the optimizer is built",
                    e.span,
                    hint="for a first value taken from the update, declare the state `lazy` "
                    "and assign it with `initially` (`<- grad` and `<- param` are copies of "
                    "the first gradient and of the parameter)",
                )
                return None
            if self.flow is not None and self.flow.mode == "method":
                if outside_for_each(self.flow, name, e.span):
                    return None
            if self.context == "validation" and name == "grad":
                # a check on the gradient runs at each step (is_sparse(grad))
                return Kind.TENSOR
            if self.context in ("validation", "state_condition") and name == "param":
                # a check on each parameter when the optimizer is built
                return Kind.TENSOR
            if self.context == "validation" and (
                name in self.c.states or name in BUILTIN_TENSORS
            ):
                self.error(
                    "E306",
                    f"`{name}` does not exist when the optimizer is built",
                    e.span,
                    hint="requirements may only name inputs",
                )
                return None
            candidates = list(self.env) + (list(self.flow.defined) if self.flow else [])
            self.error(
                "E306",
                f"undefined name `{name}`",
                e.span,
                hint=did_you_mean(name, candidates),
            )
            return None
        if sym.role == "input":
            self.c.used.add(name)
        if isinstance(sym.kind, ListOf) and sub is not None:
            self.error(
                "E306",
                f"`{name}` is a list: its items have no time subscript",
                e.span,
                hint=f"read the item as it is now, `{name}[k]`",
            )
            return None
        if self.flow is not None:
            self.flow.on_read(name, sub, e.span)
        self.dynamic |= sym.dynamic
        self.varying |= sym.varying
        return sym.kind

    def k_Unary(self, e: S.Unary):
        k = self.kind(e.operand)
        if e.op == "not":
            # (of a mask, elementwise: the mask of the elements where it is false)
            if k == Kind.MASK:
                return Kind.MASK
            if k not in (Kind.BOOL, None):
                self.error("E307", "`not` needs a condition", e.operand.span)
            return Kind.BOOL
        if k == Kind.MASK:
            self.error("E309", "a mask cannot be negated", e.span, hint=MASK_HINT)
            return None
        if k == Kind.BOOL:
            self.error("E307", "cannot negate a condition; use `not`", e.span)
            return None
        return k

    def k_Binary(self, e: S.Binary):
        repeated = S.repeated_list(e)
        if repeated is not None:
            return self._repeated_list(*repeated)
        lk, rk = self.kind(e.left), self.kind(e.right)
        if e.op in ("and", "or") and Kind.MASK in (lk, rk):
            # masks join element by element; a mask and a condition do not mix
            other = e.right if lk == Kind.MASK else e.left
            if {lk, rk} - {Kind.MASK, None}:
                self.error(
                    "E307",
                    f"`{e.op}` joins two masks (element by element) or two conditions, "
                    "not one of each",
                    other.span,
                    hint="compare the tensor too (`grad > 0`), or decide the condition "
                    "around it with `if`",
                )
                return None
            return Kind.MASK
        if e.op not in ("and", "or") and Kind.MASK in (lk, rk):
            side = e.left if lk == Kind.MASK else e.right
            self.error(
                "E309",
                f"a mask cannot be an operand of `{e.op}`",
                side.span,
                hint=MASK_HINT,
            )
            return None
        if e.op in ("and", "or"):
            for side, k in ((e.left, lk), (e.right, rk)):
                if k == Kind.TENSOR:
                    self.error(
                        "E308",
                        f"a tensor cannot be a condition of `{e.op}`",
                        side.span,
                        hint="reduce it first, or use where(...) for elementwise choice",
                    )
                elif k not in (Kind.BOOL, None):
                    self.error(
                        "E307",
                        f"`{e.op}` joins conditions",
                        side.span,
                        hint="compare the value, e.g. `x != 0`",
                    )
            return Kind.BOOL
        if lk is None or rk is None:
            return None
        for side, k in ((e.left, lk), (e.right, rk)):
            if k == Kind.BOOL:
                self.error(
                    "E307", f"a condition cannot be an operand of `{e.op}`", side.span
                )
                return None
            if k == Kind.STR:
                self.error(
                    "E307",
                    f"a string cannot be an operand of `{e.op}`",
                    side.span,
                    hint='strings are only compared: `adjust_lr_fn == "original"`',
                )
                return None
        if e.op == "@" and (lk, rk) != (Kind.TENSOR, Kind.TENSOR):
            self.error(
                "E309",
                "`@` multiplies matrices: both sides must be tensors",
                e.span,
                hint="for a number times a tensor write `*`",
            )
        if e.op in ("%", "//") and Kind.TENSOR in (lk, rk):
            self.error(
                "E309", f"`{e.op}` is for numbers (step counts), not tensors", e.span
            )
        if e.op == "^" and rk == Kind.TENSOR:
            self.error("E309", "the exponent must be a number", e.right.span)
        if Kind.TENSOR in (lk, rk):
            return Kind.TENSOR
        if lk == rk == Kind.INT and e.op in ("+", "-", "*", "%", "//"):
            return Kind.INT
        return Kind.SCALAR

    def k_Compare(self, e: S.Compare):
        nones = [isinstance(x, S.NoneLit) for x in e.operands]
        if any(nones):
            # `eps1 == none`: whether an optional input was left out
            if len(e.ops) != 1 or e.ops[0] not in ("==", "!=") or all(nones):
                self.error(
                    "E307",
                    "`none` is compared with `==` or `!=` to one optional input",
                    e.span,
                )
                return Kind.BOOL
            other = e.operands[nones.index(False)]
            self.kind(other)
            sym = self.env.get(other.id) if isinstance(other, S.Name) else None
            if sym is None or sym.role != "input" or not sym.optional:
                self.error(
                    "E307",
                    "only an optional input (a type with `?`) can be `none`",
                    other.span,
                )
            return Kind.BOOL
        kinds = [self.kind(x) for x in e.operands]
        if None in kinds:
            return Kind.BOOL
        if Kind.STR in kinds:
            if set(kinds) != {Kind.STR} or any(op not in ("==", "!=") for op in e.ops):
                self.error(
                    "E307",
                    "a string is only compared with another string, with == or !=",
                    e.span,
                )
            return Kind.BOOL
        if Kind.MASK in kinds:
            self.error("E309", "a mask cannot be compared", e.span, hint=MASK_HINT)
            return None
        if Kind.TENSOR in kinds:
            # an elementwise comparison: a mask (a value, read by where(...), and/or/not);
            # a condition of `if` needs a number (E308 there)
            if len(e.ops) > 1:
                self.error(
                    "E307",
                    "a comparison of tensors compares two values: join two comparisons "
                    "with `and` (`0 < x and x < 1`)",
                    e.span,
                )
                return None
            return Kind.MASK
        if Kind.BOOL in kinds and any(op not in ("==", "!=") for op in e.ops):
            self.error("E307", "conditions can only be compared with == and !=", e.span)
        return Kind.BOOL

    def k_Conditional(self, e: S.Conditional):
        ck = self.kind(e.cond)
        if ck == Kind.TENSOR or ck == Kind.MASK:
            self.error(
                "E308",
                "a tensor cannot be the condition of `if ... else`",
                e.cond.span,
                hint="use where(condition, a, b) for an elementwise choice",
            )
        elif ck not in (Kind.BOOL, None):
            self.error(
                "E307",
                "the condition must be true or false",
                e.cond.span,
                hint="compare it, e.g. `x != 0`",
            )
        if self.flow is not None:
            self.flow.conditions.append(e.cond)
        a = self.kind(e.then)
        if self.flow is not None:
            self.flow.conditions.pop()
            self.flow.conditions.append(S.Unary("not", e.cond, e.cond.span))
        b = self.kind(e.orelse)
        if self.flow is not None:
            self.flow.conditions.pop()
        if None in (a, b):
            return None
        if Kind.BOOL in (a, b) and a != b:
            self.error("E307", "both branches must be conditions, or neither", e.span)
        return Kind.TENSOR if Kind.TENSOR in (a, b) else a if a == b else Kind.SCALAR

    def k_Call(self, e: S.Call):
        if e.func in self.c.procedures:
            if e not in self.c.failed_calls:  # (one whose inlining failed is reported)
                self.error(
                    "E503",
                    f"`{e.func}` is a procedure: its call is the whole value of an "
                    "assignment",
                    e.func_span or e.span,
                    hint=f"assign it first (`v <- {e.func}(...)`), then use `v` here",
                )
            for a in e.args:
                self.kind(a)
            for _, v in e.keywords:
                self.kind(v)
            return None
        if e.keywords:
            flat_only(self.c.out, "a keyword argument", e.keywords[0][1].span)
            return None
        b = BUILTINS.get(e.func)
        if b is None:
            self.error(
                "E310",
                f"unknown function `{e.func}`",
                e.func_span or e.span,
                hint=did_you_mean(e.func, BUILTINS)
                or "see the language reference for the functions a spec can call",
            )
            for a in e.args:
                self.kind(a)
            return None
        if b.context == "flat":
            flat_only(self.c.out, f"`{e.func}`", e.func_span or e.span)
            for a in e.args:
                self.kind(a)
            return None
        if b.context == "estimate" and self.context != "estimate":
            # (its one place, the whole value of a state in `update optimizer:`, is found by
            # generator.check.assignments, which checks the call in the "estimate" context)
            self.error(
                "E310",
                f"`{e.func}` makes a state of every parameter at once: it is the whole value "
                "of a lazy per-parameter state in `update optimizer:`",
                e.span,
                hint=f"`update optimizer:` then `D <- {e.func}(...)`, and read `D` in "
                "`update:`",
            )
            for a in e.args:
                self.kind(a)
            return None
        if b.context == "state" and self.context != "state":
            self.error(
                "E310",
                f"`{e.func}` makes the first value of a state of its own shape",
                e.span,
                hint="declare the state with it, e.g. `state L <- eps * eye(size(param, 0))`",
            )
            for a in e.args:
                self.kind(a)
            return None
        if b.tensor is not None and b.tensor.runtime is not None:
            self.c.runtime_called.add(e.func)
        if self.context == "validation" and b.context == "update":
            self.error("E310", f"`{e.func}` cannot be used in a requirement", e.span)
        if self.context != "validation" and b.context == "validation":
            self.error("E310", f"`{e.func}` is only for requirements on inputs", e.span)
        least = len(b.params) - b.optional
        if not least <= len(e.args) <= len(b.params):
            count = (
                f"{least} or {len(b.params)} arguments"
                if b.optional
                else f"{len(b.params)} argument{'s' if len(b.params) != 1 else ''}"
            )
            self.error("E311", f"`{e.func}` takes {count}, got {len(e.args)}", e.span)
            return None
        kinds = []
        for want, a in zip(b.params, e.args):
            saved = self.context
            if want == Kind.BOOL and e.func == "where":
                self.context = "where"
            k = self.any_kind(a) if want == LIST else self.kind(a)
            self.context = saved
            kinds.append(k)
            if k is None:
                continue
            if want == LIST and not isinstance(k, ListOf):
                self.error("E312", f"`{e.func}` needs a list here", a.span)
            elif want == Kind.SCALAR and k == Kind.TENSOR:
                self.error(
                    "E312", f"`{e.func}` needs a number here, not a tensor", a.span
                )
            elif want == Kind.TENSOR and k not in (Kind.TENSOR,):
                self.error("E312", f"`{e.func}` needs a tensor here", a.span)
            elif want == Kind.INT and k != Kind.INT:
                self.error(
                    "E312",
                    f"`{e.func}` needs a whole number here (a dimension such as -1)",
                    a.span,
                )
            elif want == Kind.STR and k != Kind.STR:
                self.error("E312", f"`{e.func}` needs a string here", a.span)
            elif k == Kind.MASK and not (want == Kind.BOOL and e.func == "where"):
                self.error(
                    "E312",
                    f"`{e.func}` does not take a mask",
                    a.span,
                    hint=MASK_HINT,
                )
            elif want == Kind.BOOL and e.func == "where" and k != Kind.MASK:
                self.error(
                    "E312",
                    "where(...) needs an elementwise comparison of tensors first",
                    a.span,
                )
            elif want == "any" and k == Kind.BOOL:
                self.error("E312", f"`{e.func}` needs a number or a tensor", a.span)
        if None in kinds:
            return None
        if b.result == "follow":
            if Kind.TENSOR not in kinds and b.python is None:
                # (the builtin table has no form of it for Python numbers)
                self.error(
                    "E312",
                    f"`{e.func}` is for tensors: it has no form for numbers",
                    e.span,
                )
                return None
            if b.whole and all(k == Kind.INT for k in kinds):
                return Kind.INT
            return Kind.TENSOR if Kind.TENSOR in kinds else Kind.SCALAR
        if e.func == "randint":
            self.dynamic = True
        per_step = self.flow is not None and self.flow.mode in ("group", "step")
        if (
            b.per_parameter
            and Kind.TENSOR in kinds
            and self.context != "validation"
            and not per_step  # there the tensors are the optimizer's totals
        ):
            # a property of each parameter (its shape, a norm read as a number)
            self.dynamic = self.varying = True
        return b.result


def flat_only(out: Collector, what: str, span: S.Span) -> None:
    """Reports a construct of `update flat:` and procedures met in a per-parameter update."""
    out.error(
        "E501",
        f"{what} belongs to `update flat:` and the procedures it calls",
        span,
        hint="a flat update runs once on all parameters as one vector (LBFGS); a "
        "per-parameter update's new values are new tensors already (`g <- grad`), and it "
        "calls procedures for their values (`a, b <- f(x)`)",
    )


def outside_for_each(flow, name: str, span: S.Span) -> bool:
    """In a method: a name of the parameters' world used where there is none; reported."""
    st = flow.c.states.get(name)
    if name == "grad":
        flow.c.out.error(
            "E331",
            "a method has no gradient: it runs outside the step",
            span,
            hint="compute what the method needs from the parameter and its states",
        )
        return True
    if name == "param" or (st is not None and st.scope == "parameter"):
        flow.c.out.error(
            "E331",
            f"`{name}` belongs to one parameter: a method reaches it inside "
            "`for each parameter:`",
            span,
            hint="wrap the statements on parameters in `for each parameter:`",
        )
        return True
    return False
