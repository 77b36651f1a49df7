"""The class around the update, for every generated optimizer: what torch.optim's classes promise
beyond the arithmetic, held to one table of optimizers (torch's twins and the paper optimizers
alike). The paths' numbers are tested elsewhere (test_every_path_vs_reference.py); here:

- the constructor refuses every value its spec's `requires` and input checks refuse, with the
  spec's exception and words, and a step refuses what the spec's parameter checks refuse
  (a sparse gradient, a complex parameter, a shape);
- `fused=True` with `foreach=True`, and the functional form's `differentiable` with `fused` or
  `foreach`, are refused as torch refuses them;
- `step(closure)` runs the closure with autograd on and returns its loss;
- a deep copy (pickling: `__setstate__`) continues the run exactly, and a group saved before an
  option existed gets that option's default;
- a state_dict loaded into a fresh optimizer continues the run exactly (states and parameters).
"""

from __future__ import annotations

import copy
import inspect
import itertools
import re
from pathlib import Path

import pytest
import torch

import generated
from generator.api import check_text
from generator.language import syntax as S
from generator.runtime.kernels import eager_kernels
from generator.verify.grid import names_read as _names
from generator.verify.grid import required_arguments
from generator.verify.harness import needs_closure
from generator.verify.problems import seed_draws
from generator.verify.grid import subexpressions as _nodes

ROOT = Path(__file__).resolve().parents[1]
CLASSES = sorted(
    n for n in generated.__all__ if isinstance(getattr(generated, n), type)
)
SHAPES = (
    (3, 4),
    (4, 3),
)  # matrices: every optimizer takes them (Muon takes nothing else)


def _checked(name: str):
    # the module's name, not its file's (tests/tools/mutants.py swaps a mutant's file in)
    module = getattr(generated, name).__module__.rsplit(".", 1)[-1]
    path = ROOT / "specs" / f"{module}.optim"
    return check_text(path.read_text(), str(path))


def _params(dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in SHAPES
    ]


def _closure(params, seed, sparse=False, graph=False):
    """A closure of a quadratic loss; with ``graph``, its gradients keep their graph (for a
    step that differentiates them, AdaHessian's: ``requires_create_graph``)."""
    gen = torch.Generator().manual_seed(seed)
    targets = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    seen = []

    def closure():
        seen.append(torch.is_grad_enabled())
        for p in params:
            p.grad = None
        loss = sum(((p - t) ** 2).sum() for p, t in zip(params, targets))
        loss.backward(create_graph=graph)
        if sparse:  # SparseAdam takes sparse gradients only
            for p in params:
                p.grad = p.grad.to_sparse()
        return loss

    return closure, seen


def _make(name, params, **kwargs):
    cls = getattr(generated, name)
    return cls(params, **{**required_arguments(cls), **kwargs})


def _run(opt, params, steps, first=0):
    sparse = type(opt).__name__ == "SparseAdam"
    for k in range(first, first + steps):
        # the same draws for both runs: torch's (WeirdDescent's) and numpy's (Kron's balancing,
        # which otherwise depends on what the worker ran before)
        seed_draws(k)
        graph = getattr(opt, "requires_create_graph", False)
        closure = _closure(params, k, sparse, graph)[0]
        # (the gradients at the weights first, as a training loop computes them: a step that
        # evaluates the closure itself, SAM's, starts from them; any other recomputes them)
        with torch.enable_grad():
            closure()
        opt.step(closure)


