"""Sparse gradients: SparseAdam, Adagrad and SGD update only the rows a sparse gradient holds.

Two ``nn.Embedding(sparse=True)`` tables (two param groups) are trained side by side with torch's
class and the generated one, for every CPU config torch's optim_db gives the optimizer (for-loop
and foreach where torch has both, float32 and float64): indices drawn with repeats (so gradients
need coalescing), gradient magnitudes spread over 1e-6..10, one table without a gradient on some
steps. After every step the tables and the full ``state_dict()`` must be equal to torch's, bit
for bit; where torch raises (Adagrad's weight decay with a sparse gradient), the generated class
must raise the same exception with the same message.
"""

from __future__ import annotations

import copy

import pytest
import torch

from generator.verify.compare import (
    EXACT,
    assert_same_exception,
    call_capturing,
    compare_state_dicts,
    compare_tensor,
)
from generator.verify.problems import stable_seed
from parity import (
    CompareContext,
    RecordKey,
    describe_kwargs,
    generated_class,
    has_foreach,
    optim_info,
    slug,
    torch_class,
)

# torch's own Adagrad builds its sparse updates without saying whether to check them
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")

SPARSE_NAMES = ("SparseAdam", "Adagrad", "SGD")
STEPS = 12
NO_GRAD_STEPS = frozenset({3, 7})  # the second table has no gradient on these steps
DTYPES = (torch.float32, torch.float64)


# configurations optim_db's inputs leave out for sparse gradients: its only Adagrad input with
# lr_decay also sets weight_decay, which torch refuses for a sparse gradient
MORE_INPUTS = {
    "Adagrad": [
        ("lr_decay without weight_decay", {"lr": 0.1, "lr_decay": 0.5}),
        ("lr_decay, maximize", {"lr": 0.1, "lr_decay": 0.5, "maximize": True}),
    ],
}


def _inputs(name) -> list[tuple[str, dict]]:
    db = optim_info(name).optim_inputs_func(device="cpu")
    return [(inp.desc, inp.kwargs) for inp in db] + MORE_INPUTS.get(name, [])


def _cases():
    cases = []
    for name in SPARSE_NAMES:
        info = optim_info(name)
        assert info.only_supports_sparse_grads or info.supports_sparse, name
        impls = [False, True] if has_foreach(name) else [False]
        for index, (desc, _) in enumerate(_inputs(name)):
            for foreach in impls:
                for dtype in DTYPES:
                    impl = "foreach" if foreach else "for-loop"
                    cases.append(
                        pytest.param(
                            name,
                            index,
                            foreach,
                            dtype,
                            id=f"{name}-{slug(desc)}-{slug(impl)}-{str(dtype)[6:]}",
                        )
                    )
    return cases


def _tables(dtype, seed):
    torch.manual_seed(seed)
    return [
        torch.nn.Embedding(30, 6, sparse=True).to(dtype),
        torch.nn.Embedding(7, 3, sparse=True).to(dtype),
    ]


def _config(name, index, foreach):
    kwargs = dict(_inputs(name)[index][1])
    if has_foreach(name):
        kwargs["foreach"] = foreach
    return kwargs


def _make(cls, tables, kwargs):
    second = {}
    if isinstance(kwargs.get("lr", 1e-3), float):
        second["lr"] = kwargs.get("lr", 1e-3) * 0.5
    return cls(
        [
            {"params": tables[0].parameters()},
            {"params": tables[1].parameters(), **second},
        ],
        **kwargs,
    )


def _dense_states(sd: dict) -> dict:
    """State tensors torch keeps sparse (SGD's momentum buffer is the first sparse gradient's
    clone) are compared as dense tensors, after checking both sides kept them sparse."""
    out = copy.copy(sd)
    out["state"] = {
        k: {
            n: (v.to_dense() if torch.is_tensor(v) and v.is_sparse else v)
            for n, v in st.items()
        }
        for k, st in sd["state"].items()
    }
    return out


def _layouts(sd: dict) -> dict:
    return {
        (k, n): v.layout
        for k, st in sd["state"].items()
        for n, v in st.items()
        if torch.is_tensor(v)
    }


