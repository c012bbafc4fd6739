"""Plugin contract, second edition: steps of several batches, penalties under fp16, the budget known
to the step, and the built-in WGAN-GP that needs all three (issue 13)."""

from __future__ import annotations

import csv

import pytest
import torch

from zoo.data import ImageDataset
from zoo.errors import TrainingError
from zoo.model import TrainStep
from zoo.testing import synthetic_images, tiny_model
from zoo.trainer import MAX_SKIPPED_STEPS, Trainer, TrainSettings


def _data(n: int = 64, shape=(1, 28, 28)) -> ImageDataset:
    images = synthetic_images(n + 16, shape)
    return ImageDataset("synthetic", images[:n], images[n:])


def _ppca(name: str, **attrs):
    from zoo_ppca.model import PPCA

    return type(name.title().replace("-", ""), (PPCA,), {"name": name, **attrs})


# -- WGAN-GP: n_critic = 5 in one step, in every precision ------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_wgan_gp_trains_five_critic_updates_per_step_in_every_precision(tmp_path, precision):
    net = tiny_model("wgan-gp")
    assert net.config.n_critic == 5 and net.batches_per_step == 5
    before = {k: v.clone() for k, v in net.state_dict().items()}
    settings = TrainSettings(steps=3, batch_size=8, device="cpu", precision=precision, sample_grid=4,
                             checkpoint_every=3)
    trainer = Trainer(net, _data(), settings, tmp_path / "run")
    scale = trainer.scaler.get_scale()
    result = trainer.fit()
    # --steps counts generator steps; kimg counts every real image the critic saw.
    assert result.steps == 3 and result.kimg == pytest.approx(3 * 8 * 5 / 1000)
    assert result.stopped_by == "steps" and (tmp_path / "run" / "samples.png").is_file()
    rows = list(csv.DictReader((tmp_path / "run" / "losses.csv").open()))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    for row in rows:  # every key on every row, all finite
        for key in ("d_loss", "g_loss", "gp", "w_distance"):
            assert row[key] not in ("", "nan", "inf"), (key, row)
    assert trainer.scaler.get_scale() == scale  # fp16 starts at a scale its updates fit (it overflowed at 2**16)
    changed = {k.split(".")[0] for k, v in net.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])}
    assert {"generator", "critic"} <= changed
    # The critic optimizer stepped five times per step: Adam counts its own steps.
    d_state = next(iter(trainer.optimizers["d"].state.values()))
    g_state = next(iter(trainer.optimizers["g"].state.values()))
    assert int(d_state["step"]) == 15 and int(g_state["step"]) == 3  # no update skipped, fp16 included


def test_wgan_gp_kimg_budget_counts_all_batches_and_n_critic_follows_the_config(tmp_path):
    net = tiny_model("wgan-gp", n_critic=2)
    assert net.batches_per_step == 2
    settings = TrainSettings(budget="0.064kimg", batch_size=8, device="cpu", sample_grid=0)
    result = Trainer(net, _data(), settings, None).fit()
    assert result.steps == 4 and result.kimg == pytest.approx(0.064)  # 4 steps x 2 batches x 8 images
    assert settings.total_steps(64, batches_per_step=2) == 4


def test_wgan_gp_is_benchmarked_beside_the_other_gans():
    from zoo.registry import build_registry

    reg = build_registry()
    gans = {e.name for e in reg.list_models("gan")}
    assert {"gan", "dcgan", "wgan-gp"} <= gans
    assert reg.models["wgan-gp"].plugin.builtin


# -- several batches per step -----------------------------------------------------------------


def test_a_step_must_take_exactly_the_batches_it_declares():
    def greedy(self, batch, step):
        for _ in range(3):
            batch = step.next_batch()
        return {"nll": self.nll(batch)}

    def lazy(self, batch, step):
        loss = self.nll(batch)
        step.optimize("main", loss)
        return {"nll": loss}

    for cls, message in [(_ppca("greedy", batches_per_step=2, train_step=greedy), "asked for batch 3"),
                         (_ppca("lazy", batches_per_step=3, train_step=lazy), "took 1 batches")]:
        net = tiny_model(cls)
        with pytest.raises(TrainingError, match=message):
            Trainer(net, _data(), TrainSettings(steps=1, batch_size=8, sample_grid=0), None).fit()


def test_fp16_steps_one_optimizer_several_times_in_one_step():
    """GradScaler raises "step() has already been called since the last update()" if an optimizer
    is stepped twice between updates; TrainStep.optimize updates the scaler in between."""

    def two_updates(self, batch, step):
        for _ in range(2):
            loss = self.nll(batch)
            step.optimize("main", loss)
            batch = step.next_batch() if step.batches_used < 2 else batch
        return {"nll": loss}

    net = tiny_model(_ppca("twice", batches_per_step=2, train_step=two_updates))
    result = Trainer(net, _data(), TrainSettings(steps=3, batch_size=8, precision="fp16", sample_grid=0), None).fit()
    assert result.steps == 3 and result.kimg == pytest.approx(3 * 2 * 8 / 1000)


# -- the budget is known to the step ---------------------------------------------------------


