"""The documentation page of a spec (``optimgen show --format markdown``, ``generated/docs/``).

One Markdown page per optimizer, printed from the checked spec and its lowered form: the summary,
the algorithm box (the LaTeX of generator.emit.docs.latex), the arguments with their defaults and the
requirements on them, the state kept per parameter with its memory, the references and the notes.
Spec text reaches the page as text (Markdown table cells escaped), never as markup to run.
"""

from __future__ import annotations

import re

from generator import ir
from generator.check.model import CheckedSpec
from generator.emit.docs.latex import algorithm_box
from generator.language.spec_printer import print_expr
from generator.language.syntax import Name, Number, children, shaped

_IMPLEMENTATION = ("foreach", "differentiable", "capturable", "fused")
# torch.optim's classes (the generator does not import torch): a spec of the same name is a twin
TORCH_OPTIM = frozenset(
    """SGD Adam AdamW RMSprop Adagrad Adamax Adadelta NAdam RAdam ASGD Rprop Adafactor Muon
    SparseAdam LBFGS""".split()
)


def verification(spec) -> str:
    """Against what the generated class is checked, and where."""
    if spec.name in TORCH_OPTIM:
        return (
            f"A twin of `torch.optim.{spec.name}`: parameters, state and state_dict compared "
            "with it over many steps, for every configuration of torch's optimizer test "
            "database (optim_db) and more, in each implementation "
            "(`tests/test_torch_parity.py`)."
        )
    for d in spec.docs:
        if d.key == "reference" and d.text.startswith("pytorch_optimizer."):
            ref = d.text.split(" ", 1)[0]
            return (
                f"Compared with `{ref}`, an independent implementation: float64 parameters "
                "equal within a relative 1e-10 after each of 20 steps, for the defaults and a "
                "grid over the options; foreach and fused against the for-loop "
                "(`tests/test_paper_*.py`)."
            )
    return (
        "Compared with an independent hand-written implementation "
        "(`tests/reference.py`, `tests/test_custom_optimizers.py`)."
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _bytes_per_parameter(st, flat: bool) -> str:
    """Memory of one state, as a multiple of the parameter's size."""
    if st.scope != "parameter" or st.kind != "tensor":
        return "a number"
    if st.reduced is not None:
        return f"1 / size(param, {st.reduced}) × param"
    if _own_shape(st):
        return f"{_cell(_elements(st))} elements"
    if st.repeated is not None:
        n = _cell(print_expr(st.repeated[1]))
        # (a flat update's list holds what its statements put there: LBFGS's numbers)
        return f"{n} values" if flat else f"{n} × param"
    return "1 × param"


def _own_shape(st) -> bool:
    """A state of its own shape, or a list of them made for each dimension."""
    return st.shaped is not None or st.per_dimension is not None


def _elements(st) -> str:
    """How many elements a state of its own shape holds: ``size(param, 0)^2``, ``n × m``; a
    list made for each k, their sum (``sum over k < dim(param) of size(param, k)^2``).
    """
    item = st.init
    if st.per_dimension is not None:
        item, var, count = st.per_dimension
    call = shaped(item)[0]
    dims = [print_expr(d) for d in call.args]
    square = call.func == "eye" or (len(dims) == 2 and dims[0] == dims[1])
    one = f"{dims[0]}^2" if square else " × ".join(dims)
    if st.per_dimension is None:
        return one
    return f"sum over {var.id} < {print_expr(count)} of {one}"


# the precision policies the memory table compares: (column, parameter dtype, state dtype or
# None for the parameter's (a spec's `stored as` aside), Kahan compensation)
POLICIES = (
    ("float32", "float32", None, False),
    ("bf16 (torch's)", "bfloat16", None, False),
    ("bf16 + stochastic", "bfloat16", None, False),
    ("bf16 + Kahan", "bfloat16", None, True),
    ("bf16, float32 state", "bfloat16", "float32", False),
    ("float32, bf16 state", "float32", "bfloat16", False),
)
_BYTES = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}


