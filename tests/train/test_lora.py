"""LoRA through peft, activation checkpointing, gradient accumulation and bf16 autocast in the native trainer."""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen3Config

from mathfirst.config import LoraConfig, ModelConfig, RLConfig, TrainConfig
from mathfirst.data.assemble import task_pools
from mathfirst.data.loaders import RLPrompt
from mathfirst.model import build_tiny_model, save_model, trainable
from mathfirst.rl.loop import Group, pack, train_rl, update
from mathfirst.sampling.decoder import StaticDecoder
from mathfirst.sampling.rollout import HFDecoder, Rollout, left_pad
from mathfirst.tokenizer import chat_prompt_ids, train_tokenizer
from mathfirst.train.checkpoint import latest_checkpoint
from mathfirst.train.lora import ADAPTER_FILE, add_lora, has_lora
from mathfirst.train.sft import collate, encode_chats, train

PAIRS = [(f"Compute {a} + 1.", f"Answer: \\boxed{{{a + 1}}}") for a in range(10)]
LORA = LoraConfig(rank=4, alpha=8)


def setup():
    tok = train_tokenizer([q + "\n" + r for q, r in PAIRS], 320)
    size = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    return build_tiny_model(size, tok, 0), tok


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def logits(model, examples, tok) -> torch.Tensor:
    ids, _ = collate(examples, tok.pad_token_id)
    with torch.no_grad():
        return model(ids).logits


def test_the_decoder_folds_adapters_in_and_matches_the_hf_forward():
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, head_dim=16,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)  # fmt: skip
    base = AutoModelForCausalLM.from_config(config).eval()
    model = add_lora(copy.deepcopy(base), LORA, torch.float32)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.2)  # peft starts B at zero: make the adapters matter
    ids, valid = left_pad([[5, 6, 7], [8, 9]], 0, model.device)
    positions = (valid.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        ours = StaticDecoder(model, 2, 8).forward(ids, positions, valid)
        ref = HFDecoder(model).forward(ids, positions, valid)
        plain = HFDecoder(base).forward(ids, positions, valid)
    assert torch.allclose(ours, ref, atol=1e-5) and not torch.allclose(ref, plain, atol=1e-3)


def test_lora_sft_trains_only_the_adapters_and_ends_as_a_plain_merged_folder(tmp_path):
    model, tok = setup()
    before = snapshot(model)
    examples = encode_chats(tok, PAIRS, True, 64)
    cfg = TrainConfig(steps=6, batch_size=4, lr=1e-2, warmup_steps=0, examples=10, save_every=3, lora=LORA)
    trained = train(model, tok, examples, cfg, tmp_path, seed=0, desc="lora")
    last = latest_checkpoint(tmp_path / "last")
    assert (last / ADAPTER_FILE).is_file() and not (last / "model.safetensors").exists()  # adapters only
    assert (tmp_path / "adapter" / ADAPTER_FILE).is_file() and (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert not has_lora(trained) and set(snapshot(trained)) == set(before)  # plain HF names again
    after = snapshot(trained)
    assert torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])  # not adapted
    assert not torch.equal(
        after["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"]
    )
    save_model(trained, tok, tmp_path / "merged")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert torch.allclose(logits(loaded, examples, tok), logits(trained, examples, tok), atol=1e-5)


def test_a_lora_stage_resumed_from_its_adapter_checkpoint_equals_an_uninterrupted_one(tmp_path):
    examples = encode_chats(setup()[1], PAIRS, True, 64)
    cfg = TrainConfig(steps=6, batch_size=4, lr=1e-2, warmup_steps=0, examples=10, save_every=3, lora=LORA)
    model, tok = setup()
    full = train(model, tok, examples, cfg, tmp_path, seed=0, desc="full")  # leaves its step-3 checkpoint
    model, tok = setup()
    resumed = train(model, tok, examples, cfg, tmp_path, seed=0, desc="resumed")
    assert torch.allclose(logits(resumed, examples, tok), logits(full, examples, tok), atol=1e-5)


def test_a_lora_dapo_step_updates_only_the_adapters_and_the_stage_ends_merged(tmp_path):
    model, tok = setup()
    cfg = RLConfig(steps=1, prompts_per_step=2, group_size=4, max_new_tokens=8, lr=1e-2, mini_batch_groups=2,
                   lora=LORA, gradient_checkpointing=True)  # fmt: skip
    prompt = chat_prompt_ids(tok, PAIRS[0][0])
    texts = [PAIRS[0][1], "no", PAIRS[0][1], "no"]
    rollouts = [Rollout(prompt, tok(t).input_ids + [tok.eos_token_id], [], False) for t in texts]
    for r in rollouts:
        r.logprobs = [-1.0] * len(r.response_ids)
    task = RLPrompt("tiny/math", "math", PAIRS[0][0], "1")
    groups = [Group(task, rollouts, [1.0, 0.0] * 2, [1.0, -1.0] * 2, texts)] * 2
    model = add_lora(model, LORA, torch.float32)
    before = snapshot(model)
    optimizer = torch.optim.AdamW(trainable(model), lr=1e-2)
    update(model.train(), None, optimizer, pack(groups, tok.pad_token_id, False), 4, cfg, torch.Generator())
    changed = {k for k, v in snapshot(model).items() if not torch.equal(v, before[k])}
    assert changed and all("lora_" in k for k in changed)
    trained = train_rl(setup()[0], tok, cfg, task_pools(cfg, (1,), 0), tmp_path, seed=0, desc="rl")
    assert not has_lora(trained) and (tmp_path / "adapter" / ADAPTER_FILE).is_file()


@pytest.mark.parametrize("change", [{"gradient_checkpointing": True}, {"micro_batch_size": 1}])
def test_checkpointing_and_gradient_accumulation_leave_the_training_unchanged(tmp_path, change):
    examples = encode_chats(setup()[1], PAIRS, True, 64)
    cfg = TrainConfig(steps=3, batch_size=4, lr=1e-2, warmup_steps=0, examples=10)
    model, tok = setup()
    plain = train(model, tok, examples, cfg, tmp_path / "plain", seed=0, desc="plain")
    model, tok = setup()
    other = train(model, tok, examples, cfg.model_copy(update=change), tmp_path / "other", seed=0, desc="other")
    assert torch.allclose(logits(other, examples, tok), logits(plain, examples, tok), atol=1e-5)


def test_bf16_autocast_keeps_fp32_trainable_weights_and_learns(tmp_path):
    examples = encode_chats(setup()[1], PAIRS, True, 64)
    model, tok = setup()
    start = logits(model, examples, tok)
    cfg = TrainConfig(steps=4, batch_size=4, lr=1e-2, warmup_steps=0, examples=10, log_every=1)
    trained = train(model, tok, examples, cfg, tmp_path, seed=0, desc="bf16", dtype=torch.bfloat16)
    assert all(p.dtype == torch.float32 for p in trained.parameters())
    assert not torch.allclose(logits(trained, examples, tok), start)
