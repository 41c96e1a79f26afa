"""Verifiers for the structured answers of logic and table benchmarks: a solution grid (ZebraLogic), who is
a knight or a knave (Knights-and-Knaves), and lists of numbers or cells (FinQA, HiTab)."""

from __future__ import annotations

import json
import re

from mathfirst.rewards.answers import final_answer
from mathfirst.rewards.rules import as_number, normalize

JSON_DECODER = json.JSONDecoder()


def last_json_object(text: str) -> dict | None:
    """The last `{...}` in the text that parses as a JSON object."""
    for start in [m.start() for m in re.finditer(r"\{", text)][::-1]:
        try:
            value, _ = JSON_DECODER.raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            return value
    return None


def score_grid(solution: str, ground_truth: str) -> dict:
    """Puzzle accuracy: every cell of the solution grid must match (case and spaces aside)."""
    gold: dict[str, dict[str, str]] = json.loads(ground_truth)
    predicted = last_json_object(solution)
    if predicted is None:
        return {"score": 0.0, "acc": False, "pred": None, "reason": "no JSON solution grid"}
    cells = [(row, col, value) for row, cols in gold.items() for col, value in cols.items()]
    pred = {normalize(k): {normalize(c): normalize(str(v)) for c, v in cols.items()} for k, cols in predicted.items()}
    right = sum(pred.get(normalize(row), {}).get(normalize(col)) == normalize(value) for row, col, value in cells)
    ok = right == len(cells)
    return {
        "score": float(ok),
        "acc": ok,
        "pred": predicted,
        "cells": right / len(cells),
        "reason": "" if ok else f"{right}/{len(cells)} cells",
    }


def score_roles(solution: str, ground_truth: str) -> dict:
    """Knights-and-Knaves: the last `NAME is a knight|knave` said of each person must match."""
    gold: dict[str, str] = json.loads(ground_truth)
    said = {}
    for name in gold:
        claims = re.findall(rf"\b{re.escape(name)}\b\W*\s+is\s+a\s+(knight|knave)", solution, re.IGNORECASE)
        said[name] = claims[-1].lower() if claims else None
    ok = said == gold
    return {"score": float(ok), "acc": ok, "pred": said, "reason": "" if ok else "wrong or missing roles"}


def values_match(predicted: str, gold: object) -> bool:
    """Numbers within 1% (a share may be given as a percentage); text after normalisation."""
    p = as_number(normalize(predicted).replace("%", "").replace("$", ""))
    g = gold if isinstance(gold, (int, float)) else as_number(normalize(str(gold)).replace("%", ""))
    if p is not None and g is not None:
        return any(abs(p - x) <= 1e-2 * max(1.0, abs(x)) for x in (g, g * 100))
    return normalize(predicted) == normalize(str(gold))


def score_values(solution: str, ground_truth: str) -> dict:
    """FinQA / HiTab: the final answer holds every gold value (comma-separated when there are several)."""
    gold = json.loads(ground_truth)
    answer = final_answer(solution)
    if answer is None:
        return {"score": 0.0, "acc": False, "pred": None, "reason": "no final answer"}
    parts = [a for a in re.split(r"\s*[,;|]\s*", answer) if a] if len(gold) > 1 else [answer]
    ok = len(parts) == len(gold) and all(any(values_match(p, g) for p in parts) for g in gold)
    return {"score": float(ok), "acc": ok, "pred": answer, "reason": "" if ok else "wrong answer"}
