"""Lists in a per-parameter update: list states, read and updated item by item.

``state bufs <- [0] * n`` keeps n tensors of each parameter (AggMo's momentum buffers, one per
decay rate); ``bufs[k]`` is an item, updated in place by the same rewrite rules as a state, and
``len(bufs)`` its length. The for-loop and foreach paths run them (foreach keeps a list state by
item: the k-th tensor of every parameter, one list); a spec that also declares ``fused`` is refused
at the list state (E335), as is foreach where an item is read under a condition decided per
parameter; local lists run on both paths too (foreach: a list of the items' lists). Each spec is checked to the last bit in float64:
against pytorch_optimizer's AggMo, and against plain torch written here from the algorithm
(complex parameters, a state_dict saved and loaded in the middle of a run).
"""

from __future__ import annotations

import copy

import pytest
import torch

from generator import load_spec
from generator.api import check_text
from generator.language.diagnostics import SpecError
from paths import seeded_grads, seeded_params

AGGMO = """\
optimizer AggMoLike
summary "momentum aggregated over several decay rates"
input lr: float = 0.1 "learning rate"
input buffers: int = 3 "momentum buffers, of decay rates 0, 0.9, 0.99, ..."
    requires buffers >= 1 else "Invalid number of buffers: {buffers}"
input foreach: bool? = none, keyword
state bufs (momentum_buffer) <- [0] * buffers
update:
    step_size <- lr / len(bufs)
    for k in range(buffers):
        beta <- 1 - 0.1^k
        bufs[k] <- beta * bufs[k] + grad
        param <- param - step_size * bufs[k]
"""

# four ranks, and gradients over eight orders of magnitude
SHAPES = [(5,), (4, 3), (2, 3, 2), (2, 1, 3, 2)]


def _errors(text: str) -> list[tuple[str, int, str]]:
    """(code, line, message) of every error the spec gets (none: the test fails)."""
    with pytest.raises(SpecError) as info:
        check_text(text)
    return [(d.code, d.span.line, d.message) for d in info.value.diagnostics]


def _step_both(params, refs, grads):
    for p, q, g in zip(params, refs, grads):
        p.grad = g.clone()
        q.grad = g.clone()


# (pytorch_optimizer's AggMo reads betas[1] in its checks: it takes two decay rates at least)
@pytest.mark.parametrize("buffers", [2, 3, 4])
@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_a_list_state_matches_pytorch_optimizer_aggmo(buffers, foreach):
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    cls = load_spec(AGGMO)
    params = seeded_params(SHAPES)
    refs = [p.clone().requires_grad_() for p in params]
    opt = cls(params, lr=0.05, buffers=buffers, foreach=foreach)
    betas = tuple(1 - 0.1**k for k in range(buffers))
    ref = pytorch_optimizer.AggMo(refs, lr=0.05, betas=betas)
    for step, grads in enumerate(seeded_grads(SHAPES, 20, 1)):
        _step_both(params, refs, grads)
        opt.step()
        ref.step()
        for k, (p, q) in enumerate(zip(params, refs)):
            assert torch.equal(p, q.detach()), (
                f"step {step + 1}, parameter {k}: differs from pytorch_optimizer.AggMo "
                f"by {(p - q).abs().max().item():.3e}"
            )
    for p, q in zip(params, refs):
        mine = opt.state[p]["momentum_buffer"]
        theirs = list(ref.state[q]["momentum_buffer"].values())
        assert len(mine) == buffers
        for a, b in zip(mine, theirs):
            assert torch.equal(a, b), "a momentum buffer differs from the reference's"


SCALES = """\
optimizer MultiScale
summary "Adam-like, its denominator a mean over second moments at several decay rates"
input lr: float = 0.01 "learning rate"
input scales: int = 2 "second moments"
input eps: float = 1e-8 "term added to the denominator"
input foreach: bool? = none, keyword
state m (exp_avg) <- 0
state vs (exp_avg_sqs) <- [1] * scales
state firsts <- [param] * 2
update:
    m <- 0.9 * m + 0.1 * grad
    d <- 0 * grad
    for k in range(scales):
        vs[k] <- (1 - 0.1^(k + 1)) * vs[k] + 0.1^(k + 1) * grad^2
        d <- d + sqrt(vs[k])
    firsts[1] <- 0.5 * firsts[1] + 0.5 * param
    param <- param - lr * m / (d / scales + eps) - 1e-3 * (param - firsts[1])
"""


