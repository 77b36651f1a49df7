"""Estimates made for every parameter at once: AdaHessian's Hessian diagonal.

`D <- hutchinson(n, distribution)` in `update optimizer:` is the one place such a function
goes (a located E310 anywhere else, E312 for an argument of another type); the runtime
(generator.runtime.estimates) computes Hutchinson's estimate over every parameter with a
gradient, from probes drawn from torch's generator, and refuses a gradient without its graph
with the fix in the message. The comparison with pytorch_optimizer's AdaHessian is the paper
suite's (tests/paper_optim_db.py); here, the estimate against the Hessian itself.
"""

from __future__ import annotations

import pytest
import torch

from diagnosed import errors_of
from generator.runtime.estimates import hutchinson_
from generator.verify.problems import curved

HEAD = """\
optimizer Estimated
input lr: float = 0.1
state D (hessian) lazy
state m (m) <- 0
"""


@pytest.mark.parametrize(
    "body,code,words",
    [
        (
            'update:\n    D <- hutchinson(1, "rademacher")\n'
            "    param <- param - lr * grad\n",
            "E310",
            "in `update optimizer:`",
        ),
        (
            'update:\n    param <- param - lr * hutchinson(1, "rademacher") * grad\n',
            "E310",
            "whole value of a lazy per-parameter state",
        ),
        (
            'update optimizer:\n    m <- hutchinson(1, "rademacher")\n'
            "update:\n    param <- param - lr * grad\n",
            "E310",
            "lazy per-parameter state",
        ),
        (
            'update optimizer:\n    D <- hutchinson(lr, "rademacher")\n'
            "update:\n    param <- param - lr * D * grad\n",
            "E312",
            "needs a whole number here",
        ),
        (
            "update optimizer:\n    D <- hutchinson(1)\n"
            "update:\n    param <- param - lr * D * grad\n",
            "E311",
            "takes 2 arguments",
        ),
        (
            "update optimizer:\n    D <- hutchinson(1, 2)\n"
            "update:\n    param <- param - lr * D * grad\n",
            "E312",
            "needs a string here",
        ),
    ],
    ids=[
        "in_the_update",
        "inside_an_expression",
        "non_lazy_state",
        "float_count",
        "arity",
        "number_for_the_distribution",
    ],
)
def test_an_estimate_anywhere_but_its_place_is_a_located_error(body, code, words):
    errors = errors_of(HEAD + body)
    assert [e.split()[0] for e in errors] == [code], errors
    assert words in errors[0], errors


def _quadratic(seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [
        torch.randn(3, 2, generator=gen, dtype=torch.float64).requires_grad_(),
        torch.randn(4, generator=gen, dtype=torch.float64).requires_grad_(),
    ]
    n = sum(p.numel() for p in params)
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    hessian = a @ a.T + n * torch.eye(n, dtype=torch.float64)
    flat = torch.cat([p.reshape(-1) for p in params])
    loss = 0.5 * flat @ hessian @ flat
    loss.backward(create_graph=True)
    return params, hessian


def test_rademacher_probes_give_the_diagonal_plus_the_probes_cross_terms():
    """z ⊙ Hz for one ±1 probe is the diagonal plus Σ_{j≠i} H_ij z_i z_j: computed from the
    probes torch's generator gives, in the order of the parameters."""
    params, hessian = _quadratic()
    state = {p: {} for p in params}
    torch.manual_seed(7)
    hutchinson_([{"params": params}], state, "hessian", 1, "rademacher")
    torch.manual_seed(7)
    z = torch.cat(
        [(torch.randint_like(p, 0, 2) * 2.0 - 1.0).reshape(-1) for p in params]
    )
    want = z * (hessian @ z)
    got = torch.cat([state[p]["hessian"].reshape(-1) for p in params])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_many_gaussian_probes_converge_to_the_hessian_diagonal():
    params, hessian = _quadratic(1)
    state = {p: {} for p in params}
    torch.manual_seed(0)
    hutchinson_([{"params": params}], state, "hessian", 4000, "gaussian")
    got = torch.cat([state[p]["hessian"].reshape(-1) for p in params])
    # (the mean of 4000 probes: within a few standard errors of the diagonal)
    scale = hessian.norm(dim=1) / 4000**0.5
    assert ((got - hessian.diag()).abs() <= 5 * scale).all(), (got, hessian.diag())


def test_a_gradient_without_its_graph_is_refused_with_the_fix():
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match=r"loss\.backward\(create_graph=True\)"):
        hutchinson_([{"params": [p]}], {p: {}}, "hessian", 1, "rademacher")


