"""Language constructs of the torch-family issue, checked by behaviour on small specs.

Per-parameter branches whose values flow on (the for-loop and foreach paths agree), shaped states
(`reduced over`), matrix products and `addmm`, bounded `repeat` loops, string and optional inputs,
checks on parameters and inside the update, counters kept `as number`, and `sparse gradients` on a
spec of the user's own — each against a plain-PyTorch reference written here by hand.
"""

from __future__ import annotations

import copy

import pytest
import torch

from generator.api import compile_text, load_spec


def _run(cls, params, steps, kwargs, grads):
    opt = cls(params, **kwargs)
    for k in range(steps):
        for p, g in zip(params, grads(k)):
            p.grad = g.clone()
        opt.step()
    return opt


def _grads_for(shapes, seed):
    def grads(k):
        gen = torch.Generator().manual_seed(seed * 1000 + k)
        return [
            torch.randn(s, generator=gen, dtype=torch.float64)
            * 10.0 ** float(torch.randint(-6, 2, (), generator=gen))
            for s in shapes
        ]

    return grads


BRANCH_SPEC = """optimizer Branchy
input lr: float = 0.1
input foreach: bool? = none, keyword
state t (step): count <- 0
update:
    t <- t + 1
    if t > 2:
        scale <- 2
        g <- grad * scale
    else:
        scale <- 1
        g <- grad
    param <- param - lr * scale * g
"""


@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_values_set_in_a_per_parameter_branch_are_used_after_it(foreach):
    cls = load_spec(BRANCH_SPEC)
    shapes = [(3, 2), (4,)]
    grads = _grads_for(shapes, 1)
    params = [torch.zeros(s, dtype=torch.float64) for s in shapes]
    # the second parameter misses its gradient on step 0: its counter lags one step behind
    opt = cls(params, foreach=foreach)
    expected = [p.clone() for p in params]
    counts = [0, 0]
    for k in range(5):
        for j, (p, g) in enumerate(zip(params, grads(k))):
            p.grad = None if (k == 0 and j == 1) else g.clone()
        opt.step()
        for j, (e, g) in enumerate(zip(expected, grads(k))):
            if k == 0 and j == 1:
                continue
            counts[j] += 1
            scale = 2 if counts[j] > 2 else 1
            e.add_(g * scale if scale == 2 else g, alpha=-(0.1 * scale))
    for p, e in zip(params, expected):
        torch.testing.assert_close(p, e, rtol=0, atol=0)


SHAPED_SPEC = """optimizer Shaped
input lr: float = 0.01
input beta: float = 0.9
input foreach: bool? = none, keyword
check not is_complex(param) else "Shaped does not support complex parameters"
state r (row_mean) <- 0 if dim(param) > 1, reduced over -1
state c (col_mean) <- 0 if dim(param) > 1, reduced over -2
state v (full) <- 0 if dim(param) <= 1
update:
    if dim(param) > 1:
        r <- lerp(r, mean(grad * grad, -1), 1 - beta)
        c <- lerp(c, mean(grad * grad, -2), 1 - beta)
        second <- r @ c / mean(r, -2)
    else:
        v <- lerp(v, grad * grad, 1 - beta)
        second <- v
    param <- param - lr * grad / (sqrt(second) + 1e-8)
"""


@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_reduced_states_keep_row_and_column_statistics(foreach):
    cls = load_spec(SHAPED_SPEC)
    shapes = [(5, 4), (3,), (2, 3, 4)]
    grads = _grads_for(shapes, 2)
    params = [torch.randn(s, dtype=torch.float64) for s in shapes]
    reference = [p.clone() for p in params]
    opt = _run(cls, params, 6, {"foreach": foreach}, grads)
    state = opt.state_dict()["state"]
    assert state[0]["row_mean"].shape == (5, 1)
    assert state[0]["col_mean"].shape == (1, 4)
    assert set(state[1]) == {"full"} and state[1]["full"].shape == (3,)
    assert state[2]["row_mean"].shape == (2, 3, 1)
    # the same algorithm, written out by hand
    r = [
        torch.zeros(5, 1, dtype=torch.float64),
        None,
        torch.zeros(2, 3, 1, dtype=torch.float64),
    ]
    c = [
        torch.zeros(1, 4, dtype=torch.float64),
        None,
        torch.zeros(2, 1, 4, dtype=torch.float64),
    ]
    v = [None, torch.zeros(3, dtype=torch.float64), None]
    for k in range(6):
        for j, (p, g) in enumerate(zip(reference, grads(k))):
            if p.dim() > 1:
                r[j].lerp_((g * g).mean(-1, keepdim=True), 0.1)
                c[j].lerp_((g * g).mean(-2, keepdim=True), 0.1)
                second = (r[j] @ c[j]) / r[j].mean(-2, keepdim=True)
            else:
                v[j].lerp_(g * g, 0.1)
                second = v[j]
            p.sub_(0.01 * (g / (second.sqrt() + 1e-8)))
    for p, e in zip(params, reference):
        torch.testing.assert_close(p, e, rtol=1e-13, atol=0)


