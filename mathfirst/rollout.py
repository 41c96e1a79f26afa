"""Batched sampling from any HF causal LM (HF `generate` with a KV cache)."""

from __future__ import annotations

import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

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
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **sampling,
        )
        texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
        for (i, s), text in zip(chunk, texts):
            out[i][s] = text
    return out
