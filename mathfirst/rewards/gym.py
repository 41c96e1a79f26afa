"""reasoning-gym's verifier: each task's own `score_answer` on the response's final answer."""

from __future__ import annotations

import json

from mathfirst.data.schema import GYM_SOURCE_PREFIX
from mathfirst.rewards.answers import final_answer


def score_gym(data_source: str, solution: str, ground_truth: str) -> dict:
    """The gym task's own score of the final answer (the last \\boxed{}, else an `Answer:` line); only full
    credit counts as right (some tasks give partial credit, e.g. for a number written as a float)."""
    import reasoning_gym

    entry = json.loads(ground_truth)
    answer = final_answer(solution)
    if answer is None:
        return {"score": 0.0, "acc": False, "pred": None, "reason": "no final answer"}
    credit = float(reasoning_gym.get_score_answer_fn(data_source.removeprefix(GYM_SOURCE_PREFIX))(answer, entry))
    right = credit >= 1.0
    return {
        "score": float(right),
        "acc": right,
        "pred": answer,
        "gym_score": credit,
        "reason": "" if right else "wrong",
    }
