"""generated.CustomSGD, generated.WeirdDescent and generated.BertAdamW against the hand-written
references in ``reference.py`` (written from the original sources, not from our specs).
"""

from __future__ import annotations

import inspect

import pytest
import torch

import reference
from generator.verify.compare import EXACT, assert_same_exception, call_capturing
from generator.verify.problems import stable_seed
from generator.verify.harness import accepts_kwarg
from parity import (
    FUSED_FLOAT32,
    RecordKey,
    dtype_name,
    generated_class,
    run_side_by_side,
    time_limit,
    tolerance_for,
)

# =======================================================================================
# CustomSGD
# =======================================================================================


def test_custom_sgd_signature_is_params_lr_001():
    params = list(inspect.signature(generated_class("CustomSGD").__init__).parameters)
    assert params[:3] == ["self", "params", "lr"]
    assert inspect.signature(generated_class("CustomSGD").__init__).parameters[
        "lr"
    ].default == pytest.approx(0.01)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_name)
def test_custom_sgd_matches_the_workshop_class(request, dtype):
    result = run_side_by_side(
        reference.CustomSGD,
        generated_class("CustomSGD"),
        expected_kwargs=dict(lr=0.05),
        dtype=dtype,
        label=f"generated.CustomSGD vs the workshop's CustomSGD {dtype_name(dtype)}",
        tol=tolerance_for(dtype),
        seed=stable_seed("CustomSGD", dtype),
        steps=25,
        group2=dict(lr=0.2),
        record=RecordKey("CustomSGD", "vs reference", dtype_name(dtype), "for-loop"),
        test_id=request.node.nodeid,
    )
    assert result.raised is None and result.steps_run == 25, result.raised


@pytest.mark.parametrize("lr", [-0.1, -1e-9])
def test_custom_sgd_refuses_a_negative_lr_as_the_workshop_does(lr):
    _, expected = call_capturing(
        lambda: reference.CustomSGD([torch.zeros(2, requires_grad=True)], lr=lr)
    )
    _, actual = call_capturing(
        lambda: generated_class("CustomSGD")(
            [torch.zeros(2, requires_grad=True)], lr=lr
        )
    )
    assert_same_exception(actual, expected, f"generated.CustomSGD(lr={lr})")


# =======================================================================================
# WeirdDescent
# =======================================================================================

WEIRD_STEPS = 300
WEIRD_SHAPES = ((5, 4), (4,), (3, 3, 2), (2,))
WEIRD_NO_GRAD = 3  # in the second group, never used by the loss: its grad stays None
WEIRD_LRS = (0.01, 0.02)


