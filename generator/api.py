"""The Python API: compile a spec held in memory, or load its optimizer class without writing files.

``load_spec`` is for notebooks and tests: it runs the whole pipeline on one spec (a path or the spec
text itself), then imports the generated module from memory. Results are cached by content, so
loading the same spec twice returns the same class. The spec's text only ever reaches the module as
escaped string literals (see generator.emit), so importing the module runs optimgen's code alone.
"""

from __future__ import annotations

import functools
import hashlib
import linecache
import sys
import types
from pathlib import Path

from generator import project as P
from generator.driver import (
    check_all,
    check_fusable,
    find_base,
    load,
    render_optimizer,
)
from generator.check.checker import check
from generator.check.variants import derive
from generator.language.diagnostics import Collector, SpecError
from generator.language.parse import parse


def compile_text(
    text: str | bytes, path: str = "<spec>", fragment_dirs: list[Path] | None = None
) -> str:
    """The generated module's source for one spec given as text. Raises SpecError."""
    return render_optimizer(check_text(text, path, fragment_dirs))


def check_text(
    text: str | bytes, path: str = "<spec>", fragment_dirs: list[Path] | None = None
):
    """One spec given as text, parsed and checked (a CheckedSpec). Raises SpecError.

    Its fragments are looked up as a build would (generator.project): the folder of ``path``
    when it names a file, the fragment folders of the project around the working directory,
    then the standard library; or in ``fragment_dirs`` (first wins) when given."""
    if fragment_dirs is None:
        own = [Path(path)] if Path(path).parent.is_dir() and path != "<spec>" else []
        fragment_dirs = P.fragment_dirs(P.find(), own)
    out = Collector()
    _, fragments, sources = load([], P.fragment_files(fragment_dirs), out)
    spec = parse(text, path)
    sources[path] = spec.source
    project = P.find()
    find = functools.partial(
        find_base, {}, project, project.root if project else None, sources
    )
    spec = derive(spec, find, out)
    if spec is None:
        raise SpecError(out.items, sources)
    checked = check(spec, fragments, out)
    if not out.items:
        check_fusable(checked, out)
    if out.items:
        raise SpecError(out.items, sources)
    return checked


@functools.lru_cache(maxsize=64)
def _load(text: bytes, path: str, fragment_dirs: tuple[Path, ...] | None = None):
    source = compile_text(
        text, path, None if fragment_dirs is None else list(fragment_dirs)
    )
    digest = hashlib.sha256(text).hexdigest()[:12]
    module = types.ModuleType(f"optimgen_loaded_{digest}")
    module.__file__ = f"<optimgen {path}>"
    sys.modules[module.__name__] = (
        module  # so that pickling and deepcopy find the class
    )
    # tracebacks through the module show its lines (verify reads them to tell a refusal
    # the spec documents from a failure); mtime None: linecache keeps the entry
    linecache.cache[module.__file__] = (
        len(source),
        None,
        source.splitlines(True),
        module.__file__,
    )
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    names = [n for n in module.__all__ if isinstance(module.__dict__[n], type)]
    cls = module.__dict__[names[0]]
    cls.__module__ = module.__name__
    return cls


def load_spec(path_or_text: str | Path, fragment_dirs: list[Path] | None = None):
    """The optimizer class of one spec (a file path, or the text of a spec). Its fragments are
    looked up as ``check_text`` says, or in ``fragment_dirs``."""
    dirs = None if fragment_dirs is None else tuple(fragment_dirs)
    if isinstance(path_or_text, Path) or (
        isinstance(path_or_text, str)
        and "\n" not in path_or_text
        and Path(path_or_text).is_file()
    ):
        p = Path(path_or_text)
        return _load(p.read_bytes(), str(p), dirs)
    text = (
        path_or_text.encode("utf-8") if isinstance(path_or_text, str) else path_or_text
    )
    return _load(text, "<spec>", dirs)


__all__ = ["compile_text", "check_text", "load_spec", "check_all"]
