"""Reward functions behind one verl-compatible entry point, routed by ability or data source."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from mathfirst.data.domains import DOMAINS
from mathfirst.data.schema import GYM_SOURCE_PREFIX as GYM_PREFIX
from mathfirst.data.schema import TINY_SOURCE_PREFIX as TINY_PREFIX
from mathfirst.rewards.answers import final_answer
from mathfirst.rewards.code import NO_PROGRAM, score_code, score_output_prediction
from mathfirst.rewards.gym import score_gym
from mathfirst.rewards.judge import Judge, JudgeUnavailable, score_judged
from mathfirst.rewards.math_answer import score_many, score_math
from mathfirst.rewards.rules import score_boxed
from mathfirst.rewards.structured import score_grid, score_roles, score_values
from mathfirst.rewards.workers import run_batch

MATH_SOURCES = ("math", "math500", "gsm8k", "aime", "aime24", "aime25", "amc", "olympiad", "minerva")
CHOICE_SOURCES = ("mmlu", "mmlu_stem", "gpqa", "gpqa_diamond", "supergpqa", "choice")
STRUCTURED = {"cruxeval": "output", "zebra": "grid", "knights_knaves": "roles", "finqa": "values", "hitab": "values"}
LETTER = re.compile(r"^\(?([A-Ja-j])(?:\)?\.?$|[):]\s)")  # "B", "(B)", "B.", "B) 3 kg", not "A or B"


def route(data_source: str, extra_info: dict[str, Any] | None) -> str:
    """The verifier for a row: the one its extra_info names (`verifier`, as every shipped benchmark's items do),
    else by source and ability: gym (the reasoning-gym task's own scorer), code, math (math-verify), choice
    (a letter), judge (a model decides equivalence of free-form answers) or rule (exact / numeric)."""
    info = extra_info or {}
    if info.get("verifier") in NAMED:
        return info["verifier"]
    ability = str(info.get("ability") or data_source.split("/")[-1]).lower()
    source = data_source.lower()
    if source.startswith(GYM_PREFIX):
        return "gym"
    if info.get("verifier") == "judge" or info.get("style") == "model":
        return "judge"
    if source in STRUCTURED:
        return STRUCTURED[source]
    if source.startswith(TINY_PREFIX):  # the registry says how a tiny domain's answers are checked
        domain = DOMAINS.get(source.removeprefix(TINY_PREFIX))
        return "code" if domain is not None and domain.reward_style == "execution" else "rule"
    if ability == "code" or source in ("humaneval", "mbpp", "livecodebench"):
        return "code"
    if info.get("style") == "choice" or source.split("/")[-1] in CHOICE_SOURCES:
        return "choice"
    if ability == "math" or source.split("/")[-1] in MATH_SOURCES:
        return "math"
    return "rule"


def score_choice(solution: str, ground_truth: str) -> dict:
    answer = final_answer(solution)
    match = LETTER.match(answer.strip()) if answer else None
    predicted = match.group(1).upper() if match else None
    ok = predicted is not None and predicted == ground_truth.strip().strip("()").upper()
    return {"score": float(ok), "acc": ok, "pred": predicted, "reason": "" if ok else "wrong or no letter"}


VERIFIERS = {
    "code": score_code,
    "math": score_math,
    "choice": score_choice,
    "rule": score_boxed,
    "output": score_output_prediction,
    "grid": score_grid,
    "roles": score_roles,
    "values": score_values,
}

NAMED = (*VERIFIERS, "judge", "gym")  # what a row may name as its verifier


@cache
def env_judge() -> Judge:
    return Judge.from_env()


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None) -> dict:
    """verl's custom reward signature; `score` is 1.0 when the final answer is correct, else 0.0."""
    t0 = time.perf_counter()
    verifier = route(data_source, extra_info)
    try:
        if verifier == "judge":
            question = (extra_info or {}).get("question", "")
            result = score_judged(env_judge(), question, solution_str, str(ground_truth))
        elif verifier == "gym":
            result = score_gym(data_source, solution_str, str(ground_truth))
        else:
            result = VERIFIERS[verifier](solution_str, str(ground_truth))
    except JudgeUnavailable:
        raise  # a judge that cannot be reached must stop the run, not quietly score everything 0
    except Exception as e:  # a verifier must never take the trainer down: a broken item scores 0
        result = {"score": 0.0, "acc": False, "reason": f"verifier error: {type(e).__name__}: {e}"}
    return {**result, "verifier": verifier, "seconds": round(time.perf_counter() - t0, 4)}


def dapo_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **_) -> dict:
    """DAPO's reward for verl: +1 for a verified answer, else -1 (verl adds the overlong penalty); `acc` is
    what dynamic sampling filters on. Extra keys stay scalar so verl can log them."""
    result = compute_score(data_source, solution_str, ground_truth, extra_info)
    right = result["score"] > 0
    return {**result, "score": 1.0 if right else -1.0, "acc": float(right), "pred": str(result.get("pred"))}


def in_answer_format(result: dict) -> bool:
    """Whether a scored response gave its answer in the form its verifier reads: a final answer the verifier
    could extract (`pred`), or for code, a program that defines what the test calls."""
    if "pred" in result:
        return result["pred"] is not None
    return result.get("reason") != NO_PROGRAM["reason"]


def compute_scores(items: list[tuple[str, str, str, dict | None]], workers: int = 4) -> list[dict]:
    """Score many (data_source, solution, ground_truth, extra_info) items: math and gym tasks in a process pool
    (with a timeout each), code sandboxes and rules from a thread pool."""
    out: list[dict | None] = [None] * len(items)
    gym = [i for i, it in enumerate(items) if route(it[0], it[3]) == "gym"]
    for i, r in zip(gym, run_batch(score_gym, [tuple(items[i][:3]) for i in gym])):
        if isinstance(r, BaseException):  # a verifier must never take the trainer down
            r = {"score": 0.0, "acc": False, "reason": f"verifier error: {type(r).__name__}"}
        out[i] = {**r, "verifier": "gym"}
    math_idx = [i for i, it in enumerate(items) if route(it[0], it[3]) == "math"]
    if math_idx:
        t0 = time.perf_counter()
        results = score_many([(items[i][1], str(items[i][2])) for i in math_idx])
        per_item = round((time.perf_counter() - t0) / len(math_idx), 4)
        for i, r in zip(math_idx, results):
            out[i] = {**r, "verifier": "math", "seconds": per_item}
    rest = [i for i in range(len(items)) if out[i] is None]
    with ThreadPoolExecutor(workers) as pool:
        for i, r in zip(rest, pool.map(lambda i: compute_score(*items[i]), rest)):
            out[i] = r
    return out  # type: ignore[return-value]
