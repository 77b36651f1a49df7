"""Parsing: spec text to the spec model (generator.language.syntax), or diagnostics that say what is wrong.

The entry of the language stage. It guards the parser against hostile input (bytes that are not
UTF-8, control characters, absurd length or nesting), runs the LALR(1) parser of grammar.lark
(generator.language.grammar), turns Lark's errors into diagnostics in the spec author's words
(generator.language.errors), and builds frozen, span-carrying nodes (generator.language.transform).
Spec text is data: nothing here evaluates it.
"""

from __future__ import annotations


from lark.exceptions import UnexpectedInput
from lark.indenter import DedentError

from generator.language import syntax as S
from generator.language.diagnostics import Collector, SpecError
from generator.language.errors import bad_dedent, syntax_diagnostic
from generator.language.grammar import spec_parser
from generator.language.transform import build

MAX_BYTES = 256 * 1024
MAX_LINE = 1000
MAX_NESTING = 64


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
        tree = spec_parser().parse(text)
    except UnexpectedInput as exc:
        syntax_diagnostic(path, text, exc, out)
        raise SpecError(out.items, {path: text}) from None
    except DedentError:
        out.items.append(bad_dedent(path, text))
        raise SpecError(out.items, {path: text}) from None
    except RecursionError:
        out.error("E005", "the spec is nested too deeply", S.Span(path, 1, 1, 1, 2))
        raise SpecError(out.items, {path: text}) from None
    return build(tree, path, text)
