import json

from mathfirst.rewards import compute_score, compute_scores
from mathfirst.rewards.code import last_code_block
from mathfirst.rewards.rules import answers_match, last_boxed

TESTS = json.dumps({"entry_point": "f", "test": "def check(candidate):\n    assert candidate(2) == 4\n"})


def test_last_boxed_counts_and_braces_nest():
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("no answer") is None


def test_answers_match_numbers_and_words():
    assert answers_match("12.0", "12") and not answers_match("13", "12")
    assert answers_match(" Cal knight,  Bob knave ", "Cal knight, Bob knave")
    assert not answers_match("A", "B")


def test_only_the_final_boxed_answer_counts():
    assert compute_score("tiny/math", "\\boxed{5} or \\boxed{7}", "7")["score"] == 1.0
    assert compute_score("tiny/math", "\\boxed{7} or \\boxed{5}", "7")["score"] == 0.0
    assert compute_score("tiny/math", "the answer is 7", "7")["acc"] is False


def test_code_runs_the_last_block_against_its_tests():
    good = "```python\ndef f(x):\n    return x - 1\n```\n```python\ndef f(x):\n    return 2 * x\n```"
    assert last_code_block(good).strip().endswith("2 * x")
    assert compute_score("tiny/code", good, TESTS)["score"] == 1.0
    assert compute_score("tiny/code", "def f(x):\n    return x", TESTS)["score"] == 0.0


def test_code_that_exits_early_scores_zero():
    for trick in ("import os\nos._exit(0)", "raise SystemExit(0)", "print('PASSED')\nimport sys\nsys.exit(0)"):
        assert compute_score("tiny/code", f"def f(x):\n    return 0\n{trick}", TESTS)["score"] == 0.0


def test_batch_scoring_keeps_order():
    items = [("tiny/math", f"\\boxed{{{i}}}", "3", None) for i in range(6)]
    assert [r["score"] for r in compute_scores(items)] == [0, 0, 0, 1, 0, 0]


def test_odd_bytes_and_garbage_score_zero_without_crashing():
    assert compute_score("tiny/code", "def f(x):\n    return 2 * x\x00", TESTS)["score"] == 0.0
    assert compute_score("tiny/code", "```python\nprint('\udcff')\n```", TESTS)["score"] == 0.0
    assert compute_score("tiny/code", "def f(x): return 2 * x", "not json")["reason"].startswith("verifier error")
