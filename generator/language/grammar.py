"""The parser: grammar.lark under Lark's LALR(1) parser, with the indentation post-lexer.

``spec_parser`` builds it once per process, its grammar analysis cached on disk under
``cache_root()`` (keyed by Lark on the grammar and options); ``SpecIndenter`` turns the lines'
indentation into ``_INDENT``/``_DEDENT`` tokens, ignoring line breaks inside brackets. Parsing
(generator.language.parse) and syntax-error matching (generator.language.errors) both use it.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark
from lark.indenter import Indenter


class SpecIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4


@functools.lru_cache(maxsize=1)
def spec_parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        postlex=SpecIndenter(),
        propagate_positions=True,
        maybe_placeholders=True,
        cache=_lark_cache(),
    )


def cache_root() -> str:
    """Where optimgen keeps caches: $OPTIMGEN_CACHE_DIR, else the user's cache directory."""
    import os

    return os.environ.get("OPTIMGEN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "optimgen"
    )


def _lark_cache() -> str | bool:
    """Lark's grammar analysis, cached on disk (keyed by Lark on the grammar and options)."""
    import os

    root = cache_root()
    try:
        os.makedirs(root, exist_ok=True)
    except OSError:
        return False
    return os.path.join(root, "grammar.lark-cache")