def _scales_reference(params, steps, lr=0.02, scales=3, eps=1e-8):
    """MultiScale in plain torch, on real views of complex parameters (its sqrt is not the
    complex one), as torch's Adam computes its second moment."""
    out = []
    for p0 in params:
        p = torch.view_as_real(p0.clone()) if p0.is_complex() else p0.clone()
        m = torch.zeros_like(p)
        vs = [torch.ones_like(p) for _ in range(scales)]
        first = p.clone()
        for grads in steps:
            g = grads[len(out)]
            g = torch.view_as_real(g) if g.is_complex() else g
            m.mul_(0.9).add_(g, alpha=0.1)
            d = g.mul(0)
            for k in range(scales):
                vs[k].mul_(1 - 0.1 ** (k + 1)).addcmul_(g, g, value=0.1 ** (k + 1))
                d.add_(vs[k].sqrt())
            first.mul_(0.5).add_(p, alpha=0.5)
            # (both terms read the parameter before it changes)
            p.copy_(
                p.addcdiv(m, d.div(scales).add_(eps), value=-lr).add_(
                    p.sub(first), alpha=-1e-3
                )
            )
        out.append(torch.view_as_complex(p) if p0.is_complex() else p)
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_list_states_of_numbers_and_of_copies_match_plain_torch(dtype, foreach):
    cls = load_spec(SCALES)
    gen = torch.Generator().manual_seed(3)
    params = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    steps = [
        [
            torch.randn(s, generator=gen, dtype=dtype) * 10.0 ** (k % 9 - 6)
            for s in SHAPES
        ]
        for k in range(12)
    ]
    expected = _scales_reference(params, steps)
    opt = cls(params, lr=0.02, scales=3, eps=1e-8, foreach=foreach)
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
    for k, (p, e) in enumerate(zip(params, expected)):
        assert torch.equal(p, e), (
            f"parameter {k} ({dtype}): differs from plain torch by "
            f"{(p - e).abs().max().item():.3e}"
        )
        assert len(opt.state[p]["exp_avg_sqs"]) == 3
        assert len(opt.state[p]["firsts"]) == 2


def test_a_list_state_survives_a_state_dict_round_trip():
    cls = load_spec(SCALES)
    params = seeded_params(SHAPES)
    twins = [p.clone() for p in params]
    steps = seeded_grads(SHAPES, 8, 2)
    opt = cls(params, scales=3)
    for grads in steps[:4]:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    with torch.no_grad():
        for t, p in zip(twins, params):
            t.copy_(p)
    loaded = cls(twins, scales=3)
    loaded.load_state_dict(saved)
    for grads in steps[4:]:
        for p, t, g in zip(params, twins, grads):
            p.grad = g.clone()
            t.grad = g.clone()
        opt.step()
        loaded.step()
    for p, t in zip(params, twins):
        assert torch.equal(p, t), "the loaded optimizer's run differs"
        for a, b in zip(opt.state[p]["exp_avg_sqs"], loaded.state[t]["exp_avg_sqs"]):
            assert torch.equal(a, b)


def test_a_list_states_tensors_stay_in_the_parameters_dtype_under_a_policy():
    cls = load_spec(SCALES)
    p = torch.randn(4, 3, dtype=torch.bfloat16)
    opt = cls([p], compute_dtype=torch.float32, state_dtype=torch.float32)
    for _ in range(2):
        p.grad = torch.randn_like(p)
        opt.step()
    assert opt.state[p]["exp_avg"].dtype == torch.float32
    assert {t.dtype for t in opt.state[p]["exp_avg_sqs"]} == {torch.bfloat16}
    assert torch.isfinite(p.float()).all()


# (what the update says, the code, what the message says) — each one error in AGGMO's place
MISUSES = [
    ("m <- bufs + grad\n    param <- param - m", "E507", "`bufs` is a list"),
    ("param <- param - lr * grad[0]", "E507", "`grad` is not a list"),
    ("param <- param - lr * bufs[0.5]", "E507", "chosen by a whole number"),
    ("param <- param - lr * bufs_{t-1}[0]", "E306", "no time subscript"),
    ("param <- param - lr * len(grad) * grad", "E312", "needs a list"),
    ("bufs[0] <- 1 > 0\n    param <- param - lr * bufs[0]", "E507", "takes a tensor"),
]


@pytest.mark.parametrize("body, code, words", MISUSES, ids=lambda x: str(x)[:24])
def test_a_list_misused_is_one_located_error(body, code, words):
    found = _errors(AGGMO.split("update:")[0] + "update:\n    " + body + "\n")
    assert any(c == code and words in m for c, _, m in found), found


