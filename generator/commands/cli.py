"""The command line: ``optimgen build | check | demo | bench | new | show`` (also
``python -m generator``).

Exit status 0 on success, 1 for bad specs or stale output (with diagnostics on stderr), 2 for a
generator bug, which is reported as one and never blamed on the spec.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from generator import driver
from generator.commands import bench, bench_precision, demo, train, workbench
from generator import project
from generator.language.diagnostics import GeneratorBug, SpecError


def _warn(text: str) -> None:
    print(text, file=sys.stderr)


def _project(args, command: str) -> project.Project:
    named = bool(getattr(args, "specs", None))
    return project.require(command, args.spec_dir, args.out, named=named)


def cmd_build(args) -> int:
    start = time.perf_counter()
    where = _project(args, "build")
    project.check_writable(where.out)
    outputs = driver.compile_specs(args.specs or None, where, report=_warn)
    changed = driver.write(outputs)
    took = time.perf_counter() - start
    for p in changed:
        print(f"wrote {where.show(p)}")
    print(f"{len(outputs)} file(s) generated, {len(changed)} changed, in {took:.2f} s")
    return 0


def cmd_check(args) -> int:
    where = _project(args, "check")
    outputs = driver.compile_specs(None, where, report=_warn)
    problems = driver.stale(outputs, where.out)
    for p, why in problems:
        print(f"{where.show(p)}: {why}", file=sys.stderr)
    if problems:
        print(
            f"{where.show(where.out)}/ is out of date: run `optimgen build`",
            file=sys.stderr,
        )
        return 1
    print(f"{len(outputs)} generated file(s) up to date")
    return 0


def _add_io(p: argparse.ArgumentParser, specs: bool = True) -> None:
    if specs:
        p.add_argument(
            "specs",
            nargs="*",
            help="spec files (default: every *.optim in the project's spec folder)",
        )
    p.add_argument(
        "--out",
        help="output package folder (default: `out` of the project's [tool.optimgen])",
    )
    p.add_argument(
        "--spec-dir",
        help="folder of specs (default: `specs` of the project's [tool.optimgen])",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="optimgen",
        description="Generate torch.optim optimizers from spec files.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "build", help="generate optimizers from specs (writes only changed files)"
    )
    _add_io(b)
    b.set_defaults(func=cmd_build)
    c = sub.add_parser("check", help="exit 1 if generated/ differs from a fresh build")
    _add_io(c, specs=False)
    c.set_defaults(func=cmd_check, specs=None)
    d = sub.add_parser(
        "demo", help="the seed tutorials' scenarios, generated vs torch.optim"
    )
    demo.add_arguments(d)
    d.set_defaults(func=demo.run)
    be = sub.add_parser(
        "bench", help="step time of generated vs torch.optim, side by side"
    )
    bench.add_arguments(be)
    # `--policies` measures the precision policies instead (bench_precision)
    be.set_defaults(
        func=lambda args: (
            bench_precision.run(args)
            if getattr(args, "policies", None)
            else bench.run(args)
        )
    )
    tr = sub.add_parser(
        "train",
        help="train a small MLP on scikit-learn's digits under several precision policies",
    )
    train.add_arguments(tr)
    tr.set_defaults(func=train.run)
    workbench.add_arguments(sub)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        n = len(exc.diagnostics)
        print(f"{n} error{'s' if n != 1 else ''}; nothing was written", file=sys.stderr)
        return 1
    except project.ProjectError as exc:
        print(exc, file=sys.stderr)
        return 1
    except GeneratorBug as exc:
        print(
            f"optimgen: internal error (a bug in optimgen, not in your spec): {exc}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `optimgen show ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