def _loss(tables, step, seed):
    gen = torch.Generator().manual_seed(seed + step)
    idx0 = torch.randint(0, 30, (12,), generator=gen)
    idx1 = torch.randint(0, 7, (5,), generator=gen)
    scale = 10.0 ** torch.randint(-6, 2, (), generator=gen).item()
    loss = (tables[0](idx0) ** 2).sum() * scale
    if step not in NO_GRAD_STEPS:
        loss = loss + (tables[1](idx1) ** 3).sum()
    return loss


@pytest.mark.parametrize("name,index,foreach,dtype", _cases())
def test_sparse_gradients_update_like_torch(request, name, index, foreach, dtype):
    kwargs = _config(name, index, foreach)
    seed = stable_seed(name, index, "sparse")
    reference, generated = _tables(dtype, seed), None
    generated = copy.deepcopy(reference)
    opts = [
        _make(torch_class(name), reference, kwargs),
        _make(generated_class(name), generated, kwargs),
    ]
    label = f"{name}({describe_kwargs(kwargs)}), {dtype}, sparse gradients"
    for step in range(STEPS):
        raised = []
        for tables, opt in zip((reference, generated), opts):
            opt.zero_grad(set_to_none=True)
            _loss(tables, step, seed).backward()
            raised.append(call_capturing(opt.step)[1])
        assert_same_exception(raised[1], raised[0], f"{label}, step {step}")
        if raised[0] is not None:
            return  # torch refuses this config with sparse gradients, and so do we
        ctx = CompareContext(
            label=label,
            step=step,
            tol=EXACT,
            record=RecordKey(
                name,
                "vs torch (sparse grads)",
                str(dtype)[6:],
                "foreach" if foreach else "for-loop",
            ),
            test_id=request.node.nodeid,
            normalize_state_dict=_dense_states,
        )
        for k, (a, b) in enumerate(zip(generated, reference)):
            compare_tensor(a.weight.detach(), b.weight.detach(), f"table {k}", ctx)
        expected, actual = opts[0].state_dict(), opts[1].state_dict()
        assert _layouts(actual) == _layouts(expected), ctx.where("state layouts differ")
        compare_state_dicts(actual, expected, ctx)


@pytest.mark.parametrize("direction", ["torch_to_generated", "generated_to_torch"])
@pytest.mark.parametrize("name", SPARSE_NAMES)
def test_sparse_state_dict_loads_across_and_continues_identically(name, direction):
    kwargs = {"lr": 0.01}
    seed = stable_seed(name, "sparse-load")
    first, second = (
        (torch_class(name), generated_class(name))
        if direction == "torch_to_generated"
        else (generated_class(name), torch_class(name))
    )
    tables = _tables(torch.float32, seed)
    opt = _make(first, tables, kwargs)
    for step in range(5):
        opt.zero_grad()
        _loss(tables, step, seed).backward()
        opt.step()
    runs = []
    for cls in (first, second):
        t = copy.deepcopy(tables)
        o = _make(cls, t, kwargs)
        o.load_state_dict(copy.deepcopy(opt.state_dict()))
        for step in range(5, 10):
            o.zero_grad()
            _loss(t, step, seed).backward()
            o.step()
        runs.append((t, o))
    (t1, o1), (t2, o2) = runs
    ctx = CompareContext(
        label=f"{name}, state_dict {direction}",
        step=9,
        tol=EXACT,
        record=None,
        test_id=name,
        normalize_state_dict=_dense_states,
    )
    for k, (a, b) in enumerate(zip(t2, t1)):
        compare_tensor(a.weight.detach(), b.weight.detach(), f"table {k}", ctx)
    compare_state_dicts(o2.state_dict(), o1.state_dict(), ctx)


def test_sparse_adam_refuses_dense_gradients_like_torch():
    outcomes = []
    for cls in (torch.optim.SparseAdam, generated_class("SparseAdam")):
        p = torch.zeros(4, 2, requires_grad=True)
        p.grad = torch.ones(4, 2)
        outcomes.append(call_capturing(cls([p]).step)[1])
    assert_same_exception(outcomes[1], outcomes[0], "SparseAdam.step() on a dense grad")


@pytest.mark.parametrize("what", ["complex", "sparse"])
def test_sparse_adam_refuses_complex_or_sparse_parameters(what):
    p = (
        torch.zeros(4, 2, dtype=torch.complex64)
        if what == "complex"
        else torch.zeros(4, 2).to_sparse()
    )
    for cls in (torch.optim.SparseAdam, generated_class("SparseAdam")):
        with pytest.raises(ValueError, match=f"{what.capitalize()} param"):
            cls([p])