@pytest.mark.parametrize(
    "declaration, words",
    [
        ("state bufs <- [0] * lr", "whole number the inputs decide"),
        ("state bufs <- [0] * buffers, reduced over -1", "`reduced over`"),
        ("state bufs <- [0] * buffers if lr > 0", "a condition"),
        ("state bufs <- [grad] * buffers", "cannot use `grad`"),
        ("state bufs <- [lr > 0] * buffers", "a number or `param`"),
        ("sparse gradients\nstate bufs <- [0] * buffers", "`sparse gradients`"),
    ],
)
def test_a_list_state_declared_wrongly_is_refused(declaration, words):
    found = _errors(
        AGGMO.replace("state bufs (momentum_buffer) <- [0] * buffers", declaration)
    )
    assert any(words in m for _, _, m in found), found


ALIAS = """\
optimizer Alias
summary "names for items of a list state, read after the item changes in place"
input lr: float = 0.1 "learning rate"
input foreach: bool? = none, keyword
state bufs <- [1] * 2
update:
    y <- bufs[0]
    z <- bufs[1]
    bufs[0] <- 2 * bufs[0] + grad
    y <- y * 3
    param <- param - lr * y - lr * bufs[0] - lr * z
"""


@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_a_name_for_an_item_keeps_the_value_it_named(foreach):
    cls = load_spec(ALIAS)
    params = seeded_params(SHAPES)
    expected = [p.clone() for p in params]
    bufs = [[torch.ones_like(p) for _ in range(2)] for p in params]
    opt = cls(params, lr=0.1, foreach=foreach)
    for grads in seeded_grads(SHAPES, 5, 4):
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for e, (b0, b1), g in zip(expected, bufs, grads):
            y = b0.clone()
            b0.mul_(2).add_(g)
            y = y * 3
            e.add_(y, alpha=-0.1).add_(b0, alpha=-0.1).add_(b1, alpha=-0.1)
    for p, e in zip(params, expected):
        assert torch.equal(p, e), "a name for an item changed with the item"


LOCALS = """\
optimizer Locals
summary "local lists of tensors: made, grown, shortened, their items replaced"
input lr: float = 0.1 "learning rate"
input n: int = 3 "copies"
input foreach: bool? = none, keyword
update:
    xs <- [grad, 2 * grad]
    ys <- [grad] * n
    append(xs, grad * grad)
    pop_first(xs)
    ys[0] <- ys[0] * 3
    d <- 0 * grad
    for k in range(len(xs)):
        d <- d + xs[k]
    for k in range(n):
        d <- d + ys[k]
    param <- param - lr * d
"""


@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_local_lists_match_plain_torch_and_leave_the_gradient_alone(foreach):
    cls = load_spec(LOCALS)
    params = seeded_params(SHAPES)
    expected = [p.clone() for p in params]
    opt = cls(params, lr=0.1, n=3, foreach=foreach)
    for grads in seeded_grads(SHAPES, 6, 5):
        kept = [g.clone() for g in grads]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for p, g in zip(params, kept):
            # `ys <- [grad] * n` names the gradient n times; `ys[0] <- ...` replaces an item
            assert torch.equal(p.grad, g), "a list's item changed the gradient"
        for e, g in zip(expected, grads):
            xs = [g, g * 2]
            ys = [g] * 3
            xs.append(g * g)
            xs.pop(0)
            ys[0] = ys[0] * 3
            d = g * 0
            for x in xs + ys:
                d = d + x
            e.add_(d, alpha=-0.1)
    for p, e in zip(params, expected):
        assert torch.equal(
            p, e
        ), f"differs from plain torch by {(p - e).abs().max():.3e}"


_REAL = 'check not is_complex(param) else "real only"\nupdate:'
# (a list has a foreach form unless under a condition decided per parameter)
_NO_FORM = {
    "fused": "has no fused form: the for-loop and foreach paths run it",
    "foreach": "has no foreach form: only the for-loop path runs it",
}

# (spec, what changes in it, the line refused, the construct, the path): E335, never a fallback;
# the spec without the path's input builds
REFUSALS = [
    # (a fused kernel takes one tensor per argument)
    (
        "AGGMO",
        [("state bufs", "input fused: bool? = none, keyword\nstate bufs")],
        8,
        "a list state",
        "fused",
    ),
    (
        "LOCALS",
        [("update:", "input fused: bool? = none, keyword\nupdate:")],
        8,
        "a list",
        "fused",
    ),
    # (the foreach path splits its lists by such a condition; it keeps a list by item. A
    # condition on the rank alone is one branch in each of its calls, one per rank: see
    # tests/test_rank_loops.py)
    (
        "AGGMO",
        [
            (
                "        bufs[k] <- beta * bufs[k] + grad",
                "        if size(param, 0) > 1:\n            bufs[k] <- beta * bufs[k] + grad",
            ),
            ("update:", _REAL),
        ],
        14,
        "a list under a condition decided per parameter",
        "foreach",
    ),
    (
        "LOCALS",
        [
            (
                "    ys[0] <- ys[0] * 3",
                "    if size(param, 0) > 1:\n        ys[0] <- ys[0] * 3",
            ),
            ("update:", _REAL),
        ],
        13,
        "a list under a condition decided per parameter",
        "foreach",
    ),
]


