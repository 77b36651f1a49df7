"""The language's pieces of PSGD Kron, each pinned: dtype inputs and states made in them, results
that may be their argument (never updated in place as fresh ones), numpy's draws, and the
Kronecker-factor runtime functions against pytorch_optimizer's own.

specs/kron.optim is checked against pytorch_optimizer.Kron in the paper suite (bit for bit over
its grid). Here each piece is checked on its own, so that a change to one names it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diagnosed import errors_of
from generator import load_spec
from generator.api import compile_text
from generator.runtime import linalg as L

HEAD = (
    "optimizer X\ninput lr: float = 0.1\n"
    'check not is_complex(param) else "no complex parameters"\n'
)
DTYPED = (
    HEAD + 'input keep: dtype? = float32 "the states\' dtype"\n'
    "state m (m) <- 0, dtype keep\n"
    "state F (F) <- [identity_factor(param, k, size(param, k) < 4) for k in range(dim(param))], "
    "dtype keep\n"
    "update:\n    m <- m * 0.5 + cast(grad, keep)\n"
    "    param <- param - lr * type_as(m, param)\n"
)


def _step(cls, shapes=((3, 5),), dtype=torch.float64, **kwargs):
    params = [torch.ones(s, dtype=dtype, requires_grad=True) for s in shapes]
    opt = cls(params, **kwargs)
    for p in params:
        p.grad = torch.full_like(p, 2.0)
    opt.step()
    return opt, params


def test_a_dtype_input_defaults_to_the_torch_dtype_and_none_is_the_parameters():
    cls = load_spec(DTYPED)
    src = compile_text(DTYPED)
    assert "keep: torch.dtype | None = torch.float32" in src, src[:3000]
    opt, (p,) = _step(cls)
    st = opt.state[p]
    assert st["m"].dtype == torch.float32, st["m"].dtype
    assert [f.dtype for f in st["F"]] == [torch.float32] * 2
    # a dense factor for the 3 (< 4), the diagonal of one for the 5
    assert [tuple(f.shape) for f in st["F"]] == [(3, 3), (5,)]
    assert torch.equal(st["F"][0], torch.eye(3)) and torch.equal(
        st["F"][1], torch.ones(5)
    )
    opt, (p,) = _step(cls, keep=None)
    assert opt.state[p]["m"].dtype == torch.float64
    assert [f.dtype for f in opt.state[p]["F"]] == [torch.float64] * 2
    opt, (p,) = _step(cls, keep=torch.bfloat16)
    assert opt.state[p]["m"].dtype == torch.bfloat16


def test_a_state_made_in_a_dtype_keeps_it_through_a_state_dict_load():
    cls = load_spec(DTYPED)
    opt, params = _step(cls)
    other = cls([torch.ones(3, 5, dtype=torch.float64, requires_grad=True)])
    other.load_state_dict(opt.state_dict())
    st = next(iter(other.state.values()))
    # (torch's load would cast them to the float64 parameter's dtype)
    assert st["m"].dtype == torch.float32
    assert [f.dtype for f in st["F"]] == [torch.float32] * 2


@pytest.mark.parametrize(
    "option,hint",
    [
        ("dtype lr", "not an input of type `dtype`"),
        ("dtype nothing", "not an input of type `dtype`"),
    ],
)
def test_a_state_dtype_names_a_dtype_input(option, hint):
    text = HEAD + f"state m (m) <- 0, {option}\nupdate:\n    m <- m + grad\n"
    text += "    param <- param - lr * m\n"
    errors = errors_of(text)
    assert any(e.startswith("E206") and hint in e for e in errors), errors


def test_the_precision_policys_arguments_name_nothing_in_a_spec():
    text = (
        HEAD
        + "input state_dtype: dtype? = none\nupdate:\n    param <- param - lr * grad\n"
    )
    errors = errors_of(text)
    assert any(e.startswith("E201") and "state_dtype" in e for e in errors), errors


def test_a_counter_has_no_dtype_of_its_own():
    text = HEAD + "input d: dtype? = none\nstate group t (step): count <- 0, dtype d\n"
    text += (
        "update group:\n    t <- t + 1\nupdate:\n    param <- param - lr * t * grad\n"
    )
    errors = errors_of(text)
    assert any("E206" in e and "not of a counter" in e for e in errors), errors


def test_a_dtype_default_is_a_dtype():
    text = (
        HEAD + "input d: dtype = 3\nupdate:\n    param <- param - lr * cast(grad, d)\n"
    )
    assert any("E204" in e for e in errors_of(text)), errors_of(text)


@pytest.mark.parametrize("call", ["cast(m, d)", "type_as(m, param)", "contiguous(m)"])
def test_a_result_that_may_be_its_argument_is_not_updated_in_place(call):
    # (x.to(None), x.type_as(y) of y's dtype and a contiguous x.contiguous() are x itself: an
    # in-place step on them would change the state)
    text = (
        HEAD
        + ("input d: dtype? = none\n" if "d)" in call else "")
        + "state m (m) <- 0\n"
        "update:\n    m <- m + grad\n"
        f"    u <- {call} / 2\n"
        "    param <- param - lr * u\n"
    )
    cls = load_spec(text)
    opt, (p,) = _step(cls)
    m = opt.state[p]["m"]
    assert torch.equal(m, torch.full_like(m, 2.0)), f"{call}: the state became {m}"
    assert torch.equal(p.detach(), torch.full_like(p, 0.9)), p


def test_host_uniform_draws_from_numpys_generator_once_per_step():
    text = (
        HEAD + "input chance: float = 0.5\nstate optimizer b (b): count <- 0\n"
        "update optimizer:\n    b <- 1 if host_uniform() < chance else 0\n"
        "update:\n    param <- param - lr * b * grad\n"
    )
    cls = load_spec(text)
    params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    opt = cls(params)
    np.random.seed(5)
    expected = np.random.random(8) < 0.5
    np.random.seed(5)
    taken = []
    for _ in range(8):
        for q in params:
            q.grad = torch.ones_like(q)
        before = params[0].detach().clone()
        opt.step()
        taken.append(not torch.equal(before, params[0].detach()))
    assert taken == list(expected), (taken, list(expected))


# -- the Kronecker factors' runtime, against the reference's own functions ----------------------

psgd = pytest.importorskip("pytorch_optimizer.optimizer.psgd")

SHAPES = [(), (5,), (4, 6), (3, 1, 5), (2, 3, 4, 5), (9, 3)]
MODES = [None, "one_diag", "smart_one_diag", "all_diag"]


def _factors(shape, mode, max_size=8):
    t = torch.randn(shape, dtype=torch.float64)
    qs, expressions = psgd.initialize_q_expressions(
        t, 1.0, max_size, 2, mode, dtype=torch.float32
    )
    # (factors away from the identity, upper triangular as the fit keeps them)
    qs = [q + 0.1 * torch.randn_like(q).triu() if q.dim() >= 2 else q * 1.3 for q in qs]
    return qs, expressions


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kron_functions_contract_as_the_reference_to_the_bit(shape, mode):
    torch.manual_seed(0)
    qs, expressions = _factors(shape, mode)
    g, v = torch.randn(shape), torch.randn(shape)
    a, b = psgd.get_a_and_conj_b(expressions[0], g, qs, v)
    assert torch.equal(L.kron_apply(qs, g), a), "kron_apply"
    assert torch.equal(L.kron_solve(qs, v), b), "kron_solve"
    for k, (t1, t2) in enumerate(psgd.get_q_terms(expressions[1], a, b)):
        assert torch.equal(L.kron_gram(a, qs, k), t1), f"kron_gram of dimension {k}"
        assert torch.equal(L.kron_gram(b, qs, k), t2), f"kron_gram of dimension {k}"
    assert torch.equal(
        L.kron_precondition(qs, g), psgd.get_precondition_grad(qs, expressions, g)
    ), "kron_precondition"
    balanced = [q.clone() for q in qs]
    psgd.balance_q(balanced)
    scale = L.norms_geometric_mean(qs)
    for k, (q, want) in enumerate(zip(qs, balanced)):
        assert torch.equal(q * (scale / L.max_abs(q)), want), f"balancing factor {k}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES + [(6, 6), (4, 7, 7), (1, 1)], ids=str)
def test_identity_factors_are_dense_or_diagonal_as_the_references(shape, mode):
    t = torch.zeros(shape)
    qs, _ = psgd.initialize_q_expressions(t, 1.0, 8, 2, mode, dtype=torch.float32)
    # the spec's rule (specs/kron.optim's state Q), with largest_dim and max_size_except
    dims = range(max(t.dim(), 1))
    dense = [
        not (
            t.dim() == 0
            or t.size(k) == 1
            or t.size(k) > 8
            or t.dim() < 2
            or mode == "all_diag"
            or (mode == "one_diag" and k == L.largest_dim(t))
            or (
                mode == "smart_one_diag"
                and t.dim() >= 2
                and k == L.largest_dim(t)
                and t.size(k) > L.max_size_except(t, k)
            )
        )
        for k in dims
    ]
    ours = [
        L.identity_factor(t, k, d, dtype=torch.float32) for k, d in zip(dims, dense)
    ]
    assert [q.shape for q in ours] == [q.shape for q in qs], (shape, mode)
    assert all(torch.equal(a, b) for a, b in zip(ours, qs))


def test_norm_lower_bound_is_the_references_and_leaves_its_argument():
    from pytorch_optimizer.optimizer.utils.psgd import norm_lower_bound

    torch.manual_seed(1)
    for shape in [(5, 5), (1, 1), (7,), (3, 3)]:
        a = torch.randn(shape)
        kept = a.clone()
        want = norm_lower_bound(a.clone())
        assert torch.equal(L.norm_lower_bound(a), want), shape
        assert torch.equal(a, kept), "norm_lower_bound scaled its argument in place"
    zero = torch.zeros(3, 3)
    assert torch.equal(L.norm_lower_bound(zero), norm_lower_bound(zero.clone()))
