import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mathfirst.data.export import export_parquet
from mathfirst.data.loaders import DataError, load_rl_prompts, load_sft_pairs, read_rows
from mathfirst.rewards import compute_score


def test_jsonl_and_parquet_rows_with_text_or_chat_prompts(tmp_path):
    rows = [
        {"prompt": "Compute 1 + 1.", "response": "\\boxed{2}"},
        {
            "prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hi?"}],
            "response": "Hello",
        },
    ]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(rows[:1]), parquet)
    assert load_sft_pairs(jsonl) == [("Compute 1 + 1.", "\\boxed{2}"), ("Hi?", "Hello")]
    assert load_sft_pairs(parquet) == [("Compute 1 + 1.", "\\boxed{2}")]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"prompt": "x", "response": "y"}\nnot json\n', "line 2 is not valid JSON"),
        ('{"prompt": "x"}\n', "row 1 has no `response` column"),
        ('{"prompt": 3, "response": "y"}\n', "column `prompt` must be text"),
        ("[1, 2]\n", "line 1 is not a JSON object"),
        ("", "no rows"),
    ],
)
def test_malformed_rows_name_file_row_and_column(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as e:
        load_sft_pairs(path)
    assert str(path) in str(e.value)


def test_missing_broken_and_unknown_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_rows(tmp_path / "none.jsonl")
    broken = tmp_path / "b.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable parquet"):
        read_rows(broken)
    (tmp_path / "c.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type"):
        read_rows(tmp_path / "c.csv")


def test_rl_prompts_read_back_our_own_verl_export(tmp_path):
    paths = export_parquet(tmp_path, 3, 1, 0)
    prompts = load_rl_prompts(paths["train"])
    assert {p.domain for p in prompts} == {"math", "stem", "code", "simulation", "logic", "table"}
    for p in prompts:
        assert p.data_source == f"tiny/{p.domain}" and p.question and p.ground_truth
    math = next(p for p in prompts if p.domain == "math")
    assert compute_score(math.data_source, f"\\boxed{{{math.ground_truth}}}", math.ground_truth)["score"] == 1.0


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": 3, "ability": "math", "reward_model": {"ground_truth": "1"}}, "column `prompt`"),
        ({"prompt": "x", "ability": "math"}, "`reward_model` column"),
        ({"prompt": "x", "ability": "poetry", "reward_model": {"ground_truth": "1"}}, "ability 'poetry'"),
    ],
)
def test_bad_rl_rows_name_the_row(tmp_path, row, message):
    path = tmp_path / "rl.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message):
        load_rl_prompts(path)
