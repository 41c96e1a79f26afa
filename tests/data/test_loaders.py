import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mathfirst.data.export import export_parquet
from mathfirst.data.loaders import DataError, check_model_folder, load_rl_prompts, load_sft_pairs, read_rows
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


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": [{"role": "system", "content": "be brief"}], "response": "y"}, "`prompt` has no user message"),
        ({"prompt": [{"role": "user", "content": None}], "response": "y"}, "message 1 needs a text `content`"),
        ({"prompt": [{"role": "user", "content": "x"}, "hi"], "response": "y"}, "message 2 needs a text `content`"),
        ({"prompt": [{"role": "robot", "content": "x"}], "response": "y"}, "message 1 has role 'robot'"),
        ({"prompt": "x", "response": ["y"]}, "column `response` must be text"),
    ],
)
def test_malformed_chats_name_the_message_and_field(tmp_path, row, message):
    """Chats that would crash later or train on nothing (no user message, a message without text) stop here."""
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"prompt": "fine", "response": "fine"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=f"{path}: row 2 .*{re.escape(message)}"):
        load_sft_pairs(path)


@pytest.mark.parametrize(
    "row, message",
    [
        ({"reward_model": {"ground_truth": None}}, "field `reward_model.ground_truth` must be text or a number"),
        ({"reward_model": {"ground_truth": ["1", "2"]}}, "field `reward_model.ground_truth` must be text or a number"),
        ({"extra_info": "abc"}, "column `extra_info` must be an object"),
        (
            {"ability": "code", "reward_model": {"ground_truth": "print(1)"}},
            "`reward_model.ground_truth` is not a code",
        ),
        ({"ability": "code", "reward_model": {"ground_truth": '{"tests": []}'}}, "is not a code test"),
        ({"prompt": [{"role": "system", "content": "x"}]}, "`prompt` has no user message"),
    ],
)
def test_rl_rows_that_would_score_nothing_stop_here(tmp_path, row, message):
    """A ground truth of null became the text 'None', a code test the verifier cannot read scored every answer 0,
    and a non-object extra_info was dropped: each is now an error naming the row and the field."""
    good = {"prompt": "x", "ability": "math", "reward_model": {"ground_truth": "1"}}
    path = tmp_path / "rl.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good | row) + "\n")
    with pytest.raises(DataError, match=f"{path}: row 2 .*{re.escape(message)}"):
        load_rl_prompts(path)
    code = {"entry_point": "f", "test": "def check(f):\n    assert f() == 1\n"}
    path.write_text(json.dumps(good | {"ability": "code", "reward_model": {"ground_truth": json.dumps(code)}}) + "\n")
    assert load_rl_prompts(path)[0].domain == "code"


def test_model_folders_missing_a_part_name_it(tmp_path):
    from mathfirst.config import ModelConfig
    from mathfirst.model import build_tiny_model, save_model
    from mathfirst.tokenizer import train_tokenizer

    folder = tmp_path / "model"
    tok = train_tokenizer(["Compute 1 + 1. 2"] * 10, 300)
    save_model(build_tiny_model(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1), tok, 0), tok,
               folder)  # fmt: skip
    check_model_folder(folder, "model.init")  # whole
    weights = folder / "model.safetensors"
    os.truncate(weights, weights.stat().st_size - 10)
    with pytest.raises(DataError, match=f"model.init: {weights} is damaged"):
        check_model_folder(folder, "model.init")
    weights.unlink()
    with pytest.raises(DataError, match=f"model.init: {folder} has no weights"):
        check_model_folder(folder, "model.init")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-1-of-2.safetensors"}}))
    with pytest.raises(DataError, match="model-1-of-2.safetensors is missing"):
        check_model_folder(folder, "--model")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(DataError, match="has no tokenizer"):
        check_model_folder(folder, "--model")
    (folder / "config.json").write_text("{}")
    with pytest.raises(DataError, match="has no `model_type`"):
        check_model_folder(folder, "--model")


def test_a_bad_row_stops_the_run_before_anything_is_written(tmp_path):
    """Through the CLI: one line naming the file, the row and the field, exit 2, and no run folder."""
    bad = tmp_path / "rl.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "ability": "math", "reward_model": {"ground_truth": None}}) + "\n")
    config = tmp_path / "run.yaml"
    smoke = (Path(__file__).parents[2] / "configs" / "smoke.yaml").read_text()
    config.write_text(smoke.replace("rl_math:\n  steps: 3", f"rl_math:\n  files: [{bad}]\n  steps: 3"))
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "mathfirst.cli", "run", "--config", config, "--out", out],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{bad}: row 1 field `reward_model.ground_truth`" in lines[0], done.stderr
    assert not out.exists()
