import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mathfirst.data.domains import DOMAINS, Domain
from mathfirst.data.schema import TINY_SOURCE_PREFIX
from mathfirst.rewards import compute_score, compute_scores, in_answer_format, route
from mathfirst.rewards.answers import last_boxed
from mathfirst.rewards.code import last_code_block
from mathfirst.rewards.rules import answers_match

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


def test_code_runs_the_later_definition_against_its_tests():
    good = "```python\ndef f(x):\n    return x - 1\n```\n```python\ndef f(x):\n    return 2 * x\n```"
    assert last_code_block(good).strip().endswith("2 * x")  # what stdin/stdout programs and CRUXEval read
    assert compute_score("tiny/code", good, TESTS)["score"] == 1.0
    assert compute_score("tiny/code", "def f(x):\n    return x", TESTS)["score"] == 0.0


def test_code_that_exits_early_scores_zero():
    for trick in ("import os\nos._exit(0)", "raise SystemExit(0)", "print('PASSED')\nimport sys\nsys.exit(0)"):
        setup = "def setup():\n" + "".join(f"    {line}\n" for line in trick.splitlines())
        program = f"{setup}K = setup()\ndef f(x):\n    return K\n"  # f reads K, so the trick runs on loading
        assert compute_score("tiny/code", program, TESTS)["score"] == 0.0


def test_batch_scoring_keeps_order():
    items = [("tiny/math", f"\\boxed{{{i}}}", "3", None) for i in range(6)]
    assert [r["score"] for r in compute_scores(items)] == [0, 0, 0, 1, 0, 0]


def test_odd_bytes_and_garbage_score_zero_without_crashing():
    assert compute_score("tiny/code", "def f(x):\n    return 2 * x\x00", TESTS)["score"] == 0.0
    assert compute_score("tiny/code", "```python\nprint('\udcff')\n```", TESTS)["score"] == 0.0
    assert compute_score("tiny/code", "def f(x): return 2 * x", "not json")["reason"].startswith("verifier error")


MATH500 = Path(__file__).parents[2] / "mathfirst" / "benchmarks" / "math500" / "test.jsonl"


def reformatted(answer: str) -> str | None:
    """An equivalent spelling of a MATH500 answer: \\frac for \\dfrac, decimals for simple fractions, 5.0 for 5."""
    b = answer.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    m = re.fullmatch(r"\\frac\{(\d+)\}\{(\d+)\}", b)
    if m and int(m.group(2)) in (2, 4, 5, 8, 10, 20, 25):
        return str(int(m.group(1)) / int(m.group(2)))
    if re.fullmatch(r"-?\d+", b):
        return b + ".0"
    return b if b != answer else None


def test_math500_answers_verify_against_themselves_and_reformatted_copies():
    rows = [json.loads(line) for line in MATH500.read_text().splitlines()]
    assert len(rows) == 500
    items = [("math500", f"So \\boxed{{{r['answer']}}}.", r["answer"], None) for r in rows]
    assert [r["answer"] for r, s in zip(rows, compute_scores(items)) if s["score"] != 1.0] == []
    pairs = [(r["answer"], reformatted(r["answer"])) for r in rows]
    pairs = [(a, b) for a, b in pairs if b]
    assert len(pairs) > 300
    scores = compute_scores([("math500", f"\\boxed{{{b}}}", a, None) for a, b in pairs])
    assert [(a, b) for (a, b), s in zip(pairs, scores) if s["score"] != 1.0] == []
    assert compute_score("math500", "\\boxed{0.5}", "\\frac12")["score"] == 1.0
    assert compute_score("math500", "\\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}")["verifier"] == "math"


def test_math_counts_only_one_final_answer():
    assert compute_score("math500", "\\boxed{1, 2, 3}", "2")["score"] == 0.0  # many candidates earn nothing
    assert compute_score("math500", "it could be 2 or 3", "2")["score"] == 0.0
    assert compute_score("math500", "work...\nAnswer: 2", "2")["score"] == 1.0
    assert compute_score("gsm8k", "\\boxed{3} no wait \\boxed{4}", "4")["score"] == 1.0


def test_math_verify_from_a_worker_thread_uses_a_process():
    with ThreadPoolExecutor(2) as pool:
        got = list(
            pool.map(lambda a: compute_score("math500", f"\\boxed{{{a}}}", "\\frac{1}{2}")["score"], ["0.5", "2"])
        )
    assert got == [1.0, 0.0]


def test_multiple_choice_takes_the_final_letter():
    assert compute_score("mmlu_stem", "so \\boxed{B}", "B")["score"] == 1.0
    assert compute_score("mmlu_stem", "Answer: (c)", "C")["score"] == 1.0
    assert compute_score("mmlu_stem", "\\boxed{A}", "B")["score"] == 0.0
    assert compute_score("mmlu_stem", "\\boxed{B) 3 kg}", "B")["score"] == 1.0
    hedge = compute_score("gpqa", "\\boxed{A or B}", "A")
    assert hedge["verifier"] == "choice" and hedge["score"] == 0.0


def test_answer_format_is_what_the_verifier_could_read():
    """A wrong answer in the verifier's form is in format; no final answer, or code defining nothing the test
    calls, is not."""
    wrong = compute_score("tiny/math", "\\boxed{5}", "7")
    assert wrong["score"] == 0.0 and in_answer_format(wrong)
    assert not in_answer_format(compute_score("tiny/math", "it is 7", "7"))
    assert in_answer_format(compute_score("math", "Answer: 8", "7"))
    assert in_answer_format(compute_score("tiny/code", "```python\ndef f(x):\n    return x\n```", TESTS))
    assert not in_answer_format(compute_score("tiny/code", "```python\nprint(f(2))\n```", TESTS))


def test_a_tiny_domain_is_verified_as_its_registry_entry_says(monkeypatch):
    for name, domain in DOMAINS.items():
        assert route(f"{TINY_SOURCE_PREFIX}{name}", {"ability": name}) == (
            "code" if domain.reward_style == "execution" else "rule"
        )
    # a new domain whose answers are programs is executed by its entry alone, whatever its name
    monkeypatch.setitem(DOMAINS, "scripts", Domain("scripts", DOMAINS["code"].module, reward_style="execution"))
    assert route(f"{TINY_SOURCE_PREFIX}scripts", {"ability": "scripts"}) == "code"
    assert route(f"{TINY_SOURCE_PREFIX}unregistered", {"ability": "code"}) == "rule"
