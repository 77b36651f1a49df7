"""The spec author's commands: `optimgen new` writes a spec that builds and trains, `optimgen show`
prints the generated code, the algorithm box, the documentation page and the IR, and `optimgen
build` writes a documentation page per spec (checked for staleness like the code)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from generator import load_spec
from generator.commands.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


@pytest.fixture
def spec_dir(tmp_path):
    d = tmp_path / "specs"
    shutil.copytree(SPECS / "fragments", d / "fragments")
    return d


def _quadratic_loss_after(cls, steps=50, **kwargs):
    torch.manual_seed(0)
    target = torch.randn(8)
    w = torch.zeros(8, requires_grad=True)
    opt = cls([w], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((w - target) ** 2).sum()
        loss.backward()
        opt.step()
    return ((w - target) ** 2).sum().item(), (target**2).sum().item()


def test_new_writes_a_commented_template_that_builds_and_trains(spec_dir, capsys):
    assert main(["new", "MyMomentum", "--spec-dir", str(spec_dir)]) == 0
    path = spec_dir / "my_momentum.optim"
    text = path.read_text()
    assert text.count("\n#") >= 5, "the template explains itself in comments"
    cls = load_spec(path)
    assert cls.__name__ == "MyMomentum"
    end, start = _quadratic_loss_after(cls, steps=200, lr=0.05)
    assert end < 1e-3 * start, f"loss {start:.3g} -> {end:.3g}"
    assert "wrote" in capsys.readouterr().out


def test_new_from_an_existing_spec_renames_it(spec_dir):
    assert (
        main(
            [
                "new",
                "MyAdam",
                "--from",
                str(SPECS / "adam.optim"),
                "--spec-dir",
                str(spec_dir),
            ]
        )
        == 0
    )
    cls = load_spec(spec_dir / "my_adam.optim")
    assert cls.__name__ == "MyAdam"
    ours, _ = _quadratic_loss_after(cls, lr=0.1)
    theirs, _ = _quadratic_loss_after(torch.optim.Adam, lr=0.1)
    assert ours == theirs


@pytest.mark.parametrize(
    "argv, message",
    [
        (["new", "lowercase"], "not a class name"),
        (["new", "X", "--from", "no/such.optim"], "no spec `no/such.optim`"),
    ],
)
def test_new_refuses_bad_input_and_writes_nothing(spec_dir, capsys, argv, message):
    assert main(argv + ["--spec-dir", str(spec_dir)]) == 1
    assert message in capsys.readouterr().err
    assert not list(spec_dir.glob("*.optim"))


def test_new_never_overwrites_a_spec(spec_dir, capsys):
    path = spec_dir / "my_momentum.optim"
    path.write_text("# mine\n")
    assert main(["new", "MyMomentum", "--spec-dir", str(spec_dir)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert path.read_text() == "# mine\n"


def test_new_from_a_spec_that_does_not_build_writes_nothing(spec_dir, tmp_path, capsys):
    bad = tmp_path / "bad.optim"
    bad.write_text(
        "optimizer Bad\ninput lr: float = 0.1\nupdate:\n    param <- param - lr * gard\n"
    )
    assert main(["new", "Good", "--from", str(bad), "--spec-dir", str(spec_dir)]) == 1
    err = capsys.readouterr().err
    assert "good.optim:4:27: error: undefined name `gard`" in err
    assert not (spec_dir / "good.optim").exists()


def test_show_python_is_the_generated_module(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the header names the spec as the build does
    assert main(["show", "specs/adam.optim"]) == 0
    assert capsys.readouterr().out == (ROOT / "generated" / "adam.py").read_text()


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("latex", [r"\begin{aligned}", r"\textbf{for} \: t=1", r"\leftarrow"]),
        (
            "markdown",
            ["# Prodigy", "## Arguments", "| `d0` | `1e-6` |", "## State", "4 ×"],
        ),
        (
            "ir",
            [
                "per parameter, pass 1",
                "per parameter, pass 2",
                "InPlace(",
                "once per group",
            ],
        ),
    ],
)
def test_show_prints_each_format(capsys, fmt, expected):
    assert main(["show", str(SPECS / "prodigy.optim"), "--format", fmt]) == 0
    out = capsys.readouterr().out
    missing = [e for e in expected if e not in out]
    assert not missing, f"--format {fmt} lacks {missing}:\n{out[:2000]}"


def test_show_diff_prints_a_variant_against_its_base(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["show", "CLion", "--diff"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["--- Lion (specs/lion.optim)", "+++ CLion (specs/clion.optim)"]
    changed = [line for line in out[2:] if line[:1] in "+-"]
    # the option fixed on: gone from the signature, always True in the defaults
    assert "-        cautious: bool = False," in changed
    assert '+            "cautious": True,' in changed
    # the base's code under the variant's names is no difference
    assert not any("def _single_tensor" in line for line in changed), changed
    assert main(["show", "CLion", "--diff", "--format", "latex"]) == 0
    assert r"\textit{cautious} \text{ (cautious)}" in capsys.readouterr().out
    assert main(["show", "Lion", "--diff"]) == 1
    assert "Lion is no variant" in capsys.readouterr().err


def test_show_of_a_bad_spec_is_a_diagnostic_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.optim"
    bad.write_text("optimizer Bad\nupdate:\n    param <- param - lr * grad\n")
    assert main(["show", str(bad), "--format", "markdown"]) == 1
    err = capsys.readouterr().err
    assert "bad.optim:3:22: error: undefined name `lr`" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["new", "show", "build", "check", "bench", "demo"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: optimgen " + command in capsys.readouterr().out


def test_build_writes_a_documentation_page_per_spec_and_check_sees_it_stale(
    tmp_path, capsys
):
    out = tmp_path / "gen"
    argv = ["--out", str(out), "--spec-dir", str(SPECS)]
    assert main(["build", *argv]) == 0
    pages = sorted(p.stem for p in (out / "docs").glob("*.md"))
    modules = sorted(p.stem for p in out.glob("*.py") if p.stem != "__init__")
    # (one page per spec, the catalogue, and the language reference)
    assert pages == sorted(modules + ["README", "language"])
    lion = (out / "docs" / "lion.md").read_text()
    assert "| `betas` | `(0.9, 0.99)` |" in lion
    assert "arxiv.org/abs/2302.06675" in lion
    assert main(["check", *argv]) == 0
    (out / "docs" / "lion.md").write_text(lion + "edited\n")
    capsys.readouterr()
    assert main(["check", *argv]) == 1
    assert "lion.md: stale" in capsys.readouterr().err
    (out / "docs" / "lion.md").write_text(lion)
    (out / "docs" / "language.md").write_text("edited\n")
    assert main(["check", *argv]) == 1
    assert "language.md: stale" in capsys.readouterr().err


def test_committed_docs_are_the_build_output(monkeypatch):
    """generated/docs is part of the committed output: `optimgen check` covers it."""
    monkeypatch.chdir(ROOT)
    assert main(["check"]) == 0
    assert (ROOT / "generated" / "docs" / "README.md").is_file()


def test_verify_passes_a_twin_and_prints_the_table(capsys):
    argv = ["verify", "specs/adam.optim", "--against", "torch.optim.Adam"]
    argv += ["--steps", "6", "--dtype", "float64", "--impl", "for-loop,foreach"]
    assert main(argv + ["--spec-dir", str(SPECS)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("amsgrad=True "))
    assert row.count("| pass 0e+00") == 2, row
    assert "0 failed" in out and "coverage of the update: 16 of 16 lines ran" in out


def test_verify_names_the_first_step_and_tensor_where_they_part(capsys):
    argv = ["verify", str(SPECS / "adamw.optim"), "--against", "torch.optim.Adam"]
    argv += ["--dtype", "float64", "--impl", "for-loop"]
    assert main(argv + ["--steps", "4", "--spec-dir", str(SPECS)]) == 1
    out = capsys.readouterr().out
    assert "| FAIL" in out
    assert "vs reference: step 1, param #0 (5, 4), element 0:" in out


HAND_WRITTEN = """
import torch


