"""``zoo bench --dry-run``: the jobs a request would run, and which the store already holds.

Nothing is trained, sampled or written: the request is resolved exactly as a real run resolves it
(names, configs and sweeps, sampling settings, budget, seeds), and each job's rows are looked up
in the results store by identity. The identity needs the protocol's hash, which needs the metric
backbone's weights; when those are not ready on this machine (the domain classifier not trained
yet, Inception weights not downloaded) getting them is work, so a dry run does not: it lists the
jobs with ``stored`` unknown (``None``) and says why.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.errors import MetricsError

__all__ = ["PlannedJob", "dry_run", "planned_jobs", "protocol_if_ready", "render_plan"]


@dataclass
class PlannedJob:
    """One job of a request. ``kind``: ``"train"`` (a benchmark job), ``"trial"`` (a tuning trial
    at the trial budget) or ``"tuned"`` (the best trial's config at the full budget). ``stored``:
    whether every row the job writes is already in the store with status ok (``None``: unknown)."""

    model: str
    config_label: str
    seed: int
    budget: str
    stored: bool | None
    kind: str = "train"
    config_hash: str = ""
    sample_options: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def planned_jobs(jobs: Sequence[Any], store: Any) -> list[PlannedJob]:
    """A `PlannedJob` per runner job (`zoo.bench.runner.Job`); ``store`` may be
    ``None`` (no store yet: nothing is stored)."""
    out = []
    for job in jobs:
        found = [store.find(i) for i in job.identities] if store is not None else [None]
        stored = all(r is not None and r.status == "ok" for r in found)
        out.append(
            PlannedJob(
                job.plan.name,
                job.plan.config_label,
                job.seed,
                str(job.budget),
                stored,
                kind="tuned" if getattr(job.plan, "tuning", None) else "train",
                config_hash=job.plan.config_hash,
                sample_options=list(job.plan.sample_settings),
                run_dir=str(job.run_dir),
            )
        )
    return out


def unplanned_jobs(
    plans: Sequence[Any], seeds: Sequence[int], budget: Any, note: str
) -> list[PlannedJob]:
    """Jobs whose identity is unknown (no protocol yet): ``stored`` is ``None``."""
    return [
        PlannedJob(
            p.name,
            p.config_label,
            s,
            str(budget),
            None,
            config_hash=p.config_hash,
            sample_options=list(p.sample_settings),
            note=note,
        )
        for p in plans
        for s in seeds
    ]


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    from zoo.metrics.backbones import OFFLINE_ENV

    before = os.environ.get(OFFLINE_ENV)
    os.environ[OFFLINE_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(OFFLINE_ENV, None)
        else:
            os.environ[OFFLINE_ENV] = before


def _lenet_ready(dataset: Any) -> bool:
    """Whether the domain classifier's weights for ``dataset`` exist (shipped or cached)."""
    from zoo.metrics import backbones

    if dataset.train_labels is None or dataset.num_classes is None:
        return True  # make_protocol refuses it with one line: no training either way
    if backbones._shipped_lenet(dataset) is not None:
        return True
    recipe = backbones.DEFAULT_RECIPE
    return backbones.lenet_cache_path(dataset, recipe, dataset.labelled_fingerprint()).is_file()


def protocol_if_ready(
    dataset: Any, *, backbone: str, inception_weights: str | None = None, **kwargs: Any
) -> tuple[Any, str]:
    """``(protocol, "")`` where `zoo.metrics.make_protocol` needs no training and no download
    (run with ``$ZOO_OFFLINE`` set); else ``(None, why)``. Usage errors still raise."""
    from zoo.metrics import make_protocol
    from zoo.metrics.backbones import check_lenet_labels, default_backbone

    name = default_backbone(dataset) if backbone == "auto" else backbone
    if name == "lenet" and kwargs.get("weights_path") is None:
        check_lenet_labels(dataset)  # what the real run would refuse, refused here too
    if name == "lenet" and not _lenet_ready(dataset):
        return (
            None,
            "the lenet backbone is not trained yet here (the first real run trains and caches it)",
        )
    try:
        with _offline():
            return make_protocol(
                dataset, backbone=backbone, inception_weights=inception_weights, **kwargs
            ), ""
    except MetricsError as exc:
        if "offline" not in str(exc):
            raise
        return None, f"the {name} backbone's weights are not here yet (a real run downloads them)"


def render_plan(planned: Sequence[PlannedJob], width: int = 80) -> str:
    """The jobs as a plain table that fits ``width`` columns, with a one-line summary."""
    from zoo.text import printable

    stored = sum(1 for j in planned if j.stored)
    unknown = sum(1 for j in planned if j.stored is None)
    head = (
        f"dry run: {len(planned)} job(s), {stored} already in the store"
        + (f", {unknown} unknown" if unknown else "")
        + "; nothing was trained"
    )
    rows: list[tuple[Any, ...]] = [("model", "config", "seed", "budget", "in store", [])]
    for j in planned:
        label = j.config_label or "(defaults)"
        if j.kind != "train":
            label = f"{j.kind}: {label}" if j.config_label else j.kind
        # what each of the job's rows samples with (each setting is a board line of its own)
        settings = [printable(", ".join(f"{k}={v}" for k, v in o.items())) for o in j.sample_options if o]
        rows.append(
            (
                printable(j.model),
                printable(label),
                str(j.seed),
                j.budget,
                "?" if j.stored is None else "yes" if j.stored else "no",
                settings,
            )
        )
    fixed = [max(len(r[i]) for r in rows) for i in (0, 2, 3, 4)]
    room = min(max(len(r[1]) for r in rows), max(10, width - sum(fixed) - 2 * 4 - 2))
    lines = [head]

    def fit(text: str) -> str:
        return text if len(text) <= width else text[: width - 3] + "..."

    for model, label, seed, budget, where, settings in rows:
        if len(label) > room:
            label = label[: room - 3] + "..."
        lines.append(
            "  "
            + "  ".join(
                [
                    model.ljust(fixed[0]),
                    label.ljust(room),
                    seed.rjust(fixed[1]),
                    budget.ljust(fixed[2]),
                    where,
                ]
            ).rstrip()
        )
        lines += [fit(f"{' ' * (4 + fixed[0])}sampling: {setting}") for setting in settings]
    notes = sorted({j.note for j in planned if j.note})
    return "\n".join(lines + [f"note: {n}" for n in notes])


def dry_run(request: Any, reg: Any, plans: Sequence[Any], *, preset: Any, seeds: Sequence[int], budget: Any,
            dataset: Any, store_path: Any, tune_settings: Any = None) -> tuple[Any, Any, list[PlannedJob]]:
    """``(store or None, protocol or None, jobs)`` of a resolved request ([`zoo.bench.run_benchmark`][zoo.bench.run_benchmark]
    with ``dry_run``): opens the store only if it exists, trains and writes nothing."""
    from pathlib import Path

    from zoo.bench.runner import BenchProgress, BenchRunner
    from zoo.bench.store import ResultsStore
    from zoo.device import resolve_device

    store_path = Path(store_path)
    store = ResultsStore(store_path, create=False) if store_path.is_file() else None
    protocol, why = protocol_if_ready(
        dataset, num_real=min(preset.num_real, len(dataset.train)),
        num_fake=min(request.num_fake or preset.num_fake, len(dataset.test)), backbone=request.backbone,
        inception_weights=request.inception_weights)
    if protocol is None:
        return store, None, unplanned_jobs(plans, seeds, budget, why) + external_jobs(request, reg, plans, dataset,
                                                                                     None, store, why)
    runs_dir = Path(request.runs_dir) if request.runs_dir is not None else store_path.parent / "bench"
    runner = BenchRunner(dataset=dataset, protocol=protocol, store=store, preset=preset, budget=budget,
                         device=resolve_device(request.device), runs_dir=runs_dir, curve_points=request.curve_points)
    if tune_settings is not None:
        from zoo.bench.tuning import context_for

        ctx = context_for(request, reg, runner, store, BenchProgress(), tune_settings, preset=preset,
                          dataset=dataset, device=runner.device)
        jobs = planned_tuning(plans, tune_settings, ctx, seeds, runner)
    else:
        jobs = planned_jobs([runner.job(plan, seed) for plan in plans for seed in seeds], store)
    return store, protocol, jobs + external_jobs(request, reg, plans, dataset, protocol, store, "")


def external_jobs(request: Any, reg: Any, plans: Sequence[Any], dataset: Any, protocol: Any, store: Any,
                  why: str) -> list[PlannedJob]:
    """A `PlannedJob` (kind ``external``) per ``--samples`` source. With a protocol each source is
    read and checked as the real run reads it (a bad one is the same one-line UsageError); without
    one only its name is checked and ``stored`` is ``None``."""
    from pathlib import Path

    from zoo.bench.external import check_name, load_entries

    samples = {name: [Path(p) for p in paths] for name, paths in (request.samples or {}).items()}
    models = [*reg.models, *(p.name for p in plans)]
    if protocol is None:
        for name in samples:
            check_name(name, models)
        return [PlannedJob(name, str(path), seed, "-", None, kind="external", note=why)
                for name, paths in samples.items() for seed, path in enumerate(paths)]
    sources = load_entries(samples, dataset, protocol, models=models) if samples else []
    done = {(r.model, r.seed) for r in store.rows(dataset=protocol.dataset, protocol_hash=protocol.hash, status="ok")
            } if store is not None and sources else set()
    return [PlannedJob(src.name, str(src.path), src.seed, "-", (src.name, src.seed) in done, kind="external")
            for src in sources]


def planned_tuning(
    plans: Sequence[Any],
    settings: Any,
    ctx: Any,
    seeds: Sequence[int],
    full_runner: Any,
) -> list[Any]:
    """``--dry-run --tune``: each model's trials (done or to run) and tuned jobs; runs nothing."""
    from zoo.bench.tuning import best_plan, require_optuna, trials_of
    from zoo.errors import ZooError
    from zoo.metric_names import higher_is_better

    optuna = require_optuna()
    lower = not higher_is_better(ctx.runner.protocol.primary_metric)
    out: list[Any] = []
    for plan in plans:
        _, space, done = trials_of(plan, settings, ctx, optuna)
        by_number = {t.number: t for t in done}
        for n in range(settings.n_trials):
            t = by_number.get(n)
            label = f"#{n + 1} " + (
                f"{t.config_label} ({t.state})" if t else "(sampled when it runs)"
            )
            out.append(
                PlannedJob(
                    plan.name,
                    label,
                    settings.seed,
                    str(settings.trial_budget),
                    t is not None,
                    kind="trial",
                    config_hash=t.config_hash if t else "",
                )
            )
        if len(by_number) >= settings.n_trials:
            try:
                tuned = best_plan(plan, settings, ctx, space, done, lower)
            except ZooError as exc:
                out.append(
                    PlannedJob(
                        plan.name,
                        "no tuned config",
                        seeds[0],
                        str(full_runner.budget),
                        False,
                        kind="tuned",
                        note=str(exc),
                    )
                )
                continue
            out += planned_jobs([full_runner.job(tuned, s) for s in seeds], ctx.store)
        else:
            out += [
                PlannedJob(
                    plan.name,
                    f"best of {settings.n_trials} trials",
                    s,
                    str(full_runner.budget),
                    False,
                    kind="tuned",
                )
                for s in seeds
            ]
    return out
