"""genzoo's leaderboard formats as a plugin: registered through ``zoo_register_formats`` like a
third party's. The renderers (and pandas) load only when the hook runs."""

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl


@hookimpl
def zoo_register_formats(register: Callable[[Any], None]) -> None:
    from zoo.bench import formats

    for output_format in formats.BUILTIN_FORMATS:
        register(output_format)
