"""The fuzzer's programs: random *valid* specs of the language, drawn from a seed.

Part of `optimgen fuzz` (generator.commands.fuzz runs, compares and minimizes them). A program is
drawn from a seed (``random.Random``: the same seed gives the same spec on every machine). It has
inputs of each kind (a learning rate, decay rates in (0, 1), flags, a period), states of each kind
(tensors starting at 0 or at the parameter, lazy ones given their first value by ``initially``,
per-parameter, group and optimizer counters, a list state), and an update built from the language's
constructs: tensor locals, state updates, lists (a list state's items updated in a loop over them,
a local list read by its items: no fused path then, nor a foreach path where an item changes
under a shape branch), branches on flags, on shapes and on counters (decided
per parameter, so the foreach path partitions its lists), nested branches, ``repeat`` blocks and
``for`` loops, calls of procedures drawn with the program (inlined by the checker),
conditional values, reductions (``norm``, ``sum``, ``dot``, ``mean`` along a dimension under a
shape branch), and the elementwise functions. Divisions and the update are guarded (``abs(x) + 1``
under divisions, ``clamp`` on the update), but a state fed by its own square can still overflow:
generator.commands.fuzz then compares nothing in that dtype, and says so. A program prints itself
as spec text (generator.commands.fuzz_model holds that model, and ``prune``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from generator.commands.fuzz_model import (
    Assign,
    Expr,
    If,
    Program,
    Repeat,
    _walk,
    leaf,
    prune,
)

# ---- drawing a program ----------------------------------------------------------------------------


@dataclass
class _Scope:
    tensors: list[str]
    matrix: bool = (
        False  # under `if dim(param) > 1`: reductions along a dimension allowed
    )
    depth: int = 0
    matrix2: bool = False  # under `if dim(param) == 2`: matrix products allowed


@dataclass
class _Draw:
    rng: random.Random
    decays: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    counters: list[str] = field(
        default_factory=list
    )  # per-parameter: per-parameter branches
    numbers: list[str] = field(default_factory=list)  # numbers the update may read
    periods: list[str] = field(default_factory=list)
    locals: int = 0
    constructs: dict = field(default_factory=dict)
    procedures: list = field(default_factory=list)

    def note(self, construct: str) -> None:
        self.constructs[construct] = self.constructs.get(construct, 0) + 1

    def local(self) -> str:
        self.locals += 1
        return f"x{self.locals}"

    # -- expressions --------------------------------------------------------------------------------
    def scalar(self) -> Expr:
        r = self.rng.random()
        if r < 0.35:
            return leaf(self.rng.choice(["0.5", "2", "0.1", "1.5", "0.9"]), "scalar")
        if r < 0.6 and self.decays:
            d = self.rng.choice(self.decays)
            return Expr("(1 - {})", (leaf(d, "scalar"),), "scalar")
        if r < 0.8 and self.decays and self.counters:
            self.note("bias correction")
            d, t = self.rng.choice(self.decays), self.rng.choice(self.counters)
            return Expr(
                "sqrt(1 - {}^{})", (leaf(d, "scalar"), leaf(t, "scalar")), "scalar"
            )
        if self.numbers:
            return leaf(self.rng.choice(self.numbers), "scalar")
        return leaf("0.5", "scalar")

    def tensor(self, scope: _Scope, depth: int) -> Expr:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.25:
            return leaf(rng.choice(scope.tensors))
        a = lambda: self.tensor(scope, depth - 1)  # noqa: E731
        choices = [
            ("{} + {}", 2),
            ("{} - {}", 2),
            ("scale", 3),
            ("lerp", 2),
            ("max({}, {})", 1),
            ("min({}, {})", 1),
            ("abs({})", 1),
            ("clamp({}, -1, 1)", 1),
            ("{} / (abs({}) + 1)", 2),
            ("sqrt(abs({}) + 1e-8)", 1),
            ("exp(-abs({}))", 1),
            ("{}^2", 1),
            ("{} * {}", 1),
            ("sign({})", 0.4),
            ("where({} > 0, {}, {})", 0.4),
            (MASKS_JOINED, 0.3),
            ("{} / (norm({}) + 1)", 1),
            ("{} * (sum(abs({})) / (numel(param) + 1))", 0.5),
            ("{} * dot({}, {}) / (numel(param) + 1)", 0.3),
            ("atan2({}, abs({}) + 1)", 0.3),
            ("{} if {} else {}", 0.6 if self.flags else 0),
            ("{} - mean({}, -1)", 1.5 if scope.matrix else 0),
            ("{} / (norm({}, -2) + 1)", 1 if scope.matrix else 0),
            # (m, n) @ (n, m) @ (m, n) and (m, n) @ ((n, m) @ (m, n)): the parameter's shape
            # (the operands grouped: a product binds as tightly as `*` and `/`)
            (MATMUL_RIGHT, 1 if scope.matrix2 else 0),
            (MATMUL_LEFT, 1 if scope.matrix2 else 0),
        ]
        template = rng.choices([c for c, _ in choices], [w for _, w in choices])[0]
        self.note(_construct_of(template))
        if template == "scale":
            return Expr("{} * {}", (self.scalar(), a()))
        if template == "lerp":
            return Expr("lerp({}, {}, {})", (a(), a(), self.scalar_weight()))
        if template == "{} if {} else {}":
            flag = leaf(rng.choice(self.flags), "scalar")
            return Expr("({} if {} else {})", (a(), flag, a()))
        n = template.count("{}")
        return Expr(template, tuple(a() for _ in range(n)))

    def procedure_call(self, scope: _Scope) -> Expr:
        """A call of a procedure drawn for it: of one or two of the scope's tensors and a
        number; it computes a local of its own and returns a value made from it (the checker
        inlines it where it is called)."""
        self.note("procedure call")
        name = f"p{len(self.procedures)}"
        tensors = ("u", "v")[: self.rng.choice([1, 2])]
        own = self.pure(list(tensors), 2)
        returned = Expr("lerp({}, {}, 0.5)", (leaf("w"), self.pure(list(tensors), 2)))
        body = (f"w <- c * ({own.render()})", f"return {returned.render()}")
        self.procedures.append((name, tensors + ("c",), body))
        args = tuple(leaf(self.rng.choice(scope.tensors)) for _ in tensors)
        args += (self.scalar(),)
        return Expr(name + "(" + ", ".join("{}" for _ in args) + ")", args)

    def pure(self, leaves: list[str], depth: int) -> Expr:
        """A tensor expression of ``leaves`` alone (a procedure sees only its arguments)."""
        if depth <= 0 or self.rng.random() < 0.3:
            return leaf(self.rng.choice(leaves))
        template = self.rng.choice(_PURE)
        n = template.count("{}")
        return Expr(template, tuple(self.pure(leaves, depth - 1) for _ in range(n)))

    def scalar_weight(self) -> Expr:
        if self.decays and self.rng.random() < 0.6:
            return Expr(
                "1 - {}", (leaf(self.rng.choice(self.decays), "scalar"),), "scalar"
            )
        return leaf(self.rng.choice(["0.1", "0.5", "0.25"]), "scalar")

    # -- statements ------------------------------------------------------------------------------
    def block(self, scope: _Scope, states: list[str], size: int, nesting: int) -> list:
        out = []
        for _ in range(size):
            r = self.rng.random()
            if r < 0.3:
                name = self.local()
                if self.rng.random() < 0.3:
                    value = self.procedure_call(scope)
                else:
                    value = self.tensor(scope, 3)
                out.append(Assign(name, value))
                scope.tensors.append(name)
            elif r < 0.55 and states:
                out.append(self.state_update(scope, self.rng.choice(states)))
            elif r < 0.8 and nesting > 0:
                out.append(self.branch(scope, states, nesting))
            elif r < 0.88 and nesting > 0:
                out.append(self.repeat(scope))
            else:
                name = self.local()
                out.append(Assign(name, self.tensor(scope, 2)))
                scope.tensors.append(name)
        return out

    def state_update(self, scope: _Scope, s: str) -> Assign:
        self.note("state update")
        value = self.tensor(scope, 2)
        form = self.rng.randrange(3)
        if form == 0:
            return Assign(
                s, Expr("lerp({}, {}, {})", (leaf(s), value, self.scalar_weight()))
            )
        if form == 1 and self.decays:
            d = leaf(self.rng.choice(self.decays), "scalar")
            return Assign(s, Expr("{} * {} + (1 - {}) * {}", (d, leaf(s), d, value)))
        return Assign(s, Expr("max({}, abs({}))", (leaf(s), value)))

    def branch(self, scope: _Scope, states: list[str], nesting: int) -> If:
        rng = self.rng
        kinds = (
            ["shape"] + ["flag"] * bool(self.flags) + ["counter"] * bool(self.counters)
        )
        kind = rng.choice(kinds)
        self.note(f"{kind} branch" + (" (nested)" if scope.depth else ""))
        matrix = scope.matrix
        if kind == "flag":
            cond = rng.choice(self.flags)
            cond = f"not {cond}" if rng.random() < 0.3 else cond
        elif kind == "shape":
            cond = rng.choice(
                [
                    "dim(param) > 1",
                    "numel(param) > 4",
                    "size(param, 0) > 2",
                    "dim(param) == 2",
                ]
            )
            matrix = matrix or cond in ("dim(param) > 1", "dim(param) == 2")
        else:
            t = rng.choice(self.counters)
            if self.periods and rng.random() < 0.5:
                cond = f"{t} % {rng.choice(self.periods)} == 0"
            else:
                cond = f"{t} < {rng.choice(['3', '2'])}"
        then_scope = _Scope(
            list(scope.tensors),
            matrix,
            scope.depth + 1,
            matrix2=scope.matrix2 or (kind == "shape" and cond == "dim(param) == 2"),
        )
        else_scope = _Scope(
            list(scope.tensors), scope.matrix, scope.depth + 1, matrix2=scope.matrix2
        )
        then = self.block(then_scope, states, rng.randint(1, 3), nesting - 1)
        orelse = (
            self.block(else_scope, states, rng.randint(1, 2), nesting - 1)
            if rng.random() < 0.6
            else []
        )
        # a local set in both branches is set after them: the foreach path merges it back
        if rng.random() < 0.5 and then and orelse:
            shared = self.local()
            then.append(Assign(shared, self.tensor(then_scope, 1)))
            orelse.append(Assign(shared, self.tensor(else_scope, 1)))
            scope.tensors.append(shared)
            self.note("local set in both branches")
        return If(cond, tuple(then), tuple(orelse), kind)

    def repeat(self, scope: _Scope):
        # a repeated block updates a local made before it (what it makes first does not
        # exist after it)
        made = [t for t in scope.tensors if t.startswith("x")]
        if not made:
            name = self.local()
            value = self.tensor(scope, 2)
            scope.tensors.append(name)
            return Assign(name, value)
        target = self.rng.choice(made)
        inner = _Scope(list(scope.tensors), scope.matrix, scope.depth)
        count = self.rng.choice([2, 3])
        if self.rng.random() < 0.5:
            self.note("repeat")
            value = Expr("lerp({}, {}, 0.5)", (leaf(target), self.tensor(inner, 1)))
            return Repeat(count, (Assign(target, value),))
        # a `for` loop: its variable weighs each iteration (the checker refuses it with
        # `fused`, which check_program then drops)
        reverse = self.rng.random() < 0.5
        self.note("for loop, counting down" if reverse else "for loop")
        weight = "0.5 / (j + 1)" if not reverse else "0.5 / j"
        value = Expr(
            "lerp({}, {}, " + weight + ")", (leaf(target), self.tensor(inner, 1))
        )
        return Repeat(count, (Assign(target, value),), "j", reverse)


# the templates of a procedure's expressions: of its tensor arguments only
_PURE = (
    "{} + {}",
    "{} - {}",
    "{} * {}",
    "abs({})",
    "clamp({}, -1, 1)",
    "{} / (abs({}) + 1)",
    "sqrt(abs({}) + 1e-8)",
    "exp(-abs({}))",
    "max({}, {})",
    "{} / (norm({}) + 1)",
)

# masks (elementwise comparisons) joined by and/or/not, chosen by
MASKS_JOINED = "where(({} > 0 and not ({} > 1)) or {} < -1, {}, {})"

# (m, n) @ (n, m) @ (m, n) and (m, n) @ ((n, m) @ (m, n)): products of the parameter's shape
MATMUL_RIGHT = "(({}) @ transpose({}) @ ({})) / (numel(param) + 1)"
MATMUL_LEFT = "(({}) @ (transpose({}) @ ({}))) / (numel(param) + 1)"

CONSTRUCTS = {
    "{} + {}": "arithmetic",
    "{} - {}": "arithmetic",
    "{} * {}": "arithmetic",
    "{}^2": "arithmetic",
    "{} / (abs({}) + 1)": "arithmetic",
    "scale": "number times tensor",
    "lerp": "lerp",
    "max({}, {})": "max/min",
    "min({}, {})": "max/min",
    "abs({})": "elementwise function",
    "clamp({}, -1, 1)": "clamp",
    "sqrt(abs({}) + 1e-8)": "elementwise function",
    "exp(-abs({}))": "elementwise function",
    "sign({})": "sign",
    "where({} > 0, {}, {})": "where",
    MASKS_JOINED: "masks joined",
    "atan2({}, abs({}) + 1)": "atan2",
    "{} / (norm({}) + 1)": "whole-tensor reduction",
    "{} * (sum(abs({})) / (numel(param) + 1))": "whole-tensor reduction",
    "{} * dot({}, {}) / (numel(param) + 1)": "whole-tensor reduction",
    "{} if {} else {}": "conditional value",
    "{} - mean({}, -1)": "reduction along a dimension",
    "{} / (norm({}, -2) + 1)": "reduction along a dimension",
    MATMUL_RIGHT: "matrix product",
    MATMUL_LEFT: "matrix product",
}


def _construct_of(template: str) -> str:
    return CONSTRUCTS.get(template, "arithmetic")


def draw(seed: int, rng=None) -> tuple[Program, dict]:
    """The program of ``seed`` and the constructs it holds (counted).

    ``rng`` replaces the seeded ``random.Random`` as the source of every choice: anything with its
    ``random``, ``choice``, ``choices``, ``randint`` and ``randrange`` (the tests pass hypothesis's
    choices through :class:`Choices`, so that hypothesis explores and shrinks the programs).
    """
    rng = random.Random(seed) if rng is None else rng
    d = _Draw(rng)
    inputs = [("lr", f"input lr: float = {rng.choice(['1e-2', '3e-3', '0.05'])}")]
    for k in range(rng.randint(1, 3)):
        d.decays.append(f"b{k}")
        value = rng.choice(["0.9", "0.99", "0.5", "0.8"])
        inputs.append(
            (
                f"b{k}",
                f"input b{k}: float = {value}\n"
                f'    requires 0 <= b{k} < 1 else "b{k} must be in [0, 1): {{b{k}}}"',
            )
        )
    for k in range(rng.randint(0, 2)):
        d.flags.append(f"f{k}")
        inputs.append((f"f{k}", f"input f{k}: bool = {rng.choice(['false', 'true'])}"))
    if rng.random() < 0.5:
        d.periods.append("k")
        inputs.append(("k", f"input k: int = {rng.choice([2, 3])}"))
    states, state_names = [], []
    lazy = []
    for k in range(rng.randint(1, 3)):
        name = f"s{k}"
        form = rng.randrange(3)
        if form == 0:
            states.append((name, f"state {name} ({name}) <- param"))
            d.note("state from the parameter")
        elif form == 1:
            states.append((name, f"state {name} ({name}) lazy"))
            lazy.append(name)
            d.note("lazy state")
            continue
        else:
            states.append((name, f"state {name} ({name}) <- 0"))
            d.note("tensor state")
        state_names.append(name)
    optimizer_block, group_block = [], []
    if rng.random() < 0.6:
        states.append(("t", "state t (step): count <- 0"))
        d.counters.append("t")
        d.note("parameter counter")
    if rng.random() < 0.4:
        states.append(("n", "state group n (n): count <- 0"))
        group_block.append(Assign("n", Expr("n + 1", (), "scalar")))
        d.numbers.append("n")
        d.note("group counter")
        if d.decays and rng.random() < 0.5:
            group_block.append(
                Assign("bc", Expr(f"1 - {rng.choice(d.decays)}^n", (), "scalar"))
            )
            d.numbers.append("bc")
            d.note("group value")
    if rng.random() < 0.3:
        states.append(("c", "state optimizer c (c): count <- 0"))
        if rng.random() < 0.5:
            optimizer_block.append(Assign("c", Expr("c + 1", (), "scalar")))
        else:
            optimizer_block.append(
                Assign("c", Expr("0 if c > 2 else c + 1", (), "scalar"))
            )
            d.note("counter set from its own value")
        d.numbers.append("c")
        d.note("optimizer counter")
    body = []
    if "t" in d.counters:
        body.append(Assign("t", Expr("t + 1", (), "scalar")))
    if rng.random() < 0.4:
        d.flags.append("maximize")
        inputs.append(("maximize", "input maximize: bool = false"))
        body.append(Assign("g", Expr("-grad if maximize else grad", (), "tensor")))
        base = "g"
        d.note("maximize")
    else:
        base = "grad"
    scope = _Scope([base])
    if d.counters and d.decays and rng.random() < 0.5:
        # a number per parameter (its counter's): the foreach path keeps a list of them
        d.locals += 1
        name = f"q{d.locals}"
        body.append(Assign(name, Expr(f"1 - {rng.choice(d.decays)}^t", (), "scalar")))
        d.numbers.append(name)
        d.note("per-parameter number")
    for name in lazy:
        first = d.tensor(scope, 1)
        value = Expr(
            "lerp({}, {}, {})", (leaf(name), d.tensor(scope, 2), d.scalar_weight())
        )
        body.append(Assign(name, value, first))
        scope.tensors.append(name)
    scope.tensors += state_names
    body += d.block(scope, state_names, rng.randint(2, 5), nesting=2)
    plain = [f for f in d.flags if f != "maximize"]
    if plain and rng.random() < 0.4:
        # a state that exists under a flag only, updated and read under it
        flag = rng.choice(plain)
        states.append(("sf", f"state sf (sf) <- 0 if {flag}"))
        x = d.local()
        body.append(Assign(x, d.tensor(scope, 2)))
        update = Assign(
            "sf",
            Expr(
                "lerp({}, {}, {})", (leaf("sf"), d.tensor(scope, 1), d.scalar_weight())
            ),
        )
        body.append(
            If(
                flag,
                (update, Assign(x, Expr("{} + 0.5 * {}", (leaf(x), leaf("sf"))))),
                (),
                "flag",
            )
        )
        scope.tensors.append(x)
        d.note("state under a flag")
    if rng.random() < 0.2:
        # a state of its own shape (Shampoo's left statistic), updated with a product (addmm_)
        # and read by one, on matrices
        states.append(
            ("sm", "state sm (sm) <- 0.5 * eye(size(param, 0)) if dim(param) == 2")
        )
        x = d.local()
        body.append(Assign(x, d.tensor(scope, 2)))
        y = d.tensor(scope, 1)
        update = Assign(
            "sm",
            Expr("{} * sm + 0.1 * (({}) @ transpose({}))", (d.scalar_weight(), y, y)),
        )
        read = Assign(x, Expr("{} + (sm @ ({})) / (norm(sm) + 1)", (leaf(x), leaf(x))))
        body.append(If("dim(param) == 2", (update, read), (), "shape"))
        scope.tensors.append(x)
        d.note("state of its own shape")
    if rng.random() < 0.35:
        # a state shaped like the parameter with its last dimension reduced (Adafactor's rows)
        states.append(("sr", "state sr (sr) <- 0 if dim(param) > 1, reduced over -1"))
        x = d.local()
        body.append(Assign(x, d.tensor(scope, 2)))
        row = Expr("mean({}^2, -1)", (leaf(x),))
        update = Assign(
            "sr", Expr("lerp({}, {}, {})", (leaf("sr"), row, d.scalar_weight()))
        )
        scaled = Assign(x, Expr("{} / (sqrt({}) + 1)", (leaf(x), leaf("sr"))))
        body.append(If("dim(param) > 1", (update, scaled), (), "shape"))
        scope.tensors.append(x)
        d.note("reduced state")
    if rng.random() < 0.15:
        # a lazy state made inside branches decided per parameter, each with a first value
        # of its own (GaLore's projection, made on the side a matrix's shape picks): the
        # foreach path makes it in a branch's part of the lists and puts it back in the group's
        states.append(("sz", "state sz (sz) lazy"))
        x = d.local()
        body.append(Assign(x, d.tensor(scope, 2)))

        def made() -> Assign:
            again = Expr(
                "lerp({}, {}, {})", (leaf("sz"), d.tensor(scope, 1), d.scalar_weight())
            )
            return Assign("sz", again, d.tensor(scope, 1))

        tall = If("size(param, 0) >= size(param, 1)", (made(),), (made(),), "shape")
        body.append(If("dim(param) == 2", (tall,), (made(),), "shape"))
        body.append(Assign(x, Expr("{} + 0.5 * {}", (leaf(x), leaf("sz")))))
        scope.tensors.append(x)
        d.note("lazy state made in shape branches")
    if rng.random() < 0.15:
        # SM3's accumulators: one per dimension (a 0-d parameter keeps one), each a vector
        # along its dimension, raised in a loop over the rank (the foreach path runs once for
        # each rank in a group)
        states.append(
            (
                "sd",
                "state sd (sd) <- [zeros_along(param, k) for k in range(max(dim(param), 1))]",
            )
        )
        x = d.local()
        body.append(Assign(x, d.tensor(scope, 2)))
        raised = Assign(
            "sd[dk]",
            Expr(
                "max({}, max_except({} * {}, dk))", (leaf("sd[dk]"), leaf(x), leaf(x))
            ),
        )
        body.append(Repeat("dim(param)", (raised,), "dk"))
        body.append(Assign(x, Expr("{} / (sqrt({}) + 1)", (leaf(x), leaf("sd[0]")))))
        scope.tensors.append(x)
        d.note("list for each dimension")
    lists = rng.random() < 0.2
    if lists:
        reader = _lists(d, rng, scope, inputs, states, body)
    for name in state_names:  # every state is updated at least once
        if not any(isinstance(s, Assign) and s.target == name for s in _walk(body)):
            body.append(d.state_update(scope, name))
    u = d.tensor(scope, 3)
    if lists:  # (what the lists held reaches the parameter)
        u = Expr("{} + 0.1 * {}", (u, leaf(reader)))
    if rng.random() < 0.3 and d.decays:
        body.append(
            Assign(
                "param", Expr(f"param * (1 - lr * (1 - {rng.choice(d.decays)}))", ())
            )
        )
        d.note("decoupled decay")
    group_block2, body2 = [], []
    # (a list for each dimension, or a list item under a branch on the rank, runs the foreach
    # path once per rank, so a total is summed in another order than the for-loop's: float32
    # totals then differ by their rounding)
    by_rank = {"list for each dimension", "list item under a shape branch"}
    if rng.random() < 0.25 and not by_rank & d.constructs.keys():
        # two passes: the first sums over every parameter, the second steps by it
        states.append(("tot", "state optimizer tot (tot): total <- 0"))
        optimizer_block.append(Assign("tot", Expr("0", (), "scalar")))
        body.append(Assign("tot", Expr("tot + sum(abs({}))", (d.tensor(scope, 1),))))
        group_block2.append(
            Assign("scale", Expr("1 / (1 + item(tot) / 100)", (), "scalar"))
        )
        second = _Scope([base if base == "grad" else "grad"] + state_names)
        saved = d.numbers
        # (a pass reads the counters and its own group block's numbers only)
        d.numbers = [n for n in saved if n in ("n", "c")] + ["scale"]
        body2.append(
            Assign(
                "param",
                Expr("param - lr * scale * clamp({}, -1, 1)", (d.tensor(second, 2),)),
            )
        )
        d.numbers = saved
        d.note("two passes with a total")
    # (a list has no fused form)
    fused = (
        rng.random() < 0.7
        and not lists
        and "list for each dimension" not in d.constructs
    )
    if rng.random() < 0.3:
        # RAdam's spelling: a scaled local, then the product subtracted whole, which the
        # foreach path regroups (generator.lower.products) into one fused operation
        d.note("product regrouped")
        x = d.local()
        body.append(Assign(x, Expr("clamp({}, -1, 1) * {}", (u, d.scalar()))))
        w = Expr("clamp({}, -1, 1)", (d.tensor(scope, 2),))
        body.append(Assign("param", Expr("param - ({} * lr * {})", (leaf(x), w))))
    else:
        body.append(Assign("param", Expr("param - lr * clamp({}, -1, 1)", (u,))))
    program = Program(
        seed,
        tuple(inputs),
        tuple(states),
        tuple(optimizer_block),
        tuple(group_block),
        tuple(body),
        fused=fused,
        foreach=True,
        group_block2=tuple(group_block2),
        body2=tuple(body2),
        procedures=tuple(d.procedures),
    )
    return prune(program), d.constructs


def _lists(d: _Draw, rng, scope: _Scope, inputs: list, states: list, body: list) -> str:
    """A list state (AggMo's buffers: ``nl`` tensors of each parameter, each updated in a loop
    over them) and, sometimes, a local list of tensors read item by item, read into a local (its
    name returned); the program then has no fused path, and is held to its twin without lists
    as well (generator.commands.fuzz)."""
    first = rng.choice(["0", "param"])
    if rng.random() < 0.5:
        inputs.append(("nl", f"input nl: int = {rng.choice([1, 2, 3])}"))
        states.append(("sl", f"state sl (sl) <- [{first}] * nl"))
        count, weight = "nl", d.scalar_weight()
    else:
        # AggMo's decay rates: a `tuple of float` input sizes the list, one weight per item
        rates = [
            rng.choice(["0.5", "0.25", "0.9", "0.1"]) for _ in range(rng.choice([2, 3]))
        ]
        inputs.append(("rl", f"input rl: tuple of float = ({', '.join(rates)})"))
        states.append(("sl", f"state sl (sl) <- [{first}] * len(rl)"))
        count, weight = "len(rl)", leaf("rl[j]", "scalar")
        d.note("tuple input")
    d.note("list state")
    x = d.local()
    body.append(Assign(x, d.tensor(scope, 1)))
    item = leaf("sl[j]")
    update = Assign(
        "sl[j]", Expr("lerp({}, {}, {})", (item, d.tensor(scope, 2), weight))
    )
    read = Assign(x, Expr("{} + 0.5 * {} / (j + 1)", (leaf(x), item)))
    if rng.random() < 0.3:
        # decided by the rank: the foreach path runs once for each rank, one branch in each
        update = If("dim(param) > 1", (update,), (), "shape")
        d.note("list item under a shape branch")
    body.append(Repeat(count, (update, read), "j"))
    if rng.random() < 0.5:
        d.locals += 1
        xl = f"xl{d.locals}"
        items = (d.tensor(scope, 1), d.tensor(scope, 1))
        body.append(Assign(xl, Expr("[{}, {}]", items)))
        body.append(Assign(x, Expr("{} - 0.25 * {}", (leaf(x), leaf(f"{xl}[1]")))))
        d.note("local list")
    scope.tensors.append(x)
    return x


class Choices:
    """``random.Random``'s interface over a draw function (``hypothesis``'s ``data.draw``): each
    choice becomes one drawn value, so hypothesis's shrinking moves every choice towards its first
    option (a literal before a reference, fewer statements, no branch) and ends at a small program.
    The strategies are built by the caller, which keeps hypothesis out of the CLI's imports.
    """

    def __init__(self, draw, floats, integers, sampled_from):
        self._draw = draw
        self._floats, self._ints, self._sampled = floats, integers, sampled_from

    def random(self) -> float:
        return self._draw(self._floats(0.0, 1.0, exclude_max=True))

    def choice(self, seq):
        return self._draw(self._sampled(list(seq)))

    def choices(self, population, weights):
        u, total = self.random() * sum(weights), 0.0
        for item, w in zip(population, weights):
            total += w
            if u < total:
                return [item]
        return [population[-1]]

    def randint(self, a: int, b: int) -> int:
        return self._draw(self._ints(a, b))

    def randrange(self, a: int, b: int | None = None) -> int:
        lo, hi = (0, a) if b is None else (a, b)
        return self._draw(self._ints(lo, hi - 1))
