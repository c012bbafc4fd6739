"""Reliability, third round (issue 27, items 3-6 and 8): inputs that silently changed the numbers or
the identity, hostile export files, faulty plugin hooks, a full disk and unbounded resources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import zoo_in_process


def _digits_by_class(per_class: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """``uint8 N x 1 x 28 x 28`` mnist-5k training digits, sorted by class (0 first), and labels."""
    from zoo.factory import load_dataset

    ds = load_dataset("mnist-5k")
    images, labels = [], []
    for c in range(10):
        idx = torch.nonzero(ds.train_labels == c).flatten()[:per_class]
        images.append(ds.train[idx])
        labels.append(torch.full((len(idx),), c))
    return torch.cat(images).numpy(), torch.cat(labels).numpy()


def _write_folder(root: Path, images: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
    from PIL import Image

    for image, label, name in zip(images, labels, names, strict=True):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0]).save(folder / f"{name}.png")


def _eval_json(capsys, source: Path) -> dict:
    code, out, err = zoo_in_process(capsys, "eval", str(source), "--dataset", "mnist-5k", "--num-fake", "100",
                                    "--num-real", "300", "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_class_ordered_folder_and_npz_score_like_their_shuffled_copies(tmp_path, capsys):
    images, labels = _digits_by_class()  # 300 digits, 0s first: the first 100 hold classes 0-3 only
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(images))
    _write_folder(tmp_path / "ordered", images, labels, [f"{i:04d}" for i in range(len(images))])
    # The shuffled copy: the same files under random names, so sorted order mixes the classes.
    _write_folder(tmp_path / "shuffled-folder", images, labels, [f"{int(k):04d}" for k in np.argsort(perm)])
    np.savez(tmp_path / "ordered.npz", images=images)
    np.savez(tmp_path / "shuffled.npz", images=images[perm])

    results = {name: _eval_json(capsys, tmp_path / name)
               for name in ("ordered", "shuffled-folder", "ordered.npz", "shuffled.npz")}
    for name, result in results.items():
        classes = result["metrics"]["classes_lenet"]
        assert classes >= 9, (name, classes)  # file order would cover 4 classes
        assert result["source"]["num_images"] == 100 and result["source"]["source_images"] == 300
        assert any("scored 100 of the 300 images" in w for w in result["warnings"]), name
        assert result["protocol"]["fake_draw"].startswith("random")
    fids = [r["metrics"]["fid_lenet"] for r in results.values()]
    assert max(fids) < 2 * min(fids), fids  # within sampling noise of one another
    # The draw is part of the identity only where it applies: one protocol for all four sources.
    assert len({r["protocol"]["hash"] for r in results.values()}) == 1


def test_the_draw_enters_the_protocol_only_when_a_source_holds_more(tmp_path):
    from zoo.errors import MetricsError
    from zoo.factory import load_dataset
    from zoo.metrics import make_protocol
    from zoo.metrics.engine import fake_order

    ds = load_dataset("mnist-5k")
    plain = make_protocol(ds, num_real=100, num_fake=50)
    same = make_protocol(ds, num_real=100, num_fake=50, source_images=50)
    drawn = make_protocol(ds, num_real=100, num_fake=50, source_images=80)
    assert "fake_draw" not in plain.identity() and plain.hash == same.hash  # no existing hash moves
    assert drawn.hash != plain.hash and drawn.fake_draw
    assert torch.equal(fake_order(50, plain), torch.arange(50))
    picked = fake_order(80, drawn)
    assert len(set(picked.tolist())) == 50 and picked.max() >= 50  # drawn from the whole source
    with pytest.raises(MetricsError, match="records no draw"):
        fake_order(80, plain)  # more images than a protocol without a draw: never the first ones silently


def test_three_spellings_of_one_npz_give_one_protocol_and_one_cached_lenet(tmp_path, monkeypatch):
    import shutil

    from zoo.factory import load_dataset
    from zoo.metrics import backbones, make_protocol
    from zoo.metrics.lenet import Recipe

    recipe = Recipe(steps=5, batch_size=16)  # a token classifier: this test is about its cache key
    monkeypatch.setattr(backbones, "DEFAULT_RECIPE", recipe)
    trained = []
    train = backbones.train_lenet_for
    monkeypatch.setattr(backbones, "train_lenet_for", lambda ds, path, r=None, **kw: trained.append(path)
                        or train(ds, path, r, **kw))

    images, labels = _digits_by_class(per_class=12)
    (tmp_path / "a").mkdir()
    np.savez(tmp_path / "a" / "digits.npz", images=images, labels=labels)
    shutil.copy(tmp_path / "a" / "digits.npz", tmp_path / "copy.npz")
    monkeypatch.chdir(tmp_path)
    spellings = ["npz:a/digits.npz", f"npz:{tmp_path / 'a' / 'digits.npz'}", "npz:./a/../copy.npz"]
    datasets = [load_dataset(name) for name in spellings]
    assert len({ds.identity_name for ds in datasets}) == 1
    protocols = [make_protocol(ds, num_real=30, num_fake=10) for ds in datasets]
    assert len({p.hash for p in protocols}) == 1
    assert len(trained) == 1  # one cached lenet serves all three spellings
    assert protocols[0].dataset == f"npz:{datasets[0].fingerprint()}"
    # A folder dataset is named by content too.
    _write_folder(tmp_path / "f1", images[:20], labels[:20], [f"{i}" for i in range(20)])
    shutil.copytree(tmp_path / "f1", tmp_path / "f2")
    assert load_dataset("folder:f1").identity_name == load_dataset(f"folder:{tmp_path / 'f2'}").identity_name


def test_relabelled_data_gets_another_lenet_and_another_protocol_hash(tmp_path, monkeypatch):
    from zoo.factory import load_dataset
    from zoo.metrics import backbones, make_protocol
    from zoo.metrics.lenet import Recipe

    monkeypatch.setattr(backbones, "DEFAULT_RECIPE", Recipe(steps=5, batch_size=16))  # a token net
    images, labels = _digits_by_class(per_class=8)
    np.savez(tmp_path / "a.npz", images=images, labels=labels)
    np.savez(tmp_path / "b.npz", images=images, labels=labels + 1)  # 0-9 relabelled 1-10
    np.savez(tmp_path / "c.npz", images=images)
    a, b, c = (load_dataset(f"npz:{tmp_path / n}") for n in ("a.npz", "b.npz", "c.npz"))
    # The images' fingerprint (the protocol's dataset identity) is the same; the labelled one not.
    assert a.fingerprint() == b.fingerprint() and a.identity_name == b.identity_name
    assert a.labelled_fingerprint() != b.labelled_fingerprint()
    assert c.labelled_fingerprint() == c.fingerprint()  # unlabelled: nothing to add
    pa, pb = (backbones.resolve_backbone("lenet", ds).path for ds in (a, b))
    assert pa != pb and pa.is_file() and pb.is_file()  # each labelling trains its own classifier
    protocols = [make_protocol(ds, num_real=30, num_fake=10) for ds in (a, b)]
    assert protocols[0].weights_sha256 != protocols[1].weights_sha256
    assert protocols[0].hash != protocols[1].hash


def test_mnist_5k_keeps_its_fingerprint_and_shipped_lenet_only_for_its_own_labels(monkeypatch):
    from zoo.data import ImageDataset
    from zoo.factory import load_dataset
    from zoo.metrics import backbones

    ds = load_dataset("mnist-5k")
    # Published results (benchmarks/results, protocol f9d5027522fe) name this images-only hash.
    assert ds.fingerprint() == "30c05f1f48cc1a75"
    assert backbones.resolve_backbone("lenet", ds).path == backbones.SHIPPED_LENET["mnist-5k"]
    trained = []
    monkeypatch.setattr(backbones, "train_lenet_for", lambda d, path, r=None, **kw: trained.append(d)
                        or backbones.SHIPPED_LENET["mnist-5k"])
    relabelled = ImageDataset("mnist-5k", ds.train, ds.test, (ds.train_labels + 1) % 10,
                              ds.test_labels, 10)
    assert relabelled.fingerprint() == ds.fingerprint()
    backbones.resolve_backbone("lenet", relabelled)
    assert trained == [relabelled]  # the shipped weights were not used for other labels


# -- exports: non-finite output and hostile folders ------------------------------------------------


def _gan_export(tmp_path: Path, fmt: str = "onnx") -> Path:
    from zoo.export import export_model
    from zoo.testing import tiny_model

    out = tmp_path / f"export-{fmt}"
    export_model(tiny_model("gan", (1, 28, 28)).eval(), out, fmt=fmt, info={"dataset": "mnist-5k"})
    return out


def test_export_refuses_a_network_with_non_finite_weights_and_writes_nothing(tmp_path):
    from zoo.errors import SampleError
    from zoo.export import export_model
    from zoo.testing import tiny_model

    model = tiny_model("gan", (1, 28, 28))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(SampleError, match="non-finite"):
        export_model(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_eval_of_an_export_with_nan_output_is_one_line(tmp_path, capsys):
    pytest.importorskip("onnxruntime")

    class Nan(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return (z.sum(1) * float("nan"))[:, None, None, None].expand(-1, 1, 28, 28)

    out = _gan_export(tmp_path, "torchscript")
    with pytest.warns(FutureWarning):  # torch.jit is deprecated, still loads
        latent = json.loads((out / "model.json").read_text())["inputs"][0]["shape"][1]
        torch.jit.trace(Nan(), torch.zeros(2, latent)).save(str(out / "model.pt"))
    code, stdout, err = zoo_in_process(capsys, "eval", str(out), "--num-fake", "20", "--num-real", "100")
    assert code == 1 and stdout == ""
    assert err.count("\n") == 1 and "non-finite" in err and "Traceback" not in err, err


def _tamper(out: Path, change) -> None:  # noqa: ANN001
    meta = json.loads((out / "model.json").read_text())
    change(meta)
    (out / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("case", ["no latent", "huge latent", "negative latent", "wrong latent", "unknown format",
                                  "no kind", "file outside", "file absolute", "file is a folder",
                                  "string shape", "denoiser without sampler"])
def test_hostile_model_json_is_one_line(tmp_path, capsys, case):
    pytest.importorskip("onnxruntime")
    out = _gan_export(tmp_path)
    (tmp_path / "elsewhere.onnx").write_bytes((out / "model.onnx").read_bytes())
    changes = {
        "no latent": lambda m: m["inputs"][0]["shape"].pop(),
        "huge latent": lambda m: m["inputs"][0]["shape"].__setitem__(1, 10**12),
        "negative latent": lambda m: m["inputs"][0]["shape"].__setitem__(1, -5),
        "wrong latent": lambda m: m["inputs"][0]["shape"].__setitem__(1, m["inputs"][0]["shape"][1] + 3),
        "unknown format": lambda m: m.__setitem__("format", "tflite"),
        "no kind": lambda m: m.pop("kind"),
        "file outside": lambda m: m.__setitem__("file", "../elsewhere.onnx"),
        "file absolute": lambda m: m.__setitem__("file", str(tmp_path / "elsewhere.onnx")),
        "file is a folder": lambda m: m.__setitem__("file", "sub"),
        "string shape": lambda m: m.__setitem__("image_shape", "1x28x28"),
        "denoiser without sampler": lambda m: m.__setitem__("kind", "denoiser"),
    }
    (out / "sub").mkdir()
    _tamper(out, changes[case])
    code, stdout, err = zoo_in_process(capsys, "eval", str(out), "--num-fake", "20", "--num-real", "100")
    assert code == 2 and stdout == "", (code, err)
    assert err.count("\n") == 1 and err.startswith("zoo: error:") and "Traceback" not in err, err


@pytest.mark.parametrize("where", ["outside", "symlink out", "proc", "fifo", "past its end"])
def test_onnx_external_data_must_be_a_regular_file_inside_the_folder(tmp_path, capsys, where):
    import os

    onnx = pytest.importorskip("onnx")
    from onnx.external_data_helper import convert_model_to_external_data

    out = _gan_export(tmp_path)
    model = onnx.load(str(out / "model.onnx"))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.save_model(model, str(out / "model.onnx"))
    assert (out / "weights.bin").is_file()
    secret = tmp_path / "secret.bin"
    secret.write_bytes((out / "weights.bin").read_bytes())
    model = onnx.load(str(out / "model.onnx"), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    entry = next(e for e in tensor.external_data if e.key == "location")
    if where == "outside":
        entry.value = "../secret.bin"
    elif where == "symlink out":
        os.symlink(secret, out / "link.bin")
        entry.value = "link.bin"
    elif where == "proc":
        entry.value = "../" * 40 + "proc/self/environ"
    elif where == "fifo":
        os.mkfifo(out / "pipe.bin")
        entry.value = "pipe.bin"
    else:
        next(e for e in tensor.external_data if e.key == "offset").value = str(10**9)
    onnx.save_model(model, str(out / "model.onnx"))
    code, stdout, err = zoo_in_process(capsys, "eval", str(out), "--num-fake", "20", "--num-real", "100")
    assert code == 2 and stdout == "", (code, err)
    assert err.count("\n") == 1 and "external data" in err, err


# -- bounded resources ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--version"], ["list"], ["leaderboard", "--format", "json"]])
def test_with_stdout_closed_every_command_is_one_line_on_stderr(tmp_path, args):
    import shlex
    import subprocess
    import sys

    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "zoo", *args])
    proc = subprocess.run(["bash", "-c", f"{command} >&-"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == "zoo: error: standard output is closed (redirect it to a file or /dev/null)\n"


def test_config_files_must_be_regular_and_small(tmp_path, capsys):
    import os

    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 2**20 + "\n")
    os.mkfifo(tmp_path / "fifo.toml")
    for path in ("/dev/zero", str(tmp_path / "fifo.toml"), str(big)):
        code, out, err = zoo_in_process(capsys, "train", "--config", path)
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert "not a regular file" in err or "over the limit of 1 MiB" in err


# -- plugin hooks: loggers and output formats --------------------------------------------------------


class _Faulty:
    def __init__(self, fault: str):
        self.fault, self.steps = fault, []

    def write(self, step, seconds, losses):  # noqa: ANN001
        if self.fault == "write":
            raise RuntimeError("disk on fire")
        self.steps.append(step)

    def close(self):
        if self.fault == "close":
            raise ValueError("[/] cannot close")


@pytest.mark.parametrize("fault", ["write", "close", "open raises", "open returns None", "open returns an int"])
def test_a_faulty_plugin_logger_warns_once_and_training_goes_on(tmp_path, monkeypatch, fault):
    import warnings

    import zoo
    import zoo.registry as registry_module
    from tests.test_loggers import dataset
    from zoo.factory import create_model
    from zoo.loggers import LoggerSpec, LoggerWarning
    from zoo.registry import build_registry
    from zoo.trainer import Trainer, TrainSettings, seed_everything

    def open_logger(context):  # noqa: ANN001
        if fault == "open raises":
            raise OSError("no such service")
        return {"open returns None": None, "open returns an int": 7}.get(fault, _Faulty(fault))

    module = type(zoo)("zoo_faulty_logger")

    @zoo.hookimpl
    def zoo_register_loggers(register):  # noqa: ANN001
        register(LoggerSpec("faulty", "fails", open_logger))

    module.zoo_register_loggers = zoo_register_loggers
    monkeypatch.setattr(registry_module, "_REGISTRY", build_registry(extra_plugins=[("faulty-logger", module)]))
    seed_everything(0)
    model = create_model("gan", (1, 8, 8), {"g_hidden": 16})
    settings = TrainSettings(steps=4, batch_size=8, checkpoint_every=2, sample_grid=0, loggers=("csv", "faulty"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(model, dataset(), settings, tmp_path / "run").fit()
    ours = [w for w in caught if issubclass(w.category, LoggerWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "logger 'faulty' of plugin 'faulty-logger'" in str(ours[0].message)
    assert len((tmp_path / "run" / "losses.csv").read_text().splitlines()) == 5  # header + all 4 steps


@pytest.mark.parametrize("fault", ["raises", "returns None", "returns an int"])
def test_a_faulty_plugin_format_is_one_line_naming_plugin_and_hook(tmp_path, capsys, monkeypatch, fault):
    import zoo
    import zoo.registry as registry_module
    from zoo.bench.formats import OutputFormat
    from zoo.registry import build_registry

    def render(boards):  # noqa: ANN001
        if fault == "raises":
            raise KeyError("[bold]x")
        return None if fault == "returns None" else 3

    module = type(zoo)("zoo_faulty_format")

    @zoo.hookimpl
    def zoo_register_formats(register):  # noqa: ANN001
        register(OutputFormat("faulty", ".txt", "fails", render))

    module.zoo_register_formats = zoo_register_formats
    monkeypatch.setattr(registry_module, "_REGISTRY", build_registry(extra_plugins=[("faulty-format", module)]))
    code, out, err = zoo_in_process(capsys, "leaderboard", "--results", str(tmp_path / "none.sqlite"),
                                    "--format", "faulty")
    lines = [line for line in err.splitlines() if not line.startswith("zoo: warning:")]
    assert code == 1 and out == "" and len(lines) == 1, err
    assert "output format 'faulty' of plugin 'faulty-format': render()" in lines[0]


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    from zoo.cli.app import run

    base = tmp_path_factory.mktemp("gan-run")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse isolation has not run yet
        mp.setenv("ZOO_CACHE_DIR", str(base / "cache"))
        code = run(["train", "gan", "--steps", "2", "--batch-size", "16", "--set", "g_hidden=32", "--run-dir",
                    str(base / "run"), "--no-progress"])
    assert code == 0
    return base / "run"


def test_a_killed_sample_npz_temp_file_is_removed_on_the_next_start_but_a_live_one_is_kept(tmp_path, capsys,
                                                                                             gan_run):
    import fcntl
    import os

    dead = tmp_path / ".x.npz.abcd1234.tmp"  # what SIGKILL during `zoo sample --out x.npz` leaves
    dead.write_bytes(b"\0" * 4096)
    live = tmp_path / ".x.npz.live5678.tmp"
    live.write_bytes(b"\0" * 16)
    other = tmp_path / ".y.npz.abcd1234.tmp"  # another output's: not this command's to remove
    other.write_bytes(b"")
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # a writer still at work
        code, _, err = zoo_in_process(capsys, "sample", str(gan_run), "-n", "5", "--out", str(tmp_path / "x.npz"))
    assert code == 0, err
    assert not dead.exists() and live.exists() and other.exists()
    assert np.load(tmp_path / "x.npz")["images"].shape[0] == 5
    assert sorted(os.listdir(tmp_path)) == sorted([".x.npz.live5678.tmp", ".y.npz.abcd1234.tmp", "x.npz"])


def test_sampling_batch_size_is_capped(tmp_path, capsys, gan_run):
    code, out, err = zoo_in_process(capsys, "sample", str(gan_run), "-n", "5", "--batch-size", "1000000",
                                    "--out", str(tmp_path / "a.npz"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "--batch-size 1,000,000 is over the limit" in err
    code, out, err = zoo_in_process(capsys, "sample", str(gan_run), "-n", "5", "--batch-size", "4096",
                                    "--out", str(tmp_path / "b.npz"), "--json")
    assert code == 0, err
    assert json.loads(out)["batch_size"] == 5  # never more than the images asked for