def _same(name, a, b, where="state"):
    if isinstance(a, dict):
        assert (
            isinstance(b, dict) and a.keys() == b.keys()
        ), f"{name}: {where}: {a.keys()} vs {b}"
        for k in a:
            _same(name, a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{name}: {where}: {a} vs {b}"
        for k, (x, y) in enumerate(zip(a, b)):
            _same(name, x, y, f"{where}[{k}]")
    elif torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype, f"{name}: {where}: {a} vs {b}"
        assert torch.equal(a, b), f"{name}: {where} differs by {(a - b).abs().max()}"
    else:
        assert a == b, f"{name}: {where}: {a} vs {b}"


def _same_run(name, a, b):
    for k, (pa, pb) in enumerate(zip(a[1], b[1])):
        assert torch.equal(
            pa, pb
        ), f"{name}: parameter {k} differs by {(pa - pb).abs().max()}"
    _same(name, a[0].state_dict()["state"], b[0].state_dict()["state"])


# ---- refusals the spec declares ------------------------------------------------------------------


def _message_pattern(text: str) -> str:
    """The message with its `{placeholders}` standing for any text."""
    parts = re.split(r"\{[^{}]*\}", text)
    return ".*".join(re.escape(p) for p in parts)


def _constructor_refusals(name: str):
    """(label, input names, message) of every refusal the spec makes at construction."""
    spec = _checked(name).spec
    out = []
    for inp in spec.inputs:
        for r in inp.requires:
            ids = tuple(
                dict.fromkeys([*(n.id for n in inp.names), *sorted(_names(r.expr))])
            )
            out.append((f"{inp.arg_name}: {r.message.text}", ids, r.message))
    for c in spec.checks:
        names = _names(c.expr)
        if names & {"grad", "param"}:
            continue
        out.append((c.message.text, tuple(sorted(names)), c.message))
    return spec, out


def _a_schedule(step):
    return 0.5


def _candidates(kind: str) -> list:
    out: list = []
    for t in kind.split("|"):
        out += {
            # (and a callable, which a reference may take as a schedule: Kron refuses one)
            "float": [-1.0, -1e-3, 0.0, 1.0, 1.5, 2.0, 1e9, _a_schedule],
            "int": [-1, 0, 1, 2, 10**9],
            "bool": [True, False],
            "tensor": [torch.tensor(1e-3), torch.tensor([1e-3, 1e-3])],
            "str": ["?"],
            "dtype": [torch.float32, torch.float64],
        }.get(t.rstrip("?"), [])
        if t.endswith("?"):
            out.append(None)
    return out or [-1.0, 0.0, 1.0, 2.0]


def _items_varied(default: tuple, kind: str) -> list[tuple]:
    """A `tuple of` input's default with one item replaced by each candidate value."""
    return [
        default[:j] + (v,) + default[j + 1 :]
        for j in range(len(default))
        for v in _candidates(kind)
    ]


def _input_of(spec, ident: str):
    for inp in spec.inputs:
        for k, n in enumerate(inp.names):
            if n.id == ident:
                return inp, k
    return None, None


def _violations(name: str, spec, ids, expr=None):
    """Constructor kwargs setting the inputs of ``ids`` to every combination of candidate values
    (each input's default among them): a check on several inputs (`betas[0] as a Tensor is not
    supported for capturable=False and foreach=True`) needs them together."""
    cls = getattr(generated, name)
    defaults = {
        **required_arguments(cls),
        **{
            n: p.default
            for n, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
        },
    }
    # every component of a tuple input: its checks couple them (betas both tensors); a name
    # that is no input (`param`) has nothing to vary
    inputs = [_input_of(spec, ident)[0] for ident in ids]
    ids = list(dict.fromkeys(n.id for inp in inputs if inp for n in inp.names))
    choices = []
    for ident in ids:
        inp, k = _input_of(spec, ident)
        if inp is None or inp.arg_name not in defaults:
            continue
        kinds = inp.type.names
        kind = kinds[k] if len(inp.names) > 1 else "|".join(kinds)
        default = defaults[inp.arg_name]
        own = default[k] if len(inp.names) > 1 else default
        # the strings the condition compares with (`mars_type == "shampoo"`)
        named = _nodes(expr) if expr is not None else []
        strings = (
            [n.value for n in named if isinstance(n, S.String)] if "str" in kind else []
        )
        if (
            inp.type.kind == "sequence"
        ):  # (`tuple of float`: shorter, and each item varied)
            values = [own, own[:1], own[:2], *_items_varied(own, kind)]
        else:
            values = [own, *_candidates(kind), *strings]
        choices.append([(inp, k, v) for v in values])
    for combo in itertools.product(*choices):
        kwargs: dict = {}
        for inp, k, v in combo:
            if len(inp.names) > 1:
                value = list(kwargs.get(inp.arg_name, defaults[inp.arg_name]))
                value[k] = v
                kwargs[inp.arg_name] = tuple(value)
            else:
                kwargs[inp.arg_name] = v
        yield kwargs


# checks no value reaches: an earlier check refuses every value that would reach them (in torch
# too: the range check `0.0 <= betas[0] < 1.0` of a tensor with two elements raises first)
UNREACHABLE = {
    "Tensor betas[0] must be 1-element": "torch's range check on betas[0] raises first",
    "Tensor betas[1] must be 1-element": "torch's range check on betas[1] raises first",
    "betas[1] as a Tensor is not supported for capturable=False and foreach=True": (
        "betas[1] is a tensor only with betas[0] (both or neither), whose check raises first"
    ),
}


CONSTRUCTOR_CASES = [
    pytest.param(name, label, id=f"{name}-{label[:40]}")
    for name in CLASSES
    for label, _, _ in _constructor_refusals(name)[1]
]


@pytest.mark.parametrize("name,label", CONSTRUCTOR_CASES)
def test_the_constructor_refuses_what_the_spec_requires(name, label):
    spec, refusals = _constructor_refusals(name)
    _, ids, message = next(r for r in refusals if r[0] == label)
    if message.text in UNREACHABLE:
        pytest.skip(UNREACHABLE[message.text])
    pattern = _message_pattern(message.text)
    tried = []
    for kwargs in _violations(name, spec, ids):
        try:
            _make(name, _params(), **kwargs)
        except Exception as e:  # noqa: BLE001 - the refusal under test
            tried.append(f"{kwargs}: {type(e).__name__}: {e}")
            if type(e).__name__ == message.exception and re.fullmatch(pattern, str(e)):
                return
        else:
            tried.append(f"{kwargs}: accepted")
    pytest.fail(
        f"{name}: no value of {ids} was refused with {message.exception}({message.text!r});"
        f" tried ({len(tried)}, the first 20):\n  " + "\n  ".join(tried[:20])
    )


def _bad_steps():
    """Parameters and gradients a spec's step-time checks may refuse."""

    def sparse():
        p = torch.nn.Parameter(torch.zeros(5, 3, dtype=torch.float64))
        idx = torch.tensor([[0, 2]])
        p.grad = torch.sparse_coo_tensor(
            idx, torch.ones(2, 3, dtype=torch.float64), (5, 3)
        )
        return [p]

    def complex_():
        p = torch.nn.Parameter(torch.randn(3, 4, dtype=torch.complex128))
        p.grad = torch.randn_like(p)
        return [p]

    def shaped(*shape):
        def make():
            p = torch.nn.Parameter(torch.randn(shape, dtype=torch.float64))
            p.grad = torch.randn_like(p)
            return [p]

        return make

    def sparse_param():
        return [torch.nn.Parameter(torch.zeros(5, 3, dtype=torch.float64).to_sparse())]

    return {
        "a sparse gradient": sparse,
        "a sparse parameter": sparse_param,
        "a complex parameter": complex_,
        "a vector": shaped(5),
        "a 3-d tensor": shaped(2, 3, 4),
        "a scalar": shaped(),
    }


STEP_CASES = [
    pytest.param(name, c.message.text, id=f"{name}-{c.message.text[:40]}")
    for name in CLASSES
    for c in _checked(name).spec.checks
    if _names(c.expr) & {"grad", "param"}
]


@pytest.mark.parametrize("name,text", STEP_CASES)
def test_a_step_refuses_what_the_spec_checks(name, text):
    spec = _checked(name).spec
    check = next(c for c in spec.checks if c.message.text == text)
    pattern = _message_pattern(text)
    inputs = sorted(_names(check.expr) - {"grad", "param"})
    tried = []
    cases = [
        (kwargs, what, make)
        for kwargs in _violations(name, spec, inputs, check.expr)
        for what, make in _bad_steps().items()
    ]
    for kwargs, what, make in cases:
        what = f"{what} with {kwargs}" if kwargs else what
        params = make()
        try:
            opt = _make(name, params, **kwargs)
            if needs_closure(opt):  # (LBFGS, SAM's variants)
                opt.step(lambda: torch.zeros((), dtype=torch.float64))
            else:
                opt.step()
        except Exception as e:  # noqa: BLE001 - the refusal under test
            tried.append(f"{what}: {type(e).__name__}: {e}")
            if type(e).__name__ == check.message.exception and re.fullmatch(
                pattern, str(e)
            ):
                return
        else:
            tried.append(f"{what}: stepped")
    pytest.fail(
        f"{name}: nothing was refused with {check.message.exception}({text!r}); tried"
        f" ({len(tried)}, the first 20):\n  " + "\n  ".join(tried[:20])
    )


# ---- fused, foreach and differentiable together --------------------------------------------------


def _functionals(name):
    """The module's functional forms: one per pass (`adam`, `prodigy_pass2`)."""
    cls = getattr(generated, name)
    module = inspect.getmodule(cls)
    stem = module.__name__.rsplit(".", 1)[-1]
    return [
        f
        for n, f in vars(module).items()
        if inspect.isfunction(f)
        and f.__module__ == module.__name__
        and (n == stem or re.fullmatch(rf"{stem}_pass\d+", n))
    ]


def _call(fn, **flags):
    sig = inspect.signature(fn)
    lists = [
        [torch.zeros(2, dtype=torch.float64)]
        for q in sig.parameters.values()
        if q.kind is q.POSITIONAL_OR_KEYWORD
    ]
    keywords = {
        q.name: None
        for q in sig.parameters.values()
        if q.kind is q.KEYWORD_ONLY and q.default is q.empty
    }
    fn(*lists, **keywords, **{k: v for k, v in flags.items() if k in sig.parameters})


def _has(name, flag):
    return flag in inspect.signature(getattr(generated, name)).parameters


FUNCTIONAL_CASES = [
    pytest.param(name, id=name)
    for name in CLASSES
    if _functionals(name) and _has(name, "foreach")
]


@pytest.mark.parametrize("name", [n for n in CLASSES if _has(n, "fused")])
def test_fused_and_foreach_together_are_refused(name):
    with pytest.raises(
        RuntimeError, match="`fused` and `foreach` cannot be `True` together"
    ):
        _make(name, _params(), fused=True, foreach=True)
    for fn in _functionals(name):
        with pytest.raises(
            RuntimeError, match="`fused` and `foreach` cannot be `True` together"
        ):
            _call(fn, fused=True, foreach=True)
        with pytest.raises(
            RuntimeError, match="`fused` does not support `differentiable`"
        ):
            _call(fn, fused=True, differentiable=True)


@pytest.mark.parametrize("name", FUNCTIONAL_CASES)
def test_the_functional_form_refuses_foreach_with_differentiable(name):
    fns = _functionals(name)
    for fn in fns:
        with pytest.raises(
            RuntimeError, match=re.escape("foreach ops don't support autograd")
        ):
            _call(fn, foreach=True, differentiable=True)


# ---- closure, copies and state_dicts ---------------------------------------------------------------


@pytest.mark.parametrize("name", CLASSES)
def test_step_runs_the_closure_with_autograd_and_returns_its_loss(name):
    params = _params()
    opt = _make(name, params)
    graph = getattr(opt, "requires_create_graph", False)
    closure, seen = _closure(params, 0, sparse=name == "SparseAdam", graph=graph)
    returned = []

    def recorded():
        returned.append(closure())
        return returned[-1]

    with torch.no_grad():  # as a training loop under no_grad would call it
        loss = opt.step(recorded)
    assert seen and all(seen), f"{name}: the closure ran with autograd off: {seen}"
    # torch returns the closure's (first) loss, the one from before the step (LBFGS too)
    assert (
        loss is returned[0]
    ), f"{name}: step returned {loss!r}, the closure {returned[0]!r}"
    # (LBFGS and SAM's variants need the closure; AdaHessian's step has used up the
    # gradients' graph)
    if not needs_closure(opt) and not graph:
        assert opt.step() is None


@pytest.mark.parametrize("name", CLASSES)
def test_a_deep_copy_continues_the_run_exactly(name):
    params = _params()
    opt = _make(name, params)
    _run(opt, params, 3)
    twin = copy.deepcopy((opt, params))  # pickling's path: __getstate__, __setstate__
    _run(opt, params, 3, first=3)
    _run(twin[0], twin[1], 3, first=3)
    _same_run(name, (opt, params), twin)


@pytest.mark.parametrize("name", CLASSES)
def test_a_group_saved_before_an_option_existed_gets_its_default(name):
    # torch's __setstate__ gives groups of older checkpoints the options added since (foreach,
    # maximize, ...) with their defaults; here every flag the constructor takes is such an option
    params = _params()
    opt = _make(name, params)
    state = opt.__getstate__()
    flags = [
        k
        for k, v in opt.defaults.items()
        if isinstance(v, bool) or (v is None and k in ("foreach", "fused"))
    ]
    for group in state["param_groups"]:
        for k in flags:
            del group[k]
    opt.__setstate__(state)
    missing = [k for k in flags if k not in opt.param_groups[0]]
    assert not missing, f"{name}: __setstate__ restored no default for {missing}"
    for k in flags:
        assert opt.param_groups[0][k] == opt.defaults[k], (k, opt.param_groups[0][k])
    _run(opt, params, 2)


@pytest.mark.parametrize("name", CLASSES)
def test_a_loaded_state_dict_continues_the_run_exactly(name):
    params = _params()
    opt = _make(name, params)
    _run(opt, params, 3)
    saved = copy.deepcopy(opt.state_dict())
    other = [torch.nn.Parameter(p.detach().clone()) for p in params]
    loaded = _make(name, other)
    loaded.load_state_dict(saved)
    _run(opt, params, 3, first=3)
    _run(loaded, other, 3, first=3)
    _same_run(name, (opt, params), (loaded, other))


def _evaluates(name) -> bool:
    """Its step evaluates the closure itself and needs one (SAM's variants): GradScaler's
    protocol has no closure (torch's GradScaler.step refuses one), and the class does not
    claim it."""
    step = inspect.signature(getattr(generated, name).step).parameters["closure"]
    return step.default is inspect.Parameter.empty


@pytest.mark.parametrize(
    "name", [n for n in CLASSES if _has(n, "fused") and not _evaluates(n)]
)
def test_a_fused_step_keeps_gradscalers_protocol(name):
    # GradScaler hands a fused step its scale and whether it found an inf
    # (`_step_supports_amp_scaling`): the step unscales the gradients itself, and an inf
    # step changes nothing. Held to the for-loop given the unscaled gradients.
    params = _params(torch.float32)
    plain = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt = _make(name, params, fused=True)
    reference = _make(name, plain, foreach=False)
    assert opt._step_supports_amp_scaling
    with eager_kernels():
        for step in range(3):
            gen = torch.Generator().manual_seed(step)
            grads = [torch.randn(p.shape, generator=gen) for p in params]
            scale = 2.0 ** (step + 1)  # a power of two: unscaling is exact
            for p, q, g in zip(params, plain, grads):
                p.grad, q.grad = g * scale, g.clone()
            opt.grad_scale, opt.found_inf = torch.tensor(scale), torch.tensor(0.0)
            opt.step()
            reference.step()
        for k, (p, q) in enumerate(zip(params, plain)):
            torch.testing.assert_close(
                p, q, rtol=1e-5, atol=1e-6, msg=f"{name}: param {k}"
            )
        before = copy.deepcopy(
            ([p.detach() for p in params], opt.state_dict()["state"])
        )
        for p in params:
            p.grad = torch.full_like(p, float("inf"))
        opt.grad_scale, opt.found_inf = torch.tensor(2.0), torch.tensor(1.0)
        opt.step()
    for k, (p, b) in enumerate(zip(params, before[0])):
        assert torch.equal(p, b), f"{name}: an inf step moved parameter {k}"
    _same(name, opt.state_dict()["state"], before[1])
