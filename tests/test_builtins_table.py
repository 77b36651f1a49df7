"""One table per operator (issue 19): a function of the spec language is declared once, in
generator/language/builtins.py, and every stage reads it from there.

* ``cos``, ``sin`` and the constant ``pi`` (added as table entries only) run on the for-loop,
  foreach and fused paths and match a computation written here in torch, bit for bit in float64;
  the algorithm box shows them as \\cos, \\sin, \\pi; ``optimgen fmt`` keeps them; no spec name may
  be ``pi``;
* every entry is reachable by every consumer: an elementwise function of one tensor has its ops
  spelling, its place in the fused kernel, its LaTeX, its scalar forms where it takes numbers,
  and compiles and runs on all three paths, so an entry added later cannot forget one;
* scalar constant folding (generator/lower/fold.py) removes only operations exact in value and
  type.
"""

from __future__ import annotations

import math

import pytest
import torch

from generator import ir
from generator.api import check_text, compile_text, load_spec
from generator.commands.fmt import format_text
from generator.emit.docs.latex import LatexPrinter, algorithm_box
from generator.emit.python import bodies, fused, ops
from generator.emit.python.blocks import Imports
from generator.emit.python.flat import FlatPrinter
from generator.emit.python.scalars import CapturableScalars, ScalarPrinter
from generator.language import syntax as S
from generator.language.builtins import BUILTINS, CONSTANTS, unary_elementwise
from generator.language.diagnostics import SpecError
from generator.language.parse import parse
from generator.language.types import Kind
from generator.lower import fold
from paths import run_path

SHAPES = ((3, 4), (2, 3, 4), (5,), (17,))
IMPLS = ("for-loop", "foreach", "fused")
LR = 0.1

TRIG = """\
optimizer Trig
input lr: float = 0.1
input foreach: bool? = none
input fused: bool? = none
state t (step): count <- 0
state m (phase) <- 0
update:
    t <- t + 1
    m <- cos(m)
    m <- m + sin(grad)
    param <- param - (sin(grad) * lr * cos(pi * t / 10)) - (m * (0.01 * sin(pi / 4)))
"""


def _run(cls, impl, steps=5, native=False, **kwargs):
    """The optimizer, its parameters and the gradients it saw after ``steps`` float64 steps
    on ``impl``; the fused path's kernels run uncompiled, its Python kernel (torch's own
    functions, bit for bit) unless ``native``."""
    return run_path(cls, impl, SHAPES, steps, eager=True, native=native, **kwargs)


def _initial():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]


