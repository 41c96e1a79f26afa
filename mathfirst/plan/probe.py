"""Measure a stage's peak memory on this machine, to hold the estimate (plan/plan.py) against: two worst-case
steps, every sequence as long as the estimate assumes (prompts of model.max_seq_len - max_new_tokens, responses
of max_new_tokens that never end early), with random tokens. Run it in a fresh process, one stage per process:
    python -m mathfirst.plan.probe CONFIG STAGE   ->  one JSON line
The peak is the process's resident set (VmHWM, reset after loading) on a CPU, torch's max allocated on a GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from mathfirst.config import RL_STAGES, RunConfig, load_config
from mathfirst.data.loaders import RLPrompt
from mathfirst.model import best_device, load_model, set_checkpointing, trainable
from mathfirst.plan.plan import estimate_stage, memory_budget, model_config
from mathfirst.rl.loop import Group, frozen_copy, pack, update
from mathfirst.sampling.rollout import Rollout, sample_batch
from mathfirst.train.lora import adapt
from mathfirst.train.precision import autocast, compute_dtype
from mathfirst.train.sft import accumulate

STEPS = 2  # the second step is the steady state: optimizer moments exist, gradients are freed and refilled


def starting_model(cfg: RunConfig) -> torch.nn.Module:
    if cfg.model.init == "tiny":
        return AutoModelForCausalLM.from_config(model_config(cfg), dtype=torch.float32).to(best_device())
    return load_model(cfg.model.init)[0]


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set


def peak(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated()
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))


def rl_steps(model, ref, optimizer, cfg: RunConfig, stage: str, dtype: torch.dtype, rows: int) -> None:
    scfg = getattr(cfg, stage)
    prompt_len, new = cfg.model.max_seq_len - scfg.max_new_tokens, scfg.max_new_tokens
    vocab, G = model.config.vocab_size, scfg.group_size
    task = RLPrompt("probe", "math", "", "")
    for _ in range(STEPS):
        prompts = [torch.randint(vocab, (prompt_len,)).tolist() for _ in range(max(1, rows // G))]
        with autocast(model.device, dtype):
            sample_batch(model.eval(), [p for p in prompts for _ in range(G)][:rows], 0, -1, new)  # never ends
        scores = [float(k % 2 == 0) for k in range(G)]  # both outcomes in every group: all groups kept
        groups = [
            Group(task, [Rollout(p, torch.randint(vocab, (new,)).tolist(), [-1.0] * new, False) for _ in range(G)],
                  scores, [2 * s - 1 for s in scores], [""] * G)
            for p in (torch.randint(vocab, (prompt_len,)).tolist() for _ in range(scfg.mini_batch_groups))
        ]  # fmt: skip
        model.train()
        update(model, ref, optimizer, pack(groups, 0, False), G, scfg, torch.Generator().manual_seed(0), dtype)


def sft_steps(model, optimizer, cfg: RunConfig, stage: str, dtype: torch.dtype) -> None:
    scfg = getattr(cfg, stage)
    seq, vocab = cfg.model.max_seq_len, model.config.vocab_size
    model.train()
    for _ in range(STEPS):
        rows = [torch.randint(vocab, (seq,)).tolist() for _ in range(scfg.batch_size)]
        optimizer.zero_grad(set_to_none=True)
        accumulate(model, [(r, r) for r in rows], scfg, 0, dtype)
        optimizer.step()


def measure(cfg: RunConfig, stage: str) -> dict:
    """Peak bytes of two worst-case steps of `stage`, beside the estimate for the same settings."""
    device = best_device()
    dtype = compute_dtype(cfg.model.dtype, device)
    estimate = estimate_stage(cfg, stage, device.type, memory_budget(cfg, device.type))
    scfg = getattr(cfg, stage)
    model = starting_model(cfg)
    ref = frozen_copy(model, dtype) if stage in RL_STAGES and scfg.kl_coef > 0 else None
    model = adapt(model, scfg.lora, dtype)
    set_checkpointing(model, scfg.gradient_checkpointing)
    optimizer = torch.optim.AdamW(trainable(model), lr=1e-7)
    reset_peak(device)
    if stage in RL_STAGES:
        rl_steps(model, ref, optimizer, cfg, stage, dtype, estimate.rollout_rows)
    else:
        sft_steps(model, optimizer, cfg, stage, dtype)
    return {"stage": stage, "device": device.type, "measured": peak(device), "estimated": estimate.peak}


def main() -> None:
    config, stage = sys.argv[1], sys.argv[2]
    print(json.dumps(measure(load_config(config), stage)))


if __name__ == "__main__":
    main()
