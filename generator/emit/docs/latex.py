"""The algorithm box: a checked spec rendered as LaTeX pseudocode, as torch.optim's docstrings show it.

Dispatches on spec node type with parentheses from precedence (like generator.language.spec_printer);
names are shown the way papers write them (``beta1`` → β₁, ``lr`` → γ, ``param`` → θ), and state
reads/writes get the time subscripts t-1 / t.
"""

from __future__ import annotations

from generator.language import syntax as S
from generator.language.builtins import BUILTINS, CONSTANTS
from generator.check.model import CheckedSpec
from generator.check.queries import is_param
from generator.language.spec_printer import PRECEDENCE
from generator.language.spec_printer import precedence

GREEK = {
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
}
NAMED = {
    "lr": r"\gamma",
    "weight_decay": r"\lambda",
    "eps": r"\epsilon",
    "param": r"\theta",
    "momentum": r"\mu",
    "dampening": r"\tau",
}
PREC = PRECEDENCE  # the spec language's own ladder: LaTeX parenthesises the same way
_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "_": r"\_",
    "#": r"\#",
    "$": r"\$",
    "%": r"\%",
    "&": r"\&",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    '"': r"\textquotedbl{}",
}


def _tex_escape(text: str) -> str:
    """Spec text shown verbatim in LaTeX (a string literal): every special character escaped."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text if ch.isprintable())


OPS = {"==": "=", "!=": r"\neq", "<=": r"\leq", ">=": r"\geq", "<": "<", ">": ">"}


def symbol(name: str) -> str:
    if name in NAMED:
        return NAMED[name]
    base = name.rstrip("0123456789")
    digits = name[len(base) :]
    if base in GREEK:
        return "\\" + base + (f"_{{{digits}}}" if digits else "")
    if "_" in name:
        head, tail = name.split("_", 1)
        inner = head if len(head) == 1 else r"\textit{" + head.replace("_", r"\_") + "}"
        return f"{inner}_{{\\textit{{{tail.replace('_', chr(92) + '_')}}}}}"
    if len(name) == 1:
        return name
    return r"\textit{" + name + "}"


class LatexPrinter:
    def __init__(self, checked: CheckedSpec):
        self.c = checked
        self.assigned: set[str] = set()
        self.hidden: set[int] = set()  # statements the box shows elsewhere (a `let`'s)
        # a flat update works on whole vectors, without per-parameter time subscripts
        self.flat = checked.program is not None

    def name(self, e: S.Name, target: bool = False) -> str:
        n = e.id
        if n in CONSTANTS:  # \pi (no spec name shadows a constant)
            return CONSTANTS[n].latex
        if self.flat:
            return {"grad": "g", "param": r"\theta", "loss": r"\ell"}.get(n) or symbol(
                n
            )
        if n == "grad":
            return r"\nabla_{\theta} f_t(\theta_{t-1})"
        st = self.c.states.get(n)
        if st is not None and st.kind == "count" and n in ("t", "step"):
            return "t"
        base = symbol(n)
        if n == "param" or (st is not None and st.kind == "tensor"):
            sub = "t" if target or n in self.assigned else "t-1"
            return f"{base}_{{{sub}}}" if "_" not in base else f"{{{base}}}_{{{sub}}}"
        return base

    def prec(self, e) -> int:
        return precedence(e)

    def wrap(self, e, minimum) -> str:
        t = self.expr(e)
        return rf"\left({t}\right)" if self.prec(e) < minimum else t

    def expr(self, e) -> str:
        if isinstance(e, S.Number):
            return r"\infty" if e.text == "inf" else e.text
        if isinstance(e, S.Bool):
            return r"\textbf{" + ("true" if e.value else "false") + "}"
        if isinstance(e, S.NoneLit):
            return r"\textbf{none}"
        if isinstance(e, S.String):
            return r"\texttt{" + _tex_escape(e.value) + "}"
        if isinstance(e, S.Name):
            return self.name(e)
        if isinstance(e, S.Unary):
            if e.op == "not":
                return r"\textbf{not}\: " + self.wrap(e.operand, PREC["not"])
            return "-" + self.wrap(e.operand, PREC["neg"])
        if isinstance(e, S.Binary):
            p = PREC[e.op]
            if e.op == "/":
                return rf"\frac{{{self.expr(e.left)}}}{{{self.expr(e.right)}}}"
            if e.op == "^":
                return f"{{{self.wrap(e.left, p + 1)}}}^{{{self.expr(e.right)}}}"
            op = {
                "*": r" \cdot ",
                "@": r" ",
                "%": r" \bmod ",
                "//": r" \mathbin{//} ",
                "and": r" \textbf{ and } ",
                "or": r" \textbf{ or } ",
            }.get(e.op, f" {e.op} ")
            return f"{self.wrap(e.left, p)}{op}{self.wrap(e.right, p + 1)}"
        if isinstance(e, S.Compare):
            parts = [self.wrap(e.operands[0], PREC["compare"] + 1)]
            for op, x in zip(e.ops, e.operands[1:]):
                parts += [OPS[op], self.wrap(x, PREC["compare"] + 1)]
            return " ".join(parts)
        if isinstance(e, S.Conditional):
            return (
                f"{self.wrap(e.then, 2)} \\textbf{{ if }} {self.wrap(e.cond, 2)}"
                f" \\textbf{{ else }} {self.wrap(e.orelse, 1)}"
            )
        if isinstance(e, S.Index):
            return f"{self.wrap(e.value, PREC['atom'])}[{self.expr(e.index)}]"
        if isinstance(e, S.ListOver):  # [x_k]_{k = 0}^{n - 1}
            it = e.iterable
            bound = (
                self.wrap(it.args[-1], PREC["-"])  # (`(n if c else 0) - 1`)
                if isinstance(it, S.Call) and it.args
                else ""
            )
            var = self.expr(e.var)
            item = self.expr(e.item)
            return rf"\left[{item}\right]_{{{var} = 0}}^{{{bound} - 1}}"
        if isinstance(e, (S.List, S.Tuple)):
            items = ", ".join(self.expr(x) for x in e.items)
            return f"[{items}]" if isinstance(e, S.List) else rf"\left({items}\right)"
        if isinstance(e, S.Call):
            args = [self.expr(a) for a in e.args]
            args += [
                rf"\textit{{{k}}}".replace("_", r"\_") + f"={self.expr(v)}"
                for k, v in e.keywords
            ]
            form = BUILTINS[e.func].latex if e.func in BUILTINS else None
            if form is not None:  # \sqrt{x}, \cos\left(x\right): the builtin table's
                # (a choice juxtaposed with the rest, `Q\,h if c else g`, in parentheses)
                return form.format(
                    *[
                        rf"\left({x}\right)" if isinstance(a, S.Conditional) else x
                        for a, x in zip(e.args, args)
                    ],
                    *args[len(e.args) :],
                )
            func = e.func.replace("_", r"\_")
            return r"\mathrm{" + func + r"}\left(" + ", ".join(args) + r"\right)"
        return "?"

    def stmts(self, body, depth: int, out: list[str]) -> None:
        pad = rf"\hspace{{{5 * depth}mm}}"
        for s in body:
            if id(s) in self.hidden:
                continue
            if isinstance(s, S.Assign):
                value = self.expr(s.value)
                self.assigned.add(s.target.id)
                target = self.name(
                    S.Name(s.target.id, None, s.target.span), target=True
                )
                line = f"{pad}{target} \\leftarrow {value}"
                if s.initially is not None:
                    line += (
                        r" \quad \textbf{(initially } " + self.expr(s.initially) + ")"
                    )
                out.append(line)
            elif isinstance(s, S.Repeat):
                out.append(
                    rf"{pad}\textbf{{repeat}} \: {self.expr(s.count)} "
                    r"\textbf{ times:}"
                )
                self.stmts(s.body, depth + 1, out)
            elif isinstance(s, S.If):
                # (each branch reads the values as they were before the `if`; after it, a
                # value any branch set is the step's new one)
                before, after = set(self.assigned), set(self.assigned)
                for k, (cond, b) in enumerate(s.branches):
                    kw = "if" if k == 0 else "else if"
                    out.append(
                        rf"{pad}\textbf{{{kw}}} \: {self.expr(cond)} \textbf{{:}}"
                    )
                    self.assigned = set(before)
                    self.stmts(b, depth + 1, out)
                    after |= self.assigned
                if s.orelse:
                    out.append(rf"{pad}\textbf{{else}} \textbf{{:}}")
                    self.assigned = set(before)
                    self.stmts(s.orelse, depth + 1, out)
                    after |= self.assigned
                self.assigned = after
            elif isinstance(s, S.MultiAssign):
                names = ", ".join(self.name(n, target=True) for n in s.targets)
                out.append(rf"{pad}{names} \leftarrow {self.expr(s.value)}")
            elif isinstance(s, S.ItemAssign):
                target = self.expr(S.Index(s.target, s.index, s.span))
                out.append(rf"{pad}{target} \leftarrow {self.expr(s.value)}")
            elif isinstance(s, S.CallStmt):
                c = s.call
                if c.func == "append":
                    line = rf"\textbf{{append}} \: {self.expr(c.args[1])} \textbf{{ to }} {self.expr(c.args[0])}"
                elif c.func == "pop_first":
                    line = rf"\textbf{{drop the oldest of}} \: {self.expr(c.args[0])}"
                elif c.func == "evaluate" and not c.args:
                    # (in `update optimizer:`: the gradients the later passes read are new)
                    line = r"\textbf{evaluate the closure again: } \nabla_{\theta} f_t(\theta_{t})"
                else:
                    line = self.expr(c)
                out.append(pad + line)
            elif isinstance(s, S.While):
                out.append(
                    rf"{pad}\textbf{{while}} \: {self.expr(s.cond)} \textbf{{ do}}"
                )
                self.stmts(s.body, depth + 1, out)
            elif isinstance(s, S.For):
                it = s.iterable
                rev = it.func == "reversed"
                args = [self.expr(a) for a in (it.args[0].args if rev else it.args)]
                lo, hi = (["0"] + args)[-2:]
                span = (
                    rf"{hi} - 1 \: \textbf{{down to}} \: {lo}"
                    if rev
                    else rf"{lo} \: \textbf{{to}} \: {hi} - 1"
                )
                out.append(
                    rf"{pad}\textbf{{for}} \: {symbol(s.var.id)} = {span} \textbf{{ do}}"
                )
                self.stmts(s.body, depth + 1, out)
            elif isinstance(s, S.ForEachParameter):
                out.append(
                    rf"{pad}\textbf{{for each parameter }} \theta "
                    r"\textbf{ with state do}"
                )
                self.stmts(s.body, depth + 1, out)
            elif isinstance(s, S.Break):
                out.append(rf"{pad}\textbf{{break}}")
            elif isinstance(s, S.Return):
                values = ", ".join(self.expr(v) for v in s.values)
                out.append(rf"{pad}\textbf{{return}} \: {values}".rstrip(" \\:"))


def _opens_with_let(s, checked: CheckedSpec) -> bool:
    """Whether ``s`` is a `let`'s assignment that opens a per-parameter update."""
    return isinstance(s, S.Assign) and any(
        s.target.id == let.name.id and s.span == let.span for let in checked.spec.lets
    )