class MySGD(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      maximize=maximize))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                # the bug: the decay pushes away from zero
                g = g - group["weight_decay"] * p
                if group["momentum"]:
                    buf = self.state[p].get("b")
                    buf = torch.zeros_like(p) if buf is None else buf
                    buf.mul_(group["momentum"]).add_(g)
                    self.state[p]["b"] = buf
                    g = buf
                p.add_(g, alpha=-group["lr"])
"""


def test_verify_against_a_hand_written_class_finds_its_bug(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "my_sgd.py").write_text(HAND_WRITTEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["verify", str(SPECS / "sgd.optim"), "--against", "my_sgd.MySGD"]
    argv += ["--dtype", "float64", "--impl", "for-loop"]
    assert main(argv + ["--steps", "5", "--spec-dir", str(SPECS)]) == 1
    out = capsys.readouterr().out
    rows = {
        line.split("|")[0].strip(): line for line in out.splitlines() if "|" in line
    }
    assert "| pass" in rows["defaults"] and "| pass" in rows["maximize=True"]
    # a zero buffer plus the gradient is torch's first buffer: momentum agrees
    assert "| pass" in rows["momentum=0.01"]
    assert "| FAIL" in rows["weight_decay=0.01"]
    assert "step 1, param #0 (5, 4), element 0:" in rows["weight_decay=0.01"]


def test_verify_of_an_unknown_class_is_a_clear_error(capsys):
    assert main(["verify", "specs/adam.optim", "--against", "torch.optim.Nope"]) == 1
    assert "`torch.optim` has no class `Nope`" in capsys.readouterr().err


def _distinct_colours(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return len(im.convert("RGB").getcolors(maxcolors=1 << 24))


def test_plot_writes_a_png_of_trajectories_and_losses(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "rosenbrock.png"
    argv = ["plot", "Adam:lr=0.05", "torch.optim.SGD:lr=0.001,momentum=0.9"]
    argv += [str(SPECS / "lion.optim") + ":lr=0.01,betas=(0.9,0.99)"]
    assert main(argv + ["--steps", "60", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        _distinct_colours(out) > 200
    ), "a contour plot and three paths, not a blank image"
    text = capsys.readouterr().out
    assert "Lion lr=0.01 betas=(0.9, 0.99): loss 12.5 ->" in text


def test_plot_writes_an_animated_gif(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    out = tmp_path / "pathological.gif"
    argv = ["plot", "SGD:lr=0.1,momentum=0.9", "RMSprop:lr=0.05", "--function"]
    assert (
        main(
            argv + ["pathological", "--steps", "20", "--frames", "5", "--out", str(out)]
        )
        == 0
    )
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == 5


@pytest.mark.parametrize(
    "optimizer, message",
    [
        ("Adam:lr=oops", "is not a Python literal"),
        ("Adam:lr", "is not key=value"),
        ("NoSuchOptimizer", "no optimizer class `NoSuchOptimizer`"),
        ("Adam:lr=-1.0", "Invalid learning rate"),
    ],
)
def test_plot_refuses_bad_optimizers_in_the_users_terms(
    tmp_path, capsys, optimizer, message
):
    pytest.importorskip("matplotlib")
    out = tmp_path / "x.png"
    assert main(["plot", optimizer, "--steps", "3", "--out", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    assert main(["plot", "Adam", "--out", str(tmp_path / "x.png")]) == 1
    assert "pip install 'optimgen[plot]'" in capsys.readouterr().err


def test_an_interrupted_build_leaves_the_output_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "gen"
    argv = ["build", "--out", str(out), "--spec-dir", str(SPECS)]
    assert main(argv) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for p in list(before)[:5]:  # make five files stale, so that a build rewrites them
        p.write_bytes(b"# stale\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = {"n": 0}
    real = Path.write_text

    def interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", interrupted)
    assert main(argv) == 130
    monkeypatch.undo()
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before, "a file was changed, or a temporary file left behind"


def test_the_readme_catalogue_is_written_from_the_specs_and_checked(
    tmp_path, capsys, monkeypatch
):
    """Between its two markers the project README's optimizer table is build output."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.optimgen]\nspecs = "{SPECS.as_posix()}"\nout = "generated"\n'
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "# project\n\n<!-- optimizer catalogue: written by `optimgen build` -->\n"
        "stale table\n<!-- end of the optimizer catalogue -->\n\nprose after\n"
    )
    argv = []
    assert main(["build", *argv]) == 0
    text = readme.read_text()
    assert "stale table" not in text and text.endswith("prose after\n")
    row = next(line for line in text.splitlines() if line.startswith("| [`Prodigy`]"))
    assert "arxiv.org/abs/2306.06101" in row and "`pytorch_optimizer.Prodigy`" in row
    assert "for-loop, foreach, fused" in row
    assert main(["check", *argv]) == 0
    readme.write_text(text.replace("| [`Prodigy`]", "| [`Prodigy2`]"))
    capsys.readouterr()
    assert main(["check", *argv]) == 1
    assert "README.md: stale" in capsys.readouterr().err


def test_plot_gives_a_closure_to_an_optimizer_whose_step_needs_one(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "q.png"
    assert (
        main(
            ["plot", "LBFGS:lr=0.5", "--function", "quadratic", "--steps", "20"]
            + ["--out", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    final = float(text.split("LBFGS lr=0.5: loss 64.25 -> ")[1].split(",")[0])
    assert final < 1e-6, text
