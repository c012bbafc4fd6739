"""Requests that used to run and quietly mean something else are one line and exit 2, before any
work (a newcomer's findings): a model named twice, a trial budget above the budget, an empty
column list, a setting for a model not benchmarked, an export into its own run folder."""

from __future__ import annotations

import pytest

from tests.helpers import zoo_in_process


def refused(capsys, *args: str) -> str:  # noqa: ANN001
    code, out, err = zoo_in_process(capsys, *args)
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("models", ["gan,vae,gan", "gan, gan", " gan,gan "])
def test_a_model_named_twice_is_refused(capsys, tmp_path, models):
    line = refused(capsys, "bench", "--models", models, "--preset", "smoke", "--dry-run",
                   "--results", str(tmp_path / "r.sqlite"))
    assert "'gan' is named twice" in line
    assert not (tmp_path / "r.sqlite").exists()


def test_a_bench_refused_before_work_makes_no_results_store(capsys, tmp_path):
    store = tmp_path / "r.sqlite"
    line = refused(capsys, "bench", "--models", "gan", "--preset", "smoke", "--samples",
                   f"mine={tmp_path / 'missing.npz'}", "--results", str(store))
    assert "does not exist" in line
    assert not store.exists()


@pytest.mark.parametrize("trial", ["5steps", "100kimg"])  # the smoke budget is 4 steps of 32
def test_a_trial_budget_above_the_budget_is_refused(capsys, tmp_path, trial):
    pytest.importorskip("optuna")
    line = refused(capsys, "bench", "--models", "gan", "--preset", "smoke", "--tune", "2", "--tune-budget", trial,
                   "--dry-run", "--results", str(tmp_path / "r.sqlite"))
    assert f"--tune-budget {trial} is more than gan's budget (4steps)" in line


def test_a_trial_budget_within_the_budget_plans(capsys, tmp_path):
    pytest.importorskip("optuna")
    code, out, err = zoo_in_process(capsys, "bench", "--models", "gan", "--preset", "smoke", "--tune", "2",
                                    "--tune-budget", "2steps", "--dry-run", "--results", str(tmp_path / "r.sqlite"))
    assert code == 0, err
    assert "2steps" in out


@pytest.mark.parametrize("option", ["--columns", "--metrics", "--sort"])
def test_an_empty_view_option_is_refused_not_read_as_all(capsys, tmp_path, option):
    line = refused(capsys, "leaderboard", "--results", str(tmp_path / "none.sqlite"), option, " , ")
    assert f"{option} is empty" in line


def test_a_setting_for_a_model_not_benchmarked_says_so(capsys, tmp_path):
    line = refused(capsys, "bench", "--models", "vae", "--set", "gan.lr=1e-3", "--preset", "smoke", "--dry-run",
                   "--results", str(tmp_path / "r.sqlite"))
    assert "'gan' is not among the models benchmarked (vae)" in line
    line = refused(capsys, "bench", "--models", "vae", "--set", "gna.lr=1e-3", "--preset", "smoke", "--dry-run",
                   "--results", str(tmp_path / "r.sqlite"))
    assert "unknown model in --set 'gna'" in line


