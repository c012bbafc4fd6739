"""zoo.api: each verb called directly (no CLI), returning a result and printing nothing; the
reporter gets the progress; the verbs floor never imports the CLI."""

from __future__ import annotations

import contextlib

import pytest

TINY_VAE = {"hidden": 8, "latent_dim": 2, "width": 4}


class Recorder:
    """A reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.trained: list[str] = []
        self.steps: list[int] = []
        self.tasks_seen: set[str] = set()

    def message(self, text: str) -> None:
        pass

    def overall(self, status) -> None:  # noqa: ANN001
        pass

    @contextlib.contextmanager
    def training(self, label):  # noqa: ANN001, ANN201
        self.trained.append(label)
        yield lambda p: self.steps.append(p.step)

    @contextlib.contextmanager
    def tasks(self):  # noqa: ANN201
        yield lambda task, done, total: self.tasks_seen.add(task)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from zoo import api

    run = tmp_path_factory.mktemp("api") / "run"
    reporter = Recorder()
    result = api.train(api.TrainRequest("vae", steps=2, overrides=TINY_VAE, run_dir=run), reporter=reporter)
    return run, result, reporter


def test_train_returns_its_result_and_reports_progress(trained):
    run, result, reporter = trained
    assert result.steps == 2 and result.run_dir == run and result.stopped_by == "steps"
    assert (run / "config.json").is_file() and result.checkpoint is not None and result.checkpoint.is_file()
    assert reporter.trained == ["vae"] and reporter.steps[-1] == 2


def test_resume_continues_the_run_to_the_new_budget(trained, tmp_path, capsys):
    import shutil

    from zoo import api

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    capsys.readouterr()
    result = api.resume(api.ResumeRequest(run, steps=3))
    assert result.steps == 3 and result.run_dir == run
    assert capsys.readouterr().out == ""  # a verb prints nothing
    from zoo.errors import UsageError

    with pytest.raises(UsageError, match="already at step 3"):
        api.resume(api.ResumeRequest(run, steps=3))


def test_sample_writes_what_the_output_names(trained, tmp_path, capsys):
    import numpy as np

    from zoo import api

    reporter = Recorder()
    capsys.readouterr()
    grid = api.sample(api.SampleRequest(trained[0], num=4, output=tmp_path / "g.png", batch_size=2), reporter=reporter)
    array = api.sample(api.SampleRequest(trained[0], num=4, output=tmp_path / "g.npz", batch_size=2))
    assert capsys.readouterr().out == ""
    assert grid.kind == "grid" and grid.path.is_file() and grid.num == 4 and grid.model == "vae"
    assert array.kind == "npz" and array.shape == [4, 1, 28, 28] and array.step == 2
    assert np.load(tmp_path / "g.npz")["images"].shape == (4, 1, 28, 28)
    assert reporter.tasks_seen == {"sampling"}
    assert set(array.to_dict()) >= {"path", "kind", "num", "seed", "images_per_s", "batch_size", "compile_seconds"}


def test_evaluate_scores_a_run_under_its_protocol(trained, capsys):
    from zoo import api

    capsys.readouterr()
    result = api.evaluate(api.EvalRequest(trained[0], num_fake=50, num_real=100, batch_size=50))
    assert capsys.readouterr().out == ""
    assert result.protocol["backbone"] == "lenet"  # auto, for the MNIST family
    assert result.metrics["fid_lenet"] > 0 and result.floor["fid_lenet"] > 0
    assert result.source["model"] == "vae" and result.source["num_images"] == 50
    assert result.to_dict()["protocol"]["hash"] == result.protocol["hash"]


def test_benchmark_returns_the_rows_and_reports_progress(tmp_path, capsys):
    from zoo import api

    capsys.readouterr()
    reporter = Recorder()
    request = api.BenchRequest(models=["vae"], preset="smoke", results=tmp_path / "r.sqlite",
                               runs_dir=tmp_path / "bench", overrides={f"vae.{k}": v for k, v in TINY_VAE.items()})
    result = api.benchmark(request, reporter=reporter)
    assert capsys.readouterr().out == ""
    assert result.rows and {r.status for r in result.rows} == {"ok"} and result.store.path == tmp_path / "r.sqlite"
    assert reporter.trained and reporter.steps


def test_a_bad_request_is_a_usage_error_before_any_work(tmp_path):
    from zoo import api
    from zoo.errors import UsageError

    with pytest.raises(UsageError, match="cannot write .jpg"):
        api.sample(api.SampleRequest(tmp_path / "nothing", output=tmp_path / "g.jpg"))
    with pytest.raises(UsageError, match="does not exist"):
        api.sample(api.SampleRequest(tmp_path / "nothing", output=tmp_path / "missing" / "g.png"))
    assert not (tmp_path / "missing").exists()


def test_a_small_folder_dataset_names_the_default_batch_size_not_an_option_never_given(tmp_path, capsys):
    from PIL import Image

    from tests.helpers import zoo_in_process

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(20):
        Image.new("L", (28, 28), color=i * 10).save(folder / f"{i}.png")
    code, out, err = zoo_in_process(capsys, "train", "vae", "--dataset", f"folder:{folder}", "--steps", "1",
                                    "--run-dir", str(tmp_path / "run"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "default batch size" in err and "--batch-size 64 is" not in err
    assert not (tmp_path / "run").exists()
