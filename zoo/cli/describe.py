"""``zoo describe MODEL``: a model's config fields, sampling options, sizes, recipe, sweep and paper."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from zoo.cli.app import cli, echo_json, registry, stdout


@cli.command("describe")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def describe(model: str, as_json: bool) -> None:
    """Show what MODEL accepts: config fields (--set), sampling options (--option) and more."""
    reg = registry()
    info = reg.entry(model).describe()
    info["variants"] = [{"name": e.name, "summary": e.summary, "overrides": e.overrides}
                        for e in reg.list_models() if e.variant is not None and e.variant.model == info["name"]]
    if as_json:
        echo_json(info)
        return
    _print(info)


def _text(value: object) -> str:
    return escape(value if isinstance(value, str) else json.dumps(value, default=str))


def _say(text: str) -> None:
    """One line of prose, wrapped at the terminal's width (the console itself does not wrap)."""
    stdout.print(text, soft_wrap=False)


def _recipe_text(recipe: dict) -> str:
    """``bf16, batch 128, snr_gamma=5.0``: precision, batch size and config changes, escaped."""
    parts = [recipe["precision"]] + ([f"batch {recipe['batch_size']}"] if recipe["batch_size"] else [])
    changes = " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                       for k, v in recipe["overrides"].items())
    return escape(", ".join(parts + ([changes] if changes else [])))


def _space_text(space: dict) -> str:
    from zoo.search import Choice, Float, Int, describe_space

    kinds = {"float": lambda d: Float(d["low"], d["high"], d["log"]), "int": lambda d: Int(d["low"], d["high"], d["log"]),
             "choice": lambda d: Choice(*d["values"])}
    return describe_space({k: kinds[d["type"]](d) for k, d in space.items()})


def _print(info: dict) -> None:
    title = f"[bold]{escape(info['name'])}[/] ({escape(info['family'])})"
    if info["variant_of"]:
        title += f", variant of {escape(info['variant_of'])} with {_text(info['overrides'])}"
    _say(title)
    _say(escape(info["summary"]))
    _say(f"paper: {escape(info['paper'] or '-')}")
    _say(f"plugin: {escape(info['distribution'] or info['plugin'])} {escape(info['version'] or '')}".rstrip())
    sizes = "any" if info["supported_sizes"] is None else ", ".join(f"{s}x{s}" for s in info["supported_sizes"])
    _say(f"image sizes: {sizes}; channels: {', '.join(map(str, info['supported_channels']))}")
    _say(f"batch size: {info['default_batch_size']}; batches per step: {info['batches_per_step']}")
    recipe = info["recipe"]
    if recipe is None:
        _say("recipe: none (the paper's defaults in fp32)")
    else:
        _say("recipe: " + _recipe_text(recipe))
        if recipe["fallback"] is not None:
            _say(f"recipe where {escape(recipe['precision'])} is emulated: " + _recipe_text(recipe["fallback"]))
    _say("bench sweep: " + ("the preset's family sweep" if info["bench_sweep"] is None else _text(info["bench_sweep"])))
    _say(f"tiny config (--preset smoke): {_text(info['tiny_config'])}")
    _say(f"search space (zoo bench --tune): {escape(_space_text(info['search_space']))}")

    table = Table(title="config fields (zoo train --set KEY=VALUE)", title_justify="left")
    for col in ("field", "type", "default", "help"):
        table.add_column(col, overflow="fold")
    for f in info["config"]:
        default = _text(f["default"]) + (f" (class: {_text(f['class_default'])})" if "class_default" in f else "")
        table.add_row(escape(f["name"]), escape(f["type"]), default, escape(f["help"]))
    stdout.print(table)
    if info["sample_options"]:
        table = Table(title="sampling options (--option KEY=VALUE)", title_justify="left")
        for col in ("option", "type", "default", "choices", "help"):
            table.add_column(col, overflow="fold")
        for o in info["sample_options"]:
            choices = ", ".join(map(str, o["choices"])) or (f">= {o['min']}" if o["min"] is not None else "")
            table.add_row(escape(o["name"]), escape(o["type"]), _text(o["default"]), escape(choices), escape(o["help"]))
        stdout.print(table)
    else:
        _say("sampling options: none")
    if info["variants"]:
        _say("variants: " + "; ".join(f"{escape(v['name'])} {_text(v['overrides'])}" for v in info["variants"]))
