"""The verbs floor: one request dataclass and one function per command, each returning a result
and printing nothing. ``zoo train|sample|eval|bench`` parse their options into a request, call the
function and print what it returns; notebooks and scripts call the same functions:

    from zoo.api import TrainRequest, train
    result = train(TrainRequest("vae", steps=100, run_dir="runs/vae"))

Progress goes to an optional ``reporter`` (a `Reporter`: ``training(label)`` yields the
trainer's progress callback, ``tasks()`` a ``progress(task, done, total)`` callback); warnings go
through `warnings`; errors are [`zoo.errors.ZooError`][zoo.errors.ZooError] subclasses (``UsageError`` for a
bad request, raised before any work).
"""

from __future__ import annotations

from zoo.api.benchmarking import BenchRequest, BenchResult, benchmark
from zoo.api.evaluation import EvalRequest, EvalResult, EvalWarning, evaluate
from zoo.api.sampling import SampleRequest, SampleResult, sample
from zoo.api.training import ResumeRequest, TrainRequest, resume, train
from zoo.bench.runner import BenchProgress as Reporter
from zoo.trainer import TrainResult

__all__ = [
    "BenchRequest", "BenchResult", "EvalRequest", "EvalResult", "EvalWarning", "Reporter", "ResumeRequest",
    "SampleRequest", "SampleResult", "TrainRequest", "TrainResult", "benchmark", "evaluate", "resume", "sample",
    "train",
]
