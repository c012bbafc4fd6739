"""The machine's capabilities are read in one place and can be simulated, so every branch that
depends on the hardware (precision choice, the emulated-precision warning, CUDA or not) is tested
on every machine. Tests marked ``hardware`` follow the machine they run on, or the CPU that
``ZOO_CPU_PROFILE`` simulates: CI runs them under each profile (.ci/run).
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from tests.helpers import zoo_in_process
from zoo import device as zdevice
from zoo.device import (
    CPU_PROFILES,
    EmulatedPrecisionWarning,
    capabilities,
    emulated_precision_note,
    resolve_device,
    resolve_precision,
)
from zoo.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
EMULATED = "is emulated on this CPU"


# -- one reader, one override --------------------------------------------------------------------


def test_each_cpu_profile_sets_what_the_cpu_can_do(cpu_profile):
    real = zdevice._read_hardware()
    native = cpu_profile("native-bf16")
    assert native.cpu_native_bf16 and native.profile == "native-bf16"
    assert (
        native.cpu_flags == real.cpu_flags and native.cores == real.cores
    )  # only the answers change
    assert "simulated by ZOO_CPU_PROFILE=native-bf16" in native.describe()
    none = cpu_profile("no-bf16")
    assert not none.cpu_native_bf16 and not none.cpu_native_fp16
    auto = cpu_profile("auto")
    assert auto == real and auto.cpu_native_bf16 == bool(
        real.cpu_flags & {"avx512_bf16", "amx_bf16"}
    )
    assert cpu_profile("") == real  # unset or empty: the real CPU
    assert cpu_profile(" No-BF16 ").profile == "no-bf16"


def test_an_unknown_cpu_profile_is_a_one_line_usage_error(cpu_profile, capsys):
    with pytest.raises(
        UsageError, match=r"ZOO_CPU_PROFILE='avx9' is not a CPU profile \(use auto, native-bf16"
    ):
        cpu_profile("avx9")
    code, _, err = zoo_in_process(capsys, "train", "gan", "--steps", "1", "--device", "cpu")
    assert code == 2 and err.startswith("zoo: error: ZOO_CPU_PROFILE=") and err.count("\n") == 1
    for command in (["list"], ["list", "--json"], ["describe", "ddpm"], ["data", "list"], ["leaderboard"]):
        code, out, err = zoo_in_process(capsys, *command)  # commands that choose no precision too
        assert (code, out) == (2, "") and err.startswith("zoo: error: ZOO_CPU_PROFILE="), command


def test_only_zoo_device_reads_the_hardware():
    """CPU flags and GPU bf16 support come from zoo.device.capabilities, nowhere else (so the
    profile reaches every decision)."""
    offenders = []
    for folder in ("zoo", "plugins", "benchmarks", "scripts", "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "zoo" / "device.py":
                continue
            text = path.read_text(encoding="utf-8")
            for needle in ("/proc/cpuinfo", "is_bf16_supported", "cpu_flags() &"):
                if needle in text:
                    offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []


def test_ci_reruns_the_hardware_tests_under_each_simulated_cpu():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(
        r"for profile in native-bf16 no-bf16; do\n\s+ZOO_CPU_PROFILE=\"\$profile\" "
        r"python -m pytest -m hardware\n",
        ci,
    ), ci
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"hardware: ' in pyproject  # registered (--strict-markers)


def test_environment_records_the_cpu_and_its_profile(cpu_profile):
    cpu_profile("no-bf16")
    env = zdevice.environment(CPU)
    assert env["device_name"] == capabilities().cpu_name and env["cpu_profile"] == "no-bf16"
    assert env["cpu_native_bf16"] is False and env["cpu_cores"] >= 1


# -- precision: auto never picks an emulated one (both branches: tests/test_trainer.py) --------


@pytest.mark.hardware
def test_auto_follows_this_machine():
    """Under the real CPU or the simulated one (CI runs this under each ZOO_CPU_PROFILE)."""
    native = capabilities().cpu_native_bf16
    assert resolve_precision("auto", CPU, "bf16") == ("bf16" if native else "fp32")
    assert (emulated_precision_note("bf16", CPU) is None) == native
    assert emulated_precision_note(resolve_precision("auto", CPU, "bf16"), CPU) is None


@pytest.mark.parametrize("profile", CPU_PROFILES[1:])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_the_emulation_note_says_what_it_costs(cpu_profile, profile, precision):
    cpu_profile(profile)
    note = emulated_precision_note(precision, CPU)
    emulated = precision == "fp16" or (precision == "bf16" and profile == "no-bf16")
    assert (note is not None) == emulated
    if note:
        assert note.startswith(f"{precision} {EMULATED}") and "\n" not in note
        assert re.search(r"\d(\.\d+)?x slower than fp32", note), note  # a measured figure
        assert emulated_precision_note(precision, CPU, "sampling") != note  # its own figure
    assert (
        emulated_precision_note(precision, torch.device("cuda")) is None
    )  # GPUs: native or refused


def test_no_cuda_branches_run_on_every_machine(no_cuda):
    assert resolve_device("auto") == CPU
    with pytest.raises(UsageError, match="CUDA is not available"):
        resolve_device("cuda")
    assert not zdevice.native_precision("bf16", torch.device("cuda"))


# -- the warning: once, on stderr, through zoo's own warning line --------------------------------


def _warning_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if EMULATED in line]


@pytest.mark.parametrize("profile", ["native-bf16", "no-bf16"])
def test_zoo_train_warns_once_when_bf16_is_emulated(cpu_profile, capsys, tmp_path, profile):
    cpu_profile(profile)
    code, _, err = zoo_in_process(
        capsys,
        "train",
        "gan",
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--precision",
        "bf16",
        "--device",
        "cpu",
        "--run-dir",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert code == 0, err
    lines = _warning_lines(err)
    if profile == "native-bf16":
        assert lines == []
    else:
        assert len(lines) == 1 and lines[0].startswith(
            "zoo: warning: bf16 is emulated on this CPU"
        ), err
        assert "slower than fp32" in lines[0]


def _train_gan_one_step(capsys, run_dir, *extra: str) -> tuple[int, str, str]:
    """``zoo train gan`` for one step of batch 8 on the CPU into ``run_dir``."""
    return zoo_in_process(capsys, "train", "gan", "--steps", "1", "--batch-size", "8", *extra,
                          "--device", "cpu", "--run-dir", str(run_dir), "--no-progress")


@pytest.mark.hardware
def test_zoo_train_warns_about_fp16_on_this_cpu_and_auto_never_does(capsys, tmp_path):
    code, _, err = _train_gan_one_step(capsys, tmp_path / "a", "--precision", "fp16")
    assert code == 0 and len(_warning_lines(err)) == 1 and "fp16 is emulated" in err
    code, _, err = _train_gan_one_step(capsys, tmp_path / "b")
    assert code == 0 and _warning_lines(err) == []


@pytest.mark.hardware
def test_zoo_train_auto_trains_the_recipe_where_native_and_records_the_machine(capsys, tmp_path):
    """DDPM's recipe is bf16: `auto` takes it on a native-bf16 CPU, fp32 elsewhere, never warns."""
    import json

    run = tmp_path / "run"
    sets = [
        x
        for k, v in (("base_channels", 8), ("channel_mults", "[1,2]"), ("num_timesteps", 20))
        for x in ("--set", f"{k}={v}")
    ]
    code, _, err = zoo_in_process(
        capsys,
        "train",
        "ddpm",
        "--steps",
        "1",
        "--batch-size",
        "8",
        *sets,
        "--precision",
        "auto",
        "--device",
        "cpu",
        "--run-dir",
        str(run),
        "--no-progress",
    )
    assert code == 0 and _warning_lines(err) == [], err
    caps = capabilities()
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["precision"] == ("bf16" if caps.cpu_native_bf16 else "fp32")
    env = json.loads((run / "environment.json").read_text())
    assert (env["cpu_profile"], env["cpu_native_bf16"], env["device_name"]) == (
        caps.profile,
        caps.cpu_native_bf16,
        caps.cpu_name,
    )


