"""The spec author's commands: ``optimgen new`` (a spec file to start from) and ``optimgen show``
(a spec as the generated code, its algorithm box, its documentation page or the compiler's IR).

Both read and write spec files only through the pipeline's own entry points (generator.api): a
new spec is checked before it is written, and nothing is written when it does not build.
"""

from __future__ import annotations

import difflib
import pprint
import re
import sys
from pathlib import Path

from generator import driver
from generator import project as P
from generator.api import check_text, compile_text
from generator.commands import fmt, fuzz, plot, verify
from generator.emit.docs.latex import algorithm_box
from generator.emit.docs.markdown import memory_table, page
from generator.language.diagnostics import SpecError

TEMPLATE = """\
# {name}: say here, in a sentence or two, what the algorithm does and how it differs from the
# optimizer it builds on. This template is SGD with momentum: replace the inputs, state and update
# with your algorithm, then `optimgen build` writes {package}/{module}.py,
# `optimgen verify {name} --against torch.optim.SGD` compares it with torch's SGD, and
# `optimgen show {name} --format markdown` shows its documentation page.
optimizer {name}
summary "One line: what {name} is."
reference "Author, Title, Venue Year. https://arxiv.org/abs/..."

# Inputs are the constructor's arguments, in order, with defaults and the checks on them.
input lr: float = 1e-3 "learning rate"
    requires lr >= 0 else "Invalid learning rate: {{lr}}"
input momentum: float = 0.9 "momentum factor"
    requires 0 <= momentum < 1 else "Invalid momentum value: {{momentum}}"
input weight_decay: float = 0.0 "weight decay (L2 penalty)"
    requires weight_decay >= 0 else "Invalid weight_decay value: {{weight_decay}}"
input maximize: bool = false "maximize the objective instead of minimizing it"
input foreach: bool? = none "the multi-tensor implementation"
input fused: bool? = none, keyword

# State kept per parameter: (key) is its name in the state_dict.
state b (momentum_buffer) <- 0

# The update of one parameter, read like the paper's algorithm box; `use` pulls in a fragment
# (optimgen's standard ones, or yours in specs/fragments): maximize makes g the gradient to
# descend along, weight_decay adds the L2 term to g.
update:
    use maximize
    use weight_decay
    b <- momentum * b + g
    param <- param - lr * b
"""


