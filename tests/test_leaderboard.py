"""Leaderboards from synthetic result rows: aggregation, ranking, protocols, every output format."""

from __future__ import annotations

import base64
import io
import json
import math

import pandas as pd
import pytest
import torch
from rich.console import Console
from torchvision.utils import save_image

from zoo.bench.leaderboard import (
    build_leaderboard,
    format_count,
    format_mean_std,
    print_leaderboards,
    render_table,
    to_csv,
    to_json,
    to_markdown,
)
from zoo.bench.report import publish_results, published_stem, write_html
from zoo.bench.store import ResultRow, ResultsStore
from zoo.cli.app import run

P1 = {"primary_metric": "fid_lenet", "n_gen": 1000, "backbone": "lenet"}
P2 = {"primary_metric": "fid_lenet", "n_gen": 5000, "backbone": "lenet"}
FLOOR = {"fid_lenet": 1.25, "is_lenet": 9.9, "kid_lenet": 0.0002}


def row(model: str, seed: int, fid: float | None, *, protocol: dict = P1, phash: str = "p1", status: str = "ok", **extra) -> ResultRow:
    metrics = {} if fid is None else {"fid_lenet": fid, "is_lenet": 9.0 - fid / 10, "kid_lenet": fid / 1000}
    values = dict(model=model, dataset="mnist-5k", seed=seed, protocol_hash=phash, protocol=protocol, status=status,
                  metrics=metrics, floor=FLOOR, family="gan",
                  costs={"train_images_per_s": 1000.0 + seed, "sample_images_per_s": 5e4, "params": 1_234_567,
                         "peak_memory_mb": 300.0, "train_seconds": 60.0 + seed})
    values.update(extra)
    return ResultRow(**values)


def board_rows() -> list[ResultRow]:
    return [
        row("slow-gan", 0, 20.0),
        row("best-diffusion", 0, 5.0, sample_options={"sampler": "ddim", "steps": 50}),
        row("mid-vae", 0, 12.0),
        row("mid-vae", 1, 14.0),
        row("broken", 0, None, status="failed", error="RuntimeError: CUDA out of memory\nTraceback ..."),
        row("flaky", 0, 9.0),
        row("flaky", 1, None, status="failed", error="NaN loss"),
    ]


def test_mean_and_std_over_seeds_match_hand_numbers():
    rows = [row("vae", 0, 10.0), row("vae", 1, 12.0), row("vae", 2, 17.0)]
    (lb,) = build_leaderboard(rows)
    line = lb.table.iloc[0]
    # mean 13; sample std sqrt(((10-13)^2 + (12-13)^2 + (17-13)^2) / 2) = sqrt(13)
    assert line["fid_lenet_mean"] == pytest.approx(13.0)
    assert line["fid_lenet_std"] == pytest.approx(math.sqrt(13.0))
    assert line["is_lenet_mean"] == pytest.approx(9.0 - 1.3)
    assert line["kid_lenet_std"] == pytest.approx(math.sqrt(13.0) / 1000)
    assert line["train_images_per_s"] == pytest.approx(1001.0)
    assert (line["n_seeds"], line["seeds"], line["failed"], line["status"]) == (3, "0,1,2", 0, "ok")
    assert line["best_seed"] == 0
    assert "13.00 ± 3.61" in to_markdown([lb])
    # One seed: no spread to show.
    (single,) = build_leaderboard([row("vae", 0, 10.0)])
    assert math.isnan(single.table.iloc[0]["fid_lenet_std"])
    assert format_mean_std(10.0, math.nan) == "10.00"


def test_two_protocols_never_share_a_table():
    rows = [row("gan", 0, 10.0), row("gan", 1, 30.0, protocol=P2, phash="p2"), row("vae", 0, 5.0, protocol=P2, phash="p2")]
    boards = build_leaderboard(rows)
    assert [(lb.dataset, lb.protocol_hash) for lb in boards] == [("mnist-5k", "p1"), ("mnist-5k", "p2")]
    p1, p2 = boards
    assert p1.table["model"].tolist() == ["gan"] and p1.table.iloc[0]["fid_lenet_mean"] == 10.0
    assert p2.table["model"].tolist() == ["vae", "gan"] and p2.table.iloc[1]["fid_lenet_mean"] == 30.0
    assert p2.protocol == P2
    assert [lb.protocol_hash for lb in build_leaderboard(rows, protocol_hash="p2")] == ["p2"]
    assert build_leaderboard(rows, dataset="cifar10") == []
    # The formats keep them apart too.
    assert to_markdown(boards).count("real vs real") == 2
    frame = pd.read_csv(io.StringIO(to_csv(boards)))
    assert frame.groupby("protocol_hash")["model"].apply(list).to_dict() == {
        "p1": ["real vs real", "gan"], "p2": ["real vs real", "vae", "gan"]}


