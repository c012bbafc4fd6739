"""Your own model on the board (issue 24, item 4): samples made elsewhere scored under the board's
protocol, stored as external rows, labelled as such in every format; bad input is one line and
leaves the store as it was."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.bench.leaderboard import leaderboards, to_csv, to_json, to_markdown
from zoo.bench.report import render_html
from zoo.bench.store import ResultsStore
from zoo.cli.app import run
from zoo.factory import load_dataset

SMOKE = ["--preset", "smoke"]  # 200 real / 100 generated images


@pytest.fixture(scope="module")
def ds():
    return load_dataset("mnist-5k")


def digits_npz(ds, path: Path, start: int, count: int) -> Path:
    np.savez(path, images=ds.test[start:start + count].numpy())
    return path


def digits_folder(ds, folder: Path, start: int, count: int) -> Path:
    folder.mkdir()
    for i, image in enumerate(ds.test[start:start + count]):
        Image.fromarray(image[0].numpy()).save(folder / f"{i:04d}.png")
    return folder


def snapshot(store: Path) -> bytes | None:
    return store.read_bytes() if store.exists() else None


def test_bench_samples_put_a_labelled_external_row_on_the_board(ds, tmp_path, capsys):
    store = tmp_path / "results.sqlite"
    a = digits_folder(ds, tmp_path / "mine-a", 0, 100)
    b = digits_npz(ds, tmp_path / "mine-b.npz", 100, 150)  # more than 100: a seeded draw of them
    code = run(["bench", "--samples", f"mine={a},{b}", *SMOKE, "--results", str(store)])
    out = capsys.readouterr()
    assert code == 0, out.err
    rows = ResultsStore(store).rows()
    assert sorted((r.model, r.seed, r.plugin) for r in rows) == [("mine", 0, "external"), ("mine", 1, "external")]
    by_seed = {r.seed: r for r in rows}
    assert by_seed[0].external == {"source": str(a), "kind": "folder", "images": 100, "scored": 100}
    assert by_seed[1].external["scored"] == 100 and by_seed[1].external["images"] == 150
    assert "draw" in by_seed[1].external and by_seed[1].costs == {}
    assert all(Path(r.grid_path).is_file() and Path(r.images["nearest_neighbours"]).is_file() for r in rows)
    assert all(set(r.floor["spread"]) and r.metrics["fid_lenet"] > 0 for r in rows)

    (board,) = leaderboards(ResultsStore(store))
    line = board.table.iloc[0]
    assert line["label"] == "mine (external)" and int(line["rank"]) == 1 and line["n_seeds"] == 2
    texts = {"terminal": out.out, "markdown": to_markdown([board]), "html": render_html([board])}
    for fmt, text in texts.items():
        assert "mine (external)" in text, fmt
        assert "@" not in text.split("mine (external)")[1][:3] and "budget time ?" not in text, fmt
    assert "external: folder" in texts["html"] and "not measured" in texts["html"]
    table = list(csv.DictReader(io.StringIO(to_csv([board]))))
    assert [r["kind"] for r in table] == ["floor", "external"]
    assert table[1]["budget_kind"] == table[1]["precision"] == "none" and str(a) in table[1]["external_source"]
    (data,) = json.loads(to_json([board]))
    assert data["lines"][0]["kind"] == "external" and data["lines"][0]["budget_kind"] == "none"
    assert set(data["floor_spread"]) >= {"fid_lenet", "memorised_lenet"}


@pytest.mark.parametrize("case", ["size", "few", "clash", "run", "no-source"])
def test_bad_samples_are_one_line_exit_2_and_the_store_is_unchanged(ds, tmp_path, capsys, case):
    store = tmp_path / "results.sqlite"
    good = digits_npz(ds, tmp_path / "good.npz", 0, 100)
    assert run(["bench", "--samples", f"kept={good}", *SMOKE, "--results", str(store)]) == 0
    before = ResultsStore(store).rows()
    capsys.readouterr()
    if case == "size":
        np.savez(tmp_path / "big.npz", images=np.zeros((100, 1, 32, 32), np.uint8))
        spec, match = f"mine={tmp_path / 'big.npz'}", "1x32x32 images.*1x28x28"
    elif case == "few":
        spec, match = f"mine={digits_npz(ds, tmp_path / 'few.npz', 0, 40)}", "holds 40 images.*scores 100"
    elif case == "clash":
        spec, match = f"vae={good}", "'vae' is a model's name"
    elif case == "run":
        (tmp_path / "run" / "checkpoints").mkdir(parents=True)
        spec, match = f"mine={tmp_path / 'run'}", "is a run folder"
    else:
        spec, match = "mine=", "NAME=SOURCE"
    code = run(["bench", "--samples", f"kept={good}", "--samples", spec, *SMOKE, "--results", str(store)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(match, err), err
    assert ResultsStore(store).rows() == before


def test_eval_store_adds_one_source_and_refuses_a_protocol_mismatch(ds, tmp_path, capsys):
    store = tmp_path / "results.sqlite"
    first = digits_npz(ds, tmp_path / "first.npz", 0, 100)
    assert run(["bench", "--samples", f"mine={first}", *SMOKE, "--results", str(store)]) == 0
    before = snapshot(store)
    second = digits_npz(ds, tmp_path / "second.npz", 100, 100)
    capsys.readouterr()
    # eval's default counts (4,000 real / 100 images) are not the smoke board's 200 / 100
    code = run(["eval", str(second), "--store", "--name", "mine", "--results", str(store)])
    err = capsys.readouterr().err
    assert code == 2 and "matches no board of mnist-5k" in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(store) == before
    code = run(["eval", str(second), "--num-real", "200", "--num-fake", "100", "--store", "--name", "mine",
                "--results", str(store), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["source"]["stored_as"] == "mine"
    # a new source under a name that has seeds becomes another seed, said on stderr (it may be a slip)
    assert f"'mine' already has 1 seed(s) on this board (from {first}); {second} becomes its seed 1" in out.err
    rows = ResultsStore(store).rows(model="mine")
    assert sorted(r.seed for r in rows) == [0, 1] and {r.plugin for r in rows} == {"external"}
    # the same source again replaces its own seed, without the warning; --name without --store is a usage error
    assert run(["eval", str(second), "--num-real", "200", "--num-fake", "100", "--store", "--name", "mine",
                "--results", str(store), "--json"]) == 0
    assert "already has" not in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as mp:  # the same file typed another way is the same source
        mp.chdir(tmp_path)
        assert run(["eval", "./second.npz", "--num-real", "200", "--num-fake", "100", "--store", "--name", "mine",
                    "--results", str(store), "--json"]) == 0
    assert "already has" not in capsys.readouterr().err
    assert sorted(r.seed for r in ResultsStore(store).rows(model="mine")) == [0, 1]
    assert sorted(r.seed for r in ResultsStore(store).rows(model="mine")) == [0, 1]
    capsys.readouterr()
    assert run(["eval", str(second), "--name", "mine"]) == 2


def test_samples_are_scored_with_a_non_serial_executor_too(ds, tmp_path, capsys):
    store = tmp_path / "results.sqlite"
    source = digits_npz(ds, tmp_path / "mine.npz", 0, 100)
    code = run(["bench", "--samples", f"mine={source}", "--executor", "local", "--jobs", "1", *SMOKE,
                "--results", str(store)])
    assert code == 0, capsys.readouterr().err
    assert [(r.model, r.plugin) for r in ResultsStore(store).rows()] == [("mine", "external")]


def test_one_source_given_twice_for_a_name_is_refused(tmp_path):
    """`--samples mine=D --samples mine=D` scored one folder as two "seeds" (identical numbers,
    and a rank group from a spread of 0): the same source twice, spelled alike or not, is one line."""
    from zoo.bench.external import parse_samples
    from zoo.errors import UsageError

    (tmp_path / "d").mkdir()
    assert parse_samples([f"mine={tmp_path / 'd'}", f"theirs={tmp_path / 'd'}"]) == {
        "mine": [tmp_path / "d"], "theirs": [tmp_path / "d"]}  # two entries may share a source
    for specs in ([f"mine={tmp_path / 'd'}", f"mine={tmp_path / 'd'}"],
                  [f"mine={tmp_path / 'd'},{tmp_path / 'd' / '..' / 'd'}"]):
        with pytest.raises(UsageError, match="given twice"):
            parse_samples(specs)