LOOP_SPEC = """optimizer Orthogonal
input lr: float = 0.1
input steps: int = 3
input mode: str? = none
check mode == none or mode == "scaled" else "unknown mode {mode}"
check dim(param) == 2 else "only matrices, got size {size(param)}"
state t (step): count <- 0, as number
update:
    check steps < 10 else "at most 9 steps"
    t <- t + 1
    x <- grad / norm(grad)
    repeat steps:
        a <- x @ transpose(x)
        x <- 1.5 * x + -0.5 * (a @ x)
    s <- 2.0 if mode == "scaled" else 1.0
    param <- param - lr * s * x
"""


def test_repeat_matrix_products_and_string_inputs_match_a_hand_written_loop():
    cls = load_spec(LOOP_SPEC)
    shapes = [(4, 3), (3, 3)]
    grads = _grads_for(shapes, 3)
    for mode in (None, "scaled"):
        params = [torch.randn(s, dtype=torch.float64) for s in shapes]
        reference = [p.clone() for p in params]
        opt = _run(cls, params, 4, {"steps": 3, "mode": mode}, grads)
        for k in range(4):
            for p, g in zip(reference, grads(k)):
                x = g / g.norm()
                for _ in range(3):
                    x = torch.addmm(x, x @ x.T, x, beta=1.5, alpha=-0.5)
                p.add_(x, alpha=-(0.1 * (2.0 if mode == "scaled" else 1.0)))
        for p, e in zip(params, reference):
            torch.testing.assert_close(p, e, rtol=0, atol=0)
        # a counter kept `as number` is a Python int in the state, as torch's SparseAdam keeps it
        assert opt.state_dict()["state"][0]["step"] == 4
        assert isinstance(opt.state_dict()["state"][0]["step"], int)


def test_checks_on_strings_parameters_and_inside_the_update_raise_like_torch():
    cls = load_spec(LOOP_SPEC)
    with pytest.raises(ValueError, match="unknown mode other"):
        cls([torch.zeros(2, 2)], mode="other")
    with pytest.raises(
        ValueError, match=r"only matrices, got size torch.Size\(\[3\]\)"
    ):
        cls([torch.zeros(3)])
    p = torch.zeros(2, 2)
    opt = cls([p], steps=12)  # accepted when built: the update checks it, as Muon does
    p.grad = torch.ones(2, 2)
    with pytest.raises(ValueError, match="at most 9 steps"):
        opt.step()


def test_addmm_rule_keeps_one_rounding():
    source = compile_text(LOOP_SPEC, "specs/orthogonal.optim")
    assert "torch.addmm(x, a, x, beta=1.5, alpha=-0.5)" in source
    assert "for _ in range(steps):" in source


SPARSE_SPEC = """optimizer RowMomentum
input lr: float = 0.1
input beta: float = 0.9
sparse gradients
state m (momentum) <- 0
update:
    m <- m + ((1 - beta) * (grad - m))
    param <- param - lr * m
"""


def test_sparse_gradients_touch_only_the_rows_present():
    cls = load_spec(SPARSE_SPEC)
    emb = torch.nn.Embedding(10, 3, sparse=True).double()
    dense = copy.deepcopy(emb)
    opt = cls(emb.parameters())
    m = torch.zeros(10, 3, dtype=torch.float64)
    for k in range(4):
        idx = torch.tensor([1, 4, 4, 7]) if k % 2 == 0 else torch.tensor([2, 4])
        opt.zero_grad()
        emb(idx).pow(2).sum().backward()
        opt.step()
        g = emb.weight.grad.coalesce()
        rows = g.indices()[0]
        # by hand: the rows present move, every other row (of m and of the weight) stays
        w = dense.weight.detach()
        m[rows] += (g.values() - m[rows]) * 0.1
        w[rows] -= 0.1 * m[rows]
    torch.testing.assert_close(
        emb.weight.detach(), dense.weight.detach(), rtol=1e-15, atol=0
    )
    torch.testing.assert_close(
        opt.state_dict()["state"][0]["momentum"], m, rtol=1e-15, atol=0
    )
    untouched = [r for r in range(10) if r not in (1, 2, 4, 7)]
    assert torch.all(m[untouched] == 0)


@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_per_parameter_branch_runs_branchless_under_compile_with_the_same_results(
    foreach,
):
    """Under torch.compile a counter is a tensor: the `if` runs both branches and
    torch.where picks; the results are those of the eager branches, within float32
    rounding (what the step decides is then a float32 tensor, as in torch's compiled
    optimizers: `lr * scale` is 0.1 in float32)."""
    torch._dynamo.reset()
    cls = load_spec(BRANCH_SPEC)
    shapes = [(3, 2), (4,)]
    grads = _grads_for(shapes, 4)
    runs = []
    for compiled in (False, True):
        params = [torch.zeros(s, dtype=torch.float64) for s in shapes]
        opt = cls(params, foreach=foreach)
        step = torch.compile(opt.step, backend="eager") if compiled else opt.step
        for k in range(5):
            for j, (p, g) in enumerate(zip(params, grads(k))):
                p.grad = None if (k == 0 and j == 1) else g.clone()
            step()
        runs.append(params)
    for p, e in zip(*reversed(runs)):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=0)
        assert not torch.equal(p, torch.zeros_like(p))
    torch._dynamo.reset()
