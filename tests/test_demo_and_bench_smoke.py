"""Smoke tests keeping `optimgen demo` and `optimgen bench` alive: each runs end to
end on a tiny problem through its `add_arguments`/`run` pair, exits 0 and prints its
table."""

import argparse
import json

import pytest

pytest.importorskip("torch")

import generated  # noqa: E402
from generator.commands import bench
from generator.commands import demo  # noqa: E402


def _run(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def test_demo_quick(capsys):
    assert _run(demo, ["--quick", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "final loss (generated) | final loss (torch)" in out
    assert "max |Δparam|" in out
    assert "ERROR" not in out


def test_bench_tiny(capsys, tmp_path):
    report = tmp_path / "bench.json"
    argv = ["--size", "tiny", "--steps", "2", "--warmup", "1", "--no-progress"]
    assert _run(bench, argv + ["--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "generated median ms | reference median ms | ratio (gen/ref)" in out
    assert "geometric-mean ratio" in out
    results = json.loads(report.read_text())["results"]
    # fused only where torch has a fused kernel to compare with (RMSprop has none)
    expected = sum(
        1
        for name in bench.TWINS
        for impl in bench.IMPLS
        if impl != "fused" or bench.has_fused(getattr(generated, name))
    )
    assert len(results) == expected, [(r["optimizer"], r["impl"]) for r in results]
    assert all(len(r["generated_s"]) == 2 and r["ratio"] > 0 for r in results)
    assert "gen step peak MiB | ref step peak MiB" in out
    # the foreach paths keep a list of temporaries; the bytes come from torch's profiler
    adam = next(
        r for r in results if (r["optimizer"], r["impl"]) == ("Adam", "foreach")
    )
    assert adam["peak_step_bytes"]["torch"] > 0, adam["peak_step_bytes"]
    assert adam["peak_step_bytes"]["generated"] > 0, adam["peak_step_bytes"]


def test_bench_a_paper_optimizer_against_pytorch_optimizer(capsys, tmp_path):
    """A generated optimizer from a paper is timed beside pytorch_optimizer's class of the
    same name, on the paths it has (AggMo: for-loop and foreach; Shampoo: the for-loop).
    """
    pytest.importorskip("pytorch_optimizer")
    report = tmp_path / "bench.json"
    argv = ["--size", "tiny", "--steps", "2", "--warmup", "1", "--no-progress"]
    argv += ["--optimizers", "AggMo,Shampoo,Adam", "--json", str(report)]
    assert _run(bench, argv) == 0
    out = capsys.readouterr().out
    assert "pytorch_optimizer's for AggMo, Shampoo" in out
    results = json.loads(report.read_text())["results"]
    aggmo = [r for r in results if r["optimizer"] == "AggMo"]
    assert sorted(r["impl"] for r in aggmo) == ["for-loop", "foreach"]
    # the same defaults and gradients on both sides: the same parameters after the steps
    assert all(r["max_abs_param_diff"] == 0 for r in aggmo), aggmo
    shampoo = [r for r in results if r["optimizer"] == "Shampoo"]
    assert [r["impl"] for r in shampoo] == ["for-loop"], shampoo
    assert shampoo[0]["max_abs_param_diff"] == 0, shampoo


def test_bench_gives_each_step_its_gradient_afresh(capsys, tmp_path):
    """pytorch_optimizer's Lion changes p.grad in place with maximize (and gradient
    centralization): given its own leftovers at the next step it would part from the generated
    class, which leaves p.grad alone; the bench restores the gradient before each step.
    """
    pytest.importorskip("pytorch_optimizer")
    report = tmp_path / "bench.json"
    argv = ["--size", "tiny", "--steps", "3", "--warmup", "1", "--no-progress"]
    argv += ["--optimizers", "Lion", "--impl", "for-loop", "--json", str(report)]
    argv += ["--options", "maximize=True,use_gc=True"]
    assert _run(bench, argv) == 0
    (lion,) = json.loads(report.read_text())["results"]
    assert lion["max_abs_param_diff"] == 0, lion


def test_bench_names_what_it_cannot_compare(capsys):
    assert _run(bench, ["--optimizers", "NoSuchOptimizer", "--no-progress"]) == 2
    assert "unknown optimizer 'NoSuchOptimizer'" in capsys.readouterr().err


def test_bench_gives_both_sides_the_options_of_the_run(capsys, tmp_path):
    """`--options` reaches the generated class and the reference alike (the same parameters
    after the steps), and the table's header says which were used."""
    pytest.importorskip("pytorch_optimizer")
    report = tmp_path / "bench.json"
    argv = ["--size", "tiny", "--steps", "2", "--warmup", "1", "--no-progress"]
    argv += ["--optimizers", "ScalableShampoo", "--impl", "for-loop"]
    options = (
        "start_preconditioning_step=1, preconditioning_compute_steps=1, block_size=32"
    )
    argv += ["--options", options]
    assert _run(bench, argv + ["--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert f"ScalableShampoo {options}" in out
    (result,) = json.loads(report.read_text())["results"]
    assert result["kwargs"] == {
        "start_preconditioning_step": 1,
        "preconditioning_compute_steps": 1,
        "block_size": 32,
    }
    # (its power iterations draw from torch's generator: seeded alike before each step)
    assert result["max_abs_param_diff"] == 0, result


@pytest.mark.parametrize(
    "options,words",
    [
        ("lr=__import__('os')", "not a Python literal"),
        ("0.1", "not bare values"),
        ("lr=", "name=value pairs"),
    ],
)
def test_bench_refuses_options_that_are_not_literals(capsys, options, words):
    argv = ["--optimizers", "Adam", "--options", options, "--no-progress"]
    assert _run(bench, argv) == 2
    assert words in capsys.readouterr().err


def test_bench_times_a_fused_path_against_the_classs_own_foreach_path(capsys, tmp_path):
    # (--baseline own-foreach: any generated optimizer, BertAdamW has no reference class
    # the bench knows; the machine is named in the output and the JSON)
    report = tmp_path / "bench.json"
    argv = ["--size", "tiny", "--steps", "2", "--warmup", "1", "--no-progress"]
    argv += ["--optimizers", "BertAdamW,Lion", "--impl", "fused,foreach"]
    argv += ["--baseline", "own-foreach", "--json", str(report)]
    assert _run(bench, argv) == 0
    out = capsys.readouterr().out
    assert "reference: the generated class's own foreach path" in out
    assert "\nmachine: " in out and "logical CPUs" in out
    payload = json.loads(report.read_text())
    assert payload["environment"]["baseline"] == "own-foreach"
    results = {(r["optimizer"], r["impl"]): r for r in payload["results"]}
    assert set(results) == {
        (n, i) for n in ("BertAdamW", "Lion") for i in ("fused", "foreach")
    }
    # the foreach row is the class against itself: the same parameters
    assert results["Lion", "foreach"]["max_abs_param_diff"] == 0
    assert results["BertAdamW", "foreach"]["max_abs_param_diff"] == 0
    assert _run(bench, ["--optimizers", "BertAdamW", "--no-progress"]) == 2
