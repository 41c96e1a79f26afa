"""Rejection-sampled self-distillation: which of the model's own responses become SFT rows."""

from mathfirst.self_distill import select_verified

PLAIN = "7 + 9 = 16\nAnswer: \\boxed{16}"
CHECKED = "Subgoal: add.\n7 + 9 = 16\nCheck: 16 - 9 = 7\nAnswer: \\boxed{16}"
BACKTRACKED = "7 + 9 = 15\nWait, 7 + 9 is not 15. Redo: 7 + 9 = 16\nAnswer: \\boxed{16}"


def test_keeps_verified_untruncated_distinct_responses_skill_richest_first():
    texts = [PLAIN, "Answer: \\boxed{15}", CHECKED, CHECKED, "7 + 9 = 16 and then", PLAIN, PLAIN, PLAIN]
    scores = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    truncated = [False, False, False, False, True, False, False, False]
    rows = select_verified(["q1", "q2"], texts, scores, truncated, per_prompt=2)
    assert rows == [{"prompt": "q1", "response": CHECKED}, {"prompt": "q1", "response": PLAIN}]  # q2: none right


def test_per_prompt_keeps_the_ones_that_verify_or_backtrack():
    texts = [PLAIN, BACKTRACKED, CHECKED]
    rows = select_verified(["q"], texts, [1.0, 1.0, 1.0], [False] * 3, per_prompt=1)
    assert rows[0]["response"] in (BACKTRACKED, CHECKED) and len(rows) == 1
