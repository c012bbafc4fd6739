"""The evaluation protocol: everything that changes a metric's value, frozen and hashed.

FID and friends are not absolute numbers: they move with the sample counts (FID is biased by the
number of samples), the feature backbone and its weights, the resize in front of it, the metric
library and the random draws. A `Protocol` names all of them; its `Protocol.hash` is
recorded with every result, and only results with the same hash may be compared or ranked.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from zoo.data import ImageDataset
from zoo.errors import MetricsError, ProtocolChoiceError, UnknownNameError
from zoo.metric_names import BACKBONES, higher_is_better, metric_tag, protocol_warnings

#: 2: density/coverage (k), memorisation quantile, mode coverage, feature width, metric tag.
#: 3: the floor is the mean and spread of ``floor_draws`` draws with a random class mix (not the
#: class-stratified split); the memorisation threshold is set on half of the held-out split and the floor's share
#: measured on the other half; ``kid_<b>_std`` is a bootstrap over the generated images.
PROTOCOL_VERSION = 3
#: Draws of the floor (each ``num_fake`` held-out images with a random class mix).
FLOOR_DRAWS = 5
FLOOR_RULE = ("class mix: counts multinomial over the pool's class shares, each class drawn without "
              "replacement (with, past its count); floor_draws draws, mean and std")
MEMORISATION_SPLIT = "half: threshold from randperm(held-out, seed)[:n//2], floor measured on the rest"
KID_STD_RULE = "bootstrap: std of the all-pairs unbiased MMD^2 over 100 resamples of the generated images"
#: The standard sample counts (50k reference images, 10k generated), capped by the data available.
DEFAULT_NUM_REAL = 50_000
DEFAULT_NUM_FAKE = 10_000
MIN_IMAGES = 10
#: How a protocol picks ``num_fake`` images from a source holding more (a folder, an array): a
#: seeded draw over the whole source, never file order (a class-sorted folder would be scored on
#: its first classes only). Recorded as `Protocol.fake_draw` only where it applies.
FAKE_DRAW_RULE = "random: randperm(source images, seed)[:num_fake]"


@dataclass(frozen=True)
class Protocol:
    """One way of measuring: two results are comparable only if their protocols hash the same.

    The reference set is ``num_real`` images of the ``reference_split`` (the training split, as in
    the usual "FID against the training images"), drawn with ``seed``; generated sets are scored
    against it with ``num_fake`` images. The *floor* scores ``num_fake`` images of the held-out
    ``floor_split`` the same way: what a perfect generator would get at these counts.
    """

    dataset: str
    dataset_fingerprint: str
    image_shape: tuple[int, int, int]
    reference_split: str
    floor_split: str
    num_real: int
    num_fake: int
    backbone: str
    feature_extractor: str
    weights_sha256: str
    feature_layers: tuple[tuple[str, str], ...]
    resize: str
    isc_splits: int
    kid_subsets: int
    kid_subset_size: int
    prc_neighborhood: int
    torch_fidelity_version: str
    seed: int
    #: The feature space's name in result keys (``fid_lenet``, ``fd_dinov2``).
    metric_tag: str = ""
    #: Width of the FID/KID/PR/density features (FID needs at least this many images per side).
    feature_dim: int = 0
    #: k of density and coverage (Naeem et al. 2020).
    prdc_neighborhood: int = 5
    #: Held-out quantile of nearest-training distances below which a sample counts as memorised.
    memorisation_quantile: float = 0.01
    #: Classes of the domain classifier (0: no mode coverage) and the share a class needs to count.
    num_classes: int = 0
    mode_min_share: float = 0.0
    #: `FAKE_DRAW_RULE` when the scored source holds more than ``num_fake`` images, else
    #: ``""`` (every image, as given); in the identity only when set, so no other hash moves.
    fake_draw: str = ""
    #: How the floor is drawn (`FLOOR_RULE`) and how many draws it averages (version 3).
    floor_rule: str = FLOOR_RULE
    floor_draws: int = FLOOR_DRAWS
    #: Which held-out images set the memorisation threshold and which measure the floor's share.
    memorisation_split: str = MEMORISATION_SPLIT
    #: What ``kid_<b>_std`` is (`KID_STD_RULE`).
    kid_std: str = KID_STD_RULE
    version: int = PROTOCOL_VERSION
    #: Where this machine found the backbone weights; not part of the identity (the hash is).
    weights_path: str | None = field(default=None, compare=False, repr=False)

    def identity(self) -> dict[str, Any]:
        """The fields that define the protocol (everything but the local weights path)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "weights_path"}
        if not self.fake_draw:
            del out["fake_draw"]
        if self.version < 3:  # an older record keeps the hash it was stored with
            out = {k: v for k, v in out.items() if k not in _V3_FIELDS}
        if self.version < 2:
            out = {k: v for k, v in out.items() if k in _V1_FIELDS}
        out["image_shape"] = list(self.image_shape)
        out["feature_layers"] = dict(self.feature_layers)
        return out

    @property
    def hash(self) -> str:
        """12 hex digits of a SHA-256 over the canonical JSON of `identity`."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return self.metric_tag or self.backbone

    @property
    def has_isc(self) -> bool:
        """IS needs class logits: the domain classifier's or Inception's, not DINOv2's or CLIP's embeddings."""
        return self.backbone in ("lenet", "inception")

    @property
    def primary_metric(self) -> str:
        """The metric results are ranked by (lower is better): FID for lenet/Inception, FD otherwise."""
        return f"{'fid' if self.has_isc else 'fd'}_{self.tag}"

    def reference_identity(self) -> dict[str, Any]:
        """What the reference features (and their k-NN radii) depend on: not ``num_fake`` and the
        settings only generated sets use, so another ``--num-fake`` reuses the cached features."""
        skip = {"num_fake", "kid_subset_size", "kid_subsets", "isc_splits", "prc_neighborhood",
                "memorisation_quantile", "mode_min_share", "floor_split", *_V3_FIELDS}
        return {k: v for k, v in self.identity().items() if k not in skip}

    @property
    def reference_hash(self) -> str:
        text = json.dumps(self.reference_identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def layer(self, metric: str) -> str:
        """The backbone layer a torch-fidelity metric (``isc``, ``fid``, ``kid``, ``prc``) uses."""
        return dict(self.feature_layers)[metric]

    def metric_names(self) -> list[str]:
        """Every key `zoo.metrics.compute_metrics` returns under this protocol."""
        b = self.tag
        names = [self.primary_metric]
        if self.has_isc:
            names += [f"is_{b}", f"is_{b}_std"]
        names += [f"kid_{b}", f"kid_{b}_std", f"precision_{b}", f"recall_{b}", f"density_{b}", f"coverage_{b}",
                  f"memorised_{b}"]
        if self.num_classes:
            names += [f"classes_{b}", f"kl_classes_{b}"]
        return names + [f"vendi_{b}", f"gap_{b}"]

    def warnings(self) -> list[str]:
        """Where a number of this protocol is unreliable, and what to change (see `zoo.metric_names.protocol_warnings`)."""
        return protocol_warnings(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"hash": self.hash, "primary_metric": self.primary_metric, **self.identity()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protocol:
        """Rebuild a protocol from `to_dict`; a stated hash must match the fields."""
        try:
            kwargs = {f.name: data[f.name] for f in fields(cls) if f.name in data and f.name != "weights_path"}
            kwargs["image_shape"] = tuple(kwargs["image_shape"])
            kwargs["feature_layers"] = tuple(sorted(dict(kwargs["feature_layers"]).items()))
            if int(kwargs.get("version", 1)) < 2:  # version 1 had none of the version-2 fields
                kwargs = {k: v for k, v in kwargs.items() if k in _V1_FIELDS}
            if int(kwargs.get("version", 1)) < 3:  # nor version 2 any of version 3's
                kwargs = {k: v for k, v in kwargs.items() if k not in _V3_FIELDS}
            protocol = cls(**kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            raise MetricsError(f"not a valid protocol record ({type(exc).__name__}: {exc})") from None
        if "hash" in data and data["hash"] != protocol.hash:
            raise MetricsError(f"protocol record hash {data['hash']} does not match its fields ({protocol.hash})")
        return protocol


_V1_FIELDS = {
    "dataset", "dataset_fingerprint", "image_shape", "reference_split", "floor_split", "num_real", "num_fake",
    "backbone", "feature_extractor", "weights_sha256", "feature_layers", "resize", "isc_splits", "kid_subsets",
    "kid_subset_size", "prc_neighborhood", "torch_fidelity_version", "seed", "version",
}

#: Fields added by version 3 (the floor's draws, the memorisation split, KID's spread).
_V3_FIELDS = {"floor_rule", "floor_draws", "memorisation_split", "kid_std"}

metric_higher_is_better = higher_is_better  # kept for callers of the 0.1 API


def default_counts(dataset: ImageDataset) -> tuple[int, int]:
    """``(num_real, num_fake)``: 50k / 10k capped by the train / held-out split sizes."""
    return min(len(dataset.train), DEFAULT_NUM_REAL), min(len(dataset.test), DEFAULT_NUM_FAKE)


def make_protocol(
    dataset: ImageDataset,
    *,
    num_real: int | None = None,
    num_fake: int | None = None,
    backbone: str = "auto",
    seed: int = 0,
    weights_path: str | None = None,
    inception_weights: str | None = None,
    progress: Any = None,
    source_images: int | None = None,
) -> Protocol:
    """Fix the protocol for ``dataset``: counts, backbone (and its weights' hash), seed.

    This is the one place a backbone is chosen: ``backbone="auto"`` picks the domain classifier for
    labelled gray data (the MNIST family) and Inception-v3 otherwise; ``dinov2-vit-*-14`` and
    ``clip-*`` name torch-fidelity's DINOv2 / CLIP extractors (metrics ``fd_dinov2``, ...). Raises
    `MetricsError` with one line when weights are unavailable offline. ``weights_path`` is a
    local weight file for the chosen backbone; ``inception_weights`` is used only when the choice is
    Inception (so callers can pass a user's ``--inception-weights`` without knowing the choice).
    Resolving the backbone may train the domain classifier on first use (cached) or look up
    Inception weights (``$ZOO_INCEPTION_WEIGHTS``, torch's hub cache, or a download);
    ``progress(task, done, total)`` reports that work. ``source_images``: how many images the
    scored source holds when it is given up front (a folder, an array); above ``num_fake`` the
    protocol records `FAKE_DRAW_RULE` and `zoo.metrics.evaluate` scores that draw.
    """
    import torch_fidelity

    from zoo.metrics.backbones import default_backbone, resolve_backbone
    from zoo.metrics.nearest import MEMORISATION_QUANTILE, PRDC_NEIGHBORHOOD

    name = default_backbone(dataset) if backbone == "auto" else backbone
    if name not in BACKBONES:
        raise UnknownNameError("metrics backbone", backbone, ["auto", *BACKBONES])
    default_real, default_fake = default_counts(dataset)
    num_real = default_real if num_real is None else int(num_real)
    num_fake = default_fake if num_fake is None else int(num_fake)
    if not MIN_IMAGES <= num_real <= len(dataset.train):
        raise ProtocolChoiceError(
            f"num_real must be between {MIN_IMAGES} and the {len(dataset.train)} images of {dataset.name}'s train split, got {num_real}"
        )
    if not MIN_IMAGES <= num_fake <= len(dataset.test):
        raise ProtocolChoiceError(
            f"num_fake must be between {MIN_IMAGES} and the {len(dataset.test)} held-out images of {dataset.name} "
            f"(the floor scores that many real images), got {num_fake}"
        )
    if weights_path is None and name == "inception":
        weights_path = inception_weights
    if num_real <= PRDC_NEIGHBORHOOD:
        raise ProtocolChoiceError(f"num_real must exceed density/coverage's k={PRDC_NEIGHBORHOOD}, got {num_real}")
    weights = resolve_backbone(name, dataset, weights_path=weights_path, progress=progress)
    return Protocol(
        dataset=dataset.identity_name,  # content, not spelling, for datasets named by a path
        dataset_fingerprint=dataset.fingerprint(),
        image_shape=dataset.image_shape,
        reference_split="train",
        floor_split="test",
        num_real=num_real,
        num_fake=num_fake,
        backbone=name,
        feature_extractor=weights.feature_extractor,
        weights_sha256=weights.sha256,
        feature_layers=tuple(sorted(weights.layers.items())),
        resize=weights.resize,
        isc_splits=10,
        kid_subsets=100,
        # KID draws subsets without replacement from both sets: it cannot exceed the smaller one.
        kid_subset_size=min(1000, num_real, num_fake),
        prc_neighborhood=3,
        torch_fidelity_version=torch_fidelity.__version__,
        seed=int(seed),
        metric_tag=metric_tag(name),
        feature_dim=weights.feature_dim,
        prdc_neighborhood=PRDC_NEIGHBORHOOD,
        memorisation_quantile=MEMORISATION_QUANTILE,
        num_classes=weights.num_classes,
        # A class counts as covered with a tenth of its share under a uniform class histogram.
        mode_min_share=round(0.1 / weights.num_classes, 6) if weights.num_classes else 0.0,
        fake_draw=FAKE_DRAW_RULE if source_images is not None and source_images > num_fake else "",
        weights_path=str(weights.path),
    )
