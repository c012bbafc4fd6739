"""Property tests: whatever the input, only genzoo's own error types escape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from zoo.data import images_from_array
from zoo.errors import ZooError

DTYPES = st.sampled_from([np.uint8, np.int16, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64])
SHAPES = st.lists(st.integers(0, 9), min_size=0, max_size=5).map(tuple)


@settings(max_examples=150, deadline=None)
@given(arrays(DTYPES, SHAPES, elements=None))
def test_image_arrays_are_accepted_cleanly_or_refused_with_a_data_error(array):
    try:
        images = images_from_array(array, "generated")
    except ZooError:
        return
    assert images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] in (1, 3, 4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2048))
def test_npz_files_of_arbitrary_bytes_never_crash_the_loader(tmp_path, blob):
    from zoo.factory import load_dataset

    path = tmp_path / "data.npz"
    path.write_bytes(blob)
    with pytest.raises(ZooError):
        load_dataset(f"npz:{path}")


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["gan", "dcgan", "vae", "ddpm"]), st.dictionaries(st.sampled_from(
    ["lr", "latent_dim", "g_hidden", "base_channels", "timesteps", "beta_start", "ema_decay", "nope", ""]), TEXT, max_size=3))
def test_config_overrides_validate_or_raise_usage_errors(model, overrides):
    from zoo.registry import get_registry

    cls = get_registry().model(model)
    try:
        cls.Config.from_overrides(overrides)
    except ZooError as exc:
        assert exc.exit_code == 2


ARGS = st.lists(
    st.one_of(
        st.sampled_from(["--steps", "--batch-size", "--set", "--seed", "--image-size", "--dataset", "--time", "--precision",
                         "--device", "--epochs", "1", "0", "-3", "nan", "1e9", "lr=abc", "latent_dim=0", "=", "mnist-5k",
                         "npz:", "folder:", "cuda", "fp17", "5m", "x=1=2"]),
        TEXT,
    ),
    max_size=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["train", "sample", "eval", "list", "bench", "leaderboard", "data"]), ARGS)
def test_the_cli_answers_bad_arguments_with_an_exit_code_never_a_traceback(capsys, tmp_path, monkeypatch, command, args):
    from zoo.cli.app import run

    monkeypatch.chdir(tmp_path)
    # Never start real work: budgets that would train are cut to nothing by an invalid first option.
    argv = [command, "--steps", "-1", *args] if command in ("train", "bench") else [command, *args]
    code = run(argv)  # a non-genzoo exception would propagate and fail the test
    assert isinstance(code, int)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
