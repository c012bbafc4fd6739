"""Rank groups and power for a leaderboard: statistics only, no tables.

Groups are a compact letter display (Piepho 2004, insert-and-absorb) built from all pairwise
Welch t-tests over seeds with Holm's correction: lines sharing a letter are not significantly
different. A pair at an uncorrected p below `ALWAYS_APART` is always told apart, so on a
board with many lines Holm's correction cannot put two clearly different lines in one group.

Power is that of one two-sided Welch test between two lines of ``n`` seeds each with the same
seed-to-seed standard deviation: given the sample variances' share ``r`` (Beta((n-1)/2, (n-1)/2)
under equal variances, independent of their sum and of the means), Welch's statistic is a
noncentral t with ``2n - 2`` degrees of freedom and only its critical value depends on ``r``
(through Welch's degrees of freedom), so the power is a one-dimensional integral over ``r``
(Gauss-Legendre). scipy.special only: scipy.stats takes about a second to import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Holm's familywise level for the pairwise tests.
ALPHA = 0.05
#: Two lines whose seeds differ at this uncorrected p never share a group.
ALWAYS_APART = 0.01
#: The power at which the board states the smallest detectable difference.
POWER = 0.8
#: Seeds per line beyond which `seeds_needed` gives up (returns ``None``).
MAX_SEEDS = 1000
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Columns of the insert-and-absorb display past which it stops (no letters): a display that
#: needs them is far past 52 letters in practice, and each split costs a pass over the columns.
MAX_COLUMNS = 4 * len(LETTERS)
#: Boards with more lines of >= 2 seeds get no letters (the footnote says so): the all-pairs
#: tests and the display grow as the square of the lines, and past a few hundred lines 52
#: letters hold only boards where nearly every line ties with every other.
MAX_LETTER_LINES = 200


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    return holm_array(np.asarray(p_values, dtype=float)).tolist()


def holm_array(p_values: np.ndarray) -> np.ndarray:
    """`holm` on an array (float64, any length; ties keep their input order)."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p_values[order]))
    return adjusted


