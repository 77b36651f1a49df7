"""The IR: what a generated optimizer does, typed as scalar / tensor / bool, independent of Python text.

generator.lower.lowering builds it from a checked spec; the emitters print it twice, as a single-tensor loop
and as a multi-tensor (``torch._foreach_*``) path, so both come from one description. Scalars are
Python numbers in the generated code (hyperparameters, bias corrections); they are *varying* when they
differ between parameters (they depend on a per-parameter counter such as ``step``), which the
multi-tensor path turns into lists. Tensor expressions are trees of named operations whose printing
(method, in-place method, foreach function) is table-driven in generator.emit.python.ops. A flat
update (LBFGS) and its procedures are the IR's imperative part: values of any type, each with the
form its type gives it, in loops with lists and procedure calls (generator.lower.flat builds them).

The package holds the nodes (generator.ir.nodes), the walkers over them (generator.ir.walk) and the
optimizer they make up (generator.ir.optimizer); ``from generator import ir`` reaches them all.
"""

from __future__ import annotations

from generator.ir.nodes import *  # noqa: F403
from generator.ir.nodes import number  # noqa: F401
from generator.ir.optimizer import *  # noqa: F403
from generator.ir.walk import *  # noqa: F403


def is_node(x) -> bool:
    """Is ``x`` an IR node (rather than a Python value some node holds)?"""
    return type(x).__module__.startswith(__name__ + ".")
