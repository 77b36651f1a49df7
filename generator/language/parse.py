"""Parsing: spec text to the spec model (generator.language.syntax), or diagnostics that say what is wrong.

The grammar lives in grammar.lark (LALR(1) with an indentation post-lexer). This module guards the
parser against hostile input (bytes that are not UTF-8, control characters, absurd length or nesting),
turns Lark's errors into diagnostics in the spec author's words (never Lark's token names), maps the
paper's Unicode spelling onto the ASCII one, and builds frozen, span-carrying nodes in a Transformer.
Spec text is data: nothing here evaluates it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.indenter import DedentError, Indenter

from generator.language import syntax as S
from generator.language.diagnostics import Collector, Diagnostic, SpecError

MAX_BYTES = 256 * 1024
MAX_LINE = 1000
MAX_NESTING = 64

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

# Lark's terminal names, as a spec author would call them.
TOKEN_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": 'a quoted string ("...")',
    "_NL": "the end of the line",
    "_INDENT": "an indented block",
    "_DEDENT": "the end of the indented block",
    "ARROW": "`<-`",
    "COMP_OP": "a comparison",
    "ADD_OP": "`+` or `-`",
    "NEG": "`-`",
    "MUL_OP": "`*` or `/`",
    "COLON": "`:`",
    "COMMA": "`,`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "EQUAL": "`=`",
    "SUBSCRIPT": "a time subscript such as `_{t-1}`",
    "MODIFIER": "`keyword`, `required`, `fixed`, `constructor`, `squeezed` or `explicit`",
    "EAGER": "`, eager`",
    "DOC_KEY": "`summary`, `reference` or `note`",
    "STATE_SCOPE": "`optimizer` or `group`",
    "UPDATE_MODE": "`one random parameter`, `optimizer`, `group` or `flat`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "VBAR": "`|`",
    "CIRCUMFLEX": "`^`",
    "OPTIONAL": "`?`",
    "ROOT": "`√`",
    "SQUARED": "`²`",
    "PLUS": "`+`",
    "MINUS": "`-`",
    "$END": "the end of the file",
}


class SpecIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        postlex=SpecIndenter(),
        propagate_positions=True,
        maybe_placeholders=True,
        cache=_lark_cache(),
    )


def cache_root() -> str:
    """Where optimgen keeps caches: $OPTIMGEN_CACHE_DIR, else the user's cache directory."""
    import os

    return os.environ.get("OPTIMGEN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "optimgen"
    )


def _lark_cache() -> str | bool:
    """Lark's grammar analysis, cached on disk (keyed by Lark on the grammar and options)."""
    import os

    root = cache_root()
    try:
        os.makedirs(root, exist_ok=True)
    except OSError:
        return False
    return os.path.join(root, "grammar.lark-cache")


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
            stored_as=next((o[1] for o in options if _option(o) == "stored as"), None),
            stored_as_span=next(
                (o[2] for o in options if _option(o) == "stored as"), None
            ),
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

    def start(self, children):
        return children[0]


def _describe(expected) -> str:
    words = sorted({TOKEN_WORDS.get(e, f"`{e.lower()}`") for e in expected})
    if len(words) > 6:
        words = words[:6] + ["…"]
    return ", ".join(words)


def _found(token) -> str:
    if token.type in ("_NL", "$END"):
        return TOKEN_WORDS[token.type]
    if token.type == "_DEDENT":
        return "the end of an indented block"
    if token.type == "_INDENT":
        return "an unexpected indent"
    return f"`{token}`"


# Known mistakes, matched against Lark's error state (Lark's match_examples idiom): the message a
# person needs is often not "expected X", but the usual cause.
_EXAMPLES = {
    "`=` assigns nothing in an update; write `<-` (or `←`)": [
        "optimizer X\nupdate:\n    m = 1\n",
    ],
    "an update statement needs a target: `name <- expression`": [
        "optimizer X\nupdate:\n    1 <- 2\n",
    ],
    "the block header needs a colon at the end, e.g. `if amsgrad:`": [
        "optimizer X\nupdate:\n    if a\n        b <- 1\n",
        "optimizer X\nupdate\n    b <- 1\n",
    ],
    "a spec starts with `optimizer <Name>` (or `fragment <name>`)": [
        "input lr: float = 1\n",
        "update:\n    x <- 1\n",
    ],
}


def _position(path: str, exc: UnexpectedInput, source: str) -> S.Span:
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if not isinstance(line, int) or line < 1:  # end of file
        lines = source.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    return S.Span(path, line, column, line, column + 1)


