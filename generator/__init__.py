"""optimgen: a specification-driven optimizer generator for PyTorch.

The pipeline: generator.parse (Lark, spec text → spec model) → generator.check (diagnostics) →
generator.lower (IR, in-place operations chosen by rewrite rules) → generator.emit (Jinja templates,
black) → generator.build (files written only when they change). The generator itself never imports
torch; the generated modules do, and they import generator.precision, the one runtime module (the
precision policy every generated optimizer shares).
"""

__version__ = "0.1.0"


def load_spec(path_or_text):
    """Compile one spec (a path, or spec text) and return the optimizer class, writing nothing."""
    from .api import load_spec as _load

    return _load(path_or_text)