@pytest.mark.parametrize(
    "spec, edits, line, construct, path",
    REFUSALS,
    ids=[
        "list_state-fused",
        "local_list-fused",
        "list_state-foreach",
        "local_list-foreach",
    ],
)
def test_a_list_refuses_a_path_it_has_no_form_on(spec, edits, line, construct, path):
    text = globals()[spec]
    for old, new in edits:
        assert old in text
        text = text.replace(old, new, 1)
    found = _errors(text)
    assert ("E335", line, f"{construct} {_NO_FORM[path]}") in found, found
    if path == "foreach":
        check_text(text.replace("input foreach: bool? = none, keyword\n", ""))


LIST_MISUSES = [
    ("append(bufs, grad)", "a list state keeps its length"),
    ("xs <- [grad, lr]", "holds tensors"),
    ("bufs <- [grad]", "`bufs` is not one"),
    ("xs <- [grad] * lr", "a whole number of times"),
    ("pop_first(grad)", "needs a local list"),
    ("append([grad], grad)", "needs a local list"),
]


@pytest.mark.parametrize("line, words", LIST_MISUSES, ids=lambda x: str(x)[:20])
def test_a_local_list_misused_is_refused(line, words):
    found = _errors(AGGMO.replace("update:\n", f"update:\n    {line}\n"))
    assert any(c == "E507" and words in m for c, _, m in found), found


METHOD = """\
optimizer ProcList
summary "a procedure given list items, a method over a list state"
input lr: float = 0.1 "learning rate"
input n: int = 2 "buffers"
state bufs <- [0] * n
update:
    for k in range(n):
        bufs[k] <- 0.5 * bufs[k] + grad
    d <- total(bufs[0], bufs[1])
    param <- param - lr * d

procedure total(a, b):
    xs <- [a, b]
    s <- xs[0] + xs[1]
    return s

method reset "set every buffer to zero":
    for each parameter:
        for k in range(n):
            bufs[k] <- 0
"""


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_procedures_and_methods_reach_a_list_states_items(dtype):
    cls = load_spec(METHOD)
    gen = torch.Generator().manual_seed(5)
    params = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    expected = [p.clone() for p in params]
    bufs = [[torch.zeros_like(p) for _ in range(2)] for p in params]
    opt = cls(params, lr=0.1, n=2)
    for step in range(4):
        grads = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for e, (b0, b1), g in zip(expected, bufs, grads):
            b0.mul_(0.5).add_(g)
            b1.mul_(0.5).add_(g)
            e.add_(b0.add(b1), alpha=-0.1)
        if step == 1:
            opt.reset()
            for pair in bufs:
                for b in pair:
                    b.zero_()
            assert all(
                not t.any() for p in params for t in opt.state[p]["bufs"]
            ), "reset left a buffer"
    for p, e in zip(params, expected):
        assert torch.equal(
            p, e
        ), f"differs from plain torch by {(p - e).abs().max():.3e}"


COUNTER_ONLY = """\
optimizer CounterOnly
summary "a step count its only state"
input lr: float = 0.1 "learning rate"
state t (step): count <- 0
update:
    t <- t + 1
    param <- param - lr / t * grad
"""


@pytest.mark.parametrize(
    "text, words",
    [
        # (a list of a literal length counts as that many tensors)
        (SCALES, "Full-size tensor states: (3 + scales) × the parameter's memory."),
        (AGGMO, "Full-size tensor states: buffers × the parameter's memory."),
        (COUNTER_ONLY, "Full-size tensor states: 0 × the parameter's memory."),
    ],
    ids=["lists_and_tensors", "a_list_only", "no_tensor"],
)
def test_the_documentation_page_counts_a_list_states_tensors(text, words):
    from generator import driver
    from generator.emit.docs.markdown import page

    checked = check_text(text)
    out = page(checked, driver.lowered(checked))
    assert words in out, [line for line in out.splitlines() if "Full-size" in line]
