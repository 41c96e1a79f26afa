import pytest
import torch

from mathfirst.config import ModelConfig, TrainConfig
from mathfirst.model import build_tiny_model
from mathfirst.tokenizer import chat_prompt_ids, train_tokenizer
from mathfirst.train.checkpoint import latest_checkpoint
from mathfirst.train.metrics import read_metrics
from mathfirst.train.sft import IGNORE, batch_indices, collate, encode_chats, lr_at, train

PAIRS = [(f"Compute {a} + 1.", f"Answer: \\boxed{{{a + 1}}}") for a in range(10)]


def setup():
    tok = train_tokenizer([q + "\n" + r for q, r in PAIRS], 320)
    model = build_tiny_model(
        ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64), tok, 0
    )
    return model, tok


def test_sft_masks_the_prompt_and_pretraining_does_not():
    _, tok = setup()
    pairs = [("Compute 3 + 1.", "Answer: \\boxed{4}"), ("Who is the tallest? Ann", "Ann")]
    for (q, r), (ids, labels) in zip(pairs, encode_chats(tok, pairs, loss_on_prompt=False, max_len=100)):
        prompt = chat_prompt_ids(tok, q)  # the batch tokenizes as the chat template does, one by one
        assert ids == prompt + tok(r, add_special_tokens=False).input_ids + [tok.eos_token_id]
        assert labels[: len(prompt)] == [IGNORE] * len(prompt) and labels[len(prompt) :] == ids[len(prompt) :]
    ids, labels = encode_chats(tok, pairs[:1], loss_on_prompt=True, max_len=100)[0]
    assert labels == ids
    assert len(encode_chats(tok, pairs[:1], loss_on_prompt=True, max_len=5)[0][0]) == 5


def test_collate_pads_right_and_ignores_padding():
    input_ids, labels = collate([([1, 2, 3], [1, 2, 3]), ([4], [IGNORE])], pad_id=0)
    assert input_ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert labels.tolist() == [[1, 2, 3], [IGNORE] * 3]


def test_lr_warms_up_then_decays():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, examples=1)
    assert lr_at(0, cfg) == 0.1 and lr_at(9, cfg) == 1.0
    assert lr_at(99, cfg) < lr_at(50, cfg) < lr_at(10, cfg) and lr_at(99, cfg) >= 0.1


def test_training_lowers_the_loss_and_logs_metrics(tmp_path):
    model, tok = setup()
    examples = encode_chats(tok, PAIRS, True, 64)
    ids, labels = collate(examples, tok.pad_token_id)
    before = model(input_ids=ids, labels=labels).loss.item()
    cfg = TrainConfig(steps=30, batch_size=8, lr=1e-2, warmup_steps=2, examples=10, save_every=10, log_every=5)
    model = train(model, tok, examples, cfg, tmp_path, seed=0, desc="test")
    with torch.no_grad():
        after = model(input_ids=ids, labels=labels).loss.item()
    assert after < before * 0.7
    steps = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == [5, 10, 15, 20, 25, 30]
    assert latest_checkpoint(tmp_path / "last") is not None  # saved at 10 and 20


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resuming_from_a_mid_run_checkpoint_equals_uninterrupted_training(tmp_path, optimizer):
    cfg = TrainConfig(
        steps=12, batch_size=4, lr=1e-2, warmup_steps=2, examples=10, save_every=6, log_every=6, optimizer=optimizer
    )
    model, tok = setup()
    examples = encode_chats(tok, PAIRS, True, 64)
    full = train(model, tok, examples, cfg, tmp_path, seed=0, desc="full")
    # train() leaves its step-6 checkpoint behind, exactly what a run killed after step 6 leaves
    last = latest_checkpoint(tmp_path / "last")
    assert torch.load(last / "trainer_state.pt", weights_only=True)["step"] == 6
    model, tok = setup()  # a fresh process starts from scratch weights ...
    resumed = train(model, tok, examples, cfg, tmp_path, seed=0, desc="resume")  # ... and resumes at step 6
    ids, _ = collate(examples, tok.pad_token_id)
    with torch.no_grad():
        assert torch.allclose(resumed(ids).logits, full(ids).logits, atol=1e-4)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [6, 6, 12] and records[1]["event"] == "resumed"


def test_batches_are_a_function_of_the_step_and_grouped_by_length():
    lengths = [(i * 37) % 200 + 10 for i in range(1000)]
    a = [batch_indices(s, 1000, lengths, 16, seed=3) for s in range(16)]
    assert a == [batch_indices(s, 1000, lengths, 16, seed=3) for s in range(16)]
    assert a != [batch_indices(s, 1000, lengths, 16, seed=4) for s in range(16)]
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    assert spread < 60  # random batches of 16 from 10..209 would spread ~170
