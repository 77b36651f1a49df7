"""The compiler tested against itself (generator/commands/fuzz.py): random valid specs build, and every path
they declare agrees with their for-loop. The fast slice runs here (the fused kernels uncompiled, a
few compiled); `optimgen fuzz --programs N --seed S` runs any number. Each bug the fuzzer found is
pinned below as the minimized spec it printed."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.commands import fuzz, fuzz_programs
from generator.commands.cli import main
from generator.runtime.kernels import eager_kernels

FAST_SLICE = range(0, 160)


def _fused_programs(count: int) -> list[int]:
    """The first seeds whose programs build with their fused path (the checker keeps it)."""
    seeds = []
    for seed in range(200):
        program = fuzz.draw(seed)[0]
        if program.fused and not fuzz.build(program.text())[1]:
            seeds.append(seed)
            if len(seeds) == count:
                break
    return seeds


COMPILED = _fused_programs(2)  # run through inductor


def _check(program, dtypes=("float64", "float32")):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fuzz.check_program(program, dtypes)


@pytest.mark.parametrize("chunk", range(0, len(FAST_SLICE), 40))
def test_random_valid_specs_build_and_agree_on_every_path(chunk):
    failures = []
    with eager_kernels():
        for seed in FAST_SLICE[chunk : chunk + 40]:
            program, _ = fuzz.draw(seed)
            found, *_ = _check(program)
            failures += [(seed, f) for f in found]
    assert not failures, "\n".join(
        f"seed {seed}: {f.kind} on {f.path} ({f.dtype}): {f.detail}"
        for seed, f in failures
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_programs_hypothesis_draws_build_and_agree_on_every_path(data):
    # the same grammar-directed generator, its choices made by hypothesis: it explores beyond the
    # seeded programs and shrinks a failing one to its fewest choices
    choices = fuzz_programs.Choices(data.draw, st.floats, st.integers, st.sampled_from)
    program, _ = fuzz.draw(-1, rng=choices)
    with eager_kernels():
        found, compared, built, diverged = _check(program)
    # hypothesis shrinks the choices; `optimgen fuzz`'s minimizer shrinks the text further
    assert not found, (
        program.text()
        + "\n"
        + "\n".join(f"{f.kind} on {f.path} ({f.dtype}): {f.detail}" for f in found)
    )
    # (a dtype in which the program's own values overflow has nothing to compare)
    assert compared >= 2 - len(diverged) or not (
        built.foreach or built.fused
    ), program.text()


@pytest.mark.parametrize("seed", COMPILED)
def test_random_valid_specs_with_compiled_kernels(seed):
    program, _ = fuzz.draw(seed)
    assert program.fused
    found, compared, built, _ = _check(program, ("float32",))
    assert built.fused and compared == 2 and not found, found


def test_the_fast_slice_covers_the_language():
    constructs: dict[str, int] = {}
    for seed in FAST_SLICE:
        for k, v in fuzz.draw(seed)[1].items():
            constructs[k] = constructs.get(k, 0) + v
    expected = {
        "tensor state", "state from the parameter", "lazy state", "state under a flag",
        "reduced state", "parameter counter", "group counter", "group value",
        "optimizer counter", "counter set from its own value", "per-parameter number",
        "two passes with a total", "flag branch", "shape branch", "counter branch",
        "flag branch (nested)", "shape branch (nested)", "counter branch (nested)",
        "local set in both branches", "repeat", "whole-tensor reduction",
        "reduction along a dimension", "conditional value", "maximize", "lerp", "where",
        "sign", "atan2", "bias correction", "for loop", "for loop, counting down",
        "procedure call", "list state", "local list",
    }  # fmt: skip
    missing = expected - constructs.keys()
    assert (
        not missing
    ), f"constructs no program of the fast slice has: {sorted(missing)}"


# The programs the fuzzer found failing, minimized (each failed before its fix).
FOUND = {
    "foreach: a reduction's result multiplied in place by a full-size operand": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input foreach: bool? = none
state s0 (s0) <- 0
state s1 (s1) <- param

update:
    s0 <- s1 - mean(grad, -1) * grad / (abs(grad) + 1)
    param <- s0
""",
    "foreach: a local holding a reduction, then grown in place": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input foreach: bool? = none
update:
    r <- mean(grad, -1)
    x <- (r + 1) * grad
    param <- param - 0.01 * x
""",
    "in-place add of a larger operand into a reduction's result": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input foreach: bool? = none
input fused: bool? = none, keyword
state s0 (s0) <- param
update:
    x6 <- grad - mean(grad, -1) * s0 * dot(s0, grad) / (numel(param) + 1)
    s0 <- x6
    param <- param - 0.01 * s0
""",
    "in-place add into a local holding a reduction": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input foreach: bool? = none
