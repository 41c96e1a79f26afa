import pytest
import torch

from mathfirst.config import ModelConfig
from mathfirst.model import build_tiny_model
from mathfirst.sampling.rollout import generate, sample
from mathfirst.tokenizer import chat_prompt_ids, train_tokenizer

CORPUS = ["Compute 12 + 34.\nSubgoal: add the ones.\nAnswer: \\boxed{46}"] * 20 + ["Who is the tallest? Ann"] * 5
QUESTIONS = ["Compute 1 + 2.", "Who is the tallest of Ann, Bob and Cy? Think.", "Compute 12 + 34 + 5."]


@pytest.fixture(scope="module")
def model_and_tok():
    tok = train_tokenizer(CORPUS, 400)
    cfg = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    return build_tiny_model(cfg, tok, 0).eval(), tok


def test_native_greedy_equals_hf_generate(model_and_tok):
    model, tok = model_and_tok
    prompts = [chat_prompt_ids(tok, q) for q in QUESTIONS]
    ours = sample(model, tok, prompts, max_new_tokens=12, temperature=0.0, batch_size=3)
    ref = generate(model, tok, QUESTIONS, 1, 0.0, max_new_tokens=12, batch_size=3)
    assert [tok.decode(r.response_ids, skip_special_tokens=True) for r in ours] == [r[0] for r in ref]


def test_logprobs_are_the_sampling_policy(model_and_tok):
    """What the sampler reports equals a fresh full forward at the same temperature (PPO's ratio starts at 1)."""
    model, tok = model_and_tok
    prompts = [chat_prompt_ids(tok, q) for q in QUESTIONS] * 2
    rollouts = sample(model, tok, prompts, max_new_tokens=10, temperature=0.7, batch_size=6, seed=3)
    for r in rollouts:
        ids = torch.tensor([r.prompt_ids + r.response_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(r.prompt_ids) - 1 : -1] / 0.7
        expect = torch.log_softmax(logits, -1).gather(-1, torch.tensor(r.response_ids)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(r.logprobs), expect, atol=1e-4)


def test_sampling_is_seeded_and_stops_at_eos(model_and_tok):
    model, tok = model_and_tok
    prompts = [chat_prompt_ids(tok, QUESTIONS[0])] * 8
    a = sample(model, tok, prompts, max_new_tokens=20, temperature=1.5, seed=1)
    b = sample(model, tok, prompts, max_new_tokens=20, temperature=1.5, seed=1)
    assert [r.response_ids for r in a] == [r.response_ids for r in b]
    assert len({tuple(r.response_ids) for r in a}) > 1  # a group really varies
    for r in a:
        ended = tok.eos_token_id in r.response_ids
        assert r.truncated == (not ended)
        assert len(r.response_ids) == 20 if r.truncated else r.response_ids[-1] == tok.eos_token_id


def test_tiny_top_p_is_greedy(model_and_tok):
    model, tok = model_and_tok
    prompts = [chat_prompt_ids(tok, q) for q in QUESTIONS]
    greedy = sample(model, tok, prompts, max_new_tokens=8, temperature=0.0)
    narrow = sample(model, tok, prompts, max_new_tokens=8, temperature=1.0, top_p=1e-6, seed=5)
    assert [r.response_ids for r in greedy] == [r.response_ids for r in narrow]
