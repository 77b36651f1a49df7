"""optimgen: a specification-driven optimizer generator for PyTorch.

The pipeline, one folder per stage, imports pointing one way:
generator.language (grammar, Lark parser, typed syntax, builtins, diagnostics) →
generator.check.checker (names, kinds, refusals) → generator.lower.lowering (the IR of generator.ir, in-place
operations chosen by rewrite rules) → generator.emit.python / generator.emit.docs (Jinja
templates, black) → generator.driver (build, files written only when they change, the stale
check). generator.commands holds the `optimgen` CLI. The compiler never imports torch; the
generated modules do, and they import only generator.runtime (precision policies, kernel and
sharding helpers).
"""

__version__ = "0.1.0"


def load_spec(path_or_text):
    """Compile one spec (a path, or spec text) and return the optimizer class, writing nothing."""
    from generator.api import load_spec as _load

    return _load(path_or_text)
