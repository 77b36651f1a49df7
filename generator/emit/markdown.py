"""The documentation page of a spec (``optimgen show --format markdown``, ``generated/docs/``).

One Markdown page per optimizer, printed from the checked spec and its lowered form: the summary,
the algorithm box (the LaTeX of generator.emit.latex), the arguments with their defaults and the
requirements on them, the state kept per parameter with its memory, the references and the notes.
Spec text reaches the page as text (Markdown table cells escaped), never as markup to run.
"""

from __future__ import annotations

from .. import ir
from ..check import CheckedSpec
from .latex import algorithm_box
from .spec_printer import print_expr

_IMPLEMENTATION = ("foreach", "differentiable", "capturable", "fused")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _bytes_per_parameter(st, scope: str) -> str:
    """Memory of one state, as a multiple of the parameter's size."""
    if scope != "parameter" or st.kind != "tensor":
        return "a number"
    if st.reduced is not None:
        return f"1 / size(param, {st.reduced}) × param"
    return "1 × param"


def page(checked: CheckedSpec, opt: ir.Optimizer) -> str:
    spec = checked.spec
    out = [f"# {spec.name}", ""]
    out += [spec.doc("summary") or f"The {spec.name} algorithm.", ""]
    out += ["```python", f"from generated import {spec.name}", "```", ""]
    out += ["## Algorithm", "", "$$", _box(checked), "$$", ""]
    out += ["## Arguments", "", "| argument | default | meaning | requirements |"]
    out += ["|---|---|---|---|"]
    requires = _requirements(checked)
    for inp in spec.inputs:
        if inp.fixed:
            continue
        default = "required" if inp.default is None else print_expr(inp.default)
        doc = inp.doc or (
            "implementation choice" if inp.arg_name in _IMPLEMENTATION else ""
        )
        out.append(
            f"| `{inp.arg_name}` | `{_cell(default)}` | {_cell(doc)} | "
            + "; ".join(_cell(r) for r in requires.get(inp.arg_name, []))
            + " |"
        )
    out += ["", "## State", ""]
    per_param = [s for s in spec.states if s.scope == "parameter"]
    others = [s for s in spec.states if s.scope != "parameter"]
    if per_param:
        out += [
            "| key | kind | starts at | memory per parameter |",
            "|---|---|---|---|",
        ]
        for st in per_param:
            start = (
                "lazy (first value in the update)" if st.lazy else print_expr(st.init)
            )
            if st.condition is not None:
                start += f", if {print_expr(st.condition)}"
            out.append(
                f"| `{st.key}` | {st.kind} | `{_cell(start)}` | "
                f"{_bytes_per_parameter(st, st.scope)} |"
            )
        tensors = [s for s in per_param if s.kind == "tensor" and s.reduced is None]
        out += [
            "",
            f"Full-size tensor states: {len(tensors)} × the parameter's memory.",
        ]
    if others:
        out += [
            "",
            "Kept per " + " / ".join(sorted({s.scope for s in others})) + ":",
            "",
        ]
        for st in others:
            where = "the param group's dict" if st.scope == "group" else "`self.state`"
            out.append(f"- `{st.key}` ({st.kind}) in {where}")
    if spec.methods:
        out += ["", "## Methods", ""]
        for m in spec.methods:
            out.append(f"- `{m.name.id}()`: {_cell(m.doc or '')}")
    refs = [d.text for d in spec.docs if d.key == "reference"]
    if refs:
        out += ["", "## References", ""] + [f"- {_cell(r)}" for r in refs]
    notes = [d.text for d in spec.docs if d.key == "note"]
    if notes:
        out += ["", "## Notes", ""] + [f"- {_cell(n)}" for n in notes]
    implementations = ["for-loop"]
    if opt.has_foreach:
        implementations.append("foreach")
    if any(a.name == "fused" for a in opt.arguments):
        implementations.append("fused")
    out += ["", "## Implementations", "", ", ".join(implementations) + "."]
    out += ["", f"Generated from `{opt.spec_path}` (spec sha256 {opt.spec_hash}).", ""]
    return "\n".join(out)


def _box(checked: CheckedSpec) -> str:
    """The algorithm box without the reStructuredText wrapper of the docstring."""
    lines = algorithm_box(checked).splitlines()
    body = [ln.strip() for ln in lines if ln.strip().startswith("&")]
    return "\\begin{aligned}\n" + "\n".join(body) + "\n\\end{aligned}"


def _requirements(checked: CheckedSpec) -> dict[str, list[str]]:
    """Each argument's requirements, as the spec writes them."""
    found: dict[str, list[str]] = {}
    by_symbol = {n.id: inp.arg_name for inp in checked.spec.inputs for n in inp.names}
    for v in checked.spec.validations:
        text = print_expr(v.expr)
        named = [a for s, a in by_symbol.items() if _names(v.expr, s)]
        for arg in dict.fromkeys(named):
            found.setdefault(arg, []).append(f"`{text}`")
    return found


def _names(e, name: str) -> bool:
    from ..syntax import Name, children

    if isinstance(e, Name):
        return e.id == name
    return any(_names(c, name) for c in children(e))


def catalogue(entries) -> str:
    """The index of the documentation pages: (checked spec, module name) per optimizer."""
    out = ["# Generated optimizers", ""]
    out += ["One page per spec, written by `optimgen build` (do not edit).", ""]
    out += ["| class | page | summary | reference |", "|---|---|---|---|"]
    for checked, module in sorted(entries, key=lambda e: e[0].name.lower()):
        spec = checked.spec
        refs = [d.text for d in spec.docs if d.key == "reference"]
        out.append(
            f"| `{spec.name}` | [{module}.md]({module}.md) | "
            f"{_cell(spec.doc('summary') or '')} | {_cell(refs[0] if refs else '')} |"
        )
    return "\n".join(out) + "\n"
