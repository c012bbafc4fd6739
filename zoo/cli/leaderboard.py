"""``zoo leaderboard``: rank the results store's rows, one table per dataset and protocol."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli.app import cli, data_stdout, stdout, warn
from zoo.cli.options import output_option


@cli.command("leaderboard")
@click.option("--results", "results", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Results store (default: $ZOO_RESULTS or runs/results.sqlite).")
@click.option("--dataset", help="Only this dataset.")
@click.option("--protocol", "protocol", metavar="HASH", help="Only this protocol (a unique prefix of its hash is enough).")
@click.option("--format", "fmt", metavar="NAME", default="table", show_default=True,
              help="Output format registered by a plugin (built in: table, csv, markdown, json, latex, html; see `zoo plugins`).")
@output_option("Write to this file (atomically; its folder must exist); '-' is stdout. Default: stdout, except "
               "html: leaderboard.html beside the store.",
               type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=None)
@click.option("--columns", "columns", metavar="KEYS", default=None,
              help="Only these columns, in this order, comma-separated (e.g. rank,model,fid_lenet,group,params);"
                   " every format. A wrong key lists the keys.")
@click.option("--metrics", "metrics", metavar="NAMES", default=None,
              help="Only these metrics, comma-separated; the primary metric (the ranking) always stays.")
@click.option("--sort", "sort", metavar="KEY[:asc|desc]", default=None,
              help="Order lines by this column (metrics best first, rates fastest first); default: rank.")
def leaderboard(results: Path | None, dataset: str | None, protocol: str | None, fmt: str, output: Path | None,
                columns: str | None, metrics: str | None, sort: str | None) -> None:
    """Show the leaderboard: mean ± std over seeds with a 95% interval, ranked by the protocol's
    primary metric, grouped by letters (lines sharing a letter are not significantly
    different by Holm-corrected Welch t-tests), with the real-vs-real floor. Rows of
    different protocols are never ranked together. A read-only store (file or folder) is opened
    read-only; malformed rows are skipped with one warning line naming them."""
    from zoo.bench.columns import apply_view
    from zoo.bench.leaderboard import leaderboards, print_leaderboards
    from zoo.bench.store import ResultsStore, default_store_path
    from zoo.errors import UnknownNameError, UsageError
    from zoo.fileio import atomic_write_bytes, atomic_write_text
    from zoo.outputs import check_output_folder
    from zoo.registry import get_registry

    for option, value in (("--columns", columns), ("--metrics", metrics), ("--sort", sort)):
        if value is not None and not value.strip(" ,"):  # an empty list would silently mean "all"
            raise UsageError(f"{option} is empty; leave it out for the default, or name at least one key")
    formats = get_registry().formats
    if fmt not in formats:
        raise UnknownNameError("output format", fmt, list(formats))
    spec = formats[fmt].spec
    if output is not None and output != Path("-"):
        if output.is_dir():  # '' arrives as '.'; an atomic write cannot replace a folder
            raise UsageError(f"--output {output} is a folder; give a file name")
        check_output_folder(output)  # before the store is read: a typo's folder is never made
    store_path = Path(results if results is not None else default_store_path())
    store_exists = store_path.exists()
    if store_exists:
        store = ResultsStore(store_path, create=False)  # read-only when the file or its folder is
        store_path, boards = store.path, leaderboards(store, dataset=dataset, protocol=protocol)
        skipped = store.skipped_message()
        if skipped:  # one malformed row never hides the others
            warn(skipped)
    else:  # nothing measured yet: an empty leaderboard ([] in JSON, a CSV header), said once on stderr
        warn(f"no results store at {store_path} yet (run `zoo bench` first, or pass --results PATH)")
        boards = []

    boards = apply_view(boards, columns=_names(columns or ""), metrics=_names(metrics or ""), sort=(sort or "").strip())
    to_stdout = output is None and fmt != "html" or output == Path("-")
    if to_stdout and fmt == "table":  # the live terminal: fitted to its width, styled
        if store_exists:  # a missing store was already said once, on stderr
            print_leaderboards(boards, stdout, source=str(store_path))
        return
    document = _render(fmt, formats[fmt], boards)
    if to_stdout:
        if isinstance(document, bytes):
            data_stdout.buffer.write(document)
        else:
            click.echo(document if document.endswith("\n") else document + "\n", nl=False, file=data_stdout)
        return
    target = output if output is not None else store_path.parent / f"leaderboard{spec.suffix}"
    if isinstance(document, bytes):
        path = atomic_write_bytes(target, document)
    else:
        path = atomic_write_text(target, document if document.endswith("\n") else document + "\n")
    click.echo(str(path), file=data_stdout)


def _render(name: str, entry: object, boards: list) -> str | bytes:
    """A format's document; a plugin's render that raises or returns neither text nor bytes is one
    line naming the plugin and the hook (exit 1), never a traceback."""
    from zoo.errors import PluginError

    plugin = getattr(getattr(entry, "plugin", None), "name", "?")
    where = f"output format {name!r} of plugin {plugin!r}"
    try:
        document = entry.spec.render(boards)  # type: ignore[attr-defined]
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's fault, named
        text = str(exc).strip().splitlines()
        raise PluginError(f"{where}: render() raised {type(exc).__name__}"
                          f"{': ' + text[0][:160] if text else ''}") from None
    if not isinstance(document, (str, bytes)):
        raise PluginError(f"{where}: render() returned {type(document).__name__}, not text or bytes")
    return document


def _names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [name.strip() for name in text.split(",") if name.strip()]