@pytest.mark.parametrize("budget", ["4steps", "0.032kimg", "1h"])
def test_the_step_knows_the_total_and_the_fraction_used(budget):
    seen = []

    def record(self, batch, step):
        seen.append((step.step, step.total_steps, step.progress))
        loss = self.nll(batch)
        step.optimize("main", loss)
        return {"nll": loss}

    net = tiny_model(_ppca("recorder", train_step=record))
    # "1h" alone would know no total; with --steps 4 beside it the total is the steps budget's.
    settings = TrainSettings(budget=budget, steps=4 if budget == "1h" else None, batch_size=8, sample_grid=0)
    Trainer(net, _data(), settings, None).fit()
    assert [s for s, _, _ in seen] == [0, 1, 2, 3]  # step.step starts at 0
    assert all(t == 4 for _, t, _ in seen)
    fractions = [p for _, _, p in seen]
    assert fractions[0] == pytest.approx(0.0, abs=1e-3) and all(0 <= p < 1 for p in fractions) and fractions == sorted(fractions)
    assert fractions[-1] == pytest.approx(0.75)  # 3 of 4 steps done before the last one


# -- penalties and non-finite losses under fp16 ----------------------------------------------


def test_gradient_penalty_matches_the_direct_computation_and_survives_loss_scaling():
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    real, fake = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4)

    torch.manual_seed(1)
    plain = TrainStep(0, {}).gradient_penalty(critic, real, fake)
    torch.manual_seed(1)
    alpha = torch.rand(5, 1, 1, 1)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    direct = ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert plain.item() == pytest.approx(direct.item(), rel=1e-5)

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    torch.manual_seed(1)
    scaled = TrainStep(0, {}, scaler=scaler).gradient_penalty(critic, real, fake)
    assert scaled.item() == pytest.approx(direct.item(), rel=1e-4)  # unscaled after autograd.grad
    scaled.backward()  # the penalty stays differentiable (create_graph)
    assert critic[1].weight.grad is not None


@pytest.mark.parametrize("model", ["gan", "wgan-gp", "vaegan"])
def test_fp16_runs_skip_no_update_from_their_first_step(model):
    """torch's initial loss scale, 2**16, overflowed fp16 on the first updates: the first critic
    update of every WGAN-GP run and 10 of tiny vaegan's first 45 were skipped (optimizer.step
    never called). The core's scaler starts where fp16 holds the scaled gradients."""
    torch.manual_seed(0)
    net = tiny_model(model)
    trainer = Trainer(net, _data(), TrainSettings(steps=6, batch_size=8, precision="fp16", sample_grid=0), None)
    taken = {name: 0 for name in trainer.optimizers}
    for name, opt in trainer.optimizers.items():
        def counted(*args, _step=opt.step, _name=name, **kwargs):  # noqa: ANN002, ANN003, ANN202
            taken[_name] += 1
            return _step(*args, **kwargs)

        opt.step = counted
    trainer.fit()
    updates = {name: 6 * (net.config.n_critic if name == "d" and model == "wgan-gp" else 1) for name in taken}
    assert taken == updates, f"skipped updates: {taken} of {updates} (scale now {trainer.scaler.get_scale()})"


def _nan_at(steps: set[int] | None):
    def train_step(self, batch, step):
        loss = self.nll(batch)
        if steps is None or step.step in steps:
            loss = loss * float("nan")
        step.optimize("main", loss)
        return {"nll": loss}

    return train_step


def test_fp16_skips_a_non_finite_update_lowers_the_scale_and_carries_on():
    net = tiny_model(_ppca("hiccup", train_step=_nan_at({1})))
    trainer = Trainer(net, _data(), TrainSettings(steps=4, batch_size=8, precision="fp16", sample_grid=0), None)
    scale = trainer.scaler.get_scale()
    result = trainer.fit()
    assert result.steps == 4 and result.last_losses["nll"] == result.last_losses["nll"]  # finite again
    assert trainer.scaler.get_scale() <= scale * 0.5  # the NaN step backed the scale off
    assert all(torch.isfinite(p).all() for p in net.parameters())  # the NaN update was not applied


def test_fp16_stops_with_one_line_when_losses_stay_non_finite():
    net = tiny_model(_ppca("diverged", train_step=_nan_at(None)))
    trainer = Trainer(net, _data(), TrainSettings(steps=100, batch_size=8, precision="fp16", sample_grid=0), None)
    with pytest.raises(TrainingError) as caught:
        trainer.fit()
    message = str(caught.value)
    assert f"non-finite loss for {MAX_SKIPPED_STEPS} steps in a row under fp16" in message and "\n" not in message
    assert trainer.step == MAX_SKIPPED_STEPS - 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fp32_and_bf16_still_stop_at_the_first_non_finite_loss(precision):
    net = tiny_model(_ppca("nan-once", train_step=_nan_at({1})))
    trainer = Trainer(net, _data(), TrainSettings(steps=4, batch_size=8, precision=precision, sample_grid=0), None)
    with pytest.raises(TrainingError, match="non-finite loss at step 1"):
        trainer.fit()
