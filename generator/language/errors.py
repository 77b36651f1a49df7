"""Syntax errors in the spec author's words: Lark's errors become diagnostics E101-E104.

Lark's terminal names are never shown: each becomes words (``_NL`` is "the end of the line"). Known
mistakes are recognised from the parser's error state with Lark's ``match_examples`` (``m = 1`` in
an update: write ``<-``), and the message names the usual cause instead of "expected X". A
dedent that matches no enclosing block, which Lark reports without a position, is located here.
"""

from __future__ import annotations

from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from generator.language import syntax as S
from generator.language.diagnostics import Collector, Diagnostic
from generator.language.grammar import spec_parser

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
    "INPUT_MODIFIER": "`keyword`, `required`, `fixed`, `constructor`, `squeezed` or `explicit`",
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
    "a spec starts with `optimizer <Name>` (or `fragment <name>`, `modifier <name>`)": [
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


def syntax_diagnostic(path: str, source: str, exc: UnexpectedInput, out: Collector):
    span = _position(path, exc, source)
    try:
        label = exc.match_examples(
            spec_parser().parse,
            _EXAMPLES,
            token_type_match_fallback=True,
            use_accepts=True,
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


def bad_dedent(path: str, text: str):
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
