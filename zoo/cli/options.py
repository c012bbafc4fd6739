"""Option parsing shared by several commands."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from zoo.metric_names import BACKBONES

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(value: str | None) -> float | None:
    """``90``, ``90s``, ``5m`` or ``1.5h`` in seconds."""
    if value is None:
        return None
    m = _DURATION.match(value)
    if not m or float(m.group(1)) <= 0:
        raise click.BadParameter(f"expected a positive duration like 90s, 5m or 1h, got {value!r}", param_hint="--time")
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if not math.isfinite(seconds):  # digits enough to overflow a float: no budget at all
        raise click.BadParameter(f"expected a finite duration like 90s, 5m or 1h, got {value[:40]!r}", param_hint="--time")
    return seconds


def parse_seeds(value: str) -> list[int]:
    try:
        seeds = [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint="--seeds") from None
    if not seeds or any(s < 0 for s in seeds):
        raise click.BadParameter(f"expected non-negative integers, got {value!r}", param_hint="--seeds")
    return seeds


device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
precision_option = click.option(
    "--precision", type=click.Choice(["fp32", "bf16", "fp16", "auto"]), default="fp32", show_default=True,
    help="Autocast precision for training (fp16 adds a gradient scaler); auto: the model's recipe where "
         "the hardware runs it natively, else fp32.",
)
data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), envvar="ZOO_DATA_DIR",
    help="Where downloadable datasets are cached [env: ZOO_DATA_DIR; default ~/.cache/genzoo/data].",
)


def budget_text(budget: str | None, steps: int | None, time_budget: str | None) -> str | None:
    """One budget from ``--budget``, ``--steps`` or ``--time`` (at most one of them)."""
    given = [name for name, value in (("--budget", budget), ("--steps", steps), ("--time", time_budget)) if value is not None]
    if len(given) > 1:
        raise click.UsageError(f"{' and '.join(given)} both set the budget; pass one")
    if steps is not None:
        return f"{steps}steps"
    if time_budget is not None:
        return f"{parse_duration(time_budget):g}s"
    return budget


BACKBONE_HELP = (
    f"Feature space of the metrics, one of: auto, {', '.join(BACKBONES)}. auto: the dataset's declared backbone, else lenet for labelled gray "
    "data (the MNIST family), else inception. simclr: a label-free encoder trained on the dataset's own "
    "images (offline, cached; metrics fd_simclr, ...). dinov2-*/clip-*: torch-fidelity's DINOv2/CLIP "
    "(fd_dinov2, fd_clip, ...). docs/metrics.md."
)


def backbone_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--backbone``, ``--backbone-weights`` and ``--inception-weights``, one definition for
    ``zoo eval`` and ``zoo bench`` so that both name and accept the same backbones."""
    for option in reversed((
        click.option("--backbone", type=click.Choice(["auto", *BACKBONES]), default="auto", show_default=True,
                     metavar="NAME", help=BACKBONE_HELP),  # NAME: the choices' list outgrows 80 columns
        click.option("--backbone-weights", type=click.Path(dir_okay=False, path_type=Path),
                     help="Local weights of the chosen backbone (offline machines; also $ZOO_BACKBONE_WEIGHTS "
                          "for DINOv2/CLIP)."),
        click.option("--inception-weights", type=click.Path(dir_okay=False, path_type=Path),
                     help="Local Inception-v3 weights, used when the backbone is inception (offline machines; "
                          "also $ZOO_INCEPTION_WEIGHTS)."),
    )):
        command = option(command)
    return command


class AliasedOption(click.Option):
    """An option whose old spellings (``hidden_aliases``) still work but are left out of ``--help``
    and of error messages: renamed options keep working for scripts written against old docs."""

    def __init__(self, *args, hidden_aliases: tuple[str, ...] = (), **kwargs) -> None:  # noqa: ANN003
        super().__init__(*args, **kwargs)
        self.hidden_aliases = tuple(hidden_aliases)

    def _shown(self, method, ctx: click.Context):  # noqa: ANN001, ANN202
        opts, self.opts = self.opts, [o for o in self.opts if o not in self.hidden_aliases]
        try:
            return method(ctx)
        finally:
            self.opts = opts

    def get_help_record(self, ctx: click.Context):  # noqa: ANN201
        return self._shown(super().get_help_record, ctx)

    def get_error_hint(self, ctx: click.Context) -> str:
        return self._shown(super().get_error_hint, ctx)


def output_option(help_text: str, **kwargs):  # noqa: ANN003, ANN201
    """``-o/--output PATH``, the one output option of every command (``--out`` still works, hidden)."""
    return click.option("-o", "--output", "--out", "output", cls=AliasedOption, hidden_aliases=("--out",),
                        help=help_text, **kwargs)
