"""Fixtures and the parity-report hooks.

At the end of a session the max deviations recorded by ``parity.py`` are

* printed as a table in pytest's terminal summary (per optimizer and comparison: float32 /
  float64 x for-loop / foreach), and
* written to ``tests/.parity-report.json``.
"""

from __future__ import annotations

import os
import pathlib
import warnings

import pytest
import torch

import parity

REPORT_PATH = pathlib.Path(__file__).with_name(".parity-report.json")


def _swap_in_a_mutant(spec: str) -> None:
    """tests/tools/mutants.py: ``FILE::MODULE::CLASS`` puts a mutant of generated/MODULE.py in
    the place of the committed one for this session, before any test module imports it.
    """
    import importlib.util
    import sys

    import generated

    path, module, name = spec.split("::")
    loader = importlib.util.spec_from_file_location(f"generated.{module}", path)
    mutant = importlib.util.module_from_spec(loader)
    sys.modules[f"generated.{module}"] = mutant
    loader.loader.exec_module(mutant)
    setattr(generated, module, mutant)
    setattr(generated, name, getattr(mutant, name))


if os.environ.get("OPTIMGEN_MUTANT"):
    _swap_in_a_mutant(os.environ["OPTIMGEN_MUTANT"])


@pytest.fixture(autouse=True)
def _restore_torch_global_state():
    """Tests seed torch's default generator and may change the default dtype: undo."""
    rng = torch.get_rng_state()
    default_dtype = torch.get_default_dtype()
    yield
    torch.set_rng_state(rng)
    torch.set_default_dtype(default_dtype)


@pytest.fixture
def generated():
    """The `generated` package (the test fails, readably, if it cannot be imported)."""
    return parity.generated_module()


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):  # a pytest-xdist worker: send it home
        session.config.workeroutput["parity_report"] = parity.report_entries()
        return
    if not parity.REPORT:
        return
    try:
        parity.write_report_json(REPORT_PATH)
    except OSError as exc:  # pragma: no cover - read-only checkout
        warnings.warn(f"could not write {REPORT_PATH}: {exc}")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist (controller): a worker finished; fold in the deviations it saw."""
    parity.merge_report(getattr(node, "workeroutput", {}).get("parity_report", []))


def _fmt(entry) -> str:
    if entry is None:
        return "-"
    return f"{entry['max_abs']:.1e} / {entry['max_rel']:.1e}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not parity.REPORT:
        return
    impls = ["for-loop", "foreach"]
    if any(impl == "fused" for *_, impl in parity.REPORT):
        impls.append("fused")
    columns = [(dtype, impl) for dtype in ("float32", "float64") for impl in impls]
    rows = sorted({(opt, comparison) for opt, comparison, _, _ in parity.REPORT})
    header = ["optimizer", "comparison"] + [f"{d} {i}" for d, i in columns]
    table = [header]
    for opt, comparison in rows:
        cells = [opt, comparison]
        for dtype, impl in columns:
            cells.append(_fmt(parity.REPORT.get((opt, comparison, dtype, impl))))
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    tr = terminalreporter
    tr.write_sep("=", "optimizer parity: max abs / max rel deviation seen")
    for i, r in enumerate(table):
        tr.write_line("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            tr.write_line("  ".join("-" * w for w in widths))
    tr.write_line(
        "(complex runs are listed under the real dtype of the same precision; "
        f"details in {REPORT_PATH.name})"
    )
