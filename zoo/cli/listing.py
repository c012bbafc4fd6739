"""``zoo list`` and ``zoo plugins``."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from zoo.cli.app import cli, echo_json, registry, stdout, warn
from zoo.text import printable
from zoo.vocabulary import FAMILIES


def _plain(text: str) -> Text:
    """A table cell of third-party text: never parsed as markup, control characters shown escaped."""
    return Text(printable(text))


@cli.command("list")
@click.option("--family", help=f"Only models of this family ({', '.join(FAMILIES)}).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def list_models(family: str | None, as_json: bool) -> None:
    """List the registered models."""
    reg = registry()
    entries = reg.list_models(family)
    rows = [
        {
            "name": e.name,
            "family": e.family,
            "plugin": e.plugin.name,
            "distribution": e.plugin.distribution,
            "version": e.plugin.version,
            "summary": e.summary,
            "variant_of": e.variant.model if e.variant else None,
            "overrides": e.overrides,
            "paper": e.paper,
            "sample_options": [o.name for o in e.sample_options],
        }
        for e in entries
    ]
    if as_json:
        echo_json(rows)
        return
    table = Table(title="genzoo models", title_justify="left")
    for col in ("name", "family", "plugin", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        plugin = f"{r['distribution'] or r['plugin']} {r['version'] or ''}".strip()
        summary = r["summary"] + (f" (variant of {r['variant_of']})" if r["variant_of"] else "")
        table.add_row(*(_plain(x) for x in (r["name"], r["family"], plugin, summary)))
    stdout.print(table)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.option("--all", "show_all", is_flag=True, help="Include genzoo's built-in plugins.")
def list_plugins(as_json: bool, show_all: bool) -> None:
    """List installed plugins with their hooks, what they contributed, and any error."""
    from zoo.registry import get_registry

    reg = get_registry()  # errors are shown in the table, not as warnings
    records = [r for r in reg.plugins.values() if show_all or not r.builtin or not r.ok or r.warnings]
    for message in reg.warnings:
        warn(message)
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    # Fits 80 columns: a hook name is one unbroken line (its column is as wide as the longest),
    # distribution and version share a column, and lists wrap between their items.
    hook_width = max((len(h) for r in records for h in r.hooks), default=5)
    table = Table(title="genzoo plugins", title_justify="left")
    table.add_column("plugin", overflow="fold")
    table.add_column("package", overflow="fold")
    table.add_column("hooks", no_wrap=True, min_width=min(hook_width, 40), overflow="fold")
    table.add_column("contributes", overflow="fold")
    table.add_column("status", overflow="fold")
    for r in records:
        contributes = ", ".join(r.models + r.variants + r.datasets + r.formats + [f"zoo {c}" for c in r.commands])
        status = Text("ok", style="green") if r.ok else Text.assemble(("error:", "red"), " ", printable(r.error or ""))
        for w in r.warnings:
            status.append_text(Text.assemble("\n", ("warning:", "yellow"), " ", printable(w)))
        package = f"{r.distribution or '-'} {r.version or ''}".strip()
        table.add_row(*(_plain(x) for x in (r.name, package, "\n".join(r.hooks) or "-", contributes)), status)
    if not records:
        stdout.print("No external plugins installed. Built-in plugins: zoo plugins --all")
        return
    stdout.print(table)