def test_the_curved_problem_keeps_the_gradient_and_has_the_hessian_it_says():
    """generator.verify.problems.curved: the value is the problem's gradient to the bit, and
    the Hessian is diag(c) + d dᵀ (c in [0.5, 1.5)): symmetric, coupling the parameters.
    """
    gen = torch.Generator().manual_seed(3)
    shapes = [(2, 2), (3,)]
    params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    params = [p.requires_grad_() for p in params]
    rows = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    curved(params, rows, 11)
    for p, g in zip(params, rows):
        assert torch.equal(p.grad.detach(), g), "the gradient's value is the problem's"
    grads = [p.grad for p in params]
    columns = []
    for k in range(7):
        v = torch.zeros(7, dtype=torch.float64)
        v[k] = 1.0
        hv = torch.autograd.grad(
            grads, params, grad_outputs=[v[:4].reshape(2, 2), v[4:]], retain_graph=True
        )
        columns.append(torch.cat([h.reshape(-1) for h in hv]))
    hessian = torch.stack(columns, 1)
    torch.testing.assert_close(hessian, hessian.T, rtol=0, atol=1e-15)
    off = hessian - torch.diag(hessian.diag())
    apart = ~torch.eye(7, dtype=torch.bool)
    assert off[apart].abs().min() > 0, f"every pair of entries is coupled: {hessian}"
    # diag(c) + d dᵀ: the off-diagonal part is d dᵀ's, so c = diag - d²
    d_squared = off[0, 1] * off[0, 2] / off[1, 2]
    c0 = hessian[0, 0] - d_squared
    assert 0.5 <= c0 < 1.5, c0


def test_an_estimate_refuses_sharded_parameters_naming_itself():
    """Hutchinson's products differentiate every parameter's whole gradient: a DTensor shard
    (FSDP2) is refused at the step, naming the estimate."""
    from generator.api import compile_text

    src = compile_text(
        HEAD + 'update optimizer:\n    D <- hutchinson(1, "rademacher")\n'
        "update:\n    param <- param - lr * grad / (abs(D) + 1)\n"
    )
    assert "reads each parameter's whole tensor (`hutchinson(...)`" in src


def test_a_parameters_first_step_is_told_apart_from_its_estimate_when_every_state_is_conditional():
    """The estimate makes its state before the groups step, so `len(state) == 0` no longer
    says a parameter is new: the first state made here does, or, where every one is made
    under a condition, a state that holds only estimates."""
    from generator import load_spec

    cls = load_spec(
        "optimizer X\ninput lr: float = 0.1\ninput beta: float = 0.9\n"
        "state D (hessian) lazy\nstate m (m) <- 0 if beta > 0\n"
        'update optimizer:\n    D <- hutchinson(1, "rademacher")\n'
        "update:\n    if beta > 0:\n        m <- beta * m + D * grad\n"
        "    param <- param - lr * grad\n"
    )
    params, _ = _quadratic()
    opt = cls(params)
    torch.manual_seed(0)
    opt.step()
    for p in params:
        assert set(opt.state[p]) == {"hessian", "m"}, opt.state[p].keys()
        assert torch.equal(opt.state[p]["m"], opt.state[p]["hessian"] * p.grad.detach())
