"""The terminal table (rich): fitted to the console's width, every string from a row cleaned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoo.bench.aggregate import Leaderboard
from zoo.bench.cellfmt import clean as _clean
from zoo.bench.columns import Column, floor_text, footnote, human_columns, is_top_ranked

__all__ = ["TERMINAL_MAX_LINES", "print_leaderboards", "render_table", "to_text"]

#: Lines of one board the terminal shows (the page shows as many): past it a table is scrolled
#: past, not read, and rich lays out every cell; csv and json keep every line.
TERMINAL_MAX_LINES = 200


def render_table(lb: Leaderboard, width: int | None = None):  # noqa: ANN201 - rich is imported lazily
    """A rich Table for the terminal; the floor is the first, highlighted line.

    Given a console ``width``, columns with a ``drop`` order are left out (lowest first) until the
    table fits, and the caption says so. Every string from a row is passed as
    `rich.text.Text`, so third-party names cannot inject markup.
    """
    from rich.table import Table
    from rich.text import Text

    cols = human_columns(lb)
    cut = len(lb.table) - TERMINAL_MAX_LINES
    lines = lb.table.head(TERMINAL_MAX_LINES).to_dict("records")  # the shown lines only
    body = [[_clean(c.floor) for c in cols]]
    for line in lines:
        cells = [_clean(c.cell(line)) for c in cols]
        if len(cells[-1]) > 60:
            cells[-1] = cells[-1][:59] + "…"
        body.append(cells)

    # Numbers never wrap (a wrapped "12.00 ± 2.00" is unreadable); long names and errors fold,
    # but not below their fold widths.
    widths = {c.key: max([len(_clean(c.title))] + [len(r[i]) for r in body]) for i, c in enumerate(cols)}
    widths = {c.key: min(widths[c.key], c.fold) if c.fold else widths[c.key] for c in cols}

    def needed(shown: list[Column]) -> int:  # content + padding and borders
        return sum(widths[c.key] for c in shown) + 3 * len(shown) + 1

    shown = list(cols)
    hidden = []
    for col in sorted((c for c in cols if c.drop is not None), key=lambda c: c.drop or 0):
        if width is None or needed(shown) <= width:
            break
        shown.remove(col)
        hidden.append(col.title)
    if width is not None:  # still too wide: folding columns give up width, widest first, down to their header
        excess = needed(shown) - width
        for col in sorted((c for c in shown if c.fold), key=lambda c: -widths[c.key]):
            give = max(0, min(excess, widths[col.key] - max(len(col.title), 8)))
            widths[col.key] -= give
            excess -= give

    floor_shown = floor_text(lb, lb.primary_metric)
    caption = "\n".join(_clean(note) for note in footnote(lb))  # warnings quote protocol values
    if cut > 0:
        caption += (f"\nshows the first {TERMINAL_MAX_LINES} of {len(lb.table):,} lines (by rank, or --sort); "
                    "--format csv or json lists them all")
    if hidden:
        caption += f"\nnot shown (terminal too narrow): {', '.join(hidden)}; try --format markdown"
    table = Table(
        title=Text(_clean(f"{lb.title} · {lb.primary_metric} ({lb.direction}) · floor {floor_shown}")),
        title_justify="left",
        caption=Text(caption),
        caption_justify="left",
    )
    for col in shown:
        table.add_column(Text(_clean(col.title)), justify="left" if col.align == "left" else "right", no_wrap=col.fold is None,
                         overflow="fold", min_width=widths[col.key] if col.fold else None,
                         max_width=widths[col.key] if col.fold and width is not None else None)
    keep = [cols.index(c) for c in shown]
    table.add_row(*[Text(body[0][i]) for i in keep], style="italic cyan")
    for line, cells in zip(lines, body[1:], strict=True):
        texts = [Text(cells[i]) for i in keep]
        failed = line["n_seeds"] == 0
        if line["failed"] and shown[-1].key == "status":
            texts[-1].stylize("red" if failed else "yellow")
        table.add_row(*texts, style="dim" if failed else ("bold" if is_top_ranked(line) else None))
    return table


def print_leaderboards(leaderboards: Sequence[Leaderboard], console: Any = None, source: str = "") -> None:
    """Print every leaderboard to ``console`` (a rich Console; stdout by default), fitted to its
    width; with none, the "No results yet" line."""
    if console is None:
        from rich.console import Console

        console = Console()
    if not leaderboards:
        where = f" in {_clean(source)}" if source else ""
        console.print(f"No results yet{where}. Run `zoo bench` to add some.", highlight=False, markup=False)
        return
    for i, lb in enumerate(leaderboards):
        if i:
            console.print()
        console.print(render_table(lb, width=console.width), soft_wrap=False)  # captions wrap at the width


def to_text(leaderboards: Sequence[Leaderboard], width: int = 200) -> str:
    """The terminal table as plain text (no colours), ``width`` characters wide."""
    import io

    from rich.console import Console

    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    print_leaderboards(leaderboards, console)
    return console.export_text()


