"""The Python API: compile a spec held in memory, or load its optimizer class without writing files.

``load_spec`` is for notebooks and tests: it runs the whole pipeline on one spec (a path or the spec
text itself), then imports the generated module from memory. Results are cached by content, so
loading the same spec twice returns the same class. The spec's text only ever reaches the module as
escaped string literals (see generator.emit), so importing the module runs optimgen's code alone.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import types
from pathlib import Path

from .build import (
    DEFAULT_SPECS,
    FRAGMENT_SUFFIX,
    check_fusable,
    check_all,
    render_optimizer,
)
from .check import check
from .diagnostics import Collector, SpecError
from .parse import parse


def compile_text(
    text: str | bytes, path: str = "<spec>", fragment_dir: Path = DEFAULT_SPECS
) -> str:
    """The generated module's source for one spec given as text. Raises SpecError."""
    return render_optimizer(check_text(text, path, fragment_dir))


def check_text(
    text: str | bytes, path: str = "<spec>", fragment_dir: Path = DEFAULT_SPECS
):
    """One spec given as text, parsed and checked (a CheckedSpec). Raises SpecError."""
    out = Collector()
    fragments, sources = {}, {}
    for f in sorted(fragment_dir.glob(f"**/*{FRAGMENT_SUFFIX}")):
        frag = parse(f.read_bytes(), str(f))
        fragments[frag.name] = frag
        sources[str(f)] = frag.source
    spec = parse(text, path)
    sources[path] = spec.source
    checked = check(spec, fragments, out)
    if not out.items:
        check_fusable(checked, out)
    if out.items:
        raise SpecError(out.items, sources)
    return checked


@functools.lru_cache(maxsize=64)
def _load(text: bytes, path: str):
    source = compile_text(text, path)
    digest = hashlib.sha256(text).hexdigest()[:12]
    module = types.ModuleType(f"optimgen_loaded_{digest}")
    module.__file__ = f"<optimgen {path}>"
    sys.modules[module.__name__] = (
        module  # so that pickling and deepcopy find the class
    )
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    names = [n for n in module.__all__ if isinstance(module.__dict__[n], type)]
    cls = module.__dict__[names[0]]
    cls.__module__ = module.__name__
    return cls


def load_spec(path_or_text: str | Path):
    """The optimizer class of one spec (a file path, or the text of a spec)."""
    if isinstance(path_or_text, Path) or (
        isinstance(path_or_text, str)
        and "\n" not in path_or_text
        and Path(path_or_text).is_file()
    ):
        p = Path(path_or_text)
        return _load(p.read_bytes(), str(p))
    text = (
        path_or_text.encode("utf-8") if isinstance(path_or_text, str) else path_or_text
    )
    return _load(text, "<spec>")


__all__ = ["compile_text", "check_text", "load_spec", "check_all"]