def snake(name: str) -> str:
    """``ScheduleFreeAdamW`` → ``schedule_free_adam_w``; the spec file's and module's name."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return s.lower()


def _no_spec(command: str, name: str) -> int:
    print(
        f"optimgen {command}: no spec `{name}`: name a spec file, or one of your specs or "
        "of optimgen's optimizers by class or module name (e.g. Adam, adamw, my_sgd)",
        file=sys.stderr,
    )
    return 1


def cmd_new(args) -> int:
    name = args.name
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        print(
            f"optimgen new: `{name}` is not a class name: start with a capital letter, "
            "then letters and digits (e.g. MyAdam)",
            file=sys.stderr,
        )
        return 1
    where = P.require("new", args.spec_dir, None, needs_out=False)
    module = snake(name)
    path = where.spec_dir / f"{module}.optim"
    shown = where.show(path)
    if path.exists():
        print(
            f"optimgen new: {shown} already exists; nothing was written",
            file=sys.stderr,
        )
        return 1
    if args.source is None:
        text = TEMPLATE.format(name=name, module=module, package=where.show(where.out))
    else:
        source = P.spec_named(args.source, where)
        if source is None:
            return _no_spec("new", args.source)
        text = source.read_text(encoding="utf-8")
        text, count = re.subn(
            r"^optimizer\s+\w+", f"optimizer {name}", text, count=1, flags=re.M
        )
        if not count:
            print(f"optimgen new: {source} declares no optimizer", file=sys.stderr)
            return 1
    try:
        check_text(text, shown, P.fragment_dirs(where, [path]))
    except (
        SpecError
    ) as e:  # a copy of a spec that does not build, or a bug in the template
        print(e.render(), file=sys.stderr)
        print("optimgen new: nothing was written", file=sys.stderr)
        return 1
    where.spec_dir.mkdir(parents=True, exist_ok=True)
    driver.write_atomically(path, text)
    print(f"wrote {shown}")
    print(f"next: edit it, then `optimgen build` (or `optimgen build {shown}`)")
    return 0


def _show_diff(args, text: bytes, shown: str, frags, where) -> int:
    """``optimgen show --diff CLion``: the variant's output against its base's, the base's
    class name written as the variant's so that only the change shows."""
    checked = check_text(text, shown, frags)
    base = checked.spec.base
    if base is None:
        print(
            f"optimgen show --diff: {checked.name} is no variant "
            "(`optimizer NAME from BASE`): there is nothing to compare it with",
            file=sys.stderr,
        )
        return 1
    base_path = P.spec_named(base.id, where)
    base_shown = P.display(base_path, where.root if where else None)
    base_checked = check_text(
        base_path.read_bytes(), base_shown, P.fragment_dirs(where, [base_path])
    )

    def rendered(c, path, source) -> str:
        if args.format == "python":
            return compile_text(source, path, P.fragment_dirs(where, [Path(path)]))
        if args.format == "latex":
            return algorithm_box(c)
        if args.format == "markdown":
            return page(c, driver.lowered(c))
        return ir_listing(c)

    before = rendered(base_checked, base_shown, base_path.read_bytes())
    after = rendered(checked, shown, text)
    # (the base's own names in its code as the variant's: its file, its class where code
    # names it, its functions; the texts that name the base keep its name)
    before = before.replace(base_shown, shown)
    base_name, name = base_checked.name, checked.name
    before = re.sub(rf"\b{re.escape(base_name)}\b(?=[(.\]\"`])", name, before)
    stem, new_stem = Path(base_shown).stem, Path(shown).stem
    before = re.sub(
        rf"(?<![A-Za-z0-9.]){re.escape(stem)}(?![A-Za-z0-9])", new_stem, before
    )
    diff = difflib.unified_diff(
        before.splitlines(True),
        after.splitlines(True),
        f"{base.id} ({base_shown})",
        f"{checked.name} ({shown})",
    )
    sys.stdout.writelines(diff)
    return 0


def cmd_show(args) -> int:
    where = P.around(args.spec_dir, None)
    path = P.spec_named(args.spec, where)
    if path is None:
        return _no_spec("show", args.spec)
    text = path.read_bytes()
    shown = P.display(path, where.root if where else None)
    frags = P.fragment_dirs(where, [path])
    if args.diff:
        return _show_diff(args, text, shown, frags, where)
    if args.format == "python" and not args.memory:
        print(compile_text(text, shown, frags), end="")
        return 0
    checked = check_text(text, shown, frags)
    if args.memory:

        table = memory_table(checked)
        if not table:
            print(
                f"{checked.name}: no tensor state per parameter under a precision policy "
                "(flat and random-parameter updates take none)"
            )
            return 0
        print(f"{checked.name}: bytes of optimizer state per parameter element")
        print("\n".join(table))
        return 0
    if args.format == "latex":

        print(algorithm_box(checked), end="")
    elif args.format == "markdown":

        print(page(checked, driver.lowered(checked)))
    else:
        print(ir_listing(checked))
    return 0


