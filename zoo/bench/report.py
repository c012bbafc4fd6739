"""Leaderboards as files for people: a self-contained HTML page with plots, and published results.

The page is rendered from a Jinja2 template (``zoo/bench/templates/leaderboard.html.j2``) with
autoescaping on, so every string that comes from a result row (model, plugin and dataset names,
errors, protocol values) is escaped by the template engine, never by hand. Python prepares plain
data (`page_context`); the template only lays it out. The table is rendered from the same
column description as every other format ([`zoo.bench.leaderboard.columns`][zoo.bench.leaderboard.columns]).

The page embeds everything (sample grids as base64 PNG data URIs, matplotlib plots as inline SVG
with their legends outside the axes, the board's rows as CSV and JSON download links; inline CSS,
no scripts, a Content-Security-Policy that forbids any remote resource), so it can be mailed or
attached to a CI run. Its tables fit screens from 420 px to 1,920 px: the ranking table holds the
primary metric, further metrics and costs have tables of their own (`_table_groups`), and on
a phone each line becomes a block of "column: value" lines. A print stylesheet keeps each table
whole and each card on one A4 page.

Published results go under ``benchmarks/results/`` as CSV and Markdown, named after the preset, the
device and the torch version, the way timm names its benchmark CSVs, so results from different
hardware never overwrite each other.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from zoo.bench.curves import COMPUTE_AXES, _mean_std, compute_curves, steps_curves
from zoo.bench.leaderboard import (
    Column,
    Leaderboard,
    floor_text,
    footnote,
    format_count,
    format_interval,
    format_mean_std,
    format_number,
    format_rate,
    human_columns,
    is_top_ranked,
    line_key_of,
    machine_fields,
    to_csv,
    to_markdown,
)
from zoo.bench.store import ResultRow, canonical_json
from zoo.fileio import atomic_write_text

__all__ = [
    "page_context",
    "plot_quality_vs_compute",
    "plot_quality_vs_steps",
    "plot_throughput",
    "publish_results",
    "published_stem",
    "render_html",
    "write_html",
    "write_text_atomic",
]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MAX_GRID_BYTES = 16 * 1024 * 1024  # a sample grid bigger than this is not embedded
_ERROR_SUMMARY = 48  # characters of an error shown before "details"
#: Characters of one error (a traceback) the page shows in full; a longer one is cut, saying so.
#: A 5 MB error text made the page 10 MB bigger (it is shown twice).
HTML_MAX_ERROR = 4000


def _clip_error(text: str) -> str:
    if len(text) <= HTML_MAX_ERROR:
        return text
    return f"{text[:HTML_MAX_ERROR]}\n… ({len(text) - HTML_MAX_ERROR:,} more characters; the full text is in the store)"
#: Lines of one board the page shows (table and cards), best-ranked first; the plots draw fewer
#: (a legend of hundreds of lines is unreadable, and drawing it took minutes). Machine formats
#: (csv, json) always list every line.
HTML_MAX_LINES = 200
PLOT_MAX_LINES = 12
HTML_MAX_FAILURES = 100
#: Protocol fields grouped into the readable list; fields not named here are listed under "other".
PROTOCOL_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dataset", ("dataset", "dataset_fingerprint", "image_shape", "reference_split", "floor_split")),
    ("counts", ("num_real", "num_fake", "n_gen", "n_real")),
    ("backbone", ("backbone", "feature_extractor", "weights_sha256", "feature_layers")),
    ("resize", ("resize",)),
    ("metric settings", ("primary_metric", "isc_splits", "kid_subsets", "kid_subset_size", "prc_neighborhood", "seed")),
    ("versions", ("torch_fidelity_version", "version")),
)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Kept for callers of the report API; see `zoo.fileio.atomic_write_text`."""
    return atomic_write_text(path, text)


# -- plots ---------------------------------------------------------------------------------------


def _figure(width: float = 5.6, height: float = 3.8):  # noqa: ANN202
    # The object-oriented API renders with Agg without touching pyplot's global backend/state.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig, fig.add_subplot()


