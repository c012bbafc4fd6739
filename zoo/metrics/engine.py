"""Computing the metrics: torch-fidelity's feature extractors and maths, genzoo's data handling.

For each protocol the *reference* features (``num_real`` training images drawn with the seed) are
extracted once and cached by genzoo (`zoo.metrics.stats_cache`); generated images are pushed
through the same torch-fidelity feature extractor, and the numbers come from torch-fidelity's own
functions on those features:

* FID (Heusel et al. 2017, arXiv:1706.08500): ``fid_features_to_statistics`` and
  ``fid_statistics_to_metric``;
* IS (Salimans et al. 2016, arXiv:1606.03498): ``isc_features_to_metric`` on the logits;
* KID (Binkowski et al. 2018, arXiv:1801.01401): torch-fidelity's subsets and kernel, each kernel
  entry computed once (`zoo.metrics.kid`; equal to ``kid_features_to_metric`` to ~1e-6);
  its ``_std`` is a bootstrap over the generated images (`zoo.metrics.kid.kid_bootstrap_std`);
* precision / recall (Kynkaanniemi et al. 2019, arXiv:1904.06991): ``prc_features_to_metric``,
  generated set first, real set second;
* density / coverage, memorisation and mode coverage: `zoo.metrics.nearest` on the same
  features (the FID layer; the IS logits for mode coverage);
* the Vendi score (`zoo.metrics.vendi`) and the generalisation gap (`zoo.metrics.gap`,
  the primary distance against the training images minus against held-out images) on the FID layer.

This is what ``torch_fidelity.calculate_metrics(input1=generated, input2=reference, ...)`` computes
(a test checks they agree), without extracting the reference features again on every call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_fidelity.metric_fid import (
    KEY_METRIC_FID,
    fid_features_to_statistics,
    fid_statistics_to_metric,
)
from torch_fidelity.metric_isc import (
    KEY_METRIC_ISC_MEAN,
    KEY_METRIC_ISC_STD,
    isc_features_to_metric,
)
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN
from torch_fidelity.metric_prc import (
    KEY_METRIC_PRECISION,
    KEY_METRIC_RECALL,
    prc_features_to_metric,
)

from zoo.data import ImageDataset, check_images
from zoo.errors import DataError, MetricsError
from zoo.metrics import floors, nearest, stats_cache
from zoo.metrics.backbones import create_extractor, resolve_backbone, weights_digest
from zoo.metrics.gap import gap_split, generalisation_gap
from zoo.metrics.kid import kid_bootstrap_std, kid_features_to_metric
from zoo.metrics.protocol import PROTOCOL_VERSION, Protocol
from zoo.metrics.vendi import vendi_score

#: ``progress(task, done, total)``
ProgressFn = Callable[[str, int, int], None]


def resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        from zoo.device import capabilities

        return torch.device("cuda" if capabilities().cuda else "cpu")
    return torch.device(device)


def to_rgb(images: torch.Tensor) -> torch.Tensor:
    """torch-fidelity takes ``uint8`` 3-channel images: gray is repeated, an alpha channel dropped."""
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    return images[:, :3]


# -- the draws ------------------------------------------------------------------------------------


def reference_order(dataset: ImageDataset, protocol: Protocol) -> torch.Tensor:
    """Indices into ``dataset.train`` of the ``num_real`` reference images, in reference order."""
    perm = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(protocol.seed))
    return perm[: protocol.num_real]


def reference_images(dataset: ImageDataset, protocol: Protocol) -> torch.Tensor:
    """The ``num_real`` reference images: a seeded draw from the training split."""
    return dataset.train[reference_order(dataset, protocol)]


def fake_order(count: int, protocol: Protocol) -> torch.Tensor:
    """Indices of the ``num_fake`` images scored out of ``count`` generated ones: all of them in
    order when ``count == num_fake``, else the protocol's seeded draw over all ``count``.

    Raises `MetricsError` for fewer images, or for more when the protocol records no draw
    (it was made without ``source_images``: its hash would not say how the images were picked).
    """
    if count < protocol.num_fake:
        raise MetricsError(f"protocol {protocol.hash} scores {protocol.num_fake} generated images, got only {count}")
    if count == protocol.num_fake:
        return torch.arange(count)
    if not protocol.fake_draw:
        raise MetricsError(f"{count} generated images for protocol {protocol.hash}, which scores {protocol.num_fake} "
                           f"and records no draw; make it with source_images={count}")
    generator = torch.Generator().manual_seed(protocol.seed)
    return torch.randperm(count, generator=generator)[: protocol.num_fake]


def _floor_pool(dataset: ImageDataset, protocol: Protocol) -> torch.Tensor:
    perm = torch.randperm(len(dataset.test), generator=torch.Generator().manual_seed(protocol.seed))
    return perm[: protocol.num_fake]


def floor_images(dataset: ImageDataset, protocol: Protocol) -> torch.Tensor:
    """The floor's pool: ``num_fake`` held-out real images (a seeded draw without replacement from
    the held-out split, disjoint from the reference set). The floor scores draws from it
    (`floor_draws`); its two halves set and measure the memorisation threshold
    (`memorisation_split`)."""
    return dataset.test[_floor_pool(dataset, protocol)]


def floor_draws(dataset: ImageDataset, protocol: Protocol) -> list[torch.Tensor]:
    """``protocol.floor_draws`` index tensors (int64, ``num_fake`` each) into `floor_images`,
    drawn the way a generator that samples the data distribution draws: the class counts are
    multinomial over the pool's class shares (a generator draws classes at random), and each
    class's images are drawn without replacement, with replacement only past the pool's count of
    that class. The pool itself is stratified on labelled data (every class held out equally),
    which no generator reproduces: scoring it whole read far below a perfect generator's FID.
    Unlabelled data has one class: every draw is the pool (a random split already), so there is
    one distinct draw and no spread.
    """
    n = protocol.num_fake
    labels = dataset.test_labels
    pool_labels = labels[_floor_pool(dataset, protocol)].long() if labels is not None else torch.zeros(n, dtype=torch.long)
    classes = [torch.nonzero(pool_labels == c).flatten() for c in torch.unique(pool_labels).tolist()]
    shares = torch.tensor([len(c) for c in classes], dtype=torch.float64)
    generator = torch.Generator().manual_seed(protocol.seed + 1)
    draws = []
    for _ in range(max(1, protocol.floor_draws if len(classes) > 1 else 1)):
        counts = torch.bincount(torch.multinomial(shares, n, replacement=True, generator=generator), minlength=len(classes))
        parts = []
        for members, count in zip(classes, counts.tolist(), strict=True):
            order = members[torch.randperm(len(members), generator=generator)]
            extra = max(0, count - len(members))
            parts += [order[:count], members[torch.randint(0, len(members), (extra,), generator=generator)]]
        draws.append(torch.cat(parts))
    return draws


def memorisation_split(protocol: Protocol) -> tuple[torch.Tensor, torch.Tensor]:
    """``(setting, measuring)`` positions in `floor_images`: the first half (the pool is in
    random order) sets the memorisation threshold, the second half measures the floor's share, so
    the floor's ``memorised_<b>`` comes from images that did not set the threshold."""
    n = protocol.num_fake
    return torch.arange(n // 2), torch.arange(n // 2, n)


# -- features -------------------------------------------------------------------------------------


def _weights_path(protocol: Protocol, dataset: ImageDataset) -> str:
    """The local weight file whose hash is the protocol's (re-resolved if the path is unknown)."""
    path = protocol.weights_path
    if path and Path(path).is_file() and weights_digest(protocol.backbone, path) == protocol.weights_sha256:
        return path
    found = resolve_backbone(protocol.backbone, dataset)
    if found.sha256 != protocol.weights_sha256:
        raise MetricsError(
            f"the {protocol.backbone} weights here (sha256 {found.sha256[:12]}) differ from the protocol's "
            f"({protocol.weights_sha256[:12]}); results would not be comparable"
        )
    return str(found.path)


@lru_cache(maxsize=2)
def _extractor(name: str, path: str, sha256: str, layers: tuple[str, ...], device: str) -> Any:
    del sha256  # part of the cache key only: a changed file gives a new extractor
    # Building the network initialises weights from the global RNG before loading the file; a
    # metric must never shift the random stream of a training run in the same process.
    with torch.random.fork_rng(devices=[]):
        return create_extractor(name, path, layers, torch.device(device))


def feature_batch_cap(dataset: ImageDataset, protocol: Protocol, batch_size: int,
                      device: torch.device | str | None = None) -> int:
    """The most images per batch the protocol's backbone can take on ``device`` now
    (`zoo.memory.batch_cap`, 1..`zoo.memory.MAX_BATCH`), measured once per backbone, layers,
    image shape and device in this process by `zoo.memory.measure_batch_memory` on blank images.
    A ``batch_size`` no larger than the bigger probe (``2 * PROBE_BATCH``) is returned as it is,
    with nothing measured. Callers lower their batch to it (`zoo.memory.lower_to_cap`)."""
    from zoo.memory import PROBE_BATCH, batch_cap

    if batch_size <= 2 * PROBE_BATCH:
        return batch_size
    dev = resolve_device(device)
    layers = tuple(sorted({layer for _, layer in protocol.feature_layers}))
    found = _feature_memory(protocol.feature_extractor, _weights_path(protocol, dataset), protocol.weights_sha256,
                            layers, str(dev), tuple(int(s) for s in dataset.image_shape))
    return batch_cap(found, dev)


@lru_cache(maxsize=4)
def _feature_memory(name: str, path: str, sha256: str, layers: tuple[str, ...], device: str,
                    shape: tuple[int, ...]) -> Any:
    from zoo.memory import measure_batch_memory

    extractor = _extractor(name, path, sha256, layers, device)

    def run(b: int) -> None:
        with torch.no_grad():
            extractor(to_rgb(torch.zeros((b, *shape), dtype=torch.uint8)).to(device))

    # the floor per image: the float32 RGB image the backbone starts from
    return measure_batch_memory(run, torch.device(device), output_bytes=4 * 3 * shape[1] * shape[2])


@torch.no_grad()
def backbone_features(
    images: torch.Tensor,
    dataset: ImageDataset,
    protocol: Protocol,
    *,
    batch_size: int = 200,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    task: str = "extracting features",
) -> dict[str, torch.Tensor]:
    """The protocol's backbone features of ``uint8`` images, one ``N x D`` float32 tensor per layer."""
    if batch_size < 1:
        raise MetricsError(f"batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    layers = tuple(sorted({layer for _, layer in protocol.feature_layers}))
    extractor = _extractor(protocol.feature_extractor, _weights_path(protocol, dataset), protocol.weights_sha256, layers, str(dev))
    parts: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    n = len(images)
    for start in range(0, n, batch_size):
        batch = to_rgb(images[start : start + batch_size]).to(dev)
        out = extractor.convert_features_tuple_to_dict(extractor(batch))
        for layer, value in out.items():
            parts[layer].append(value.float().cpu())
        if progress is not None:
            progress(task, min(start + batch_size, n), n)
    return {layer: torch.cat(chunks) for layer, chunks in parts.items()}


def reference_features(
    dataset: ImageDataset,
    protocol: Protocol,
    *,
    batch_size: int = 200,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    fingerprint: str | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """Reference features per layer (plus the k-NN radii of the FID layer under
    `RADII`) and FID statistics, from genzoo's cache or computed and
    cached. Keyed by `Protocol.reference_hash`, so any ``num_fake`` reuses them."""
    fingerprint = fingerprint or _check_dataset(dataset, protocol)
    key = f"{protocol.reference_hash}-{fingerprint}"
    path = stats_cache.reference_path(protocol.reference_hash, fingerprint)
    layers = sorted({layer for _, layer in protocol.feature_layers})
    cached = stats_cache.load_reference(path, key, [*layers, stats_cache.RADII], protocol.num_real, protocol.layer("fid"))
    if cached is not None:
        feats, mu, sigma = cached
        return {k: torch.from_numpy(v) for k, v in feats.items()}, {"mu": mu, "sigma": sigma}
    features = backbone_features(
        reference_images(dataset, protocol), dataset, protocol,
        batch_size=batch_size, device=device, progress=progress, task="reference features",
    )
    stats = fid_features_to_statistics(features[protocol.layer("fid")])
    features[stats_cache.RADII] = nearest.knn_radii(features[protocol.layer("fid")], protocol.prdc_neighborhood)[:, None]
    stats_cache.save_reference(path, key, {k: v.numpy() for k, v in features.items()}, stats["mu"], stats["sigma"])
    return features, stats


def _check_dataset(dataset: ImageDataset, protocol: Protocol) -> str:
    """The dataset's fingerprint, which must be the one the protocol was made for (and the
    protocol one of the version this genzoo computes)."""
    _check_version(protocol)
    fingerprint = dataset.fingerprint()
    if fingerprint != protocol.dataset_fingerprint:
        raise MetricsError(
            f"protocol {protocol.hash} was made for {protocol.dataset} (fingerprint {protocol.dataset_fingerprint}), "
            f"not this {dataset.name} data (fingerprint {fingerprint})"
        )
    return fingerprint


def heldout_stats(
    dataset: ImageDataset,
    protocol: Protocol,
    *,
    batch_size: int = 200,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, np.ndarray]:
    """FID statistics (``mu``, ``sigma``) of the generalisation gap's held-out reference
    (`zoo.metrics.gap.gap_split`), from genzoo's cache or computed and cached per protocol."""
    fingerprint = _check_dataset(dataset, protocol)
    split = gap_split(len(dataset.test), protocol.num_fake, protocol.seed)
    key = f"heldout-{protocol.hash}-{fingerprint}"
    path = stats_cache.metrics_cache_dir() / f"{key}.npz"
    fid_layer = protocol.layer("fid")
    cached = stats_cache.load_reference(path, key, [fid_layer], len(split.heldout), fid_layer)
    if cached is not None:
        return {"mu": cached[1], "sigma": cached[2]}
    features = backbone_features(
        dataset.test[split.heldout], dataset, protocol,
        batch_size=batch_size, device=device, progress=progress, task="held-out features",
    )[fid_layer]
    stats = fid_features_to_statistics(features)
    stats_cache.save_reference(path, key, {fid_layer: features.numpy()}, stats["mu"], stats["sigma"])
    return stats


# -- the maths (torch-fidelity's) ------------------------------------------------------------------


def metrics_from_features(
    fake: dict[str, torch.Tensor],
    real: dict[str, torch.Tensor],
    protocol: Protocol,
    real_stats: dict[str, np.ndarray] | None = None,
    memorisation_threshold: float | None = None,
    heldout: dict[str, np.ndarray] | None = None,
    gap_rows: torch.Tensor | None = None,
) -> dict[str, float]:
    """All metrics of the protocol from features of the generated (``fake``) and reference sets.

    ``memorisation_threshold`` is the held-out quantile of nearest-training distances
    (`memorisation_threshold`); without it ``memorised_<b>`` is left out. ``heldout`` holds
    the FID statistics of the gap's held-out reference (`heldout_stats`) and ``gap_rows``
    the rows of ``fake`` the gap uses (default: all); without ``heldout`` ``gap_<b>`` is left out.
    """
    return _evaluate_features(fake, real, protocol, real_stats, memorisation_threshold, heldout, gap_rows)[0]


def _evaluate_features(
    fake: dict[str, torch.Tensor],
    real: dict[str, torch.Tensor],
    protocol: Protocol,
    real_stats: dict[str, np.ndarray] | None,
    threshold: float | None,
    heldout: dict[str, np.ndarray] | None = None,
    gap_rows: torch.Tensor | None = None,
) -> tuple[dict[str, float], nearest.Memorisation | None]:
    b, p = protocol.tag, protocol
    fd_key = protocol.primary_metric
    try:
        with _blas_threads():
            fid_real = real_stats or fid_features_to_statistics(real[p.layer("fid")])
            fid = fid_statistics_to_metric(fid_features_to_statistics(fake[p.layer("fid")]), fid_real, False)
            isc = isc_features_to_metric(fake[p.layer("isc")], p.isc_splits, True, p.seed) if p.has_isc else None
            kid = kid_features_to_metric(
                fake[p.layer("kid")], real[p.layer("kid")],
                kid_subsets=p.kid_subsets, kid_subset_size=p.kid_subset_size, rng_seed=p.seed,
            )
            prc = prc_features_to_metric(
                fake[p.layer("prc")], real[p.layer("prc")],
                prc_neighborhood=p.prc_neighborhood, save_cpu_ram=True, verbose=False,
            )
    except ValueError as exc:  # torch-fidelity's vassert
        raise MetricsError(f"torch-fidelity refused the inputs: {exc}") from None
    out = {fd_key: float(fid[KEY_METRIC_FID])}
    if isc is not None:
        out.update({f"is_{b}": float(isc[KEY_METRIC_ISC_MEAN]), f"is_{b}_std": float(isc[KEY_METRIC_ISC_STD])})
    out.update({
        f"kid_{b}": float(kid[KEY_METRIC_KID_MEAN]),
        # the spread over generated images (a bootstrap), not torch-fidelity's over subsets
        f"kid_{b}_std": kid_bootstrap_std(fake[p.layer("kid")], real[p.layer("kid")], rng_seed=p.seed),
        f"precision_{b}": float(prc[KEY_METRIC_PRECISION]),
        f"recall_{b}": float(prc[KEY_METRIC_RECALL]),
    })
    fake_f, real_f = fake[p.layer("fid")], real[p.layer("fid")]
    radii = real.get(stats_cache.RADII)
    radii = nearest.knn_radii(real_f, p.prdc_neighborhood) if radii is None else radii.flatten()
    density, coverage = nearest.density_coverage(fake_f, real_f, radii, p.prdc_neighborhood)
    out.update({f"density_{b}": density, f"coverage_{b}": coverage})
    memo = None
    if threshold is not None:
        memo = nearest.memorisation(fake_f, real_f, threshold)
        out[f"memorised_{b}"] = memo.share
    if p.num_classes:
        covered, kl = nearest.mode_coverage(fake[p.layer("isc")], real[p.layer("isc")], p.mode_min_share)
        out.update({f"classes_{b}": float(covered), f"kl_classes_{b}": kl})
    out[f"vendi_{b}"] = vendi_score(fake_f)
    if heldout is not None:
        rows = fake_f if gap_rows is None else fake_f[gap_rows]
        with _blas_threads():
            out[f"gap_{b}"] = generalisation_gap(rows, fid_real, heldout)
    return out, memo


def _blas_threads() -> contextlib.AbstractContextManager[Any]:
    """Keep NumPy's BLAS (KID's kernel matrices, FID's eigenvalues) to torch's thread budget.

    OpenBLAS otherwise starts a thread per core, which on a busy machine makes KID many times
    slower. threadpoolctl is a core dependency; without it nothing is limited.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=torch.get_num_threads(), user_api="blas")


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Frechet distance of two Gaussians, through torch-fidelity's ``fid_statistics_to_metric``."""
    out = fid_statistics_to_metric({"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}, False)
    return float(out[KEY_METRIC_FID])


# -- the public entry points -----------------------------------------------------------------------


@dataclass
class Evaluation:
    """What `evaluate` measured: the metrics, the protocol's warnings and the nearest pairs.

    ``nearest`` lists the generated images nearest to a training image, nearest first:
    ``{"sample": index into the scored images, "train": index into dataset.train, "distance",
    "memorised": below the protocol's threshold}``; ``memorisation_threshold`` is that threshold.
    """

    metrics: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    nearest: list[dict[str, Any]] = field(default_factory=list)
    memorisation_threshold: float | None = None


def _check_fake(fake: torch.Tensor, dataset: ImageDataset, protocol: Protocol) -> str:
    """The dataset's fingerprint, after checking the images, the dataset and the count (in that order)."""
    check_images(fake, "generated images")
    fingerprint = _check_dataset(dataset, protocol)
    if tuple(fake.shape[1:]) != tuple(dataset.image_shape):
        got, want = "x".join(map(str, fake.shape[1:])), "x".join(map(str, dataset.image_shape))
        raise DataError(f"generated images are {got} (C x H x W) but {dataset.name} images are {want}")
    fake_order(len(fake), protocol)  # refuses too few, or more without a recorded draw
    return fingerprint


def evaluate(
    fake: torch.Tensor,
    dataset: ImageDataset,
    protocol: Protocol,
    *,
    batch_size: int = 200,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
) -> Evaluation:
    """Every metric of ``protocol`` for generated ``uint8`` images, with warnings and nearest pairs.

    Scores ``protocol.num_fake`` images: all of them, or the protocol's seeded draw from a larger
    source (`fake_order`; ``Evaluation.nearest`` indexes ``fake`` itself); fewer is a
    `MetricsError`, and images whose
    channels or size differ from the dataset's are a `DataError`. The first call for a
    protocol also scores the floor (held-out images), whose nearest-training distances set the
    memorisation threshold; both are cached.
    """
    fingerprint = _check_fake(fake, dataset, protocol)
    real, real_stats = reference_features(
        dataset, protocol, batch_size=batch_size, device=device, progress=progress, fingerprint=fingerprint
    )
    _, threshold = _floor(dataset, protocol, real, real_stats, batch_size=batch_size, device=device, progress=progress)
    held = heldout_stats(dataset, protocol, batch_size=batch_size, device=device, progress=progress)
    picked = fake_order(len(fake), protocol)
    fake_features = backbone_features(
        fake[picked], dataset, protocol,
        batch_size=batch_size, device=device, progress=progress, task="generated features",
    )
    split = gap_split(len(dataset.test), protocol.num_fake, protocol.seed)
    metrics, memo = _evaluate_features(fake_features, real, protocol, real_stats, threshold, held, split.generated)
    pairs = []
    if memo is not None:
        order = reference_order(dataset, protocol)
        for item in memo.suspicious():
            pairs.append({"sample": int(picked[int(item["sample"])]), "train": int(order[int(item["reference"])]),
                          "distance": item["distance"], "memorised": item["memorised"]})
    return Evaluation(metrics, protocol.warnings() + gap_warnings(protocol, split.count), pairs, threshold)


def gap_warnings(protocol: Protocol, count: int) -> list[str]:
    """A warning when the gap's ``count`` images per side are fewer than the feature dimensions
    (each distance's covariance estimate is then singular and the gap mostly noise)."""
    if not protocol.feature_dim or count >= protocol.feature_dim:
        return []
    return [f"gap_{protocol.tag} compares {count:,} images a side in a {protocol.feature_dim}-dimensional feature "
            f"space (half the held-out split at most): it is mostly noise; read it only against its floor"]


def compute_metrics(
    fake: torch.Tensor,
    dataset: ImageDataset,
    protocol: Protocol,
    *,
    batch_size: int = 200,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, float]:
    """The metrics of `evaluate`: keys named for the feature space (``fid_lenet``, ``is_lenet``,
    ``kid_lenet``, ``kid_lenet_std``, ``precision_lenet``, ``density_lenet``, ``memorised_lenet``,
    ``classes_lenet``, ...; ``fd_dinov2`` and no IS for DINOv2/CLIP); see `Protocol.metric_names`."""
    return evaluate(fake, dataset, protocol, batch_size=batch_size, device=device, progress=progress).metrics


def compute_floor(
    dataset: ImageDataset,
    protocol: Protocol,
    *,
    batch_size: int = 200,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """The real-versus-real score: held-out images scored exactly like generated ones (cached on disk).

    What a perfect generator would get under ``protocol``: each metric's mean over
    ``protocol.floor_draws`` random draws (with replacement) of held-out images, plus ``"spread"``
    (``{metric: std over the draws}``) and ``"draws"``. FID's bias at small counts makes it well
    above 0; ``memorised_<b>`` is measured on held-out images that did not set the threshold, so it
    is about, not exactly, the protocol's ``memorisation_quantile``.
    """
    fingerprint = _check_dataset(dataset, protocol)
    real, real_stats = reference_features(
        dataset, protocol, batch_size=batch_size, device=device, progress=progress, fingerprint=fingerprint
    )
    return _floor(dataset, protocol, real, real_stats, batch_size=batch_size, device=device, progress=progress)[0]


def _floor(
    dataset: ImageDataset, protocol: Protocol, real: dict[str, torch.Tensor], real_stats: dict[str, np.ndarray], *,
    batch_size: int, device: torch.device | str | None, progress: ProgressFn | None,
) -> tuple[dict[str, Any], float]:
    """``(floor, memorisation threshold)``, from the cache or computed once per protocol.

    The floor holds each metric's mean over `floor_draws`, plus ``"spread"`` (the standard
    deviation over the draws, ddof=1, per metric) and ``"draws"`` (their number).
    """
    key = f"{protocol.hash}-{protocol.dataset_fingerprint}"
    path = stats_cache.floor_path(protocol.hash)
    cached = stats_cache.load_floor_record(path, key)
    if cached is not None and cached[1] is not None and set(floors.floor_means(cached[0])) == set(protocol.metric_names()):
        return cached[0], cached[1]
    held = backbone_features(
        floor_images(dataset, protocol), dataset, protocol,
        batch_size=batch_size, device=device, progress=progress, task="floor features",
    )
    distances, _ = nearest.nearest_distances(held[protocol.layer("fid")], real[protocol.layer("fid")])
    setting, measuring = memorisation_split(protocol)
    threshold = nearest.memorisation_threshold(distances[setting], protocol.memorisation_quantile)
    memorised = f"memorised_{protocol.tag}"
    heldout = heldout_stats(dataset, protocol, batch_size=batch_size, device=device, progress=progress)
    # The gap's floor: the pool's first k images (gap_split), disjoint from the held-out reference;
    # one draw (a class-mix draw could hold reference images), so it carries no spread.
    gap = f"gap_{protocol.tag}"
    rows = torch.arange(gap_split(len(dataset.test), protocol.num_fake, protocol.seed).count)
    fid_layer = protocol.layer("fid")
    with _blas_threads():  # the gap alone: every other metric of the floor comes from the draws
        fid_real = real_stats or fid_features_to_statistics(real[fid_layer])
        gap_value = generalisation_gap(held[fid_layer][rows], fid_real, heldout)
    generator = torch.Generator().manual_seed(protocol.seed + 2)
    draws = []
    for picked in floor_draws(dataset, protocol):
        values, _ = _evaluate_features({k: v[picked] for k, v in held.items()}, real, protocol, real_stats, threshold)
        # the floor's memorisation share: a draw of the measuring half, which did not set the threshold
        measured = measuring[torch.randint(0, len(measuring), (len(measuring),), generator=generator)]
        values[memorised] = float((distances[measured] < threshold).double().mean())
        values[gap] = gap_value
        draws.append(values)
    floor = floors.summarise(draws)
    floor["spread"].pop(gap, None)  # one draw: no spread (the cache holds finite spreads only)
    stats_cache.save_floor(path, key, floor, threshold)
    return floor, threshold


def _check_version(protocol: Protocol) -> None:
    """Only the current protocol version is computed: an older one named other rules (the floor's
    draw, KID's spread), and numbers computed now would not be what its hash stands for."""
    if protocol.version != PROTOCOL_VERSION:
        raise MetricsError(f"protocol {protocol.hash} is version {protocol.version}; this genzoo computes "
                           f"version {PROTOCOL_VERSION} only (make a new protocol and re-score)")


def nearest_pairs(fake: torch.Tensor, dataset: ImageDataset, pairs: list[dict[str, Any]]) -> torch.Tensor:
    """``uint8 2K x C x H x W``: each of `Evaluation.nearest`'s generated images followed by its
    nearest training image, ready for a 2-column grid (sample | nearest training image)."""
    if not pairs:
        return fake[:0]
    out = []
    for pair in pairs:
        out += [fake[int(pair["sample"])], dataset.train[int(pair["train"])]]
    return torch.stack(out)
