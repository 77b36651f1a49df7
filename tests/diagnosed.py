"""The errors a spec gets, as the table tests of refusals read them.

``errors_of(text)`` checks a spec held in memory and returns each error as ``"CODE message"``
(``[]`` for a spec that checks): a table row names the code and the start of the message it
expects, and a failing row prints every error the spec did get.
"""

from __future__ import annotations

from generator.api import check_text
from generator.language.diagnostics import SpecError


def errors_of(text: str) -> list[str]:
    try:
        check_text(text)
    except SpecError as e:
        return [f"{d.code} {d.message}" for d in e.diagnostics]
    return []
