"""`optimgen verify` finds a bug on the path it is on: every implementation the spec declares runs
against the reference and against the for-loop, over configurations chosen from the spec's own
conditions, with the spec's line coverage; crashes, NaNs and documented refusals are rows of
their own. The bugs here are planted in generated modules (one path at a time) and in specs.
"""

from __future__ import annotations

import linecache
import sys
import types
from pathlib import Path

import pytest

from generator.commands import verify as V
from generator.api import check_text, load_spec
from generator.commands.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _checked(name: str):
    path = ROOT / "specs" / f"{name}.optim"
    return check_text(path.read_bytes(), f"specs/{name}.optim")


def _mutated(module: str, cls: str, old: str, new: str, count: int = 1):
    """generated/<module>.py with ``old`` replaced by ``new`` (once), loaded as a module."""
    source = (ROOT / "generated" / f"{module}.py").read_text()
    assert source.count(old) == count, f"{old!r} occurs {source.count(old)} times"
    source = source.replace(old, new)
    name = f"mutated_{module}_{abs(hash(new))}"
    mod = types.ModuleType(name)
    mod.__file__ = f"<mutated {module}>"
    linecache.cache[mod.__file__] = (
        len(source),
        None,
        source.splitlines(True),
        mod.__file__,
    )
    sys.modules[name] = mod
    exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    return getattr(mod, cls)


def _results(report) -> dict[str, set[str]]:
    """impl → the statuses of its rows."""
    out: dict[str, set[str]] = {}
    for r in report.rows:
        out.setdefault(r.impl, set()).add(r.status)
    return out


ADAM_PATHS = {
    # path → (a line of that path, its bug, the paths that run the line)
    "for-loop": (
        "\n        exp_avg.lerp_(g, 1 - beta1)\n",
        "\n        exp_avg.lerp_(g, 1 - beta1 * 0.999)\n",
        {"for-loop", "differentiable"},  # (differentiable=True runs the for-loop)
    ),
    "foreach": (
        "        torch._foreach_lerp_(device_exp_avgs, device_g, 1 - beta1)\n",
        "        torch._foreach_lerp_(device_exp_avgs, device_g, 1 - beta1 * 0.999)\n",
        {"foreach"},
    ),
    "fused": (  # (on the CPU the fused path runs the native kernel's C++)
        "exp_avg[i] = og_lerp(exp_avg[i], (*g), T((1.0 - beta1)));",
        "exp_avg[i] = og_lerp(exp_avg[i], (*g), T((1.0 - beta1 * 0.999)));",
        {"fused"},
    ),
    "differentiable": (
        "            denom = (\n"
        "                denom.div(bias_correction2_sqrt)\n"
        "                if differentiable\n"
        "                else denom.div_(bias_correction2_sqrt)\n"
        "            )\n"
        "            denom.add_(eps)\n"
        "        if capturable:",
        "            denom = (\n"
        "                denom.div(bias_correction2**0.49)\n"
        "                if differentiable\n"
        "                else denom.div_(bias_correction2_sqrt)\n"
        "            )\n"
        "            denom.add_(eps)\n"
        "        if capturable:",
        {"differentiable"},
    ),
}


@pytest.mark.parametrize("path", list(ADAM_PATHS))
def test_a_bug_planted_in_one_path_fails_that_path_only(path):
    old, new, runs_it = ADAM_PATHS[path]
    broken = _mutated("adam", "Adam", old, new)
    report = V.verify(
        _checked("adam"),
        broken,
        V.reference("torch.optim.Adam"),
        impls=list(V.IMPLS),
        dtypes=["float64"],
        steps=4,
        use_grid=False,
    )
    results = _results(report)
    assert all(results[i] == {"FAIL"} for i in runs_it), results
    assert all(results[i] == {"pass"} for i in V.IMPLS if i not in runs_it), results
    row = next(r for r in report.rows if r.impl == path)
    assert row.why.startswith("vs reference: step 1, param #0 (5, 4)"), row.why


