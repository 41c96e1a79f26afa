"""Math answers checked for equivalence with `math-verify` (LaTeX and expressions parsed to sympy).

Only the final answer counts: the last \\boxed{} (else the last `Answer:` line) is parsed, never the
whole response, so a response that lists many candidates earns nothing. math-verify times out with
signals, which work on the main thread only: elsewhere the item goes to a worker process.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import cache
from multiprocessing import get_context

from math_verify import parse, verify

from mathfirst.rewards.answers import final_answer

TIMEOUT_S = 5


def _as_latex(answer: str) -> str:
    answer = answer.strip()
    return answer if answer.startswith("$") else f"${answer}$"


def verify_here(predicted: str, gold: str, timeout_s: int = TIMEOUT_S) -> bool:
    """math-verify on this thread (must be the main thread for its signal timeouts)."""
    g = parse(_as_latex(gold), parsing_timeout=timeout_s)
    p = parse(_as_latex(predicted), parsing_timeout=timeout_s)
    return bool(g) and bool(p) and verify(g, p, timeout_seconds=timeout_s)


@cache
def pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1), mp_context=get_context("fork"))


def verify_isolated(predicted: str, gold: str, timeout_s: int = TIMEOUT_S) -> bool:
    """math-verify in a worker process (safe from any thread), with a hard timeout."""
    future = pool().submit(verify_here, predicted, gold, timeout_s)
    try:
        return future.result(timeout=timeout_s * 3)
    except FutureTimeout:
        future.cancel()
        raise TimeoutError(f"math-verify took over {timeout_s * 3} s") from None


def score_math(solution: str, ground_truth: str) -> dict:
    predicted = final_answer(solution)
    if predicted is None:
        return {"score": 0.0, "acc": False, "pred": None, "reason": "no final answer (\\boxed{} or Answer: line)"}
    on_main = threading.current_thread() is threading.main_thread()
    ok = (verify_here if on_main else verify_isolated)(predicted, ground_truth)
    return {"score": float(ok), "acc": ok, "pred": predicted, "reason": "" if ok else "not equivalent"}


def score_many(pairs: list[tuple[str, str]]) -> list[dict]:
    """Batch: every item in the worker pool, in parallel."""
    predicted = [final_answer(s) for s, _ in pairs]
    futures = [pool().submit(verify_here, p, g) if p is not None else None for p, (_, g) in zip(predicted, pairs)]
    out = []
    for p, f in zip(predicted, futures):
        if f is None:
            out.append({"score": 0.0, "acc": False, "pred": None, "reason": "no final answer"})
            continue
        try:
            ok = f.result(timeout=TIMEOUT_S * 3)
            out.append({"score": float(ok), "acc": ok, "pred": p, "reason": "" if ok else "not equivalent"})
        except Exception as e:  # a verifier must never take the trainer down
            out.append({"score": 0.0, "acc": False, "pred": p, "reason": f"verifier error: {type(e).__name__}"})
    return out