def _syntax_diagnostic(path: str, source: str, exc: UnexpectedInput, out: Collector):
    span = _position(path, exc, source)
    try:
        label = exc.match_examples(
            _parser().parse, _EXAMPLES, token_type_match_fallback=True, use_accepts=True
        )
    except (
        Exception
    ):  # match_examples re-parses the examples; never let that mask the real error
        label = None
    if isinstance(exc, UnexpectedCharacters):
        ch = source.splitlines()[exc.line - 1][exc.column - 1 : exc.column]
        message = f"unexpected character `{ch}`"
        hint = "names are letters, digits and `_`; strings use double quotes"
        if ch == "\t":
            message, hint = "a tab character", "indent with spaces"
        if ch == '"':
            message = "a string is not closed on this line"
            hint = 'strings are one line; write \\" for a quote inside one'

        out.error("E101", label or message, span, hint=None if label else hint)
        return
    if isinstance(exc, UnexpectedToken):
        found = _found(exc.token)
        if exc.token.type != "$END":
            span = S.Span(
                path,
                exc.token.line,
                exc.token.column,
                exc.token.end_line or exc.token.line,
                exc.token.end_column or exc.token.column + 1,
            )
        message = f"expected {_describe(exc.expected)}; found {found}"
        if label is None and str(exc.token) == "=" and "ARROW" in exc.expected:
            label = "`=` assigns nothing in an update; write `<-` (or `←`)"
        out.error("E102", label or message, span, hint=message if label else None)
        return
    if isinstance(exc, UnexpectedEOF):
        out.error("E103", "the file ends in the middle of a statement", span)
        return
    out.error("E102", label or "syntax error", span)


def _guard(path: str, data: bytes | str, out: Collector) -> str | None:
    """Reject input that must not reach the parser at all; return the text otherwise."""
    here = S.Span(path, 1, 1, 1, 2)
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            out.error("E001", f"the file is larger than {MAX_BYTES // 1024} KiB", here)
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            out.error(
                "E002",
                f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                S.Span(path, line, col, line, col + 1),
                hint="save the spec as UTF-8 text",
            )
            return None
    else:
        text = data
        if len(text) > MAX_BYTES:
            out.error("E001", f"the file is larger than {MAX_BYTES // 1024} KiB", here)
            return None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        out.error(
            "E003",
            "the file is empty",
            here,
            hint="start with `optimizer <Name>`; the README has a language reference",
        )
        return None
    for number, line in enumerate(text.splitlines(), 1):
        bad = next(
            (i for i, ch in enumerate(line) if not ch.isprintable() and ch != "\t"),
            None,
        )
        if bad is not None:
            out.error(
                "E004",
                f"control character U+{ord(line[bad]):04X} in the spec",
                S.Span(path, number, bad + 1, number, bad + 2),
                hint="a spec is plain text",
            )
            return None
        if len(line) > MAX_LINE:
            out.error(
                "E001",
                f"line is {len(line)} characters long (at most {MAX_LINE})",
                S.Span(path, number, MAX_LINE, number, MAX_LINE + 1),
            )
            return None
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        for col, ch in enumerate(line.split("#", 1)[0], 1):
            depth += ch == "("
            depth -= ch == ")"
            if depth > MAX_NESTING:
                out.error(
                    "E005",
                    f"parentheses nested deeper than {MAX_NESTING}",
                    S.Span(path, number, col, number, col + 1),
                    hint="name intermediate values with `<-`",
                )
                return None
    if not text.endswith("\n"):
        text += "\n"
    return text


def _bad_dedent(path: str, text: str):
    """The line whose indentation matches no enclosing block (lark reports no position)."""

    stack, depth = [0], 0
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        if not code.strip():
            continue
        indent = len(code) - len(code.lstrip(" "))
        if depth == 0:
            if indent > stack[-1]:
                stack.append(indent)
            else:
                while indent < stack[-1]:
                    stack.pop()
                if indent != stack[-1]:
                    return Diagnostic(
                        "E104",
                        f"this line is indented to column {indent + 1}, which matches no "
                        "enclosing block",
                        S.Span(path, number, 1, number, indent + 1),
                        hint=f"indent it like the block it belongs to (column {stack[-1] + 1} "
                        "here, or deeper under a line ending in `:`)",
                    )
        depth += code.count("(") - code.count(")")
    return Diagnostic("E104", "inconsistent indentation", S.Span(path, 1, 1, 1, 2))


def parse(data: bytes | str, path: str = "<spec>") -> S.Spec:
    """Parse one spec file. Raises SpecError with every diagnostic found."""
    out = Collector()
    text = _guard(path, data, out)
    if text is None:
        shown = (
            data
            if isinstance(data, str)
            else data[:MAX_BYTES].decode("utf-8", "replace")
        )
        raise SpecError(out.items, {path: shown})
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        _syntax_diagnostic(path, text, exc, out)
        raise SpecError(out.items, {path: text}) from None
    except DedentError:
        out.items.append(_bad_dedent(path, text))
        raise SpecError(out.items, {path: text}) from None
    except RecursionError:
        out.error("E005", "the spec is nested too deeply", S.Span(path, 1, 1, 1, 2))
        raise SpecError(out.items, {path: text}) from None
    try:
        kind, children, span = _Build(path).transform(tree)
    except VisitError as exc:  # a bug in the transformer, not in the spec
        raise exc.orig_exc from None
    return _assemble(kind, children, span, path, text)


def _assemble(kind, children, span, path, text) -> S.Spec:
    name_tok, *items = children
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
    )


def parse_file(path: str | Path) -> S.Spec:
    p = Path(path)
    return parse(p.read_bytes(), str(path))


def _option(o) -> str | None:
    """The name of a state option given with a value (`reduced over -1`, `stored as bfloat16`)."""
    return o[0] if isinstance(o, tuple) else None