input fused: bool? = none, keyword
update:
    if dim(param) > 1:
        x <- mean(grad, -1)
        x <- x + grad
    else:
        x <- grad * 2
    param <- param - 0.01 * x
""",
    "a counter in a lazy state's first value, foreach": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input b0: float = 0.9
input foreach: bool? = none
state s1 (s1) lazy
state t (step): count <- 0
update:
    t <- t + 1
    s1 <- s1 * b0 + grad  initially sqrt(1 - b0^t) * grad
    param <- param - 0.01 * s1
""",
    "a choice in a lazy state's first value": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input f0: bool = false
input foreach: bool? = none
input fused: bool? = none, keyword
state s0 (s0) lazy
update:
    s0 <- s0 * 0.5 + grad  initially (grad if f0 else 2 * grad)
    param <- param - 0.01 * s0
""",
    "the input deciding a state's existence, in a later pass": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input lr: float = 1e-2
input f1: bool = true
input fused: bool? = none, keyword
state s1 (s1) <- 0
state sf (sf) <- 0 if f1
state optimizer tot (tot): total <- 0
update:
    x11 <- grad
    if f1:
        sf <- lerp(sf, grad, 0.5)
        x11 <- sf
    tot <- tot + sum(abs(x11))
    param <- param - lr * grad
update group:
    scale <- 1 / (1 + item(tot) / 100)
update:
    param <- param - lr * scale * clamp(s1 + grad, -1, 1)
""",
    "an optimizer counter read by a later pass": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input lr: float = 3e-3
input foreach: bool? = none
state optimizer c (c): count <- 0
state optimizer tot (tot): total <- 0
update optimizer:
    c <- c + 1
    tot <- 0
update:
    tot <- tot + sum(abs(grad))
update group:
    scale <- 1 / (1 + item(tot) / 100)
update:
    param <- param - lr * scale * clamp(c * grad, -1, 1)
""",
    "a counter read by a lazy state's update while another parameter makes it, foreach": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input foreach: bool? = none
state s0 (s0) lazy
state s1 (s1) lazy
state t (step): count <- 0
update:
    s0 <- s0  initially grad / (abs(grad) + 1)
    s1 <- t * grad  initially exp(-abs(s0))
    param <- s1
""",
    "a choice inside an item's assignment": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input b0: float = 0.5
input f0: bool = false
input nl: int = 2
state s0 (s0) <- 0
state sl (sl) <- [0] * nl
update:
    x8 <- s0
    x9 <- s0
    for j in range(nl):
        sl[j] <- lerp(sl[j], (x8 if f0 else s0) * lerp(x8, grad, 1 - b0), 1 - b0)
        x9 <- x9 + 0.5 * sl[j] / (j + 1)
    s0 <- s0 + grad
    param <- x9
""",
    "a choice inside a list's item": """\
optimizer Fuzz
check not is_complex(param) else "real parameters only"
input f0: bool = true
state s0 (s0) <- 0
update:
    s0 <- s0 + grad
    xl7 <- [(grad if f0 else s0), s0]
    x6 <- xl7[0]
    param <- param - 0.01 * x6
""",
}


@pytest.mark.parametrize("name", list(FOUND))
def test_a_program_the_fuzzer_found(name):
    cls, found = fuzz.build(FOUND[name])
    assert not found, found
    with warnings.catch_warnings(), eager_kernels():
        warnings.simplefilter("ignore")
        found, compared, _ = fuzz.run_paths(cls)
    # (a program with a list runs the for-loop only: it builds and runs to finite numbers)
    assert not found, found
    assert compared >= 2 or "input foreach" not in FOUND[name]


def test_minimizing_keeps_the_failure_and_shrinks_the_program():
    # a stand-in failure: "the program still computes a square root", in the first program
    # from seed 7 on that computes one
    fails = lambda p: "sqrt(" in p.text()  # noqa: E731
    program = next(p for p in (fuzz.draw(s)[0] for s in range(7, 100)) if fails(p))
    small = fuzz.minimize(program, fails)
    assert fails(small) and len(small.text()) < len(program.text()) / 2, small.text()
    # one statement fewer would lose it: nothing left to remove
    assert not any(
        fails(v) and len(v.text()) < len(small.text()) for v in fuzz._variants(small)
    )


def test_the_command_reports_its_figures(capsys):
    assert main(["fuzz", "--programs", "4", "--seed", "20", "--eager-kernels"]) == 0
    out = capsys.readouterr().out
    assert "4 programs (seeds 20..23)" in out and "0 failing" in out
    assert "constructs: " in out