def test_an_export_into_its_own_run_folder_is_refused_and_the_run_is_kept(capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    code, _, err = zoo_in_process(capsys, "train", "gan", "--steps", "2", "--set", "g_hidden=32", "--set", "d_units=16",
                                  "--set", "latent_dim=8", "--run-dir", str(run), "--no-progress")
    assert code == 0, err
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    for out in (run, run / "checkpoints"):
        line = refused(capsys, "export", str(run), "--out", str(out), "--force")
        assert "export to a folder of its own" in line
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    code, _, err = zoo_in_process(capsys, "export", str(run), "--out", str(tmp_path / "export"))
    assert code == 0, err


def test_a_batch_larger_than_the_training_split_is_refused_as_zoo_train_refuses_it(capsys, tmp_path):
    line = refused(capsys, "bench", "--models", "gan", "--preset", "smoke", "--batch-size", "100000", "--dry-run",
                   "--results", str(tmp_path / "r.sqlite"))
    assert "--batch-size 100000 is larger than the training split (4000 images)" in line


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x_train": "images", "y_train": "zeros"}, "holds arrays 'x_train', 'y_train' and none named 'images'"),
    ({"images": "images", "labels": "ten"}, "10 labels for 300 images"),
    ({"images": "images", "y_train": "zeros"}, "holds 'y_train' besides 'images'"),
    (None, "is a folder, not an .npz/.npy file"),  # npz:FOLDER
])
def test_an_npz_dataset_that_would_be_misread_is_refused(capsys, tmp_path, arrays, message):
    import numpy as np

    images = (np.random.default_rng(0).random((300, 28, 28)) * 255).astype(np.uint8)
    made = {"images": images, "zeros": np.zeros(300, dtype=np.int64), "ten": np.arange(10)}
    source = tmp_path
    if arrays is not None:
        source = tmp_path / "data.npz"
        np.savez(source, **{key: made[what] for key, what in arrays.items()})
    line = refused(capsys, "train", "gan", "--dataset", f"npz:{source}", "--steps", "1",
                   "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert message in line
    assert not (tmp_path / "run").exists()


def test_an_npz_with_one_array_of_any_name_is_the_images(tmp_path):
    import numpy as np

    from zoo.data import load_dataset

    np.savez(tmp_path / "one.npz", pics=(np.random.default_rng(0).random((300, 28, 28)) * 255).astype(np.uint8))
    assert len(load_dataset(f"npz:{tmp_path / 'one.npz'}").train) == 270


def test_a_protocol_the_dataset_cannot_support_is_a_usage_error_in_the_dry_run_too(capsys, tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "unlabelled"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    line = refused(capsys, "bench", "--models", "gan", "--preset", "smoke", "--dataset", f"folder:{folder}",
                   "--backbone", "lenet", "--dry-run", "--results", str(tmp_path / "r.sqlite"))
    assert "has no labels; use --backbone simclr" in line
    line = refused(capsys, "bench", "--models", "gan", "--preset", "smoke", "--dataset", f"folder:{folder}",
                   "--backbone", "simclr", "--results", str(tmp_path / "r.sqlite"))  # 4 held-out images: too few
    assert "num_fake must be between 10 and the 4 held-out images" in line


def test_sample_force_replaces_an_earlier_sample_folder_whole_and_refuses_any_other(capsys, tmp_path):
    run = tmp_path / "run"
    code, _, err = zoo_in_process(capsys, "train", "gan", "--steps", "2", "--set", "g_hidden=32", "--set", "d_units=16",
                                  "--set", "latent_dim=8", "--run-dir", str(run), "--no-progress")
    assert code == 0, err
    out = tmp_path / "samples"
    assert zoo_in_process(capsys, "sample", str(run), "-n", "30", "-o", str(out))[0] == 0
    assert zoo_in_process(capsys, "sample", str(run), "-n", "10", "-o", str(out), "--force")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(10)]  # no stale 10..29
    (out / "notes.txt").write_text("mine")
    line = refused(capsys, "sample", str(run), "-n", "5", "-o", str(out), "--force")
    assert "holds files zoo sample did not write (notes.txt)" in line
    assert len(list(out.iterdir())) == 11  # nothing removed
    mine = tmp_path / "mine"  # digit-named images of the user's own, not 000000.png onwards
    mine.mkdir()
    for name in ("000099.png", "123456.png"):
        (mine / name).write_bytes(b"png")
    line = refused(capsys, "sample", str(run), "-n", "3", "-o", str(mine), "--force")
    assert "holds files zoo sample did not write (000099.png)" in line
    assert sorted(p.name for p in mine.iterdir()) == ["000099.png", "123456.png"]


@pytest.mark.parametrize("output", ["", "."])
def test_a_leaderboard_output_that_is_a_folder_is_a_usage_error(capsys, tmp_path, monkeypatch, output):
    monkeypatch.chdir(tmp_path)
    line = refused(capsys, "leaderboard", "--results", str(tmp_path / "none.sqlite"), "--format", "csv", "-o", output)
    assert "is a folder; give a file name" in line or "is a directory" in line


def test_an_option_for_a_model_not_benchmarked_says_so(capsys, tmp_path):
    line = refused(capsys, "bench", "--models", "vae", "--option", "ddpm.steps=3", "--preset", "smoke", "--dry-run",
                   "--results", str(tmp_path / "r.sqlite"))
    assert "--option ddpm.steps: 'ddpm' is not among the models benchmarked (vae)" in line


@pytest.mark.parametrize(("budget", "trial"), [("4steps", "1h"), ("10s", "1000steps")])
def test_a_trial_budget_in_a_kind_that_cannot_be_compared_is_refused(capsys, tmp_path, budget, trial):
    pytest.importorskip("optuna")
    line = refused(capsys, "bench", "--models", "gan", "--preset", "smoke", "--budget", budget, "--tune", "2",
                   "--tune-budget", trial, "--dry-run", "--results", str(tmp_path / "r.sqlite"))
    assert "cannot be compared" in line
