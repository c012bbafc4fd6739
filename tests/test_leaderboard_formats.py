"""Paper-ready leaderboard output (issue 24): LaTeX that parses as a booktabs tabular (and compiles
with pdflatex where Debian's texlive is installed, as CI installs it), ``--columns`` / ``--metrics``
/ ``--sort`` honoured by every format, CSV ranks as numbers with a group column that needs no
formula guard, and the page's curves in ``--format json``."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from zoo.bench.columns import apply_view
from zoo.bench.leaderboard import build_leaderboard, to_csv, to_json
from zoo.bench.render.latex import escape, to_latex
from zoo.bench.store import ResultRow, ResultsStore
from zoo.cli.app import run

P = {"primary_metric": "fid_lenet", "n_gen": 1000, "backbone": "lenet"}
FLOOR = {"fid_lenet": 1.25, "is_lenet": 9.9, "kid_lenet": 0.0002}
HOSTILE = "evil & 50% $x$ #1 _a_ {b} ~c ^d \\e <f> |g| \"h\" é 日 \x1b[31m"


def row(model: str, seed: int, fid: float | None, params: float = 1e6, **extra) -> ResultRow:
    metrics = {} if fid is None else {"fid_lenet": fid, "is_lenet": 9.0 - fid / 10, "kid_lenet": fid / 1000}
    curve = [{"fraction": f, "train_flops": 1e12 * f, "train_seconds": 60.0 * f,
              "metrics": {"fid_lenet": fid * (2 - f)}} for f in (0.5, 1.0)] if fid is not None else []
    values = dict(model=model, dataset="mnist-5k", seed=seed, protocol_hash="p1", protocol=P, metrics=metrics,
                  floor=FLOOR, family="gan", curve=curve, status="ok" if fid is not None else "failed",
                  costs={"train_images_per_s": 1000.0, "params": params, "train_seconds": 60.0,
                         "train_flops": 1e12})
    values.update(extra)
    return ResultRow(**values)


def rows() -> list[ResultRow]:
    return ([row("ddpm", s, 10.0 + s, params=3e6) for s in range(3)]
            + [row("vae", s, 30.0 + 2 * s, params=2e6) for s in range(3)]
            + [row(HOSTILE, s, 20.0 + s, params=5e6) for s in range(3)]
            + [row("gan", 0, 25.0, params=1e6), row("broken", 0, None, error="boom")])


def tabulars(tex: str) -> list[tuple[str, list[list[str]]]]:
    """Parse every ``tabular`` of ``tex`` strictly: braces balance outside escapes, environments
    nest, each row has as many cells as the column spec and ends with ``\\\\``, and no special
    character is left bare. Returns ``(spec, rows of cells)`` per tabular."""
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    unescaped = re.sub(r"\\[\\{}&%$#_]|\\[a-zA-Z]+", "", body)  # drop escapes and command names
    depth = 0
    for ch in unescaped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, "a closing brace without its opening one"
    assert depth == 0, "unbalanced braces"
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", body):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env, f"\\end{{{env}}} closes another environment"
    assert not stack
    found = []
    for spec, inner in re.findall(r"\\begin\{tabular\}\{([lrc]+)\}(.*?)\\end\{tabular\}", body, re.S):
        lines = [ln.strip() for ln in inner.strip().splitlines()]
        assert lines[0] == r"\toprule" and lines[-1] == r"\bottomrule"
        cells = []
        for ln in lines:
            if ln in (r"\toprule", r"\midrule", r"\bottomrule"):
                continue
            assert ln.endswith(r"\\"), f"a row that does not end with \\\\: {ln!r}"
            bare = re.sub(r"\\[\\&%$#_{}]", "", ln[:-2])
            assert not re.search(r"[%#_^~]", re.sub(r"\$[^$]*\$", "", bare)), f"a bare special character: {ln!r}"
            parts = bare.split("&")
            assert len(parts) == len(spec), f"{len(parts)} cells for {len(spec)} columns: {ln!r}"
            cells.append([p.strip() for p in ln[:-2].split(" & ")])
        found.append((spec, cells))
    return found


def test_latex_is_a_booktabs_tabular_with_bold_best_and_floor_rank_power_footnotes():
    (lb,) = build_leaderboard(rows())
    tex = to_latex([lb])
    ((spec, cells),) = tabulars(tex)
    header, floor, *lines = cells
    assert header[:2] == [r"\#", "model"] and header[2].startswith(r"fid\_lenet $\downarrow$")
    assert "real vs real" in floor[1] and r"\textsuperscript{a}" in floor[1] and "1.25" in floor[2]
    assert [ln[1] for ln in lines][:3] == ["ddpm", escape(HOSTILE), "gan"]
    assert lines[0][2] == r"\textbf{11.00 $\pm$ 1.00}" and r"\textbf" not in lines[1][2]  # best bold only
    assert lines[0][3] == "a" and lines[1][3] == "b"  # rank groups, not chained ties
    # footnotes: the floor (a), the rank method (b), the power (c)
    assert re.search(r"\\textsuperscript\{a\}Real vs real", tex)
    assert re.search(r"\\textsuperscript\{b\}.*Holm-corrected", tex)
    assert re.search(r"\\textsuperscript\{c\}Power: ", tex)
    assert "group" in header[3] and r"\textsuperscript{b}" in header[3]
    assert "train img/s" not in tex and "status" not in tex  # a paper table's width
    assert tex.count(r"\begin{table}") == 1 and r"\label{tab:zoo-mnist-5k-p1}" in tex


def test_latex_escapes_every_special_and_unknown_character():
    text = escape(HOSTILE)
    assert "\x1b" not in text and "日" not in text and "U+65E5" in text and "U+001B" in text
    assert r"\&" in text and r"50\%" in text and r"\$x\$" in text and r"\#1" in text and r"\_a\_" in text
    assert r"\{b\}" in text and r"\textasciitilde{}" in text and r"\textbackslash{}e" in text
    assert " e " in text  # é keeps its letter
    bare = re.sub(r"\\[a-z]+\{\}|\\[&%$#_{}]|\{\\ttfamily\\char34\}", "", text)  # without the escapes,
    assert not re.search(r"[&%$#_{}\\^~]", bare), bare  # nothing special is left


@pytest.mark.skipif(not shutil.which("pdflatex"), reason="needs pdflatex (.ci/run installs Debian's texlive-latex-base "
                    "and texlive-latex-recommended); the parser test above checks the structure everywhere")
def test_latex_compiles_with_pdflatex(tmp_path):
    (lb,) = build_leaderboard(rows())
    (tmp_path / "board.tex").write_text(to_latex([lb]), encoding="utf-8")
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                                      "\\input{board.tex}\n\\end{document}\n", encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
    if shutil.which("pdftotext"):  # the hostile name is typeset as text, not interpreted
        text = subprocess.run(["pdftotext", "doc.pdf", "-"], cwd=tmp_path, capture_output=True, text=True).stdout
        assert "evil & 50% $x$ #1" in text


VIEW = ["--columns", "rank,model,kid_lenet,fid_lenet,params", "--metrics", "kid_lenet", "--sort", "params:desc"]


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown", "json", "latex", "html"])
def test_columns_metrics_and_sort_apply_to_every_format(fmt, tmp_path, capsys):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_many([r for r in rows() if r.model != HOSTILE])
    out = tmp_path / f"board.{fmt}"
    assert run(["leaderboard", "--results", str(store.path), "--format", fmt, "-o", str(out), *VIEW]) == 0
    capsys.readouterr()
    text = out.read_text(encoding="utf-8")
    if fmt == "csv":
        header = next(csv.reader(io.StringIO(text)))
        assert "kid_lenet_mean" in header and "params" in header
        assert not {"is_lenet_mean", "train_images_per_s", "ci_low", "status"} & set(header)
        models = [r["model"] for r in csv.DictReader(io.StringIO(text)) if r["kind"] == "model"]
    elif fmt == "json":
        (board,) = json.loads(text)
        assert [c["key"] for c in board["columns"]] == ["rank", "model", "kid_lenet", "fid_lenet", "params"]
        assert "is_lenet_mean" not in board["lines"][0] and "train_images_per_s" not in board["lines"][0]
        models = [line["model"] for line in board["lines"]]
    else:
        header = {"table": lambda t: next(ln for ln in t.splitlines() if "┃" in ln and "model" in ln),
                  "markdown": lambda t: next(ln for ln in t.splitlines() if ln.startswith("| ")),
                  "latex": lambda t: t.split("\\toprule")[1].split("\\midrule")[0],
                  "html": lambda t: t.split("<thead>")[1].split("</thead>")[0]}[fmt](text)
        header = re.sub(r"<[^>]+>", " ", header).replace("\\_", "_")  # the header's text
        names = re.findall(r"#|model|kid_lenet|fid_lenet|params|is_lenet|train img/s|95% CI|status|seeds|group", header)
        assert names == ["#", "model", "kid_lenet", "fid_lenet", "params"], header
        body = text.split("real vs real")[-1]
        models = sorted(("ddpm", "vae", "gan", "broken"), key=lambda m: re.search(rf"\b{m}\b", body).start())
    assert models == ["ddpm", "vae", "gan", "broken"]  # by params, largest first; no value last


def test_a_wrong_view_is_one_line_and_exit_2(tmp_path, capsys):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_many(rows()[:3])
    for args, message in ((["--columns", "rank,modle"], "did you mean 'model'"),
                          (["--metrics", "fid_inception"], "unknown metric 'fid_inception'"),
                          (["--sort", "fid_lenet:up"], "asc or desc"),
                          (["--sort", "nope"], "unknown leaderboard column to sort by 'nope'"),
                          (["--columns", "budget,best"], "none of these is shown in a table")):
        assert run(["leaderboard", "--results", str(store.path), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_sort_changes_the_order_not_the_ranks():
    (lb,) = apply_view(build_leaderboard(rows()), sort="fid_lenet:desc")
    ranked = lb.table[lb.table["rank"].notna()]
    assert list(ranked["model"])[0] == "vae" and int(ranked["rank"].iloc[0]) == 4
    assert list(lb.table["model"])[-1] == "broken"  # no value: last either way


def test_csv_rank_is_a_number_and_its_group_needs_no_formula_guard():
    text = to_csv(build_leaderboard(rows()))
    lines = [r for r in csv.DictReader(io.StringIO(text)) if r["kind"] == "model"]
    assert [r["rank"] for r in lines][:4] == ["1", "2", "3", "4"]
    assert [r["rank_group"] for r in lines] == ["a", "b", "", "c", ""]  # gan: one seed, untested
    assert not any(r["rank"].startswith(("'", "=")) or r["rank_group"].startswith("'") for r in lines)


def test_csv_carries_no_terminal_control_characters_or_bidi_overrides():
    """A model named with an OSC escape retitled the terminal a CSV was printed to; NUL and
    U+202E passed too (table, markdown, latex and JSON escape them)."""
    name = "gan\x1b]0;PWNED\x07 \x00nul \u202eevil\x9b"
    hostile = [ResultRow(model=name, dataset="d", seed=s, protocol_hash="p" * 12, protocol=P,
                         config_label="a\r\nb\tc", metrics={"fid_lenet": 10.0 + s, "kid_\x1b[2J": 0.1})
               for s in range(2)]
    text = to_csv(build_leaderboard(hostile))
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text)
    (line,) = [r for r in csv.DictReader(io.StringIO(text)) if r["kind"] == "model"]
    assert line["model"] == "gan\ufffd]0;PWNED\ufffd \ufffdnul \ufffdevil\ufffd"
    assert "kid_\ufffd[2J_mean" in text.splitlines()[0]  # headers too
    assert line["config_label"] == "a\nb\tc"  # newlines and tabs are data, quoted


def test_json_has_the_quality_vs_compute_curves_the_page_plots(tmp_path):
    (board,) = json.loads(to_json(build_leaderboard(rows())))
    curves = board["curves"]
    assert curves["metric"] == "fid_lenet" and set(curves["compute"]) == {"train_flops", "train_seconds"}
    ddpm = next(c for c in curves["compute"]["train_flops"] if c["label"] == "ddpm")
    assert [p["x"] for p in ddpm["points"]] == [5e11, 1e12]
    assert ddpm["points"][1]["mean"] == pytest.approx(11.0) and ddpm["points"][1]["std"] == pytest.approx(1.0)
    assert ddpm["points"][0]["mean"] == pytest.approx(16.5)  # fid * 1.5 at half the budget
    assert not any(c["label"] == "broken" for c in curves["compute"]["train_flops"])


def test_latex_format_is_registered_through_the_formats_hook(tmp_path, capsys):
    from zoo.registry import get_registry

    assert get_registry().formats["latex"].spec.suffix == ".tex"
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_many(rows()[:3])
    assert run(["leaderboard", "--results", str(store.path), "--format", "latex"]) == 0
    assert capsys.readouterr().out.startswith("% genzoo leaderboard")
    assert Path(tmp_path / "r.sqlite").exists()


def test_plot_legends_sit_outside_the_axes_and_cover_no_data():
    """Issue 24: a legend covered the only point of a plot. Every plot's legend is below its axes,
    however many lines (here twelve, the page's cap); the SVG the page inlines has no XML prolog and
    ids of its own, so several plots on one page never share one."""
    from zoo.bench.report import (
        inline_svg,
        plot_quality_vs_steps,
        quality_vs_compute_figure,
        quality_vs_steps_figure,
        throughput_figure,
    )

    many = [row(f"model-{k} with a rather long configuration label", s, 10.0 + k + s,
                sample_options={"sampler": "ddim", "steps": 10 * (1 + k % 3)}) for k in range(12) for s in range(2)]
    (lb,) = build_leaderboard(many)
    figures = [quality_vs_compute_figure(lb, "train_flops"), quality_vs_steps_figure(lb), throughput_figure(lb)]
    for fig in figures:
        assert fig is not None
        fig.draw_without_rendering()
        (ax,) = fig.axes
        (legend,) = fig.legends
        box, axes = legend.get_window_extent(), ax.get_window_extent()
        assert box.y1 <= axes.y0 or box.x0 >= axes.x1, f"the legend overlaps the axes: {box} vs {axes}"
        for line in ax.lines:  # and so no data point is under it
            for x, y in ax.transData.transform(line.get_xydata()):
                assert not box.contains(x, y)
    svg = inline_svg(plot_quality_vs_steps(lb, fmt="svg"), "b0p2-")
    assert svg.startswith("<svg") and "<?xml" not in svg and "<metadata>" not in svg
    ids = re.findall(r'\bid="([^"]+)"', svg)
    assert ids and all(i.startswith("b0p2-") for i in ids)
    assert all(ref.lstrip("#").startswith("b0p2-") for ref in re.findall(r'href="(#[^"]+)"', svg))
