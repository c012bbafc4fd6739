"""Leaderboards as LaTeX tables for a paper: booktabs rules, mean ± std, the best value of each
metric in bold, and footnotes for the real-vs-real floor, the rank groups and the board's power.

Each board is one ``table`` float holding a ``tabular`` (needs ``\\usepackage{booktabs}`` only; the
document's own ``\\caption`` style applies). Every text that comes from a row, a plugin or the
protocol is escaped for LaTeX (`escape`): special characters become their commands, known
symbols (``±``, ``↓``, ``α``, ``–``) become math or text commands, other non-ASCII characters are
spelled ``U+XXXX`` so pdflatex never stops on them. The columns are the board's column model
([`zoo.bench.columns.columns`][zoo.bench.columns.columns]), so ``--columns``, ``--metrics`` and ``--sort`` apply; with no
``--columns``, the interval, throughput, memory and status columns are left out (a paper table's width).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from zoo.bench.aggregate import Leaderboard
from zoo.bench.cellfmt import format_mean_std
from zoo.bench.cellfmt import numeric as _numeric
from zoo.bench.columns import CI_NOTE, GROUP_NOTE, Column, human_columns, power_note

__all__ = ["PAPER_SKIP", "escape", "to_latex"]

#: Columns a paper table leaves out unless ``--columns`` asks for them (the group and std say what
#: the interval would; costs and errors belong in the text).
PAPER_SKIP = frozenset({"ci", "train_images_per_s", "sample_images_per_s", "peak_memory_mb", "status"})

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", '"': r"{\ttfamily\char34}",
}
_SYMBOLS = {
    "±": r"$\pm$", "↓": r"$\downarrow$", "↑": r"$\uparrow$", "α": r"$\alpha$", "×": r"$\times$",
    "–": "--", "—": "---", "…": r"\ldots{}", "·": r"\textperiodcentered{}", "≥": r"$\geq$",
    "≤": r"$\leq$", "�": "?", "’": "'", "‘": "`", "“": "``", "”": "''", "\u00a0": "~",
}


def escape(text: Any) -> str:
    """``text`` as LaTeX that typesets it literally: ``&%$#_{}~^\\<>|"`` escaped, known symbols as
    commands, control characters and other non-ASCII characters spelled ``U+XXXX`` (accented
    letters keep their base letter: ``é`` -> ``e``). Never raises."""
    out = []
    for ch in str(text):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _SYMBOLS:
            out.append(_SYMBOLS[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")
            base = "".join(c for c in base if " " < c <= "~" and c not in _SPECIAL)
            out.append(base or f"U+{ord(ch):04X}")
    return "".join(out)


def _paper_columns(lb: Leaderboard) -> list[Column]:
    cols = human_columns(lb)
    if lb.view is not None and lb.view.columns:
        return cols  # the reader chose them
    return [c for c in cols if c.key not in PAPER_SKIP]


def _best_means(lb: Leaderboard, cols: Sequence[Column]) -> dict[str, float]:
    """Per metric column, the best mean over the board's lines (by the metric's direction)."""
    best = {}
    for col in cols:
        if not col.arrow or f"{col.key}_mean" not in lb.table.columns:
            continue
        values = [v for v in (_numeric(x) for x in lb.table[f"{col.key}_mean"]) if math.isfinite(v)]
        if values:
            best[col.key] = max(values) if col.arrow == "↑" else min(values)
    return best


def _cell(col: Column, line: Mapping[str, Any], best: Mapping[str, float]) -> str:
    if col.arrow:  # a metric: mean ± std, the best bold
        mean = _numeric(line.get(f"{col.key}_mean"))
        text = escape(format_mean_std(mean, line.get(f"{col.key}_std")))
        return rf"\textbf{{{text}}}" if col.key in best and mean == best[col.key] else text
    return escape(col.cell(line))


def _header(col: Column, marks: Mapping[str, str]) -> str:
    title = escape(col.header) + (f" {escape(col.arrow)}" if col.arrow else "")
    mark = marks.get(col.key)
    return title + (rf"\textsuperscript{{{mark}}}" if mark else "")


def _label(lb: Leaderboard) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", lb.dataset.lower()).strip("-") or "board"
    return f"tab:zoo-{slug}-{re.sub(r'[^0-9a-z]', '', lb.protocol_hash.lower())[:8]}"


def board_latex(lb: Leaderboard) -> str:
    """One leaderboard as a ``table`` float: caption, label, the tabular (the floor line first,
    set apart by a rule) and its footnotes."""
    cols = _paper_columns(lb)
    best = _best_means(lb, cols)
    keys = [c.key for c in cols]
    marks = {}  # footnote letters on the headers they explain
    if "group" in keys:
        marks["group"] = "b"
    elif "rank" in keys:
        marks["rank"] = "b"
    if lb.primary_metric in keys:
        marks[lb.primary_metric] = "c"
    spec = "".join("l" if c.align == "left" else "r" for c in cols)
    floor = []
    for col in cols:
        text = escape(col.floor)
        floor.append(r"real vs real\textsuperscript{a}" if col.key == "model" else text)
    if "model" not in keys and floor:
        floor[0] = (floor[0] + " " if floor[0] else "") + r"\textsuperscript{a}"
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{{escape(lb.dataset)}: {escape(lb.primary_metric)} ({escape(lb.direction)}), "
        rf"mean $\pm$ std over seeds; protocol \texttt{{{escape(lb.protocol_hash[:12])}}}.}}",
        rf"\label{{{_label(lb)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(_header(c, marks) for c in cols) + r" \\",
        r"\midrule",
        r"\textit{" + r"} & \textit{".join(floor) + r"} \\" if any(floor) else None,
        r"\midrule" if any(floor) else None,
    ]
    for line in lb.table.to_dict("records"):
        lines.append(" & ".join(_cell(c, line, best) for c in cols) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\smallskip\parbox{{\linewidth}}{{\footnotesize\raggedright {note}}}" for note in _notes(lb, best)]
    lines.append(r"\end{table}")
    return "\n".join(line for line in lines if line is not None) + "\n"


def _notes(lb: Leaderboard, best: Mapping[str, float]) -> list[str]:
    floor = lb.floor.get(lb.primary_metric, math.nan)
    notes = [
        r"\textsuperscript{a}" + escape(
            "Real vs real: the score of two sets of real images under this protocol, the floor a "
            "generator can reach at this sample count" + (f" ({floor:.4g} {lb.primary_metric})."
                                                           if math.isfinite(floor) else ".")),
        r"\textsuperscript{b}" + escape(f"{GROUP_NOTE}. {CI_NOTE} (of {lb.primary_metric})."),
        r"\textsuperscript{c}" + escape(power_note(lb)),
    ]
    if best:
        notes.append(escape("Bold: the best mean of each metric; mean ± std over seeds (sample std, ddof=1)."))
    singles = lb.single_seed_lines
    if singles:
        notes.append(escape(f"{singles} line{'s' if singles != 1 else ''} with a single seed: no std, "
                            "interval or group."))
    failed = int((lb.table["n_seeds"] == 0).sum()) if len(lb.table) else 0
    if failed:
        notes.append(escape(f"{failed} line{'s' if failed != 1 else ''} without a successful seed (unranked)."))
    return notes + [escape(f"Warning: {w}") for w in lb.warnings]


def to_latex(leaderboards: Sequence[Leaderboard]) -> str:
    """Every leaderboard as a LaTeX ``table`` float (needs ``\\usepackage{booktabs}``); a comment
    alone when there is none."""
    head = "% genzoo leaderboard; needs \\usepackage{booktabs}\n"
    if not leaderboards:
        return head + "% No results yet.\n"
    return head + "\n".join(board_latex(lb) for lb in leaderboards)
