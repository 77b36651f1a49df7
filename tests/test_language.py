"""The language and the lowering: spellings, rewrite rules, aliasing, fragments, generated structure."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from generator.api import compile_text, load_spec
from generator.language.diagnostics import SpecError

ROOT = Path(__file__).resolve().parent.parent


def _body(source: str) -> str:
    """The module without its two header lines (they name the spec file and its hash)."""
    return "\n".join(source.splitlines()[2:])


def test_unicode_twin_generates_the_same_module_as_the_ascii_spec():
    ascii_src = compile_text(
        (ROOT / "specs" / "adam.optim").read_bytes(), "specs/adam.optim"
    )
    unicode_src = compile_text(
        (ROOT / "tests" / "data" / "adam_unicode.optim").read_bytes(),
        "specs/adam.optim",
    )
    assert _body(unicode_src) == _body(ascii_src)
    assert ascii_src == (ROOT / "generated" / "adam.py").read_text()


def _single_tensor_body(spec: str) -> str:
    src = compile_text(spec, "specs/probe.optim")
    start = src.index("def _single_tensor_probe(")
    end = src.find("\ndef _multi_tensor_probe(")
    return src[start : end if end > 0 else None]


PROBE = """optimizer Probe
input lr: float = 0.1
input b: float = 0.9
input c: float = 0.5
input foreach: bool? = none, keyword
check b >= 0 and c >= 0 else "b and c are not negative"
state m (exp_avg) <- 0
update:
    {update}
    param <- param - lr * m
"""


@pytest.mark.parametrize(
    "update, expected",
    [
        ("m <- b * m + (1 - b) * grad", "exp_avg.lerp_(grad, 1 - b)"),
        ("m <- m * b + (1 - b) * grad", "exp_avg.mul_(b).add_(grad, alpha=1 - b)"),
        ("m <- b * m + c * grad^2", "exp_avg.mul_(b).addcmul_(grad, grad, value=c)"),
        (
            "m <- b * m + c * grad * param",
            "exp_avg.mul_(b).addcmul_(grad, param, value=c)",
        ),
        ("m <- m - c * grad / param", "exp_avg.addcdiv_(grad, param, value=-c)"),
        ("m <- m + grad", "exp_avg.add_(grad)"),
        ("m <- m - grad", "exp_avg.sub_(grad)"),
        ("m <- m * b", "exp_avg.mul_(b)"),
        ("m <- max(m, grad)", "torch.maximum(exp_avg, grad, out=exp_avg)"),
        ("m <- m + c * (grad * param)", "exp_avg.add_(grad.mul(param), alpha=c)"),
        ("m <- grad + m", "exp_avg.add_(grad)"),
        ("m <- grad + param + m", "exp_avg.copy_("),
        ("m <- b * m + c * m * grad", "exp_avg.copy_("),
    ],
)
def test_update_rules_choose_torchs_in_place_operations(update, expected):
    body = _single_tensor_body(PROBE.format(update=update))
    assert expected in body, f"`{update}` should lower to `{expected}`:\n{body}"


def test_in_place_chain_never_reads_a_value_it_already_changed():
    # x.mul_(b) first would make the addcmul_ read the scaled x: the lowering must not chain here.
    body = _single_tensor_body(PROBE.format(update="m <- b * m + c * m * grad"))
    assert "exp_avg.mul_(b).addcmul_(exp_avg" not in body
    cls = load_spec(PROBE.format(update="m <- b * m + c * m * grad"))
    p = torch.ones(3, requires_grad=True)
    p.grad = torch.full((3,), 2.0)
    opt = cls([p], lr=0.0, b=0.5, c=0.25)
    opt.state[p]["exp_avg"] = torch.full((3,), 4.0)
    opt.step()
    # 0.5 * 4 + 0.25 * 4 * 2 = 4
    assert torch.equal(opt.state[p]["exp_avg"], torch.full((3,), 4.0))


def test_alias_of_a_state_is_cloned_when_the_state_changes_while_it_is_read():
    spec = """optimizer Probe
input lr: float = 0.1
state m (exp_avg) <- 0
update:
    old <- m
    m <- m + grad
    param <- param - lr * (m - old)
