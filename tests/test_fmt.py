"""`optimgen fmt`: the committed specs are in canonical form, formatting is idempotent, any
re-spacing or re-indentation of a spec formats back to the same text, comments are kept, and a
bad spec is reported, never rewritten."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.commands.cli import main
from generator.commands.fmt import _split_comment, format_text
from generator.language.parse import parse

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "specs").glob("*.optim")) + sorted(
    (ROOT / "specs" / "fragments").glob("*.frag")
)


def test_committed_specs_are_formatted(capsys):
    assert main(["fmt", "--check"]) == 0, capsys.readouterr().out


def _mangle(text: str, rng: random.Random) -> str:
    """The same spec with its layout scrambled: operators unspaced or over-spaced, blocks
    indented by 2 or 3 spaces (or a tab), trailing blanks, blank lines multiplied."""
    unit = rng.choice(["  ", "   ", "\t", "      "])
    spacing = lambda m: rng.choice(  # noqa: E731
        [m.group(1), f" {m.group(1)} ", f"  {m.group(1)}", m.group(1) + "   "]
    )
    out = []
    for line in text.splitlines():
        if not line.strip():
            out += [rng.choice(["", "   ", "\t"]) for _ in range(rng.randint(1, 3))]
            continue
        width = len(line) - len(line.lstrip(" "))
        body, comment = _split_comment(line.strip())
        if '"' not in body:  # (strings and comments are kept as written)
            body = re.sub(r"\s*(<-|\+|\*|==|,)\s*", spacing, body)
            body = re.sub(r"\(\s*", lambda m: rng.choice(["(", "( "]), body)
        if comment is not None:
            body += rng.choice(["", " ", "     "]) + comment
        out.append(unit * (width // 4) + body + rng.choice(["", " ", "\t"]))
    return "\n" * rng.randint(0, 2) + "\n".join(out) + "\n" * rng.randint(1, 3)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_scrambled_layout_formats_back_to_the_spec(path):
    text = path.read_text()
    rng = random.Random(path.name)
    for _ in range(3):
        mangled = _mangle(text, rng)
        assert parse(mangled.encode(), str(path)) == parse(text.encode(), str(path))
        assert format_text(mangled) == text, f"{path.name}: layout not restored"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FILES), st.integers(0, 2**32 - 1))
def test_formatting_is_idempotent_and_keeps_the_meaning(path, seed):
    text = path.read_text()
    once = format_text(_mangle(text, random.Random(seed)))
    assert format_text(once) == once
    assert parse(once.encode(), str(path)) == parse(text.encode(), str(path))


def test_comments_are_kept_where_the_author_put_them():
    text = (
        "# header\noptimizer X\ninput lr: float=0.1   # step size\nupdate:\n"
        "  # the whole update\n  param<-param-lr*grad#descend\n"
    )
    assert format_text(text) == (
        "# header\noptimizer X\ninput lr: float = 0.1  # step size\nupdate:\n"
        "    # the whole update\n    param <- param - lr * grad  #descend\n"
    )


@pytest.mark.parametrize(
    "before, after",
    [
        ("    x<--g^2", "    x <- -g^2"),
        ("    x <- a*(b-c)/d", "    x <- a * (b - c) / d"),
        ("    x <- max(a ,b)", "    x <- max(a, b)"),
        (
            "state m(exp_avg)<-0 if dim(param)>1, reduced over -1",
            "state m (exp_avg) <- 0 if dim(param) > 1, reduced over -1",
        ),
        (
            "input b1,b2 (betas):(float,float)=(0.9,0.99)",
            "input b1, b2 (betas): (float, float) = (0.9, 0.99)",
        ),
        ("    m <- m  initially  g", "    m <- m  initially g"),
        ("    if not(a and b):", "    if not (a and b):"),
        ("    c <- x if t>5 else -y", "    c <- x if t > 5 else -y"),
    ],
)
def test_tokens_are_spaced_by_one_table(before, after):
    assert format_text(before + "\n").rstrip("\n") == after


def test_fmt_rewrites_and_check_only_reports(tmp_path, capsys):
    spec = tmp_path / "x.optim"
    messy = "optimizer X\ninput lr: float=0.1\nupdate:\n  param<-param-lr*grad\n"
    spec.write_text(messy)
    assert main(["fmt", "--check", str(spec)]) == 1
    assert spec.read_text() == messy
    assert "would reformat" in capsys.readouterr().out
    assert main(["fmt", str(spec)]) == 0
    assert spec.read_text().endswith("update:\n    param <- param - lr * grad\n")
    assert main(["fmt", "--check", str(spec)]) == 0


def test_fmt_of_a_bad_spec_reports_it_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "bad.optim"
    bad = "optimizer X\nupdate:\n    param <- (param\n"
    spec.write_text(bad)
    assert main(["fmt", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "bad.optim:" in err and "error" in err and "Traceback" not in err
    assert spec.read_text() == bad
