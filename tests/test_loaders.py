import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mathfirst.data.loaders import DataError, load_sft_pairs, read_rows


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
