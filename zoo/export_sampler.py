"""Reference sampling loops for a model exported by ``zoo export``; needs only NumPy and a runtime.

``zoo export`` copies this file into the export folder as ``sample.py``, beside ``model.json``
and the network (``model.onnx`` or ``model.pt``), so that an exported model can be sampled
without genzoo:

    pip install numpy onnxruntime
    python sample.py --num 16 --seed 0 --out samples.npy            # uint8, n x C x H x W
    python sample.py --num 16 --option steps=20 --option sampler=heun --out samples.npy

genzoo's ``zoo eval EXPORT_DIR`` runs the same functions (with the noise genzoo's own sampler
would draw, so an exported model can be compared with the original image for image).

Conventions (``model.json`` documents each export):

* images are float32 ``n x C x H x W`` in ``[-1, 1]`` (``to_uint8`` maps them to ``0..255``);
* ``kind == "generator"`` (GANs, VAEs): one network call ``image = net(z)``, ``z ~ N(0, I)`` of
  shape ``n x latent_dim``;
* ``kind == "denoiser"`` with ``sampler.type == "ddim"`` (DDPM): ``eps = net(x_t, t)`` with integer
  timesteps ``t`` (int64, ``0 .. T-1``); `ddim_sample` runs deterministic DDIM (Song et al.
  2021, arXiv:2010.02502, ``eta = 0``) on the "trailing" uniform grid, clipping the ``x_0``
  prediction to ``[-1, 1]`` at every step, from ``x_T ~ N(0, I)``;
* ``kind == "denoiser"`` with ``sampler.type == "flow"`` (flow matching): ``v = net(x_t, t)`` with
  float times in ``[0, 1]``; `flow_sample` integrates ``dx/dt = v`` from ``x_0 ~ N(0, I)`` at
  ``t = 0`` to ``t = 1`` with Euler or Heun steps (Heun skips the correction on the last step, so
  ``2 * steps - 1`` network evaluations);
* ``kind == "denoiser"`` with ``sampler.type == "edm"`` (EDM, Karras et al. 2022, arXiv:2206.00364):
  ``denoised = net(x, sigma)`` with float noise levels; `edm_sample` runs their algorithm 1
  (Euler or Heun, no correction on the step to ``sigma = 0``) through the rho-spaced levels of their
  Eq. 5, from ``x = sigma_max * noise``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: ``run(inputs) -> output``: one network call, inputs by name as NumPy arrays.
Runner = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def onnx_runner(path: str | Path, threads: int | None = None) -> Runner:
    """A `Runner` on ONNX Runtime's CPU provider for the ``.onnx`` file at ``path``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    output = session.get_outputs()[0].name

    def run(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return session.run([output], dict(inputs))[0]

    return run


def generator_sample(run: Runner, meta: Mapping[str, Any], z: np.ndarray) -> np.ndarray:
    """Images ``net(z)`` for latent codes ``z`` (``n x latent_dim`` float32), clipped to ``[-1, 1]``."""
    name = meta["inputs"][0]["name"]
    return np.clip(run({name: z.astype(np.float32)}), -1.0, 1.0)


def ddim_timesteps(num_train_steps: int, steps: int) -> list[int]:
    """``steps`` timesteps ``floor((i + 1) T / N) - 1`` in decreasing order (the "trailing" grid)."""
    if not 1 <= steps <= num_train_steps:
        raise ValueError(f"steps must be between 1 and T = {num_train_steps}, got {steps}")
    return [(i + 1) * num_train_steps // steps - 1 for i in range(steps)][::-1]


def ddim_sample(run: Runner, meta: Mapping[str, Any], x: np.ndarray, steps: int) -> np.ndarray:
    """Deterministic DDIM (``eta = 0``) from ``x_T = x`` (``n x C x H x W`` standard normal)."""
    sampler = meta["sampler"]
    abar = np.asarray(sampler["alphas_cumprod"], dtype=np.float64)
    x_name, t_name = (i["name"] for i in meta["inputs"])
    grid = ddim_timesteps(len(abar), steps)
    x = x.astype(np.float32)
    for i, t in enumerate(grid):
        prev = grid[i + 1] if i + 1 < len(grid) else -1
        a, a_prev = float(abar[t]), (float(abar[prev]) if prev >= 0 else 1.0)
        eps = run({x_name: x, t_name: np.full((x.shape[0],), t, dtype=np.int64)}).astype(np.float32)
        x0 = np.clip((x - math.sqrt(1.0 - a) * eps) / math.sqrt(a), -1.0, 1.0)
        x = (math.sqrt(a_prev) * x0 + math.sqrt(max(1.0 - a_prev, 0.0)) * eps).astype(np.float32)
    return np.clip(x, -1.0, 1.0)


def flow_sample(run: Runner, meta: Mapping[str, Any], x: np.ndarray, steps: int, solver: str = "euler") -> np.ndarray:
    """Integrate the exported velocity field from ``x_0 = x`` at ``t = 0`` to ``t = 1``."""
    if solver not in ("euler", "heun"):
        raise ValueError(f"solver must be euler or heun, got {solver!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x_name, t_name = (i["name"] for i in meta["inputs"])
    times = np.linspace(0.0, 1.0, steps + 1, dtype=np.float64).tolist()
    x = x.astype(np.float32)
    n = x.shape[0]
    for i in range(steps):
        t, t_next = times[i], times[i + 1]
        h = np.float32(t_next - t)
        v = run({x_name: x, t_name: np.full((n,), t, dtype=np.float32)}).astype(np.float32)
        x_euler = x + h * v
        if solver == "heun" and i < steps - 1:
            v_next = run({x_name: x_euler, t_name: np.full((n,), t_next, dtype=np.float32)}).astype(np.float32)
            x = x + h * np.float32(0.5) * (v + v_next)
        else:
            x = x_euler
    return np.clip(x, -1.0, 1.0)


def edm_sigmas(sampler: Mapping[str, Any], steps: int) -> list[float]:
    """Karras et al.'s Eq. 5: ``steps`` levels from ``sigma_max`` to ``sigma_min`` (rho-spaced), then 0."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    lo, hi, rho = float(sampler["sigma_min"]), float(sampler["sigma_max"]), float(sampler["rho"])
    if steps == 1:
        return [hi, 0.0]
    a, b = hi ** (1.0 / rho), lo ** (1.0 / rho)
    return [(a + i / (steps - 1) * (b - a)) ** rho for i in range(steps)] + [0.0]


def edm_sample(run: Runner, meta: Mapping[str, Any], x: np.ndarray, steps: int, solver: str = "heun") -> np.ndarray:
    """Karras et al.'s algorithm 1 on the exported denoiser, from ``sigma_max * x`` (``x`` standard normal)."""
    if solver not in ("euler", "heun"):
        raise ValueError(f"solver must be euler or heun, got {solver!r}")
    x_name, s_name = (i["name"] for i in meta["inputs"])
    sigmas = edm_sigmas(meta["sampler"], steps)
    x = (x * np.float32(sigmas[0])).astype(np.float32)
    n = x.shape[0]

    def slope(x: np.ndarray, s: float) -> np.ndarray:
        denoised = run({x_name: x, s_name: np.full((n,), s, dtype=np.float32)}).astype(np.float32)
        return (x - denoised) / np.float32(s)

    for s, s_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        h = np.float32(s_next - s)
        d = slope(x, s)
        x_next = x + h * d
        if solver == "heun" and s_next != 0:
            x_next = x + h * np.float32(0.5) * (d + slope(x_next, s_next))
        x = x_next
    return np.clip(x, -1.0, 1.0)


def noise_shape(meta: Mapping[str, Any], n: int) -> tuple[int, ...]:
    """Shape of the starting noise for ``n`` images: ``n x latent_dim`` or ``n x C x H x W``."""
    return (n, *meta["inputs"][0]["shape"][1:])


def sampling_options(meta: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The export's sampling options with defaults filled in; raises ``ValueError`` for unknown ones."""
    sampler = meta.get("sampler") or {}
    declared: dict[str, Any] = {}
    if sampler.get("type") == "ddim":
        declared = {"steps": int(sampler["default_steps"])}
    elif sampler.get("type") in ("flow", "edm"):
        declared = {"steps": int(sampler["default_steps"]), "sampler": str(sampler["default_solver"])}
    out = dict(declared)
    for key, value in (options or {}).items():
        if key not in declared:
            known = ", ".join(declared) or "none"
            raise ValueError(f"unknown sampling option {key!r} for this export (known: {known})")
        try:
            out[key] = type(declared[key])(value)
        except ValueError:
            raise ValueError(f"sampling option {key} must be {type(declared[key]).__name__}, got {value!r}") from None
    if "sampler" in out and out["sampler"] not in sampler.get("solvers", ()):
        raise ValueError(f"sampler must be one of {', '.join(sampler['solvers'])}, got {out['sampler']!r}")
    if "steps" in out and out["steps"] < 1:
        raise ValueError(f"steps must be >= 1, got {out['steps']}")
    return out


def sample(run: Runner, meta: Mapping[str, Any], noise: np.ndarray, options: Mapping[str, Any] | None = None) -> np.ndarray:
    """Images (float32 ``n x C x H x W`` in ``[-1, 1]``) from starting ``noise`` of `noise_shape`."""
    opts = sampling_options(meta, options)
    if meta["kind"] == "generator":
        return generator_sample(run, meta, noise)
    if meta["sampler"]["type"] == "ddim":
        return ddim_sample(run, meta, noise, opts["steps"])
    if meta["sampler"]["type"] == "edm":
        return edm_sample(run, meta, noise, opts["steps"], opts["sampler"])
    return flow_sample(run, meta, noise, opts["steps"], opts["sampler"])


def network_evaluations(meta: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> int:
    """Network calls per image (NFE) of a sampling setting."""
    opts = sampling_options(meta, options)
    if meta["kind"] == "generator":
        return 1
    if meta["sampler"]["type"] in ("flow", "edm") and opts["sampler"] == "heun":
        return 2 * opts["steps"] - 1
    return int(opts["steps"])


def to_uint8(images: np.ndarray) -> np.ndarray:
    """``[-1, 1]`` floats to ``uint8`` ``0..255`` (round half to even, as ``torch.round``)."""
    return np.round((np.clip(np.nan_to_num(images, nan=-1.0), -1, 1) + 1) * 127.5).astype(np.uint8)


def torchscript_runner(path: str | Path) -> Runner:
    """A `Runner` for a TorchScript export (``model.pt``), on the CPU."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still loads
        module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values())).numpy()

    return run


def load(folder: str | Path) -> tuple[Runner, dict[str, Any]]:
    """``(runner, meta)`` for the export in ``folder`` (its ``model.json`` and network file)."""
    folder = Path(folder)
    meta = json.loads((folder / "model.json").read_text())
    path = folder / meta["file"]
    runner = onnx_runner(path) if meta["format"] == "onnx" else torchscript_runner(path)
    return runner, meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Sample an exported genzoo model (NumPy noise).")
    parser.add_argument("--num", type=int, default=16, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="seed of NumPy's noise generator")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="sampling option of a denoiser export: steps=N, sampler=euler|heun (flow, edm)")
    parser.add_argument("--out", default="samples.npy", help="output .npy file (uint8, n x C x H x W)")
    args = parser.parse_args(argv)
    bad = [item for item in args.option if "=" not in item]
    if bad:
        parser.error(f"--option takes KEY=VALUE, got {bad[0]!r}")
    if args.num < 1:
        parser.error(f"--num must be at least 1, got {args.num}")
    if args.seed < 0:
        parser.error(f"--seed must be 0 or more, got {args.seed}")
    if not args.out.endswith(".npy"):  # numpy would append .npy and the message would name another file
        parser.error(f"--out must name an .npy file, got {args.out}")
    if not Path(args.out).resolve().parent.is_dir():  # before minutes of sampling, not after
        parser.error(f"the folder of --out {args.out} does not exist")
    options = dict(item.split("=", 1) for item in args.option)
    run, meta = load(Path(__file__).resolve().parent)
    try:
        sampling_options(meta, options)  # unknown or bad options: one line, exit 2
    except ValueError as exc:
        parser.error(str(exc))
    noise = np.random.default_rng(args.seed).standard_normal(noise_shape(meta, args.num)).astype(np.float32)
    try:
        images = to_uint8(sample(run, meta, noise, options))
    except ValueError as exc:  # a setting the sampler refuses (e.g. more DDIM steps than T)
        parser.error(str(exc))
    np.save(args.out, images)
    print(f"{args.num} images {images.shape[1:]} -> {args.out}")


if __name__ == "__main__":
    main()
