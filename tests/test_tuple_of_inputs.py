"""Inputs that are tuples of any length: ``input betas: tuple of float = (0.0, 0.9, 0.99)``.

AggMo takes one decay rate per momentum buffer, as many as the user gives. Such an input is one
name; the update reads its items, ``betas[k]``, and its length, ``len(betas)``, which may size a
list state (``[0] * len(betas)``) and bound a loop, and requirements read both. The generated
argument is annotated ``tuple[float, ...]``. Each path a spec declares runs it (the for-loop and
foreach alike, to the last bit here, against plain torch written from the algorithm; a flat
update too); fused is refused at the item read (E335), and misuse is refused with its rule.
pytorch_optimizer's AggMo itself is in the paper-optimizer table (tests/paper_optim_db.py).
"""

from __future__ import annotations

import inspect

import pytest
import torch

from generator import load_spec
from generator.commands.fmt import format_text
from diagnosed import errors_of
from paths import run_path

# the rates weigh the gradient per parameter rank (an item read outside a loop, under a branch
# decided per parameter) and, in a loop, a list state of one buffer per rate
WEIGHTED = """\
optimizer Weighted
input lr: float = 0.1
input rates: tuple of float = (0.5, 0.25, 0.125)
    requires len(rates) >= 2 else "two rates or more, got {rates}"
check 0 < rates[0] <= 1 else "the first rate is in (0, 1]"
input foreach: bool? = none
check not is_complex(param) else "real parameters only (the update reads their rank)"
state bufs <- [0] * len(rates)
update:
    if dim(param) > 1:
        g <- rates[0] * grad
    else:
        g <- rates[1] * grad
    for k in range(len(rates)):
        bufs[k] <- rates[k] * bufs[k] + g
        param <- param - lr * bufs[k]
"""

SHAPES = [(5,), (4, 3), (2, 3, 2)]


def _reference(params, grads_per_step, lr, rates):
    """Plain torch, from the algorithm."""
    params = [p.clone() for p in params]
    bufs = [[torch.zeros_like(p) for _ in rates] for p in params]
    for grads in grads_per_step:
        for p, g, b in zip(params, grads, bufs):
            g = (rates[0] if p.dim() > 1 else rates[1]) * g
            for k, rate in enumerate(rates):
                b[k].mul_(rate).add_(g)
                p.add_(b[k], alpha=-lr)
    return params


@pytest.mark.parametrize("rates", [(0.5, 0.25), (0.9, 0.5, 0.25, 0.125, 0.0625)])
@pytest.mark.parametrize("impl", ["for-loop", "foreach"])
def test_a_tuple_input_runs_on_every_path_as_plain_torch(impl, rates):
    cls = load_spec(WEIGHTED)
    opt, params, grads = run_path(cls, impl, SHAPES, 12, lr=0.05, rates=rates)
    start = run_path(cls, "for-loop", SHAPES, 0)[1]  # (the same seeded parameters)
    expected = _reference(start, grads, 0.05, rates)
    for k, (p, e) in enumerate(zip(params, expected)):
        assert torch.equal(p, e), (
            f"{impl}, rates {rates}, parameter {k}: differs from plain torch by "
            f"{(p - e).abs().max().item():.3e}"
        )
    held = opt.param_groups[0]["params"]
    assert [len(opt.state[p]["bufs"]) for p in held] == [len(rates)] * len(held)


def test_a_tuple_input_is_annotated_and_checked_at_construction():
    cls = load_spec(WEIGHTED)
    parameter = inspect.signature(cls).parameters["rates"]
    assert parameter.annotation in ("tuple[float, ...]", tuple[float, ...])
    assert parameter.default == (0.5, 0.25, 0.125)
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"two rates or more, got \(0\.5,\)"):
        cls([p], rates=(0.5,))
    with pytest.raises(ValueError, match="the first rate"):
        cls([p], rates=(0.0, 0.5))


def test_a_flat_update_reads_a_tuple_input():
    cls = load_spec(
        "optimizer F\ninput lr: float = 1\ninput rates: tuple of float = (0.5, 0.25)\n"
        "update flat:\n    s <- 0\n    for k in range(len(rates)):\n"
        "        s <- s + rates[k]\n    param <- param - lr * s * grad\n"
    )
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = cls([p], rates=(0.5, 0.25, 0.125))

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.equal(p.detach(), torch.full((3,), 1 - 0.875 * 2, dtype=torch.float64))


def test_fmt_keeps_a_tuple_input():
    text = "optimizer X\ninput betas:  tuple  of   float = (0.0,0.9)\n"
    assert "input betas: tuple of float = (0.0, 0.9)" in format_text(text)


def _errors(inp: str, update: str) -> list[str]:
    text = (
        f"optimizer X\ninput lr: float = 1\n{inp}\ninput foreach: bool? = none\n"
        f"update:\n{update}"
    )
    return errors_of(text)


READ = "    param <- param - lr * betas[0] * grad\n"
BETAS = "input betas: tuple of float = (0.9, 0.8)"


@pytest.mark.parametrize(
    "inp, update, expected",
    [
        ("input betas: tuple of float = 0.9", READ, "E204 the default of a `tuple"),
        ('input betas: tuple of float = (0.9, "a")', READ, 'E204 default `"a"`'),
        (
            "input betas: tuple of tensor = (1, 2)",
            READ,
            "E202 a `tuple of` holds numbers",
        ),
        ("input betas: tuple of float? = (0.9, none)", READ, "E202 a `tuple of`"),
        (
            "input b1, b2 (betas): tuple of float = (0.9, 0.8)",
            READ,
            "E203 several names",
        ),
        (BETAS, "    param <- param - lr * betas * grad\n", "E507 `betas` is a list"),
        (BETAS, "    betas[0] <- 1\n" + READ, "E317 cannot change input `betas`"),
        (BETAS, "    append(betas, grad)\n" + READ, "E317 cannot change input `betas`"),
        (BETAS, "    betas <- [grad]\n" + READ, "E317 cannot assign to input `betas`"),
        (
            BETAS,
            "    param <- param - lr * betas[lr] * grad\n",
            "E507 a list's item is chosen by a whole number",
        ),
        (
            BETAS + "\ninput fused: bool? = none",
            READ,
            "E335 an item of a tuple of numbers has no fused form: the for-loop and "
            "foreach paths run it",
        ),
    ],
    ids=[
        "a_default_that_is_not_a_tuple",
        "a_default_item_of_another_type",
        "a_tuple_of_tensors",
        "a_tuple_of_optional_numbers",
        "several_names",
        "the_tuple_as_a_number",
        "an_item_assigned",
        "appended_to",
        "assigned_whole",
        "an_item_chosen_by_a_number",
        "fused",
    ],
)
def test_tuple_input_misuse_is_refused_with_its_rule(inp, update, expected):
    errors = _errors(inp, update)
    assert any(e.startswith(expected) for e in errors), (expected, errors)
