"""The language's types: one lattice for every update block, per-parameter and flat alike.

Part of the language (language → check → lower → emit). The builtin table (generator.language.builtins)
declares its argument and result types in these terms; the checker gives every expression one
(generator.check.kinds for the per-parameter blocks, whose expressions each have exactly one type,
generator.check.types for flat updates and procedures, where a name may hold values of several types
and a fixed point infers their union); the lowering chooses the forms values take from them.

A type is an atom (``Kind``), a list of a type (``ListOf``) or a tuple of types (``TupleOf``). A
*union* (a frozenset of types) is what a name of a flat update may hold; ``join`` is the lattice's
least upper bound, under which lists join their items and tuples of one length join item by item.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Named(str, enum.Enum):
    """An enum whose members are also their names' strings: printed, hashed and compared as
    the string, so the printers and templates spell them as before, while a value built with
    a misspelt one fails when it is made."""

    __str__ = str.__str__
    __format__ = str.__format__
    __hash__ = str.__hash__


class Kind(Named):
    """The atoms of the lattice."""

    BOOL = "bool"  # a decision, known on the host (a Python `if` in the generated code)
    INT = "int"  # a whole number (a dimension, a step count)
    SCALAR = "scalar"  # a number (a hyperparameter, a value that depends on the step)
    STR = "str"
    DTYPE = (
        "dtype"  # a torch dtype (an input: the dtype a state is made in, or a cast's)
    )
    NONE = "none"  # an optional input left out, a lazy state not yet set
    TENSOR = "tensor"  # shaped like the parameter; in a flat update, the vector of all of them
    MASK = (
        "tensorbool"  # an elementwise comparison of tensors (the condition of `where`)
    )
    REDUCED = "reduced"  # a 0-d tensor on the parameters' device (a flat update's dot product)


@dataclass(frozen=True)
class ListOf:
    """A list whose items have the union type ``item``."""

    item: frozenset

    def __str__(self) -> str:
        return f"list of {describe(self.item)}"


@dataclass(frozen=True)
class TupleOf:
    """A tuple of a fixed length, item by item."""

    items: tuple[frozenset, ...]

    def __str__(self) -> str:
        return "(" + ", ".join(describe(t) for t in self.items) + ")"


Type = Kind | ListOf | TupleOf

EMPTY: frozenset = frozenset()  # nothing known yet (the fixed point's start)


def union(*types: Type) -> frozenset:
    return frozenset(types)


def join(a: frozenset, b: frozenset) -> frozenset:
    """The union of the values of ``a`` and of ``b``: lists join their items, tuples of one
    length item by item, so that a union holds at most one list and one tuple of each length.
    """
    atoms: set = set()
    lists: list[frozenset] = []
    tuples: dict[int, tuple[frozenset, ...]] = {}
    for x in a | b:
        if isinstance(x, ListOf):
            lists.append(x.item)
        elif isinstance(x, TupleOf):
            old = tuples.get(len(x.items))
            tuples[len(x.items)] = (
                x.items
                if old is None
                else tuple(join(p, q) for p, q in zip(old, x.items))
            )
        else:
            atoms.add(x)
    if lists:
        item = EMPTY
        for t in lists:
            item = join(item, t)
        atoms.add(ListOf(item))
    atoms.update(TupleOf(items) for items in tuples.values())
    return frozenset(atoms)


# the type of a per-parameter update's lists (list states, local lists): of tensors
TENSORS = ListOf(union(Kind.TENSOR))


def list_of(t: frozenset) -> frozenset:
    return frozenset({ListOf(t)})


def element(t: frozenset) -> frozenset:
    """The union of the items of the lists and tuples in ``t``."""
    out = EMPTY
    for x in t:
        for item in (
            (x.item,)
            if isinstance(x, ListOf)
            else x.items if isinstance(x, TupleOf) else ()
        ):
            out = join(out, item)
    return out


def is_list(t: frozenset) -> bool:
    return any(isinstance(x, ListOf) for x in t)


def tuple_sizes(t: frozenset) -> set[int]:
    return {len(x.items) for x in t if isinstance(x, TupleOf)}


def describe(t: frozenset) -> str:
    """A union for a message: ``tensor``, ``scalar or none``, ``list of tensor``."""
    return " or ".join(sorted(str(x) for x in t)) or "nothing yet"
