"""The ``zoo`` command line: one module per command, errors as one line on stderr."""

from __future__ import annotations

import sys

# Each command module registers itself on ``cli`` when imported.
from zoo.cli import (  # noqa: E402,F401,I001
    bench,
    data,
    describe,
    eval,
    export,
    leaderboard,
    listing,
    new_plugin,
    sample,
    train,
)
from zoo.cli.app import cli, run


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


__all__ = ["cli", "main"]
