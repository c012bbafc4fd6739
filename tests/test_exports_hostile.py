"""Every built-in leaderboard format escapes hostile text from rows by its own rules.

Model, dataset, plugin, option, metric and cost names, config labels, error text and protocol
values all come from plugins, files or users. Each format gets the same hostile rows; each has its
own rule (CSV: no formula cells, numbers stay numbers; Markdown: one cell per column, no raw HTML,
links or code spans; JSON: strict and lossless; terminal text: no control characters; HTML:
escaped, with a CSP).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re

import pytest

from zoo.bench.formats import BUILTIN_FORMATS
from zoo.bench.leaderboard import build_leaderboard
from zoo.bench.store import ResultRow, ResultsStore

FORMULA = ("=", "+", "-", "@", "\t", "\r")
HOSTILE = [
    '=HYPERLINK("http://x")',
    "|a|b|",
    "<script>alert(1)</script>",
    "\x1b]0;title\x07",
    "[/]",
    "line\nbreak",
    "-2+3",
    "@SUM(A1)",
    "\tlead",
    "\r=1",
    "`code` a\\|b",
    "![x](http://evil.example/t.png)",
    "$\\frac{$ a$\\nosuchcommand$",  # matplotlib mathtext in the HTML page's plots
]


def hostile_rows() -> list[ResultRow]:
    rows = []
    for i, text in enumerate(HOSTILE):
        common = dict(dataset="ds" + text, protocol_hash="p1", budget_kind="steps", budget_amount=100.0,
                      protocol={"primary_metric": "fid_lenet", "note" + text: text},
                      floor={"fid_lenet": 1.0, "is_lenet": 9.0})
        rows.append(ResultRow(model=f"m{i}{text}", seed=0, plugin=text, config_label=text, **common,
                              sample_options={"sampler": text, text: 1, "steps": 10},
                              metrics={"fid_lenet": 5.0 + i, "is_lenet": -2.5, "=cmd" + text: 1.0},
                              costs={"train_images_per_s": -1.0, "sample_images_per_s": 50.0, "train_seconds": 10.0,
                                     "memory_kind": text, "@cost" + text: 3.0}))
        rows.append(ResultRow(model=f"m{i}{text}", seed=1, plugin=text, config_label=text, **common,
                              sample_options={"sampler": text, text: 1, "steps": 10}, status="failed", error=text + " went wrong"))
        rows.append(ResultRow(model=f"f{i}", seed=0, **common, status="failed", error=text))
    return rows


def _boards():
    return build_leaderboard(hostile_rows())


def _check_csv(doc: str) -> None:
    cells = [cell for record in csv.reader(io.StringIO(doc)) for cell in record]
    assert cells
    for cell in cells:
        if cell.startswith(FORMULA):
            float(cell)  # only a number may start with - or +: anything else is a formula


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def _check_markdown(doc: str) -> None:
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| #"):
            width = _unescaped_pipes(line)
            body = []
            for other in lines[i:]:
                if not other.startswith("|"):
                    break
                body.append(other)
            assert all(_unescaped_pipes(b) == width for b in body), body
    assert "\x1b" not in doc and "\x07" not in doc and "\r" not in doc
    for line in lines:
        # Inside a code span (CommonMark) text is literal: HTML is shown, not rendered.
        outside = re.sub(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)", "", re.sub(r"\\.", "", line))
        assert "`" not in outside, line  # every backtick opens a code span genzoo closed
        assert "<script" not in outside and "](" not in outside, line  # no raw HTML, no live link or image


def _check_json(doc: str) -> None:
    def refuse(name):  # noqa: ANN001
        raise AssertionError(f"non-standard JSON token {name}")

    data = json.loads(doc, parse_constant=refuse)
    text = json.dumps(data)
    for hostile in ('=HYPERLINK(\\"http://x\\")', "<script>alert(1)</script>", "\\u001b]0;title\\u0007"):
        assert hostile in text  # JSON carries the text exactly (escaping is JSON's own)


def _check_table(doc: str) -> None:
    assert not any(ch for ch in doc if not (ch.isprintable() or ch in "\n")), "control character in terminal text"
    assert "[/]" in doc  # shown as text, not parsed as markup


def _check_html(doc: str) -> None:
    assert "Content-Security-Policy" in doc and "default-src 'none'" in doc
    assert "<script" not in doc and "&lt;script&gt;" in doc
    assert "\x1b" not in doc and "\x07" not in doc
    assert 'href="http' not in doc and 'src="http' not in doc


def _check_latex(doc: str) -> None:
    from tests.test_leaderboard_formats import tabulars

    assert not any(ch for ch in doc if not (ch.isprintable() or ch in "\n")), "control character in LaTeX"
    assert len(tabulars(doc)) == len({r.dataset for r in hostile_rows()})  # every table parses, cells in place
    assert "\\nosuchcommand" not in doc and "\\textbackslash{}nosuchcommand" in doc


RULES = {"csv": _check_csv, "markdown": _check_markdown, "json": _check_json, "table": _check_table, "html": _check_html,
         "latex": _check_latex}


@pytest.mark.parametrize("fmt", BUILTIN_FORMATS, ids=lambda f: f.name)
def test_every_builtin_format_escapes_hostile_text(fmt):
    assert fmt.name in RULES, f"new built-in format {fmt.name} needs an escaping rule in this test"
    doc = fmt.render(_boards())
    RULES[fmt.name](doc if isinstance(doc, str) else doc.decode("utf-8"))


def test_csv_neutralises_text_and_keeps_negative_numbers_numbers():
    doc = BUILTIN_FORMATS[1].render(_boards())
    records = list(csv.DictReader(io.StringIO(doc)))
    models = [r for r in records if r["kind"] == "model"]
    assert any(r["model"] == "'@SUM(A1)" or r["label"].startswith("m7@SUM") for r in models)
    assert all(r["dataset"].startswith("ds") for r in records)
    assert {r["plugin"] for r in models} >= {"'=HYPERLINK(\"http://x\")", "'-2+3", "'\tlead"}
    assert any(h.startswith("'=cmd") for h in records[0])  # a metric named by a plugin is a header cell too
    assert any(r["error"].startswith("'\r=1") or r["error"] == "'=HYPERLINK(\"http://x\")" for r in models)
    assert {r["is_lenet_mean"] for r in models if r["is_lenet_mean"]} == {"-2.5"}  # numbers stay numbers
    assert {r["train_images_per_s"] for r in models if r["train_images_per_s"]} == {"-1.0"}


def test_cli_json_outputs_are_strict_json(tmp_path, capsys):
    """``zoo bench --collect --json`` prints rows whose unknown budget (NaN) is null, not NaN."""
    from tests.helpers import zoo_in_process

    runs = tmp_path / "runs"
    (runs / "job").mkdir(parents=True)
    row = ResultRow(model="m", dataset="d", seed=0, protocol_hash="p", metrics={"fid": math.nan})
    (runs / "job" / "rows.json").write_text(json.dumps([row.to_dict()]))
    code, out, err = zoo_in_process(capsys, "bench", "--collect", str(runs), "--results", str(tmp_path / "r.sqlite"), "--json")
    assert code == 0, err

    def refuse(name):  # noqa: ANN001
        raise AssertionError(f"non-standard JSON token {name}")

    (printed,) = json.loads(out, parse_constant=refuse)
    assert printed["budget_amount"] is None and printed["metrics"] == {"fid": None}
    assert ResultsStore(tmp_path / "r.sqlite").count() == 1


# -- the HTML report embeds only images inside the store's run folders -------------------------


def _png(path, seed: int) -> bytes:  # noqa: ANN001
    import torch
    from torchvision.utils import save_image

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    save_image(torch.rand(4, 1, 8, 8), path, nrow=2)
    return path.read_bytes()


def test_html_report_embeds_only_images_inside_the_store_run_folders(tmp_path, capsys):
    import base64

    from tests.helpers import zoo_in_process
    from zoo.bench.report import write_html

    secret = _png(tmp_path / "home" / "secret.png", 0)
    runs = tmp_path / "project" / "runs"
    inside = _png(runs / "bench" / "a-s0" / "samples.png", 1)
    (runs / "bench" / "b-s0").mkdir(parents=True)
    (runs / "bench" / "b-s0" / "samples.png").symlink_to(tmp_path / "home" / "secret.png")  # escapes by symlink
    elsewhere = tmp_path / "scratch" / "c-s0"  # a real run folder outside the store's (--runs-dir elsewhere)
    outside_run = _png(elsewhere / "samples.png", 2)
    (elsewhere / "job.json").write_text("{}")
    P = {"primary_metric": "fid_lenet"}

    def row(model, fid, **extra):  # noqa: ANN001, ANN202
        return ResultRow(model=model, dataset="d", seed=0, protocol_hash="p1", protocol=P, metrics={"fid_lenet": fid},
                         floor={"fid_lenet": 1.0}, **extra)

    store = ResultsStore(runs / "results.sqlite")
    store.add_many([
        row("inside", 2.0, grid_path=str(runs / "bench" / "a-s0" / "samples.png"), run_dir=str(runs / "bench" / "a-s0")),
        row("symlink", 3.0, grid_path=str(runs / "bench" / "b-s0" / "samples.png"), run_dir=str(runs / "bench" / "b-s0")),
        row("absolute", 4.0, grid_path=str(tmp_path / "home" / "secret.png"),
            images={"nearest_neighbours": str(tmp_path / "home" / "secret.png")}),
        row("claims-home", 5.0, grid_path=str(tmp_path / "home" / "secret.png"), run_dir=str(tmp_path / "home")),
        row("traversal", 6.0, grid_path=str(runs / "bench" / ".." / ".." / ".." / "home" / "secret.png")),
        row("own-run-folder", 7.0, grid_path=str(elsewhere / "samples.png"), run_dir=str(elsewhere)),
    ])
    code, page, err = zoo_in_process(capsys, "leaderboard", "--results", str(runs / "results.sqlite"), "--format", "html", "-o", "-")
    assert code == 0, err
    written = write_html(build_leaderboard(store.rows()), tmp_path / "out.html", base_dir=store.folder).read_text()
    for html in (page, written):
        assert base64.b64encode(secret).decode() not in html
        assert base64.b64encode(inside).decode() in html and base64.b64encode(outside_run).decode() in html
        assert html.count("not embedded: outside the store&#39;s run folders") == 5  # 4 grids + 1 nearest-neighbour image