def cmd_init(args) -> int:
    """Set a project up in the working directory: the configuration, the spec folder and a
    starter spec that builds and verifies as it stands."""
    here = Path.cwd().resolve()
    found = P.find(here)
    if found is not None and found.root == here:
        print(
            f"optimgen init: {here} is an optimgen project already ({found.config.name} "
            "has [tool.optimgen]); nothing was written",
            file=sys.stderr,
        )
        return 1
    out, specs = args.package.strip("/"), args.spec_dir.strip("/")
    if not all(part.isidentifier() for part in out.split("/")):
        print(
            f"optimgen init: `{args.package}` cannot be imported as a package: use a "
            "folder name that is a Python identifier (e.g. optimizers, mylib/optim)",
            file=sys.stderr,
        )
        return 1
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", args.name):
        print(f"optimgen init: `{args.name}` is not a class name", file=sys.stderr)
        return 1
    config = here / P.CONFIG_FILE
    table = f'[tool.optimgen]\nspecs = "{specs}"\nout = "{out}"\n'
    before = config.read_text(encoding="utf-8") if config.is_file() else ""
    if before:
        try:
            P.tomllib.loads(before)
        except P.tomllib.TOMLDecodeError as exc:
            print(
                f"optimgen init: {config} is not valid TOML ({exc}); nothing was written",
                file=sys.stderr,
            )
            return 1
    # one blank line between the user's last table and ours
    sep = "\n" * (2 - len(before) + len(before.rstrip("\n"))) if before else ""
    try:
        P.tomllib.loads(before + sep + table)
    except P.tomllib.TOMLDecodeError:
        print(
            f"optimgen init: cannot add [tool.optimgen] to {config} (does it define "
            "`tool` inline?); add this table by hand:\n"
            + table
            + "nothing was written",
            file=sys.stderr,
        )
        return 1
    module = snake(args.name)
    starter = here / specs / f"{module}.optim"
    if starter.exists():
        print(
            f"optimgen init: {specs}/{module}.optim exists already; nothing was written",
            file=sys.stderr,
        )
        return 1
    text = TEMPLATE.format(name=args.name, module=module, package=out)
    where = P.Project(
        here, here / specs, here / out, (here / specs / "fragments",), None
    )
    try:
        check_text(text, f"{specs}/{module}.optim", P.fragment_dirs(where))
    except SpecError as e:  # the template is ours: a bug, but say it plainly
        print(e.render(), file=sys.stderr)
        print("optimgen init: nothing was written", file=sys.stderr)
        return 1
    starter.parent.mkdir(parents=True, exist_ok=True)
    driver.write_atomically(starter, text)
    driver.write_atomically(config, before + sep + table)
    print(f"wrote {P.CONFIG_FILE} ([tool.optimgen]: specs = {specs!r}, out = {out!r})")
    print(
        f"wrote {specs}/{module}.optim (SGD with momentum, commented: the start of yours)"
    )
    dotted = out.replace("/", ".")
    print("next:")
    print(f"  optimgen build                       # writes {out}/{module}.py")
    print(f'  python -c "from {dotted} import {args.name}"')
    print(f"  optimgen verify {args.name} --against torch.optim.SGD")
    print("  optimgen new MyAdam --from Adam      # start from a shipped optimizer")
    return 0


def ir_listing(checked) -> str:
    """The lowered optimizer, block by block: one IR statement per entry."""

    opt = driver.lowered(checked)
    out = [f"optimizer {opt.name} ({opt.mode})"]
    out.append("arguments: " + ", ".join(a.name for a in opt.arguments))
    out.append("hyperparameters read by the update: " + ", ".join(opt.hyper))
    for st in opt.states:
        out.append(f"state {st.key}: {st.kind}, {st.scope}, init {st.init!r}")
    passes = [(opt.step_block, opt.group_block, opt.hoisted, opt.body)]
    passes += [
        (p.step_block, p.group_block, p.hoisted, p.body) for p in opt.later_passes
    ]
    for k, (step, group, hoisted, body) in enumerate(passes, start=1):
        for title, stmts in (
            ("once per step", step),
            ("once per group", group),
            ("hoisted (once per group)", hoisted),
            (f"per parameter, pass {k}", body),
        ):
            if stmts:
                out.append(f"-- {title}")
                out += [pprint.pformat(s, width=100) for s in stmts]
    for m in opt.methods:
        out.append(f"-- method {m.name}")
        out += [pprint.pformat(s, width=100) for s in m.body]
    return "\n".join(out)


