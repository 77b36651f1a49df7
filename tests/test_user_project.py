"""The user's way, end to end: optimgen built as a wheel and pip-installed (not editable) into a
fresh virtual environment, then used from an empty folder outside this repository — init, new
(the template and `--from Adam`), build, import, verify, train a few steps — with the installed
`generated` package complete afterwards and site-packages byte-for-byte unchanged.

The fresh environment gets torch and the other dependencies from this one (a .pth line; Python
does not run the .pth files of a folder added that way, so this checkout's editable install stays
out of it) and optimgen itself from the wheel alone. The session's transcript is written to
``$OPTIMGEN_TRANSCRIPT`` when that is set (the README's "your own project" is this session).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "generator", "generated", "specs")

TRAIN = """\
import torch
import generated
import optimizers
from optimizers import MyAdam, MySGD, MyMomentum

torch.manual_seed(0)
for cls, kwargs in ((MySGD, dict(lr=0.05)), (MyMomentum, dict(lr=0.05)), (MyAdam, dict(lr=0.05))):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = cls(model.parameters(), **kwargs)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    first = None
    for step in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    print(f"{cls.__name__}: loss {first:.4f} -> {loss.item():.4f}")
    assert loss.item() < first

# MyAdam is Adam renamed: bit-identical to torch.optim.Adam
a, b = torch.randn(5, 3, requires_grad=True), None
b = a.detach().clone().requires_grad_(True)
mine, theirs = MyAdam([a], lr=0.1, weight_decay=0.01), torch.optim.Adam([b], lr=0.1, weight_decay=0.01)
for _ in range(20):
    g = torch.randn(5, 3)
    a.grad, b.grad = g.clone(), g.clone()
    mine.step(), theirs.step()
assert torch.equal(a, b)
print("MyAdam == torch.optim.Adam after 20 steps: bit-identical")
print(f"optimizers exports {optimizers.__all__}")
print(f"generated still exports {len(generated.__all__)} optimizers from {Path(generated.__file__).parent}")
"""


def _listing(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its sha256."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class Session:
    """Commands run in the user's folder, with the fresh environment's executables first on PATH;
    each is recorded as a transcript line and its output."""

    def __init__(self, work: Path, venv: Path, env: dict[str, str]):
        self.work, self.venv, self.env = work, venv, env
        self.lines: list[str] = []

    def __call__(
        self, *argv: str, expect: int = 0, stdin: str | None = None, keep: int = 40
    ):
        shown = " ".join(argv) if stdin is None else f"{' '.join(argv)} <<EOF ... EOF"
        run = subprocess.run(
            argv,
            cwd=self.work,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = (run.stdout + run.stderr).rstrip()
        lines = output.splitlines()
        self.lines += [f"$ {shown}", *lines[:keep]]
        if len(lines) > keep:
            self.lines.append(f"... ({len(lines) - keep} more lines)")
        if run.returncode != 0:
            self.lines.append(f"(exit {run.returncode})")
        assert (
            run.returncode == expect
        ), f"`{shown}` exited {run.returncode}, expected {expect}:\n{output}"
        return output


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel of this checkout, pip-installed into a fresh virtual environment."""
    base = tmp_path_factory.mktemp("user")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(
                item, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.tmp")
            )
        else:
            shutil.copy2(item, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    dist = base / "dist"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, src],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("optimgen-*.whl")
    venv = base / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", venv],
        check=True,
        capture_output=True,
    )
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    deps = Path(torch.__file__).resolve().parents[1]
    (site / "dependencies.pth").write_text(f"{deps}\n")
    subprocess.run(
        [*pip, "--python", python, "install", "--no-deps", "--no-index", wheel],
        check=True,
        capture_output=True,
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "OPTIMGEN"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["OPTIMGEN_CACHE_DIR"] = str(base / "cache")
    return venv, site, wheel, env, base


def test_a_user_session_in_their_own_folder_never_touches_site_packages(installed):
    venv, site, wheel, env, base = installed
    assert sysconfig.get_paths()["purelib"] != str(site)
    work = base / "my-project"
    work.mkdir()
    before = _listing(site)
    run = Session(work, venv, env)

    where = run(
        "python", "-c", "import generator, generated; print(generator.__file__)"
    )
    assert where.startswith(str(site)), f"optimgen is not the wheel's: {where}"
    out = run("optimgen", "build", expect=1)
    assert "no optimgen project" in out and "optimgen init" in out
    assert list(work.iterdir()) == []
    run("optimgen", "init")
    run("optimgen", "new", "MyAdam", "--from", "Adam")
    run("optimgen", "new", "MyMomentum")
    out = run("optimgen", "build")
    assert (
        "wrote optimizers/my_adam.py" in out and "wrote optimizers/__init__.py" in out
    )
    head = (work / "optimizers" / "my_adam.py").read_text().splitlines()[0]
    assert head.startswith("# Generated by optimgen from specs/my_adam.optim "), head
    imports = {
        line.split()[1]
        for p in (work / "optimizers").glob("*.py")
        for line in p.read_text().splitlines()
        if line.startswith(("import ", "from ")) and not line.startswith("from .")
    }
    assert imports <= {
        "torch",
        "torch.optim.optimizer",
        "generator.runtime.precision",  # generator's runtime modules
        "generator.runtime.kernels",
        "generator.runtime.native",
        "typing",
        "functools",
        "math",
    }, imports
    run("optimgen", "check")
    out = run("optimgen", "verify", "MySGD", "--against", "torch.optim.SGD")
    assert "0 failed" in out
    out = run(
        "optimgen",
        "verify",
        "MyAdam",
        "--against",
        "torch.optim.Adam",
        "--steps",
        "10",
        "--impl",
        "for-loop,foreach",
        "--dtype",
        "float64",
    )
    assert "0 failed" in out
    out = run("python", "-", stdin="from pathlib import Path\n" + TRAIN)
    # (the installed standard library exports what the checkout's does: one class per spec)
    standard = len(list((ROOT / "specs").glob("*.optim")))
    assert "bit-identical" in out and f"generated still exports {standard}" in out
    assert str(site) in out
    out = run(
        "optimgen",
        "train",
        "--optimizer",
        "MyAdam",
        "--epochs",
        "2",
        "--policies",
        "float32,bf16-kahan",
        "--lr",
        "1e-3",
        keep=12,
    )
    assert "MyAdam(lr=0.001)" in out and "bf16-kahan" in out
    out = run("optimgen", "show", "Adam", keep=3)
    assert out.startswith("# Generated by optimgen from specs/adam.optim")
    out = run("optimgen", "build", "--out", str(site / "generated"), expect=1)
    assert "where installed packages live" in out

    after = _listing(site)
    changed = sorted(
        k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
    )
    assert not changed, f"site-packages changed: {changed[:10]}"
    listing = hashlib.sha256(repr(sorted(after.items())).encode()).hexdigest()[:16]
    run.lines.append(
        f"# site-packages: {len(after)} files, the same sha256 of each before and after "
        f"(listing digest {listing})"
    )
    if os.environ.get("OPTIMGEN_TRANSCRIPT"):
        Path(os.environ["OPTIMGEN_TRANSCRIPT"]).write_text("\n".join(run.lines) + "\n")
