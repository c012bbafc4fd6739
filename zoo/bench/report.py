"""Leaderboards as files for people: a self-contained HTML page with plots, and published results.

The HTML page embeds everything (sample grids and matplotlib plots as base64 PNG data URIs, inline
CSS, no scripts), so it can be mailed or attached to a CI run. Every string that comes from a result
row (model, plugin and dataset names, errors, protocol values) is third-party text and is escaped.

Published results go under ``benchmarks/results/`` as CSV and Markdown, named after the preset, the
device and the torch version, the way timm names its benchmark CSVs, so results from different
hardware never overwrite each other.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zoo.bench.leaderboard import (
    Leaderboard,
    footnote,
    format_mean_std,
    human_columns,
    is_top_ranked,
    line_key,
    line_key_of,
    options_label,
    to_csv,
    to_markdown,
)
from zoo.bench.store import ResultRow, canonical_json
from zoo.fileio import atomic_write_text

__all__ = ["publish_results", "published_stem", "write_html", "write_text_atomic"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MAX_GRID_BYTES = 16 * 1024 * 1024  # a sample grid bigger than this is not embedded

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       max-width: 1200px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
.meta, .note { color: #59636e; font-size: .9em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { padding: .35em .7em; border-bottom: 1px solid #d0d7de; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; } td.text, th.text { text-align: left; }
tr.floor td { background: #ddf4ff; font-style: italic; }
tr.best td { font-weight: 600; } tr.failed td { color: #8c959f; }
td.status-failed { color: #cf222e; white-space: normal; max-width: 28em; }
.plots, .grids { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; border: 1px solid #d0d7de; border-radius: 6px; padding: .5em; background: #fff; }
figure img { display: block; max-width: 520px; height: auto; image-rendering: pixelated; }
.grids figure img { width: 256px; } figcaption { font-size: .85em; color: #59636e; margin-top: .3em; max-width: 520px; }
pre { background: #f6f8fa; padding: .8em; border-radius: 6px; overflow-x: auto; font-size: .85em; }
.warning { color: #9a6700; }
"""


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Kept for callers of the report API; see :func:`zoo.fileio.atomic_write_text`."""
    return atomic_write_text(path, text)


# -- plots ---------------------------------------------------------------------------------------


def _figure(width: float = 6.4, height: float = 4.0):  # noqa: ANN202
    # The object-oriented API renders with Agg without touching pyplot's global backend/state.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _value(mapping: dict[str, Any], key: str) -> float:
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _floor_line(ax: Any, lb: Leaderboard) -> None:
    floor = lb.floor.get(lb.primary_metric, math.nan)
    if not math.isnan(floor):
        ax.axhline(floor, color="#0969da", linestyle="--", linewidth=1, label=f"real vs real ({floor:.3g})")


def plot_quality_vs_time(lb: Leaderboard) -> bytes | None:
    """Primary metric against training seconds, one point per line with error bars over seeds."""
    fig, ax = _figure()
    times: list[float] = []
    for _, line in lb.table.iterrows():
        rows = [r for r in lb.rows_of(line) if r.status == "ok"]
        xs = [_value(r.costs, "train_seconds") for r in rows]
        ys = [_value(r.metrics, lb.primary_metric) for r in rows]
        pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if not (math.isnan(x) or math.isnan(y))]
        if not pairs:
            continue
        (x, xerr), (y, yerr) = _mean_std([p[0] for p in pairs]), _mean_std([p[1] for p in pairs])
        ax.errorbar([x], [y], xerr=[xerr], yerr=[yerr], fmt="o", capsize=3, label=lb.line_label(line))
        times.append(x)
    if not times:
        return None
    _floor_line(ax, lb)
    low, high = min(times), max(times)
    if low > 0 and high / low > 30:  # budgets spanning orders of magnitude
        ax.set_xscale("log")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel(f"{lb.primary_metric} ({lb.direction})")
    ax.set_title("Quality vs training time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def plot_quality_vs_steps(lb: Leaderboard) -> bytes | None:
    """Primary metric against sampling steps, one curve per model and sampler (diffusion models
    benchmarked at several step counts, e.g. DDIM 10/20/50/100, Song et al. 2021)."""
    curves: dict[str, dict[float, list[float]]] = {}
    labels = {line_key_of(line): str(line["label"]) for line in lb.table.to_dict("records")}
    for row in lb.rows:
        if row.status != "ok":
            continue
        steps = _value(row.sample_options, "steps")
        if math.isnan(steps):
            steps = _value(row.costs, "sample_steps")
        y = _value(row.metrics, lb.primary_metric)
        if math.isnan(steps) or math.isnan(y):
            continue
        rest = {k: v for k, v in row.sample_options.items() if k != "steps"}
        label = labels.get(line_key(row), row.model) + (f" · {options_label(rest)}" if rest else "")
        curves.setdefault(label, {}).setdefault(steps, []).append(y)
    curves = {k: v for k, v in curves.items() if len(v) >= 2}
    if not curves:
        return None
    fig, ax = _figure()
    for label, points in sorted(curves.items()):
        xs = sorted(points)
        stats = [_mean_std(points[x]) for x in xs]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[s for _, s in stats], marker="o", capsize=3, label=label)
    _floor_line(ax, lb)
    ax.set_xscale("log")
    ticks = sorted({s for points in curves.values() for s in points})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("sampling steps")
    ax.set_ylabel(f"{lb.primary_metric} ({lb.direction})")
    ax.set_title("Quality vs sampling steps")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return _png(fig)


def plot_throughput(lb: Leaderboard) -> bytes | None:
    """Horizontal bars of training and sampling images per second (log scale: a GAN generator and
    a 1000-step diffusion sampler differ by orders of magnitude)."""
    labels, train, sample = [], [], []
    for _, line in lb.table.iterrows():
        t = float(line.get("train_images_per_s", math.nan))
        s = float(line.get("sample_images_per_s", math.nan))
        if math.isnan(t) and math.isnan(s):
            continue
        labels.append(lb.line_label(line))
        train.append(t)
        sample.append(s)
    if not labels:
        return None
    fig, ax = _figure(height=max(2.5, 0.55 * len(labels) + 1.2))
    ys = list(range(len(labels)))
    ax.barh([y - 0.2 for y in ys], [0 if math.isnan(v) else v for v in train], height=0.4, label="train img/s", color="#0969da")
    ax.barh([y + 0.2 for y in ys], [0 if math.isnan(v) else v for v in sample], height=0.4, label="sample img/s", color="#bf8700")
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    if any(v > 0 for v in train + sample if not math.isnan(v)):
        ax.set_xscale("log")
    ax.set_xlabel("images per second (higher is better)")
    ax.set_title("Throughput")
    ax.grid(alpha=0.3, axis="x", which="both")
    ax.legend(fontsize="small")
    return _png(fig)


# -- HTML ----------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(data: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" alt="{_e(alt)}">'


def _read_grid(path: str, base_dir: Path | None) -> bytes | None:
    """The PNG bytes of a sample grid, or None when it is missing, too big or not a PNG."""
    if not path:
        return None
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base_dir is not None and not candidate.exists():
        candidate = base_dir / candidate
    try:
        if not candidate.is_file() or candidate.stat().st_size > _MAX_GRID_BYTES:
            return None
        data = candidate.read_bytes()
    except OSError:
        return None
    return data if data.startswith(_PNG_MAGIC) else None


def _table_html(lb: Leaderboard) -> str:
    cols = human_columns(lb)
    klass = ["text" if c.align == "left" else "num" for c in cols]
    head = "".join(f'<th class="{k}">{_e(c.title)}</th>' for c, k in zip(cols, klass, strict=True))
    body = ['<tr class="floor">' + "".join(f'<td class="{k}">{_e(c.floor)}</td>' for c, k in zip(cols, klass, strict=True)) + "</tr>"]
    for line in lb.table.to_dict("records"):
        row_class = "failed" if line["n_seeds"] == 0 else ("best" if is_top_ranked(line) else "")
        tds = []
        for c, k in zip(cols, klass, strict=True):
            cls = k + (" status-failed" if c.key == "status" and line["failed"] else "")
            tds.append(f'<td class="{cls}">{_e(c.cell(line))}</td>')
        body.append(f'<tr class="{row_class}">' + "".join(tds) + "</tr>")
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in footnote(lb))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{notes}"


def _grids_html(lb: Leaderboard, base_dir: Path | None) -> str:
    figures = []
    for _, line in lb.table.iterrows():
        label = lb.line_label(line)
        data = _read_grid(str(line["grid_path"]), base_dir)
        if data is None:
            body = '<p class="note">no sample grid recorded</p>' if not line["grid_path"] else f'<p class="note">sample grid not found: {_e(line["grid_path"])}</p>'
            figures.append(f"<figure>{body}<figcaption>{_e(label)}</figcaption></figure>")
            continue
        score = format_mean_std(_value_of(lb, line), math.nan)
        caption = f"{label} (seed {line['best_seed']}, {lb.primary_metric} {score})"
        figures.append(f"<figure>{_img(data, f'samples from {label}')}<figcaption>{_e(caption)}</figcaption></figure>")
    return f'<div class="grids">{"".join(figures)}</div>'


def _value_of(lb: Leaderboard, line: Any) -> float:
    """The best seed's primary metric for a line (its grid's score)."""
    rows = lb.rows_of(line)
    best = [r for r in rows if r.seed == line["best_seed"] and r.status == "ok"]
    return _value(best[0].metrics, lb.primary_metric) if best else math.nan


def _failures_html(lb: Leaderboard) -> str:
    failed = [r for r in lb.rows if r.status == "failed"]
    if not failed:
        return ""
    items = "".join(
        f"<li><strong>{_e(r.model)}</strong> seed {_e(r.seed)} ({_e(options_text(r))}):<pre>{_e(r.error or 'no error recorded')}</pre></li>"
        for r in failed
    )
    return f"<h3>Failures</h3><ul>{items}</ul>"


def options_text(row: ResultRow) -> str:
    return canonical_json(row.sample_options) if row.sample_options else "default options"


def _environment_html(lb: Leaderboard) -> str:
    seen: dict[str, dict[str, Any]] = {}
    for row in lb.rows:
        if row.environment:
            seen.setdefault(canonical_json(row.environment), row.environment)
    if not seen:
        return ""
    keys = list(dict.fromkeys(k for env in seen.values() for k in env))
    head = "".join(f'<th class="text">{_e(k)}</th>' for k in keys)
    body = "".join(
        "<tr>" + "".join(f'<td class="text">{_e(env.get(k, ""))}</td>' for k in keys) + "</tr>" for env in seen.values()
    )
    return f"<h3>Environment</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section_html(lb: Leaderboard, base_dir: Path | None) -> str:
    parts = [
        f"<section><h2>{_e(lb.dataset)} · protocol <code>{_e(lb.protocol_hash)}</code></h2>",
        f'<p>Ranked by <strong>{_e(lb.primary_metric)}</strong> ({lb.direction}). In the plots, the blue line '
        f"is the protocol's real-versus-real floor: the score of two sets of real images, the best a generator "
        f"can reach at this sample count.</p>",
    ]
    parts.append(_table_html(lb))
    plots = [
        ("quality vs training time", plot_quality_vs_time(lb)),
        ("quality vs sampling steps", plot_quality_vs_steps(lb)),
        ("throughput", plot_throughput(lb)),
    ]
    figures = [f"<figure>{_img(png, title)}</figure>" for title, png in plots if png is not None]
    if figures:
        parts.append(f'<h3>Plots</h3><div class="plots">{"".join(figures)}</div>')
    parts.append("<h3>Samples (best seed of each line)</h3>" + _grids_html(lb, base_dir))
    parts.append(_failures_html(lb))
    parts.append(f"<h3>Protocol</h3><pre>{_e(json.dumps(lb.protocol, indent=2, sort_keys=True, default=str))}</pre>")
    parts.append(_environment_html(lb))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def render_html(leaderboards: Sequence[Leaderboard], title: str = "genzoo leaderboard", base_dir: Path | None = None) -> str:
    """The whole page as a string (see :func:`write_html`)."""
    from zoo import __version__

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = "\n".join(_section_html(lb, base_dir) for lb in leaderboards) or "<p>No results yet.</p>"
    # The CSP forbids every script and remote resource: the page only shows inline CSS and data: images.
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="meta">Generated {stamp} by genzoo {_e(__version__)}. Rows measured under different protocols are never ranked together.</p>
{sections}
</body>
</html>
"""


def write_html(
    leaderboards: Sequence[Leaderboard],
    path: str | os.PathLike[str],
    title: str = "genzoo leaderboard",
    base_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write one self-contained HTML page: per leaderboard the ranked table with its floor, plots
    (quality vs training time, quality vs sampling steps, throughput), the sample grid of each
    line's best seed, failures, the full protocol and the environments. Relative grid paths are
    looked up under ``base_dir`` when they do not exist as given. Written atomically."""
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