def pairwise_welch(values: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Welch's two-sided p-value for every pair of lines ``i < j`` (each line's finite values,
    >= 2 a line), vectorised: arrays ``(i, j, p)`` of length ``L (L - 1) / 2``, row-major. Pairs
    where neither line has any spread get 0 when their means differ and 1 when they do not
    (``zoo.bench.aggregate.pair_p_value`` pair by pair; Welch 1947, as
    ``scipy.stats.ttest_ind(a, b, equal_var=False)``)."""
    from scipy import special

    n = np.array([len(v) for v in values], dtype=float)
    with np.errstate(invalid="ignore"):  # an infinite score (read from a store): NaN spread, no warning
        mean = np.array([np.mean(v) for v in values], dtype=float)
        var = np.array([np.var(v, ddof=1) for v in values], dtype=float) / n  # squared standard errors
    i, j = np.triu_indices(len(values), k=1)
    se2 = var[i] + var[j]
    with np.errstate(invalid="ignore"):
        spread = se2 > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean[i] - mean[j]) / np.sqrt(se2)
        df = se2 * se2 / (var[i] ** 2 / (n[i] - 1) + var[j] ** 2 / (n[j] - 1))
        p = np.where(spread, 2 * special.stdtr(df, -np.abs(t)), (mean[i] == mean[j]).astype(float))
    return i, j, p


def letter_groups(order: Sequence[int], different: set[tuple[int, int]]) -> list[str] | None:
    """Compact letter display of the items ``order`` (best first): one string of letters per item,
    in ``order``'s order; two items share a letter if and only if their pair is not in
    ``different`` (pairs as ``(i, j)`` either way round). Letters go to groups in order of their
    best member, so the best item reads ``a``. ``None`` when more than 52 letters are needed."""
    position = {item: k for k, item in enumerate(order)}
    pairs = [(position[i], position[j]) for i, j in different]
    return position_letters(len(order), pairs)


def position_letters(n: int, different: Sequence[tuple[int, int]] | np.ndarray) -> list[str] | None:
    """`letter_groups` on positions ``0 .. n - 1`` (best first) with ``different`` as position
    pairs. Piepho's insert-and-absorb with each column a bit mask (a Python int): a pair that no
    column holds whole changes nothing and is skipped, so the work follows the pairs that split."""
    if not n:
        return []
    ordered = sorted({(min(a, b), max(a, b)) for a, b in (tuple(map(int, p)) for p in different)})
    apart = [0] * n  # apart[k]: bit mask of the items different from k
    for a, b in ordered:
        apart[a] |= 1 << b
        apart[b] |= 1 << a
    chosen, count = 0, 0  # items that differ pairwise need a letter each: a lower bound, greedily
    for k in range(n):
        if chosen & ~apart[k] == 0:
            chosen, count = chosen | 1 << k, count + 1
            if count > len(LETTERS):
                return None
    columns = [(1 << n) - 1]  # no two nested: so only the halves of a split column can be absorbed
    for a, b in ordered:
        both = (1 << a) | (1 << b)
        kept = [col for col in columns if col & both != both]
        if len(kept) == len(columns):
            continue
        halves = [half for col in columns if col & both == both for half in (col & ~(1 << a), col & ~(1 << b))]
        added: list[int] = []
        for half in sorted(halves, key=int.bit_count, reverse=True):  # absorb: inside another says nothing
            if half and not any(half & ~other == 0 for other in kept) and not any(half & ~other == 0 for other in added):
                added.append(half)
        columns = kept + added
        if len(columns) > MAX_COLUMNS:  # letters this tangled would not be read; bound the work
            return None
    if len(columns) > len(LETTERS):
        return None
    members = sorted([k for k in range(n) if col >> k & 1] for col in columns)
    letters = [""] * n
    for c, group in enumerate(members):
        for k in group:
            letters[k] += LETTERS[c]
    return letters


def welch_power(effect: float, n: int, alpha: float = ALPHA, nodes: int = 64) -> float:
    """Power of a two-sided Welch t-test at level ``alpha`` between two groups of ``n`` normal
    values each with the same standard deviation, when the means differ by ``effect`` standard
    deviations. ``n`` >= 2 (else ValueError); in [0, 1] (below ``alpha`` at ``effect`` 0 and
    ``n`` 2: Welch's test is conservative there)."""
    from scipy import special

    if n < 2:
        raise ValueError(f"Welch's test needs at least 2 values a group, got {n}")
    df = 2 * n - 2
    nc = abs(effect) * math.sqrt(n / 2)
    # r = sin^2(theta): the Beta(a, a) density times dr is 2 (sin cos)^(n-2) / B(a, a) dtheta
    a = (n - 1) / 2
    x, w = np.polynomial.legendre.leggauss(nodes)
    theta = (x + 1) * math.pi / 4
    weight = w * math.pi / 4 * 2 * (np.sin(theta) * np.cos(theta)) ** (n - 2) / special.beta(a, a)
    r = np.sin(theta) ** 2
    df_welch = (n - 1) / (r**2 + (1 - r) ** 2)
    # with equal n Welch's T is the pooled T: given r, a noncentral t with 2n - 2 df
    crit = special.stdtrit(df_welch, 1 - alpha / 2)
    reject = 1 - special.nctdtr(df, nc, crit) + special.nctdtr(df, nc, -crit)
    return float(np.sum(weight * reject) / np.sum(weight))


def detectable_effect(n: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest difference, in standard deviations, that `welch_power` detects with
    probability ``power`` at ``n`` values a group (bisection; ``n`` >= 2)."""
    low, high = 0.0, 1.0
    while welch_power(high, n, alpha) < power:
        high *= 2
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if welch_power(mid, n, alpha) < power else (low, mid)
    return high


def seeds_needed(effect: float, power: float = POWER, alpha: float = ALPHA,
                 limit: int = MAX_SEEDS) -> int | None:
    """The fewest values a group (>= 2) at which `welch_power` reaches ``power`` for a
    difference of ``effect`` standard deviations; ``None`` above ``limit``."""
    if welch_power(effect, limit, alpha) < power:
        return None
    low, high = 2, limit
    if welch_power(effect, low, alpha) >= power:
        return low
    while high - low > 1:  # power grows with n: welch_power(low) < power <= welch_power(high)
        mid = (low + high) // 2
        low, high = (mid, high) if welch_power(effect, mid, alpha) < power else (low, mid)
    return high


def pooled_std(stds: Sequence[float], counts: Sequence[int]) -> tuple[float, int]:
    """Pooled sample standard deviation over groups with >= 2 values (weights n - 1) and how many
    groups entered it; ``(nan, 0)`` when none did."""
    total, dof, used = 0.0, 0, 0
    for std, n in zip(stds, counts, strict=True):
        if n >= 2 and math.isfinite(std):
            total += (n - 1) * std * std
            dof += n - 1
            used += 1
    return (math.sqrt(total / dof), used) if dof else (math.nan, 0)
