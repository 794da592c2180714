"""Progress for people and for programs: a bar on a terminal, plain lines otherwise.

Plain lines have a fixed form that the Slicer module's background runner parses:
``PROGRESS <done>/<total> <what>``.
"""

from __future__ import annotations

import sys
from typing import Optional

from tqdm import tqdm


class Progress:
    """Call with ``(done, total, what)``; ``close()`` at the end."""

    def __init__(self, desc: str, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.desc = desc
        self.bar: Optional[tqdm] = None
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.quiet:
            return
        if self.tty:
            if self.bar is None:
                self.bar = tqdm(total=total, desc=self.desc, file=self.stream, leave=False, unit="step")
            self.bar.n = done
            self.bar.set_postfix_str(what)
            self.bar.refresh()
        else:
            print(f"PROGRESS {done}/{total} {what}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
