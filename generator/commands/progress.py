"""A progress line for the commands that take seconds (bench, train, verify, plot): one stderr
line rewritten in place, shown when stderr is a terminal or when asked for."""

from __future__ import annotations

import argparse
import sys
import time


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress`` (``args.progress``: None means "if stderr is a
    terminal")."""
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show the progress line even when stderr is not a terminal",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress line"
    )


class Progress:
    """A single stderr line rewritten in place (no dependency beyond the stdlib)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = max(total, 1), 0, enabled
        self.width = 0
        self.last = 0.0
        self.start = time.monotonic()

    def advance(self, label: str, n: int = 1, force: bool = False) -> None:
        self.done = min(self.done + n, self.total)
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1 and self.done < self.total:
            return
        self.last = now
        frac = self.done / self.total
        bar = "#" * int(frac * 30)
        elapsed = now - self.start
        eta = f" ETA {elapsed / frac - elapsed:4.0f}s" if 0 < frac < 1 else ""
        line = f"[{bar:<30}] {frac * 100:3.0f}%{eta} {label}"
        pad = max(0, self.width - len(line))
        sys.stderr.write("\r" + line + " " * pad)
        sys.stderr.flush()
        self.width = len(line)

    def clear(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0
