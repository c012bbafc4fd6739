"""Batch sizes capped by measured memory (issue 27 item 8): ``--batch-size 1000000`` peaked at
5.2 GB or ended in a traceback; a fixed limit of 4,096 was wrong both ways.

What is proved: the probe separates a batch's fixed bytes from its bytes per image; a slope the
probes cannot see falls back to a conservative estimate; the measurement is cached under the
sampling batch's key; the cap follows the memory free now; the measured batch, ``ZOO_SAMPLE_BATCH``
and ``zoo sample --batch-size`` never exceed it, a user's batch is lowered with one warning line
and the images stay the same.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers import train_tiny_gan, zoo_in_process
from zoo import accel, memory
from zoo.memory import BatchCapWarning, BatchMemory

MIB = 2**20


class Allocating(nn.Module):
    """A fake model whose ``sample(n)`` holds ``fixed`` bytes plus ``per_image`` bytes per image."""

    image_shape = (1, 8, 8)
    sample_options = ()

    def __init__(self, fixed: int, per_image: int, device: str = "cpu"):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, device=device))
        self.config = {"fixed": fixed, "per_image": per_image}
        self.fixed, self.per_image = fixed, per_image
        self.calls: list[int] = []

    def sample(self, n: int, generator=None) -> torch.Tensor:
        self.calls.append(n)
        workspace = torch.ones(self.fixed // 4, device=self.weight.device)  # ones: pages really touched
        held = torch.ones(n, self.per_image // 4, device=self.weight.device)
        return torch.zeros(n, *self.image_shape, device=self.weight.device) + workspace[:1].sum() + held[:, :1, None, None]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_the_probe_separates_fixed_and_per_image_memory(device):
    model = Allocating(fixed=24 * MIB, per_image=MIB, device=device)
    found = accel.sample_memory(model)
    assert found is not None and found.how == "measured"
    assert MIB / 2 <= found.per_image_bytes <= 2 * MIB, found
    assert 12 * MIB <= found.fixed_bytes <= 48 * MIB, found  # told apart from the slope
    assert model.calls == [memory.PROBE_BATCH, memory.PROBE_BATCH, 2 * memory.PROBE_BATCH]  # warm-up, b, 2b


def test_a_slope_the_probes_cannot_see_falls_back_to_a_conservative_estimate():
    out = 3 * 32 * 32 * 4
    fallback = memory.FALLBACK_FACTOR * out
    assert memory.fit_batch_memory(16, (5e6, 4e6), out) == BatchMemory(5_000_000, fallback, "fallback")  # negative
    assert memory.fit_batch_memory(16, (5e6, 5e6), out).how == "fallback"  # flat
    assert memory.fit_batch_memory(16, (5e6, 5e6 + 16 * out / 2), out).how == "fallback"  # below the output
    assert memory.fit_batch_memory(16, (None, None), out) == BatchMemory(0, fallback, "fallback")  # no peak
    assert memory.fit_batch_memory(16, (3e6 + 16e5, 3e6 + 32e5), out) == BatchMemory(3_000_000, 100_000, "measured")


def test_the_measurement_is_cached_under_the_sampling_batch_key(monkeypatch):
    model = Allocating(fixed=MIB, per_image=MIB // 4)
    first = accel.sample_memory(model)
    monkeypatch.setattr(memory, "measure_batch_memory", lambda *a, **k: pytest.fail("measured again"))
    assert accel.sample_memory(model) == first  # from the cache file
    assert accel.sample_memory(Allocating(fixed=MIB, per_image=MIB // 4)) == first  # same class and config
    assert accel.sample_memory(Allocating(fixed=MIB, per_image=MIB // 2), measure=False) is None  # another config
    key = accel._batch_key(model, accel._probe_options(model, {}))  # the key of the sampling batch's file
    assert BatchMemory.from_dict(json.loads((accel.accel_cache_dir() / f"sample-memory-{key}.json").read_text())) == first
    # a batch no larger than the probe is never measured
    assert accel.sample_batch_cap(Allocating(fixed=0, per_image=MIB), {}, 2 * memory.PROBE_BATCH) == 32


def test_a_damaged_memory_cache_is_measured_again():
    model = Allocating(fixed=MIB, per_image=MIB // 4)
    accel.sample_memory(model)
    for f in accel.accel_cache_dir().glob("sample-memory-*.json"):
        f.write_text('{"fixed_bytes": -1, "per_image_bytes": 0, "how": "measured"}')
    assert accel.sample_memory(model).per_image_bytes > 0


def test_the_cap_follows_the_free_memory(monkeypatch):
    found = BatchMemory(fixed_bytes=10 * MIB, per_image_bytes=MIB, how="measured")
    for free, cap in ((1000 * MIB, 490), (220 * MIB, 100), (21 * MIB, 1), (0, 1), (10**15, memory.MAX_BATCH)):
        monkeypatch.setattr(memory, "available_bytes", lambda device, free=free: free)
        assert memory.batch_cap(found, "cpu") == cap, free
    monkeypatch.setattr(memory, "available_bytes", lambda device: None)  # unreadable: only the ceiling
    assert memory.batch_cap(found, "cpu") == memory.MAX_BATCH
    monkeypatch.undo()
    free = memory.available_bytes("cpu")
    assert free is None or 0 < free <= 2**50  # this machine's, read from /proc/meminfo and the cgroup


def test_the_measured_batch_and_zoo_sample_batch_never_exceed_the_cap(monkeypatch):
    model = Allocating(fixed=0, per_image=MIB)
    monkeypatch.setattr(accel, "sample_memory", lambda m, o=None, measure=True: BatchMemory(0, MIB, "measured"))
    monkeypatch.setattr(memory, "available_bytes", lambda device: 200 * MIB)  # cap: 100
    monkeypatch.setattr(accel, "measure_sample_batch", lambda m, o, c, repeats=1: {b: float(b) for b in c})
    assert accel.sample_batch_size(model, 1000, {}) == 64  # 128 and 256 would be faster but do not fit
    monkeypatch.setenv("ZOO_SAMPLE_BATCH", "1000")
    with pytest.warns(BatchCapWarning, match="ZOO_SAMPLE_BATCH lowered to 100, to fit memory") as caught:
        assert accel.sample_batch_size(model, 5000, {}) == 100
    assert len(caught) == 1


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1e3", " 12x"])
def test_a_bad_zoo_sample_batch_is_a_usage_error_not_ignored(monkeypatch, value):
    """They ran silently with the measured batch, while the same --batch-size exits 2."""
    from zoo.errors import UsageError

    monkeypatch.setenv("ZOO_SAMPLE_BATCH", value)
    with pytest.raises(UsageError, match="ZOO_SAMPLE_BATCH=.*whole number of images >= 1, or unset it"):
        accel.sample_batch_size(Allocating(fixed=0, per_image=MIB), 5000, {})
    monkeypatch.setenv("ZOO_SAMPLE_BATCH", "")  # empty: unset
    assert accel.sample_batch_size(Allocating(fixed=0, per_image=MIB), 5, {}) == 5


@pytest.mark.parametrize("asked", [10**6, 10**12, 10**23])
@pytest.mark.parametrize("what", ["--batch-size", "ZOO_SAMPLE_BATCH"])
@pytest.mark.parametrize("cap", [50, memory.MAX_BATCH])
def test_the_lowering_warning_fits_80_columns_and_says_why(asked, what, cap):
    """It ran to 81-102 columns, named a value already trimmed to -n, and said "to fit memory" where
    the 4,096 ceiling applied."""
    with pytest.warns(BatchCapWarning) as caught:
        assert memory.lower_to_cap(asked, cap, what, note="features") == cap
    line = f"zoo: warning: {caught[0].message}"
    assert len(line) <= 80, line
    assert ("the most per batch" in line) == (cap == memory.MAX_BATCH) and f"{asked:,}" not in line


def test_the_ceiling_is_one_number():
    from zoo.api.sampling import MAX_SAMPLE_BATCH

    assert MAX_SAMPLE_BATCH == memory.MAX_BATCH == 4096


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    return train_tiny_gan(tmp_path_factory.mktemp("gan-run"))


def test_zoo_sample_lowers_batch_size_1000000_to_the_cap_with_one_warning(tmp_path, capsys, monkeypatch, gan_run):
    """The issue's example: one warning line, exit 0, the cap used, the same images as batch 7."""
    from zoo.checkpoint import load_model

    model, _ = load_model(gan_run, map_location=torch.device("cpu"))
    found = accel.sample_memory(model, model.parse_sample_options({}))  # what zoo sample reads from the cache
    assert found is not None
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * (found.fixed_bytes + 50 * found.per_image_bytes))
    code, out, err = zoo_in_process(capsys, "sample", str(gan_run), "-n", "120", "--batch-size", "1000000",
                                    "--out", str(tmp_path / "capped.npz"), "--json")
    assert code == 0, err
    assert json.loads(out)["batch_size"] == 50
    assert err == "zoo: warning: --batch-size lowered to 50, to fit memory (same images)\n"
    code, out, err = zoo_in_process(capsys, "sample", str(gan_run), "-n", "120", "--batch-size", "7",
                                    "--out", str(tmp_path / "small.npz"), "--json")
    assert code == 0 and err == "" and json.loads(out)["batch_size"] == 7
    capped = np.load(tmp_path / "capped.npz")["images"].astype(int)
    small = np.load(tmp_path / "small.npz")["images"].astype(int)
    diff = np.abs(capped - small)  # a GAN's BLAS kernels may round one pixel a level apart (test_sampling_batch)
    assert capped.shape == (120, 1, 28, 28) and diff.max() <= 1 and (diff > 0).mean() <= 1e-3
    monkeypatch.undo()  # this machine's free memory: at most the ceiling, never more than -n
    code, out, err = zoo_in_process(capsys, "sample", str(gan_run), "-n", "5", "--batch-size", "1000000",
                                    "--out", str(tmp_path / "five.npz"), "--json")
    assert code == 0 and err == "" and json.loads(out)["batch_size"] == 5
    code, out, err = zoo_in_process(capsys, "sample", str(gan_run), "-n", "5000", "--batch-size", "1000000",
                                    "--out", str(tmp_path / "many.npz"), "--json")
    assert code == 0 and err.count("\n") == 1 and "lowered to" in err, err
    assert json.loads(out)["batch_size"] <= memory.MAX_BATCH


