"""``zoo bench --tune N``: every model gets the same tuning effort before it is benchmarked.

Lucic et al. 2018 ("Are GANs Created Equal?") found that most GAN variants reach similar FID
once each gets the same hyperparameter search, and that comparisons without one mislead. Here each
model searches the space its config declares (`zoo.search`) with the same ``N`` trials, each
trained at the same reduced *trial budget* (a quarter of the full budget unless
``--tune-budget`` says otherwise) and scored under the benchmark's own protocol; then the best
trial's config is trained at the full budget on the requested seeds like any other job.

* **Sampler**: Optuna's TPE, seeded per trial from (tuning seed, study, trial number), so the same
  command picks the same trials, and a resumed study picks what an uninterrupted one would have
  (the sampler sees only the stored trials). Below TPE's 10 start-up trials this is seeded random
  search, Lucic et al.'s own method.
* **Pruner**: successive halving (Optuna's ``SuccessiveHalvingPruner``, reduction factor 2):
  a trial reports its score at 1/4 and 1/2 of the trial budget and stops where it falls out of
  the best half of the trials that reached that rung. Pruned trials count towards ``N``.
* **Store**: each finished trial is committed to the store's ``tuning_trials`` table
  (`zoo.bench.trials`); re-running the command skips them. The tuned rows record the effort
  (``tuning``: trials, trial budget, search-space hash, sampler, pruner, seed) in their identity,
  so rows tuned differently never rank together.

Optuna is an optional dependency (``pip install 'genzoo[tune]'``); without it ``--tune`` stops
with one line before any work.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zoo.budget import Budget
from zoo.errors import UsageError, ZooError
from zoo.search import Choice, Float, Int, Param, search_space, space_hash

__all__ = [
    "RUNG_POINTS",
    "TRIAL_FRACTION",
    "TuneSettings",
    "check_tune_request",
    "require_optuna",
    "tune_plans",
]

#: The default trial budget, as a fraction of the full budget.
TRIAL_FRACTION = 0.25
#: Where trials report to the pruner (fractions of the trial budget): successive halving's rungs.
RUNG_POINTS = (0.25, 0.5)
REDUCTION_FACTOR = 2
#: Resource steps the pruner sees: a trial budget is 4 units, the first rung at 1.
_UNITS = 4
SAMPLER = "optuna-tpe"
PRUNER = f"successive-halving(eta={REDUCTION_FACTOR},rungs=1/4,1/2)"


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError("zoo bench --tune needs Optuna: pip install 'genzoo[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass(frozen=True)
class TuneSettings:
    """``n_trials`` per model at ``trial_budget`` each; ``seed`` seeds the sampler and every
    trial's training (so trials differ only by their hyperparameters)."""

    n_trials: int
    trial_budget: Budget
    seed: int = 0

    def effort(self, space: Mapping[str, Param]) -> dict[str, Any]:
        """What goes into a tuned row's identity (``ResultRow.tuning``)."""
        return {
            "n_trials": self.n_trials,
            "trial_budget": str(self.trial_budget),
            "space": space_hash(space),
            "sampler": SAMPLER,
            "pruner": PRUNER,
            "seed": self.seed,
        }


def trial_budget(full: Budget, text: str | None) -> Budget:
    """``--tune-budget`` when given, else `TRIAL_FRACTION` of ``full`` (at least one step)."""
    if text:
        return Budget.parse(text)
    if full.kind == "steps":
        return Budget("steps", max(1, math.ceil(full.amount * TRIAL_FRACTION)))
    return Budget(full.kind, full.amount * TRIAL_FRACTION)


def _space_of(plan: Any, fixed: Mapping[str, Any]) -> dict[str, Param]:
    """The model's declared space less the keys the user fixed with ``--set MODEL.KEY``."""
    mine = {k.rpartition(".")[2] for k in fixed if k.rpartition(".")[0] == plan.name}
    return {k: v for k, v in search_space(plan.cls.Config).items() if k not in mine}


def check_tune_request(n_trials: Any, plans: Sequence[Any], overrides: Mapping[str, Any]) -> None:
    """Everything wrong with ``--tune`` as one line, before any work (UsageError)."""
    from zoo.bench.sweep import Sweep

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise UsageError(f"--tune needs a whole number of trials of at least 1, got {n_trials!r}")
    swept = [k for k, v in overrides.items() if isinstance(v, Sweep)]
    if swept:
        raise UsageError(
            f"--tune searches each model's space itself; drop the sweep over {swept[0]} "
            "(or fix it with one --set value)"
        )
    for plan in plans:
        if not _space_of(plan, overrides):
            raise UsageError(
                f"model {plan.name!r} declares no search space to tune (its Config.search_space is "
                "empty, or --set fixes all of it; docs/plugins.md)"
            )
    require_optuna()