def _assert_computed_as_torch(got, want, impl: str, what: str) -> None:
    """Bit for bit on the for-loop and the fused kernel. The foreach path regroups a
    product subtracted whole (generator.lower.products: ``param - (f(x) * s)`` is
    ``_foreach_add_(params, f(x), alpha=-s)``, whose kernel rounds ``a + alpha * b`` once):
    within four roundings of the largest value."""
    if impl != "foreach":
        assert torch.equal(got, want), f"{what}: {(got - want).abs().max().item()}"
        return
    bound = 4 * torch.finfo(want.dtype).eps * want.abs().max().item()
    torch.testing.assert_close(
        got, want, rtol=0, atol=bound, msg=lambda m: f"{what}: {m}"
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_cos_sin_and_pi_match_torch_bit_for_bit_on_every_path(impl):
    opt, got, history = _run(load_spec(TRIG), impl)
    params = _initial()
    phases = [torch.zeros_like(p) for p in params]
    for k, grads in enumerate(history, start=1):
        c = math.cos(math.pi * k / 10)
        s = 0.01 * math.sin(math.pi / 4)
        for p, m, g in zip(params, phases, grads):
            m.cos_()
            m.add_(g.sin())
            p.sub_(g.sin().mul(LR).mul(c)).sub_(m.mul(s))
    for shape, a, e in zip(SHAPES, got, params):
        _assert_computed_as_torch(a, e, impl, f"{impl} {shape}")
    for p, m in zip(opt.param_groups[0]["params"], phases):
        assert torch.equal(opt.state[p]["phase"], m)


def test_cos_sin_and_pi_print_as_torch_and_math_spell_them():
    src = compile_text(TRIG)
    assert "phase.cos_()" in src  # x <- cos(x): in place
    assert "torch._foreach_cos_(device_phases)" in src
    assert "torch._foreach_sin(device_grads)" in src
    assert "math.cos(math.pi * step / 10)" in src  # numbers: math's
    assert "torch.cos(math.pi * step / 10)" in src  # 0-d tensors (fused, compiled)
    # a number of constants alone stays a Python number in the fused kernel too
    assert "torch.sin(math.pi / 4)" not in src
    assert "import math" in src


def test_cos_sin_and_pi_in_the_algorithm_box():
    box = algorithm_box(check_text(TRIG))
    assert r"\cos\left(m_{t-1}\right)" in box
    assert r"\sin\left(\nabla_{\theta} f_t(\theta_{t-1})\right)" in box
    assert r"\frac{\pi \cdot t}{10}" in box


def test_a_branch_reads_the_values_of_before_its_if_in_the_algorithm_box():
    """A value one branch sets is the step's new one (t) in that branch and after the `if`,
    but not in a sibling branch, which still reads the previous one (t-1): Adam's L2 decay
    in the `else` of decoupled decay read θ_t."""
    box = algorithm_box(
        check_text(
            "optimizer X\ninput lr: float = 0.1\ninput decoupled: bool = false\n"
            "update:\n    g <- grad\n    if decoupled:\n        param <- param * 0.9\n"
            "    else:\n        g <- g + param\n    param <- param - lr * g\n"
        )
    )
    lines = [line for line in box.splitlines() if "leftarrow" in line]
    assert r"g + \theta_{t-1}" in lines[2], lines[2]  # the else reads the old one
    assert r"\theta_{t} - \gamma" in lines[3], lines[3]  # after the if, the new one


def test_fmt_keeps_cos_sin_and_pi():
    assert format_text(TRIG) == TRIG
    unicode = TRIG.replace("pi * t", "π * t")
    assert format_text(unicode) == unicode  # the author's spelling is kept
    # and means the same (the module but its header, which names the spec's hash)
    body = lambda src: src.splitlines()[2:]  # noqa: E731
    assert body(compile_text(unicode)) == body(compile_text(TRIG))
    # the spec printer writes `pi` back as a name that parses to the same tree
    spec = parse(TRIG, "<spec>")
    again = parse(format_text(TRIG), "<spec>")
    assert spec.updates == again.updates


@pytest.mark.parametrize(
    "text, what",
    [
        (
            "input pi: float = 3.0\nupdate:\n    param <- param - lr * pi * grad\n",
            "an input",
        ),
        (
            "state pi (pi) <- 0\nupdate:\n    pi <- pi + grad\n    param <- param - lr * pi\n",
            "a state",
        ),
        ("update:\n    pi <- 3\n    param <- param - lr * pi * grad\n", "a value"),
        ("update:\n    pi <- grad * 2\n    param <- param - lr * pi\n", "a value"),
    ],
    ids=["input", "state", "scalar local", "tensor local"],
)
def test_no_spec_name_may_be_a_constant(text, what):
    # one error, at the name, and no other that follows from it (`pi` never used, ...)
    assert _errors("optimizer X\ninput lr: float = 0.1\n" + text) == [
        ("E201", f"`pi` is a constant of the language and cannot name {what}")
    ]


def _errors(text: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        check_text(text)
    return [(d.code, d.message) for d in caught.value.diagnostics]


def test_a_constant_has_no_time_subscript():
    assert _errors(
        "optimizer X\ninput lr: float = 0.1\nupdate:\n"
        "    param <- param - lr * pi_{t} * grad\n"
    ) == [("E306", "`pi` is a constant: it has no time subscript")]


def test_pi_in_a_requirement_and_a_state_value():
    src = compile_text(
        'optimizer X\ninput lr: float = 0.1\n    requires lr < pi else "lr < pi: {lr}"\n'
        "update:\n    param <- param - lr * pi * grad\n"
    )
    assert "if not lr < math.pi:" in src
    assert "alpha=-(lr * math.pi)" in src


def test_a_function_without_a_form_for_numbers_is_refused_on_numbers():
    # (it used to pass the checker and stop the build with a GeneratorBug)
    assert _errors(
        "optimizer X\ninput lr: float = 0.1\nupdate:\n"
        "    s <- rsqrt(lr)\n    param <- param - s * grad\n"
    ) == [("E312", "`rsqrt` is for tensors: it has no form for numbers")]


# ---- every entry, every consumer ---------------------------------------------------------------------


def test_every_table_entry_is_spelled_by_every_consumer():
    checked = check_text(TRIG)
    for b in BUILTINS.values():
        # (a function of no arguments draws: the runtime's host_uniform)
        assert (b.params or b.runtime is not None) and all(
            k in ("any", "scalar", "tensor", "bool", "int", "str", "list", "dtype")
            for k in b.params
        ), b.name
        if b.tensor is not None:
            spelling = ops.OPS[b.tensor.op]
            assert (spelling.method, spelling.inplace, spelling.foreach) == (
                b.tensor.method,
                b.tensor.inplace,
                b.tensor.foreach,
            ), b.name
            assert spelling.saves_output == b.tensor.saves_output
            if b.elementwise:
                assert b.tensor.op in fused.ELEMENTWISE, b.name
            if b.nonlinear_complex:
                assert b.tensor.op in bodies.NONLINEAR, b.name
        if b.torch is not None:
            assert fused._TorchScalars.FUNCS[b.name] == b.torch
            if len(b.params) == 1:
                assert CapturableScalars.TORCH[b.name] == b.torch
        if b.python is not None:
            args = tuple(ir.SRef(f"a{k}") for k in range(len(b.params)))
            text = ScalarPrinter(lambda r: r.name)(ir.SCall(b.name, args))
            compile(text, b.name, "eval")  # a Python expression
        # the algorithm box shows every function, with its arguments
        names = tuple(S.Name(f"a{k}", None, None) for k in range(len(b.params)))
        latex = LatexPrinter(checked).expr(S.Call(b.name, names, None))
        assert all(f"a{k}" in latex for k in range(len(b.params))), b.name
    for c in CONSTANTS.values():
        value = eval(c.python, {"math": math, "torch": torch})
        # (a dtype's value is its name: `torch.float32` is float32)
        assert value == (getattr(torch, c.value) if c.kind == Kind.DTYPE else c.value)
        assert LatexPrinter(checked).expr(S.Name(c.name, None, None)) == c.latex


FLAT = sorted(b.name for b in BUILTINS.values() if b.flat is not None)


@pytest.mark.parametrize("name", FLAT)
def test_every_flat_form_is_printed_from_the_table_on_vectors_and_numbers(name):
    """`update flat:` reads its functions from the same table: torch's method on a vector,
    Python's function on numbers, checked arity; a flat-only one is refused per parameter.
    """
    b = BUILTINS[name]
    form = b.flat
    printer = FlatPrinter(Imports())

    def call(arity, kind):
        args = tuple(ir.VRef(f"a{k}", "local", kind) for k in range(arity))
        return printer.expr(ir.VCall(name, args, ir.Form.HOST))

    for arity in sorted({form.least, min(form.most, 2)}):
        on_vectors = call(arity, ir.Form.VECTOR)
        compile(on_vectors, name, "eval")
        if form.vector is not None and form.vector.count("{") == arity:
            assert on_vectors == form.vector.format(*(f"a{k}" for k in range(arity)))
        if form.needs is None:  # numbers too: Python's own function
            on_numbers = call(arity, ir.Form.HOST)
            compile(on_numbers, name, "eval")
            assert ".max()" not in on_numbers and not on_numbers.startswith("a0.")
            # the module imports what the printed call uses (math.sqrt)
            assert ("math" in printer.imports) == ("math." in on_numbers), on_numbers
    if b.context == "flat":
        spec = (
            "optimizer X\ninput lr: float = 0.1\nupdate:\n"
            f"    param <- param - lr * {name}(grad)\n"
        )
        with pytest.raises(SpecError) as info:
            check_text(spec)
        assert [d.code for d in info.value.diagnostics] == ["E501"]


UNARY = sorted(b.name for b in unary_elementwise())


def _unary_spec(b) -> str:
    on_numbers = b.python is not None
    return (
        f"optimizer Each_{b.name}\ninput lr: float = 0.5\ninput foreach: bool? = none\n"
        "input fused: bool? = none\nstate m (m) <- 0\nupdate:\n"
        "    x <- abs(grad) + 0.5\n"  # in every function's domain
        "    m <- x\n"
        f"    m <- {b.name}(m)\n"  # in place: m.f_(), torch._foreach_f_
        + (f"    s <- {b.name}(lr)\n" if on_numbers else "    s <- lr\n")
        + f"    param <- param - ({b.name}(x) * s) - m\n"
    )


@pytest.mark.parametrize("name", UNARY)
def test_every_elementwise_function_of_one_tensor_runs_on_every_path(name):
    b = BUILTINS[name]
    spec = _unary_spec(b)
    src = compile_text(spec)
    assert f"m.{b.tensor.inplace}()" in src
    assert f"torch._foreach_{b.tensor.foreach}_(device_ms)" in src
    box = algorithm_box(check_text(spec))
    assert (b.latex.format("x") if b.latex else rf"\mathrm{{{name}}}") in box
    cls = load_spec(spec)
    f = getattr(torch, name)  # torch's own function of that name
    s = eval(b.python.format("0.5"), {"math": math}) if b.python else 0.5
    for impl in IMPLS:
        _, got, history = _run(cls, impl, steps=2, lr=0.5)
        params = _initial()
        for grads in history:
            for p, g in zip(params, grads):
                x = g.abs().add(0.5)
                p.sub_(f(x).mul(s)).sub_(f(x))
        for a, e in zip(got, params):
            _assert_computed_as_torch(a, e, impl, f"{name} on {impl}")


@pytest.mark.parametrize("name", ["abs", "rsqrt", "sign", "sqrt"])
def test_the_native_kernel_computes_each_function_it_writes_as_torch_does(name):
    # the C++ kernel's sqrt is the correctly rounded one; torch's vectorized float64 sqrt may
    # be an ulp off it: within one rounding of torch's result, not bit for bit
    b = BUILTINS[name]
    cls = load_spec(_unary_spec(b))
    assert "NativeKernel(" in compile_text(_unary_spec(b))
    _, got, _ = _run(cls, "fused", steps=2, native=True, lr=0.5)
    _, want, _ = _run(cls, "fused", steps=2, native=False, lr=0.5)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=4.5e-16, atol=0)


# ---- constant folding -----------------------------------------------------------------------------------


def _s(text):
    return ir.number(text)


X, N = ir.SRef("x"), ir.SRef("n")
STEP = ir.SRef("step", varying=True, count=True)


@pytest.mark.parametrize(
    "expr, folded",
    [
        (ir.SBin("*", X, _s("1")), X),
        (ir.SBin("*", _s("1"), X), X),
        (ir.SUnary("-", ir.SBin("*", X, _s("1"))), ir.SUnary("-", X)),
        (ir.SBin("-", X, _s("0")), X),
        # x may be an int: x * 1.0, x / 1 would be floats
        (ir.SBin("*", X, _s("1.0")), ir.SBin("*", X, _s("1.0"))),
        (ir.SBin("/", X, _s("1")), ir.SBin("/", X, _s("1"))),
        # a quotient is a float: dividing it by 1 is exact
        (ir.SBin("/", ir.SBin("/", X, N), _s("1")), ir.SBin("/", X, N)),
        (ir.SBin("*", ir.SBin("/", X, N), _s("1.0")), ir.SBin("/", X, N)),
        (ir.SBin("*", ir.SCall("sqrt", (X,)), _s("1.0")), ir.SCall("sqrt", (X,))),
        # -0.0 + 0 is +0.0: never folded
        (ir.SBin("+", X, _s("0")), ir.SBin("+", X, _s("0"))),
        (ir.SBin("+", _s("0"), X), ir.SBin("+", _s("0"), X)),
        (ir.SBin("-", _s("0"), X), ir.SBin("-", _s("0"), X)),
        # a counter stays copied (t * 1 is this step's value, t the tensor `+=` changes)
        (ir.SBin("*", STEP, _s("1")), ir.SBin("*", STEP, _s("1"))),
        (
            ir.SUnary("-", ir.SBin("*", ir.SBin("*", STEP, _s("1")), _s("1"))),
            ir.SUnary("-", ir.SBin("*", STEP, _s("1"))),
        ),
    ],
)
def test_folding_removes_only_exact_operations(expr, folded):
    assert fold.fold_expr(expr) == folded


@pytest.mark.parametrize("x", [3, -0.0, 0.0, 2.5, -7, float("inf"), 10**20 + 1])
def test_each_folding_rule_is_exact_in_value_and_type(x):
    for rule in fold.RULES:
        if rule.guard is not fold._any and not isinstance(x, float):
            continue  # (a guarded rule applies to floats only)
        const = (
            "1"
            if rule.const == ("int", 1.0)
            else "0" if rule.const == ("int", 0.0) else str(rule.const[1])
        )
        text = {"*": "*", "/": "/", "-": "-"}[rule.op]
        expr = f"x {text} {const}" if rule.side == "right" else f"{const} {text} x"
        value = eval(expr, {"x": x})
        assert type(value) is type(x) and math.copysign(1, value) == math.copysign(
            1, x
        ), rule.name
        assert value == x, rule.name
        t = torch.tensor(
            x if isinstance(x, float) else 3,
            dtype=torch.float32 if isinstance(x, float) else torch.int64,
        )
        tv = eval(expr, {"x": t})
        assert tv.dtype == t.dtype and torch.equal(tv, t), rule.name


def test_folding_lamb_leaves_no_multiplication_by_one():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    src = compile_text((root / "specs" / "lamb.optim").read_bytes(), "specs/lamb.optim")
    assert "* 1)" not in src and "alpha=-step_size" in src


def test_the_language_reference_lists_every_function_and_constant_of_the_table():
    """generated/docs/language.md is written from the builtin table, row for row; the
    committed page is the one the table gives (as `optimgen check` holds it)."""
    from pathlib import Path

    from generator.emit.docs.reference import language_reference
    from generator.language.builtins import BUILTINS, CONSTANTS, shape_rule

    page = language_reference()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    for b in BUILTINS.values():
        row = next((r for r in rows if r.startswith(f"| `{b.name}(")), None)
        assert row is not None, f"`{b.name}` has no row in the language reference"
        assert shape_rule(b) in row and b.doc.replace("|", "\\|") in row, row
    for c in CONSTANTS.values():
        assert any(r.startswith(f"| `{c.name}` |") for r in rows), c.name
    committed = Path(__file__).resolve().parents[1] / "generated/docs/language.md"
    assert (
        committed.read_text() == page
    ), "generated/docs/language.md is stale: run make build"


def test_a_function_that_is_neither_elementwise_nor_a_number_declares_its_shape():
    from generator.language.builtins import BUILTINS, Builtin, shape_rule

    assert all(shape_rule(b) for b in BUILTINS.values())
    with pytest.raises(ValueError, match="declares no shape"):
        shape_rule(
            Builtin("kron", ("tensor", "tensor"), "tensor", "a Kronecker product")
        )