def memory_table(checked: CheckedSpec) -> list[str]:
    """Bytes of optimizer state per parameter element under each precision policy (see
    generator.runtime.precision), one row per tensor state, as Markdown lines; [] for a spec without
    per-parameter tensor states, or whose update is flat or on a random parameter (those
    take no policy)."""
    spec = checked.spec
    states = [s for s in spec.states if s.scope == "parameter" and s.kind == "tensor"]
    if not states or any(u.mode != "each" for u in spec.updates):
        return []
    out = ["| state | " + " | ".join(c for c, *_ in POLICIES) + " |"]
    out.append("|---" * (len(POLICIES) + 1) + "|")
    always = [0] * len(POLICIES)
    sometimes: list[list[str]] = [[] for _ in POLICIES]
    for st in states:
        cells = []
        for k, (_, param, state, _) in enumerate(POLICIES):
            if _own_shape(st):
                # (bytes of its own elements, per element of the parameter; a list's tensors
                # stay in the parameter's dtype, as a list state's do)
                dtype = param if st.per_dimension else state or st.stored_as or param
                n = f"{_BYTES[dtype]} × {_elements(st)} / numel(param)"
                cells.append(_cell(n))
                sometimes[k].append(n)
                continue
            if st.repeated is not None:
                # a list state's tensors stay in the parameter's dtype
                n = f"{_BYTES[param]} × {_cell(print_expr(st.repeated[1]))}"
                cells.append(n)
                sometimes[k].append(n)
                continue
            n = _BYTES[state or st.stored_as or param]
            cells.append(
                f"{n} / size(param, {st.reduced})" if st.reduced is not None else str(n)
            )
            if st.reduced is not None:
                continue
            if st.condition is None:
                always[k] += n
            else:
                sometimes[k].append(f"{n} if {print_expr(st.condition)}")
        label = f"`{st.key}`" + (
            f" (if `{_cell(print_expr(st.condition))}`)" if st.condition else ""
        )
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    comp = [_BYTES[param] if kahan else 0 for _, param, _, kahan in POLICIES]
    out.append(
        "| `kahan_comp` | " + " | ".join(str(n) if n else "–" for n in comp) + " |"
    )
    totals = []
    for k in range(len(POLICIES)):
        total = str(always[k] + comp[k])
        if sometimes[k]:
            total += " (+ " + " + ".join(sometimes[k]) + ")"
        totals.append(_cell(total))
    out.append("| **total** | " + " | ".join(totals) + " |")
    return out


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
        flat = checked.program is not None
        for st in per_param:
            start = (
                "lazy (first value in the update)" if st.lazy else print_expr(st.init)
            )
            if st.condition is not None:
                start += f", if {print_expr(st.condition)}"
            if st.transient:
                start += ", within each step only"
            kind = st.kind
            if st.repeated is not None:
                kind = "list" if flat else "list of tensors"
            if st.per_dimension is not None:
                kind = "list of tensors, one per k"
            out.append(
                f"| `{st.key}` | {kind} | `{_cell(start)}` | "
                f"{_bytes_per_parameter(st, flat)} |"
            )
        tensors = [
            s
            for s in per_param
            if s.kind == "tensor"
            and not s.transient
            and s.reduced is None
            and not _own_shape(s)
            and not (flat and s.repeated is not None)
        ]
        # one per tensor state, n per list state of n: "2", "scales", "(3 + scales)"
        single, lists = 0, []
        for st in tensors:
            n = st.repeated[1] if st.repeated is not None else Number("1", st.span)
            if isinstance(n, Number) and n.is_integer_literal:
                single += int(n.value)
            else:
                lists.append(print_expr(n))
        count = " + ".join(([str(single)] if single or not lists else []) + lists)
        out += [
            "",
            "Full-size tensor states: "
            + (f"({_cell(count)})" if " + " in count else _cell(count))
            + " × the parameter's memory."
            + "".join(
                f" `{st.key}` holds {_cell(_elements(st))} elements of its own."
                for st in per_param
                if _own_shape(st)
            )
            + "".join(
                f" `{st.key}` (1 × the parameter's) is made and dropped within each step."
                for st in per_param
                if st.transient
            ),
        ]
        table = memory_table(checked)
        if table:
            out += ["", "### Memory per precision policy", ""]
            out += [
                "Bytes of optimizer state per parameter element (`optimgen show "
                "--memory`; the options `state_dtype`, `param_rounding` of every "
                "generated optimizer, see the README's precision policy):",
                "",
            ] + table
    if others:
        out += [
            "",
            "Kept per " + " / ".join(sorted({s.scope for s in others})) + ":",
            "",
        ]
        for st in others:
            where = "the param group's dict" if st.scope == "group" else "`self.state`"
            within = ", within each step only" if st.transient else ""
            out.append(f"- `{st.key}` ({st.kind}{within}) in {where}")
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
    out += ["", "## Verification", "", verification(spec)]
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


def _short_reference(spec) -> str:
    """`Authors Year` linked to the paper, from the spec's first reference line."""
    refs = [d.text for d in spec.docs if d.key == "reference"]
    if not refs:
        return ""
    text = refs[0]
    url = re.search(r"https?://\S+", text)
    years = re.findall(r"\b(?:19|20)\d\d\b", text[: url.start()] if url else text)
    parts = text.split(", ")
    who = parts[0].strip()
    # the authors run up to the part with " & ": "Duchi, Hazan & Singer" in full, four
    # or more as "Anil et al." (the parts before are names: short, no title's colon)
    last = next(
        (
            k
            for k, part in enumerate(parts[1:], 1)
            if " & " in part or len(part) >= 40 or ":" in part
        ),
        None,
    )
    if last is not None and " & " in parts[last] and len(parts[last]) < 40:
        who += ", " + parts[1].strip() if last == 1 else " et al."
    label = f"{who} {years[-1]}" if years else who
    return f"[{_cell(label)}]({url.group().rstrip('.')})" if url else _cell(label)


def readme_table(entries, docs: str) -> str:
    """The README's optimizer catalogue: (checked spec, its IR, module name) per optimizer."""
    out = ["| class | what it is | paper | implementations | checked against |"]
    out.append("|---|---|---|---|---|")
    order = lambda e: (e[0].name not in TORCH_OPTIM, e[0].name.lower())  # noqa: E731
    for checked, opt, module in sorted(entries, key=order):
        spec = checked.spec
        impls = ["for-loop"] + ["foreach"] * opt.has_foreach
        impls += ["fused"] * any(a.name == "fused" for a in opt.arguments)
        out.append(
            f"| [`{spec.name}`]({docs}/{module}.md) | {_cell(spec.doc('summary') or '')} | "
            f"{_short_reference(spec)} | {', '.join(impls)} | {_checked_against(spec)} |"
        )
    return "\n".join(out) + "\n"


def _checked_against(spec) -> str:
    if spec.name in TORCH_OPTIM:
        return f"`torch.optim.{spec.name}`"
    # (the last such line: a variant's own, after its base's, names what it is checked against)
    for d in reversed(spec.docs):
        if d.key == "reference" and d.text.startswith("pytorch_optimizer."):
            return f"`{d.text.split(' ', 1)[0]}`"
    return "a hand-written reference"