def test_zoo_bench_warns_once_per_bench_not_per_job(cpu_profile, capsys, tmp_path, monkeypatch):
    """Three models, two seeds, bf16 training and bf16 sampling options: one line for each."""
    import zoo.bench.api as api

    def stop(*_a, **_k):
        raise UsageError("stopped after planning")

    monkeypatch.setattr(api, "ResultsStore", stop)  # the warnings come before any job
    cpu_profile("no-bf16")
    code, _, err = zoo_in_process(
        capsys,
        "bench",
        "--models",
        "gan,vae,dcgan",
        "--preset",
        "smoke",
        "--seeds",
        "0,1",
        "--precision",
        "bf16",
        "--device",
        "cpu",
        "--results",
        str(tmp_path / "r.sqlite"),
    )
    assert code == 2 and "stopped after planning" in err
    lines = _warning_lines(err)
    assert (
        len(lines) == 1 and "bf16 is emulated" in lines[0] and "DDPM training measured" in lines[0]
    ), err
    cpu_profile("native-bf16")
    code, _, err = zoo_in_process(
        capsys,
        "bench",
        "--models",
        "gan,vae",
        "--preset",
        "smoke",
        "--precision",
        "bf16",
        "--device",
        "cpu",
        "--results",
        str(tmp_path / "r.sqlite"),
    )
    assert code == 2 and _warning_lines(err) == []


