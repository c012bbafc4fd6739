"""Feature backbones: where their weights come from, how they are hashed, how torch-fidelity runs them.

Backbones, all run as torch-fidelity feature extractors (DINOv2 and CLIP are described at the
end of this module: torch-fidelity 0.4's extractors, with local weights for offline machines via
``weights_path`` / ``$ZOO_BACKBONE_WEIGHTS``):

* ``inception``: torch-fidelity's standard ``inception-v3-compat`` (the TensorFlow FID Inception,
  Szegedy et al. 2016; Heusel et al. 2017). Weights come from ``weights_path``, else
  ``$ZOO_INCEPTION_WEIGHTS``, else torch's hub cache, else a download (skipped when
  ``$ZOO_OFFLINE`` is set). torch-fidelity unpickles a weights path fully, so genzoo first loads the
  file with ``weights_only=True`` and hands torch-fidelity only the tensors that passed.
* ``lenet``: genzoo's domain classifier for the MNIST family (`zoo.metrics.lenet`), registered
  with torch-fidelity as ``genzoo-lenet``: penultimate features for FID/KID/PR, logits for IS. The
  ``mnist-5k`` weights ship in ``zoo/assets``; for any other labelled dataset it is trained on first
  use, deterministically, and cached under ``$ZOO_CACHE_DIR/backbones`` keyed by the dataset's
  labelled fingerprint (images and labels) and the training recipe.
* ``simclr``: a small self-supervised encoder (`zoo.metrics.simclr`), registered as
  ``genzoo-simclr``, trained on first use on the dataset's own training split (no labels, no
  download) and cached under ``$ZOO_CACHE_DIR/backbones`` keyed by the dataset's content
  fingerprint and the recipe; its 64 pooled features feed every metric (no IS).

Training a backbone says first how long it will take and where it is cached
(`zoo.metrics.training_notice`). Every backbone is identified in a protocol by the SHA-256 of its weight file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch_fidelity import FeatureExtractorBase
from torch_fidelity.helpers import vassert

from zoo.data import ImageDataset
from zoo.errors import MetricsError, ProtocolChoiceError
from zoo.metric_names import CLIP_BACKBONES, DINOV2_BACKBONES
from zoo.metrics import lenet as lenet_mod
from zoo.metrics import simclr as simclr_mod
from zoo.metrics.stats_cache import CacheWarning, cache_dir
from zoo.metrics.training_notice import TrainingClock

LENET_EXTRACTOR = "genzoo-lenet"
SIMCLR_EXTRACTOR = "genzoo-simclr"
INCEPTION_EXTRACTOR = "inception-v3-compat"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
#: Shipped weights: dataset name -> file in ``zoo/assets`` (trained by ``scripts/train_lenet.py``).
SHIPPED_LENET = {"mnist-5k": ASSETS / "lenet-mnist-5k.safetensors"}
#: The labelled fingerprint of the data each shipped file was trained on. The file's metadata names
#: only the images' fingerprint (it predates labels in the identity); the weights serve a dataset
#: only when both match, so a relabelled copy of mnist-5k trains its own classifier.
SHIPPED_LENET_LABELLED = {"mnist-5k": "4940c53b0f1bdf7d"}
INCEPTION_ENV = "ZOO_INCEPTION_WEIGHTS"
#: Local weights for the DINOv2 / CLIP backbone chosen (offline machines); ``--backbone-weights``.
BACKBONE_ENV = "ZOO_BACKBONE_WEIGHTS"
#: A local copy of the facebookresearch/dinov2 code (its hubconf.py builds the network).
DINOV2_REPO_ENV = "ZOO_DINOV2_REPO"
OFFLINE_ENV = "ZOO_OFFLINE"


@dataclass(frozen=True)
class BackboneWeights:
    """A resolved backbone: the torch-fidelity extractor name and the exact weights it will use."""

    backbone: str
    feature_extractor: str
    path: Path
    sha256: str
    layers: dict[str, str]  # torch-fidelity metric ("isc", "fid", "kid", "prc") -> feature layer
    resize: str
    feature_dim: int = 0  # width of the FID/KID/PR layer
    num_classes: int = 0  # classes of a domain classifier (mode coverage); 0 for generic backbones


def default_backbone(dataset: ImageDataset) -> str:
    """The backbone the dataset declares (``DatasetSpec.backbone``, kept in ``info["backbone"]``);
    else the domain classifier for labelled gray data (the MNIST family, trained on the dataset's own
    labels), Inception-v3 otherwise. Gray data without labels gets Inception-v3 with a warning,
    never the MNIST LeNet."""
    declared = dataset.info.get("backbone")
    if declared:
        return str(declared)
    labelled = dataset.train_labels is not None and dataset.num_classes is not None
    if dataset.image_shape[0] == 1 and not labelled:
        warnings.warn(f"{dataset.name}: gray images without labels are scored with Inception-v3 (the lenet backbone "
                      "needs labels to train on); --backbone simclr trains a label-free feature space on the data "
                      "instead, and a dataset plugin can name its backbone with DatasetSpec(backbone=...)",
                      UserWarning, stacklevel=2)
    return "lenet" if labelled and dataset.image_shape[0] == 1 else "inception"


def resolve_backbone(
    name: str, dataset: ImageDataset, *, weights_path: str | os.PathLike[str] | None = None, progress: Any = None
) -> BackboneWeights:
    if name == "lenet":
        return _resolve_lenet(dataset, weights_path, progress)
    if name == "inception":
        return _resolve_inception(weights_path)
    if name == "simclr":
        return _resolve_simclr(dataset, weights_path, progress)
    if name in DINOV2_BACKBONES:
        return _resolve_dinov2(name, weights_path)
    if name in CLIP_BACKBONES:
        return _resolve_clip(name, weights_path)
    raise MetricsError(f"unknown backbone {name!r}")


def weights_digest(backbone: str, path: str | os.PathLike[str]) -> str:
    """The weights hash a protocol records: the tensors' content hash for lenet, the file's SHA-256 for inception."""
    st = os.stat(path)
    return _digest_cached(backbone, str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16)
def _digest_cached(backbone: str, path: str, _size: int, _mtime_ns: int) -> str:
    if backbone == "lenet":
        return lenet_mod.weights_digest(path)
    if backbone == "simclr":
        return simclr_mod.weights_digest(path)
    return file_sha256(path)


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- lenet --------------------------------------------------------------------------------------

LENET_LAYERS = {"isc": "logits", "fid": "penultimate", "kid": "penultimate", "prc": "penultimate"}
#: The recipe for weights trained on first use (the shipped mnist-5k weights use the same one).
DEFAULT_RECIPE = lenet_mod.Recipe()


def _lenet_weights(path: Path) -> BackboneWeights:
    meta = lenet_mod.read_metadata(path)
    size = int(meta.get("input_size", 28))
    resize = f"channel mean, bilinear antialiased to {size}x{size} when the images differ (genzoo LeNet input)"
    return BackboneWeights("lenet", LENET_EXTRACTOR, path, weights_digest("lenet", path), dict(LENET_LAYERS), resize,
                           feature_dim=int(meta.get("feature_dim", 128)), num_classes=int(meta.get("num_classes", 10)))


def lenet_cache_path(dataset: ImageDataset, recipe: lenet_mod.Recipe, fingerprint: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.identity_name)[-60:]
    return cache_dir() / "backbones" / f"lenet-{safe}-{fingerprint}-{recipe.digest()}.safetensors"


def _shipped_lenet(dataset: ImageDataset) -> Path | None:
    """The shipped weights for ``dataset`` if they were trained on exactly its images and labels
    (not, say, a resized or relabelled copy); else None."""
    shipped = SHIPPED_LENET.get(dataset.name)
    if shipped is None or not shipped.is_file():
        return None
    meta = lenet_mod.read_metadata(shipped)
    if meta.get("dataset_fingerprint") != dataset.fingerprint():
        return None
    labelled = meta.get("labelled_fingerprint") or SHIPPED_LENET_LABELLED.get(dataset.name)
    return shipped if labelled == dataset.labelled_fingerprint() else None


def check_lenet_labels(dataset: ImageDataset) -> None:
    """`ProtocolChoiceError` (exit 2) when ``dataset`` has no labels to train the lenet backbone on."""
    if dataset.train_labels is None or dataset.num_classes is None:
        raise ProtocolChoiceError(
            f"the lenet backbone is trained on labelled data and {dataset.name} has no labels; use --backbone simclr "
            "(label-free, trained on the data, offline) or --backbone inception"
        )


def _resolve_lenet(dataset: ImageDataset, weights_path: Any, progress: Any) -> BackboneWeights:
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise MetricsError(f"lenet weights file {path} not found")
        return _lenet_weights(path)
    check_lenet_labels(dataset)
    shipped = _shipped_lenet(dataset)
    if shipped is not None:
        return _lenet_weights(shipped)
    fingerprint = dataset.labelled_fingerprint()  # labels train it: relabelled data is another net
    recipe = DEFAULT_RECIPE
    path = lenet_cache_path(dataset, recipe, fingerprint)
    if path.is_file():
        try:
            if lenet_mod.read_metadata(path).get("labelled_fingerprint") == fingerprint:
                lenet_mod.load_weights(path)  # refuses truncated or mismatched files
                return _lenet_weights(path)
            raise MetricsError("dataset fingerprint mismatch")
        except MetricsError as exc:
            warnings.warn(f"ignoring corrupt cached lenet weights {path} ({exc}); retraining", CacheWarning, stacklevel=2)
    return _lenet_weights(train_lenet_for(dataset, path, recipe, progress=progress))


def train_lenet_for(
    dataset: ImageDataset, path: Path, recipe: lenet_mod.Recipe | None = None, *, progress: Any = None
) -> Path:
    """Train the domain classifier on ``dataset``'s train split and save it (with test accuracy) to ``path``."""
    if dataset.train_labels is None or dataset.num_classes is None:
        raise MetricsError(f"cannot train the lenet backbone on {dataset.name}: it has no labels")
    recipe = recipe or DEFAULT_RECIPE
    clock = TrainingClock(f"the lenet backbone on {dataset.name} ({len(dataset.train):,} images, {recipe.steps:,} steps)",
                          path, "training lenet backbone", progress)
    net = lenet_mod.train_lenet(dataset.train, dataset.train_labels, dataset.num_classes, recipe, progress=clock)
    acc = None
    if dataset.test_labels is not None:
        acc = lenet_mod.accuracy(net, dataset.test, dataset.test_labels)
    meta = {
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(),
        "labelled_fingerprint": dataset.labelled_fingerprint(),
        "train_images": len(dataset.train),
        "recipe": asdict(recipe),
        "test_accuracy": "" if acc is None else f"{acc:.4f}",
        "test_images": len(dataset.test),
        "torch_version": torch.__version__,
    }
    return lenet_mod.save_weights(net, path, meta)


class LeNetFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity wrapper around `zoo.metrics.lenet.LeNet` (weights from a safetensors file)."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: Any = None, **kwargs: Any):
        super().__init__(name, features_list)
        vassert(feature_extractor_weights_path is not None, f"{name} needs feature_extractor_weights_path")
        self.net = lenet_mod.load_weights(feature_extractor_weights_path)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("penultimate", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return LENET_LAYERS[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, 28, 28, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with dtype=torch.uint8")
        features, logits = self.net(x)
        out = {"penultimate": features, "logits": logits}
        return tuple(out[k].float() for k in self.features_list)


def register_extractors() -> None:
    """Register genzoo's extractors with torch-fidelity once (its registry refuses duplicates)."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if LENET_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(LENET_EXTRACTOR, LeNetFeatureExtractor)
    if SIMCLR_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(SIMCLR_EXTRACTOR, SimCLRFeatureExtractor)


# -- simclr -------------------------------------------------------------------------------------

SIMCLR_LAYERS = {m: "features" for m in ("isc", "fid", "kid", "prc")}
#: The recipe for encoders trained on first use; tests swap in a tiny one.
SIMCLR_RECIPE = simclr_mod.Recipe()


def simclr_cache_path(dataset: ImageDataset, recipe: simclr_mod.Recipe) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.identity_name)[-60:]
    return cache_dir() / "backbones" / f"simclr-{safe}-{dataset.fingerprint()}-{recipe.digest()}.safetensors"


def _simclr_weights(path: Path) -> BackboneWeights:
    meta = simclr_mod.read_metadata(path)
    size = int(meta.get("input_size", 32))
    resize = (f"gray or RGB as the encoder's channels (alpha dropped), bilinear antialiased to {size}x{size} "
              "(genzoo SimCLR input)")
    return BackboneWeights("simclr", SIMCLR_EXTRACTOR, path, weights_digest("simclr", path), dict(SIMCLR_LAYERS),
                           resize, feature_dim=int(meta.get("feature_dim", 64)))


def _resolve_simclr(dataset: ImageDataset, weights_path: Any, progress: Any) -> BackboneWeights:
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise MetricsError(f"simclr weights file {path} not found")
        return _simclr_weights(path)
    recipe = SIMCLR_RECIPE
    path = simclr_cache_path(dataset, recipe)
    if path.is_file():
        try:
            if simclr_mod.read_metadata(path).get("dataset_fingerprint") == dataset.fingerprint():
                simclr_mod.load_weights(path)  # refuses truncated or mismatched files
                return _simclr_weights(path)
            raise MetricsError("dataset fingerprint mismatch")
        except MetricsError as exc:
            warnings.warn(f"ignoring corrupt cached simclr weights {path} ({exc}); retraining", CacheWarning, stacklevel=2)
    return _simclr_weights(train_simclr_for(dataset, path, recipe, progress=progress))


def train_simclr_for(
    dataset: ImageDataset, path: Path, recipe: simclr_mod.Recipe | None = None, *, progress: Any = None
) -> Path:
    """Train the simclr encoder on ``dataset``'s train split (no labels) and save it to ``path``."""
    import time

    recipe = recipe or SIMCLR_RECIPE
    clock = TrainingClock(f"the simclr backbone on {dataset.name} ({len(dataset.train):,} images, "
                          f"{recipe.steps:,} steps)", path, "training simclr backbone", progress)
    start = time.perf_counter()
    enc = simclr_mod.train_encoder(dataset.train, recipe, progress=clock)
    meta = {
        "dataset": dataset.identity_name,
        "dataset_fingerprint": dataset.fingerprint(),
        "train_images": len(dataset.train),
        "recipe": asdict(recipe),
        "train_seconds": f"{time.perf_counter() - start:.1f}",
        "torch_version": torch.__version__,
    }
    return simclr_mod.save_weights(enc, path, meta)


class SimCLRFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity wrapper around `zoo.metrics.simclr.Encoder` (weights from a safetensors file)."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: Any = None, **kwargs: Any):
        super().__init__(name, features_list)
        vassert(feature_extractor_weights_path is not None, f"{name} needs feature_extractor_weights_path")
        self.net = simclr_mod.load_weights(feature_extractor_weights_path)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return SIMCLR_LAYERS[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with dtype=torch.uint8")
        return tuple(self.net(x).float() for _ in self.features_list)


# -- inception ----------------------------------------------------------------------------------

INCEPTION_LAYERS = {"isc": "logits_unbiased", "fid": "2048", "kid": "2048", "prc": "2048"}
INCEPTION_RESIZE = "torch-fidelity TF1-compatible bilinear to 299x299 (gray repeated to RGB)"


def _inception_url() -> str:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def inception_hub_path() -> Path:
    """Where torch (and so torch-fidelity) keeps the downloaded Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_inception_url())


def _resolve_inception(weights_path: Any) -> BackboneWeights:
    explicit = weights_path or os.environ.get(INCEPTION_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise MetricsError(f"Inception weights file {path} not found")
    else:
        path = inception_hub_path()
        if not path.is_file():
            _download_inception(path)
    sha = weights_digest("inception", path)
    return BackboneWeights("inception", INCEPTION_EXTRACTOR, path, sha, dict(INCEPTION_LAYERS), INCEPTION_RESIZE,
                           feature_dim=2048)


def _download_inception(path: Path) -> None:
    hint = (
        f"download torch-fidelity's {path.name} on a machine with internet and pass "
        f"--inception-weights PATH or set {INCEPTION_ENV}=PATH; or, offline, --backbone simclr (a label-free "
        "feature space trained on the data itself; its numbers are not Inception's)"
    )
    if os.environ.get(OFFLINE_ENV):
        raise MetricsError(f"Inception weights not available offline ({OFFLINE_ENV} is set); {hint}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(_inception_url(), str(path), progress=False)
    except Exception as exc:
        path.unlink(missing_ok=True)
        raise MetricsError(f"Inception weights not available offline ({type(exc).__name__}); {hint}") from None


def safe_inception_state(path: Path) -> io.BytesIO:
    """The weight file's tensors, loaded with ``weights_only=True``, re-serialised for torch-fidelity.

    torch-fidelity calls ``torch.load(path, weights_only=False)``, which would run any code pickled
    into the file; handing it these re-saved plain tensors instead keeps the load safe.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MetricsError(f"Inception weights {path} are corrupt or not a plain state dict ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MetricsError(f"Inception weights {path} are not a state dict of tensors")
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


# -- building extractors ---------------------------------------------------------------------------


def create_extractor(feature_extractor: str, path: str | os.PathLike[str], layers: tuple[str, ...], device: torch.device) -> FeatureExtractorBase:
    """A torch-fidelity feature extractor in eval mode on ``device`` producing ``layers``."""
    from torch_fidelity.utils import create_feature_extractor

    register_extractors()
    weights: Any = safe_inception_state(Path(path)) if feature_extractor == INCEPTION_EXTRACTOR else str(path)
    if feature_extractor in GENZOO_DINOV2.values():
        register_dinov2()
    try:
        extractor = create_feature_extractor(
            feature_extractor, list(layers), cuda=False, verbose=False, feature_extractor_weights_path=weights
        )
    except Exception as exc:  # torch-fidelity's vassert (ValueError), bad files, hub code errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MetricsError(f"cannot build the {feature_extractor} feature extractor from {path}: {first}") from None
    return extractor.to(device)


# -- DINOv2 and CLIP (torch-fidelity 0.4's extractors) ---------------------------------------------

#: Feature widths (torch-fidelity's MODEL_METADATA comments; CLIP's embedding sizes).
FEATURE_DIMS = {
    "dinov2-vit-s-14": 384, "dinov2-vit-b-14": 768, "dinov2-vit-l-14": 1024, "dinov2-vit-g-14": 1536,
    "clip-rn50": 1024, "clip-rn101": 512, "clip-rn50x4": 640, "clip-rn50x16": 768, "clip-rn50x64": 1024,
    "clip-vit-b-32": 512, "clip-vit-b-16": 512, "clip-vit-l-14": 768, "clip-vit-l-14-336px": 768,
}
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/{model}/{model}_pretrain.pth"
#: genzoo's DINOv2 extractors (torch-fidelity's own cannot load local weights: NotImplementedError).
GENZOO_DINOV2 = {name: f"genzoo-{name}" for name in DINOV2_BACKBONES}


def _hub_model(name: str) -> str:
    from torch_fidelity.feature_extractor_dinov2 import MODEL_METADATA

    return MODEL_METADATA[name]


def dinov2_repo() -> Path:
    """``$ZOO_DINOV2_REPO`` or torch's hub copy of facebookresearch/dinov2 (``hubconf.py`` inside)."""
    env = os.environ.get(DINOV2_REPO_ENV)
    return Path(env).expanduser() if env else Path(torch.hub.get_dir()) / "facebookresearch_dinov2_main"


def _offline_hint(name: str, filename: str) -> str:
    return (f"download {filename} on a machine with internet (run any --backbone {name} evaluation there once) "
            f"and pass --backbone-weights PATH or set {BACKBONE_ENV}=PATH")


def _explicit_weights(name: str, weights_path: Any) -> Path | None:
    explicit = weights_path or os.environ.get(BACKBONE_ENV)
    if not explicit:
        return None
    path = Path(explicit).expanduser()
    if not path.is_file():
        raise MetricsError(f"{name} weights file {path} not found")
    return path


def _resolve_dinov2(name: str, weights_path: Any) -> BackboneWeights:
    model = _hub_model(name)
    filename = f"{model}_pretrain.pth"
    path = _explicit_weights(name, weights_path) or Path(torch.hub.get_dir()) / "checkpoints" / filename
    repo = dinov2_repo()
    offline = os.environ.get(OFFLINE_ENV)
    if not path.is_file() or not (repo / "hubconf.py").is_file():
        hint = _offline_hint(name, filename) + f", with the facebookresearch/dinov2 code in {repo} (or ${DINOV2_REPO_ENV})"
        if offline:
            raise MetricsError(f"{name} weights not available offline ({OFFLINE_ENV} is set); {hint}")
        try:
            if not (repo / "hubconf.py").is_file():
                torch.hub.load("facebookresearch/dinov2", model, pretrained=False, trust_repo=True)
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(DINOV2_URL.format(model=model), str(path), progress=False)
        except Exception as exc:
            raise MetricsError(f"{name} weights not available offline ({type(exc).__name__}); {hint}") from None
    resize = "torch-fidelity TF1-compatible bilinear to 224x224, ImageNet mean/std (gray repeated to RGB)"
    return BackboneWeights(name, GENZOO_DINOV2[name], path, weights_digest(name, path),
                           {m: "dinov2" for m in ("isc", "fid", "kid", "prc")}, resize, feature_dim=FEATURE_DIMS[name])


def _resolve_clip(name: str, weights_path: Any) -> BackboneWeights:
    from torch_fidelity.feature_extractor_clip import MODEL_METADATA, MODEL_URLS

    expected = MODEL_METADATA[name]["hash"]
    filename = f"{name}-{expected}.pt"  # where torch-fidelity itself caches it
    path = _explicit_weights(name, weights_path) or Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        hint = _offline_hint(name, filename)
        if os.environ.get(OFFLINE_ENV):
            raise MetricsError(f"{name} weights not available offline ({OFFLINE_ENV} is set); {hint}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(MODEL_URLS[name], str(path), hash_prefix=expected, progress=False)
        except Exception as exc:
            path.unlink(missing_ok=True)
            raise MetricsError(f"{name} weights not available offline ({type(exc).__name__}); {hint}") from None
    resize = "torch-fidelity TF1-compatible bilinear to the CLIP input size, CLIP mean/std (gray repeated to RGB)"
    return BackboneWeights(name, name, path, weights_digest(name, path),
                           {m: "clip" for m in ("isc", "fid", "kid", "prc")}, resize, feature_dim=FEATURE_DIMS[name])


def _dinov2_extractor_class() -> type:
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

    class GenzooDinoV2(FeatureExtractorDinoV2):
        """torch-fidelity's DINOv2 extractor (same resize, normalisation and output), built from local
        code and weights: the network from ``hubconf.py`` of `dinov2_repo` with
        ``pretrained=False``, the weights loaded with ``weights_only=True``."""

        def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: Any = None, **kwargs: Any):
            FeatureExtractorBase.__init__(self, name, features_list)
            vassert(feature_extractor_weights_path is not None, f"{name} needs feature_extractor_weights_path")
            self.feature_extractor_internal_dtype = torch.float32
            hub_name = name.removeprefix("genzoo-")
            os.environ.setdefault("XFORMERS_DISABLED", "1")
            self.model = torch.hub.load(str(dinov2_repo()), _hub_model(hub_name), source="local", pretrained=False)
            state = torch.load(feature_extractor_weights_path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state, strict=True)
            self.requires_grad_(False)
            self.eval()

    return GenzooDinoV2


def register_dinov2() -> None:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    cls = None
    for extractor in GENZOO_DINOV2.values():
        if extractor not in FEATURE_EXTRACTORS_REGISTRY:
            cls = cls or _dinov2_extractor_class()
            register_feature_extractor(extractor, cls)
