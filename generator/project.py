"""Where a command stands: the user's project, and the standard library optimgen ships.

Every command takes its defaults from here, never from where optimgen happens to be installed. A
*project* is the nearest folder, from the current directory up, whose ``pyproject.toml`` has a
``[tool.optimgen]`` table; it names the spec folder, the output package and the fragment folders
(``optimgen init`` writes one). The *standard library* is what the package carries: the spec of every
optimizer in ``generated`` and the standard fragments (``maximize``, ``weight_decay``, ...). In a
wheel it is the package data ``generator/specs``; run from a clone it is the checkout's ``specs/``.

Fragment lookup is bounded and ordered: the folder of each spec being built (its ``*.frag`` files and
its ``fragments/`` folder), the project's fragment folders, then the standard library's. A user's
fragment of the same name as a standard one wins, with a warning that says so. Nothing here walks a
tree recursively, so a spec in a shared folder never picks up another project's fragments.

Writing is guarded here too: an output folder inside an installed environment (site-packages) is
refused, so no command can overwrite the installed ``generated`` package.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_FILE = "pyproject.toml"
TABLE = "optimgen"
SPEC_SUFFIX = ".optim"
FRAGMENT_SUFFIX = ".frag"
DEFAULT_SPEC_DIR = "specs"
DEFAULT_PACKAGE = "optimizers"
KEYS = {
    "specs": "the folder of the project's spec files",
    "out": "the package the build writes (a folder, importable from the project root)",
    "fragments": "a list of folders of the project's own fragments",
}


class ProjectError(Exception):
    """A command cannot run where it stands; the message says what it needs."""


@dataclass(frozen=True)
class Project:
    """A user's optimgen project, every path absolute."""

    root: Path
    spec_dir: Path
    out: Path
    fragment_dirs: tuple[Path, ...]
    config: Path | None  # None: paths given on the command line, no configuration file
    # the folders as configured (none replaced on the command line): only such a build
    # rewrites the catalogue in the project's README
    configured: bool = True

    @property
    def package(self) -> str:
        """The output package's import name (``out`` relative to the root, dotted)."""
        try:
            parts = self.out.relative_to(self.root).parts
        except ValueError:
            parts = (self.out.name,)
        return ".".join(parts)

    def show(self, path: Path) -> str:
        """How a file is named in diagnostics and in generated headers: relative to the root
        when it is inside the project (the same from every working directory), else as given.
        """
        return display(path, self.root)


def display(path: Path, root: Path | None = None) -> str:
    """A file as messages and generated headers name it: relative to the project root, else to
    the working directory; a shipped spec elsewhere as ``specs/<name>``, as the shipped
    modules name it (so ``optimgen show Adam`` prints generated/adam.py from anywhere).
    """
    resolved = path.resolve()
    for base in (root, Path.cwd()):
        if base is None:
            continue
        try:
            return resolved.relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    try:  # a wheel's generator/specs, a checkout's specs
        inside = resolved.relative_to(standard_library().resolve())
        return Path(DEFAULT_SPEC_DIR, inside).as_posix()
    except ValueError:
        return str(path)


def standard_library() -> Path:
    """The shipped specs and fragments: package data in a wheel, ``specs/`` in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "specs"
    if packaged.is_dir():
        return packaged
    return here.parent / DEFAULT_SPEC_DIR


def standard_fragments() -> Path:
    return standard_library() / "fragments"


def find(start: Path | None = None) -> Project | None:
    """The project around ``start`` (default: the working directory), or None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        config = folder / CONFIG_FILE
        if config.is_file():
            table = _table(config)
            if table is not None:
                return _project(folder, config, table)
    return None


def _table(config: Path) -> dict | None:
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{config}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"{config}: not valid TOML ({exc})") from None
    table = data.get("tool", {}).get(TABLE)
    if table is not None and not isinstance(table, dict):
        raise ProjectError(f"{config}: [tool.{TABLE}] must be a table")
    return table


def _project(root: Path, config: Path, table: dict) -> Project:
    where = f"{config}: [tool.{TABLE}]"
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        known = ", ".join(f"`{k}` ({v})" for k, v in KEYS.items())
        raise ProjectError(f"{where} has no key `{unknown[0]}`; it takes {known}")
    for key in ("specs", "out"):
        if key in table and not (isinstance(table[key], str) and table[key].strip()):
            raise ProjectError(f"{where}: `{key}` must be a folder name (a string)")
    frags = table.get("fragments")
    if frags is not None and not (
        isinstance(frags, list) and all(isinstance(f, str) and f for f in frags)
    ):
        raise ProjectError(f"{where}: `fragments` must be a list of folder names")
    spec_dir = root / table.get("specs", DEFAULT_SPEC_DIR)
    out = root / table.get("out", DEFAULT_PACKAGE)
    if frags is None:
        fragment_dirs = (spec_dir / "fragments",)
    else:
        fragment_dirs = tuple(root / f for f in frags)
    return Project(root, spec_dir, out, fragment_dirs, config)


