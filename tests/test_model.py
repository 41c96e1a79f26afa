import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from mathfirst.config import ModelConfig
from mathfirst.model import build_tiny_model, load_model, save_model
from mathfirst.sampling.rollout import generate
from mathfirst.tokenizer import train_tokenizer

CORPUS = ["Compute 12 + 34.\nSubgoal: add the ones.\nAnswer: \\boxed{46}"] * 20 + ["Who is the tallest? Ann"] * 5


def test_tokenizer_is_saved_as_hf_files_and_reloads(tmp_path):
    tok = train_tokenizer(CORPUS, 400)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "Compute 12 + 34."
    assert again(text).input_ids == tok(text).input_ids
    assert again.decode(again(text).input_ids) == text
    assert [again.decode([i]) for i in again("1234").input_ids] == ["1", "2", "3", "4"]  # digits split one by one
    chat = again.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert again.eos_token == "<|im_end|>" and again.pad_token == "<|endoftext|>"


def test_tiny_model_checkpoint_is_a_hf_folder(tmp_path):
    tok = train_tokenizer(CORPUS, 400)
    model = build_tiny_model(
        ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64), tok, 0
    )
    save_model(model, tok, tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "Qwen3ForCausalLM"
    ids = torch.tensor([tok("Compute 12").input_ids])
    assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-5)


def _save_random(model_cls, config, tmp_path):
    tok = train_tokenizer(CORPUS, 400)
    config.vocab_size = len(tok)
    config.eos_token_id = tok.eos_token_id
    model_cls(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)


def test_any_local_hf_causal_lm_loads_and_samples(tmp_path):
    small = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1
    )
    for name, cls, cfg in [
        ("llama", LlamaForCausalLM, LlamaConfig(**small)),
        ("qwen3", Qwen3ForCausalLM, Qwen3Config(head_dim=16, **small)),
    ]:
        _save_random(cls, cfg, tmp_path / name)
        model, tok = load_model(tmp_path / name)
        assert type(model) is cls
        out = generate(model, tok, ["Compute 1 + 2.", "Who?"], samples=2, temperature=1.0, max_new_tokens=5)
        assert len(out) == 2 and all(len(r) == 2 for r in out)


def test_loading_a_folder_that_is_not_a_model_says_so(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(tmp_path)
