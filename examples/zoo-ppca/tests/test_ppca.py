"""The plugin's own tests: genzoo's contract check, plus what is specific to PPCA."""

import torch

from zoo.testing import check_model


def test_contract():
    check_model("ppca")


def test_nll_matches_dense_gaussian():
    from zoo_ppca.model import PPCA, PPCAConfig

    torch.manual_seed(0)
    model = PPCA(PPCAConfig(latent_dim=3), (1, 4, 4))
    with torch.no_grad():
        model.W.normal_()
        model.mu.normal_()
    x = torch.randn(5, 1, 4, 4)
    cov = model.W @ model.W.T + torch.exp(2 * model.log_sigma) * torch.eye(16)
    dense = torch.distributions.MultivariateNormal(model.mu, cov)
    expected = -dense.log_prob(x.flatten(1)).mean()
    assert torch.allclose(model.nll(x), expected, rtol=1e-4)