def around(spec_dir: str | None = None, out: str | None = None) -> Project | None:
    """The project a command works in: the configured one, with the folders named on the
    command line in place of its own; None when there is neither."""
    found = find()
    if spec_dir is None and out is None:
        return found
    root = found.root if found else Path.cwd().resolve()
    specs = Path(spec_dir).resolve() if spec_dir else found.spec_dir if found else root
    package = Path(out).resolve() if out else found.out if found else root
    frags = ((specs / "fragments",) if spec_dir else ()) + (
        found.fragment_dirs if found else ()
    )
    return Project(
        root, specs, package, frags, found.config if found else None, configured=False
    )


def require(
    command: str,
    spec_dir: str | None,
    out: str | None,
    needs_out: bool = True,
    named: bool = False,
) -> Project:
    """The project for a command that writes; a clear ProjectError where there is none.
    Spec files ``named`` on the command line need no spec folder."""
    project = around(spec_dir, out)
    if project is None or (
        project.config is None
        and ((spec_dir is None and not named) or (needs_out and out is None))
    ):
        if named:
            how = "name the output package with --out"
        elif needs_out:
            how = (
                "name the spec folder and the output package with --spec-dir and --out"
            )
        else:
            how = "name the spec folder with --spec-dir"
        raise ProjectError(
            f"optimgen {command}: no optimgen project in {Path.cwd()} or above it (a "
            f"{CONFIG_FILE} with a [tool.{TABLE}] table); `optimgen init` sets one up here, "
            f"or {how}. Nothing was written."
        )
    return project


def fragment_dirs(project: Project | None, spec_paths=()) -> list[Path]:
    """Where fragments are looked up, first wins: the specs' own folders, the project's fragment
    folders, the standard library. Each folder once, none of them searched recursively.
    """
    dirs: list[Path] = []
    for p in spec_paths:
        dirs += [Path(p).resolve().parent, Path(p).resolve().parent / "fragments"]
    if project is not None:
        dirs += [d.resolve() for d in project.fragment_dirs]
    dirs.append(standard_fragments().resolve())
    seen: set[Path] = set()
    return [d for d in dirs if not (d in seen or seen.add(d))]


def fragment_files(dirs: list[Path]) -> list[Path]:
    """The fragment files of ``dirs``, in lookup order (the standard library's last)."""
    files: list[Path] = []
    seen: set[Path] = set()
    for d in dirs:
        for f in sorted(d.glob(f"*{FRAGMENT_SUFFIX}")) if d.is_dir() else ():
            if f.resolve() not in seen:
                seen.add(f.resolve())
                files.append(f.resolve())
    return files


def is_standard(path: Path) -> bool:
    try:
        path.resolve().relative_to(standard_library().resolve())
        return True
    except ValueError:
        return False


_OPTIMIZER = re.compile(rb"^optimizer\s+([A-Za-z_]\w*)", re.M)


def spec_named(name: str, project: Project | None) -> Path | None:
    """A spec by file path, or by its class or module name (``Adam``, ``adam``, ``my_sgd``):
    the project's specs first, then the standard library's."""
    as_path = Path(name)
    if as_path.suffix == SPEC_SUFFIX or "/" in name or as_path.is_file():
        return as_path if as_path.is_file() else None
    folders = ([project.spec_dir] if project is not None else []) + [standard_library()]
    key = name.lower()
    for folder in folders:
        for f in sorted(folder.glob(f"*{SPEC_SUFFIX}")) if folder.is_dir() else ():
            if f.stem.lower() == key:
                return f
            m = _OPTIMIZER.search(f.read_bytes())
            if m and m.group(1).decode().lower() == key:
                return f
    return None


def installed_locations() -> list[Path]:
    """Folders an installer owns: site-packages of this interpreter and of the system."""
    places = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    try:
        import site

        places.update(site.getsitepackages())
        places.add(site.getusersitepackages())
    except (
        AttributeError
    ):  # pragma: no cover - site without getsitepackages (virtualenv<20)
        pass
    return [Path(p).resolve() for p in places if p]


def check_writable(out: Path) -> None:
    """Refuse an output folder inside an installed environment: a build there would replace an
    installed package (e.g. ``generated``) for every user of that environment."""
    target = out.resolve()
    for place in installed_locations():
        try:
            target.relative_to(place)
        except ValueError:
            continue
        raise ProjectError(
            f"the output folder {out} is inside {place}, where installed packages live; "
            "optimgen writes only into your project (set `out` in [tool.optimgen] or pass "
            "--out). Nothing was written."
        )
