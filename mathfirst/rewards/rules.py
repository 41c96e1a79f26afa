"""Rule-based answer checks: the last \\boxed{} answer, compared exactly or numerically."""

from __future__ import annotations

import re

from mathfirst.rewards.answers import last_boxed


def normalize(answer: str) -> str:
    answer = answer.strip().strip(".").lower()
    answer = re.sub(r"\\text\{([^}]*)\}", r"\1", answer)
    return re.sub(r"[\s,;]+", " ", answer).strip()


def as_number(answer: str) -> float | None:
    try:
        return float(answer.replace(" ", ""))
    except ValueError:
        return None


def answers_match(predicted: str, gold: str, rel_tol: float = 1e-6) -> bool:
    p, g = normalize(predicted), normalize(gold)
    pn, gn = as_number(p), as_number(g)
    if pn is not None and gn is not None:
        return abs(pn - gn) <= rel_tol * max(1.0, abs(gn))
    return p == g


def score_boxed(solution: str, ground_truth: str) -> dict:
    predicted = last_boxed(solution)
    if predicted is None:
        return {"score": 0.0, "acc": False, "pred": None, "reason": "no \\boxed{} answer"}
    ok = answers_match(predicted, ground_truth)
    return {"score": float(ok), "acc": ok, "pred": predicted, "reason": "" if ok else "wrong answer"}