def _weird_problem(dtype):
    gen = torch.Generator().manual_seed(2024)
    initial = [
        torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)
        for s in WEIRD_SHAPES
    ]
    targets = [
        torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)
        for s in WEIRD_SHAPES
    ]
    weights = [
        (torch.rand(s, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
        for s in WEIRD_SHAPES
    ]
    return initial, targets, weights


class _WeirdRun:
    """One optimizer on the WeirdDescent problem, stepped with a closure."""

    def __init__(self, cls, dtype):
        initial, self.targets, self.weights = _weird_problem(dtype)
        self.params = [t.clone().requires_grad_(True) for t in initial]
        groups = [
            {"params": self.params[:2], "lr": WEIRD_LRS[0]},
            {"params": self.params[2:], "lr": WEIRD_LRS[1]},
        ]
        self.opt = cls(groups, lr=WEIRD_LRS[0])

    def loss(self):
        return sum(
            (w * (p - t) ** 2).sum()
            for i, (p, t, w) in enumerate(zip(self.params, self.targets, self.weights))
            if i != WEIRD_NO_GRAD
        )

    def step(self):
        def closure():
            self.opt.zero_grad()
            loss = self.loss()
            loss.backward()
            return loss

        return self.opt.step(closure)

    def snapshot(self):
        return [p.detach().clone() for p in self.params]


def _changed_coordinates(before, after):
    return [
        (i, int(flat))
        for i, (b, a) in enumerate(zip(before, after))
        for flat in torch.nonzero((a != b).reshape(-1)).reshape(-1).tolist()
    ]


def _lr_of_param(index):
    return WEIRD_LRS[0] if index < 2 else WEIRD_LRS[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_name)
def test_weird_descent_matches_reference_over_300_steps(dtype):
    """Seeded identically, generated and reference make the same random choices (same
    number of draws from torch's default generator, in the same order) and the same
    updates: one coordinate per step, x100 on steps 100, 200 and 300."""
    torch.manual_seed(1234)
    ref = _WeirdRun(reference.WeirdDescent, dtype)
    ref_trace = []
    for _ in range(WEIRD_STEPS):
        before = ref.snapshot()
        loss = ref.step()
        ref_trace.append((before, ref.snapshot(), loss.item(), torch.get_rng_state()))
    ref_steps = ref.opt.state["step"]

    torch.manual_seed(1234)
    gen = _WeirdRun(generated_class("WeirdDescent"), dtype)
    jumps = []
    for step, (ref_before, ref_after, ref_loss, ref_rng) in enumerate(ref_trace, 1):
        before = gen.snapshot()
        with time_limit(10, f"generated.WeirdDescent step {step}"):
            loss = gen.step()
        after = gen.snapshot()
        where = f"generated.WeirdDescent ({dtype_name(dtype)}) step {step}"
        assert (
            loss.item() == ref_loss
        ), f"{where}: step() returned {loss}, expected {ref_loss}"
        assert torch.equal(torch.get_rng_state(), ref_rng), (
            f"{where}: torch's default generator is in a different state than the "
            "reference's: a different number / order of torch.randint draws"
        )
        ours, theirs = _changed_coordinates(before, after), _changed_coordinates(
            ref_before, ref_after
        )
        assert (
            ours == theirs
        ), f"{where}: changed coordinates {ours}, reference {theirs}"
        assert len(ours) <= 1, f"{where}: more than one coordinate changed: {ours}"
        for i, (a, r) in enumerate(zip(after, ref_after)):
            torch.testing.assert_close(
                a, r, rtol=0, atol=0, msg=lambda m, i=i: f"{where}: param #{i}: {m}"
            )
        if ours:
            ((i, flat),) = ours
            assert i != WEIRD_NO_GRAD, f"{where}: updated a tensor without a gradient"
            # the update is -lr * c * grad at that element, c = 100 on every 100th step
            grad = gen.params[i].grad.reshape(-1)[flat]
            delta = after[i].reshape(-1)[flat] - before[i].reshape(-1)[flat]
            c = 100 if step % 100 == 0 else 1
            expected = torch.add(
                before[i].reshape(-1)[flat], grad, alpha=-_lr_of_param(i) * c
            )
            assert after[i].reshape(-1)[flat] == expected, (
                f"{where}: param #{i}[{flat}] moved by {delta.item()}, "
                f"expected -lr*{c}*grad = {(-_lr_of_param(i) * c * grad).item()}"
            )
            if c == 100:
                jumps.append(step)
    assert float(gen.opt.state["step"]) == float(ref_steps) == WEIRD_STEPS
    assert jumps == [100, 200, 300], f"x100 steps seen: {jumps}"


def test_weird_descent_signature_is_params_lr():
    params = list(
        inspect.signature(generated_class("WeirdDescent").__init__).parameters.values()
    )
    assert [(p.name, p.default) for p in params[:3]] == [
        ("self", inspect.Parameter.empty),
        ("params", inspect.Parameter.empty),
        ("lr", inspect.Parameter.empty),
    ]
    extra = [p for p in params[3:] if p.default is inspect.Parameter.empty]
    assert not extra, f"unexpected required arguments {extra}"


def test_weird_descent_counts_steps_in_optimizer_state():
    p = torch.ones(4, requires_grad=True)
    opt = generated_class("WeirdDescent")([p], lr=0.1)
    for n in range(1, 4):
        p.grad = torch.ones(4)
        opt.step()
        assert float(opt.state["step"]) == n


def test_weird_descent_x100_on_every_100th_step_and_its_draws():
    """A constant gradient on two groups (two tensors and one): each step moves the element of
    the tensor of the group that torch's generator draws, in that order (group, tensor in it,
    element), by its group's lr * g, and steps 100/200/300 by 100 times that."""
    torch.manual_seed(7)
    params = [torch.zeros(6, requires_grad=True) for _ in range(3)]
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    groups = [{"params": params[:2], "lr": 0.5}, {"params": params[2:], "lr": 0.25}]
    opt = generated_class("WeirdDescent")(groups, lr=0.5)
    expected_rng = torch.Generator().manual_seed(7)
    moved = set()
    for step in range(1, 301):
        before = [p.detach().clone() for p in params]
        for p in params:
            p.grad = g.clone()
        with time_limit(10, f"generated.WeirdDescent step {step}"):
            opt.step()
        # the draws the spec prescribes: group index, tensor index, element index
        group = torch.randint(2, (1,), generator=expected_rng).item()
        tensor = torch.randint(
            len(groups[group]["params"]), (1,), generator=expected_rng
        )
        index = (0, 2)[group] + tensor.item()
        element = torch.randint(6, (1,), generator=expected_rng).item()
        moved.add((index, element))
        c = 100 if step % 100 == 0 else 1
        want = [b.clone() for b in before]
        want[index][element] = torch.add(
            before[index][element], g[element], alpha=-groups[group]["lr"] * c
        )
        for k, (p, w) in enumerate(zip(params, want)):
            torch.testing.assert_close(
                p.detach(),
                w,
                rtol=0,
                atol=0,
                msg=lambda m: f"step {step}, tensor {k}: {m}",
            )
    assert {i for i, _ in moved} == {0, 1, 2}, "every tensor of both groups was drawn"


def test_weird_descent_without_any_gradient_does_nothing():
    """The guard: no tensor has a gradient -> return (no endless re-drawing)."""
    p = torch.ones(3, requires_grad=True)
    q = torch.ones(2, requires_grad=True)
    opt = generated_class("WeirdDescent")([{"params": [p]}, {"params": [q]}], lr=0.1)
    with time_limit(10, "WeirdDescent.step() with no gradients"):
        assert opt.step(lambda: torch.tensor(3.0)).item() == 3.0
        assert opt.step() is None
    assert torch.equal(p.detach(), torch.ones(3)) and torch.equal(
        q.detach(), torch.ones(2)
    )


# =======================================================================================
# BertAdamW
# =======================================================================================

BERT_STEPS = 25
BERT_SIGNATURE = [
    ("params", inspect.Parameter.empty),
    ("lr", 1e-3),
    ("betas", (0.9, 0.999)),
    ("eps", 1e-6),
    ("weight_decay", 0.0),
    ("correct_bias", True),
]


def test_bertadamw_signature_and_defaults():
    cls = generated_class("BertAdamW")
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    got = [(p.name, p.default) for p in params[: len(BERT_SIGNATURE)]]
    assert got == BERT_SIGNATURE
    for p in params[len(BERT_SIGNATURE) :]:
        assert p.default is not inspect.Parameter.empty, f"extra required argument {p}"
    defaults = cls([torch.zeros(1, requires_grad=True)]).defaults
    for name, value in BERT_SIGNATURE[1:]:
        assert defaults[name] == value, f"defaults[{name!r}]={defaults[name]!r}"


def _bert_normalize(sd):
    """Compare the per-parameter ``step`` by value (the original keeps a Python int)."""
    state = {}
    for k, s in sd["state"].items():
        s = dict(s)
        if "step" in s:
            s["step"] = float(s["step"])
        state[k] = s
    return {"state": state, "param_groups": sd["param_groups"]}


def _bert_impls():
    impls = [pytest.param(None, id="default")]
    for flag in (False, True):
        impls.append(pytest.param(flag, id="foreach" if flag else "for_loop"))
    return impls


@pytest.mark.parametrize("foreach", _bert_impls())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_name)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01], ids=["no_wd", "wd_0.01"])
@pytest.mark.parametrize(
    "correct_bias", [True, False], ids=["correct_bias", "no_correct_bias"]
)
def test_bertadamw_matches_reference(
    request, correct_bias, weight_decay, dtype, foreach
):
    cls = generated_class("BertAdamW")
    kwargs = dict(lr=1e-2, weight_decay=weight_decay, correct_bias=correct_bias)
    actual_kwargs = dict(kwargs)
    if foreach is not None:
        if not accepts_kwarg(cls, "foreach"):
            pytest.skip("generated.BertAdamW takes no `foreach` argument")
        actual_kwargs["foreach"] = foreach
    ref_keys = set(reference.BertAdamW([torch.zeros(1, requires_grad=True)]).defaults)
    extra_keys = set(cls([torch.zeros(1, requires_grad=True)]).defaults) - ref_keys
    impl = "foreach" if foreach else "for-loop"
    result = run_side_by_side(
        reference.BertAdamW,
        cls,
        expected_kwargs=kwargs,
        actual_kwargs=actual_kwargs,
        dtype=dtype,
        label=f"generated.BertAdamW vs reference.BertAdamW {actual_kwargs} "
        f"{dtype_name(dtype)} ({'default impl' if foreach is None else impl})",
        tol=tolerance_for(dtype) if foreach else EXACT,
        seed=stable_seed("BertAdamW", correct_bias, weight_decay, dtype),
        steps=BERT_STEPS,
        group2=dict(
            lr=5e-3,
            betas=(0.8, 0.99),
            eps=1e-8,
            weight_decay=0.05,
            correct_bias=not correct_bias,
        ),
        record=RecordKey("BertAdamW", "vs reference", dtype_name(dtype), impl),
        test_id=request.node.nodeid,
        ignore_group_keys=extra_keys,
        normalize_state_dict=_bert_normalize,
    )
    assert result.raised is None and result.steps_run == BERT_STEPS, result.raised


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=-0.1),
        dict(betas=(1.0, 0.999)),
        dict(betas=(-0.1, 0.999)),
        dict(betas=(0.9, 1.0)),
        dict(betas=(0.9, -0.5)),
        dict(eps=-1e-6),
    ],
    ids=[
        "negative_lr",
        "beta1_is_one",
        "negative_beta1",
        "beta2_is_one",
        "negative_beta2",
        "negative_eps",
    ],
)
def test_bertadamw_validation_errors(kwargs):
    def build(cls):
        return lambda: cls([torch.zeros(2, requires_grad=True)], **kwargs)

    _, expected = call_capturing(build(reference.BertAdamW))
    _, actual = call_capturing(build(generated_class("BertAdamW")))
    assert isinstance(expected, ValueError)
    assert_same_exception(actual, expected, f"generated.BertAdamW(**{kwargs})")