def _distribution(optuna: Any, param: Param) -> Any:
    if isinstance(param, Float):
        return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log)
    if isinstance(param, Int):
        return optuna.distributions.IntDistribution(param.low, param.high, log=param.log)
    assert isinstance(param, Choice)
    return optuna.distributions.CategoricalDistribution(param.values)


def _rounded(params: Mapping[str, Any], space: Mapping[str, Param]) -> dict[str, Any]:
    """Floats to 3 significant digits (readable labels, repeatable with ``--set``), in range."""
    out = {}
    for name, value in params.items():
        param = space[name]
        if isinstance(param, Float) and value:
            value = float(f"{value:.3g}")
            value = min(max(value, param.low), param.high)
        out[name] = value
    return out


def _digest(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def study_key(
    plan: Any, settings: TuneSettings, space: Mapping[str, Param], protocol: Any, optuna: Any
) -> str:
    """Everything the trials depend on: the effort, the model and its base config, the protocol,
    the precision and batch size, and Optuna's version (its sampler may change between versions)."""
    version = ".".join(optuna.__version__.split(".")[:2])
    return _digest(
        settings.effort(space),
        plan.name,
        plan.plugin_version,
        plan.config_hash,
        plan.precision,
        plan.batch_size,
        protocol.hash,
        protocol.dataset_fingerprint,
        version,
    )[:16]


class _Pruned(Exception):
    """Raised from a rung evaluation to stop a trial that successive halving drops."""


@dataclass
class TuneContext:
    """What tuning needs from the benchmark: ``runner`` evaluates under its protocol (a
    `BenchRunner` at the trial budget), ``replan(name, overrides)`` builds
    a model's plan with ``{"model.key": value}`` overrides like the request's own."""

    runner: Any
    replan: Callable[[str, dict[str, Any]], Any]
    overrides: Mapping[str, Any]
    store: Any
    progress: Any


def tune_plans(plans: Sequence[Any], settings: TuneSettings, ctx: TuneContext) -> list[Any]:
    """Run (or resume) every model's trials; returns one plan per model, its best trial's config
    with ``tuning`` set. Raises [`ZooError`][zoo.errors.ZooError] when no trial of a model completed."""
    optuna = require_optuna()
    return [_tune_one(plan, settings, ctx, optuna) for plan in plans]


def trials_of(
    plan: Any, settings: TuneSettings, ctx: TuneContext, optuna: Any
) -> tuple[str, dict[str, Param], list[Any]]:
    from zoo.bench.trials import study_trials

    space = _space_of(plan, ctx.overrides)
    key = study_key(plan, settings, space, ctx.runner.protocol, optuna)
    return key, space, study_trials(ctx.store, key)


def best_plan(
    plan: Any,
    settings: TuneSettings,
    ctx: TuneContext,
    space: Mapping[str, Param],
    done: Sequence[Any],
    lower: bool,
) -> Any:
    complete = [t for t in done if t.state == "complete" and math.isfinite(t.value)]
    if not complete:
        states = ", ".join(f"{sum(t.state == s for t in done)} {s}" for s in ("failed", "pruned"))
        last = next((t.error for t in reversed(done) if t.error), "")
        raise ZooError(
            f"{plan.name}: none of its {len(done)} trials completed ({states})"
            + (f"; last error: {last}" if last else "")
        )
    best = min(complete, key=lambda t: (t.value if lower else -t.value, t.number))
    tuned = ctx.replan(plan.name, {f"{plan.name}.{k}": v for k, v in best.params.items()})
    tuned.tuning = settings.effort(space)
    return tuned


def _tune_one(plan: Any, settings: TuneSettings, ctx: TuneContext, optuna: Any) -> Any:
    from zoo.metric_names import higher_is_better

    primary = ctx.runner.protocol.primary_metric
    lower = not higher_is_better(primary)
    key, space, done = trials_of(plan, settings, ctx, optuna)
    numbers = {t.number for t in done}
    if numbers:
        more = "" if len(numbers) >= settings.n_trials else "; resuming"
        ctx.progress.message(
            f"[{plan.name} tuning] {len(numbers)} of {settings.n_trials} trials already in "
            f"the store{more}"
        )
    for number in range(settings.n_trials):
        if number in numbers:
            continue
        record = _run_trial(
            plan,
            number,
            key,
            space,
            sorted(done, key=lambda t: t.number),
            settings,
            ctx,
            optuna,
            lower,
        )
        done.append(record)
    return best_plan(plan, settings, ctx, space, done, lower)


def _study(
    optuna: Any,
    key: str,
    number: int,
    settings: TuneSettings,
    space: Mapping[str, Param],
    history: Sequence[Any],
    lower: bool,
) -> tuple[Any, dict[str, Any]]:
    """A fresh in-memory study holding ``history``, its sampler seeded for trial ``number``."""
    seed = int(_digest(settings.seed, key, number)[:8], 16)
    study = optuna.create_study(
        direction="minimize" if lower else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=REDUCTION_FACTOR, min_early_stopping_rate=0
        ),
    )
    dists = {name: _distribution(optuna, p) for name, p in space.items()}
    states = {
        "complete": optuna.trial.TrialState.COMPLETE,
        "pruned": optuna.trial.TrialState.PRUNED,
        "failed": optuna.trial.TrialState.FAIL,
    }
    for t in history:
        study.add_trial(
            optuna.trial.create_trial(
                state=states[t.state],
                value=t.value if t.state == "complete" else None,
                params=t.params,
                distributions=dists,
                intermediate_values={int(s): v for s, v in t.intermediate.items()},
                system_attrs=t.system_attrs,
            )
        )
    return study, dists


