"""Leaderboard output formats, registered through the ``zoo_register_formats`` plugin hook.

Each `OutputFormat` names a format, the file suffix it writes and a ``render`` function
from leaderboards to text (or bytes). The built-in ones (table, csv, markdown, json, latex, html) are
registered here the way a third-party plugin would register its own:

    @hookimpl
    def zoo_register_formats(register):
        register(OutputFormat("typst", ".typ", "a Typst table", render_typst))

``zoo leaderboard --format NAME`` looks formats up in the registry (``get_registry().formats``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo.hookspecs import hookimpl

if TYPE_CHECKING:
    from zoo.bench.leaderboard import Leaderboard

__all__ = ["BUILTIN_FORMATS", "OutputFormat", "zoo_register_formats"]


@dataclass(frozen=True)
class OutputFormat:
    """A leaderboard output format: ``render(leaderboards)`` gives the whole document."""

    name: str
    suffix: str
    summary: str
    render: Callable[[Sequence[Leaderboard]], str | bytes]


def _leaderboard_renderer(module: str, name: str) -> Callable[[Sequence[Leaderboard]], str]:
    """``<module>.<name>`` (one module per format under `zoo.bench.render`), imported (with
    pandas) on the first render, so that registering the formats (every command collects every
    hook) costs no pandas import."""

    def render(leaderboards: Sequence[Leaderboard]) -> str:
        import importlib

        return getattr(importlib.import_module(module), name)(leaderboards)

    render.__name__ = render.__qualname__ = name
    return render


to_text = _leaderboard_renderer("zoo.bench.render.terminal", "to_text")
to_csv = _leaderboard_renderer("zoo.bench.render.csvfile", "to_csv")
to_markdown = _leaderboard_renderer("zoo.bench.render.markdown", "to_markdown")
to_json = _leaderboard_renderer("zoo.bench.render.jsonfile", "to_json")
to_latex = _leaderboard_renderer("zoo.bench.render.latex", "to_latex")


def _render_html(leaderboards: Sequence[Leaderboard]) -> str:
    from zoo.bench.report import render_html

    # Grid paths come back from the store absolute (resolved against the store's folder).
    return render_html(leaderboards)


BUILTIN_FORMATS = (
    OutputFormat("table", ".txt", "the terminal table (fitted to the terminal; plain text in a file)", to_text),
    OutputFormat("csv", ".csv", "one CSV for all leaderboards: numeric mean/std columns, the floor as kind=floor", to_csv),
    OutputFormat("markdown", ".md", "a Markdown section per leaderboard", to_markdown),
    OutputFormat("json", ".json", "strict JSON: one object per leaderboard with its lines", to_json),
    OutputFormat("latex", ".tex", "a LaTeX table per leaderboard (booktabs): mean ± std, best in bold, footnotes",
                 to_latex),
    OutputFormat("html", ".html", "one self-contained page with plots and sample grids", _render_html),
)


@hookimpl
def zoo_register_formats(register: Callable[[OutputFormat], None]) -> None:
    for fmt in BUILTIN_FORMATS:
        register(fmt)
