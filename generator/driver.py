"""The pipeline, end to end: spec files in, formatted Python modules out, written only when changed.

``compile_specs`` parses every spec and fragment, checks them all (collecting every diagnostic of every
file), lowers and renders each optimizer, and formats it with black; it returns the files it would
write, so that ``build`` writes them (nothing at all when any spec is bad) and ``check`` compares
them with what is on disk. Failures after checking are generator bugs and are reported as such.
"""

from __future__ import annotations

import functools
import hashlib
import keyword
import os
from dataclasses import dataclass
from pathlib import Path

from generator import ir
from generator import project as P
from generator.check.checker import check, check_fragment
from generator.check.variants import derive
from generator.check.model import CheckedSpec
from generator.emit.docs.markdown import catalogue, page, readme_table
from generator.emit.docs.reference import language_reference
from generator.emit.python.fused import fusion_blocker
from generator.emit.python.module import ModuleRenderer, environment
from generator.language import syntax as S
from generator.language.diagnostics import (
    Collector,
    Diagnostic,
    GeneratorBug,
    Note,
    SpecError,
    render,
)
from generator.language.grammar import cache_root
from generator.language.parse import parse
from generator.lower.lowering import lower

SPEC_SUFFIX = P.SPEC_SUFFIX
FRAGMENT_SUFFIX = P.FRAGMENT_SUFFIX


@dataclass(frozen=True)
class Output:
    path: Path
    content: str


_display = P.display


def discover(
    spec_args: list[str] | None, project: P.Project
) -> tuple[list[Path], list[Path]]:
    """Spec files named on the command line (or all of the project's spec folder) and the
    fragments they may use, in lookup order (see generator.project)."""
    if spec_args:
        specs = [Path(a) for a in spec_args]
    else:
        specs = sorted(project.spec_dir.glob(f"*{SPEC_SUFFIX}"))
    return specs, P.fragment_files(P.fragment_dirs(project, specs))


def _module_name(spec: S.Spec) -> str:
    """The generated module is named after the spec file: specs/rmsprop.optim → generated/rmsprop.py."""
    return Path(spec.path).stem


def find_base(
    known: dict[str, S.Spec],
    project: P.Project | None,
    root: Path | None,
    sources: dict[str, str],
    name: str,
) -> S.Spec | None:
    """A variant's base by its optimizer's name: one of ``known`` (the specs at hand), else the
    project's spec of that name, else optimgen's own, parsed, its source kept in ``sources``
    for the messages that point into it (and in ``known`` for the next variant)."""
    if name in known:
        return known[name]
    path = P.spec_named(name, project)
    if path is None:
        return None
    shown = P.display(path, root)
    spec = parse(path.read_bytes(), shown)
    sources[shown] = spec.source
    known[name] = spec
    return spec


def load(
    paths: list[Path],
    fragment_paths: list[Path],
    out: Collector,
    root: Path | None = None,
):
    """Parse the fragments (in lookup order: the first of a name wins) and the specs. A user's
    fragment that replaces a standard one is a warning; two of the user's own, an error.
    """
    sources: dict[str, str] = {}
    specs, fragments = [], {}
    for path in list(fragment_paths) + list(paths):
        shown = _display(path, root)
        try:
            data = path.read_bytes()
        except OSError as exc:
            out.error(
                "E000",
                f"cannot read the file: {exc.strerror}",
                S.Span(shown, 1, 1, 1, 1),
            )
            continue
        try:
            spec = parse(data, shown)
        except SpecError as exc:
            out.items.extend(exc.diagnostics)
            sources.update(exc.sources)
            continue
        sources[shown] = spec.source
        if spec.kind in ("fragment", "modifier"):
            first = fragments.get(spec.name)
            if first is not None and P.is_standard(path):
                out.warn(
                    "W401",
                    f"fragment `{spec.name}` replaces optimgen's standard fragment of that "
                    "name",
                    first.span,
                    hint="rename yours to use both",
                    notes=[Note(f"optimgen's own is {path}")],
                )
                continue
            check_fragment(spec, out)
            if first is not None:
                out.error(
                    "E405",
                    f"fragment `{spec.name}` is defined twice",
                    spec.span,
                    notes=[Note("first defined here", first.span)],
                )
            fragments.setdefault(spec.name, spec)
        elif path in paths:
            specs.append(spec)
        else:
            out.error(
                "E404",
                f"{path.name} is a fragment file but holds an optimizer",
                spec.span,
                hint=f"optimizers live in *{SPEC_SUFFIX} files",
            )
    return specs, fragments, sources


