"""Every diagnostic kind, pinned as the exact text a spec author sees (golden files).

Each ``tests/diagnostics/<CODE>_<what>.optim`` is a bad spec; ``<same>.expected`` is what optimgen
prints for it. Regenerate after an intended change with ``make golden`` (review the diff!).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from generator import driver
from generator.commands.cli import main
from generator.language.diagnostics import SpecError

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted((ROOT / "tests" / "diagnostics").glob("*.optim"))
FRAGMENTS = sorted((ROOT / "specs" / "fragments").glob("*.frag"))
UPDATE = os.environ.get("OPTIMGEN_UPDATE_GOLDEN") == "1"


def _render(path: Path) -> str:
    cwd = os.getcwd()
    os.chdir(ROOT)  # paths in messages are shown relative to the project
    try:
        driver.check_all([path], FRAGMENTS)
    except SpecError as exc:
        return exc.render() + "\n"
    finally:
        os.chdir(cwd)
    return "(no error)\n"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_diagnostic_matches_golden_text(case):
    got = _render(case)
    expected_path = case.with_suffix(".expected")
    if UPDATE:
        expected_path.write_text(got, encoding="utf-8")
    assert expected_path.exists(), f"no golden file for {case.name}: run `make golden`"
    assert got == expected_path.read_text(
        encoding="utf-8"
    ), f"diagnostics for {case.name} changed; if intended, run `make golden`.\n{got}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_diagnostic_names_file_line_column_and_its_code(case):
    got = _render(case)
    code = case.stem.split("_", 1)[0]
    assert f"[{code}]" in got, f"{case.name} should report {code}:\n{got}"
    first = got.splitlines()[0]
    assert re.match(r"tests/diagnostics/\S+\.optim:\d+:\d+: error: ", first), first
    assert "Traceback" not in got
    # Lark's internal terminal names never reach the author.
    assert not re.search(
        r"\b(_NL|_INDENT|_DEDENT|NAME|COMP_OP|ADD_OP|MUL_OP|\$END)\b", got
    ), got


def test_all_errors_of_a_file_are_reported_at_once():
    got = _render(ROOT / "tests" / "diagnostics" / "E317_assign_input_and_grad.optim")
    assert got.count(": error: ") == 2


def test_did_you_mean_for_a_misspelt_fragment(tmp_path):
    spec = tmp_path / "x.optim"
    spec.write_text(
        "optimizer X\ninput lr: float = 0.1\ninput maximize: bool = false\n"
        "update:\n    use maximise\n    param <- param - lr * g\n"
    )
    with pytest.raises(SpecError) as info:
        driver.check_all([spec], FRAGMENTS)
    assert "did you mean `maximize`?" in info.value.render()


def test_cli_exit_status_and_stderr_for_a_bad_spec(tmp_path, capsys):
    spec = tmp_path / "bad.optim"
    spec.write_text("optimizer Bad\nupdate:\n    param <- param * gard\n")
    assert main(["build", str(spec), "--out", str(tmp_path / "gen")]) == 1
    err = capsys.readouterr().err
    assert "bad.optim:3:22: error: undefined name `gard`" in err
    assert "    |                      ^^^^" in err
    assert "hint: did you mean `grad`?" in err
    assert not (tmp_path / "gen").exists()


# ---- the catalogue: every code with a wrong spec, what optimgen says, and the right spec ----------

CATALOGUE = ROOT / "tests" / "diagnostics" / "README.md"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_every_diagnostic_has_a_right_example_that_builds(case):
    fixed = case.with_suffix(".fixed")
    assert fixed.exists(), f"{case.name} has no right example ({fixed.name})"
    try:
        driver.check_all([fixed], FRAGMENTS)
    except SpecError as exc:
        pytest.fail(f"{fixed.name}, the right example, does not build:\n{exc.render()}")


def _shown(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"(bytes that are not UTF-8: {data[:40]!r}...)"
    if len(text) > 1500 or any(ord(c) < 32 and c not in "\n\t" for c in text):
        return f"(hostile input: {len(text)} characters, {text.count(chr(10))} lines)"
    return text.rstrip("\n")


def render_catalogue() -> str:
    out = [
        "# Diagnostics",
        "",
        "Every error optimgen reports, by code: a spec that triggers it, what optimgen prints,",
        "and the spec fixed. Generated from the cases in this folder by `make golden` (do not",
        "edit); `tests/test_diagnostics.py` checks that each wrong spec prints exactly this and",
        "each right one builds.",
        "",
    ]
    codes = sorted({c.stem.split("_", 1)[0] for c in CASES})
    out.append(f"{len(codes)} codes, {len(CASES)} cases.")
    out.append("")
    for case in CASES:
        code, _, what = case.stem.partition("_")
        out += [f"## {code}: {what.replace('_', ' ')}", ""]
        out += ["Wrong:", "", "```", _shown(case), "```", ""]
        message = case.with_suffix(".expected").read_text(encoding="utf-8").rstrip()
        out += ["optimgen says:", "", "```", message, "```", ""]
        fixed = case.with_suffix(".fixed")
        right = _shown(fixed) if fixed.exists() else "(missing)"
        out += ["Right:", "", "```", right, "```", ""]
    return "\n".join(out)


def test_diagnostic_catalogue_is_current():
    text = render_catalogue()
    if UPDATE:
        CATALOGUE.write_text(text, encoding="utf-8")
    assert (
        CATALOGUE.exists() and CATALOGUE.read_text(encoding="utf-8") == text
    ), "tests/diagnostics/README.md is stale: run `make golden`"
