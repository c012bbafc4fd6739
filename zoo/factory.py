"""The one place models and datasets are built from names: ``create_model`` (like timm's) and
``load_dataset``.

Every construction site (``zoo train``, resume, checkpoint loading, the contract kit, the benchmark
runner) goes through `create_model`, so config validation and error wording are the same
everywhere: a bad override is one [`ConfigError`][zoo.errors.ConfigError] line naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from zoo.data import DEFAULT_DATASET, MAX_IMAGE_SIDE, ImageDataset, resize_dataset
from zoo.errors import CheckpointError, ConfigError, DataError, ZooError
from zoo.model import GenerativeModel
from zoo.registry import Registry, get_registry

# MAX_IMAGE_SIDE (zoo.data): a checkpoint claiming larger images is refused before anything is built


def resolve(name_or_class: str | type[GenerativeModel], registry: Registry | None = None,
            ) -> tuple[type[GenerativeModel], dict[str, Any]]:
    """``(class, variant overrides)`` for a model name, variant name or class."""
    cls, overrides, _ = _resolve(name_or_class, registry)
    return cls, overrides


def _resolve(name_or_class: str | type[GenerativeModel], registry: Registry | None,
             ) -> tuple[type[GenerativeModel], dict[str, Any], str]:
    if isinstance(name_or_class, str):
        entry = (registry or get_registry()).entry(name_or_class)
        return entry.cls, entry.overrides, entry.model_name or entry.cls.name
    return name_or_class, {}, name_or_class.name


def create_model(
    name_or_class: str | type[GenerativeModel],
    image_shape: Sequence[int],
    overrides: Mapping[str, Any] | None = None,
    state: Mapping[str, torch.Tensor] | None = None,
    *,
    registry: Registry | None = None,
) -> GenerativeModel:
    """Build a model: defaults, then the variant's overrides, then ``overrides``, then ``state``.

    Args:
        name_or_class: a registered model or variant name (``"ddpm"``, ``"ddpm-small"``, or
            ``"plugin:model"`` for a model whose name another plugin took first) or a
            [`GenerativeModel`][zoo.GenerativeModel] subclass (a plugin's own tests may pass an
            unregistered class).
        image_shape: ``(C, H, W)`` of the images the model makes.
        overrides: config fields to change; strings are parsed to the field's type, so
            ``{"lr": "1e-4"}`` works. A complete config dict (from a checkpoint) is accepted too.
        state: a ``state_dict`` to load (weights, EMA, buffers).
        registry: where names are looked up (default: the process-wide registry).

    Returns the model on the CPU in training mode.

    Raises:
        UnknownNameError: unknown model name or config key (exit code 2).
        ConfigError: a config value of the wrong type or out of range (exit code 2).
        DataError: an image shape the model does not support.
        CheckpointError: ``state`` does not fit the model.
    """
    cls, variant, model_name = _resolve(name_or_class, registry)
    config = cls.Config.from_overrides({**variant, **dict(overrides or {})})
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3:
        raise DataError(f"{cls.name}: expected an image shape C x H x W, got {shape}")
    model = cls(config, (shape[0], shape[1], shape[2]))
    if model_name != cls.name:  # a third-party model whose name a built-in took: plugin:model
        model.__dict__["name"] = model_name  # what its checkpoints and rows record
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"weights do not match {cls.name} ({first})") from None
    return model


def create_model_from_checkpoint(state: Mapping[str, Any], *, model_cls: type[GenerativeModel] | None = None,
                                 registry: Registry | None = None, where: str = "checkpoint") -> GenerativeModel:
    """Rebuild the model a checkpoint records (``model``, ``config``, ``image_shape``, ``model_state``).

    The file is checked before it costs anything: the model is first built on PyTorch's ``meta``
    device (no memory), and its parameter names and shapes must equal the file's tensors, so a
    small crafted checkpoint whose config asks for a huge network is refused without allocating it.
    Any mismatch (a model that is no longer installed, a config that no longer fits the class,
    weights of another shape) is one [`CheckpointError`][zoo.errors.CheckpointError] naming ``where``.
    """
    name = state.get("model")
    if model_cls is not None and model_cls.name != name:
        raise CheckpointError(f"{where} holds model {name!r}, not {model_cls.name!r}")
    config, shape, weights = state.get("config"), state.get("image_shape"), state.get("model_state")
    if not isinstance(name, str) or not isinstance(config, Mapping) or not isinstance(weights, Mapping):
        raise CheckpointError(f"{where} does not record its model, config and weights")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_IMAGE_SIDE for s in shape)):
        raise CheckpointError(f"{where}: image shape {shape!r} is not C x H x W with sides in 1..{MAX_IMAGE_SIDE}")
    target = model_cls or name
    try:
        skeleton = _skeleton_on_meta(target, shape, config, registry)
        expected = None if skeleton is None else {k: tuple(v.shape) for k, v in skeleton.items()}
        found = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
        if expected is not None and expected != found:
            diff = sorted(set(expected) ^ set(found)) or [k for k in expected if expected[k] != found.get(k)]
            raise CheckpointError(f"weights do not match {name}'s config (first difference: {diff[0]!r})")
        if skeleton is not None:
            _check_dtypes(name, skeleton, weights)
            return create_model(target, shape, config, weights, registry=registry)
        # A model that cannot be built on meta: build it for real, then check dtypes before loading.
        model = create_model(target, shape, config, registry=registry)
        _check_dtypes(name, model.state_dict(), weights)
        return create_model(target, shape, config, weights, registry=registry)
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: its config no longer fits {name} ({exc})") from None
    except ZooError as exc:  # an uninstalled model, an unsupported shape
        raise CheckpointError(f"{where}: {exc}") from None


def _skeleton_on_meta(target: str | type[GenerativeModel], shape: Sequence[int], config: Mapping[str, Any],
                      registry: Registry | None) -> dict[str, torch.Tensor] | None:
    """The ``state_dict`` (parameters and buffers, shapes and dtypes only) of the model ``config``
    describes, built on the ``meta`` device (no memory); ``None`` for a model whose constructor
    cannot run there (it reads tensor values)."""
    try:
        with torch.device("meta"):
            skeleton = create_model(target, shape, config, registry=registry)
    except (NotImplementedError, RuntimeError, OverflowError) as exc:
        if "meta" in str(exc).lower():
            return None
        # Sizes no tensor can have (a 2**62-wide layer overflows even on meta): refused, not a traceback.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise CheckpointError(f"its config asks for a network that cannot be built ({first})") from None
    return dict(skeleton.state_dict())


def _check_dtypes(name: str, expected: Mapping[str, torch.Tensor], weights: Mapping[str, Any]) -> None:
    """Raise `CheckpointError` naming the first tensor of ``weights`` whose dtype differs from
    the one the model builds (``load_state_dict`` would silently cast int8, float64 or complex
    weights, dropping the imaginary part or sampling from a network nobody trained)."""
    for key, want in expected.items():
        got = weights.get(key)
        if isinstance(got, torch.Tensor) and got.dtype != want.dtype:
            raise CheckpointError(f"weights do not match {name}: {key!r} is {str(got.dtype).removeprefix('torch.')}, "
                                  f"the model builds {str(want.dtype).removeprefix('torch.')}")


def list_models(family: str | None = None, registry: Registry | None = None) -> list[str]:
    """Names of the registered models and variants, sorted (``family`` filters)."""
    return [e.name for e in (registry or get_registry()).list_models(family)]


def default_data_dir() -> Path:
    """``$ZOO_DATA_DIR``, else ``data/`` in the platform's user cache folder for genzoo
    (platformdirs: ``$XDG_CACHE_HOME/genzoo/data`` or ``~/.cache/genzoo/data`` on Linux):
    where downloadable datasets are cached."""
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        from zoo.fileio import env_folder

        return env_folder("ZOO_DATA_DIR", Path(env).expanduser())  # a file there: UsageError (exit 2)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("genzoo", appauthor=False)) / "data"


def load_dataset(
    name: str = DEFAULT_DATASET,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    image_size: int | None = None,
    registry: Registry | None = None,
) -> ImageDataset:
    """Load a registered dataset by name (``mnist-5k``, ``folder:PATH``...), optionally resized.

    Args:
        name: a registered name (``zoo data list``), or a prefix and a path (``folder:PATH``,
            ``npz:PATH``).
        data_dir: where downloadable datasets are cached; ``None``: `default_data_dir`.
        download: fetch a downloadable dataset that is not cached yet.
        image_size: resize both splits to ``image_size x image_size`` pixels; ``None`` keeps them.
        registry: the registry to look the name up in; ``None``: the installed plugins'.

    Returns:
        The dataset: ``uint8`` train and test images ``N x C x H x W``, labels where it has them.

    Raises:
        UnknownNameError: no dataset of that name (exit code 2 on the command line).
        DataError: the data cannot be read, or a prefixed name has no path (exit code 2).
    """
    spec = (registry or get_registry()).dataset(name)
    arg = name.split(":", 1)[1] if spec.prefix else None
    if spec.prefix and not arg:
        raise DataError(f"dataset {spec.name!r} needs a path: {spec.name}PATH")
    ds = spec.load(arg, Path(data_dir).expanduser() if data_dir else default_data_dir(), download)
    if not isinstance(ds, ImageDataset):
        raise DataError(f"dataset {name!r} loader returned {type(ds).__name__}, not an ImageDataset")
    if spec.backbone and "backbone" not in ds.info:  # the scoring backbone the dataset declares
        ds.info["backbone"] = spec.backbone
    if image_size is not None and ds.image_shape[1:] != (image_size, image_size):
        ds = resize_dataset(ds, image_size)
    return ds
