"""genzoo against the code a user would otherwise write, measured side by side in one run.

    python benchmarks/peers.py [--quick] [--sections matmul,train,sample,metrics,profile,quality] [--update]
                               [--threads 1] [--rounds 5] [--device auto] [--compile] [--out DIR]

Contenders (each figure is genzoo / peer, so above 1 means genzoo is faster):

* **train**: one training step of genzoo (``zoo.trainer.train_one_step``, what ``zoo train`` runs)
  against a plain PyTorch loop of the same networks (the same U-Net, Adam, loss, grad clip and EMA
  update written out by hand): DDPM in fp32 and bf16 autocast, DCGAN and GAN. Each DDPM step's
  FLOPs (``FlopCounterMode``) over its time give the fraction of the matmul peak it reaches.
* **sample**: DDIM-50 and ancestral DDPM sampling of genzoo's DDPM against diffusers'
  ``DDIMScheduler(timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=True)`` and
  ``DDPMScheduler(timestep_spacing="trailing")`` driving the very same EMA U-Net (genzoo's
  conventions; FIELD-NOTES), both fp32 at the same batch; then genzoo with
  ``--option precision=bf16`` (and, with ``--compile``, torch.compile'd, the compile timed apart).
* **metrics**: ``zoo eval`` of a folder of PNGs against raw ``torch_fidelity.calculate_metrics`` on
  the same images, same LeNet extractor and weights, as two subprocesses each (with warm caches,
  and with empty ones: genzoo's metrics cache and torch-fidelity's own cache).
* **matmul**: the one-thread and all-thread matmul rate in fp32 and bf16 (GFLOP/s), the peak the
  training step is held against.
* **profile**: torch.profiler over bf16 DDPM training steps: the operators that take the time.
* **quality** (needs ``--checkpoint``, a trained DDPM run): FID of DDIM-50 samples drawn in fp32 and
  in bf16 from the same noise, what the faster sampling costs in quality (ratio: bf16 / fp32).

Rounds alternate the contenders (ABAB, then BABA), so a neighbour's load falls on both alike; a
ratio is the median of the per-round ratios, with their min and max as its spread. Everything runs
under ``torch.set_num_threads(--threads)`` (default 1: stable on a shared machine). Results go to
``benchmarks/results/peers-<device>-<precision>-torch<version>.csv``; ``--quick`` keeps the whole
run to a few minutes on a 2-core CPU; ``--tiny`` (tests) uses tiny networks and is meaningless.
diffusers is optional (``pip install genzoo[bench]``): without it the diffusers rows are skipped.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
Unit = Callable[..., tuple[float, float]]  # returns (work done, seconds)


@dataclass
class Row:
    section: str
    figure: str
    contender: str
    peer: str
    unit: str
    rate: float
    peer_rate: float | None = None
    ratios: list[float] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        med, lo, hi = spread(self.ratios)
        return {
            "section": self.section, "figure": self.figure, "contender": self.contender, "peer": self.peer,
            "unit": self.unit, "rate": f"{self.rate:.4g}",
            "peer_rate": "" if self.peer_rate is None else f"{self.peer_rate:.4g}",
            "ratio": "" if med is None else f"{med:.3f}", "ratio_min": "" if lo is None else f"{lo:.3f}",
            "ratio_max": "" if hi is None else f"{hi:.3f}", "rounds": len(self.ratios), "note": self.note,
        }


def spread(values: list[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], Any]) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(units: dict[str, Unit], rounds: int) -> dict[str, list[float]]:
    """Rates (work / seconds) of every unit per round; rounds alternate the order (ABC, CBA, ...)."""
    names = list(units)
    rates: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            work, seconds = units[name]()
            rates[name].append(work / seconds)
    return rates


def pair_rows(section: str, figure: str, unit: str, rates: dict[str, list[float]], peer: str,
              notes: dict[str, str] | None = None) -> list[Row]:
    rows = []
    for name, values in rates.items():
        if name == peer:
            continue
        ratios = [a / b for a, b in zip(values, rates[peer], strict=True)] if peer in rates else []
        rows.append(Row(section, figure, name, peer if peer in rates else "", unit, statistics.median(values),
                        statistics.median(rates[peer]) if peer in rates else None, ratios,
                        (notes or {}).get(name, "")))
    return rows


# -- matmul peak --------------------------------------------------------------------------------


def matmul_rate(dtype: torch.dtype, threads: int, device: torch.device, n: int, iters: int) -> float:
    """GFLOP/s of ``n x n @ n x n`` in ``dtype`` with ``threads`` CPU threads (best of 3 repeats)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        (a @ b).sum()  # warm-up
        best = min(timed(device, lambda: [a @ b for _ in range(iters)]) for _ in range(3))
    finally:
        torch.set_num_threads(previous)
    return 2 * n**3 * iters / best / 1e9


