"""Supervised training: tiny-world pretraining (loss on all tokens) and cold-start SFT (loss on responses)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.checkpoint import resume, save_checkpoint
from mathfirst.config import TrainConfig
from mathfirst.metrics import MetricsLog
from mathfirst.optim import make_optimizer

IGNORE = -100


def encode_chats(
    tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]], loss_on_prompt: bool, max_len: int
) -> list[tuple[list[int], list[int]]]:
    """Token ids of one-turn chats (prompt, response + EOS) and their labels (prompt tokens masked unless
    `loss_on_prompt`), tokenized in one batch."""
    chats = [[{"role": "user", "content": q}] for q, _ in pairs]
    texts = tokenizer.apply_chat_template(chats, add_generation_prompt=True, tokenize=False)
    prompts = tokenizer(texts, add_special_tokens=False).input_ids
    responses = tokenizer([r for _, r in pairs], add_special_tokens=False).input_ids
    out = []
    for prompt_ids, response_ids in zip(prompts, responses):
        response_ids = response_ids + [tokenizer.eos_token_id]
        labels = (prompt_ids if loss_on_prompt else [IGNORE] * len(prompt_ids)) + response_ids
        out.append(((prompt_ids + response_ids)[:max_len], labels[:max_len]))
    return out


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a batch; padding sits after every real token, so a causal model needs no attention mask."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for i, (ids, lab) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
    return input_ids, labels


BUCKET_STEPS = 8  # batches are drawn 8 at a time and grouped by length, so little compute goes to padding


def batch_indices(step: int, n: int, lengths: list[int], batch_size: int, seed: int) -> list[int]:
    """The examples of one step: a pure function of the step, so a resumed run sees the same batches."""
    block = step // BUCKET_STEPS
    g = torch.Generator().manual_seed(seed * 100_003 + block)
    pool = torch.randint(n, (BUCKET_STEPS * batch_size,), generator=g).tolist()
    pool.sort(key=lambda i: lengths[i])
    batches = [pool[k * batch_size : (k + 1) * batch_size] for k in range(BUCKET_STEPS)]
    order = torch.randperm(BUCKET_STEPS, generator=g).tolist()
    return batches[order[step % BUCKET_STEPS]]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[tuple[list[int], list[int]]],
    cfg: TrainConfig,
    stage_dir: Path,
    seed: int,
    desc: str,
    loggers: tuple[str, ...] = (),
) -> PreTrainedModel:
    """Train for cfg.steps, resuming from stage_dir/last if a checkpoint is there; metrics go to `loggers` too."""
    model, tokenizer, optimizer, start = resume(
        model,
        tokenizer,
        stage_dir,
        lambda m: make_optimizer(m, cfg),
        desc,
    )
    log = MetricsLog(stage_dir / "metrics.jsonl", start, loggers)
    if start:
        log.log(start, event="resumed")
    model.train()
    lengths = [len(ids) for ids, _ in examples]
    tokens, t0 = 0, time.perf_counter()
    bar = tqdm(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps, dynamic_ncols=True)
    for step in bar:
        batch = batch_indices(step, len(examples), lengths, cfg.batch_size, seed)
        input_ids, labels = collate([examples[i] for i in batch], tokenizer.pad_token_id)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = model(input_ids=input_ids.to(model.device), labels=labels.to(model.device)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        tokens += sum(lengths[i] for i in batch)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            elapsed = time.perf_counter() - t0
            log.log(
                step + 1,
                loss=round(loss.item(), 4),
                lr=lr_at(step, cfg),
                grad_norm=round(float(grad_norm), 4),
                tokens_per_s=round(tokens / elapsed, 1),
            )
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            save_checkpoint(stage_dir / "last", model, tokenizer, optimizer, step + 1)
    bar.close()
    log.close()
    model.eval()
    return model
