"""Batched sampling from any HF causal LM: HF `generate` (the reference engine) and the native KV-cache
sampler that RL uses, which also returns each token's log-prob under the sampling policy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from tqdm import tqdm
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.tokenizer import chat_prompt_ids


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: list[str],
    samples: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 192,
    batch_size: int = 64,
    desc: str = "sampling",
    seed: int = 0,
) -> list[list[str]]:
    """`samples` responses per question; temperature 0 means greedy. Prompts are batched by length."""
    prompts = [chat_prompt_ids(tokenizer, q) for q in questions]
    jobs = sorted(((i, s) for i in range(len(prompts)) for s in range(samples)), key=lambda j: len(prompts[j[0]]))
    out: list[list[str]] = [[""] * samples for _ in questions]
    torch.manual_seed(seed)
    model.eval()
    for start in tqdm(range(0, len(jobs), batch_size), desc=desc, leave=False, dynamic_ncols=True):
        chunk = jobs[start : start + batch_size]
        width = max(len(prompts[i]) for i, _ in chunk)
        input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (i, _) in enumerate(chunk):  # left padding
            input_ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]) :] = 1
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
            if temperature > 0
            else {"do_sample": False}
        )
        generated = model.generate(
            input_ids=input_ids.to(model.device),
            attention_mask=mask.to(model.device),
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **sampling,
        )
        texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
        for (i, s), text in zip(chunk, texts):
            out[i][s] = text
    return out


@dataclass
class Rollout:
    """One sampled response: its tokens (EOS included when reached) and their log-probs under the sampler."""

    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    truncated: bool  # stopped at max_new_tokens without EOS


def decode(tokenizer: PreTrainedTokenizerBase, rollouts: list[Rollout]) -> list[str]:
    """The responses' text, special tokens (EOS) dropped."""
    return [tokenizer.decode(r.response_ids, skip_special_tokens=True) for r in rollouts]


def pick_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next tokens and their log-probs under softmax(logits / T) (top-p only narrows what is drawn)."""
    if temperature <= 0:
        logp = torch.log_softmax(logits.float(), -1)
        token = logits.argmax(-1)
        return token, logp.gather(-1, token[:, None])[:, 0]
    logp = torch.log_softmax(logits.float() / temperature, -1)
    probs = logp.exp()
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest prefix reaching top_p
        sorted_p = sorted_p.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    token = torch.multinomial(probs, 1, generator=generator)[:, 0]
    return token, logp.gather(-1, token[:, None])[:, 0]


@torch.inference_mode()
def sample_batch(
    model: PreTrainedModel,
    prompts: list[list[int]],
    pad_id: int,
    eos_id: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[Rollout]:
    """The native sampler: one prefill of the left-padded prompts, then one cached forward per new token.
    Rows that reach EOS leave the batch (and the cache), so a few long answers do not drag the rest along."""
    n, width = len(prompts), max(len(p) for p in prompts)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for row, p in enumerate(prompts):
        input_ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    device = model.device
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache, logits_to_keep=1)
    logits, position = out.logits[:, -1], positions[:, -1]
    tokens: list[list[int]] = [[] for _ in range(n)]
    logprobs: list[list[float]] = [[] for _ in range(n)]
    active = torch.arange(n, device=device)  # original row of each row still running
    for t in range(max_new_tokens):
        token, logp = pick_tokens(logits, temperature, top_p, generator)
        for row, tok, lp in zip(active.tolist(), token.tolist(), logp.tolist()):
            tokens[row].append(tok)
            logprobs[row].append(lp)
        running = token != eos_id
        if t + 1 == max_new_tokens or not bool(running.any()):
            break
        if not bool(running.all()):
            keep = running.nonzero()[:, 0]
            active, token, mask, position = active[keep], token[keep], mask[keep], position[keep]
            for layer in cache.layers:
                layer.batch_select_indices(keep)
        mask = torch.cat([mask, torch.ones((len(active), 1), dtype=torch.long, device=device)], dim=1)
        position = position + 1
        logits = model(
            input_ids=token[:, None], attention_mask=mask, position_ids=position[:, None], cache=cache
        ).logits[:, -1]
    return [Rollout(prompts[i], tokens[i], logprobs[i], tokens[i][-1] != eos_id) for i in range(n)]


def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
    seed: int = 0,
    desc: str | None = None,
) -> list[Rollout]:
    """Sample one response per prompt (repeat a prompt for a group); batches are formed by prompt length."""
    if not prompts:
        return []
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[Rollout | None] = [None] * len(prompts)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    was_training = model.training
    model.eval()
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=desc, leave=False, dynamic_ncols=True, disable=desc is None):
        chunk = order[start : start + batch_size]
        rollouts = sample_batch(
            model,
            [prompts[i] for i in chunk],
            tokenizer.pad_token_id,
            tokenizer.eos_token_id,
            max_new_tokens,
            temperature,
            top_p,
            generator,
        )
        for i, r in zip(chunk, rollouts):
            out[i] = r
    model.train(was_training)
    return out  # type: ignore[return-value]


@torch.inference_mode()
def stream(
    model: PreTrainedModel,
    prompt: list[int],
    eos_id: int,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    stop_ids: set[int] = frozenset(),
) -> Iterator[int]:
    """Yield one response's tokens as they are sampled (for serving); stops at EOS or a stop token."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    cache = DynamicCache()
    ids = torch.tensor([prompt], device=model.device)
    logits = model(input_ids=ids, cache=cache, logits_to_keep=1).logits[:, -1]
    for _ in range(max_new_tokens):
        token, _ = pick_tokens(logits, temperature, top_p, generator)
        t = int(token[0])
        if t == eos_id or t in stop_ids:
            return
        yield t
        logits = model(input_ids=token[:, None], cache=cache).logits[:, -1]
