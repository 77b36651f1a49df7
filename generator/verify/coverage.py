"""The spec's line coverage under `optimgen verify`: which branches of the update its
configurations took, which lines never ran, and what would reach them.

:class:`Coverage` builds the spec's coverage build (generator.driver.render_coverage: the
for-loop class with a probe opening each branch of the update) and runs it on verify's problem
for a configuration, recording the probes it passes; ``missed_frontier`` names the branches not
taken whose enclosing branch was, the ones a new configuration can reach (generator.verify.grid
proposes those). :func:`line_coverage` and :func:`coverage_text` turn the probes taken into the
lines that ran and, for each branch never taken, the condition it needs and a hint of what would
reach it: other values of the arguments its conditions read, other parameter shapes, more
steps.
"""

from __future__ import annotations

import re
import types

from generator.driver import render_coverage
from generator.language import syntax as S
from generator.language.spec_printer import print_expr
from generator.verify.grid import Config, statements
from generator.verify.harness import impl_kwargs, trajectory
from generator.verify.problems import SHAPES


class Coverage:
    """The spec's coverage build (generator.driver.render_coverage) run on the for-loop path."""

    def __init__(self, checked):
        source, self.probes = render_coverage(checked)
        self.hits: set[str] = set()
        self._current: set[str] = set()
        module = types.ModuleType(f"optimgen_coverage_{checked.name}")
        module.__dict__["_cover"] = self._record
        exec(
            compile(source, f"<optimgen coverage {checked.name}>", "exec"),
            module.__dict__,
        )
        self.cls = module.__dict__[checked.name]
        self.by_label = {p.label: p for p in self.probes}

    def _record(self, label: str) -> None:
        self._current.add(label)

    def run(self, torch, config: Config, seed: int, required, layout) -> set[str]:
        self._current = set()
        kwargs = {**required, **config.as_dict(), **impl_kwargs(self.cls, "for-loop")}
        trajectory(
            torch, self.cls, kwargs, torch.float64, seed, config.steps, None, layout
        )
        self.hits |= self._current
        return self._current

    def missed(self) -> list:
        return [p for p in self.probes if p.label not in self.hits]

    def missed_frontier(self) -> list[str]:
        """Labels of branches never taken whose enclosing branch was taken (or that no
        branch encloses): the ones a new configuration can reach."""
        missed = {p.label for p in self.missed()}
        return [
            p.label
            for p in self.probes
            if p.label in missed
            and not any(q.label in missed for q in self.probes if _encloses(q, p))
        ]


def _position(probe) -> str:
    return probe.label.rsplit(" ", 1)[0]


def _encloses(outer, inner) -> bool:
    """Whether ``inner``'s condition stands in ``outer``'s branch."""
    if _position(outer) == _position(inner):
        return False
    path, line, _ = _position(inner).rsplit(":", 2)
    return f"{path}:{line}" in outer.lines


def line_coverage(checked, probes, hits) -> tuple[int, int, list[str]]:
    """(lines that ran, update lines, lines never run) over the spec's update blocks."""
    every = {
        f"{s.span.path}:{s.span.line}": None
        for block in checked.blocks
        for s in statements(block.body)
    }
    ran = {line for p in probes if p.label in hits for line in p.lines}
    never = [
        line
        for line in every
        if line not in ran
        and any(line in p.lines for p in probes if p.label not in hits)
    ]
    return len(every) - len(never), len(every), never


def coverage_text(checked, report) -> str:
    """The coverage lines of verify's output, ``report`` a generator.commands.verify.Report."""
    ran, total, never = line_coverage(checked, report.probes, report.hits)
    taken = sum(p.label in report.hits for p in report.probes)
    out = [
        f"coverage of the update: {ran} of {total} lines ran; {taken} of "
        f"{len(report.probes)} branches taken"
    ]
    for config in report.combinations:
        out.append(f"  (the grid added {config.label}: {config.origin})")
    missed = {p.label: p for p in report.probes if p.label not in report.hits}
    for p in report.probes:
        if p.label not in missed:
            continue
        where, way = p.label.rsplit(" ", 1)
        needs = f"`{p.condition}` to be {'true' if way == 'then' else 'false'}"
        lines = [line.rsplit(":", 1)[1] for line in p.lines if line in never]
        what = (
            f"line{'s' if len(lines) > 1 else ''} {', '.join(lines)} never ran"
            if lines
            else f"the {way} branch never ran"
        )
        out.append(
            f"  {where.rsplit(':', 1)[0]}: {what}: it needs {needs}; {_hint(p, report)}"
        )
    return "\n".join(out)


SHAPE_CALLS = ("dim", "size", "numel")


def _hint(probe, report) -> str:
    """What would reach a branch, from what its conditions read."""
    conditions = report.conditions
    syms = sorted(conditions.branch_inputs.get(probe.label, ()))
    args = sorted({conditions.symbols[s].arg for s in syms if s in conditions.symbols})
    hints = []
    if args:
        hints.append(f"add --config with other values of {', '.join(args)}")
    refused = report.refused.get(probe.label)
    if refused:
        hints.append(
            f"the spec refuses {refused[0]}" + (" and more" if len(refused) > 1 else "")
        )
    if any(f"{c}(" in _shown(probe.condition, conditions) for c in SHAPE_CALLS):
        shapes = ", ".join(str(s) for s in SHAPES)
        hints.append(
            f"parameter shapes decide it (verify's are {shapes}, and () where the spec "
            "reads the rank)"
        )
    if any(
        st.kind == "count" and st.name.id in _words(probe.condition)
        for st in conditions.checked.states.values()
    ):
        hints.append("more --steps")
    return "; ".join(hints) or "the values in the tensors decide it"


def _shown(condition: str, conditions) -> str:
    """The condition with the value of each local it reads written after it (``order == 0``
    where ``order <- dim(param)``), so that a shape read through a local is seen."""
    values = [
        print_expr(sym.decl.value)
        for name, sym in conditions.checked.locals.items()
        if name in _words(condition) and isinstance(sym.decl, S.Assign)
    ]
    return " ".join([condition] + values)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*", text))
