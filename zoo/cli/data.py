"""``zoo data``: list datasets and fetch downloadable ones ahead of time."""

from __future__ import annotations

import click
from rich.table import Table

from zoo.cli.app import cli, echo_json, registry, stdout
from zoo.cli.options import data_dir_option


@cli.group("data")
def data_group() -> None:
    """List and fetch datasets."""


@data_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def data_list(as_json: bool) -> None:
    """List registered datasets (names ending in ':' take a path, as in folder:PATH)."""
    reg = registry()
    rows = [
        {"name": e.name, "summary": e.spec.summary, "labelled": e.spec.labelled, "plugin": e.plugin.name}
        for e in sorted(reg.datasets.values(), key=lambda e: e.name)
    ]
    if as_json:
        echo_json(rows)
        return
    table = Table(title="genzoo datasets", title_justify="left")
    for col in ("name", "summary", "labels", "plugin"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["summary"], "yes" if r["labelled"] else "no", r["plugin"])
    stdout.print(table)


@data_group.command("fetch")
@click.argument("name")
@data_dir_option
def data_fetch(name: str, data_dir: str | None) -> None:
    """Download NAME into the data directory (needs internet), then show its splits."""
    from zoo.factory import load_dataset

    ds = load_dataset(name, data_dir=data_dir, download=True)
    c, h, w = ds.image_shape
    stdout.print(f"{ds.name}: {len(ds.train)} train / {len(ds.test)} test images, {c}x{h}x{w}, fingerprint {ds.fingerprint()}")
