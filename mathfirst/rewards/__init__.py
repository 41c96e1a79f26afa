"""Reward functions behind one verl-compatible entry point."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mathfirst.rewards.code import score_code
from mathfirst.rewards.rules import score_boxed


def route(data_source: str, extra_info: dict[str, Any] | None) -> str:
    """The verifier for a row: by extra_info['ability'] or by the data source's domain."""
    ability = (extra_info or {}).get("ability") or data_source.split("/")[-1]
    return "code" if ability == "code" else "rule"


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None) -> dict:
    """verl's custom reward signature; `score` is 1.0 when the final answer is correct."""
    t0 = time.perf_counter()
    try:
        if route(data_source, extra_info) == "code":
            result = score_code(solution_str, ground_truth)
        else:
            result = score_boxed(solution_str, ground_truth)
    except Exception as e:  # a verifier must never take the trainer down: a broken item scores 0
        result = {"score": 0.0, "acc": False, "reason": f"verifier error: {type(e).__name__}: {e}"}
    return {**result, "seconds": round(time.perf_counter() - t0, 4)}


def compute_scores(items: list[tuple[str, str, str, dict | None]], workers: int = 4) -> list[dict]:
    """Score many (data_source, solution, ground_truth, extra_info) items; code runs in parallel subprocesses."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda item: compute_score(*item), items))