def test_bertadamw_validation_messages_are_the_documented_ones():
    cls = generated_class("BertAdamW")
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(
        ValueError, match=r"^Invalid learning rate: -0\.5 - should be >= 0\.0$"
    ):
        cls(p, lr=-0.5)
    with pytest.raises(
        ValueError,
        match=r"^Invalid beta parameter: 1\.0 - should be in \[0\.0, 1\.0\)$",
    ):
        cls(p, betas=(0.9, 1.0))
    with pytest.raises(
        ValueError, match=r"^Invalid epsilon value: -1e-06 - should be >= 0\.0$"
    ):
        cls(p, eps=-1e-6)


def test_bertadamw_rejects_sparse_gradients():
    p = torch.zeros(4, 2, requires_grad=True)
    opt = generated_class("BertAdamW")([p])
    p.grad = torch.sparse_coo_tensor(
        torch.tensor([[1]]), torch.tensor([[1.0, 2.0]]), (4, 2), check_invariants=True
    )
    with pytest.raises(
        RuntimeError,
        match=r"^Adam does not support sparse gradients, please consider SparseAdam instead$",
    ):
        opt.step()


def test_bertadamw_eps_is_added_outside_the_sqrt_of_the_uncorrected_second_moment():
    """First step, correct_bias=False, a tiny gradient: the update is
    -lr * (1-b1) g / (sqrt((1-b2) g^2) + eps) -- not torch.optim.AdamW's."""
    g = torch.tensor([1e-6, -1e-4, 1e-2, 3.0], dtype=torch.float64)
    p = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = generated_class("BertAdamW")([p], lr=0.1, correct_bias=False)
    p.grad = g.clone()
    opt.step()
    exp_avg = torch.zeros_like(g).mul_(0.9).add_(g, alpha=1 - 0.9)
    exp_avg_sq = torch.zeros_like(g).mul_(0.999).addcmul_(g, g, value=1 - 0.999)
    want = torch.zeros_like(g).addcdiv_(
        exp_avg, exp_avg_sq.sqrt().add_(1e-6), value=-0.1
    )
    torch.testing.assert_close(p.detach(), want, rtol=0, atol=0)
    torch_adamw = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    t = torch.optim.AdamW([torch_adamw], lr=0.1, eps=1e-6, weight_decay=0.0)
    torch_adamw.grad = g.clone()
    t.step()
    assert not torch.equal(
        p.detach(), torch_adamw.detach()
    ), "should differ from torch's AdamW"


