"""Plugin hooks that fail (issue 27 item 6): a logger warns and training goes on; an output
format is one line naming the plugin and the hook."""

from __future__ import annotations

import pytest

from tests.helpers import zoo_in_process

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