def check_all(
    paths, fragment_paths, root: Path | None = None, report=None
) -> tuple[list[CheckedSpec], dict[str, str]]:
    """Parse and check every spec; raise SpecError with all their errors. Warnings go to
    ``report`` (a callable taking the rendered text), when one is given."""
    out = Collector()
    specs, fragments, sources = load(paths, fragment_paths, out, root)
    if report is not None:
        for w in out.warnings:
            report(render(w, sources))
    checked = []
    names: dict[str, S.Spec] = {}
    stems: dict[str, S.Spec] = {}
    # (a variant's base: among the specs built together, else one of optimgen's own)
    known = {s.name: s for s in specs if s.kind == "optimizer"}
    base_named = functools.partial(find_base, known, None, root, sources)

    for spec in specs:
        if spec.kind != "optimizer":
            out.error(
                "E404",
                "expected an optimizer, found a fragment",
                spec.span,
                hint=f"fragments live in *{FRAGMENT_SUFFIX} files",
            )
            continue
        stem = _module_name(spec)
        if (
            not stem.isidentifier()
            or keyword.iskeyword(stem)
            or stem.startswith("_")
            or stem
            in (
                "torch",
                "typing",
                "math",
            )
        ):
            out.error(
                "E201",
                f"`{stem}` cannot name a Python module: rename the spec file",
                spec.span,
                hint="spec files are named like Python modules, e.g. my_adam.optim",
            )
            continue
        if (
            not spec.name.isidentifier()
            or keyword.iskeyword(spec.name)
            or spec.name.startswith("_")
        ):
            out.error("E201", f"`{spec.name}` cannot name a Python class", spec.span)
            continue
        if stem in stems:
            out.error(
                "E407",
                f"two specs would write the module `{stem}.py`",
                spec.span,
                notes=[Note("the other one", stems[stem].span)],
                hint="rename one of the spec files",
            )
            continue
        stems[stem] = spec
        if spec.name in names:
            out.error(
                "E406",
                f"optimizer `{spec.name}` is defined twice",
                spec.span,
                notes=[Note("first defined here", names[spec.name].span)],
            )
        names.setdefault(spec.name, spec)
        before = len(out.items)
        derived = derive(spec, base_named, out)
        if derived is None:
            continue
        checked.append(check(derived, fragments, out))
        if len(out.items) == before:
            check_fusable(checked[-1], out)
    if out.items:
        raise SpecError(_sorted(out.items), sources)
    return checked, sources


def lowered(checked: CheckedSpec) -> ir.Optimizer:
    """The spec's IR: lowered once, then kept with the checked spec for every emitter."""
    if checked.ir is None:
        checked.ir = lower(checked)
    return checked.ir


def check_fusable(checked: CheckedSpec, out: Collector) -> None:
    """A spec that declares `fused` must have an update the fused path can compile."""
    fused = next((i for i in checked.spec.inputs if i.arg_name == "fused"), None)
    if fused is None:
        return
    blocked = fusion_blocker(lowered(checked))
    if blocked is not None:
        what, span = blocked
        out.error(
            "E326",
            "`fused` compiles each parameter's tensor arithmetic into one kernel, with the "
            "numbers and decisions made before it; "
            + ("this statement" if span is not None else "this update")
            + f" has {what}",
            span or fused.span,
            notes=(
                [Note("the `fused` input is declared here", fused.span)]
                if span is not None
                else []
            ),
            hint="remove the `fused` input: the for-loop and foreach paths remain",
        )


