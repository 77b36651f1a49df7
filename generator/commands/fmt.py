"""`optimgen fmt`: the canonical layout of spec files, stable and idempotent.

Formatting works line by line on the text, so comments stay where the author put them: indentation
becomes four spaces per block level, tokens are re-spaced by one table (binary operators and `<-`
between spaces, none inside brackets or around `^`, one after a comma, two before `initially`
and before a trailing comment), runs of blank lines shrink to one, trailing whitespace goes and the file ends in one
newline. A formatted file is parsed again and must give the same spec as the original (positions
aside); otherwise nothing is written and the difference is reported as a bug of the formatter.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from generator import driver
from generator import project as P
from generator.language.diagnostics import GeneratorBug
from generator.language.parse import parse

TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z\u0370-\u03ff](?:[A-Za-z0-9\u0370-\u03ff\u2080-\u2089]|_(?!\{))*(?:_\{t(?:[-\u2212]1)?\})?)
  | (?P<op><-|<=|>=|==|!=|//|[-+*/%@^<>=|\u2190\u2260\u2264\u2265\u2212\u00b7\u00d7])
  | (?P<open>[(\[])
  | (?P<close>[)\]])
  | (?P<comma>,)
  | (?P<colon>:)
  | (?P<other>[?\u221a\u00b2.\\])
  | (?P<space>\s+)
    """,
    re.VERBOSE,
)
# Words after which a `-` is a sign and a `(` opens a group, not a call.
KEYWORDS = frozenset(
    """if elif else and or not in for while return repeat use check requires none means
    initially over""".split()
)
# Declarations whose `NAME (key)` names the torch argument or state key: a space, not a call.
DECLARATIONS = ("input", "state")
TIGHT_OPS = {"^"}


def _tokens(code: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(code):
        m = TOKEN.match(code, pos)
        if (
            m is None
        ):  # a character the grammar refuses: leave the line to the parser's error
            return []
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
        pos = m.end()
    return out


def _split_comment(line: str) -> tuple[str, str | None]:
    """The code and the trailing comment of a line (a `#` inside a string is not one)."""
    in_string = False
    k = 0
    while k < len(line):
        ch = line[k]
        if ch == "\\" and in_string:
            k += 2
            continue
        if ch == '"':
            in_string = not in_string
        elif ch == "#" and not in_string:
            return line[:k].rstrip(), line[k:].rstrip()
        k += 1
    return line.rstrip(), None


def _unary(prev: tuple[str, str] | None) -> bool:
    if prev is None:
        return True
    kind, text = prev
    return kind in ("op", "open", "comma", "colon") or text in KEYWORDS


def respace(code: str) -> str:
    toks = _tokens(code)
    if not toks:
        return code.strip()
    out = ""
    prev = None
    sign = False  # the previous token was a unary minus
    # `state m (exp_avg) <- 0`, `input beta1, beta2 (betas): ...`: the first bracket before
    # the declaration's `:`, `<-` or `lazy` is the key, spaced from the name
    key_at = None
    if toks[0][1] in DECLARATIONS:
        for k, (kind, text) in enumerate(toks):
            if kind == "colon" or text in ("<-", "←", "lazy", "="):
                break
            if kind == "open":
                key_at = k
                break
    for at, tok in enumerate(toks):
        kind, text = tok
        if prev is None:
            glue = ""
        elif sign or prev[0] == "open" or prev[1] in ("√",):
            glue = ""
        elif kind in ("close", "comma", "colon") or text in ("?", "²"):
            glue = ""
        elif at == key_at:
            glue = " "
        elif text == "initially":  # set off from the update, as a second clause
            glue = "  "
        elif (
            kind == "open" and prev[0] in ("name", "close") and prev[1] not in KEYWORDS
        ):
            glue = ""  # a call or an index
        elif text in TIGHT_OPS or prev[1] in TIGHT_OPS:
            glue = ""
        else:
            glue = " "
        sign = kind == "op" and text in ("-", "\u2212") and _unary(prev)
        out += glue + text
        prev = tok
    return out


def format_text(text: str) -> str:
    lines = text.replace("\r\n", "\n").split("\n")
    stack = [0]  # indentation widths of the open blocks
    depth = 0  # open brackets carried over from earlier lines
    out: list[str] = []
    waiting: list[tuple[int, str]] = (
        []
    )  # comment lines, placed when the next code line is

    def place_comments(width: int, level: int) -> None:
        # a comment as deep as the code after it belongs to that code's block (often the
        # first line of a new block); a shallower one to the enclosing block it sits in
        for w, comment in waiting:
            at = level if w >= width else sum(1 for s in stack[1:] if s <= w)
            out.append("    " * at + comment)
        waiting.clear()

    for raw in lines:
        line = raw.expandtabs(4)
        if not line.strip():
            if waiting:
                waiting.append((0, ""))
            elif out and out[-1] != "":
                out.append("")
            continue
        width = len(line) - len(line.lstrip())
        code, comment = _split_comment(line.strip())
        if depth > 0:  # a continuation inside brackets: its own indentation is kept
            out.append(
                " " * width + respace(code) + (f"  {comment}" if comment else "")
            )
        elif not code:
            waiting.append((width, comment))
            continue
        else:
            while width < stack[-1]:
                stack.pop()
            if width > stack[-1]:
                stack.append(width)
            level = len(stack) - 1
            place_comments(width, level)
            body = respace(code) + (f"  {comment}" if comment is not None else "")
            out.append("    " * level + body)
        depth += sum(code.count(c) for c in "([") - sum(code.count(c) for c in ")]")
        depth = max(depth, 0)
    place_comments(0, 0)
    out = [line.rstrip() for line in out]
    out = [
        x for k, x in enumerate(out) if x or (k and out[k - 1])
    ]  # one blank line at most
    while out and out[-1] == "":
        out.pop()
    while out and out[0] == "":
        out.pop(0)
    return "\n".join(out) + "\n"


def format_file(path: Path) -> tuple[str, str]:
    """(original, formatted) text of a spec or fragment; the formatted one means the same."""
    original = path.read_bytes()
    before = parse(original, str(path))  # a bad spec: SpecError, nothing formatted
    text = original.decode("utf-8")
    formatted = format_text(text)
    after = parse(formatted.encode("utf-8"), str(path))
    if after != before:
        raise GeneratorBug(f"fmt would change the meaning of {path}; left as it is")
    return text, formatted


def add_arguments(p) -> None:
    p.add_argument(
        "specs",
        nargs="*",
        help="spec and fragment files (default: every *.optim and fragment in --spec-dir)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and list the files that are not formatted",
    )
    p.add_argument(
        "--spec-dir", help="a spec folder (default: the project's, with its fragments)"
    )


def run(args) -> int:
    if args.specs:
        paths = [Path(s) for s in args.specs]
    else:
        where = P.require("fmt", args.spec_dir, None, needs_out=False)
        paths = sorted(where.spec_dir.glob(f"*{driver.SPEC_SUFFIX}"))
        paths += P.fragment_files([where.spec_dir, *where.fragment_dirs])
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"optimgen fmt: no spec file {missing[0]}", file=sys.stderr)
        return 1
    changed = []
    for path in paths:
        original, formatted = format_file(path)
        if formatted != original:
            changed.append(path)
            if not args.check:
                driver.write_atomically(path, formatted)
    for path in changed:
        print(f"{'would reformat' if args.check else 'formatted'} {path}")
    if args.check:
        print(f"{len(changed)} of {len(paths)} file(s) would be reformatted")
        return 1 if changed else 0
    print(f"{len(changed)} of {len(paths)} file(s) reformatted")
    return 0
