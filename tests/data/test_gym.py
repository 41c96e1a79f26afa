"""reasoning-gym as a task source: disjoint splits, its own scorer behind `compute_score`, clear errors."""

import json

import pytest

from mathfirst.config import GymConfig
from mathfirst.data.gym import check_gym, gym_prompts
from mathfirst.data.loaders import DataError
from mathfirst.prompts import user_message
from mathfirst.rewards import compute_score, compute_scores

GYM = GymConfig(
    rows_per_domain=60,
    tasks={"basic_arithmetic": {"config": {"max_terms": 2, "max_digits": 1}}, "chain_sum": {"weight": 2},
           "syllogism": {}},
)  # fmt: skip


def test_rows_split_by_weight_and_held_out_rows_never_train():
    train = gym_prompts(GYM, "math", "train", seed=0)
    held = gym_prompts(GYM, "math", "heldout", seed=0)
    assert [p.data_source for p in train].count("reasoning_gym/chain_sum") == 40  # weight 2 of 3
    assert {p.domain for p in train} == {"math"} and len(held) == 60
    assert len({p.extra_info["uid"] for p in held}) == 60  # distinct
    other_seed = gym_prompts(GYM, "math", "train", seed=7)
    assert not {p.extra_info["uid"] for p in held} & {p.extra_info["uid"] for p in train + other_seed}
    assert gym_prompts(GYM, "math", "train", seed=0) == train  # deterministic


def test_the_task_scorer_reads_the_boxed_answer_and_gives_no_partial_credit():
    p = gym_prompts(GYM, "logic", "train", seed=0)[0]
    gold = json.loads(p.ground_truth)["answer"]
    assert compute_score(p.data_source, f"So it follows.\nAnswer: \\boxed{{{gold}}}", p.ground_truth)["score"] == 1.0
    wrong = "No" if gold == "Yes" else "Yes"
    result = compute_score(p.data_source, f"\\boxed{{{wrong}}}", p.ground_truth)
    assert result["score"] == 0.0 and result["verifier"] == "gym"
    assert compute_score(p.data_source, gold, p.ground_truth)["reason"] == "no final answer"
    m = next(q for q in gym_prompts(GYM, "math", "train", seed=0) if q.data_source.endswith("basic_arithmetic"))
    gold = json.loads(m.ground_truth)["answer"]
    float_form = compute_score(m.data_source, f"\\boxed{{{gold}.0}}", m.ground_truth)  # partial credit in the gym
    assert float_form["score"] == 0.0 and 0 < float_form["gym_score"] < 1
    batch = compute_scores([(m.data_source, f"\\boxed{{{gold}}}", m.ground_truth, {"ability": "math"})] * 3)
    assert [r["score"] for r in batch] == [1.0] * 3 and {r["verifier"] for r in batch} == {"gym"}


def test_instruction_templates_ask_for_the_form_the_verifier_reads():
    for domain in ("math", "stem", "simulation", "logic", "table"):
        assert "\\boxed{}" in user_message("Q?", domain, "instruct")
    assert "```python" in user_message("Write f.", "code", "instruct")
    assert user_message("Q?", "math", "bare") == "Q?"
    with pytest.raises(ValueError, match="unknown prompt style"):
        user_message("Q?", "math", "fancy")


def test_unknown_tasks_fail_before_anything_runs():
    with pytest.raises(DataError, match="reasoning_gym has no task 'no_such_task'"):
        check_gym(GymConfig(tasks={"no_such_task": {}}))
    with pytest.raises(DataError, match="has no default domain"):
        check_gym(GymConfig(tasks={"maze": {}}))
    check_gym(GymConfig(tasks={"maze": {"domain": "simulation"}}))