def _run_trial(
    plan: Any,
    number: int,
    key: str,
    space: Mapping[str, Param],
    history: Sequence[Any],
    settings: TuneSettings,
    ctx: TuneContext,
    optuna: Any,
    lower: bool,
) -> Any:
    from zoo import guard
    from zoo.bench.trials import TrialRecord, add_trial
    from zoo.errors import UserInterrupt
    from zoo.text import one_line
    from zoo.trainer import Interrupted

    study, dists = _study(optuna, key, number, settings, space, history, lower)
    trial = study.ask(dists)
    params = _rounded(trial.params, space)
    label = " ".join(f"{k}={v}" for k, v in params.items())
    tag = f"[{plan.name} trial {number + 1}/{settings.n_trials}]"
    primary = ctx.runner.protocol.primary_metric
    reported: dict[str, float] = {}
    state, value, error, trial_plan = "complete", math.nan, None, None
    try:
        trial_plan = ctx.replan(plan.name, {f"{plan.name}.{k}": v for k, v in params.items()})
        ctx.progress.message(f"{tag} {label} ({settings.trial_budget})")

        def on_rung(fraction: float, metrics: Mapping[str, float]) -> None:
            step = round(fraction * _UNITS)
            reported[str(step)] = float(metrics[primary])
            trial.report(float(metrics[primary]), step)
            if trial.should_prune():
                raise _Pruned

        with guard.torch_state(), guard.user_interrupts():
            value = _train_and_score(trial_plan, settings, ctx, on_rung)
        study.tell(trial, value)
    except _Pruned:
        state = "pruned"
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    except (Interrupted, UserInterrupt, KeyboardInterrupt):
        raise  # not recorded: a resumed run tries this trial again, with the same parameters
    except Exception as exc:  # the model failed with these values: a failed trial, the others go on
        state, error = "failed", str(exc) if isinstance(exc, ZooError) else one_line(exc)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    frozen = study.trials[-1]
    record = TrialRecord(
        study=key,
        number=number,
        model=plan.name,
        family=plan.cls.family,
        dataset=ctx.runner.protocol.dataset,
        protocol_hash=ctx.runner.protocol.hash,
        tuning=settings.effort(space),
        state=state,
        params=params,
        value=value if state == "complete" else math.nan,
        intermediate=reported,
        system_attrs=dict(frozen.system_attrs),
        config_label=trial_plan.config_label if trial_plan else label,
        config_hash=trial_plan.config_hash if trial_plan else "",
        error=error,
    )
    add_trial(ctx.store, record)
    shown = (
        f"{primary} {value:.3f}"
        if state == "complete"
        else (
            f"pruned at {max(map(int, reported), default=0) / _UNITS:.0%} "
            f"({primary} {record.last_value:.3f})"
            if state == "pruned"
            else f"failed: {error}"
        )
    )
    ctx.progress.message(f"{tag} {shown}")
    return record


def _rungs(budget: Budget) -> list[float]:
    """`RUNG_POINTS`, less those a steps budget reaches only at its end (a 1-step trial
    has no rung: evaluating it three times after one step would tell the pruner nothing)."""
    if budget.kind != "steps":
        return list(RUNG_POINTS)
    return [
        p
        for p in RUNG_POINTS
        if math.floor(p * budget.amount) >= 1 and p * budget.amount < budget.amount
    ]