def _save(fig: Any, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes (no timestamps: the same board gives the same bytes)."""
    buf = io.BytesIO()
    metadata = {"Software": None} if fmt == "png" else {"Date": None}
    fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()


def _plot_text(text: str) -> str:
    """Text from a row made safe for matplotlib: control characters shown as ``\\xNN`` and ``$``
    escaped, since a name holding ``$\\frac{$`` is parsed as mathtext and fails the whole page."""
    from zoo.text import printable

    return printable(str(text)).replace("\n", " ").replace("$", r"\$")


def _wrap(label: str, width: int = 32) -> str:
    """A legend or axis label on several short lines (sampler options make long labels); made safe
    with `_plot_text`."""
    label = _plot_text(label)
    return textwrap.fill(label, width, break_long_words=False, break_on_hyphens=False) or label


def _floor_line(ax: Any, lb: Leaderboard) -> None:
    floor = lb.floor.get(lb.primary_metric, math.nan)
    if not math.isnan(floor):
        ax.axhline(floor, color="#0969da", linestyle="--", linewidth=1, label=f"real vs real ({floor:.3g})")


def _legend(fig: Any, ax: Any) -> None:
    """The legend below the axes, outside them, so it covers no data point however many lines
    there are (constrained layout makes room; the figure grows with the legend, see
    `_legend_height`)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(2, len(handles)), fontsize="small",
                   frameon=False)


def _legend_height(labels: list[str]) -> float:
    """Inches the legend below the axes takes: two entries a row, each as tall as its lines."""
    rows = [max(pair.count("\n") for pair in labels[k:k + 2]) + 1 for k in range(0, len(labels), 2)]
    return 0.2 * sum(rows) + 0.2


def quality_vs_compute_figure(lb: Leaderboard, x_key: str = "train_flops") -> Any | None:
    """The matplotlib Figure behind `plot_quality_vs_compute` (``None`` without points)."""
    curves = compute_curves(lb, x_key)
    if not curves:
        return None
    labels = [_wrap(label) for label in curves] + ["real vs real"]
    fig, ax = _figure(height=3.4 + _legend_height(labels))
    xs_all: list[float] = []
    for label, points in zip(labels, curves.values(), strict=False):
        xs, ys, sd = zip(*points, strict=True)
        xs_all += xs
        (handle,) = ax.plot(xs, ys, marker="o", markersize=4, label=label)
        if any(s > 0 for s in sd):
            ax.fill_between(xs, [y - s for y, s in zip(ys, sd, strict=True)], [y + s for y, s in zip(ys, sd, strict=True)],
                            color=handle.get_color(), alpha=0.18, linewidth=0)
    _floor_line(ax, lb)
    if max(xs_all) / min(xs_all) > 10:
        ax.set_xscale("log")
    ax.set_xlabel(COMPUTE_AXES.get(x_key, x_key))
    ax.set_ylabel(_plot_text(f"{lb.primary_metric} ({lb.direction})"))
    ax.set_title(f"Quality vs {COMPUTE_AXES.get(x_key, x_key).split(' (')[0]}")
    ax.grid(alpha=0.3, which="both")
    _legend(fig, ax)
    return fig


def plot_quality_vs_compute(lb: Leaderboard, x_key: str = "train_flops", fmt: str = "png") -> bytes | None:
    """The primary metric against training compute (``x_key``: ``train_flops`` or
    ``train_seconds``), one line per leaderboard line through the points of its curve (the
    evaluations along the budget, ``ResultRow.curve``) with a band of ± one std over seeds; lines
    without a curve are a single point. PNG bytes (``fmt="svg"``: SVG); ``None`` when no line has
    a point."""
    fig = quality_vs_compute_figure(lb, x_key)
    return None if fig is None else _save(fig, fmt)


def quality_vs_steps_figure(lb: Leaderboard) -> Any | None:
    """The matplotlib Figure behind `plot_quality_vs_steps` (``None`` without points)."""
    curves = steps_curves(lb)
    if not curves:
        return None
    labels = [_wrap(label) for label in sorted(curves)] + ["real vs real"]
    fig, ax = _figure(height=3.4 + _legend_height(labels))
    for label, (_, points) in zip(labels, sorted(curves.items()), strict=False):
        xs = sorted(points)
        stats = [_mean_std(points[x]) for x in xs]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[s for _, s in stats], marker="o", capsize=3, label=label)
    _floor_line(ax, lb)
    ticks = sorted({s for points in curves.values() for s in points})
    if len(ticks) > 1:
        ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("sampling steps (NFE)")
    ax.set_ylabel(_plot_text(f"{lb.primary_metric} ({lb.direction})"))
    ax.set_title("Quality vs sampling steps")
    ax.grid(alpha=0.3, which="both")
    _legend(fig, ax)
    return fig


