"""``zoo new-plugin NAME``: write a working plugin package to start from."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from zoo.cli.app import cli, stdout


@cli.command("new-plugin")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder in which to create zoo-NAME/.")
@click.option("--force", is_flag=True, help="Write into an existing, non-empty zoo-NAME/ folder.")
def new_plugin(name: str, directory: Path, force: bool) -> None:
    """Create zoo-NAME/: a model, the contract test, a CI workflow and a pyproject with its entry point."""
    from zoo.templates import FILES, plugin_names, write_plugin

    root = write_plugin(name, directory, force=force)
    names = plugin_names(name)
    stdout.print(f"created {escape(str(root))}/ with:", highlight=False)
    for target in FILES.values():
        stdout.print(f"  {escape(target.format(**names))}", highlight=False)
    stdout.print("next:", highlight=False)
    stdout.print(f"  cd {root} && pip install -e \".[test]\" && python -m pytest", highlight=False, markup=False)
    stdout.print(f"  zoo describe {escape(names['name'])}", highlight=False)
