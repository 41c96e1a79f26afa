"""Supervised training: tiny-world pretraining (loss on all tokens) and cold-start SFT (loss on responses)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.config import TrainConfig
from mathfirst.model import set_checkpointing, trainable
from mathfirst.rl.logprobs import head_logprobs, hidden_states
from mathfirst.seed import derive_seed
from mathfirst.train.checkpoint import resume, save_checkpoint
from mathfirst.train.lora import adapt, finish
from mathfirst.train.metrics import MetricsLog
from mathfirst.train.optim import make_optimizer
from mathfirst.train.precision import autocast

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
    g = torch.Generator().manual_seed(derive_seed(seed, "sft_order", block))
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


def next_token_loss(model: PreTrainedModel, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the labelled next tokens (HF's causal-LM loss), the output head applied a chunk of
    tokens at a time."""
    hidden = hidden_states(model, input_ids=input_ids)[:, :-1]
    targets = labels[:, 1:]
    scored = targets != IGNORE
    logp, _ = head_logprobs(model, hidden[scored], targets[scored])
    return -logp.mean()


def accumulate(
    model: PreTrainedModel, rows: list[tuple[list[int], list[int]]], cfg: TrainConfig, pad_id: int, dtype: torch.dtype
) -> torch.Tensor:
    """Gradients of the batch's mean next-token loss, summed over micro-batches of `micro_batch_size` rows (each
    weighted by its share of the labelled tokens, so any split gives the whole batch's gradient); returns the loss."""
    size = cfg.micro_batch_size or len(rows)
    scored = sum(sum(label != IGNORE for label in labels[1:]) for _, labels in rows)
    total = torch.zeros(())
    for start in range(0, len(rows), size):
        input_ids, labels = (t.to(model.device) for t in collate(rows[start : start + size], pad_id))
        share = int((labels[:, 1:] != IGNORE).sum()) / scored
        with autocast(model.device, dtype):
            loss = next_token_loss(model, input_ids, labels) * share
        loss.backward()
        total += loss.detach().cpu()
    return total


def train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[tuple[list[int], list[int]]],
    cfg: TrainConfig,
    stage_dir: Path,
    seed: int,
    desc: str,
    loggers: tuple[str, ...] = (),
    dtype: torch.dtype = torch.float32,
) -> PreTrainedModel:
    """Train for cfg.steps, resuming from stage_dir/last if a checkpoint is there; metrics go to `loggers` too.
    Returns a plain HF model (LoRA adapters merged; saved in stage_dir/adapter too)."""
    model = adapt(model, cfg.lora, dtype)
    model, tokenizer, optimizer, start = resume(model, tokenizer, stage_dir, lambda m: make_optimizer(m, cfg), desc)
    set_checkpointing(model, cfg.gradient_checkpointing)
    log = MetricsLog(stage_dir / "metrics.jsonl", start, loggers)
    if start:
        log.log(start, event="resumed")
    model.train()
    lengths = [len(ids) for ids, _ in examples]
    tokens, t0 = 0, time.perf_counter()
    bar = tqdm(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps, dynamic_ncols=True)
    for step in bar:
        batch = batch_indices(step, len(examples), lengths, cfg.batch_size, seed)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss = accumulate(model, [examples[i] for i in batch], cfg, tokenizer.pad_token_id, dtype)
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable(model), cfg.grad_clip)
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
    return finish(model, stage_dir)