def plot_quality_vs_steps(lb: Leaderboard, fmt: str = "png") -> bytes | None:
    """Primary metric against sampling steps, one curve per model and sampler (every line whose
    sampling options have ``steps``: DDPM's DDIM, a flow model's Euler or Heun, ...; DDIM at
    10/20/50/100 steps as in Song et al. 2021), error bars over seeds. PNG bytes (``fmt="svg"``:
    SVG); ``None`` when no line has steps."""
    fig = quality_vs_steps_figure(lb)
    return None if fig is None else _save(fig, fmt)


def _throughputs(lb: Leaderboard) -> list[tuple[str, float, float]]:
    out = []
    for _, line in lb.table.iterrows():
        t = float(line.get("train_images_per_s", math.nan))
        s = float(line.get("sample_images_per_s", math.nan))
        if not (math.isnan(t) and math.isnan(s)):
            out.append((lb.line_label(line), t, s))
    return out


def throughput_figure(lb: Leaderboard) -> Any | None:
    """The matplotlib Figure behind `plot_throughput` (``None`` without throughputs)."""
    found = _throughputs(lb)
    if not found:
        return None
    labels = [_wrap(f[0], 24) for f in found]
    train = [f[1] for f in found]
    sample = [f[2] for f in found]
    bars = 0.3 * sum(label.count("\n") + 1 for label in labels) + 0.4 * len(labels) + 1.2
    fig, ax = _figure(height=max(2.5, bars) + _legend_height(["train img/s", "sample img/s"]))
    ys = list(range(len(labels)))
    ax.barh([y - 0.2 for y in ys], [0 if math.isnan(v) else v for v in train], height=0.4, label="train img/s", color="#0969da")
    ax.barh([y + 0.2 for y in ys], [0 if math.isnan(v) else v for v in sample], height=0.4, label="sample img/s", color="#9a6700")
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    if any(v > 0 for v in train + sample if not math.isnan(v)):
        ax.set_xscale("log")
    ax.set_xlabel("images per second (higher is better)")
    ax.set_title("Throughput")
    ax.grid(alpha=0.3, axis="x", which="both")
    _legend(fig, ax)
    return fig


def plot_throughput(lb: Leaderboard, fmt: str = "png") -> bytes | None:
    """Horizontal bars of training and sampling images per second (log scale: a GAN generator and
    a 1000-step diffusion sampler differ by orders of magnitude). PNG bytes (``fmt="svg"``: SVG);
    ``None`` when no line has a throughput."""
    fig = throughput_figure(lb)
    return None if fig is None else _save(fig, fmt)


_SVG_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(data: bytes, prefix: str) -> str:
    """Matplotlib's SVG as an element for an HTML page: without the XML prolog and doctype, its
    ``id`` attributes (glyphs, clip paths) prefixed with ``prefix`` so that several plots on one page never
    share one, and scaled to its box (``width``/``height`` dropped, the ``viewBox`` kept)."""
    text = data.decode("utf-8")
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    ids = set(_SVG_ID.findall(text))
    text = _SVG_ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r'(href=|url\()"?#([^")]+)', lambda m: m.group(0).replace(
        "#" + m.group(2), "#" + prefix + m.group(2)) if m.group(2) in ids else m.group(0), text)
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)


# -- alt texts: what each plot shows, in words ---------------------------------------------------


def _floor_words(lb: Leaderboard) -> str:
    floor = lb.floor.get(lb.primary_metric, math.nan)
    return "" if math.isnan(floor) else f" A dashed line marks the real-vs-real floor, {format_number(floor)}."


def _compute_alt(lb: Leaderboard, x_key: str) -> str:
    curves = compute_curves(lb, x_key)
    axis = COMPUTE_AXES.get(x_key, x_key)
    ends = "; ".join(f"{label}: {format_number(points[-1][1])} at {_axis_value(points[-1][0], x_key)}"
                     for label, points in curves.items())
    return (f"Line plot of {lb.primary_metric} ({lb.direction}) against {axis}, one line per model through its "
            f"evaluations along the training budget, shaded by ± one standard deviation over seeds. "
            f"Final points: {ends}.{_floor_words(lb)}")


def _axis_value(x: float, x_key: str) -> str:
    return f"{format_count(x)} FLOPs" if x_key == "train_flops" else f"{x:.3g} s"


