"""Statistics of evaluations: intervals of proportions and means, and the unbiased pass@k."""

from __future__ import annotations

import math

import numpy as np


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed stably."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def interval(per_item: list[float], samples: int) -> tuple[float, float]:
    """95% interval of the mean: Wilson for one sample per item, else normal over per-item means."""
    n = len(per_item)
    if samples == 1:
        return wilson(int(round(sum(per_item))), n)
    mean = sum(per_item) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in per_item) / max(1, n - 1))
    half = 1.96 * sd / math.sqrt(n)
    return max(0.0, mean - half), min(1.0, mean + half)


BOOTSTRAP_REPS = 2000  # resamples of the tasks for every bootstrap interval


def bootstrap_interval(per_item: list[float], reps: int = BOOTSTRAP_REPS, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of `per_item` (e.g. each task's mean@k), over tasks."""
    x = np.asarray(per_item, dtype=float)
    means = x[np.random.default_rng(seed).integers(0, len(x), (reps, len(x)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def paired_difference(strata: list[tuple[list[float], list[float]]], reps: int = BOOTSTRAP_REPS, seed: int = 0) -> dict:
    """mean(b) - mean(a) over tasks scored twice (two stages, or a run and its ablation, on the same tasks),
    averaged over strata (domains) with equal weight; its 95% interval by a paired bootstrap that resamples
    the tasks of each stratum; `distinct` when the interval excludes 0."""
    return paired_difference_over_seeds([strata], reps, seed)


def paired_difference_over_seeds(
    seeds: list[list[tuple[list[float], list[float]]]], reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> dict:
    """The paired difference averaged over independent runs (seeds), each with its strata; its interval by a
    two-level bootstrap: resample the seeds, then the tasks within each of their strata."""
    rng = np.random.default_rng(seed)
    per_seed_point, per_seed_boot = [], []
    for strata in seeds:
        diffs = [np.asarray(b, dtype=float) - np.asarray(a, dtype=float) for a, b in strata]
        per_seed_point.append(np.mean([d.mean() for d in diffs]))
        per_seed_boot.append(np.mean([d[rng.integers(0, len(d), (reps, len(d)))].mean(1) for d in diffs], axis=0))
    boot = np.stack(per_seed_boot)  # [seeds, reps]
    picks = rng.integers(0, len(seeds), (reps, len(seeds))) if len(seeds) > 1 else np.zeros((reps, 1), int)
    values = boot[picks, np.arange(reps)[:, None]].mean(1)
    lo, hi = float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))
    out = {"diff": round(float(np.mean(per_seed_point)), 4), "ci95": [round(lo, 4), round(hi, 4)]}
    out["distinct"] = bool(lo > 0 or hi < 0)
    if len(seeds) > 1:
        out["per_seed"] = [round(float(x), 4) for x in per_seed_point]
    return out


def unpaired_difference(a: list[float], b: list[float], reps: int = BOOTSTRAP_REPS, seed: int = 0) -> dict | None:
    """mean(a) - mean(b) of two independent groups (e.g. responses with and without a move), its 95% interval by
    resampling each group; None when a group is empty. Treats the items as independent."""
    if not a or not b:
        return None
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    boot = x[rng.integers(0, len(x), (reps, len(x)))].mean(1) - y[rng.integers(0, len(y), (reps, len(y)))].mean(1)
    lo, hi = float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))
    diff = float(x.mean() - y.mean())
    return {"diff": round(diff, 4), "ci95": [round(lo, 4), round(hi, 4)], "distinct": bool(lo > 0 or hi < 0),
            "n": [len(x), len(y)]}  # fmt: skip
