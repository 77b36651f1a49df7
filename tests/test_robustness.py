"""Hostile and random input: the generator answers with diagnostics, never with a traceback.

Property-based: random bytes, random text over the spec's own alphabet, and valid specs mutated by
deleting, duplicating or swapping pieces. Every outcome must be a module that compiles, or a
SpecError whose diagnostics name a position inside the file.
"""

from __future__ import annotations

from pathlib import Path

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.api import check_text, compile_text
from generator.driver import render_unformatted
from generator.commands.cli import main
from generator.language.diagnostics import SpecError

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.optim"))
SOURCES = [p.read_text(encoding="utf-8") for p in SPECS]
ALPHABET = 'abcdegilmnoprstuvxyz_0123456789 \n    ()<-+-*/^=!<>:,."#?|θγλβ₁←√·²≠≤'
# Thousands of cases in all (450 per property); a case over 10 s counts as a hang.
SETTINGS = settings(
    max_examples=450,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _outcome(data) -> None:
    try:
        # the module unformatted: black is not what is under test, and it is slow
        source = render_unformatted(check_text(data, "specs/fuzz.optim"))
    except SpecError as exc:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        lines = max(1, len(text.splitlines()))
        assert exc.diagnostics, "a SpecError without diagnostics"
        for d in exc.diagnostics:
            assert d.span.path.endswith(".optim") or d.span.path.endswith(".frag")
            if d.span.path.endswith("fuzz.optim"):
                assert 1 <= d.span.line <= lines + 1, d
        rendered = exc.render()
        assert "Traceback" not in rendered
        return
    compile(source, "fuzz.py", "exec")


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_generator(data):
    _outcome(data)


@SETTINGS
@given(st.text(alphabet=ALPHABET, max_size=300))
def test_random_text_never_crashes_the_generator(text):
    _outcome("optimizer Fuzz\n" + text)


@st.composite
def mutated_spec(draw):
    lines = draw(st.sampled_from(SOURCES)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        k = draw(st.integers(0, len(lines) - 1))
        action = draw(
            st.sampled_from(["delete", "duplicate", "swap", "truncate", "insert"])
        )
        if action == "delete":
            del lines[k]
        elif action == "duplicate":
            lines.insert(k, lines[k])
        elif action == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[k], lines[j] = lines[j], lines[k]
        elif action == "truncate":
            cut = draw(st.integers(0, max(0, len(lines[k]))))
            lines[k] = lines[k][:cut]
        else:
            lines.insert(k, draw(st.text(alphabet=ALPHABET, max_size=40)))
    return "\n".join(lines) + "\n"


@SETTINGS
@given(mutated_spec())
def test_mutated_valid_specs_give_a_module_or_diagnostics(text):
    _outcome(text)


@pytest.mark.parametrize(
    "text, code, message",
    [
        (
            "optimizer X\ninput lr: float = 1\nupdate:\n    param <- "
            + "(" * 100
            + "grad"
            + ")" * 100
            + "\n",
            "E005",
            "parentheses nested deeper than 64",
        ),
        (
            "optimizer X\ninput lr: float = 1\nupdate:\n    param <- param"
            + " + grad" * 2000
            + "\n",
            "E001",
            "line is 14018 characters long (at most 1000)",
        ),
        ("optimizer X\n" + "# x\n" * 100000, "E001", "the file is larger than 256 KiB"),
    ],
    ids=["nesting", "line", "file"],
)
def test_absurd_nesting_and_length_are_refused_cleanly(text, code, message):
    with pytest.raises(SpecError) as info:
        compile_text(text, "specs/x.optim")
    (diagnostic,) = info.value.diagnostics
    assert (diagnostic.code, diagnostic.message) == (code, message)


WORDS = sorted({w for s in SOURCES for w in s.replace("\n", " \n ").split(" ")})


@SETTINGS
@given(
    st.sampled_from(SOURCES),
    st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(WORDS)), max_size=6),
)
def test_specs_with_words_swapped_give_a_module_or_diagnostics(source, edits):
    words = source.split(" ")
    for position, word in edits:
        words[position % len(words)] = word
    _outcome(" ".join(words))


@settings(max_examples=60, deadline=timedelta(seconds=10))
@given(mutated_spec())
def test_a_rejected_spec_writes_no_file(tmp_path_factory, text):
    """Through the command line: a bad spec exits 1 and leaves the output folder empty. The
    spec is alone in its project's folder: beside the repository's specs every mutant
    clashed with the optimizer it came from (E406) and was refused for that, after all 61
    were checked again."""
    work = tmp_path_factory.mktemp("fuzz")
    specs = work / "specs"
    specs.mkdir()
    spec = specs / "fuzz.optim"
    spec.write_text(text, encoding="utf-8")
    out = work / "out"
    code = main(["build", str(spec), "--out", str(out), "--spec-dir", str(specs)])
    if code != 0:
        assert code == 1
        assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