def _steps_alt(lb: Leaderboard) -> str:
    parts = []
    for label, points in sorted(steps_curves(lb).items()):
        values = ", ".join(f"{format_number(_mean_std(points[x])[0])} at {x:g} steps" for x in sorted(points))
        parts.append(f"{label}: {values}")
    return (f"Plot of {lb.primary_metric} ({lb.direction}) against the number of sampling steps, one line per "
            f"model and sampler. {'; '.join(parts)}.{_floor_words(lb)}")


def _throughput_alt(lb: Leaderboard) -> str:
    parts = [f"{label}: train {format_rate(t)}, sample {format_rate(s)}" for label, t, s in _throughputs(lb)]
    return f"Bar chart of training and sampling images per second (log scale), per model. {'; '.join(parts)}."


# -- the page's data -----------------------------------------------------------------------------


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


OUTSIDE = "not embedded: outside the store's run folders"
#: Files a genzoo bench run folder holds (the job marker, the run lock): a row's ``run_dir`` is
#: trusted as a place to embed images from only when it is such a folder, so a planted row cannot
#: name ``/home/user`` as its run folder and have the page embed what lies there.
_RUN_MARKERS = ("job.json", ".lock")


def _real(path: str | os.PathLike[str]) -> Path | None:
    try:
        return Path(path).expanduser().resolve(strict=False)
    except (OSError, RuntimeError, ValueError):  # symlink loops, NUL bytes
        return None


def allowed_roots(base_dir: Path | str | None, rows: Sequence[ResultRow]) -> list[Path]:
    """The folders the page may embed images from, resolved (symlinks followed): the store's folder
    ``base_dir`` and the run folders the rows record, when those are genzoo run folders (hold
    ``job.json`` or ``.lock``)."""
    roots = []
    if base_dir is not None:
        root = _real(base_dir)
        if root is not None:
            roots.append(root)
    for row in rows:
        if row.run_dir:
            root = _real(row.run_dir)
            if root is not None and root.parent != root and any((root / m).is_file() for m in _RUN_MARKERS):
                roots.append(root)
    return list(dict.fromkeys(roots))


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _read_png(path: str | None, base_dir: Path | None, roots: Sequence[Path] | None = None) -> bytes | str | None:
    """The PNG bytes of an image file; `OUTSIDE` when the file resolves (after symlinks)
    outside ``roots`` (the store's run folders, see `allowed_roots`; default: ``base_dir``
    alone), so a planted row cannot embed ``/home/user/secret.png``; None when it is missing, too
    big or not a PNG."""
    if not path:
        return None
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base_dir is not None and not candidate.exists():
        candidate = base_dir / candidate
    if roots is None:
        roots = allowed_roots(base_dir, [])
    real = _real(candidate)
    if real is None:
        return None
    if not _inside(real, roots):
        return OUTSIDE
    try:
        if not real.is_file() or real.stat().st_size > _MAX_GRID_BYTES:
            return None
        with real.open("rb") as fh:  # the resolved path: a symlink swapped in now cannot lead outside
            data = fh.read(_MAX_GRID_BYTES + 1)
    except OSError:
        return None
    return data if data.startswith(_PNG_MAGIC) and len(data) <= _MAX_GRID_BYTES else None


def _cell(col: Column, line: Mapping[str, Any], rows: list[ResultRow], primary: str) -> dict[str, Any]:
    text = col.cell(line)
    cell: dict[str, Any] = {"text": text, "summary": None, "details": None, "classes": _classes(col, primary),
                            "row_header": col.key == "model", "label": col.title}
    if col.key == "status" and line["failed"]:
        cell["classes"].append("status-failed")
        errors = list(dict.fromkeys(r.error.strip() for r in rows if r.status == "failed" and r.error and r.error.strip()))
        full = _clip_error("\n\n".join(errors) or text)
        if len(text) > _ERROR_SUMMARY or "\n" in full:
            cell["summary"] = text if len(text) <= _ERROR_SUMMARY else text[: _ERROR_SUMMARY - 1] + "…"
            cell["details"] = full
    return cell


def _align(col: Column) -> str:
    return "text" if col.align == "left" else "num"


def _classes(col: Column, primary: str) -> list[str]:
    return [_align(col)] + (["primary"] if col.key == primary else []) + (["model"] if col.key == "model" else [])