def _sorted(items: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(items, key=lambda d: (d.span.path, d.span.line, d.span.column))


def render_unformatted(checked: CheckedSpec) -> str:
    try:
        opt = lowered(checked)
        return ModuleRenderer(opt, checked).render()
    except GeneratorBug:
        raise
    except Exception as exc:  # a template or printer failure is ours, never the spec's
        raise GeneratorBug(
            f"rendering {checked.name} failed: {type(exc).__name__}: {exc}"
        ) from exc


def render_coverage(checked: CheckedSpec) -> tuple[str, tuple]:
    """The module of a coverage build (optimgen verify) and its probes: each branch of the
    spec opens with ``_cover(label)``, which the caller defines. Only its for-loop path is
    meant to run (a probe in a compiled kernel would break its graph)."""
    try:
        opt = lower(checked, coverage=True)
        everything = opt.step_block + opt.group_block + opt.hoisted + opt.body
        for p in opt.later_passes:
            everything += p.step_block + p.group_block + p.hoisted + p.body
        probes = tuple(s for s in ir.walk(everything) if isinstance(s, ir.Probe))
        return ModuleRenderer(opt, checked).render(), probes
    except GeneratorBug:
        raise
    except Exception as exc:
        raise GeneratorBug(
            f"rendering the coverage build of {checked.name} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def render_optimizer(checked: CheckedSpec) -> str:
    return format_python(render_unformatted(checked), checked.name)


def _black_mode():
    import black

    return black.Mode(target_versions={black.TargetVersion.PY310})


def _cache_dir() -> Path | None:
    return Path(cache_root()) / "black"


def _cache_key(text: str) -> str:
    import black

    blob = f"{black.__version__}\0{_black_mode()!r}\0{text}".encode()
    return hashlib.sha256(blob).hexdigest()


def _black(text: str) -> str:
    import black

    return black.format_str(text, mode=_black_mode())


def format_python(text: str, what: str) -> str:
    return format_many([(text, what)])[0]


def format_many(items: list[tuple[str, str]]) -> list[str]:
    """black for each (text, what), through a content-addressed cache: black is most of a build's
    time, and its output depends only on its input and version. Misses run in parallel.
    """
    cache = _cache_dir()
    keys = [_cache_key(text) for text, _ in items]
    results: list[str | None] = []
    for key in keys:
        hit = cache / f"{key}.py" if cache else None
        results.append(
            hit.read_text(encoding="utf-8") if hit and hit.is_file() else None
        )
    misses = [k for k, r in enumerate(results) if r is None]
    if len(misses) > 2 and (os.cpu_count() or 1) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(
            max_workers=min(len(misses), os.cpu_count() or 1)
        ) as pool:
            futures = {k: pool.submit(_black, items[k][0]) for k in misses}
            done = {k: _result(f, items[k][1]) for k, f in futures.items()}
    else:
        done = {}
        for k in misses:
            try:
                done[k] = _black(items[k][0])
            except Exception as exc:
                raise GeneratorBug(
                    f"black could not format the module for {items[k][1]}: {exc}"
                ) from exc
    for k, text in done.items():
        results[k] = text
        if cache is not None:
            try:
                cache.mkdir(parents=True, exist_ok=True)
                tmp = cache / f"{keys[k]}.{os.getpid()}.tmp"
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(cache / f"{keys[k]}.py")
            except OSError:
                pass  # a read-only home only costs speed
    return results


def _result(future, what: str) -> str:
    try:
        return future.result()
    except Exception as exc:
        raise GeneratorBug(
            f"black could not format the module for {what}: {exc}"
        ) from exc


def render_init(entries: list[tuple[str, str]], spec_dir: str) -> str:
    text = (
        environment()
        .get_template("__init__.py.jinja")
        .render(entries=entries, names=[n for _, n in entries], spec_dir=spec_dir)
    )
    return format_python(text, "generated/__init__.py")


def compile_specs(
    spec_args: list[str] | None = None,
    project: P.Project | None = None,
    report=None,
) -> list[Output]:
    """Everything a build would write. Raises SpecError (bad specs) or GeneratorBug.

    With spec files named, only their modules and pages are rendered, but the package index
    (``__init__.py``) and the catalogues are made from every spec of the project as well, so a
    class built alone imports at once; every spec is checked for that, and any error stops it.
    """
    if project is None:
        project = P.require("build", None, None)
    paths, fragments = discover(spec_args, project)
    every = sorted(project.spec_dir.glob(f"*{SPEC_SUFFIX}"))
    known = {p.resolve() for p in every}
    every += [p for p in paths if p.resolve() not in known]
    checked, _ = check_all(every, fragments, project.root, report)
    wanted = {_display(p, project.root) for p in paths}
    out_dir = project.out
    render = [c for c in checked if c.spec.path in wanted]
    texts = [
        (out_dir / f"{_module_name(c.spec)}.py", render_unformatted(c), c.name)
        for c in render
    ]
    formatted = format_many([(text, what) for _, text, what in texts])
    outputs = [Output(path, text) for (path, _, _), text in zip(texts, formatted)]
    outputs += [
        Output(out_dir / "docs" / f"{_module_name(c.spec)}.md", _doc_page(c))
        for c in render
    ]
    entries = sorted((_module_name(c.spec), c.name) for c in checked)
    outputs.append(
        Output(
            out_dir / "__init__.py",
            render_init(entries, project.show(project.spec_dir)),
        )
    )
    outputs.append(Output(out_dir / "docs" / "README.md", _catalogue(checked)))
    outputs.append(Output(out_dir / "docs" / "language.md", language_reference()))
    readme = _readme_with_catalogue(checked, project) if project.configured else None
    if readme is not None:
        outputs.append(readme)
    return outputs


CATALOGUE_START = "<!-- optimizer catalogue: written by `optimgen build`"
CATALOGUE_END = "<!-- end of the optimizer catalogue -->"


def _readme_with_catalogue(
    checked: list[CheckedSpec], project: P.Project
) -> Output | None:
    """The project README with its optimizer table regenerated from the specs (the lines
    between the two markers); None when the README has no such table."""
    readme = project.root / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(CATALOGUE_START), text.find(CATALOGUE_END)
    if start < 0 or end < start:
        return None
    head = text[: text.index("\n", start) + 1]
    docs = project.show(project.out / "docs")
    table = readme_table([(c, lowered(c), _module_name(c.spec)) for c in checked], docs)
    return Output(readme, head + table + text[end:])


def _doc_page(checked: CheckedSpec) -> str:
    return page(checked, lowered(checked))


def _catalogue(checked: list[CheckedSpec]) -> str:
    """generated/docs/README.md: every generated optimizer, its page, summary and reference."""
    return catalogue([(c, _module_name(c.spec)) for c in checked])


def write(outputs: list[Output]) -> list[Path]:
    """Write the files whose content changed; return those paths.

    Every new content goes to a temporary file first; only when all are written are they
    renamed over their targets, so a build that fails or is interrupted while writing leaves
    the output as it was (and no temporary file behind)."""
    pending = []
    try:
        for o in outputs:
            if o.path.exists() and o.path.read_text(encoding="utf-8") == o.content:
                continue
            o.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = o.path.with_suffix(o.path.suffix + ".tmp")
            pending.append((tmp, o.path))
            tmp.write_text(o.content, encoding="utf-8")
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in pending:
        tmp.replace(path)
    return [path for _, path in pending]


def write_atomically(path: Path, content: str) -> None:
    """A temporary file renamed over ``path``: an interrupted write leaves the old file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.replace(path)


def stale(outputs: list[Output], out_dir: Path) -> list[tuple[Path, str]]:
    """Files that differ from a fresh build, and generated modules no spec produces any more."""
    problems = []
    for o in outputs:
        if not o.path.exists():
            problems.append((o.path, "missing"))
        elif o.path.read_text(encoding="utf-8") != o.content:
            problems.append((o.path, "stale"))
    expected = {o.path.resolve() for o in outputs}
    for p in sorted(out_dir.glob("*.py")):
        if p.resolve() not in expected and p.read_text(encoding="utf-8").startswith(
            "# Generated by optimgen"
        ):
            problems.append((p, "orphaned (no spec produces it)"))
    return problems
