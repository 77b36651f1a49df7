"""Modifiers: small specs spliced into any optimizer at a point its update exposes.

The shipped modifiers are checked against pytorch_optimizer through the optimizers that take
them (Lion's `cautious` in the paper suite). Here the mechanism is pinned: a modifier's inputs
and blocks become the optimizer's, where its `expose` stands and in `with` order; an `expose` no
modifier acts at is nothing; and each misuse is refused with both spec lines, never a traceback.
A user's own modifier, in the user's own folder, needs no change to the generator.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from generator import project as P
from generator.api import check_text, compile_text, load_spec
from generator.language.diagnostics import SpecError

BASE = (
    "optimizer Plain\ninput lr: float = 0.1\n"
    'check not is_complex(param) else "no complex parameters"\n'
    "{with}"
    "update:\n    u <- grad\n    expose direction u, grad\n    param <- param - lr * u\n"
)
DOUBLE = (
    'modifier double\ninput factor: float = 2.0, keyword "how much larger"\n'
    "at direction v, gr:\n    v <- v * factor\n"
)
SHIFT = "modifier shift\nat direction w, gr:\n    w <- w + 1\n"
PARAMETER = "modifier nudge\nat parameter x:\n    x <- x * 2\n"


def _dirs(tmp_path: Path, **modifiers: str) -> list[Path]:
    for name, text in modifiers.items():
        (tmp_path / f"{name}.frag").write_text(text)
    return [tmp_path, P.standard_fragments()]


def _errors(text: str, dirs) -> list[str]:
    try:
        check_text(text, fragment_dirs=dirs)
    except SpecError as e:
        return [
            f"{d.code} {d.message} @{d.span.line}"
            + "".join(f" | {n.message}" for n in d.notes)
            for d in e.diagnostics
        ]
    return []


def _step(cls, **kwargs) -> torch.Tensor:
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = cls([p], **kwargs)
    p.grad = torch.full_like(p, 0.5)
    opt.step()
    return p.detach()


def test_a_users_modifier_in_its_own_folder_splices_its_input_and_block(tmp_path):
    dirs = _dirs(tmp_path, double=DOUBLE)
    text = BASE.format(**{"with": "with double\n"})
    src = compile_text(text, fragment_dirs=dirs)
    assert "factor: float = 2.0" in src, "the modifier's input is the optimizer's"
    assert "u.mul_(factor)" in src or "u = u.mul(factor)" in src, src
    cls = load_spec(text, fragment_dirs=dirs)
    assert torch.equal(
        _step(cls), torch.full((3,), 1 - 0.1 * 0.5 * 2.0, dtype=torch.float64)
    )
    assert torch.equal(
        _step(cls, factor=3.0),
        torch.full((3,), 1 - 0.1 * 0.5 * 3.0, dtype=torch.float64),
    )


def test_an_optimizer_redeclaring_a_modifiers_input_replaces_it(tmp_path):
    dirs = _dirs(tmp_path, double=DOUBLE)
    text = BASE.format(**{"with": 'with double\ninput factor: float = 3.0 "mine"\n'})
    cls = load_spec(text, fragment_dirs=dirs)
    assert torch.equal(
        _step(cls), torch.full((3,), 1 - 0.1 * 0.5 * 3.0, dtype=torch.float64)
    )


def test_modifiers_at_one_point_run_in_with_order(tmp_path):
    dirs = _dirs(tmp_path, double=DOUBLE, shift=SHIFT)
    first = load_spec(
        BASE.format(**{"with": "with double, shift\n"}), fragment_dirs=dirs
    )
    second = load_spec(
        BASE.format(**{"with": "with shift, double\n"}), fragment_dirs=dirs
    )
    # (0.5 * 2 + 1 = 2, against (0.5 + 1) * 2 = 3)
    assert torch.equal(
        _step(first), torch.full((3,), 1 - 0.1 * 2.0, dtype=torch.float64)
    )
    assert torch.equal(
        _step(second), torch.full((3,), 1 - 0.1 * 3.0, dtype=torch.float64)
    )


READS_THE_OPTION = (
    "optimizer Reads\ninput lr: float = 0.1\n"
    'check not is_complex(param) else "no complex parameters"\n'
    "with double\n"
    "update:\n    u <- grad\n"
    "    if factor > 2:\n        expose direction u, grad\n"
    "        param <- param - lr * u\n"
    "    else:\n        param <- param - lr * grad\n"
)
NESTED = (
    'modifier double\ninput factor: float = 2.0, keyword "how much larger"\n'
    "at direction v, gr:\n    if factor > 2:\n        v <- v * factor\n"
)


def test_an_optimizer_reads_the_option_of_a_modifier_it_takes(tmp_path):
    # (AdEMAMix steps otherwise where `stable_adamw` is on, as its reference does); the
    # modifier's own `if` on a condition that holds where the point is exposed is not
    # written twice
    dirs = _dirs(tmp_path, double=NESTED)
    src = compile_text(READS_THE_OPTION, fragment_dirs=dirs)
    assert src.count("if factor > 2") == 1, "the option tested twice:\n" + src
    cls = load_spec(READS_THE_OPTION, fragment_dirs=dirs)
    assert torch.equal(_step(cls), torch.full((3,), 0.95, dtype=torch.float64))
    assert torch.equal(
        _step(cls, factor=4.0),
        torch.full((3,), 1 - 0.1 * 0.5 * 4.0, dtype=torch.float64),
    )


def test_a_modifier_at_grad_acts_before_the_update_reads_the_gradient(tmp_path):
    # (a wrapper's point: what the update reads for `grad`, its first statement included, is
    # the modifier's result, with no `expose` in the optimizer)
    dirs = _dirs(
        tmp_path, twice="modifier twice\nat grad scaled:\n    scaled <- scaled * 2\n"
    )
    cls = load_spec(BASE.format(**{"with": "with twice\n"}), fragment_dirs=dirs)
    assert torch.equal(
        _step(cls), torch.full((3,), 1 - 0.1 * 0.5 * 2, dtype=torch.float64)
    )


def test_an_exposed_point_no_modifier_acts_at_is_nothing():
    plain = load_spec(BASE.format(**{"with": ""}))
    assert torch.equal(_step(plain), torch.full((3,), 0.95, dtype=torch.float64))


@pytest.mark.parametrize(
    "with_,modifiers,expected",
    [
        ("with nothing\n", {}, "E403 no modifier named `nothing` @4"),
        # both lines: the optimizer's `with`, and the modifier's block
        (
            "with nudge\n",
            {"nudge": PARAMETER},
            "E408 `with nudge`: the update of Plain exposes no `parameter` for it to act at @4"
            " | nudge acts at `parameter` here",
        ),
        (
            "with double\n",
            {
                "double": "modifier double\nat direction v, gr:\n    lr <- 2\n    v <- v * lr\n"
            },
            "E202 `with double`: its `lr` is also a name of Plain @4 | double's `lr`",
        ),
        # (an optimizer's local of the name of a modifier's input would be that input)
        (
            "with double\n",
            {"double": DOUBLE.replace("factor", "u")},
            "E202 `with double`: its `u` is also a name of Plain @4 | double's `u`",
        ),
        (
            "with double, double\n",
            {"double": DOUBLE},
            "E403 modifier `double` is taken twice @4",
        ),
        (
            "with one\n",
            {"one": "modifier one\nat direction v:\n    v <- v * 2\n"},
            "E408 `with one`: one takes 1 value(s) at `direction` (v), the update exposes 2 @7"
            " | one acts at `direction` here",
        ),
        # (`grad`, the point every per-parameter update has, holds one value)
        (
            "with two\n",
            {"two": "modifier two\nat grad a, b:\n    a <- a * 2\n"},
            "E408 `with two`: two takes 2 value(s) at `grad`, which holds 1"
            " @4 | two acts at `grad` here",
        ),
    ],
)
def test_a_modifier_misused_is_refused_at_the_with_line(
    tmp_path, with_, modifiers, expected
):
    dirs = _dirs(tmp_path, **modifiers)
    errors = _errors(BASE.format(**{"with": with_}), dirs)
    assert expected in errors, errors


@pytest.mark.parametrize("point", ["grad u", "group u", "param u"])
def test_a_point_every_update_has_is_not_exposed(tmp_path, point):
    text = BASE.format(**{"with": ""}).replace(
        "    expose direction u, grad\n", f"    expose {point}\n"
    )
    name = point.split()[0]
    want = (
        f"E408 `{name}` is a point every per-parameter update has: it is not exposed @6"
    )
    assert want in _errors(text, _dirs(tmp_path)), _errors(text, _dirs(tmp_path))


def test_a_modifier_is_taken_with_with_not_used(tmp_path):
    dirs = _dirs(tmp_path, double=DOUBLE)
    text = BASE.format(**{"with": ""}).replace(
        "    u <- grad\n", "    u <- grad\n    use double\n"
    )
    errors = _errors(text, dirs)
    assert any(e.startswith("E403 `double` is a modifier") for e in errors), errors


def test_a_modifier_without_a_point_is_refused(tmp_path):
    dirs = _dirs(tmp_path, empty='modifier empty\ninput x: float = 1.0 "nothing"\n')
    errors = _errors(BASE.format(**{"with": ""}), dirs)
    assert any(e.startswith("E404 a modifier acts at a point") for e in errors), errors


def test_an_error_in_a_spliced_line_names_the_modifiers_file(tmp_path):
    dirs = _dirs(
        tmp_path, broken="modifier broken\nat direction v, gr:\n    v <- v * missing\n"
    )
    try:
        check_text(BASE.format(**{"with": "with broken\n"}), fragment_dirs=dirs)
    except SpecError as e:
        spans = [(d.code, Path(d.span.path).name, d.span.line) for d in e.diagnostics]
        assert ("E306", "broken.frag", 3) in spans, spans
    else:
        pytest.fail("an undefined name in a spliced line was accepted")


# (optimizer, option, the modifier file its refusal names): each option's whole-tensor read
# refuses shards under that option alone, whatever the others
SHARD_REFUSALS = [
    ("lion", "Lion", "cautious", "cautious"),
    ("lion", "Lion", "adanorm", "adanorm"),
    ("lion", "Lion", "use_gc", "gradient_centralization"),
    ("adopt", "ADOPT", "cautious", "cautious"),
    ("adopt", "ADOPT", "stable_adamw", "stable_adamw"),
]


@pytest.mark.parametrize("module,name,option,modifier", SHARD_REFUSALS)
def test_a_whole_tensor_read_a_modifier_adds_refuses_shards_only_with_its_option(
    monkeypatch, module, name, option, modifier
):
    # (cautious sums its mask over the whole tensor, adanorm takes the gradient's norm,
    # gradient centralization each channel's mean: a shard would compute them on itself;
    # without the options the update is elementwise and steps on FSDP2's shards)
    import importlib

    mod = importlib.import_module(f"generated.{module}")
    cls = getattr(mod, name)
    monkeypatch.setattr(mod, "_is_sharded", lambda p: True)
    assert torch.equal(_step(cls), _step(cls, **{option: False}))
    with pytest.raises(
        ValueError, match=rf"specs/fragments/{modifier}\.frag:\d+\)"
    ) as refused:
        p = torch.ones(3, 2, dtype=torch.float64, requires_grad=True)
        opt = cls([p], **{option: True})
        p.grad = torch.full_like(p, 0.5)
        opt.step()
    assert "whole tensor" in str(refused.value)


def test_gradient_centralization_refuses_complex_parameters_only_with_use_gc():
    from generated import Lion

    p = torch.ones(3, 2, dtype=torch.complex128, requires_grad=True)
    p.grad = torch.full_like(p, 0.5)
    Lion([p]).step()  # (a real view, as the reference steps it)
    with pytest.raises(ValueError, match=r"use_gc=True\) does not support complex"):
        Lion([p], use_gc=True).step()


def test_mean_except_leaves_what_has_no_other_dimension():
    # (an empty `dim=()` would mean over everything: a vector's centralized gradient is 0)
    from generator.runtime.linalg import mean_except

    v = torch.arange(4.0)
    assert mean_except(v, 0) is v
    x = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(mean_except(x, 0), x.mean(dim=(1, 2), keepdim=True))
    assert torch.equal(mean_except(x, 1), x.mean(dim=(0, 2), keepdim=True))


# -- variants: `optimizer NAME from BASE` -----------------------------------------------------------

ALWAYS_CAUTIOUS = (
    "optimizer MyCLion from Lion\n"
    'summary "Lion, cautious."\n'
    'input cautious: bool = true, fixed "always on"\n'
)


def test_a_variant_is_its_base_with_an_input_fixed():
    src = compile_text(ALWAYS_CAUTIOUS)
    assert "class MyCLion(Optimizer)" in src
    assert "cautious: bool" not in src.split("def __init__")[1].split(") -> None")[0]
    variant = load_spec(ALWAYS_CAUTIOUS)
    from generated import Lion

    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(5)]
    runs = []
    for make in (
        lambda p: variant(p, lr=1e-2),
        lambda p: Lion(p, lr=1e-2, cautious=True),
    ):
        p = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
        opt = make([p])
        for g in grads:
            p.grad = g.clone()
            opt.step()
        runs.append(p.detach())
    assert torch.equal(*runs), "the variant is not its base with cautious on"


def test_a_variant_takes_more_modifiers_after_its_bases(tmp_path):
    dirs = _dirs(tmp_path, double=DOUBLE)
    text = "optimizer DoubleLion from Lion\nwith double\n"
    src = compile_text(text, fragment_dirs=dirs)
    assert "factor: float = 2.0" in src and "cautious: bool = False" in src


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "optimizer X from Nothing\n",
            "E409 no optimizer named `Nothing` to derive `X` from",
        ),
        ("optimizer X from X\n", "E409 `X` is a variant of itself"),
        (
            "optimizer X from Lion\nstate s (s) <- 0\n",
            "E409 a variant takes its base's update: `X` cannot declare states",
        ),
        (
            "optimizer X from Lion\nupdate:\n    param <- param - grad\n",
            "E409 a variant takes its base's update: `X` cannot declare an update",
        ),
        (
            "optimizer X from Lion\nwith cautious\n",
            "E403 modifier `cautious` is taken twice",
        ),
    ],
)
def test_a_variant_misused_is_refused(text, expected):
    errors = [e.split(" @")[0] for e in _errors(text, None)]
    assert expected in errors, errors


TWO_PASSES = (
    "optimizer TwoPasses\ninput lr: float = 0.1\n{with}"
    "state optimizer total: total <- 0\n"
    "update group:\n    a <- lr\n"
    "update:\n    total <- total + sum(grad) * a\n"
    "update group:\n    b <- lr\n"
    "update:\n    param <- param - b * grad\n"
)
MARK = (
    "modifier mark\nstate group marks (marks): count <- 0\n"
    "at group:\n    marks <- marks + 1\n"
    "at param p:\n    p <- p * 2\n"
)


def test_a_modifier_acts_once_per_step_in_an_update_of_two_passes(tmp_path):
    # (at `group`: in the group block before the first pass, not in every one; at `param`:
    # after the last pass, not after each)
    dirs = _dirs(tmp_path, mark=MARK)
    cls = load_spec(TWO_PASSES.format(**{"with": "with mark\n"}), fragment_dirs=dirs)
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = cls([p])
    p.grad = torch.full_like(p, 0.5)
    opt.step()
    assert opt.param_groups[0]["marks"] == 1, opt.param_groups[0]["marks"]
    want = torch.full((3,), (1 - 0.1 * 0.5) * 2, dtype=torch.float64)
    assert torch.equal(p.detach(), want), p
