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
