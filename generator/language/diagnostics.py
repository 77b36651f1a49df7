"""Diagnostics: how every stage reports a problem in a spec, and how it is shown to a person.

A Diagnostic names a span of the spec, says what is wrong in the spec author's terms, and may carry a
hint (the mechanical fix) and notes pointing at related places (where a name was declared). Stages
collect diagnostics instead of stopping at the first; ``SpecError`` carries them all out of the
pipeline, and ``render`` prints them as ``FILE:LINE:COL: error: message`` with the line and a caret.
``GeneratorBug`` is the other kind of failure: the generator itself went wrong (a template or black),
and it says so instead of blaming the spec.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from generator.language.syntax import Span


@dataclass(frozen=True)
class Note:
    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    code: str  # stable identifier, e.g. "E201"
    message: str
    span: Span
    hint: str | None = None
    notes: tuple[Note, ...] = field(default_factory=tuple)
    severity: str = "error"


class SpecError(Exception):
    """One or more errors in spec files; nothing may be written when this is raised."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str]):
        super().__init__(f"{len(diagnostics)} error(s)")
        self.diagnostics = diagnostics
        self.sources = sources

    def render(self) -> str:
        return "\n".join(render(d, self.sources) for d in self.diagnostics)


class GeneratorBug(Exception):
    """The generator failed on a spec that passed every check: a bug in optimgen, not in the spec."""


class Collector:
    """Accumulates diagnostics for one run of a stage."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []  # shown, but they stop nothing

    def error(self, code, message, span, hint=None, notes=()):
        # One report per message and line: a name misused twice in a statement is one mistake.
        key = (code, message, span.path, span.line)
        if any(
            (i.code, i.message, i.span.path, i.span.line) == key for i in self.items
        ):
            return
        self.items.append(Diagnostic(code, message, span, hint, tuple(notes)))

    def warn(self, code, message, span, hint=None, notes=()):
        self.warnings.append(
            Diagnostic(code, message, span, hint, tuple(notes), severity="warning")
        )

    def __bool__(self) -> bool:
        return bool(self.items)


def did_you_mean(name: str, candidates) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _line(source: str, number: int) -> str:
    lines = source.splitlines()
    return lines[number - 1] if 0 < number <= len(lines) else ""


def _excerpt(span: Span, sources: dict[str, str]) -> list[str]:
    source = sources.get(span.path)
    if source is None:
        return []
    text = _line(source, span.line)
    # Control characters would garble the terminal; show them escaped, keeping columns aligned.
    shown = "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in text)
    if len(shown) > 160:
        shown = shown[:160] + "…"
    width = (
        span.end_column - span.column
        if span.end_line == span.line and span.end_column > span.column
        else 1
    )
    width = max(1, min(width, max(1, len(shown) - span.column + 2)))
    gutter = f"{span.line:>4} | "
    caret_pad = "".join("\t" if ch == "\t" else " " for ch in shown[: span.column - 1])
    return [gutter + shown, " " * (len(gutter) - 2) + "| " + caret_pad + "^" * width]


def render(d: Diagnostic, sources: dict[str, str]) -> str:
    out = [f"{d.span}: {d.severity}: {d.message} [{d.code}]"]
    out += _excerpt(d.span, sources)
    if d.hint:
        out.append(f"  hint: {d.hint}")
    for note in d.notes:
        where = f"{note.span}: " if note.span else ""
        out.append(f"  note: {where}{note.message}")
    return "\n".join(out)
