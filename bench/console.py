"""The ``bench`` command: decides about progress bars before anything imports tqdm (which reads
its ``TQDM_*`` defaults once, on import), then runs ``vidbench.cli``. Bars show on a terminal
only, and never with ``--quiet``; without them each finished record still prints one line."""

from __future__ import annotations

import os
import sys


def main() -> int:
    if "--quiet" in sys.argv[1:] or not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")
    from vidbench.cli import main as run

    return run()
