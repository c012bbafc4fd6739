"""Model-specific tests of the ``vae`` plugin (the generic contract is tested elsewhere)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from zoo_vae.model import VAE, VAEConfig, discretized_logistic_log_prob, gaussian_kl, quantize

from zoo.errors import ConfigError, DataError, UnknownNameError
from zoo.model import TrainStep

CENTRES = torch.arange(256, dtype=torch.float32) / 127.5 - 1  # the 256 bin centres in [-1, 1]


def tiny(shape: tuple[int, int, int] = (1, 28, 28), **overrides: object) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(**{**VAE.tiny_config, **overrides}), shape)


def smooth_batch(n: int = 16, size: int = 28) -> torch.Tensor:
    """Blurry blobs on a dark background, snapped to the 8-bit grid: easy to model, not trivial."""
    g = torch.Generator().manual_seed(1)
    coarse = torch.randn(n, 1, 4, 4, generator=g)
    x = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return quantize(torch.tanh(2 * x - 1))


# -- the discretised logistic likelihood ------------------------------------------------------


@pytest.mark.parametrize(
    "loc,log_scale",
    [(0.0, 0.0), (0.3, -3.0), (0.5, -7.0), (0.5 + 1 / 255, -7.0), (-1.4, -5.0), (1.2, -2.0), (5.0, 3.0), (-0.99, -6.5)],
)
def test_bin_probabilities_sum_to_one(loc: float, log_scale: float) -> None:
    log_p = discretized_logistic_log_prob(CENTRES, torch.full((256,), loc), torch.full((256,), log_scale))
    assert torch.isfinite(log_p).all() and (log_p <= 1e-6).all()
    assert torch.logsumexp(log_p.double(), 0).item() == pytest.approx(0.0, abs=1e-5)


def test_bin_probabilities_match_cdf_differences() -> None:
    loc, scale = 0.1, 0.2
    cdf = lambda v: 1 / (1 + math.exp(-(v - loc) / scale))  # noqa: E731
    half = 1 / 255
    expected = [cdf(c + half) - cdf(c - half) for c in CENTRES.tolist()]
    expected[0], expected[-1] = cdf(-1 + half), 1 - cdf(1 - half)  # the end bins take the tails
    log_p = discretized_logistic_log_prob(CENTRES, torch.full((256,), loc), torch.full((256,), math.log(scale)))
    torch.testing.assert_close(log_p.exp().double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-4, atol=1e-7)


def test_sharp_likelihood_puts_its_mass_on_the_right_bin() -> None:
    x = CENTRES[[0, 37, 200, 255]]
    log_p = discretized_logistic_log_prob(x, x, torch.full_like(x, -7.0))
    assert (log_p > math.log(0.95)).all()
    # ... and far-away bins get a tiny but finite log-probability (no log(0) from 1 - 1 in float32).
    far = discretized_logistic_log_prob(x, -x, torch.full_like(x, -7.0))
    assert torch.isfinite(far).all() and (far < -50).all()


def test_quantize_snaps_to_bin_centres() -> None:
    assert torch.equal(quantize(CENTRES), CENTRES)
    jitter = CENTRES + (torch.rand(256, generator=torch.Generator().manual_seed(0)) - 0.5) * (1.9 / 255)
    assert torch.equal(quantize(jitter), CENTRES)
    assert torch.equal(quantize(torch.tensor([-3.0, 3.0])), torch.tensor([-1.0, 1.0]))


def test_gaussian_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1))
    assert gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() == 0


# -- validation metrics -----------------------------------------------------------------------


def test_validation_metrics_are_a_consistent_elbo_in_bits_per_dim() -> None:
    model, x = tiny(), smooth_batch(8)
    state = torch.get_rng_state()
    m = model.validation_metrics(x)
    assert set(m) == {"bpd", "elbo_nats", "kl", "recon", "psnr", "ssim"}
    assert all(math.isfinite(v) for v in m.values())
    assert 0 < m["bpd"] < 16 and m["kl"] >= 0 and m["recon"] > 0
    assert m["elbo_nats"] == pytest.approx(-(m["recon"] + m["kl"]), rel=1e-5)
    assert m["bpd"] == pytest.approx(-m["elbo_nats"] / (28 * 28 * math.log(2)), rel=1e-6)
    # Repeatable, and the global RNG (checkpointed for exact resume) is left alone.
    assert model.validation_metrics(x) == m
    assert torch.equal(torch.get_rng_state(), state)


def test_bpd_decreases_with_training_on_a_fixed_batch() -> None:
    model, x = tiny(lr=1e-2), smooth_batch(16)
    opts = model.configure_optimizers()
    before = model.validation_metrics(x)["bpd"]
    model.train()
    for i in range(30):
        logs = model.train_step(x, TrainStep(i, opts))
    after = model.validation_metrics(x)["bpd"]
    assert set(logs) >= {"loss", "bpd", "recon", "kl"} and math.isfinite(logs["bpd"])
    # The pixel scales start wide (about 8.5 bits); 30 steps take off well over the noise of one z draw.
    assert math.isfinite(after) and 0 < after < before - 0.4, (before, after)


def test_train_step_optimizes_the_negative_elbo_once() -> None:
    model = tiny()
    opts = model.configure_optimizers()
    assert set(opts) == {"main"}
    assert {id(p) for g in opts["main"].param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
    names: list[str] = []

    class Recording(TrainStep):
        def optimize(self, name: str, loss: torch.Tensor, *, retain_graph: bool = False) -> None:
            names.append(name)
            super().optimize(name, loss, retain_graph=retain_graph)

    logs = model.train_step(smooth_batch(4), Recording(0, opts))
    assert names == ["main"]
    assert logs["bpd"] == pytest.approx(logs["loss"] / math.log(2))
    assert logs["loss"] == pytest.approx((logs["recon"] + logs["kl"]) / (28 * 28), rel=1e-5)


# -- sampling ---------------------------------------------------------------------------------


def test_sample_mean_is_the_clamped_decoder_location_of_prior_draws() -> None:
    model = tiny((3, 32, 32))
    images = model.sample(5, generator=torch.Generator().manual_seed(7))
    z = torch.randn(5, model.config.latent_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        loc, _ = model.decoder(z)
    torch.testing.assert_close(images, loc.clamp(-1, 1))
    assert images.shape == (5, 3, 32, 32)


def test_sample_output_sample_draws_pixels_on_the_8bit_grid() -> None:
    model = tiny()
    a = model.sample(4, generator=torch.Generator().manual_seed(0), output="sample")
    b = model.sample(4, generator=torch.Generator().manual_seed(0), output="sample")
    assert torch.equal(a, b)
    assert torch.equal(quantize(a), a) and a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, model.sample(4, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(UnknownNameError):
        model.sample(2, output="median")


# -- sizes and config -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [28, 32, 64])
def test_encoder_and_decoder_shapes(size: int) -> None:
    model = tiny((3, size, size))
    mu, logvar = model.encoder(torch.zeros(2, 3, size, size))
    assert mu.shape == logvar.shape == (2, model.config.latent_dim)
    loc, log_scale = model.decoder(mu)
    assert loc.shape == log_scale.shape == (2, 3, size, size)
    assert log_scale.min() >= model.config.min_log_scale


def test_refuses_unsupported_sizes() -> None:
    with pytest.raises(DataError, match="28x28, 32x32, 64x64"):
        tiny((1, 30, 30))


@pytest.mark.parametrize("field,value", [("latent_dim", 0), ("hidden", -1), ("width", 0), ("lr", 0.0), ("min_log_scale", 1.0)])
def test_config_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"VAEConfig\.{field}"):
        VAEConfig(**{field: value})


def test_validation_reports_psnr_and_ssim_of_held_out_reconstructions(monkeypatch):
    """PSNR/SSIM come from zoo.image_quality on the mean reconstructions mapped to [0, 1]; PSNR is the mean of
    each image's 10 log10(1 / MSE), checked here against that formula written out."""
    import torch

    from zoo.factory import create_model

    model = create_model("vae", (1, 28, 28), {})
    batch = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noisy = (batch + 0.1 * torch.randn(batch.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    monkeypatch.setattr(model, "reconstruct", lambda x: noisy)
    numbers = model.validation_metrics(batch)
    mse = (((noisy + 1) / 2 - (batch + 1) / 2) ** 2).flatten(1).mean(1)
    assert numbers["psnr"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), rel=1e-5)
    assert 0 < numbers["ssim"] < 1
    monkeypatch.setattr(model, "reconstruct", lambda x: x)
    assert model.validation_metrics(batch)["ssim"] == pytest.approx(1.0, abs=1e-6)
