"""Eigenbases and projections: the language's pieces of SOAP, each against its definition.

specs/soap.optim is checked against pytorch_optimizer.SOAP in the paper suite (bit for bit on
its grid). Here each function of generator.runtime.linalg it is written with is held to what it
says it computes: ``gram`` (a fiber Gram matrix, as torch.tensordot rounds it), ``eigenvectors``
(largest eigenvalue first), ``qr`` (an orthonormal factor), ``reorder`` (slices sorted by a
vector), ``contract_first`` and ``rotate`` (a basis applied along every dimension in turn); the
sums and means over a dimension or the whole tensor on both paths; the ``, column major``
storage of a matrix state, and its refusal elsewhere; and a value named like a runtime function
the update calls (it would shadow the function in the generated module).
"""

from __future__ import annotations

from itertools import chain

import pytest
import torch

from diagnosed import errors_of
from generator import load_spec
from generator.runtime import linalg as L
from paths import run_path

RANKS = [(5,), (4, 3), (2, 3, 4), (2, 1, 3, 2)]


def _random(shape, seed=0):
    return torch.randn(
        shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


@pytest.mark.parametrize("shape", RANKS, ids=lambda s: f"rank{len(s)}")
def test_gram_is_the_fibers_gram_matrix_rounded_as_tensordot(shape):
    x = _random(shape)
    for k in range(len(shape)):
        u = x.movedim(k, 0).reshape(shape[k], -1)
        torch.testing.assert_close(L.gram(x, k), u @ u.T, rtol=1e-12, atol=1e-12)
        others = [*chain(range(k), range(k + 1, len(shape)))]
        assert torch.equal(L.gram(x, k), torch.tensordot(x, x, dims=[others, others]))


def test_eigenvectors_diagonalize_from_the_largest_eigenvalue():
    a = _random((6, 4))
    m = a @ a.T  # rank 4 of 6
    q = L.eigenvectors(m)
    torch.testing.assert_close(
        q.T @ q, torch.eye(6, dtype=torch.float64), atol=1e-12, rtol=0
    )
    values = torch.diag(q.T @ m @ q)
    assert (values[:-1] >= values[1:] - 1e-12).all(), values
    torch.testing.assert_close(m @ q, q * values, atol=1e-10, rtol=0)


def test_qr_is_an_orthonormal_factor_computed_in_float32():
    a = _random((5, 5))
    q = L.qr(a)
    assert q.dtype == torch.float64
    torch.testing.assert_close(
        q.T @ q, torch.eye(5, dtype=torch.float64), atol=1e-6, rtol=0
    )
    # Q^T A is upper triangular (to float32's rounding)
    r = q.T @ a
    assert r.tril(-1).abs().max() < 1e-5, r


def test_reorder_sorts_the_slices_by_the_vector_from_the_largest():
    x = _random((3, 4, 2))
    v = torch.tensor([0.5, 3.0, -1.0, 2.0], dtype=torch.float64)
    got = L.reorder(x, 1, v.reshape(1, 4))
    assert torch.equal(got, x[:, [1, 3, 0, 2], :])


@pytest.mark.parametrize("shape", RANKS, ids=lambda s: f"rank{len(s)}")
def test_contract_first_along_every_dimension_is_the_transposed_basis_on_each(shape):
    """Applied once per dimension (rotate for one left as it is), the dimensions come back
    in order, each multiplied by its basis's transpose: x ×_k Q_kᵀ for every k."""
    x = _random(shape)
    bases = [L.qr(_random((n, n), seed=k + 1)) for k, n in enumerate(shape)]
    kept = len(shape) - 1  # the last dimension left as it is
    y = x
    for k, q in enumerate(bases):
        y = L.rotate(y) if k == kept else L.contract_first(y, q)
    want = x
    for k, q in enumerate(bases):
        if k != kept:
            want = torch.movedim(torch.tensordot(q.T, want.movedim(k, 0), dims=1), 0, k)
    assert y.shape == x.shape
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    # and back with the bases themselves: the identity
    z = y
    for k, q in enumerate(bases):
        z = L.rotate(z) if k == kept else L.contract_first(z, q.T)
    torch.testing.assert_close(z, x, rtol=0, atol=1e-5)  # (the bases: float32 QR)


REDUCTIONS = """\
optimizer Reductions
input lr: float = 0.1
input foreach: bool? = none
check not is_complex(param) else "real parameters only"
check dim(param) == 2 else "matrices"
state m (m) <- 0
update:
    m <- m + sum(grad * grad, 0) / size(param, 0)
    param <- param - lr * grad / (sqrt(m + mean(grad * grad)) + 1)
"""


@pytest.mark.parametrize("impl", ["for-loop", "foreach"])
def test_sum_along_a_dimension_and_the_whole_mean_run_on_each_path_as_torch(impl):
    cls = load_spec(REDUCTIONS)
    shapes = [(3, 4), (2, 5)]
    opt, params, grads = run_path(cls, impl, shapes, 3, lr=0.1)
    start = run_path(cls, "for-loop", shapes, 0)[1]
    for k, shape in enumerate(shapes):
        p, m = start[k].clone(), torch.zeros(shape, dtype=torch.float64)
        for step in grads:
            g = step[k]
            m = m + (g * g).sum(dim=0, keepdim=True) / shape[0]
            p = p - 0.1 * g / (torch.sqrt(m + (g * g).mean()) + 1)
        torch.testing.assert_close(params[k], p, rtol=1e-14, atol=1e-15)


COLUMN_MAJOR = """\
optimizer Columns
input lr: float = 0.1
check not is_complex(param) else "real parameters only"
state B (basis) <- [zeros(size(param, k), size(param, k)) for k in range(dim(param))], column major
state E (eye) <- 2 * eye(size(param, 0)), column major
update:
    for k in range(dim(param)):
        B[k] <- eigenvectors(gram(grad, k))
    param <- param - lr * grad
"""


def test_a_column_major_state_is_stored_column_by_column_as_lapack_returns_factors():
    cls = load_spec(COLUMN_MAJOR)
    p = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    p.grad = _random((3, 2))
    opt = cls([p])
    opt.step()
    state = opt.state[p]
    for b in state["basis"]:
        n = b.size(0)
        assert b.stride() == (1, n), b.stride()
    assert state["eye"].stride() == (1, 3)
    assert torch.equal(state["eye"], 2 * torch.eye(3, dtype=torch.float64))
    lapack = torch.linalg.eigh(L.gram(p.grad, 0))[1]
    assert state["basis"][0].stride() == lapack.stride()


@pytest.mark.parametrize(
    "state,what",
    [
        ("state m (m) <- 0, column major", "two-dimensional"),
        ("state m (m) <- zeros(size(param, 0)), column major", "two-dimensional"),
    ],
)
def test_column_major_on_anything_but_matrices_is_refused(state, what):
    spec = (
        "optimizer X\ninput lr: float = 0.1\n"
        'check not is_complex(param) else "real"\n'
        f"{state}\nupdate:\n    m <- m + grad\n    param <- param - lr * m\n"
    )
    errors = errors_of(spec)
    assert errors and errors[0].startswith("E206") and what in errors[0], errors


@pytest.mark.parametrize(
    "name,call",
    [("gram", "gram(grad, 0) @ grad"), ("qr", "qr(grad) @ grad")],
)
def test_a_value_named_like_a_runtime_function_the_update_calls_is_refused(name, call):
    spec = (
        "optimizer X\ninput lr: float = 0.1\n"
        'check not is_complex(param) else "real"\nupdate:\n'
        f"    {name} <- grad\n    if dim(param) == 2:\n        {name} <- {call}\n"
        f"    param <- param - lr * {name}\n"
    )
    errors = errors_of(spec)
    assert [e.split()[0] for e in errors] == ["E201"], errors
    assert "shadow" in errors[0]


def test_a_value_named_like_a_runtime_function_the_update_does_not_call_is_free():
    # (MARS and Muon name a value `gram`; neither calls gram())
    load_spec(
        "optimizer X\ninput lr: float = 0.1\nupdate:\n"
        "    gram <- grad * grad\n    param <- param - lr * gram\n"
    )


def test_a_matrix_function_of_the_table_refuses_sharded_parameters_naming_itself():
    """A function the builtin table does not mark elementwise reads the whole tensor: a
    DTensor shard (FSDP2) is refused at the step, naming it (the list of such functions is
    read off the table, so a new one is covered without a list of its own)."""
    from generator.api import compile_text

    src = compile_text(
        "optimizer X\ninput lr: float = 0.1\n"
        'check not is_complex(param) else "real"\nstate m (m) <- 0\nupdate:\n'
        "    m <- m + grad\n    if dim(param) == 2:\n"
        "        m <- m + contract_first(grad, transpose(grad) @ grad)\n"
        "    param <- param - lr * m\n"
    )
    assert "if _is_sharded(p):" in src
    assert "reads each parameter's whole tensor (`contract_first(...)`" in src