def section_matmul(args: argparse.Namespace, device: torch.device) -> tuple[list[Row], dict[str, float]]:
    n = 256 if args.tiny else (8192 if device.type == "cuda" else 1024)
    iters = 3 if args.tiny else (10 if args.quick else 30)
    peaks: dict[str, float] = {}
    rows = []
    thread_counts = [args.threads] + ([os.cpu_count() or 1] if device.type == "cpu" and (os.cpu_count() or 1) != args.threads else [])
    for threads in thread_counts:
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            rate = matmul_rate(dtype, threads, device, n, iters)
            peaks[f"{name}@{threads}"] = rate
            rows.append(Row("matmul", f"matmul {name} {threads} thread(s)", "torch.matmul", "", "GFLOP/s", rate,
                            note=f"{n}x{n}"))
    return rows, peaks


# -- training -----------------------------------------------------------------------------------


def plain_ddpm_loop(model: Any, batch: torch.Tensor, precision: str) -> Callable[[], None]:
    """What a user writes: the same U-Net, Ho et al.'s L_simple, Adam, grad-norm clip and an EMA."""
    unet = copy.deepcopy(model.unet).train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.Adam(unet.parameters(), lr=model.config.lr)
    abar = model.schedule.alphas_cumprod.to(batch.device, torch.float32)
    T, clip = model.config.num_timesteps, model.config.grad_clip
    decay = model.config.ema_decay
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step() -> None:
        t = torch.randint(0, T, (batch.shape[0],), device=batch.device)
        noise = torch.randn_like(batch)
        a = abar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * batch + (1 - a).sqrt() * noise
        with torch.autocast(batch.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.mse_loss(unet(x_t, t).float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(unet.parameters(), clip)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.parameters()), list(unet.parameters()), 1 - decay)
        float(loss.detach())  # genzoo logs the loss every step: so does the peer

    return step


