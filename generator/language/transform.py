"""The Transformer: Lark's parse tree to the typed syntax nodes of generator.language.syntax.

Every node is frozen and carries the span of the text it came from. Names in the paper's Unicode
spelling become the spec's ASCII ones (θ → param, β₁ → beta1, ← → <-), strings are unquoted (``\\"``
and ``\\\\`` are their only escapes), and ``build`` assembles the top-level items into one S.Spec.
Spec text is data: nothing here evaluates it.
"""

from __future__ import annotations

import re
from dataclasses import replace

from lark import Token, Transformer, v_args
from lark.exceptions import VisitError

from generator.language import syntax as S

# The paper's spelling → the spec's ASCII names. Greek letters not listed here are spelled out
# (α → alpha, μ → mu, ρ → rho) and subscript digits become digits (β₁ → beta1).
UNICODE_NAMES = {"θ": "param", "γ": "lr", "λ": "weight_decay", "ε": "eps", "ϵ": "eps"}
GREEK = dict(
    zip(
        "αβγδεζηθικλμνξοπρστυφχψω",
        "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho"
        " sigma tau upsilon phi chi psi omega".split(),
    )
)
SUBSCRIPT_DIGITS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
UNICODE_OPS = {"←": "<-", "−": "-", "·": "*", "×": "*", "≠": "!=", "≤": "<=", "≥": ">="}

# `at POINT ... if exposed:`, as the transformer passes it to point_block
_EXPOSED_ONLY = object()


def _ascii_name(raw: str) -> str:
    if raw in UNICODE_NAMES:
        return UNICODE_NAMES[raw]
    out = []
    for ch in raw.translate(SUBSCRIPT_DIGITS):
        out.append(GREEK.get(ch, GREEK.get(ch.lower(), ch)) if ord(ch) > 127 else ch)
    return "".join(out)


def _subscript(token) -> str | None:
    return None if token is None else str(token)[2:-1].replace("\u2212", "-")


def _op(token: str) -> str:
    return UNICODE_OPS.get(str(token), str(token))


def _unquote(token: str) -> str:
    # The spec's string syntax is deliberately tiny: \" and \\ are the only escapes.
    return re.sub(r'\\(["\\])', r"\1", token[1:-1])


