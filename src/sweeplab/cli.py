"""The console scripts: each hands its command line to a warm ``sweeplab-daemon`` when one serves this
environment (the torch + Lightning import already paid), and otherwise runs it in this process.

Standard library only until the command runs: when a daemon takes it, this process never imports torch.
"""

from __future__ import annotations

import importlib
import sys

from sweeplab import daemon


def _run(prog: str) -> None:
    code = daemon.forward(prog, sys.argv)
    if code is not None:
        raise SystemExit(code)
    importlib.import_module(daemon.ENTRIES[prog]).main()


def train() -> None:
    _run("sweeplab-train")


def evaluate() -> None:
    _run("sweeplab-eval")


def generate() -> None:
    _run("sweeplab-generate")


def compare() -> None:
    _run("sweeplab-compare")


def search() -> None:
    _run("sweeplab-search")
