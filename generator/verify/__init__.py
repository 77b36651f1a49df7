"""The differential harness and the engine of `optimgen verify` around it.

An optimizer class is held to a reference (another class, or its own for-loop) by running both
over the same seeded steps of a problem and comparing their parameters and states after every
step, within a tolerance, on each implementation path the class declares. The problems are in
``problems``, the strict comparisons of live optimizers in ``compare``, and the runners (one
optimizer's trajectory, two optimizers in lockstep) with their implementation paths in
``harness``: `optimgen verify` (generator.commands.verify), the fuzzer and the test suite
(tests/parity.py and the parity tests) all run on them. ``grid`` derives the configurations a
spec calls for from its own conditions, and ``coverage`` measures which branches of the update
those configurations reached. The compiler does not import torch: these modules import it
inside the functions that run optimizers.
"""