class _Build(Transformer):
    """Lark tree → syntax nodes. Every node gets the span of the text it came from."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _span(self, meta_or_token) -> S.Span:
        m = meta_or_token
        if isinstance(m, Token):
            return S.Span(self.path, m.line, m.column, m.end_line, m.end_column)
        return S.Span(self.path, m.line, m.column, m.end_line, m.end_column)

    # ---- expressions --------------------------------------------------------------------------
    @v_args(meta=True)
    def number(self, meta, children):
        return S.Number(str(children[0]), self._span(children[0]))

    @v_args(meta=True)
    def infinity(self, meta, children):
        return S.Number("inf", self._span(meta))

    @v_args(meta=True)
    def true(self, meta, children):
        return S.Bool(True, self._span(meta))

    @v_args(meta=True)
    def false(self, meta, children):
        return S.Bool(False, self._span(meta))

    @v_args(meta=True)
    def none(self, meta, children):
        return S.NoneLit(self._span(meta))

    @v_args(meta=True)
    def string(self, meta, children):
        return S.String(_unquote(str(children[0])), self._span(meta))

    @v_args(meta=True)
    def name(self, meta, children):
        tok, sub = children
        return S.Name(
            _ascii_name(str(tok)),
            _subscript(sub),
            self._span(meta),
        )

    @v_args(meta=True)
    def call(self, meta, children):
        return self._call(meta, children)

    def _call(self, meta, children) -> S.Call:
        func, args = children
        args = args or ()
        return S.Call(
            _ascii_name(str(func)),
            tuple(a for a in args if not isinstance(a, tuple)),
            self._span(meta),
            self._span(func),
            tuple(a for a in args if isinstance(a, tuple)),
        )

    def arguments(self, children):
        return tuple(children)

    def keyword_argument(self, children):
        return (_ascii_name(str(children[0])), children[1])

    @v_args(meta=True)
    def index(self, meta, children):
        return S.Index(children[0], children[1], self._span(meta))

    @v_args(meta=True)
    def list(self, meta, children):
        return S.List(tuple(c for c in children if c is not None), self._span(meta))

    @v_args(meta=True)
    def list_over(self, meta, children):
        item, var, iterable = children
        span = self._span(meta)
        return S.ListOver(
            item, S.Name(_ascii_name(str(var)), None, span), iterable, span
        )

    def group(self, children):
        (inner,) = children
        return replace(inner, grouped=True) if isinstance(inner, S.Binary) else inner

    @v_args(meta=True)
    def tuple(self, meta, children):
        return S.Tuple(tuple(children), self._span(meta))

    @v_args(meta=True)
    def cond_expr(self, meta, children):
        then, cond, orelse = children
        return S.Conditional(cond, then, orelse, self._span(meta))

    @v_args(meta=True)
    def or_op(self, meta, children):
        return S.Binary("or", children[0], children[1], self._span(meta))

    @v_args(meta=True)
    def and_op(self, meta, children):
        return S.Binary("and", children[0], children[1], self._span(meta))

    @v_args(meta=True)
    def not_op(self, meta, children):
        return S.Unary("not", children[0], self._span(meta))

    @v_args(meta=True)
    def compare(self, meta, children):
        operands = tuple(children[0::2])
        ops = tuple(_op(t) for t in children[1::2])
        return S.Compare(ops, operands, self._span(meta))

    @v_args(meta=True)
    def binop(self, meta, children):
        left, op, right = children
        return S.Binary(_op(op), left, right, self._span(meta))

    @v_args(meta=True)
    def neg(self, meta, children):
        return S.Unary("-", children[1], self._span(meta))

    @v_args(meta=True)
    def root(self, meta, children):
        return S.Call("sqrt", (children[1],), self._span(meta), self._span(children[0]))

    @v_args(meta=True)
    def pow(self, meta, children):
        return S.Binary("^", children[0], children[1], self._span(meta))

    @v_args(meta=True)
    def squared(self, meta, children):
        two = S.Number("2", self._span(children[1]))
        return S.Binary("^", children[0], two, self._span(meta))

    # ---- statements ---------------------------------------------------------------------------
    @v_args(meta=True)
    def assign(self, meta, children):
        tok, sub, _arrow, value, initially = children
        target = S.Name(
            _ascii_name(str(tok)),
            _subscript(sub),
            self._span(tok),
        )
        return S.Assign(target, value, initially, self._span(meta))

    def initially(self, children):
        return children[0]

    def _target(self, tok) -> S.Name:
        return S.Name(_ascii_name(str(tok)), None, self._span(tok))

    @v_args(meta=True)
    def multi_assign(self, meta, children):
        *names, _arrow, value = children
        return S.MultiAssign(
            tuple(self._target(t) for t in names), value, self._span(meta)
        )

    @v_args(meta=True)
    def item_assign(self, meta, children):
        tok, index, _arrow, value = children
        return S.ItemAssign(self._target(tok), index, value, self._span(meta))

    @v_args(meta=True)
    def call_stmt(self, meta, children):
        return S.CallStmt(self._call(meta, children), self._span(meta))

    @v_args(meta=True)
    def while_stmt(self, meta, children):
        cond, *body = children
        return S.While(cond, tuple(b for b in body if b is not None), self._span(meta))

    @v_args(meta=True)
    def for_stmt(self, meta, children):
        var, iterable, *body = children
        return S.For(
            self._target(var),
            iterable,
            tuple(b for b in body if b is not None),
            self._span(meta),
        )

    @v_args(meta=True)
    def break_stmt(self, meta, children):
        return S.Break(self._span(meta))

    @v_args(meta=True)
    def return_stmt(self, meta, children):
        return S.Return(tuple(c for c in children if c is not None), self._span(meta))

    @v_args(meta=True)
    def let_decl(self, meta, children):
        name, _, value = children
        return S.Let(self._target(name), value, self._span(meta))

    @v_args(meta=True)
    def with_decl(self, meta, children):
        names = tuple(S.Name(str(t), None, self._span(t)) for t in children)
        return S.With(names, self._span(meta))

    @v_args(meta=True)
    def point_block(self, meta, children):
        point = children[0]
        names = [c for c in children[1:] if isinstance(c, Token)]
        optional = _EXPOSED_ONLY in children
        body = [
            c
            for c in children[1:]
            if c is not None and c is not _EXPOSED_ONLY and not isinstance(c, Token)
        ]
        return S.PointBlock(
            str(point),
            self._span(point),
            tuple(S.Name(_ascii_name(str(v)), None, self._span(v)) for v in names),
            tuple(body),
            self._span(meta),
            optional,
        )

    def exposed_only(self, children):
        return _EXPOSED_ONLY

    @v_args(meta=True)
    def expose_stmt(self, meta, children):
        point, *names = children
        return S.Expose(
            str(point),
            tuple(S.Name(_ascii_name(str(v)), None, self._span(v)) for v in names),
            self._span(meta),
        )

    @v_args(meta=True)
    def procedure_decl(self, meta, children):
        name, *rest = children
        params = tuple(c for c in rest if isinstance(c, S.Parameter))
        body = tuple(
            c for c in rest if c is not None and not isinstance(c, S.Parameter)
        )
        return S.Procedure(self._target(name), params, body, self._span(meta))

    @v_args(meta=True)
    def method_decl(self, meta, children):
        name, doc, *body = children
        return S.Method(
            self._target(name),
            None if doc is None else _unquote(str(doc)),
            tuple(b for b in body if b is not None),
            self._span(meta),
        )

    @v_args(meta=True)
    def for_each_stmt(self, meta, children):
        return S.ForEachParameter(
            tuple(b for b in children if b is not None), self._span(meta)
        )

    def proc_param(self, children):
        return S.Parameter(self._target(children[0]), children[1])

    @v_args(meta=True)
    def use_stmt(self, meta, children):
        return S.Use(_ascii_name(str(children[0])), self._span(meta))

    @v_args(meta=True)
    def if_stmt(self, meta, children):
        cond, *rest = children
        body, branches, orelse = [], [], ()
        for child in rest:
            if isinstance(child, tuple) and child and child[0] == "elif":
                branches.append((child[1], child[2]))
            elif isinstance(child, tuple) and child and child[0] == "else":
                orelse = child[1]
            elif child is not None:
                body.append(child)
        return S.If(((cond, tuple(body)),) + tuple(branches), orelse, self._span(meta))

    @v_args(meta=True)
    def repeat_stmt(self, meta, children):
        count, *body = children
        return S.Repeat(
            count, tuple(b for b in body if b is not None), self._span(meta)
        )

    def elif_clause(self, children):
        return ("elif", children[0], tuple(children[1:]))

    def else_clause(self, children):
        return ("else", tuple(children))

    # ---- declarations -------------------------------------------------------------------------
    @v_args(meta=True)
    def doc_line(self, meta, children):
        return S.Doc(str(children[0]), _unquote(str(children[1])), self._span(meta))

    @v_args(meta=True)
    def error_message(self, meta, children):
        exc, text = children
        # Placeholders name inputs, in either spelling: {γ} is {lr}.
        text = re.sub(
            r"\{([^{}]*)\}",
            lambda m: "{" + _ascii_name(m.group(1)) + "}",
            _unquote(str(text)),
        )
        return S.Message(
            str(exc) if exc is not None else "ValueError", text, self._span(meta)
        )

    @v_args(meta=True)
    def require(self, meta, children):
        return S.Require(children[0], children[1], self._span(meta))

    def requires_block(self, children):
        return tuple(children)

    def none_means(self, children):
        return ("none means", children[0])

    @v_args(meta=True)
    def check_decl(self, meta, children):
        return S.Check(children[0], children[1], self._span(meta))

    check_stmt = check_decl

    def name_list(self, children):
        return tuple(S.Name(_ascii_name(str(t)), None, self._span(t)) for t in children)

    def torch_name(self, children):
        return str(children[0])

    def simple_type(self, children):
        return (str(children[0]), children[1] is not None)

    @v_args(meta=True)
    def union_type(self, meta, children):
        return S.TypeRef(
            "union",
            tuple(c[0] for c in children),
            tuple(c[1] for c in children),
            self._span(meta),
        )

    def element_type(self, children):
        # An element of a tuple type may be a union (`float | tensor`): kept as "float|tensor".
        return ("|".join(c[0] for c in children), any(c[1] for c in children))

    @v_args(meta=True)
    def tuple_type(self, meta, children):
        return S.TypeRef(
            "tuple",
            tuple(c[0] for c in children),
            tuple(c[1] for c in children),
            self._span(meta),
        )

    @v_args(meta=True)
    def sequence_type(self, meta, children):
        ((name, optional),) = children
        return S.TypeRef("sequence", (name,), (optional,), self._span(meta))

    @v_args(meta=True)
    def complex_decl(self, meta, children):
        return S.ComplexMode("view_as_real", self._span(meta))

    @v_args(meta=True)
    def defaults_decl(self, meta, children):
        return S.DefaultsOrder(tuple(str(c) for c in children), self._span(meta))

    def default(self, children):
        return children[0]

    def modifiers(self, children):
        return tuple(str(c) for c in children)

    @v_args(meta=True)
    def input_decl(self, meta, children):
        names, torch_name, type_, default, mods, doc, block = children
        block = block or ()
        requires = tuple(r for r in block if isinstance(r, S.Require))
        none_means = next((r[1] for r in block if isinstance(r, tuple)), None)
        return S.Input(
            names=names,
            torch_name=torch_name,
            type=type_,
            default=default,
            keyword="keyword" in mods,
            required="required" in mods,
            fixed="fixed" in mods,
            constructor="constructor" in mods,
            squeezed="squeezed" in mods,
            explicit="explicit" in mods,
            doc=_unquote(str(doc)) if doc is not None else None,
            requires=requires,
            span=self._span(meta),
            none_means=none_means,
        )

    def state_kind(self, children):
        return str(children[0])

    def init_value(self, children):
        return ("value", children[1])

    def init_lazy(self, children):
        return ("lazy", None)

    def eager(self, children):
        return "eager"

    def on_device(self, children):
        return "on device"

    def as_number(self, children):
        return "as number"

    def transient(self, children):
        return "transient"

    @v_args(meta=True)
    def column_major(self, meta, children):
        return ("column major", self._span(meta))

    @v_args(meta=True)
    def sparse_decl(self, meta, children):
        return (
            "sparse",
            "only" if children[0] is not None else "also",
            self._span(meta),
        )

    def reduced(self, children):
        sign, number = children
        # kept as written; generator.check.checker requires an integer
        return ("reduced", ("-" if sign is not None else "") + str(number))

    def stored_as(self, children):
        # kept as written; generator.check.checker requires a floating dtype's name
        return ("stored as", str(children[0]), self._span(children[0]))

    def state_dtype(self, children):
        # kept as written; generator.check.checker requires an input of type `dtype`
        return ("dtype", str(children[0]), self._span(children[0]))

    def condition(self, children):
        return children[0]

    @v_args(meta=True)
    def state_decl(self, meta, children):
        scope, tok, torch_name, kind, init, cond, *options = children
        return S.State(
            scope=str(scope) if scope is not None else "parameter",
            name=S.Name(_ascii_name(str(tok)), None, self._span(tok)),
            torch_name=torch_name,
            kind=kind or "tensor",
            init=init[1],
            lazy=init[0] == "lazy",
            condition=cond,
            eager="eager" in options,
            on_device="on device" in options,
            span=self._span(meta),
            reduced=next((o[1] for o in options if _option(o) == "reduced"), None),
            as_number="as number" in options,
            transient="transient" in options,
            stored_as=next((o[1] for o in options if _option(o) == "stored as"), None),
            stored_as_span=next(
                (o[2] for o in options if _option(o) == "stored as"), None
            ),
            column_major=next(
                (o[1] for o in options if _option(o) == "column major"), None
            ),
            dtype=next((o[1] for o in options if _option(o) == "dtype"), None),
            dtype_span=next((o[2] for o in options if _option(o) == "dtype"), None),
        )

    @v_args(meta=True)
    def update_block(self, meta, children):
        modes = [str(c) for c in children if isinstance(c, Token)]
        body = tuple(c for c in children if not isinstance(c, Token))
        mode = {"": "each", "optimizer": "step", "flat": "flat", "group": "group"}.get(
            " ".join(modes), "random"
        )
        return ("update", S.Update(mode, body, self._span(meta)), " ".join(modes))

    @v_args(meta=True)
    def optimizer(self, meta, children):
        return ("optimizer", children, self._span(meta))

    @v_args(meta=True)
    def fragment(self, meta, children):
        return ("fragment", children, self._span(meta))

    @v_args(meta=True)
    def modifier(self, meta, children):
        return ("modifier", children, self._span(meta))

    def start(self, children):
        return children[0]


def build(tree, path: str, text: str) -> S.Spec:
    """The spec of a parse tree (``text`` is its source, kept for diagnostics)."""
    try:
        kind, children, span = _Build(path).transform(tree)
    except VisitError as exc:  # a bug in the transformer, not in the spec
        raise exc.orig_exc from None
    return _assemble(kind, children, span, path, text)


def _assemble(kind, children, span, path, text) -> S.Spec:
    name_tok, *items = children
    base = None
    if kind == "optimizer":  # (`optimizer X from Base`: the base's name, or None)
        base_tok, *items = items
        if base_tok is not None:
            span_of = base_tok
            base = S.Name(
                str(base_tok),
                None,
                S.Span(
                    path,
                    span_of.line,
                    span_of.column,
                    span_of.end_line,
                    span_of.end_column,
                ),
            )
    defaults_order = None
    complex_mode = "first_nonlinear"
    sparse = None
    docs, inputs, checks, states, updates, body, validations, procedures = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    methods: list[S.Method] = []
    lets: list[S.Let] = []
    points: list[S.PointBlock] = []
    modifiers: list[S.Name] = []
    modifiers_span = None
    for item in items:
        if isinstance(item, S.Doc):
            docs.append(item)
        elif isinstance(item, S.Input):
            inputs.append(item)
            validations.extend(item.requires)
        elif isinstance(item, S.Check):
            checks.append(item)
            validations.append(item)
        elif isinstance(item, S.State):
            states.append(item)
        elif isinstance(item, S.Procedure):
            procedures.append(item)
        elif isinstance(item, S.Method):
            methods.append(item)
        elif isinstance(item, S.Let):
            lets.append(item)
        elif isinstance(item, S.PointBlock):
            points.append(item)
        elif isinstance(item, S.With):
            modifiers.extend(item.names)
            modifiers_span = modifiers_span or item.span
        elif isinstance(item, S.DefaultsOrder):
            defaults_order = item
        elif isinstance(item, S.ComplexMode):
            complex_mode = item.mode
        elif isinstance(item, tuple) and item[0] == "update":
            updates.append(item[1])
        elif isinstance(item, tuple) and item[0] == "sparse":
            sparse = item[1]
        elif item is not None:
            body.append(item)
    return S.Spec(
        kind=kind,
        name=str(name_tok),
        docs=tuple(docs),
        inputs=tuple(inputs),
        checks=tuple(checks),
        states=tuple(states),
        updates=tuple(updates),
        body=tuple(body),
        validations=tuple(validations),
        defaults_order=defaults_order,
        complex_mode=complex_mode,
        sparse=sparse,
        path=path,
        source=text,
        span=span,
        procedures=tuple(procedures),
        methods=tuple(methods),
        lets=tuple(lets),
        modifiers=tuple(modifiers),
        modifiers_span=modifiers_span,
        points=tuple(points),
        base=base,
    )


def _option(o) -> str | None:
    """The name of a state option given with a value (`reduced over -1`, `stored as bfloat16`)."""
    return o[0] if isinstance(o, tuple) else None
