"""Math answers checked for equivalence with `math-verify` (LaTeX and expressions parsed to sympy).

Only the final answer counts: the last \\boxed{} (else the last `Answer:` line) is parsed, never the
whole response, so a response that lists many candidates earns nothing. math-verify times out with
signals, which work on the main thread only: elsewhere the item goes to a worker process.
"""

from __future__ import annotations

import re
import threading

from math_verify import parse, verify

from mathfirst.rewards.answers import final_answer
from mathfirst.rewards.workers import TIMEOUT_S, run_batch

MAX_ANSWER_CHARS = 200  # a longer answer must also be within 4x the reference's length (MATH500's longest: 53)
TOWER = re.compile(r"\^\s*(\{[^{}]*|\(?[\w.]+\)?\s*)\^|\*\*\s*\(?[\w.]+\)?\s*\*\*")  # an exponent inside an exponent
BIG_EXPONENT = re.compile(r"(\^|\*\*)\s*\{?\s*\d{5,}")  # an exponent of 10,000 or more
FACTORIAL = re.compile(r"(?<!\\)!")  # not LaTeX's thin space \!
SMALL_FACTORIAL = re.compile(r"(?<![\d.])\d{1,3}(?<!\\)!(?!!)")  # n! for n < 1000


def implausible(predicted: str, gold: str) -> str | None:
    """Why `predicted` cannot be worth sympy's time, or None: far longer than the reference, a power tower, a
    huge exponent, or a factorial of anything but a small integer, where the reference has none of these.
    Such answers (reward hacks that make sympy compute for minutes) score 0 at once."""
    if len(predicted) > max(MAX_ANSWER_CHARS, 4 * len(gold)):
        return f"an answer of {len(predicted)} characters against a reference of {len(gold)}"
    for name, pattern in (("a power tower", TOWER), ("an exponent of 10^4 or more", BIG_EXPONENT)):
        if pattern.search(predicted) and not pattern.search(gold):
            return name
    if len(FACTORIAL.findall(predicted)) > len(SMALL_FACTORIAL.findall(predicted)) and not FACTORIAL.search(gold):
        return "a factorial of more than a small integer"
    return None


def _as_latex(answer: str) -> str:
    answer = answer.strip()
    return answer if answer.startswith("$") else f"${answer}$"


def verify_here(predicted: str, gold: str, timeout_s: int = TIMEOUT_S) -> bool:
    """math-verify on this thread (must be the main thread for its signal timeouts)."""
    g = parse(_as_latex(gold), parsing_timeout=timeout_s)
    p = parse(_as_latex(predicted), parsing_timeout=timeout_s)
    return bool(g) and bool(p) and verify(g, p, timeout_seconds=timeout_s)


def verify_isolated(predicted: str, gold: str) -> bool:
    """math-verify in a worker process (safe from any thread), within a batch's deadline."""
    (result,) = run_batch(verify_here, [(predicted, gold)])
    if isinstance(result, BaseException):
        raise result
    return result


def score_math(solution: str, ground_truth: str) -> dict:
    predicted = final_answer(solution)
    if predicted is None:
        return {"score": 0.0, "acc": False, "pred": None, "reason": "no final answer (\\boxed{} or Answer: line)"}
    reason = implausible(predicted, ground_truth)
    if reason is not None:
        return {"score": 0.0, "acc": False, "pred": predicted, "reason": reason}
    on_main = threading.current_thread() is threading.main_thread()
    ok = (verify_here if on_main else verify_isolated)(predicted, ground_truth)
    return {"score": float(ok), "acc": ok, "pred": predicted, "reason": "" if ok else "not equivalent"}


def score_many(pairs: list[tuple[str, str]]) -> list[dict]:
    """Batch: implausible answers score 0 at once, the rest go to the worker pool in parallel, within the
    batch's deadline (workers.py)."""
    predicted = [final_answer(s) for s, _ in pairs]
    out: list[dict | None] = [None] * len(pairs)
    todo = []
    for i, (p, (_, gold)) in enumerate(zip(predicted, pairs)):
        reason = "no final answer" if p is None else implausible(p, gold)
        if reason is not None:
            out[i] = {"score": 0.0, "acc": False, "pred": p, "reason": reason}
        else:
            todo.append(i)
    results = run_batch(verify_here, [(predicted[i], pairs[i][1]) for i in todo])
    for i, ok in zip(todo, results):
        if isinstance(ok, BaseException):  # a verifier must never take the trainer down
            reason = f"verifier error: {type(ok).__name__}"
            out[i] = {"score": 0.0, "acc": False, "pred": predicted[i], "reason": reason}
        else:
            out[i] = {"score": float(ok), "acc": ok, "pred": predicted[i], "reason": "" if ok else "not equivalent"}
    return out  # type: ignore[return-value]
