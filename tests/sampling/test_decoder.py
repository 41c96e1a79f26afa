import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config, Qwen3Config

from mathfirst.sampling.decoder import StaticDecoder, attention_mask, supported
from mathfirst.sampling.rollout import HFDecoder, left_pad, sample_batch

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}
CONFIGS = {
    "qwen3": lambda: Qwen3Config(**SIZE),
    "qwen2": lambda: Qwen2Config(**SIZE),  # q/k/v biases
    "llama3.1-rope": lambda: LlamaConfig(**SIZE, rope_scaling=LLAMA3_ROPE),
}
SIZE = dict(
    vocab_size=97,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=128,
    tie_word_embeddings=False,
)
PROMPTS = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14], [15]]


def random_model(name: str):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIGS[name]()).eval()
    for block in model.model.layers:  # non-zero biases, so that a dropped bias would show
        for proj in (block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj):
            if proj.bias is not None:
                torch.nn.init.normal_(proj.bias, std=0.5)
    return model


@pytest.mark.parametrize("name", CONFIGS)
def test_logits_equal_the_hf_forward(name):
    """Prefill of left-padded prompts, then three cached steps: every step's logits match HF's full forward."""
    model = random_model(name)
    assert supported(model)
    ids, valid = left_pad(PROMPTS, 0, model.device)
    ours, ref = StaticDecoder(model, len(PROMPTS), ids.shape[1] + 3), HFDecoder(model)
    positions = (valid.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        a, b = ours.forward(ids, positions, valid), ref.forward(ids, positions, valid)
        for _ in range(3):
            assert torch.allclose(a, b, atol=1e-5)
            token = a.argmax(-1)[:, None]
            valid = torch.cat([valid, valid.new_ones((len(PROMPTS), 1))], 1)
            positions = positions[:, -1:] + 1
            a, b = ours.forward(token, positions, valid), ref.forward(token, positions, valid)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", CONFIGS)
def test_greedy_samples_equal_hf_generate(name):
    model = random_model(name)
    prompts = PROMPTS + PROMPTS[:2]  # repeated prompts share one prefill
    ours = sample_batch(model, prompts, 0, eos_id=3, max_new_tokens=16, temperature=0.0)
    ids, valid = left_pad(prompts, 0, model.device)
    with torch.inference_mode():
        ref = model.generate(
            input_ids=ids,
            attention_mask=valid.long(),
            max_new_tokens=16,
            do_sample=False,
            eos_token_id=3,
            pad_token_id=0,
        )[:, ids.shape[1] :].tolist()
    for r, row in zip(ours, ref):
        cut = row.index(3) + 1 if 3 in row else len(row)
        assert r.response_ids == row[:cut]


def test_other_architectures_fall_back_to_the_hf_forward():
    model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=97, n_embd=32, n_layer=1, n_head=2)).eval()
    assert not supported(model) and StaticDecoder.build(model, 2, 8) is None
    prompts = PROMPTS + PROMPTS[:1]
    rollouts = sample_batch(model, prompts, 0, eos_id=3, max_new_tokens=5, temperature=1.0)
    assert all(len(r.response_ids) == len(r.logprobs) > 0 for r in rollouts)
    greedy = sample_batch(model, prompts, 0, eos_id=3, max_new_tokens=5, temperature=0.0)
    alone = sample_batch(model, PROMPTS[:1], 0, eos_id=3, max_new_tokens=5, temperature=0.0)
    assert greedy[0].response_ids == greedy[-1].response_ids == alone[0].response_ids


def test_padding_rows_attend_only_to_themselves():
    valid = torch.tensor([[False, False, True, True]])
    mask = attention_mask(valid, 4)[0, 0]
    assert mask.tolist() == [
        [True, False, False, False],
        [False, True, False, False],
        [False, False, True, False],
        [False, False, True, True],
    ]
