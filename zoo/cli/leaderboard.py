"""``zoo leaderboard``: rank the results store's rows, one table per dataset and protocol."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli.app import cli, stdout

FORMATS = ("table", "csv", "markdown", "json", "html")


@cli.command("leaderboard")
@click.option("--results", "results", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Results store (default: $ZOO_RESULTS or runs/results.sqlite).")
@click.option("--dataset", help="Only this dataset.")
@click.option("--protocol", "protocol", metavar="HASH", help="Only this protocol (a unique prefix of its hash is enough).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (atomically) instead of stdout; html defaults to leaderboard.html beside the store.")
def leaderboard(results: Path | None, dataset: str | None, protocol: str | None, fmt: str, output: Path | None) -> None:
    """Show the leaderboard: mean ± std over seeds, ranked by the protocol's primary metric, with
    the real-vs-real floor. Rows of different protocols are never ranked together."""
    from zoo.bench.leaderboard import (
        build_leaderboard,
        print_leaderboards,
        to_csv,
        to_json,
        to_markdown,
    )
    from zoo.bench.report import write_html, write_text_atomic
    from zoo.bench.store import ResultsStore, default_store_path
    from zoo.errors import UnknownNameError, UsageError

    store = ResultsStore(results if results is not None else default_store_path(), create=False)
    rows = store.rows()
    if not rows:
        stdout.print(f"No results yet in {store.path}. Run `zoo bench` to add some.", highlight=False, markup=False)
        return
    if dataset is not None and dataset not in {r.dataset for r in rows}:
        raise UnknownNameError("dataset in the results store", dataset, sorted({r.dataset for r in rows}))
    if protocol is not None:
        hashes = sorted({r.protocol_hash for r in rows if dataset is None or r.dataset == dataset})
        matches = [h for h in hashes if h.startswith(protocol)]
        if len(matches) != 1:
            what = "matches no" if not matches else "is ambiguous among"
            raise UsageError(f"protocol {protocol!r} {what} protocol hashes in the store (known: {', '.join(h[:12] for h in hashes)})")
        protocol = matches[0]
    boards = build_leaderboard(rows, dataset=dataset, protocol_hash=protocol)

    if fmt == "html":
        target = output if output is not None else store.path.parent / "leaderboard.html"
        path = write_html(boards, target, base_dir=store.path.parent)
        click.echo(str(path))
        return
    if fmt == "table" and output is None:
        print_leaderboards(boards, stdout)
        return
    if fmt == "table":  # the terminal table as plain text, wide enough not to wrap
        import io

        from rich.console import Console

        console = Console(record=True, width=200, file=io.StringIO(), color_system=None)
        print_leaderboards(boards, console)
        text = console.export_text()
    else:
        text = {"csv": to_csv, "markdown": to_markdown, "json": to_json}[fmt](boards)
        text = text if text.endswith("\n") else text + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    click.echo(str(write_text_atomic(output, text)))
