from collections import Counter

import torch

from mathfirst.sampling.rollout import sample_batch
from mathfirst.sampling.stream import GroupRequest, StreamingSampler
from mathfirst.tokenizer import chat_prompt_ids

QUESTIONS = ["Compute 1 + 2.", "Who is the tallest of Ann, Bob and Cy? Think.", "Compute 12 + 34 + 5.", "Ann?"]


def peaked(model):
    """The random tiny model with its (tied) embeddings scaled up, so that it prefers a few tokens, and one of
    the most drawn as its end token: rows then end at different times."""
    with torch.no_grad():
        model.lm_head.weight.mul_(6)
    prompts = [chat_prompt_ids(model.tok, q) for q in QUESTIONS]
    rows = sample_batch(
        model, prompts * 3, model.tok.pad_token_id, -1, 24, 1.0, generator=torch.Generator().manual_seed(0)
    )
    return prompts, Counter(t for r in rows for t in r.response_ids).most_common(1)[0][0]


def stream(model, tok, groups, capacity, eos, temperature=1.0, max_new_tokens=24):
    """Every group's rollouts (by group index) and the order groups came back in."""
    pending, out, order = list(groups), {}, []

    def on_group(request, rollouts):
        out[request.key] = rollouts
        order.append(request.key)

    sampler = StreamingSampler(model, tok.pad_token_id, eos, capacity, max_new_tokens, temperature, 1.0, 96, 48)
    sampler.run(lambda: pending.pop(0) if pending else None, on_group)
    return out, order


def test_refilled_rows_sample_the_policy(model_and_tok):
    """Rows refilled into a batch mid-way report the log-probs of a fresh full forward: the reused cache rows
    carry nothing of their previous groups."""
    model, tok = model_and_tok
    model.tok = tok
    prompts, eos = peaked(model)
    groups = [GroupRequest(p, 3, seed, seed) for seed, p in enumerate(prompts * 3)]
    out, order = stream(model, tok, groups, capacity=7, eos=eos)
    assert sorted(order) == list(range(len(groups)))  # every group came back once
    lengths = {len(r.response_ids) for rs in out.values() for r in rs}
    assert len(lengths) > 3, lengths  # rows really ended at different times
    for rollouts in out.values():
        for r in rollouts:
            ids = torch.tensor([r.prompt_ids + r.response_ids])
            with torch.no_grad():
                logits = model(ids).logits[0, len(r.prompt_ids) - 1 : -1]
            expect = torch.log_softmax(logits, -1).gather(-1, torch.tensor(r.response_ids)[:, None])[:, 0]
            assert torch.allclose(torch.tensor(r.logprobs), expect, atol=1e-4)
            assert r.truncated == (r.response_ids[-1] != eos)


def test_greedy_streaming_equals_the_batch_sampler(model_and_tok):
    model, tok = model_and_tok
    model.tok = tok
    prompts, eos = peaked(model)
    out, _ = stream(
        model, tok, [GroupRequest(p, 2, 0, k) for k, p in enumerate(prompts)], capacity=3, eos=eos, temperature=0.0
    )
    ref = sample_batch(model, [p for p in prompts for _ in range(2)], tok.pad_token_id, eos, 24, 0.0)
    assert [r.response_ids for k in range(len(prompts)) for r in out[k]] == [r.response_ids for r in ref]


def test_a_group_samples_the_same_responses_whatever_shares_its_batch(model_and_tok):
    model, tok = model_and_tok
    model.tok = tok
    prompts, eos = peaked(model)
    groups = [GroupRequest(p, 4, 10 + k, k) for k, p in enumerate(prompts)]
    alone, _ = stream(model, tok, groups, capacity=4, eos=eos)
    together, _ = stream(model, tok, groups, capacity=16, eos=eos)
    assert {k: [r.response_ids for r in v] for k, v in alone.items()} == {
        k: [r.response_ids for r in v] for k, v in together.items()
    }
    assert len({tuple(r.response_ids) for r in alone[0]}) > 1  # a group's rows draw differently