def test_bertadamw_weight_decay_is_applied_after_the_adam_update():
    """With a zero gradient the Adam update is zero and only the decoupled decay remains:
    p <- p + (-lr * wd) * p."""
    p0 = torch.tensor([1.0, -2.0, 3.5])
    p = p0.clone().requires_grad_(True)
    opt = generated_class("BertAdamW")([p], lr=0.1, weight_decay=0.01)
    p.grad = torch.zeros(3)
    opt.step()
    torch.testing.assert_close(p.detach(), p0 + (-0.1 * 0.01) * p0, rtol=0, atol=0)
    assert float(opt.state[p]["step"]) == 1.0
    assert set(opt.state[p]) >= {"step", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize(
    "correct_bias", [True, False], ids=["correct_bias", "no_correct_bias"]
)
def test_bertadamw_fused_matches_reference(request, correct_bias):
    """fused=True: the generated kernel against the hand-written reference, in float32 with
    torch's own tolerance for fused kernels (they order the arithmetic their own way).
    """
    cls = generated_class("BertAdamW")
    kwargs = dict(lr=1e-2, weight_decay=0.01, correct_bias=correct_bias)
    ref_keys = set(reference.BertAdamW([torch.zeros(1, requires_grad=True)]).defaults)
    extra_keys = set(cls([torch.zeros(1, requires_grad=True)]).defaults) - ref_keys
    result = run_side_by_side(
        reference.BertAdamW,
        cls,
        expected_kwargs=kwargs,
        actual_kwargs={**kwargs, "fused": True},
        dtype=torch.float32,
        label=f"generated.BertAdamW(fused=True) vs reference.BertAdamW {kwargs}",
        tol=FUSED_FLOAT32,
        seed=stable_seed("BertAdamW", "fused", correct_bias),
        steps=BERT_STEPS,
        record=RecordKey("BertAdamW", "vs reference", "float32", "fused"),
        test_id=request.node.nodeid,
        ignore_group_keys=extra_keys,
        normalize_state_dict=_bert_normalize,
    )
    assert result.raised is None and result.steps_run == BERT_STEPS, result.raised