def _header(col: Column, primary: str) -> dict[str, Any]:
    classes = _classes(col, primary)
    direction = {"↓": "lower is better", "↑": "higher is better"}.get(col.arrow, "")
    return {"text": col.header, "arrow": col.arrow, "direction": direction, "classes": classes}


def _rank_words(line: Mapping[str, Any], ranked: int) -> str:
    if pd.isna(line["rank"]):
        return "not ranked (no successful seed)"
    words = f"rank {int(line['rank'])} of {ranked}"
    group = str(line["rank_group"])
    if group:
        return f"{words}, group {group} (lines sharing a letter are not significantly different)"
    if int(line["n_seeds"]) < 2:
        return f"{words}, no group (one seed: a difference cannot be tested)"
    return words


def _costs(lb: Leaderboard, line: Mapping[str, Any], best: ResultRow | None) -> list[tuple[str, str]]:
    costs = best.costs if best is not None else {}
    if line.get("external_source"):  # samples made elsewhere: where from, and no cost to report
        return [("samples", f"external: {line['external_source']}"),
                ("training", "not measured (samples made elsewhere)")]
    out = [
        ("training", " · ".join(p for p in (
            f"{float(line['train_seconds']):.3g} s" if _ok(line.get("train_seconds")) else "",
            f"{format_count(line['train_steps'])} steps" if _ok(line.get("train_steps")) else "",
            f"{format_count(line['train_flops'])} FLOPs" if _ok(line.get("train_flops")) else "",
        ) if p)),
        ("budget", _budget_text(line, costs)),
        ("train speed", f"{format_rate(line.get('train_images_per_s'))} img/s" if _ok(line.get("train_images_per_s")) else ""),
        ("sample speed", f"{format_rate(line.get('sample_images_per_s'))} img/s" if _ok(line.get("sample_images_per_s")) else ""),
        ("parameters", format_count(line.get("params")) if _ok(line.get("params")) else ""),
        ("peak memory", _memory_text(line, costs)),
        ("precision · batch", f"{line['precision']}" + (f" · {int(line['batch_size'])}" if _ok(line.get("batch_size")) else "")),
    ]
    return [(k, v) for k, v in out if v]