def _train_and_score(
    plan: Any,
    settings: TuneSettings,
    ctx: TuneContext,
    on_rung: Callable[[float, Mapping[str, float]], None],
) -> float:
    """Train ``plan`` for the trial budget (no files written), reporting at `RUNG_POINTS`;
    returns the primary metric at the end, with the plan's cheapest sampler setting."""
    from zoo.factory import create_model
    from zoo.trainer import Trainer, TrainSettings, seed_everything

    runner = ctx.runner
    job = runner.job(plan, settings.seed)
    train = TrainSettings(
        budget=str(settings.trial_budget),
        batch_size=plan.batch_size,
        seed=settings.seed,
        device=str(runner.device),
        precision=plan.precision,
        sample_grid=0,
        loggers=(),
    )
    seed_everything(settings.seed)
    model = create_model(plan.entry.cls, runner.dataset.image_shape, plan.overrides)
    trainer = Trainer(model, runner.dataset, train, None)

    def on_point(trainer: Trainer, fraction: float, _spent: Any) -> None:
        metrics, _, _, _ = runner._evaluate(trainer.model, job, plan.curve_setting, grid=False)
        on_rung(fraction, metrics)

    with ctx.progress.training(f"{plan.name} trial") as callback:
        trainer.progress = callback
        trainer.fit(on_point=on_point, points=_rungs(settings.trial_budget))
    metrics, _, _, _ = runner._evaluate(trainer.model, job, plan.curve_setting, grid=False)
    return float(metrics[runner.protocol.primary_metric])


def settings_for(request: Any, plans: Sequence[Any], budget: Budget) -> TuneSettings | None:
    """A request's ``--tune`` settings, checked before any work (UsageError); ``None`` without."""
    if request.tune is None:
        if request.tune_budget is not None:
            raise UsageError("--tune-budget needs --tune N")
        return None
    check_tune_request(request.tune, plans, request.overrides)
    seed = request.tune_seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UsageError(f"the tuning seed must be a whole number in 0..2**63-1, got {seed!r}")
    settings = TuneSettings(request.tune, trial_budget(budget, request.tune_budget), seed)
    for plan in plans:
        _check_trial_budget(settings.trial_budget, budget, plan.batch_size, plan.name)
    return settings


def _check_trial_budget(trial: Budget, full: Budget, batch_size: int, model: str) -> None:
    """A trial budget above the full budget is a UsageError: tuning would cost more than the runs
    it tunes, and the winner would be chosen at a budget it never gets. Steps and kimg compare
    through the model's batch size; other kinds only with their own."""
    def kimg(b: Budget) -> float | None:
        return {"kimg": b.amount, "steps": b.amount * batch_size / 1000}.get(b.kind)

    same = trial.kind == full.kind
    if not same and (kimg(trial) is None or kimg(full) is None):  # seconds against steps: no common measure
        raise UsageError(f"--tune-budget {trial} and {model}'s budget {full} cannot be compared; give the trial "
                         f"budget in {full.kind}" + (" (or steps/kimg)" if full.kind in ("steps", "kimg") else ""))
    more = trial.amount > full.amount if same else (kimg(trial) or 0) > (kimg(full) or math.inf)
    if more:
        raise UsageError(f"--tune-budget {trial} is more than {model}'s budget ({full}); a trial gets at "
                         "most the full budget (default: a quarter of it)")


def context_for(request: Any, reg: Any, runner: Any, store: Any, progress: Any, settings: TuneSettings,
                **plan_args: Any) -> TuneContext:
    """What tuning needs from a benchmark request: a copy of its runner at the trial budget,
    evaluating at the rungs, and a way to plan one model with extra ``{"model.key": value}``
    overrides exactly as the request plans it (``plan_args``: preset, dataset, device)."""
    import copy

    from zoo.bench.runner import plan_models
    from zoo.bench.sweep import _applies

    trial_runner = copy.copy(runner)
    trial_runner.budget, trial_runner.points = settings.trial_budget, list(RUNG_POINTS)

    def replan(name: str, params: dict[str, Any]) -> Any:
        declared = {o.name for o in reg.entry(name).cls.sample_options}
        own = {k: v for k, v in request.overrides.items() if k.rpartition(".")[0] == name}
        options = {k: v for k, v in request.options.items() if _applies(k, name, declared)}
        return plan_models(reg, [name], precision=request.precision, batch_size=request.batch_size,
                           overrides={**own, **params}, options=options, **plan_args)[0]

    return TuneContext(trial_runner, replan, request.overrides, store, progress)


def tune_request(request: Any, reg: Any, plans: Sequence[Any], settings: TuneSettings, runner: Any, store: Any,
                 progress: Any, **plan_args: Any) -> list[Any]:
    """`tune_plans` for a benchmark request: each model's tuned plan."""
    progress.message(f"tuning: {settings.n_trials} trial(s) per model at {settings.trial_budget} each")
    ctx = context_for(request, reg, runner, store, progress, settings, **plan_args)
    return tune_plans(plans, settings, ctx)
