"""One contender's RL step (sample G per prompt up to EOS, verify, one optimizer step), alone in a fresh process
so that its peak memory is its own:
    python -m mathfirst.bench.step ours|trl WORKLOAD_JSON  ->  one JSON line
Each contender runs `STEPS` steps on the same model folder, prompts, group size, length limit and reward; the last
one is timed (the first warms up). The peak is the resident set's high-water mark over the steps, reset after the
model is loaded (as plan/probe.py takes it)."""

from __future__ import annotations

import json
import sys
import tempfile
import time

import torch
from transformers import PreTrainedModel, TrainerCallback

from mathfirst.bench.workload import Workload, prompt_ids, rewards
from mathfirst.config import RLConfig
from mathfirst.model import load_model
from mathfirst.plan.probe import peak, reset_peak
from mathfirst.rl.loop import Group, pack, update
from mathfirst.sampling.rollout import decode, sample_batch

STEPS = 2


def update_flops(model: PreTrainedModel, groups: list[Group]) -> int:
    """Useful FLOPs of one forward + backward over the packed groups (each prompt once, then its responses):
    6 per weight per token, the output head on response tokens only, causal attention over each token's context."""
    cfg = model.config
    body = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)
    head = cfg.vocab_size * cfg.hidden_size
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    tokens = scored = context = 0
    for g in groups:
        p = len(g.rollouts[0].prompt_ids)
        tokens += p
        context += p * (p + 1) // 2
        for r in g.rollouts:
            n = len(r.response_ids)
            tokens, scored, context = tokens + n, scored + n, context + p * n + n * (n + 1) // 2
    attention = 12 * cfg.num_hidden_layers * cfg.num_attention_heads * head_dim * context
    return 6 * body * tokens + 6 * head * scored + attention


def ours(w: Workload) -> dict:
    model, tok = load_model(w.model_dir)
    reset_peak(model.device)
    prompts = prompt_ids(w, tok)
    n = len(prompts)
    cfg = RLConfig(steps=1, prompts_per_step=n, group_size=w.group, max_new_tokens=w.new_tokens, mini_batch_groups=n)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    index = [k for k in range(n) for _ in range(w.group)]
    for _ in range(STEPS):
        t0 = time.perf_counter()
        rollouts = sample_batch(
            model.eval(), [prompts[k] for k in index], tok.pad_token_id, tok.eos_token_id, w.new_tokens, 1.0
        )
        scores = rewards(w, decode(tok, rollouts), index)
        G = w.group
        groups = []
        for k in range(n):
            group_scores = scores[k * G : (k + 1) * G]
            groups.append(
                Group(None, rollouts[k * G : (k + 1) * G], group_scores, group_scores, [])
            )  # rewards = scores
        t1 = time.perf_counter()
        model.train()
        update(model, None, optimizer, pack(groups, tok.pad_token_id, False), G, cfg, torch.Generator())
        t2 = time.perf_counter()
    return {
        "seconds": t2 - t0,
        "update_seconds": t2 - t1,
        "update_flops": update_flops(model, groups),
        "response_tokens": sum(len(r.response_ids) for r in rollouts),
        "peak_rss_mb": peak(model.device) / 2**20,
    }


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self.t0)


def trl(w: Workload) -> dict:
    """TRL's GRPOTrainer with loss_type="dapo" (clip 0.2 / 0.28, no KL), one generation per step, at its fastest
    on a CPU: fp32, no gradient checkpointing."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tok = load_model(w.model_dir)
    reset_peak(model.device)
    prompts = prompt_ids(w, tok)
    n = len(prompts)
    timer = StepTimer()

    def reward(completions: list[str], index: list[int], **kw) -> list[float]:
        return rewards(w, completions, index)

    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp, per_device_train_batch_size=n * w.group, num_generations=w.group,
            max_completion_length=w.new_tokens, temperature=1.0, top_k=0, loss_type="dapo", beta=0.0, epsilon=0.2,
            epsilon_high=0.28, learning_rate=1e-6, max_steps=STEPS, num_iterations=1, steps_per_generation=1,
            gradient_accumulation_steps=1, use_cpu=True, report_to="none", save_strategy="no", logging_steps=10**6,
            shuffle_dataset=False, disable_tqdm=True, seed=0, bf16=False, fp16=False, gradient_checkpointing=False,
        )  # fmt: skip
        data = {"prompt": [tok.decode(p) for p in prompts] * STEPS, "index": list(range(n)) * STEPS}
        trainer = GRPOTrainer(
            model=model, reward_funcs=reward, args=args, train_dataset=Dataset.from_dict(data),
            processing_class=tok, callbacks=[timer],
        )  # fmt: skip
        trainer.train()
    return {"seconds": timer.times[-1], "peak_rss_mb": peak(model.device) / 2**20}


if __name__ == "__main__":
    contender, workload = sys.argv[1], Workload.from_json(sys.argv[2])
    print(json.dumps({"ours": ours, "trl": trl}[contender](workload)))
