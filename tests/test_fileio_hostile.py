"""Hostile inputs, second round: checkpoint dtypes, deeply nested JSON/TOML, .npz/.npy zip bombs
and cache/data/results variables naming files. Each is one line, a non-zero exit and nothing written."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from tests.helpers import ROOT, run_zoo
from zoo.checkpoint import load_checkpoint, save_checkpoint

DEEP_JSON = '{"a":' + "[" * 200_000  # json recurses once per [: RecursionError, not a parse error


def _one_line(out, code: int) -> str:
    assert out.returncode == code, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    return out.stderr.strip()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny GAN run (2 steps), trained once; tests copy it."""
    base = tmp_path_factory.mktemp("trained")
    out = run_zoo("train", "gan", "--steps", "2", "--set", "g_hidden=32", "--set", "d_units=16",
                  "--run-dir", str(base / "run"), "--no-progress", cwd=base)
    assert out.returncode == 0, out.stderr
    return base / "run"


def _copy_run(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run, sorted((run / "checkpoints").glob("step-*.pt"))[-1]


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- 1. checkpoint dtypes -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.int8, torch.complex64, torch.float64])
def test_a_checkpoint_with_weights_of_another_dtype_is_refused(trained, tmp_path, dtype):
    run, ckpt = _copy_run(trained, tmp_path)
    state = load_checkpoint(ckpt)
    weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state["model_state"].items()}
    first = next(k for k, v in state["model_state"].items() if v.is_floating_point())
    state["model_state"] = weights
    for key in ("format", "format_version"):
        state.pop(key, None)
    save_checkpoint(ckpt, state)  # right shapes, valid checksum, wrong dtype
    out_png = tmp_path / "x.png"
    out = run_zoo("sample", str(ckpt), "-n", "4", "--out", str(out_png), cwd=tmp_path)
    line = _one_line(out, 1)
    name = str(dtype).removeprefix("torch.")
    assert "weights do not match gan" in line and repr(first) in line and name in line and "float32" in line, line
    assert not out_png.exists() and "UserWarning" not in out.stderr


def test_an_integer_buffer_saved_as_float_is_refused(trained, tmp_path):
    from zoo.errors import CheckpointError
    from zoo.factory import create_model_from_checkpoint

    _, ckpt = _copy_run(trained, tmp_path)
    state = load_checkpoint(ckpt)
    ints = [k for k, v in state["model_state"].items() if not v.is_floating_point()]
    if not ints:
        pytest.skip("this GAN has no integer buffer")
    state["model_state"] = {**state["model_state"], ints[0]: state["model_state"][ints[0]].float()}
    with pytest.raises(CheckpointError, match=r"is float32, the model builds int"):
        create_model_from_checkpoint(state)


# -- 2. deeply nested JSON / TOML -----------------------------------------------------------------

def test_a_deeply_nested_run_config_is_one_line_on_resume(trained, tmp_path):
    run, _ = _copy_run(trained, tmp_path)
    (run / "config.json").write_text(DEEP_JSON)
    before = _snapshot(run)
    out = run_zoo("train", "gan", "--resume", str(run), "--steps", "4", "--no-progress", cwd=tmp_path)
    assert "nested too deeply" in _one_line(out, 1)
    assert _snapshot(run) == before  # nothing written, nothing lost


@pytest.mark.parametrize("name, text", [
    ("deep.json", DEEP_JSON),
    ("deep.toml", "g_hidden = " + "[" * 100_000),
], ids=["json", "toml"])  # short ids: pytest puts the id in PYTEST_CURRENT_TEST, which subprocesses inherit
def test_a_deeply_nested_config_file_is_a_usage_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    out = run_zoo("train", "gan", "--config", str(path), "--steps", "1", "--run-dir", str(tmp_path / "r"),
                  "--no-progress", cwd=tmp_path)
    line = _one_line(out, 2)
    assert "nested too deeply" in line and name in line
    assert not (tmp_path / "r").exists()