def plain_gan_loop(model: Any, batch: torch.Tensor) -> Callable[[], None]:
    """A plain non-saturating GAN step on copies of the same G and D (Goodfellow et al. 2014)."""
    g, d = copy.deepcopy(model.generator).train(), copy.deepcopy(model.discriminator).train()
    ema = copy.deepcopy(g).eval().requires_grad_(False) if model.generator_ema is not None else None
    betas = (model.config.beta1, model.config.beta2)
    opt_d = torch.optim.Adam(d.parameters(), lr=model.config.lr, betas=betas)
    opt_g = torch.optim.Adam(g.parameters(), lr=model.config.lr, betas=betas)
    n, latent = batch.shape[0], model.config.latent_dim

    def step() -> None:
        with torch.no_grad():
            fake = g(torch.randn(n, latent, device=batch.device))
        d_loss = F.softplus(-d(batch)).mean() + F.softplus(d(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        d.requires_grad_(False)
        g_loss = F.softplus(-d(g(torch.randn(n, latent, device=batch.device)))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        d.requires_grad_(True)
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(g.parameters()), 1 - model.config.ema_decay)
        float(d_loss.detach()), float(g_loss.detach())

    return step


def repeat_unit(fn: Callable[[], None], batch: int, steps: int, device: torch.device) -> Unit:
    """A unit that runs ``steps`` training steps of ``batch`` images: ``(images, seconds)``."""
    return lambda: (batch * steps, timed(device, lambda: [fn() for _ in range(steps)]))


def genzoo_step(model: Any, batch: torch.Tensor, precision: str, compile: bool = False) -> tuple[Callable[[], None], float]:
    """One ``zoo.trainer.train_one_step`` on a copy of ``model``; returns it and the compile seconds."""
    from zoo import accel
    from zoo.device import Precision
    from zoo.model import TrainStep
    from zoo.trainer import train_one_step

    net = copy.deepcopy(model).train()
    compile_s = 0.0
    if compile:
        accel.compile_networks(net)
    opts = net.configure_optimizers()
    prec = Precision.create(precision, batch.device)
    scaler = prec.make_scaler()
    counter = [0]

    def step() -> None:
        ctx = TrainStep(step=counter[0], optimizers=opts, scaler=scaler, grad_clip=getattr(net.config, "grad_clip", None))
        train_one_step(net, batch, ctx, prec.autocast)
        counter[0] += 1

    if compile:
        compile_s = timed(batch.device, step) + timed(batch.device, step)  # compiles forward and backward
    return step, compile_s


def section_train(args: argparse.Namespace, device: torch.device, peaks: dict[str, float]) -> list[Row]:
    from zoo.bench.costs import count_flops
    from zoo.device import capabilities
    from zoo.factory import create_model

    rows: list[Row] = []
    cases = [("ddpm", "fp32"), ("ddpm", "bf16"), ("dcgan", "fp32"), ("gan", "fp32")]
    for name, precision in cases:
        if precision == "bf16" and device.type == "cuda" and not capabilities().cuda_bf16:
            continue
        torch.manual_seed(0)
        overrides = dict(getattr(_model_class(name), "tiny_config", {})) if args.tiny else {}
        shape = (1, 28, 28)
        model = create_model(name, shape, overrides).to(device)
        bs = 8 if args.tiny else (128 if name == "ddpm" else model.default_batch_size)
        batch = torch.rand(bs, *shape, device=device) * 2 - 1
        steps = 1 if args.tiny else (3 if args.quick else 10)
        g_step, _ = genzoo_step(model, batch, precision)
        plain = plain_ddpm_loop(model, batch, precision) if name == "ddpm" else plain_gan_loop(model, batch)
        units: dict[str, Unit] = {}
        for label, fn in (("genzoo", g_step), ("plain PyTorch", plain)):
            fn()  # warm-up, twice
            fn()
            units[label] = repeat_unit(fn, bs, steps, device)
        notes: dict[str, str] = {}
        if args.compile and name == "ddpm":
            c_step, compile_s = genzoo_step(model, batch, precision, compile=True)
            units["genzoo --compile"] = repeat_unit(c_step, bs, steps, device)
            notes["genzoo --compile"] = f"compile {compile_s:.0f} s (not timed)"
        rates = interleaved(units, args.rounds)
        if name == "ddpm":  # FLOPs of one step: the fraction of the matmul peak it reaches
            flops = count_flops(g_step)
            peak = peaks.get(f"{precision}@{args.threads}")
            for label in rates:
                gflops = flops / bs * statistics.median(rates[label]) / 1e9
                extra = f"{gflops:.1f} GFLOP/s" + (f" = {gflops / peak:.0%} of {precision} matmul" if peak else "")
                notes[label] = "; ".join(x for x in (notes.get(label, ""), extra) if x)
        rows += pair_rows("train", f"{name} {precision} batch {bs}", "img/s", rates, "plain PyTorch", notes)
    return rows


def _model_class(name: str) -> Any:
    from zoo.factory import resolve

    return resolve(name)[0]


# -- sampling -----------------------------------------------------------------------------------


def diffusers_loop(unet: torch.nn.Module, scheduler: Any, steps: int, shape: tuple[int, ...], device: torch.device) -> Callable[[int], None]:
    """diffusers' canonical pipeline loop: ``set_timesteps``, then ``step(unet(x, t), t, x)``."""

    @torch.no_grad()
    def run(b: int) -> None:
        scheduler.set_timesteps(steps)
        x = torch.randn(b, *shape, device=device, generator=torch.Generator(device).manual_seed(0))
        for t in scheduler.timesteps:
            eps = unet(x, torch.full((b,), int(t), device=device, dtype=torch.long))
            x = scheduler.step(eps, t, x, generator=torch.Generator(device).manual_seed(int(t))).prev_sample

    return run


def sample_model(args: argparse.Namespace, device: torch.device) -> Any:
    from zoo.factory import create_model

    if args.checkpoint:
        from zoo.checkpoint import load_model

        return load_model(args.checkpoint, device)[0]
    torch.manual_seed(0)
    overrides = {**_model_class("ddpm").tiny_config, "num_timesteps": 1000} if args.tiny else {}
    model = create_model("ddpm", (1, 16, 16) if args.tiny else (1, 28, 28), overrides).to(device).eval()
    with torch.no_grad():  # an untrained U-Net's zero-initialised last layers would predict eps = 0
        for p in model.ema.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def section_sample(args: argparse.Namespace, device: torch.device) -> list[Row]:
    from zoo import accel
    from zoo.sampling import ImageGenerators

    try:
        import diffusers
    except ImportError:
        diffusers = None
        print("diffusers is not installed (pip install 'genzoo[bench]'): sampling peers skipped", file=sys.stderr)
    model = sample_model(args, device)
    shape, T = model.image_shape, model.config.num_timesteps
    betas = model.schedule.betas.numpy()
    ddim_steps = 5 if args.tiny else 50
    anc_steps = 5 if args.tiny else (20 if args.quick else 1000)  # per-step cost is what is compared
    largest = 64 if args.quick else 256  # --quick: the measured batch among 32 and 64
    b = 4 if args.tiny else accel.sample_batch_size(model, largest + 1, model.parse_sample_options({"steps": ddim_steps}))
    rows: list[Row] = []

    def ours(options: dict[str, Any]) -> Unit:
        def unit(steps: int | None = None) -> tuple[float, float]:
            gens = ImageGenerators.for_range(0, 0, b, device=device)
            opts = options if steps is None else {**options, "steps": steps}
            return b, timed(device, lambda: model.sample(b, generator=gens, **opts))
        return unit

    for figure, sampler, steps in (("DDIM", "ddim", ddim_steps), ("ancestral DDPM", "ddpm", anc_steps)):
        units: dict[str, Unit] = {"genzoo fp32": ours({"sampler": sampler, "steps": steps})}
        if sampler == "ddim" or not args.quick:
            units["genzoo bf16"] = ours({"sampler": sampler, "steps": steps, "precision": "bf16"})
        notes: dict[str, str] = {}
        if args.compile and sampler == "ddim":
            for precision in ("fp32", "bf16"):
                options = {"sampler": sampler, "steps": steps, "precision": precision}
                compile_s = accel.compile_for_inference(model, [b], options)
                table = model.__dict__.pop(accel.COMPILED_ATTRIBUTE)  # each unit installs its own graphs
                label = f"genzoo {precision} compiled"
                units[label] = with_compiled(model, table, ours(options))
                notes[label] = f"compile {compile_s:.0f} s (not timed)"
        peer = ""
        if diffusers is not None:
            common = {"num_train_timesteps": T, "trained_betas": betas, "timestep_spacing": "trailing",
                      "clip_sample": True, "prediction_type": "epsilon"}
            if sampler == "ddim":
                sched = diffusers.DDIMScheduler(**common, set_alpha_to_one=True)
                peer = "diffusers DDIMScheduler fp32"
            else:
                sched = diffusers.DDPMScheduler(**common, variance_type="fixed_small")
                peer = "diffusers DDPMScheduler fp32"
            loops = {k: diffusers_loop(model.ema, sched, k, shape, device) for k in (2, steps)}
            units[peer] = lambda k=None, loops=loops, full=steps: (b, timed(device, lambda: loops[k or full](b)))
        for unit in units.values():
            unit(2)  # warm-up: two steps build every kernel and buffer a trajectory uses
        rates = interleaved(units, args.rounds)
        rows += pair_rows("sample", f"{figure}-{steps} batch {b}", "img/s", rates, peer, notes)
    return rows


def with_compiled(model: Any, table: dict[str, Any], unit: Unit) -> Unit:
    """``unit`` run with ``table`` (compiled networks of :func:`zoo.accel.compile_for_inference`)
    installed on ``model`` for its duration, so eager and compiled contenders share one model."""
    from zoo import accel

    def run(*args: Any) -> tuple[float, float]:
        model.__dict__[accel.COMPILED_ATTRIBUTE] = table
        try:
            return unit(*args)
        finally:
            accel.release_compiled(model)

    return run


# -- quality ------------------------------------------------------------------------------------


def section_quality(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """What bf16 sampling costs in quality: FID of DDIM-50 images of the trained ``--checkpoint``
    drawn in fp32 and in bf16 from the same noise, scored under one protocol (LeNet on MNIST)."""
    from zoo.checkpoint import load_model
    from zoo.factory import load_dataset
    from zoo.metrics import compute_floor, evaluate, make_protocol
    from zoo.sampling import generate

    if not args.checkpoint:
        print("the quality section needs --checkpoint (a trained DDPM run): skipped", file=sys.stderr)
        return []
    model, meta = load_model(args.checkpoint, device)
    dataset = load_dataset(meta["dataset"], image_size=int(meta["image_shape"][1]))
    n = 100 if args.tiny else (500 if args.quick else 1000)
    protocol = make_protocol(dataset, num_real=min(4000, len(dataset.train)), num_fake=n, seed=0)
    fid = protocol.primary_metric
    floor = compute_floor(dataset, protocol, device=device)[fid]
    scores, images = {}, {}
    for precision in ("fp32", "bf16"):
        options = model.parse_sample_options({"sampler": "ddim", "steps": 5 if args.tiny else 50, "precision": precision})
        images[precision] = generate(model, n, seed=0, options=options)
        scores[precision] = evaluate(images[precision], dataset, protocol, device=device).metrics[fid]
    changed = (images["fp32"].int() - images["bf16"].int()).abs().float().mean().item()
    note = (f"{fid} over {n} images, floor {floor:.2f}, protocol {protocol.hash}, step {meta.get('step')}; "
            f"mean |pixel change| {changed:.2f} of 255")
    return [Row("quality", f"DDIM-50 {fid}, bf16 vs fp32", "genzoo bf16", "genzoo fp32", fid, scores["bf16"],
                scores["fp32"], [scores["bf16"] / scores["fp32"]], note)]


# -- metrics ------------------------------------------------------------------------------------

RAW_FIDELITY = r"""
import sys, time, torch, torch_fidelity
from torch.utils.data import TensorDataset
start = time.perf_counter()
from zoo.data import read_image_folder
from zoo.factory import load_dataset
from zoo.metrics.backbones import LENET_EXTRACTOR, SHIPPED_LENET, register_extractors
register_extractors()

class Images(torch.utils.data.Dataset):
    def __init__(self, x): self.x = x
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i]

fake = read_image_folder(sys.argv[1]).repeat(1, 3, 1, 1)
real = load_dataset("mnist-5k").train[: int(sys.argv[2])].repeat(1, 3, 1, 1)
m = torch_fidelity.calculate_metrics(
    input1=Images(fake), input2=Images(real), fid=True, kid=True, isc=True, prc=True, cuda=False,
    feature_extractor=LENET_EXTRACTOR, feature_extractor_weights_path=str(SHIPPED_LENET["mnist-5k"]),
    kid_subset_size=min(1000, len(fake)), verbose=False, save_cpu_ram=True,
    cache=sys.argv[3] == "warm", input2_cache_name="peers-mnist-5k-%s" % sys.argv[2])
print(time.perf_counter() - start)
"""


def section_metrics(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """``zoo eval FOLDER`` against raw torch-fidelity, both subprocesses (imports included in both)."""
    from zoo.factory import load_dataset
    from zoo.sampling import write_folder

    n_fake = 100 if args.tiny else (1000 if not args.quick else 500)
    n_real = 200 if args.tiny else 4000
    data = load_dataset("mnist-5k")
    work = Path(tempfile.mkdtemp(prefix="genzoo-peers-"))
    folder = write_folder(data.test[:n_fake], work / "fake")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "TORCH_HOME": str(work / "torch-home")}
    warm_cache = work / "zoo-cache-warm"
    script = work / "raw_fidelity.py"
    script.write_text(RAW_FIDELITY)

    def run(cmd: list[str], extra_env: dict[str, str]) -> tuple[float, float]:
        start = time.perf_counter()
        proc = subprocess.run(cmd, env={**env, **extra_env}, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(f"{cmd[:4]} failed: {proc.stderr.strip().splitlines()[-1:]} ")
        return 1.0, seconds

    zoo_cmd = [sys.executable, "-m", "zoo", "eval", str(folder), "--dataset", "mnist-5k", "--num-fake", str(n_fake),
               "--num-real", str(n_real), "--device", str(device), "--json"]
    raw_cmd = [sys.executable, str(script), str(folder), str(n_real)]
    counter = [0]

    def fresh_cache() -> dict[str, str]:
        counter[0] += 1
        return {"ZOO_CACHE_DIR": str(work / f"zoo-cache-empty-{counter[0]}")}

    run(zoo_cmd, {"ZOO_CACHE_DIR": str(warm_cache)})  # fill the warm caches once
    run(raw_cmd + ["warm"], {})
    rows: list[Row] = []
    for label, units in (
        ("warm cache", {"zoo eval": lambda: run(zoo_cmd, {"ZOO_CACHE_DIR": str(warm_cache)}),
                        "torch_fidelity.calculate_metrics": lambda: run(raw_cmd + ["warm"], {})}),
        ("empty cache", {"zoo eval": lambda: run(zoo_cmd, fresh_cache()),
                         "torch_fidelity.calculate_metrics": lambda: run(raw_cmd + ["cold"], {})}),
    ):
        rates = interleaved(units, max(2, args.rounds // 2) if not args.tiny else 1)
        rows += pair_rows("metrics", f"{n_fake} PNGs vs {n_real} real, {label}", "runs/s", rates,
                          "torch_fidelity.calculate_metrics",
                          {"zoo eval": "zoo eval also scores the floor, density/coverage, memorisation, modes"})
    return rows


# -- profile ------------------------------------------------------------------------------------


def section_profile(args: argparse.Namespace, device: torch.device, peaks: dict[str, float], out: Path) -> list[Row]:
    """torch.profiler over bf16 DDPM training steps: where the time goes (self time per operator)."""
    from torch.profiler import ProfilerActivity, profile

    from zoo.bench.costs import count_flops
    from zoo.factory import create_model

    torch.manual_seed(0)
    shape = (1, 16, 16) if args.tiny else (1, 28, 28)
    overrides = dict(_model_class("ddpm").tiny_config) if args.tiny else {}
    model = create_model("ddpm", shape, overrides).to(device)
    bs = 8 if args.tiny else 128
    batch = torch.rand(bs, *shape, device=device) * 2 - 1
    rows: list[Row] = []
    for precision in ("bf16",):
        step, _ = genzoo_step(model, batch, precision)
        step()  # warm-up, twice
        step()
        flops = count_flops(step)
        n = 1 if args.tiny else 3
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            seconds = timed(device, lambda: [step() for _ in range(n)])  # noqa: B023 (called here)
        table = prof.key_averages().table(sort_by="self_cpu_time_total" if device.type == "cpu" else "self_device_time_total",
                                          row_limit=25)
        path = out / f"profile-ddpm-{precision}-{_device_tag(device)}-torch{torch.__version__.split('+')[0]}.txt"
        path.write_text(f"# {n} DDPM training steps, batch {bs}, {precision}, {args.threads} thread(s)\n{table}\n")
        gflops = flops * n / seconds / 1e9
        peak = peaks.get(f"{precision}@{args.threads}")
        rows.append(Row("profile", f"ddpm {precision} training step (profiled)", "genzoo", "", "GFLOP/s", gflops,
                        note=(f"{gflops / peak:.0%} of {precision} matmul; " if peak else "") + f"table: {path.name}"))
        print(table)
    return rows


# -- driver -------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[Row], kept: list[dict[str, str]] = ()) -> None:
    """``kept`` (rows of other sections from an earlier run, ``--update``) first, then ``rows``."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Row("", "", "", "", "", 0.0).as_dict()))
        writer.writeheader()
        writer.writerows(kept)
        for row in rows:
            writer.writerow(row.as_dict())


def _device_tag(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).replace(" ", "_").lower()
    return "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],  # the first line; the module docstring has the rest
        epilog=f"Method and published results: docs/benchmarks.md; details: the docstring atop benchmarks/{Path(__file__).name}")
    parser.add_argument("--quick", action="store_true", help="a few minutes on a 2-core CPU")
    parser.add_argument("--tiny", action="store_true", help="tiny networks and counts (tests; meaningless numbers)")
    parser.add_argument("--sections", default="matmul,train,sample,metrics,profile,quality")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; --quick 3)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="also genzoo with torch.compile (compile timed apart)")
    parser.add_argument("--checkpoint", default=None, help="a DDPM run directory or checkpoint to sample from")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--update", action="store_true",
                        help="keep the rows of sections not run now from an existing CSV of the same name")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.tiny else 3 if args.quick else 5)

    from zoo.device import resolve_device
    from zoo.errors import ZooError

    try:
        device = resolve_device(args.device)
    except ZooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - {"matmul", "train", "sample", "metrics", "profile", "quality"}
    if unknown:
        print(f"error: unknown section(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    peaks: dict[str, float] = {}
    started = time.perf_counter()
    if "matmul" in sections or "train" in sections or "profile" in sections:
        matmul_rows, peaks = section_matmul(args, device)
        rows += matmul_rows if "matmul" in sections else []
    tag = "tiny" if args.tiny else "quick" if args.quick else "full"
    name = f"peers-{tag}-{_device_tag(device)}{args.threads}-fp32+bf16-torch{torch.__version__.split('+')[0]}.csv"
    path = args.out / name
    kept: list[dict[str, str]] = []
    if args.update and path.exists():
        with path.open(newline="") as f:
            kept = [r for r in csv.DictReader(f) if r["section"] not in sections]
    for name in sections:
        begun = time.perf_counter()
        if name == "train":
            rows += section_train(args, device, peaks)
        elif name == "sample":
            rows += section_sample(args, device)
        elif name == "metrics":
            rows += section_metrics(args, device)
        elif name == "profile":
            rows += section_profile(args, device, peaks, args.out)
        elif name == "quality":
            rows += section_quality(args, device)
        print(f"[{name}] {time.perf_counter() - begun:.0f} s", file=sys.stderr, flush=True)
        write_csv(path, rows, kept)  # after every section, so a long run keeps what it measured
    write_csv(path, rows, kept)
    meta = {"torch": torch.__version__, "python": platform.python_version(), "threads": args.threads,
            "device": str(device), "rounds": args.rounds, "seconds": round(time.perf_counter() - started, 1),
            "cpu": platform.processor() or platform.machine(), "load_average": os.getloadavg(), "sections": sections}
    if kept and path.with_suffix(".json").exists():  # what measured the rows kept from the earlier run
        meta["earlier"] = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"\n{'figure':38} {'genzoo side':28} {'peer':34} {'ratio (min-max)':>20}")
    for row in rows:
        med, lo, hi = spread(row.ratios)
        ratio = f"{med:.2f} ({lo:.2f}-{hi:.2f})" if med is not None else f"{row.rate:.4g} {row.unit}"
        print(f"{row.figure:38} {row.contender:28} {row.peer:34} {ratio:>20}  {row.note}")
    print(f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0 if all(math.isfinite(r.rate) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
