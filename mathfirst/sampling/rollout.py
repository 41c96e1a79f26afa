"""Batched sampling from any HF causal LM: HF `generate` (the reference engine) and the native KV-cache
sampler that RL uses, which also returns each token's log-prob under the sampling policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm import tqdm
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.sampling.decoder import StaticDecoder
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


def greedy_tokens(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    token = logits.argmax(-1)
    return token, torch.log_softmax(logits.float(), -1).gather(-1, token[:, None])[:, 0]


def pick_tokens(
    logits: torch.Tensor,
    temperature: float | torch.Tensor,
    top_p: float | torch.Tensor,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next tokens and their log-probs under softmax(logits / T) (top-p only narrows what is drawn).
    `temperature` and `top_p` are one value for all rows or one per row (T = 0: greedy); the draws come
    from `generator`, or are `uniforms` in [0, 1), one per row."""
    per_row = isinstance(temperature, torch.Tensor)
    greedy = temperature <= 0 if per_row else None
    if greedy.all() if per_row else temperature <= 0:
        return greedy_tokens(logits)
    scale = torch.where(greedy, 1.0, temperature)[:, None] if per_row else temperature
    probs = torch.softmax(logits.float() / scale, -1)
    drawn = probs
    if (top_p < 1.0).any() if isinstance(top_p, torch.Tensor) else top_p < 1.0:
        nucleus = top_p[:, None] if isinstance(top_p, torch.Tensor) else top_p
        sorted_p, order = probs.sort(-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p > nucleus  # keep the smallest prefix reaching top_p
        drawn = torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(outside, 0.0))
    cdf = drawn.cumsum(-1)  # inverse-CDF draw: several times faster than torch.multinomial on a CPU
    u = uniforms[:, None] if uniforms is not None else torch.rand((len(cdf), 1), generator=generator, device=cdf.device)
    token = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)[:, 0].clamp(max=cdf.shape[-1] - 1)
    logp = probs.gather(-1, token[:, None])[:, 0].log()
    if per_row and greedy.any():
        best, best_logp = greedy_tokens(logits)
        token, logp = torch.where(greedy, best, token), torch.where(greedy, best_logp, logp)
    return token, logp


class HFDecoder:
    """The same interface as `StaticDecoder` over the model's own forward and a growing HF cache."""

    def __init__(self, model: PreTrainedModel):
        self.model, self.cache = model, DynamicCache()

    def keep_rows(self, rows: torch.Tensor) -> None:
        for layer in self.cache.layers:
            layer.batch_select_indices(rows)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        out = self.model(
            input_ids=ids, attention_mask=valid.long(), position_ids=positions, cache=self.cache, logits_to_keep=1
        )
        return out.logits[:, -1]


def left_pad(prompts: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [B, width] with the prompts right-aligned, and the mask of real (non-pad) tokens."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(prompts), width), dtype=torch.bool)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p)
        valid[row, width - len(p) :] = True
    return ids.to(device), valid.to(device)


@dataclass
class RowSettings:
    """Sampling settings that differ by row (the server batches requests of different clients): each row's
    temperature and top-p [n], its own seeded draws [n, max_new_tokens], and its token limit [n]."""

    temperature: torch.Tensor
    top_p: torch.Tensor
    uniforms: torch.Tensor
    limits: torch.Tensor


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
    rows_settings: RowSettings | None = None,
    on_step: Callable[[list[int], list[int]], None] | None = None,
) -> list[Rollout]:
    """The native sampler: one prefill of the distinct left-padded prompts (a group's G copies of a prompt
    share it), then one cached forward per new token. Finished rows leave the batch (and the cache) once
    they are a quarter of it, so a few long answers do not drag the rest along. With `rows_settings`, each
    row samples with its own settings; `on_step(rows, tokens)` sees each step's tokens (for streaming)."""
    distinct = {p: i for i, p in enumerate(dict.fromkeys(map(tuple, prompts)))}
    ids, valid = left_pad([list(p) for p in distinct], pad_id, model.device)
    width = ids.shape[1]
    decoder = StaticDecoder.build(model, len(distinct), width + max_new_tokens) or HFDecoder(model)
    position = (valid.cumsum(-1) - 1).clamp(min=0)
    logits = decoder.forward(ids, position, valid)
    copies = torch.tensor([distinct[tuple(p)] for p in prompts], device=ids.device)
    decoder.keep_rows(copies)
    logits, position = logits[copies], position[copies, -1:]
    n = len(prompts)
    valid = torch.cat([valid[copies], valid.new_ones((n, max_new_tokens))], 1)  # every sampled token is valid
    tokens = torch.full((n, max_new_tokens), eos_id, dtype=torch.long, device=ids.device)
    logprobs = torch.zeros((n, max_new_tokens), device=ids.device)
    rows = torch.arange(n, device=ids.device)  # the original index of each row still in the batch
    done = torch.zeros(n, dtype=torch.bool, device=ids.device)
    for t in range(max_new_tokens):
        if rows_settings is None:
            token, logp = pick_tokens(logits, temperature, top_p, generator)
        else:
            s = rows_settings
            token, logp = pick_tokens(logits, s.temperature[rows], s.top_p[rows], uniforms=s.uniforms[rows, t])
        tokens[rows, t], logprobs[rows, t] = token, logp  # a finished row's extra tokens are cut at its EOS
        if on_step is not None:
            on_step(rows.tolist(), token.tolist())
        done = done | (token == eos_id)
        if rows_settings is not None:
            done = done | (rows_settings.limits[rows] <= t + 1)
        finished = int(done.sum())
        if t + 1 == max_new_tokens or finished == len(rows):
            break
        if finished * 4 >= len(rows):
            keep = (~done).nonzero()[:, 0]
            rows, token, position, valid, done = rows[keep], token[keep], position[keep], valid[keep], done[keep]
            decoder.keep_rows(keep)
        position = position + 1
        logits = decoder.forward(token[:, None], position, valid[:, : width + t + 1])
    limits = rows_settings.limits.tolist() if rows_settings is not None else [max_new_tokens] * n
    return [
        rollout(prompt, toks[:limit], lps[:limit], eos_id)
        for prompt, toks, lps, limit in zip(prompts, tokens.tolist(), logprobs.tolist(), limits)
    ]


def rollout(prompt: list[int], tokens: list[int], logprobs: list[float], eos_id: int) -> Rollout:
    """Cut a row of sampled tokens after its first EOS."""
    length = tokens.index(eos_id) + 1 if eos_id in tokens else len(tokens)
    return Rollout(prompt, tokens[:length], logprobs[:length], eos_id not in tokens[:length])


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