"""
    body = _single_tensor_body(spec)
    assert "old = exp_avg.clone()" in body
    cls = load_spec(spec)
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.ones(2)
    cls([p], lr=1.0).step()
    assert torch.equal(p.detach(), torch.full((2,), -1.0))


def test_gradient_is_never_modified():
    spec = """optimizer Probe
input lr: float = 0.1
input maximize: bool = false
update:
    use maximize
    g <- g * 2
    g <- g + param
    param <- param - lr * g
"""
    body = _single_tensor_body(spec)
    assert "grad.mul_" not in body and "grad.add_" not in body
    cls = load_spec(spec)
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.ones(2)
    cls([p]).step()
    assert torch.equal(p.grad, torch.ones(2))


def test_scalars_decided_by_hyperparameters_are_hoisted_out_of_the_loop():
    spec = """optimizer Probe
input lr: float = 0.1
input wd: float = 0.01
update:
    shrink <- 1 - lr * wd
    param <- param * shrink - lr * grad
"""
    body = _single_tensor_body(spec)
    assert body.index("shrink = 1 - lr * wd") < body.index(
        "for i, param in enumerate(params)"
    )


def test_fragment_is_inlined_where_it_is_used():
    spec = """optimizer Probe
input lr: float = 0.1
input weight_decay: float = 0
update:
    g <- grad
    use weight_decay
    param <- param - lr * g
"""
    body = _single_tensor_body(spec)
    assert "g = g.add(param, alpha=weight_decay)" in body


def test_time_subscripts_are_annotations_that_do_not_change_the_code():
    plain = PROBE.format(update="m <- b * m + (1 - b) * grad")
    annotated = PROBE.format(update="m_t <- b * m_{t-1} + (1 - b) * grad")
    assert _body(compile_text(plain, "specs/probe.optim")) == _body(
        compile_text(annotated, "specs/probe.optim")
    )


def test_load_spec_returns_a_working_optimizer_class_and_caches_it():
    cls = load_spec(ROOT / "specs" / "sgd.optim")
    assert load_spec(ROOT / "specs" / "sgd.optim") is cls
    p = torch.tensor([15.0], requires_grad=True)
    opt = cls([p], lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        (p**2).sum().backward()
        opt.step()
    assert p.item() == pytest.approx(1.823649525642395, rel=1e-6)


def test_load_spec_reports_spec_errors():
    with pytest.raises(SpecError) as info:
        load_spec("optimizer Broken\nupdate:\n    param <- param - lr * grad\n")
    assert "undefined name `lr`" in info.value.render()


_MODIFIER_SPEC = """optimizer Probe
input lr: float = 0.1
input beta1, beta2 (betas): (float | tensor, float | tensor) = (0.9, 0.99){betas}
input foreach: bool? = none, keyword{foreach}
update:
    param <- param - lr * beta1 * beta2 * grad