def test_without_a_reference_the_paths_are_held_to_the_for_loop():
    old, new, _ = ADAM_PATHS["foreach"]
    broken = _mutated("adam", "Adam", old, new)
    report = V.verify(
        _checked("adam"),
        broken,
        None,
        impls=list(V.IMPLS),
        dtypes=["float32"],
        steps=3,
        use_grid=False,
    )
    results = _results(report)
    assert results == {
        "for-loop": {"pass"},
        "foreach": {"FAIL"},
        "fused": {"pass"},
        "differentiable": {"pass"},
    }
    row = next(r for r in report.rows if r.impl == "foreach")
    assert "vs for-loop: step 1" in row.why


def test_a_crash_is_a_fail_row_with_the_exception_and_the_step():
    # the foreach path reads a name it never bound, as bug 1 of issue 17 did
    broken = _mutated(
        "adam",
        "Adam",
        "        torch._foreach_lerp_(device_exp_avgs, device_g, 1 - beta1)\n",
        "        torch._foreach_lerp_(device_exp_avgs, device_g_2, 1 - beta1)\n",
    )
    report = V.verify(
        _checked("adam"),
        broken,
        V.reference("torch.optim.Adam"),
        impls=["for-loop", "foreach"],
        dtypes=["float64"],
        steps=3,
        use_grid=False,
    )
    row = next(r for r in report.rows if r.impl == "foreach")
    assert row.status == "FAIL"
    assert row.why.startswith("at step 1: NameError: name 'device_g_2' is not defined")


NAN = """\
optimizer Diverges
input lr: float = 0.1
input foreach: bool? = none
update:
    param <- param - lr * grad / (grad - grad)
"""