def _ok(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _budget_text(line: Mapping[str, Any], costs: Mapping[str, Any]) -> str:
    from zoo.bench.aggregate import budget_label

    text = budget_label(str(line["budget_kind"]), line["budget_amount"])
    stopped = _text_field(line, costs, "budget_stopped_by")
    return f"{text}, stopped by {stopped}" if isinstance(stopped, str) and stopped else text


def _text_field(line: Mapping[str, Any], costs: Mapping[str, Any], key: str) -> str:
    for value in (line.get(key), costs.get(key)):
        if isinstance(value, str) and value:
            return value
    return ""


def _memory_text(line: Mapping[str, Any], costs: Mapping[str, Any]) -> str:
    if not _ok(line.get("peak_memory_mb")):
        return ""
    kind = _text_field(line, costs, "memory_kind")
    return f"{float(line['peak_memory_mb']):,.0f} MB" + (f" ({kind})" if isinstance(kind, str) and kind else "")


def _card(lb: Leaderboard, line: Mapping[str, Any], ranked: int, base_dir: Path | None) -> dict[str, Any]:
    rows = lb.rows_of(line)
    best = next((r for r in rows if r.seed == line["best_seed"] and r.status == "ok"), None)
    label = lb.line_label(line)
    if base_dir is None and lb.store_folder:
        base_dir = Path(lb.store_folder)
    roots = allowed_roots(base_dir, rows)
    grid = _read_png(str(line["grid_path"]), base_dir, roots) if line["grid_path"] else None
    if grid == OUTSIDE:
        grid, grid_note = None, f"sample grid {OUTSIDE}: {line['grid_path']}"
    elif grid is not None:
        grid_note = f"samples from {label}, seed {line['best_seed']} (the best seed by {lb.primary_metric})"
    elif line["grid_path"]:
        grid_note = f"sample grid not found: {line['grid_path']}"
    else:
        grid_note = "no sample grid recorded"
    images, image_notes = [], []
    for name, path in (getattr(best, "images", None) or {}).items():
        data = _read_png(str(path), base_dir, roots)
        if data == OUTSIDE:
            image_notes.append(f"{name} {OUTSIDE}: {path}")
        elif isinstance(data, bytes):
            images.append({"src": _data_uri(data), "name": str(name), "alt": f"{name} for {label}"})
    primary = lb.primary_metric
    return {
        "label": label,
        "rank_label": "" if pd.isna(line["rank"]) else f"{int(line['rank'])} {line['rank_group']}".strip(),
        "rank_words": _rank_words(line, ranked),
        "top": is_top_ranked(line),
        "failed": int(line["n_seeds"]) == 0,
        "primary": format_mean_std(line[f"{primary}_mean"], line[f"{primary}_std"]),
        "interval": format_interval(line["ci_low"], line["ci_high"]),
        "seeds": f"{int(line['n_seeds'])} seed{'s' if int(line['n_seeds']) != 1 else ''}"
                 + (f" ({line['seeds']})" if line["seeds"] else ""),
        "status": str(line["status"]),
        "grid": _data_uri(grid) if isinstance(grid, bytes) else None,
        "grid_note": grid_note,
        "images": images,
        "image_notes": image_notes,
        "costs": _costs(lb, line, best),
    }


def _protocol_list(protocol: Mapping[str, Any]) -> list[dict[str, Any]]:
    def text(value: Any) -> str:
        if isinstance(value, Mapping):
            return ", ".join(f"{k}: {v}" for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return " × ".join(str(v) for v in value)
        return str(value)

    seen = {"hash"}
    groups = []
    for name, keys in PROTOCOL_GROUPS:
        items = [(k, text(protocol[k])) for k in keys if k in protocol]
        seen.update(keys)
        if items:
            groups.append({"name": name, "items": items})
    rest = [(k, text(v)) for k, v in sorted(protocol.items()) if k not in seen]
    if rest:
        groups.append({"name": "other", "items": rest})
    return groups


def _failures(lb: Leaderboard) -> list[dict[str, str]]:
    failed = [r for r in lb.rows if r.status == "failed"][-HTML_MAX_FAILURES:]  # the latest ones
    return [{"model": r.model, "seed": str(r.seed),
             "options": canonical_json(r.sample_options) if r.sample_options else "default options",
             "error": _clip_error(r.error or "no error recorded")} for r in failed]


def top_lines(lb: Leaderboard, limit: int) -> Leaderboard:
    """``lb`` with its ``limit`` best-ranked table lines and their rows only (``lb`` itself when it
    has no more): what the page and its plots show of a board of thousands of lines."""
    if len(lb.table) <= limit:
        return lb
    table = lb.table.head(limit).reset_index(drop=True)
    keys = {line_key_of(line) for line in table.to_dict("records")}
    groups = lb.line_rows()
    rows = sorted((r for k in keys for r in groups.get(k, [])), key=lambda r: r.created_at)
    return dataclasses.replace(lb, table=table, rows=rows, _grouped=None)


def _cap_notes(lb: Leaderboard) -> list[str]:
    notes = []
    if len(lb.table) > HTML_MAX_LINES:
        notes.append(f"This page shows the {HTML_MAX_LINES} best-ranked of {len(lb.table):,} lines; "
                     "`zoo leaderboard --format csv` lists them all.")
    if len(lb.table) > PLOT_MAX_LINES:
        notes.append(f"The plots draw the {PLOT_MAX_LINES} best-ranked lines.")
    failed = sum(1 for r in lb.rows if r.status == "failed")
    if failed > HTML_MAX_FAILURES:
        notes.append(f"Failures: the latest {HTML_MAX_FAILURES} of {failed:,} are listed.")
    return notes


def _environments(lb: Leaderboard) -> dict[str, Any] | None:
    seen: dict[str, dict[str, Any]] = {}
    for row in lb.rows:
        if row.environment:
            seen.setdefault(canonical_json(row.environment), row.environment)
    if not seen:
        return None
    keys = list(dict.fromkeys(k for env in seen.values() for k in env))
    return {"keys": keys, "rows": [[str(env.get(k, "")) for k in keys] for env in seen.values()]}


def _plots(lb: Leaderboard, index: int) -> list[dict[str, Any]]:
    """The board's plots as inline SVG (sharp at any zoom and in print; text drawn as paths, so no
    name from a row reaches the page as markup)."""
    from markupsafe import Markup

    found = [(f"Quality vs {COMPUTE_AXES[x].split(' (')[0]}", plot_quality_vs_compute(lb, x, fmt="svg"),
              lambda x=x: _compute_alt(lb, x)) for x in COMPUTE_AXES]
    found.append(("Quality vs sampling steps", plot_quality_vs_steps(lb, fmt="svg"), lambda: _steps_alt(lb)))
    found.append(("Throughput", plot_throughput(lb, fmt="svg"), lambda: _throughput_alt(lb)))
    from zoo.bench.trialplot import plot_trials, trials_alt

    # zoo bench --tune: each model's trials beside its final line
    found.append(("Tuning trials", plot_trials(lb, fmt="svg"), lambda: trials_alt(lb)))
    return [{"title": title, "svg": Markup(inline_svg(svg, f"b{index}p{k}-")), "alt": alt()}  # noqa: S704
            for k, (title, svg, alt) in enumerate(found) if svg is not None]


#: Columns of the ranking table; the others (further metrics, costs) go to tables of at most
#: `DETAIL_COLUMNS` columns each, beside the model name, so every table fits 1,280 px.
RANKING_KEYS = ("rank", "model", "options", "sample_nfe", "group", "ci", "seeds", "status")
DETAIL_COLUMNS = 6
#: A view with this many columns or fewer is one table, in the order the reader chose.
ONE_TABLE = 9


def _table_groups(lb: Leaderboard, cols: list[Column], primary: str) -> list[tuple[str, list[Column]]]:
    """The board's human columns as ``(caption, columns)`` tables: the ranking, then the other
    metrics and the costs in slices of `DETAIL_COLUMNS`, each led by the model column."""
    if len(cols) <= ONE_TABLE:
        return [("", cols)]
    ranking = [c for c in cols if c.key in RANKING_KEYS or c.key == primary]
    # beside further metrics and costs the model column names the sampling options too
    model = [dataclasses.replace(c, cell=lb.line_label) for c in cols if c.key == "model"]
    rest = [c for c in cols if c not in ranking]
    metrics = [c for c in rest if c.arrow]
    costs = [c for c in rest if not c.arrow]
    groups = [("", ranking)]
    for name, part in (("further metrics", metrics), ("costs", costs)):
        if part:  # even slices: nine metrics are 5 + 4, not 6 + 3
            size = -(-len(part) // -(-len(part) // DETAIL_COLUMNS))
            groups += [(name, model + part[k:k + size]) for k in range(0, len(part), size)]
    return groups


def _downloads(lb: Leaderboard) -> list[dict[str, str]]:
    """The board's rows as CSV and JSON data URIs (every line, not only those the page shows),
    unless they exceed `DOWNLOAD_MAX_BYTES`."""
    from zoo.bench.render.csvfile import to_csv
    from zoo.bench.render.jsonfile import to_json

    slug = re.sub(r"[^a-z0-9]+", "-", f"{lb.dataset}-{lb.protocol_hash[:12]}".lower()).strip("-") or "board"
    out = []
    fields = machine_fields(lb)
    # Each line writes at least a separator per field (CSV) or each field's quoted name (JSON):
    # a board surely past the limit is not rendered only to be left out (most of a large page).
    least = {"CSV": len(fields), "JSON": sum(len(f) + 4 for f in fields)}
    for kind, mime, render in (("CSV", "text/csv", to_csv), ("JSON", "application/json", to_json)):
        if len(lb.table) * least[kind] > DOWNLOAD_MAX_BYTES:
            continue
        data = render([lb]).encode("utf-8")
        if len(data) <= DOWNLOAD_MAX_BYTES:
            out.append({"kind": kind, "name": f"leaderboard-{slug}.{kind.lower()}", "size": f"{len(data) / 1024:,.0f} kB",
                        "href": f"data:{mime};charset=utf-8;base64," + base64.b64encode(data).decode("ascii")})
    return out


#: A download larger than this is left out of the page (``zoo leaderboard --format csv`` writes it).
DOWNLOAD_MAX_BYTES = 4 * 1024 * 1024


def section_context(lb: Leaderboard, index: int, base_dir: Path | None = None) -> dict[str, Any]:
    """Plain data for one leaderboard's section of the page (see the template)."""
    primary = lb.primary_metric
    cols = human_columns(lb)  # the same columns as every format, in tables that fit the screen
    whole, lb = lb, top_lines(lb, HTML_MAX_LINES)
    lines = lb.table.to_dict("records")
    ranked = int(whole.table["rank"].notna().sum()) if len(whole.table) else 0
    tables = []
    for k, (caption, group) in enumerate(_table_groups(lb, cols, primary)):
        body = []
        for line in lines:
            rows = lb.rows_of(line)
            klass = "failed" if int(line["n_seeds"]) == 0 else ("best" if is_top_ranked(line) else "")
            body.append({"classes": klass, "cells": [_cell(c, line, rows, primary) for c in group]})
        tables.append({
            "id": f"board-{index}-t{k}", "caption": caption, "headers": [_header(c, primary) for c in group],
            "floor_cells": [{"text": c.floor, "row_header": c.key == "model", "classes": _classes(c, primary),
                             "label": c.title} for c in group],
            "lines": body})
    return {
        "id": f"board-{index}",
        "dataset": lb.dataset,
        "protocol_hash": lb.protocol_hash,
        "primary_metric": primary,
        "arrow": lb.arrow,
        "direction": lb.direction,
        "floor": floor_text(lb, primary),
        "tables": tables,
        "downloads": _downloads(whole),
        "footnotes": footnote(whole) + _cap_notes(whole),
        "cards": [_card(lb, line, ranked, base_dir) for line in lines],
        "plots": _plots(top_lines(lb, PLOT_MAX_LINES), index),
        "failures": _failures(whole),
        "protocol": _protocol_list(lb.protocol),
        "environments": _environments(whole),
    }


def page_context(leaderboards: Sequence[Leaderboard], title: str = "genzoo leaderboard",
                 base_dir: Path | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain data (strings, lists, dicts)."""
    from zoo import __version__

    return {
        "title": title,
        "stamp": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "sections": [section_context(lb, i, base_dir) for i, lb in enumerate(leaderboards)],
    }


def _environment():  # noqa: ANN202 - jinja2 is imported lazily
    from jinja2 import Environment, PackageLoader, StrictUndefined

    # finalize: every value the template prints loses its control characters (shown as \xNN) before
    # autoescaping, so no escape sequence or bell from a name reaches the page's text.
    return Environment(loader=PackageLoader("zoo.bench", "templates"), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, finalize=_printable)


def _printable(value: Any) -> Any:
    from markupsafe import Markup

    from zoo.text import printable

    if isinstance(value, Markup):  # the plots' SVG, made here from paths (see inline_svg)
        return value
    return printable(value) if isinstance(value, str) else value


def render_html(leaderboards: Sequence[Leaderboard], title: str = "genzoo leaderboard", base_dir: Path | None = None) -> str:
    """The whole page as a string (see `write_html`)."""
    template = _environment().get_template("leaderboard.html.j2")
    return template.render(**page_context(leaderboards, title=title, base_dir=base_dir))


def write_html(
    leaderboards: Sequence[Leaderboard],
    path: str | os.PathLike[str],
    title: str = "genzoo leaderboard",
    base_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write one self-contained HTML page: per leaderboard the ranked table with its floor, a
    summary card per line (rank, primary metric with its 95% interval, sample grid, cost), plots
    (quality vs training FLOPs and seconds, quality vs sampling steps, throughput), failures, the
    protocol and the environments. Relative grid paths are looked up under ``base_dir`` when they
    do not exist as given. Only images inside ``base_dir`` (the store's folder) or a genzoo run
    folder a row records are embedded (see `allowed_roots`); others get a "not embedded"
    note. Written atomically."""
    text = render_html(leaderboards, title=title, base_dir=Path(base_dir) if base_dir is not None else None)
    return write_text_atomic(path, text)


# -- published results ---------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-") or "unknown"


def published_stem(preset: str, device: str, torch_version: str) -> str:
    """``<preset>-<device>-torch<version>``, e.g. ``quick-nvidia-h100-80gb-hbm3-torch2.15.0``."""
    return f"{_slug(preset or 'custom')}-{_slug(device)}-torch{_slug(torch_version)}"


def publish_results(
    leaderboards: Sequence[Leaderboard],
    directory: str | os.PathLike[str],
    preset: str,
    device: str,
    torch_version: str,
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` under ``directory`` (``benchmarks/results``)."""
    stem = published_stem(preset, device, torch_version)
    directory = Path(directory)
    header = f"# genzoo results: preset {preset}, {device}, torch {torch_version}\n\n"
    csv_path = write_text_atomic(directory / f"{stem}.csv", to_csv(leaderboards))
    md_path = write_text_atomic(directory / f"{stem}.md", header + to_markdown(leaderboards))
    return csv_path, md_path