def test_the_output_bytes_floor_the_slope():
    """Every batch holds its output: a measured slope is never below the output's bytes."""
    out = 4 * math.prod(Allocating.image_shape)
    found = memory.fit_batch_memory(16, (0.0, 16.0 * out), out)
    assert found == BatchMemory(0, out, "measured")


def test_zoo_eval_lowers_its_batch_for_sampling_and_for_backbone_features(tmp_path, capsys, monkeypatch, gan_run):
    """``zoo eval --batch-size`` reaches the sampler and the backbone: both are held to the cap."""
    import zoo.sampling
    from zoo.metrics import engine

    args = ["eval", str(gan_run), "--num-fake", "100", "--num-real", "200", "--json", "--batch-size"]
    code, out, err = zoo_in_process(capsys, *args, "200")
    assert code == 0, err
    plain = json.loads(out)["metrics"]
    seen: dict[str, set[int]] = {"sampling": set(), "features": set()}
    real_generate, real_features = zoo.sampling.generate, engine.backbone_features

    def generate(*a, batch_size=None, **k):
        seen["sampling"].add(batch_size)
        return real_generate(*a, batch_size=batch_size, **k)

    def features(*a, batch_size=200, **k):
        seen["features"].add(batch_size)
        return real_features(*a, batch_size=batch_size, **k)

    monkeypatch.setattr(zoo.sampling, "generate", generate)
    monkeypatch.setattr(engine, "backbone_features", features)
    monkeypatch.setattr(memory, "batch_cap", lambda found, device: 40)  # what fits: tested above
    code, out, err = zoo_in_process(capsys, *args, "1000000")
    assert code == 0, err
    assert err.splitlines() == [f"zoo: warning: --batch-size lowered to 40, to fit memory ({what})"
                                for what in ("sampling", "features")]
    assert seen == {"sampling": {40}, "features": {40}}
    capped = json.loads(out)["metrics"]
    assert capped.keys() == plain.keys()
    assert capped["fid_lenet"] == pytest.approx(plain["fid_lenet"], rel=1e-3)  # BLAS rounding of other batches


def test_a_probe_inside_a_peak_measurement_keeps_the_earlier_peak(monkeypatch):
    """The bench reads a job's peak memory around training and sampling; the memory probe inside
    it resets the counter, and the peak before the reset must still count. A simulated resident
    set (the real one keeps or returns freed pages as the allocator pleases)."""
    process = {"VmRSS": 100 * 1024, "VmHWM": 100 * 1024}  # kB, as /proc/self/status

    def use(mib: int) -> None:
        process["VmRSS"] += mib * 1024
        process["VmHWM"] = max(process["VmHWM"], process["VmRSS"])

    monkeypatch.setattr(memory, "_status_kb", process.get)
    monkeypatch.setattr(memory, "_reset_peak", lambda device: process.update(VmHWM=process["VmRSS"]))
    with memory.PeakMemory("cpu") as job:
        use(64)  # training
        use(-64)
        with memory.PeakMemory("cpu") as probe:
            use(1)
            use(-1)
        use(2)
        use(-2)
    assert (probe.mb, job.mb) == (101, 164)
    with memory.PeakMemory("cpu") as alone:  # nothing open around it: nothing carried in
        use(3)
    assert alone.mb == 103 and memory.PeakMemory._open == []