def test_nan_or_inf_without_a_reference_fails(tmp_path, capsys):
    spec = tmp_path / "diverges.optim"
    spec.write_text(NAN)
    assert main(["verify", str(spec), "--dtype", "float64", "--no-grid"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "step 1, param #0 (5, 4): NaN or inf" in out


def test_a_refusal_the_spec_documents_is_its_own_row(capsys):
    argv = ["verify", "Adam", "--against", "torch.optim.Adam", "--no-grid"]
    argv += ["--config", "lr=-1.0", "--dtype", "float64", "--impl", "for-loop,foreach"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("lr=-1.0 "))
    assert "skipped" in row and "Invalid learning rate: -1.0" in row, row
    argv = ["verify", "Adam", "--no-grid", "--config", "lr=-1.0", "--dtype", "float64"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("lr=-1.0 "))
    assert row.count("refused") == 4, row  # for-loop, foreach, fused, differentiable
    assert (
        "as the spec says at construction: ValueError: Invalid learning rate: -1.0"
        in row
    )
    assert "1 refused as the spec says" in out


def test_a_reference_may_be_any_callable_that_returns_an_optimizer(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "wrappers.py").write_text(
        "import torch\n\n"
        "def adam_twice(params, **kwargs):\n"
        "    # a wrapper: not a class, and it names the optimizer it makes\n"
        "    return torch.optim.Adam(params, **kwargs)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["verify", "Adam", "--against", "wrappers:adam_twice", "--impl", "foreach"]
    assert main(argv + ["--dtype", "float64", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "vs wrappers:adam_twice" in out and "0 failed" in out


PERIODIC = """\
optimizer Periodic
input lr: float = 0.1
input k: int = 500
input warmup: int = 1000
input foreach: bool? = none
state t (step): count <- 0
state m (momentum) <- 0
update:
    t <- t + 1
    if t % k == 0:
        m <- m * 0
    m <- 0.9 * m + grad
    if t % 30 == 0:
        m <- m * 0.5
    scale <- t / warmup if t < warmup else 1.0
    param <- param - lr * scale * m
"""


def test_the_grid_reaches_periodic_resets_warmups_and_literal_periods(tmp_path):
    spec = tmp_path / "periodic.optim"
    spec.write_text(PERIODIC)
    checked = check_text(PERIODIC, str(spec))
    report = V.verify(
        checked,
        load_spec(spec),
        None,
        impls=["for-loop", "foreach"],
        dtypes=["float64"],
        steps=20,
    )
    ran, total, never = V.line_coverage(checked, report.probes, report.hits)
    assert never == [] and ran == total, V.coverage_text(checked, report)
    assert {p.label for p in report.probes} <= report.hits
    labels = {r.config.label: r.config.steps for r in report.rows}
    assert labels["k=2"] >= 31 and labels["defaults"] >= 31, labels  # crosses t % 30
    assert "warmup=4" in labels, labels
    assert report.failed == 0


NESTED_CHOICE = """\
optimizer NestedChoice
input lr: float = 0.1
input weight_decay: float = 0
    requires weight_decay >= 0 else "weight_decay must be non-negative"
input decouple: bool = false
input fixed: bool = false
update:
    g <- grad
    if weight_decay != 0:
        if decouple:
            param <- param * (1 - weight_decay * (1 if fixed else lr))
        else:
            g <- g + weight_decay * param
    param <- param - lr * g
"""


def test_the_grid_reaches_a_conditional_value_inside_nested_branches(tmp_path):
    # `(1 if fixed else lr)` counts only where weight_decay != 0 and decouple: each way of a
    # conditional value is a branch, and a branch inside one a combination reached is tried next
    spec = tmp_path / "nested_choice.optim"
    spec.write_text(NESTED_CHOICE)
    checked = check_text(NESTED_CHOICE, str(spec))
    report = V.verify(
        checked, load_spec(spec), None, impls=["for-loop"], dtypes=["float64"], steps=5
    )
    assert {p.label for p in report.probes} <= report.hits, V.coverage_text(
        checked, report
    )
    reached = [
        dict(r.config.kwargs)
        for r in report.rows
        if dict(r.config.kwargs).get("fixed") and dict(r.config.kwargs).get("decouple")
    ]
    assert reached and all(k.get("weight_decay", 0) != 0 for k in reached), [
        r.config.label for r in report.rows
    ]


UNREACHED = """\
optimizer Unreached
input lr: float = 0.1
update:
    g <- grad
    if item(norm(grad)) > 1e9:
        g <- g * 0
    param <- param - lr * g
"""


def test_coverage_names_the_line_that_never_ran(tmp_path, capsys):
    spec = tmp_path / "unreached.optim"
    spec.write_text(UNREACHED)
    assert main(["verify", str(spec), "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "coverage of the update: 3 of 4 lines ran; 1 of 2 branches taken" in out
    assert (
        "unreached.optim:5: line 6 never ran: it needs `item(norm(grad)) > 1e9` to be "
        "true; the values in the tensors decide it"
    ) in out


def test_coverage_sees_a_shape_read_through_a_local(tmp_path, capsys):
    """`n <- size(param, 0)` then `if n > 100:`: the parameters' shapes decide the branch,
    not the values in the tensors (the hint read the condition's own text only)."""
    spec = tmp_path / "sized.optim"
    spec.write_text(
        UNREACHED.replace("Unreached", "Sized")
        .replace("    g <- grad\n", "    g <- grad\n    n <- size(param, 0)\n")
        .replace("item(norm(grad)) > 1e9", "n > 100")
        .replace("update:\n", 'check not is_complex(param) else "real"\nupdate:\n')
    )
    assert main(["verify", str(spec), "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "it needs `n > 100` to be true; parameter shapes decide it" in out, out


@pytest.mark.parametrize(
    "text, expected",
    [
        ("k=3,lr=0.1", {"k": 3, "lr": 0.1}),
        ("betas=(0.8, 0.9), amsgrad=True", {"betas": (0.8, 0.9), "amsgrad": True}),
        ("mars_type='shampoo'", {"mars_type": "shampoo"}),
    ],
)
def test_a_config_is_python_literals(text, expected):
    assert V.parse_config(text) == expected


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config", "lr"], "`lr` is not NAME=VALUE"),
        (
            ["--config", "lr=__import__('os')"],
            "the value of `lr` is not a Python literal",
        ),
        (["--impl", "fast"], "no implementation `fast`"),
        (["--dtype", "float16"], "`float16` is not one of"),
        (["--against", "torch.optim.Nope"], "`torch.optim` has no class `Nope`"),
        (["--against", "torch.optim:nope"], "`torch.optim` has no callable `nope`"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, argv, message):
    assert main(["verify", "CustomSGD", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_a_path_the_spec_does_not_declare_is_refused(capsys):
    assert main(["verify", "CustomSGD", "--impl", "foreach"]) == 1
    assert (
        "CustomSGD has no foreach path (it declares for-loop)"
        in capsys.readouterr().err
    )