def algorithm_box(checked: CheckedSpec) -> str:
    p = LatexPrinter(checked)
    inputs = []
    for inp in checked.spec.inputs:
        if (
            inp.arg_name in ("foreach", "differentiable", "capturable", "fused")
            or inp.fixed
        ):
            continue
        shown = ", ".join(symbol(n.id) for n in inp.names)
        label = inp.arg_name.replace("_", r"\_")
        inputs.append(rf"{shown} \text{{ ({label})}}")
    # a `let` is shown once, among the first values (the update opens with it too)
    inits = [
        rf"{symbol(let.name.id)} \leftarrow {p.expr(let.value)}"
        for let in checked.spec.lets
    ]
    p.hidden = {
        id(s) for b in checked.blocks for s in b.body if _opens_with_let(s, checked)
    }
    for st in checked.spec.states:
        if st.lazy:
            continue
        init = st.written_init if st.written_init is not None else st.init
        val = r"\theta_0" if is_param(init) else p.expr(init)
        name = symbol(st.name.id) if st.kind == "count" else f"{symbol(st.name.id)}_0"
        if st.name.id == "t":
            continue
        label = st.key.replace("_", r"\_")
        inits.append(rf"{name} \leftarrow {val} \text{{ ({label})}}")
    lines = [r"\rule{110mm}{0.4pt}"]
    lines.append(
        r"\textbf{input}: " + r", \: ".join(inputs + [r"\theta_0 \text{ (params)}"])
    )
    if inits:
        lines.append(r"\textbf{initialize}: " + r", \: ".join(inits))
    lines.append(r"\rule{110mm}{0.4pt}")
    passes = sum(b.mode == "each" for b in checked.blocks)
    seen = 0
    for block in checked.blocks:
        if block.mode == "flat":
            lines.append(
                r"\textbf{each step, on all parameters as one vector } \theta \textbf{ with "
                r"loss } \ell \textbf{ and gradient } g \textbf{ from the closure}:"
            )
        elif block.mode == "step":
            lines.append(r"\textbf{each step}:")
        elif block.mode == "group":
            lines.append(r"\textbf{each step, for each parameter group}:")
        elif block.mode == "random":
            lines.append(
                r"\textbf{for a random parameter } \theta \textbf{ with a gradient}:"
            )
        elif seen:
            seen += 1
            lines.append(rf"\textbf{{then, for each parameter (pass {seen})}}:")
        else:
            seen += 1
            lines.append(r"\textbf{for} \: t=1 \: \textbf{to} \: \ldots \: \textbf{do}")
        if passes < 2 or block is checked.blocks[0]:
            # with several passes, a later block reads what an earlier one set this step
            p.assigned = set()
        p.stmts(block.body, 1, lines)
    # (a per-parameter update shows a procedure where it calls it, inlined)
    for proc in checked.spec.procedures if checked.program is not None else ():
        params = ", ".join(symbol(q.name.id) for q in proc.params)
        lines.append(r"\rule{110mm}{0.4pt}")
        name = proc.name.id.replace("_", r"\_")
        lines.append(
            rf"\textbf{{procedure}} \: \mathrm{{{name}}}({params})\textbf{{:}}"
        )
        p.stmts(proc.body, 1, lines)
    lines.append(r"\rule{110mm}{0.4pt}")
    lines.append(r"\textbf{return} \: \theta_t")
    for method, body in checked.methods:
        name = method.name.id.replace("_", r"\_")
        lines.append(r"\rule{110mm}{0.4pt}")
        lines.append(
            rf"\textbf{{method}} \: \mathrm{{{name}}}()\textbf{{, for each parameter group:}}"
        )
        p.assigned = set()
        p.stmts(body, 1, lines)
    lines.append(r"\rule{110mm}{0.4pt}")
    body = " \\\\\n".join("            &" + ln for ln in lines)
    return (
        "    .. math::\n       \\begin{aligned}\n"
        + body
        + " \\\\\n       \\end{aligned}\n"
    )