def add_arguments(sub) -> None:
    i = sub.add_parser(
        "init",
        help="set up an optimgen project here: configuration, spec folder, a starter spec",
        description="Add [tool.optimgen] to ./pyproject.toml (creating it if needed), and "
        "write a starter spec that builds and verifies as it stands.",
        epilog="example: optimgen init --package mylib/optim",
    )
    i.add_argument(
        "--package",
        default=P.DEFAULT_PACKAGE,
        help=f"the folder `optimgen build` writes, an importable package "
        f"(default: {P.DEFAULT_PACKAGE})",
    )
    i.add_argument(
        "--spec-dir",
        default=P.DEFAULT_SPEC_DIR,
        help=f"the folder of your specs (default: {P.DEFAULT_SPEC_DIR})",
    )
    i.add_argument(
        "--name", default="MySGD", help="the starter optimizer's class name (MySGD)"
    )
    i.set_defaults(func=cmd_init)
    n = sub.add_parser(
        "new",
        help="a new spec file to start from (a commented template, or a copy of a spec)",
        description="Write <spec folder>/<name>.optim: a commented template that builds "
        "as it stands (SGD with momentum), or with --from a copy of an existing spec renamed.",
        epilog="example: optimgen new MyAdam --from Adam",
    )
    n.add_argument("name", help="the optimizer's class name, e.g. MyAdam")
    n.add_argument(
        "--from",
        dest="source",
        help="a spec to copy: a file, or the name of one of your specs or of optimgen's "
        "optimizers (e.g. Adam)",
    )
    n.add_argument(
        "--spec-dir", help="where to write it (default: the project's spec folder)"
    )
    n.set_defaults(func=cmd_new)
    s = sub.add_parser(
        "show",
        help="a spec as generated code, LaTeX, Markdown or IR",
        description="Print what the compiler makes of a spec, for reading and review.",
        epilog="example: optimgen show Adam --format latex",
    )
    s.add_argument(
        "spec",
        help="a spec file, or the name of one of your specs or of optimgen's optimizers",
    )
    s.add_argument(
        "--format",
        choices=("python", "latex", "markdown", "ir"),
        default="python",
        help="python: the generated module; latex: the algorithm box; markdown: the "
        "documentation page; ir: the compiler's lowered statements",
    )
    s.add_argument(
        "--memory",
        action="store_true",
        help="bytes of optimizer state per parameter element under each precision "
        "policy (float32, bf16, bf16 + stochastic rounding or Kahan, state dtypes)",
    )
    s.add_argument(
        "--diff",
        action="store_true",
        help="a variant (`optimizer CLion from Lion`) against its base, in the --format "
        "chosen: what its modifiers and inputs change, as a unified diff",
    )
    s.add_argument(
        "--spec-dir",
        help="a spec folder to use instead of the project's (its fragments)",
    )
    s.set_defaults(func=cmd_show)

    # the commands that live in a module of their own: its add_arguments and run
    for name, module, help, example in (
        ("verify", verify, "differential test of a spec's class against a reference class",
         "optimgen verify specs/adam.optim --against torch.optim.Adam"),
        ("plot", plot, "trajectories of optimizers on a 2-D test function (PNG or animated GIF)",
         "optimgen plot Adam:lr=0.05 torch.optim.SGD:lr=0.001,momentum=0.9 "
         "--function rosenbrock --steps 300 --out rosenbrock.png"),
        ("fuzz", fuzz, "the compiler tested against itself: random valid specs on every path",
         "optimgen fuzz --programs 200 --seed 1000"),
        ("fmt", fmt, "canonical formatting of spec files (stable, idempotent; comments kept)",
         "optimgen fmt --check specs/*.optim"),
    ):  # fmt: skip
        p = sub.add_parser(
            name,
            help=help,
            description=module.__doc__.split("\n\n")[0],
            epilog=f"example: {example}",
        )
        module.add_arguments(p)
        p.set_defaults(func=module.run)