def test_ranking_by_primary_metric_with_failed_models_last():
    (lb,) = build_leaderboard(board_rows())
    table = lb.table
    assert table["model"].tolist() == ["best-diffusion", "flaky", "mid-vae", "slow-gan", "broken"]
    assert table["rank"].tolist()[:4] == [1, 2, 3, 4] and pd.isna(table["rank"].iloc[4])
    flaky = table.set_index("model").loc["flaky"]
    assert (flaky["n_seeds"], flaky["failed"], flaky["status"], flaky["error"]) == (1, 1, "1 ok, 1 failed", "NaN loss")
    broken = table.set_index("model").loc["broken"]
    assert broken["status"] == "failed" and broken["error"] == "RuntimeError: CUDA out of memory"
    assert lb.lower_is_better and lb.primary_metric == "fid_lenet"


def test_higher_is_better_primary_metric_ranks_descending():
    protocol = {**P1, "primary_metric": "is_lenet"}
    rows = [row(m, 0, fid, protocol=protocol) for m, fid in (("a", 20.0), ("b", 5.0), ("c", 12.0))]
    (lb,) = build_leaderboard(rows)
    assert not lb.lower_is_better
    assert lb.table["model"].tolist() == ["b", "c", "a"]  # is_lenet = 9 - fid/10


def test_sampler_options_are_separate_lines():
    rows = [row("ddpm", 0, 4.0, sample_options={"sampler": "ddim", "steps": 50}),
            row("ddpm", 0, 3.0, sample_options={"sampler": "ddpm", "steps": 1000})]
    (lb,) = build_leaderboard(rows)
    assert lb.table["options"].tolist() == ["ddpm, steps=1000", "ddim, steps=50"]
    assert lb.table["rank"].tolist() == [1, 2]


def test_network_evaluations_are_a_column_when_a_row_records_them():
    costs = {"sample_images_per_s": 10.0}
    rows = [row("ddpm", 0, 4.0, sample_options={"sampler": "ddim", "steps": 50}, costs={**costs, "sample_nfe": 50}),
            row("ddpm", 0, 3.0, sample_options={"sampler": "dpmpp2m", "steps": 10}, costs={**costs, "sample_nfe": 10}),
            row("gan", 0, 9.0)]
    (lb,) = build_leaderboard(rows)
    md = to_markdown([lb])
    header = next(line for line in md.splitlines() if line.startswith("| #"))
    assert "| NFE |" in header
    by_options = {line.split("|")[3].strip(): line for line in md.splitlines() if line.startswith("| ") and "ddpm" in line}
    assert "| 50 |" in by_options["ddim, steps=50"] and "| 10 |" in by_options["dpmpp2m, steps=10"]
    (plain,) = build_leaderboard([row("gan", 0, 9.0)])
    assert "NFE" not in to_markdown([plain])


def test_floor_is_shown_in_every_format():
    (lb,) = build_leaderboard(board_rows())
    assert lb.floor == FLOOR
    console = Console(record=True, width=200, file=io.StringIO())
    print_leaderboards([lb], console)
    text = console.export_text()
    assert "real vs real" in text and "floor 1.25" in text and "1.25" in text
    md = to_markdown([lb])
    floor_line = next(line for line in md.splitlines() if "real vs real" in line)
    assert "1.25" in floor_line and "9.90" in floor_line
    csv = pd.read_csv(io.StringIO(to_csv([lb])))
    floor = csv[csv["kind"] == "floor"].iloc[0]
    assert floor["fid_lenet_mean"] == 1.25 and floor["kid_lenet_mean"] == 0.0002
    assert json.loads(to_json([lb]))[0]["floor"] == FLOOR


