"""``make bench``: measure the product beside the Node.js yardstick; ``--smoke`` for a quick check.

    .venv/bin/python bench/run.py [--smoke] [--only create,reads,...] [--output PATH]
        [--rates 300,600,...] [--duration SECONDS]    # the sustained-load section

Prints one table (each figure with its target and PASS/MISS) and writes the
figures as JSON to ``bench/results/latest.json`` (``smoke.json`` with
``--smoke``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.suite import main

if __name__ == "__main__":
    sys.exit(main())