def test_a_deeply_nested_set_list_is_a_config_error():
    from dataclasses import dataclass

    from zoo.config import ModelConfig
    from zoo.errors import ConfigError

    @dataclass
    class Widths(ModelConfig):
        widths: tuple[int, ...] = (8,)

    with pytest.raises(ConfigError, match="widths"):  # --set widths=[[[[...]]]]: not a RecursionError
        Widths.from_overrides({"widths": "[" * 5000 + "]" * 5000})


def test_deeply_nested_json_in_stores_exports_and_caches_is_refused_in_one_line(tmp_path):
    from zoo.bench.executors import ROWS_FILE, read_job_rows
    from zoo.bench.store import ResultRow
    from zoo.errors import ZooError
    from zoo.export import is_export_dir

    deep = "[" * 200_000
    with pytest.raises(ValueError, match="nested too deeply"):
        ResultRow.from_dict({"metrics": deep})
    (tmp_path / "model.json").write_text(DEEP_JSON)
    assert is_export_dir(tmp_path) is False
    (tmp_path / ROWS_FILE).write_text(deep)
    with pytest.raises(ZooError, match="nested too deeply"):
        read_job_rows(tmp_path)


def test_a_deeply_nested_sampling_batch_cache_is_remeasured(tmp_path, monkeypatch):
    from zoo import accel, memory

    monkeypatch.setattr(accel, "accel_cache_dir", lambda: tmp_path)
    monkeypatch.setattr(accel, "_batch_key", lambda model, options: "k")
    monkeypatch.setattr(accel, "measure_sample_batch", lambda model, options, batches: {b: float(b) for b in batches})
    monkeypatch.setattr(accel, "sample_batch_cap", lambda model, options, batch, measure=True: batch)  # a Linear
    (tmp_path / "sample-batch-k.json").write_text(DEEP_JSON)
    (tmp_path / "sample-memory-k.json").write_text(DEEP_JSON)  # read by zoo.accel.sample_memory (below)
    assert accel.sample_batch_size(torch.nn.Linear(1, 1), 100) == 64
    monkeypatch.setattr(memory, "measure_batch_memory", lambda *a, **k: memory.BatchMemory(0, 1, "measured"))
    assert accel.sample_memory(torch.nn.Linear(1, 1)) == memory.BatchMemory(0, 1, "measured")


# -- 3. .npz / .npy bombs -------------------------------------------------------------------------

def _npy_header(shape, dtype=np.uint8) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _zip_bomb(path, shape, chunk=1 << 22):
    """An .npz whose ``images.npy`` holds ``prod(shape)`` zero bytes, deflated to ~1/1000 of that."""
    total = int(np.prod(shape))
    zeros = bytes(chunk)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("images.npy", "w", force_zip64=True) as fh:
        fh.write(_npy_header(shape))
        for start in range(0, total, chunk):
            fh.write(zeros[:min(chunk, total - start)])


def test_an_npz_bomb_is_refused_before_it_is_decoded(tmp_path):
    bomb = tmp_path / "bomb.npz"
    _zip_bomb(bomb, (300, 1000, 1000))  # 300 MB of images in a few hundred KB
    assert bomb.stat().st_size < 3_000_000
    probe = (
        "import resource, sys\n"
        "from zoo.data import read_image_array\n"
        "from zoo.errors import DataError\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
        f"try:\n    read_image_array({str(bomb)!r})\nexcept DataError as exc:\n    print('refused:', exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 - base)\n"
    )
    env = {"ZOO_MAX_DECODED_BYTES": "50000000"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**__import__("os").environ, **env})
    assert out.returncode == 0, out.stderr[-1500:]
    message, peak_mb = out.stdout.strip().splitlines()
    assert "refused:" in message and "over the limit" in message and "ZOO_MAX_DECODED_BYTES" in message, message
    # Measured above what importing genzoo costs (that varies with torch's build): the 300 MB
    # array decoded would add at least 300 MB.
    assert int(peak_mb) < 150, f"peak memory grew {peak_mb} MB: the array was decoded"
    run_dir = tmp_path / "r"
    train = run_zoo("train", "gan", "--dataset", f"npz:{bomb}", "--steps", "1", "--run-dir", str(run_dir),
                    "--no-progress", env=env, cwd=tmp_path)
    assert "over the limit" in _one_line(train, 2) and not run_dir.exists()