def test_csv_parses_back_with_numeric_columns():
    (lb,) = build_leaderboard(board_rows())
    frame = pd.read_csv(io.StringIO(to_csv([lb])))
    for col in ("rank", "n_seeds", "failed", "fid_lenet_mean", "fid_lenet_std", "is_lenet_mean", "train_images_per_s", "params"):
        assert pd.api.types.is_numeric_dtype(frame[col]), col
    models = frame[frame["kind"] == "model"].set_index("model")
    assert models.loc["mid-vae", "fid_lenet_mean"] == pytest.approx(13.0)
    assert models.loc["mid-vae", "fid_lenet_std"] == pytest.approx(math.sqrt(2.0))
    assert models.loc["best-diffusion", "rank"] == 1
    assert pd.isna(models.loc["broken", "rank"])
    assert json.loads(models.loc["best-diffusion", "sample_options"]) == {"sampler": "ddim", "steps": 50}


def test_markdown_has_header_row_and_escapes_pipes():
    rows = board_rows() + [row("pipe|model", 0, 30.0)]
    md = to_markdown(build_leaderboard(rows))
    lines = md.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| #"))
    assert "| model |" in lines[header] and "fid_lenet" in lines[header]
    assert set(lines[header + 1].replace("|", "").replace(" ", "")) <= set("-:")
    assert lines[header + 1].count("|") == lines[header].count("|")
    table_lines = [line for line in lines if line.startswith("|")]
    assert all(line.count("|") - line.count("\\|") == lines[header].count("|") for line in table_lines)
    assert "pipe\\|model" in md


def test_json_is_strict_and_complete():
    boards = build_leaderboard(board_rows())
    def refuse(name):  # NaN / Infinity are not JSON
        raise ValueError(name)
    data = json.loads(to_json(boards), parse_constant=refuse)
    (board,) = data
    assert board["primary_metric"] == "fid_lenet" and board["protocol"] == P1
    lines = {line["model"]: line for line in board["lines"]}
    assert set(lines) == {"slow-gan", "best-diffusion", "mid-vae", "broken", "flaky"}
    assert lines["broken"]["rank"] is None and lines["broken"]["fid_lenet_mean"] is None
    assert lines["mid-vae"]["fid_lenet_mean"] == 13.0


def test_terminal_table_does_not_interpret_markup_from_rows():
    (lb,) = build_leaderboard([row("[bold red]evil[/]", 0, 3.0)])
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(render_table(lb))
    assert "[bold red]evil[/]" in console.export_text()


def test_narrow_terminal_hides_secondary_columns_and_says_so():
    (lb,) = build_leaderboard(board_rows())
    console = Console(record=True, width=70, file=io.StringIO())
    print_leaderboards([lb], console)
    text = console.export_text()
    assert "not shown" in text and "peak MB" in text.split("not shown")[1]
    assert "13.00 ± 1.41" in text  # the primary metric stays, unwrapped


def _grid(path) -> bytes:
    torch.manual_seed(0)
    save_image(torch.rand(16, 1, 8, 8), path, nrow=4)
    return path.read_bytes()


def test_html_is_one_self_contained_file(tmp_path):
    grid = _grid(tmp_path / "grid.png")
    rows = board_rows() + [
        row("<script>alert('x')</script>", 0, 7.0, grid_path=str(tmp_path / "grid.png")),
        row("best-diffusion", 0, 9.0, sample_options={"sampler": "ddim", "steps": 10}),
        row("best-diffusion", 0, 6.0, sample_options={"sampler": "ddim", "steps": 20}),
    ]
    rows[1].grid_path = "grid.png"  # relative: resolved against base_dir
    out = tmp_path / "site" / "leaderboard.html"
    assert write_html(build_leaderboard(rows), out, base_dir=tmp_path) == out
    assert [p.name for p in out.parent.iterdir()] == ["leaderboard.html"]
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert f'src="data:image/png;base64,{base64.b64encode(grid).decode()}"' in page
    # two grids as PNG; quality-vs-training-time, quality-vs-steps and throughput as inline SVG
    # (no FLOPs recorded: no FLOPs plot)
    assert page.count('<img src="data:image/png;base64,') == 2
    assert page.count('<figure class="plot"') == 3 and page.count("<svg") == 3
    assert "src=\"http" not in page and "<link" not in page
    for name in ("slow-gan", "best-diffusion", "mid-vae", "broken", "flaky"):
        assert name in page
    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "CUDA out of memory" in page  # failures listed with their error
    assert '<span class="key">backbone</span> lenet' in page  # the protocol as a readable list
    assert "real vs real" in page


