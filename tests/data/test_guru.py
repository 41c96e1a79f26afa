"""Guru (guru-RL-92k) rows: mapped onto the six domains and our verifiers; schema errors name file and column."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mathfirst.data.guru import load_guru
from mathfirst.data.loaders import DataError, load_rl_prompts
from mathfirst.rewards import compute_score


def guru_row(source: str, question: str, truth: str, style: str = "rule") -> dict:
    return {
        "data_source": source,
        "prompt": [{"role": "user", "content": question}],
        "ability": source.split("__")[0],
        "apply_chat_template": True,
        "reward_model": {"ground_truth": truth, "style": style},
        "extra_info": {"index": 0, "split": "train"},
    }


ROWS = [
    guru_row("math__deepscaler_preview", "What is 1/2 + 1/4?", "\\frac{3}{4}"),
    guru_row("codegen__leetcode2k", "Read n, print n squared.", json.dumps({"inputs": ["3\n"], "outputs": ["9\n"]})),
    guru_row("codegen__primeintellect", "Write add(a, b).", json.dumps({"functional": "assert add(2, 3) == 5"})),
    guru_row("stem__web_instruct", "What is the unit of force?", "newton", "model"),
    guru_row("logic__ordering_puzzle_dataset", "Order A, B, C.", "A, B, C"),
    guru_row("simulation__codeio", "What does the code print?", "42"),
    guru_row("table__hitab", "How many men?", "12"),
]


@pytest.fixture
def guru_file(tmp_path):
    path = tmp_path / "guru.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path


def test_guru_rows_map_to_six_domains_and_score_with_our_verifiers(guru_file):
    rows = load_guru(guru_file)
    assert [r["ability"] for r in rows] == ["math", "code", "code", "stem", "logic", "simulation", "table"]
    assert rows[3]["extra_info"]["verifier"] == "judge"  # free-form STEM answers go to the judge
    answers = [
        "\\boxed{0.75}",
        "```python\nn = int(input())\nprint(n * n)\n```",
        "```python\ndef add(a, b):\n    return a + b\n```",
        None,
        "\\boxed{A, B, C}",
        "\\boxed{42}",
        "\\boxed{12}",
    ]
    for row, answer in zip(rows, answers):
        if answer is None:
            continue
        args = (row["data_source"], answer, row["reward_model"]["ground_truth"], row["extra_info"])
        assert compute_score(*args)["score"] == 1.0, row["data_source"]
        assert compute_score(row["data_source"], "\\boxed{wrong}", *args[2:])["score"] == 0.0


def test_guru_files_feed_the_rl_trainer(guru_file):
    prompts = load_rl_prompts(guru_file)
    assert [p.domain for p in prompts][:2] == ["math", "code"] and prompts[3].extra_info["verifier"] == "judge"


def test_schema_errors_name_the_file_and_column(tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{k: v for k, v in ROWS[0].items() if k != "reward_model"}]), bad)
    with pytest.raises(DataError, match=r"bad.parquet: row 1 has no `reward_model` column"):
        load_guru(bad)
    pq.write_table(pa.Table.from_pylist([guru_row("poetry__sonnets", "q", "a")]), bad)
    with pytest.raises(DataError, match=r"row 1 column `data_source` is 'poetry__sonnets'"):
        load_guru(bad)
    pq.write_table(pa.Table.from_pylist([guru_row("codegen__x", "q", "not json")]), bad)
    with pytest.raises(DataError, match=r"row 1 column `reward_model.ground_truth` is not JSON test cases"):
        load_guru(bad)