def test_the_trainer_itself_does_not_warn(cpu_profile):
    """A bench runs one Trainer per job: the warning belongs to the command, not to each Trainer."""
    from zoo.data import ImageDataset
    from zoo.testing import synthetic_images, tiny_model
    from zoo.trainer import Trainer, TrainSettings

    cpu_profile("no-bf16")
    images = synthetic_images(24, (1, 28, 28))
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulatedPrecisionWarning)
        Trainer(
            tiny_model("gan"),
            ImageDataset("s", images[:16], images[16:]),
            TrainSettings(steps=1, batch_size=8, precision="bf16", sample_grid=0),
            None,
            progress=False,
        ).fit()


def test_bf16_sampling_warns_where_it_is_emulated(cpu_profile, capsys, tmp_path):
    from tests.test_accel import tiny_ddpm_run

    run_dir = tiny_ddpm_run(capsys, tmp_path)
    args = ["-n", "4", "--option", "precision=bf16", "--option", "steps=2", "--force"]
    cpu_profile("no-bf16")
    code, _, err = zoo_in_process(
        capsys, "sample", str(run_dir), "--out", str(tmp_path / "a.png"), *args
    )
    assert code == 0, err
    (line,) = _warning_lines(err)
    assert line.startswith("zoo: warning: bf16 is emulated") and "DDPM sampling measured" in line
    cpu_profile("native-bf16")
    code, _, err = zoo_in_process(
        capsys, "sample", str(run_dir), "--out", str(tmp_path / "b.png"), *args
    )
    assert code == 0 and _warning_lines(err) == []
    cpu_profile("no-bf16")  # the default fp32 option never warns
    code, _, err = zoo_in_process(
        capsys,
        "sample",
        str(run_dir),
        "--out",
        str(tmp_path / "c.png"),
        "-n",
        "2",
        "--option",
        "steps=2",
    )
    assert code == 0 and _warning_lines(err) == []


# -- the GPU check is ready for a GPU, and its dry run passes here --------------------------------


def test_gpu_check_without_cuda_is_a_dry_run_that_logs_what_it_would_check(tmp_path):
    """No CUDA device (hidden on a GPU machine too): exit 0, every step named with its limit."""
    import os

    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # valid bash, every branch
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        ["bash", str(script), str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no CUDA device present" in proc.stdout and "dry run done" in proc.stdout
    log = (out / "gpu_check.log").read_text()
    for step in ("environment", "contract", "gpu-tests", "peers"):
        assert re.search(rf"would run {step} \(at most \d+ s\)", log), log
    assert "--device cuda --precisions fp32,bf16,fp16" in log
    listed = (out / "contract-dry-run.log").read_text()
    assert (
        "check_model('ddpm', device='cuda', precision='fp16')" in listed
        and "ddpm-small" not in listed
    )


def test_check_model_takes_a_device_and_a_precision(no_cuda):
    from zoo.testing import check_model

    check_model("gan", precision="fp16")  # the gradient scaler's path, on the CPU
    with pytest.raises(UsageError, match="CUDA is not available"):
        check_model("gan", device="cuda", precision="bf16")
    with pytest.raises(UsageError, match="unknown precision"):
        check_model("gan", precision="fp8")


def test_machine_class_names_the_instruction_set_and_cores():
    import dataclasses

    from zoo.device import _read_hardware

    real = _read_hardware()
    for flags, expected in (({"avx2", "avx512f", "amx_bf16"}, "amx"), ({"avx2", "avx512_bf16"}, "avx512bf16"),
                            ({"avx2", "avx512f"}, "avx512"), ({"avx2"}, "avx2")):
        caps = dataclasses.replace(real, cpu_flags=frozenset(flags), cores=2)
        assert caps.machine_class == f"{expected}-2c"