def test_publish_names_files_after_preset_device_and_torch(tmp_path):
    boards = build_leaderboard(board_rows())
    csv_path, md_path = publish_results(boards, tmp_path / "benchmarks" / "results", "quick", "NVIDIA H100 80GB HBM3", "2.15.0+cu128")
    assert csv_path.name == "quick-nvidia-h100-80gb-hbm3-torch2.15.0-cu128.csv"
    assert md_path.with_suffix(".csv") == csv_path
    assert published_stem("", "cpu", "2.15.0") == "custom-cpu-torch2.15.0"
    assert len(pd.read_csv(csv_path)) == 6 and "real vs real" in md_path.read_text(encoding="utf-8")


def test_format_count():
    assert [format_count(v) for v in (950, 12_345, 1_234_567, 35.7e6, 1.5e9, math.nan)] == ["950", "12.3k", "1.2M", "35.7M", "1.5G", "–"]


# -- the command ---------------------------------------------------------------------------------


def test_cli_formats(tmp_path, capsys):
    store_path = tmp_path / "runs" / "results.sqlite"
    ResultsStore(store_path).add_many(board_rows() + [row("gan", 0, 8.0, protocol=P2, phash="p2abcdef")])
    assert run(["leaderboard", "--results", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert "best-diffusion" in out and "real vs real" in out and "p2abcdef" in out

    assert run(["leaderboard", "--results", str(store_path), "--protocol", "p2a", "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(frame["protocol_hash"]) == {"p2abcdef"}

    assert run(["leaderboard", "--results", str(store_path), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2

    out_md = tmp_path / "lb.md"
    assert run(["leaderboard", "--results", str(store_path), "--format", "markdown", "--output", str(out_md)]) == 0
    assert capsys.readouterr().out.strip() == str(out_md) and "| # | model |" in out_md.read_text(encoding="utf-8")

    assert run(["leaderboard", "--results", str(store_path), "--format", "html"]) == 0
    html_path = capsys.readouterr().out.strip()
    assert html_path == str(store_path.parent / "leaderboard.html")
    assert "best-diffusion" in (store_path.parent / "leaderboard.html").read_text(encoding="utf-8")


def test_cli_empty_missing_and_bad_filters(tmp_path, capsys):
    empty = tmp_path / "empty.sqlite"
    ResultsStore(empty)
    assert run(["leaderboard", "--results", str(empty)]) == 0
    assert "No results yet" in capsys.readouterr().out

    # No store yet is an empty leaderboard (issue 12: `--format json` prints [] instead of exit 2),
    # said once on stderr and not again on stdout (issue 24); the store is not created.
    assert run(["leaderboard", "--results", str(tmp_path / "absent.sqlite")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("zoo: warning: no results store") and err.count("\n") == 1
    assert run(["leaderboard", "--results", str(tmp_path / "absent.sqlite"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not (tmp_path / "absent.sqlite").exists()

    ResultsStore(empty).add(row("gan", 0, 3.0))
    assert run(["leaderboard", "--results", str(empty), "--dataset", "mnist5k"]) == 2
    assert "did you mean 'mnist-5k'" in capsys.readouterr().err
    assert run(["leaderboard", "--results", str(empty), "--protocol", "zzz"]) == 2
    assert "matches no protocol" in capsys.readouterr().err


def test_cli_uses_zoo_results_by_default(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(["leaderboard"]) == 0  # ./runs/results.sqlite does not exist: nothing to rank yet
    assert "runs/results.sqlite" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    ResultsStore(tmp_path / "elsewhere.sqlite").add(row("gan", 0, 3.0))
    monkeypatch.setenv("ZOO_RESULTS", str(tmp_path / "elsewhere.sqlite"))
    assert run(["leaderboard", "--format", "csv"]) == 0
    assert "gan" in capsys.readouterr().out