"""


def test_squeezed_input_stores_a_one_element_tensor_as_0d_as_torch_adam_does():
    cls = load_spec(_MODIFIER_SPEC.format(betas=", squeezed", foreach=""))
    betas = (torch.tensor([[0.5]]), torch.tensor([0.9]))
    opt = cls([torch.zeros(2, requires_grad=True)], betas=betas)
    shapes = [tuple(b.shape) for b in opt.param_groups[0]["betas"]]
    assert shapes == [(), ()], f"betas stored with shapes {shapes}, expected 0-d"
    plain = load_spec(_MODIFIER_SPEC.format(betas="", foreach=""))
    opt = plain([torch.zeros(2, requires_grad=True)], betas=betas)
    assert tuple(opt.param_groups[0]["betas"][0].shape) == (1, 1)


@pytest.mark.parametrize("explicit", [False, True])
def test_explicit_foreach_keeps_none_on_the_for_loop(explicit):
    source = compile_text(
        _MODIFIER_SPEC.format(betas="", foreach=", explicit" if explicit else ""),
        "specs/probe.optim",
    )
    # torch's per-device default (foreach on CUDA) is asked for only without `explicit`
    assert ("_default_to_fused_or_foreach(" in source) is not explicit


@pytest.mark.parametrize(
    "betas,foreach,message",
    [
        ("", ", explicit", None),
        (", explicit", "", "`explicit` belongs to the `foreach` input"),
    ],
)
def test_explicit_is_refused_on_any_input_but_foreach(betas, foreach, message):
    text = _MODIFIER_SPEC.format(betas=betas, foreach=foreach)
    if message is None:
        compile_text(text, "specs/probe.optim")
        return
    with pytest.raises(SpecError) as info:
        compile_text(text, "specs/probe.optim")
    assert message in info.value.render() and "E204" in info.value.render()


def test_squeezed_is_refused_on_an_input_that_cannot_be_a_tensor():
    text = _MODIFIER_SPEC.format(betas="", foreach="").replace(
        "input lr: float = 0.1", "input lr: float = 0.1, squeezed"
    )
    with pytest.raises(SpecError) as info:
        compile_text(text, "specs/probe.optim")
    rendered = info.value.render()
    assert "E204" in rendered and "this input cannot be a tensor" in rendered, rendered


def test_a_step_check_message_reads_the_groups_values():
    """`check ... else "... {lr}"` on the gradient runs at each step: `{lr}` is the group's
    (found by the fuzzer: the message's placeholder crashed the generator)."""
    from generator import load_spec

    cls = load_spec(
        "optimizer SparseRefusing\ninput lr: float = 0.1\n"
        'check not is_sparse(grad) else "no sparse gradient at lr {lr}"\n'
        "update:\n    param <- param - lr * grad\n"
    )
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.ones(3).to_sparse()
    with pytest.raises(ValueError, match="no sparse gradient at lr 0.25"):
        cls([p], lr=0.25).step()


SHARED_VALUE_SPEC = """optimizer SharedValue
input lr: float = 0.1
input beta: float = 0.9
input variant: bool = false
input foreach: bool? = none, keyword
state t (step): count <- 0
state v (square_avg) <- 0
state w (max_square_avg) <- 0
update:
    t <- t + 1
    v <- beta * v + (1 - beta) * grad^2
    c <- 1 - beta^t
    if variant:
        w <- max(w, v)
        param <- param - lr * grad / (sqrt(w) / sqrt(c) + 1e-8)
    else:
        param <- param - lr * grad / (sqrt(v) / sqrt(c) + 1e-8)
"""


def test_a_number_both_branches_compute_is_named_once_before_them():
    src = compile_text(SHARED_VALUE_SPEC, "specs/shared_value.optim")
    lines = src.splitlines()
    assert [x.strip() for x in lines if "c_sqrt =" in x] == [
        "c_sqrt = math.sqrt(c)"
    ], "the for-loop names sqrt(c) once, before the `if`"
    assert sum("c_sqrts = [" in x for x in lines) == 1, "foreach: one list"
    uses = [x for x in lines if "sqrt(c)" in x and "=" not in x.split("sqrt(c)")[0]]
    assert len(uses) == 1, f"sqrt(c) is computed only where it is named: {uses}"
    assert sum("div_(c_sqrt)" in x for x in lines) == 2
    assert sum("_foreach_div_(" in x and "c_sqrts)" in x for x in lines) == 2
    cls = load_spec(SHARED_VALUE_SPEC)
    for variant in (False, True):
        runs = []
        for foreach in (False, True):
            torch.manual_seed(0)
            p = torch.randn(5, dtype=torch.float64, requires_grad=True)
            opt = cls([p], variant=variant, foreach=foreach)
            for _ in range(4):
                p.grad = torch.randn(5, dtype=torch.float64)
                opt.step()
            runs.append(p.detach().clone())
        torch.manual_seed(0)
        q = torch.randn(5, dtype=torch.float64)
        v = torch.zeros(5, dtype=torch.float64)
        w = torch.zeros(5, dtype=torch.float64)
        for t in range(1, 5):
            g = torch.randn(5, dtype=torch.float64)
            v = 0.9 * v + (1 - 0.9) * g**2
            c = 1 - 0.9**t
            w = torch.maximum(w, v)
            s = (w if variant else v).sqrt() / c**0.5 + 1e-8
            q = q - 0.1 * g / s
        for run in runs:
            torch.testing.assert_close(run, q, rtol=1e-14, atol=0)
