"""Randomness at the ground floor: per-image sampling noise and the process RNG state.

Sampling noise depends on ``(seed, image index)`` only, so the batch size never changes an image.
`ImageGenerators` holds one `torch.Generator` per image, seeded by `image_seed`
from the run's seed and the image's index in the whole run. A model draws its noise through
`randn` / `rand` (or the `zoo.GenerativeModel.randn` /
`rand` helpers, which call them on the model's device); row ``j`` of
every draw comes from image ``j``'s own generator.

`seed_everything`, `rng_state` and `set_rng_state` seed, capture and restore the
process-wide generators (Python, NumPy, torch, CUDA) that training draws from; checkpoints carry
them for exact resume.

The model contract, sampling, the trainer, the accelerator helpers and the loggers import these
from here (``zoo.sampling`` and ``zoo.trainer`` re-export them under their old names).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, overload

import torch

__all__ = [
    "BatchDependentSamplingWarning",
    "ImageGenerators",
    "image_seed",
    "rand",
    "randn",
    "rng_state",
    "seed_everything",
    "set_rng_state",
]

#: Versioned, so that a future change of derivation is a deliberate, visible one.
_SEED_DOMAIN = b"genzoo/sample-noise/v1"


def image_seed(seed: int, index: int) -> int:
    """The seed of image ``index`` of a run seeded with ``seed``: 63 bits of SHA-256 of both.

    A hash rather than ``seed + index``: with a sum, image 1 of seed 0 would be image 0 of seed 1,
    so two "different" seeds would share all but one image. SHA-256 makes every ``(seed, index)``
    pair an unrelated seed for the generator's own initialisation (Mersenne Twister on the CPU,
    Philox on CUDA).
    """
    digest = hashlib.sha256(b"%s:%d:%d" % (_SEED_DOMAIN, int(seed), int(index))).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


class BatchDependentSamplingWarning(UserWarning):
    """A model drew noise from an `ImageGenerators` as if it were one plain generator."""


class ImageGenerators(torch.Generator):
    """One `torch.Generator` per image of a batch, for batch-size-independent sampling.

    ``ImageGenerators(seed, indices, device)`` seeds generator ``j`` with
    ``image_seed(seed, indices[j])``. Draw from it with `randn` / `rand` (or the model's
    ``self.randn`` / ``self.rand``), whose first dimension must be the number of images: row ``j``
    comes from generator ``j``. ``gens[j]`` is image ``j``'s generator, ``gens[a:b]`` the
    generators of a sub-batch (the same objects, so drawing from the slice advances them).

    For compatibility it *is* a `torch.Generator` itself: a plugin that still calls
    ``torch.randn(..., generator=generator)`` directly keeps working, drawing from a batch-level
    stream seeded from ``(seed, first index, batch size)``. Its images are then reproducible for
    a given batch size but change with the batch size; `generate` warns
    (`BatchDependentSamplingWarning`) and `zoo.testing.check_model` fails.
    """

    run_seed: int
    indices: tuple[int, ...]
    generators: tuple[torch.Generator, ...]

    def __new__(cls, seed: int, indices: Iterable[int], device: str | torch.device = "cpu",
                *, _generators: Sequence[torch.Generator] | None = None) -> ImageGenerators:
        return super().__new__(cls, device=torch.device(device))  # type: ignore[call-arg]

    def __init__(self, seed: int, indices: Iterable[int], device: str | torch.device = "cpu",
                 *, _generators: Sequence[torch.Generator] | None = None) -> None:
        self.run_seed = int(seed)  # not ``seed``: torch.Generator.seed() is a method
        self.indices = tuple(int(i) for i in indices)
        if _generators is None:
            _generators = [torch.Generator(device=self.device).manual_seed(image_seed(self.run_seed, i))
                           for i in self.indices]
        self.generators = tuple(_generators)
        first = self.indices[0] if self.indices else 0
        batch_key = hashlib.sha256(b"%s:batch:%d:%d:%d" % (_SEED_DOMAIN, self.run_seed, first, len(self.indices)))
        self.manual_seed(int.from_bytes(batch_key.digest()[:8], "big") & ((1 << 63) - 1))

    @classmethod
    def for_range(cls, seed: int, start: int, count: int, device: str | torch.device = "cpu") -> ImageGenerators:
        """The generators of images ``start .. start + count - 1`` of a run seeded with ``seed``."""
        return cls(seed, range(start, start + count), device)

    def __len__(self) -> int:
        return len(self.generators)

    def __bool__(self) -> bool:  # an empty batch is still a generator, not "no generator"
        return True

    def __iter__(self) -> Iterator[torch.Generator]:
        return iter(self.generators)

    @overload
    def __getitem__(self, key: int) -> torch.Generator: ...
    @overload
    def __getitem__(self, key: slice) -> ImageGenerators: ...

    def __getitem__(self, key: int | slice) -> torch.Generator | ImageGenerators:
        if isinstance(key, slice):
            return ImageGenerators(self.run_seed, self.indices[key], self.device, _generators=self.generators[key])
        return self.generators[key]

    def __repr__(self) -> str:
        span = f"{self.indices[0]}..{self.indices[-1]}" if self.indices else "none"
        return f"ImageGenerators(seed={self.run_seed}, images {span}, n={len(self)}, device={self.device})"


def _draw(fn: Callable[..., torch.Tensor], shape: tuple[int, ...], generator: torch.Generator | None,
          device: torch.device | str | None, dtype: torch.dtype | None, what: str) -> torch.Tensor:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = tuple(shape[0])  # randn((n, d)) as well as randn(n, d)
    shape = tuple(int(s) for s in shape)
    if not isinstance(generator, ImageGenerators):
        # A plain generator (or None: the global RNG), exactly as ``torch.randn`` would draw it.
        source = generator.device if generator is not None else device
        noise = fn(shape, generator=generator, device=source, dtype=dtype)
        return noise.to(device) if device is not None else noise
    if not shape or shape[0] != len(generator):
        raise ValueError(
            f"{what}{shape}: the first dimension must be the number of images, {len(generator)}, because "
            f"row j is drawn from image j's own generator; for several draws per image use more "
            f"dimensions ({what}({len(generator)}, k, ...)) or several calls"
        )
    target = torch.device(device) if device is not None else generator.device
    out = torch.empty(shape, device=generator.device, dtype=dtype)
    for row, gen in zip(out, generator.generators, strict=True):
        fn(shape[1:], generator=gen, out=row)  # what fn(shape[1:], generator=gen) returns, in place
    return out.to(target)


def randn(*shape: Any, generator: torch.Generator | None = None, device: torch.device | str | None = None,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``device``, drawn from ``generator``.

    With an `ImageGenerators`, ``shape[0]`` must be its number of images and row ``j`` comes
    from image ``j``'s generator (on the generators' device, then moved to ``device``). With a plain
    `torch.Generator` the draw is ``torch.randn`` on the generator's device, moved to
    ``device``; with ``None`` it is the global RNG.
    """
    return _draw(torch.randn, shape, generator, device, dtype, "randn")


def rand(*shape: Any, generator: torch.Generator | None = None, device: torch.device | str | None = None,
         dtype: torch.dtype | None = None) -> torch.Tensor:
    """Uniform ``[0, 1)`` noise, drawn like `randn`."""
    return _draw(torch.rand, shape, generator, device, dtype, "rand")



def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators with ``seed``."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The state of every process-wide generator, as tensors and plain values (checkpointable)."""
    import numpy as np

    np_state: tuple[Any, ...] = np.random.get_state()  # type: ignore[assignment]
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    import numpy as np

    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