@pytest.mark.parametrize("kind", ["npz", "npy"])
def test_a_header_claiming_ten_gigabytes_is_refused_by_default_without_allocating(tmp_path, monkeypatch, kind):
    from zoo.data import read_image_array
    from zoo.errors import DataError

    monkeypatch.delenv("ZOO_MAX_DECODED_BYTES", raising=False)
    header = _npy_header((10, 1000, 1000, 1000))  # 10 GB of uint8, and no data at all
    path = tmp_path / f"huge.{kind}"
    if kind == "npy":
        path.write_bytes(header)
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("images.npy", header)
    with pytest.raises(DataError, match=r"would decode to 9\.3 GiB, over the limit of 2\.0 GiB"):
        read_image_array(path)


def test_a_small_npz_and_npy_still_load(tmp_path):
    from zoo.data import read_image_array

    np.savez(tmp_path / "ok.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.arange(4))
    np.save(tmp_path / "ok.npy", np.zeros((4, 8, 8, 3), np.uint8))
    images, labels = read_image_array(tmp_path / "ok.npz")
    assert images.shape == (4, 1, 8, 8) and list(labels) == [0, 1, 2, 3]
    assert read_image_array(tmp_path / "ok.npy")[0].shape == (4, 3, 8, 8)


# -- 4. folders from environment variables ---------------------------------------------------------

def test_zoo_cache_dir_naming_a_file_is_a_usage_error(tmp_path):
    np.savez(tmp_path / "imgs.npz", images=np.zeros((16, 28, 28), np.uint8))
    (tmp_path / "cachefile").write_text("not a folder")
    out = run_zoo("eval", str(tmp_path / "imgs.npz"), "--num-real", "16", "--num-fake", "16",
                  env={"ZOO_CACHE_DIR": str(tmp_path / "cachefile")}, cwd=tmp_path)
    line = _one_line(out, 2)
    assert "ZOO_CACHE_DIR" in line and "not a folder" in line
    assert (tmp_path / "cachefile").read_text() == "not a folder"


def test_data_dir_and_results_naming_a_file_are_usage_errors(tmp_path, monkeypatch):
    from zoo.bench.store import default_store_path
    from zoo.errors import UsageError
    from zoo.factory import default_data_dir

    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "f" / "data"))
    with pytest.raises(UsageError, match="ZOO_DATA_DIR=.*is a file, not a folder"):
        default_data_dir()
    monkeypatch.setenv("ZOO_RESULTS", str(tmp_path / "f" / "results.sqlite"))
    with pytest.raises(UsageError, match="ZOO_RESULTS=.*is a file, not a folder"):
        default_store_path()
    out = run_zoo("leaderboard", env={"ZOO_RESULTS": str(tmp_path / "f" / "results.sqlite")}, cwd=tmp_path)
    assert "ZOO_RESULTS" in _one_line(out, 2)


def test_an_unwritable_sampling_batch_cache_is_one_zoo_warning_line(trained, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "accel").write_text("a file where the accel folder goes")  # reads and writes fail
    out_png = tmp_path / "x.png"
    out = run_zoo("sample", str(trained), "-n", "65", "--out", str(out_png), env={"ZOO_CACHE_DIR": str(cache)},
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if "could not cache the sampling batch" in ln]
    assert len(lines) == 1 and lines[0].startswith("zoo: warning: could not cache"), out.stderr
    assert out_png.exists()
