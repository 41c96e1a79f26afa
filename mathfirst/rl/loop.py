"""The DAPO loop: sample G responses per prompt -> verify -> shape rewards -> keep informative groups ->
recompute old log-probs -> clipped mini-batch updates. Resumable from its last saved step."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.config import RLConfig
from mathfirst.data.loaders import RLPrompt
from mathfirst.data.traces import SKILL_PREFIXES, detect_skills
from mathfirst.eval.curve import LearningCurve, scalars, train_seconds
from mathfirst.model import set_checkpointing, trainable
from mathfirst.rl.dapo import (
    agg_loss,
    agg_units,
    group_advantages,
    informative_groups,
    kl_penalty,
    outcome_rewards,
    overlong_penalty,
)
from mathfirst.rl.domain_schedule import DomainSchedule, GradientProbe, informative_counts, share_metrics
from mathfirst.rl.loss_registry import LossSettings
from mathfirst.rl.losses import objective
from mathfirst.rl.packing import PACKED, attention, micro_batches, prompt_chunks, shared_prompt_logprobs
from mathfirst.rl.prompt_selection import PromptMemory, outcomes
from mathfirst.sampling.rollout import Rollout, decode
from mathfirst.sampling.scored import sample_scored, verify
from mathfirst.sampling.stream import GroupRequest, StreamingSampler
from mathfirst.seed import derive_seed
from mathfirst.tokenizer import chat_prompt_ids
from mathfirst.train.checkpoint import resume, save_checkpoint
from mathfirst.train.lora import adapt, finish
from mathfirst.train.metrics import MetricsLog
from mathfirst.train.precision import autocast


@dataclass
class Group:
    """One prompt's G responses with their verified scores and shaped rewards."""

    task: RLPrompt
    rollouts: list[Rollout]
    scores: list[float]
    rewards: list[float]
    texts: list[str]


def pick_tasks(
    pools: dict[str, list[RLPrompt]],
    cfg: RLConfig,
    n: int,
    rng: random.Random,
    memory: PromptMemory | None = None,
    shares: dict[str, float] | None = None,
) -> list[RLPrompt]:
    """`n` tasks, each from a domain drawn by the schedule's `shares` (default: `domain_weights`, equal by
    default); within a domain uniformly, or by the memory's weights when `prompt_selection` is informative."""
    domains = list(pools)
    weights = [shares[d] if shares else cfg.domain_weights.get(d, 1.0) for d in domains]
    chosen = rng.choices(domains, weights, k=n)
    if cfg.prompt_selection == "uniform" or memory is None:
        return [rng.choice(pools[d]) for d in chosen]
    return [t for d in domains for t in memory.draw(pools[d], chosen.count(d), cfg.group_size, rng)]


def rollout_groups(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, tasks: list[RLPrompt], cfg: RLConfig, seed: int
) -> list[Group]:
    """Sample and verify G responses for each task; rewards are DAPO's +1 / -1 plus the overlong penalty."""
    G = cfg.group_size
    out = sample_scored(
        model, tokenizer, tasks, G, cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.rollout_batch_size, seed
    )
    rollouts, texts, scores = out.rollouts, out.texts, out.scores
    rewards = shaped_rewards(scores, [len(r.response_ids) for r in rollouts], cfg)
    return [
        Group(t, rollouts[k * G : (k + 1) * G], scores[k * G : (k + 1) * G], rewards[k * G : (k + 1) * G],
              texts[k * G : (k + 1) * G])
        for k, t in enumerate(tasks)
    ]  # fmt: skip


def dapo_rewards(
    tasks: list[RLPrompt], texts: list[str], lengths: list[int], cfg: RLConfig
) -> tuple[list[float], list[float]]:
    """Each response's verified score and its DAPO reward (`shaped_rewards`)."""
    scores = [r["score"] for r in verify(tasks, texts)]
    return scores, shaped_rewards(scores, lengths, cfg)


def shaped_rewards(scores: list[float], lengths: list[int], cfg: RLConfig) -> list[float]:
    """DAPO's reward: +1 / -1 from the verifier's verdict plus the soft overlong penalty on the response's length
    in tokens (EOS included)."""
    penalty = overlong_penalty(torch.tensor(lengths), cfg.max_new_tokens, cfg.overlong_buffer, cfg.overlong_penalty)
    return [r + p for r, p in zip(outcome_rewards(scores), penalty.tolist())]


def collect_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pools: dict[str, list[RLPrompt]],
    cfg: RLConfig,
    step: int,
    seed: int,
    memory: PromptMemory | None = None,
    shares: dict[str, float] | None = None,
) -> tuple[list[Group], list[Group], int]:
    """Dynamic sampling: sample rounds of prompts, keep groups whose accuracies differ, until the batch is full
    or `max_gen_rounds` is spent (each round's outcomes go to `memory` before the next draws). Returns (kept
    groups, every sampled group, rounds used)."""
    kept: list[Group] = []
    sampled: list[Group] = []
    rounds = 0
    while len(kept) < cfg.prompts_per_step and rounds < cfg.max_gen_rounds:
        round_seed = derive_seed(seed, "rl_round", step, rounds)
        tasks = pick_tasks(pools, cfg, cfg.prompts_per_step, random.Random(round_seed), memory, shares)
        groups = rollout_groups(model, tokenizer, tasks, cfg, round_seed)
        if memory is not None:
            memory.observe([outcomes(g.task, g.scores) for g in groups])
        sampled += groups
        rounds += 1
        if not cfg.dynamic_sampling:
            kept = groups
            break
        scores = torch.tensor([s for g in groups for s in g.scores])
        ids = [k for k, g in enumerate(groups) for _ in g.scores]
        kept += [groups[k] for k in informative_groups(scores, ids)]
    return kept[: cfg.prompts_per_step], sampled, rounds


def collect_streaming(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pools: dict[str, list[RLPrompt]],
    cfg: RLConfig,
    step: int,
    seed: int,
    memory: PromptMemory | None = None,
    shares: dict[str, float] | None = None,
) -> tuple[list[Group], list[Group], int]:
    """Dynamic sampling that streams: the first round's groups fill the batch, and each group that comes back
    all right or all wrong is replaced at once by the next round's next group, in the rows that finished
    responses freed, until the batch is full or `max_gen_rounds` rounds of groups are spent. Each group is
    verified (and its outcome goes to `memory`) as soon as its last response ends. Returns (kept groups, every
    sampled group, rounds drawn)."""
    kept: list[Group] = []
    sampled: list[Group] = []
    queue: list[RLPrompt] = []
    flying, rounds, admitted = 0, 0, 0

    def next_group() -> GroupRequest | None:
        nonlocal flying, rounds, admitted
        if len(kept) + flying >= cfg.prompts_per_step or admitted >= cfg.prompts_per_step * cfg.max_gen_rounds:
            return None
        if not queue:
            round_seed = derive_seed(seed, "rl_round", step, rounds)
            queue.extend(pick_tasks(pools, cfg, cfg.prompts_per_step, random.Random(round_seed), memory, shares))
            rounds += 1
        task = queue.pop(0)
        flying, admitted = flying + 1, admitted + 1
        prompt = chat_prompt_ids(tokenizer, task.question)
        return GroupRequest(prompt, cfg.group_size, derive_seed(seed, "rl_group", step, admitted), task)

    def on_group(request: GroupRequest, rollouts: list[Rollout]) -> None:
        nonlocal flying
        task, texts = request.key, decode(tokenizer, rollouts)
        scores, rewards = dapo_rewards([task] * len(texts), texts, [len(r.response_ids) for r in rollouts], cfg)
        group = Group(task, rollouts, scores, rewards, texts)
        if memory is not None:
            memory.observe([outcomes(task, scores)])
        sampled.append(group)
        if informative_groups(torch.tensor(scores), [0] * len(scores)):  # the rounds' rule, one group at a time
            kept.append(group)
        flying -= 1

    room = max(len(chat_prompt_ids(tokenizer, t.question)) for tasks in pools.values() for t in tasks[:32])
    columns = room + 3 * cfg.max_new_tokens  # a longer prompt waits for room; a full cache starts a new one
    sampler = StreamingSampler(
        model, tokenizer.pad_token_id, tokenizer.eos_token_id, cfg.rollout_batch_size, cfg.max_new_tokens,
        cfg.temperature, cfg.top_p, columns, room,
    )  # fmt: skip
    sampler.run(next_group, on_group)
    return kept, sampled, rounds


def pack(groups: list[Group], pad_id: int, mask_truncated: bool, norm_by_std: bool = True) -> dict[str, torch.Tensor]:
    """Right-padded prompt+response ids, a mask over response tokens, the sampler's log-probs (PPO's old
    policy: the sampler runs this very model, so no second forward is needed), per-sequence advantages."""
    rollouts = [r for g in groups for r in g.rollouts]
    width = max(len(r.prompt_ids) + len(r.response_ids) for r in rollouts)
    ids = torch.full((len(rollouts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rollouts), width))
    old_logp = torch.zeros((len(rollouts), width))
    for i, r in enumerate(rollouts):
        p, n = len(r.prompt_ids), len(r.response_ids)
        ids[i, : p + n] = torch.tensor(r.prompt_ids + r.response_ids)
        old_logp[i, p : p + n] = torch.tensor(r.logprobs)
        if not (mask_truncated and r.truncated):
            mask[i, p : p + n] = 1.0
    rewards = torch.tensor([x for g in groups for x in g.rewards])
    group_ids = [k for k, g in enumerate(groups) for _ in g.rollouts]
    return {
        "ids": ids,
        "mask": mask,
        "old_logp": old_logp,
        "adv": group_advantages(rewards, group_ids, norm_by_std=norm_by_std),
        "prompt_len": torch.tensor([len(r.prompt_ids) for r in rollouts]),
        "response_len": torch.tensor([len(r.response_ids) for r in rollouts]),
    }


def loss_settings(cfg: RLConfig) -> LossSettings:
    return LossSettings(cfg.clip_low, cfg.clip_high, cfg.clip_c, cfg.loss_agg, cfg.max_new_tokens)


def part_loss(
    model: PreTrainedModel,
    batch: dict[str, torch.Tensor],
    chunks: list[torch.Tensor],
    ref_model: PreTrainedModel | None,
    cfg: RLConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The stage's policy loss (`cfg.loss`, DAPO by default) over one micro-batch (chunks of responses sharing a
    prompt), with its KL term when there is one, and its statistics."""
    logp, entropy = shared_prompt_logprobs(model, batch, chunks, cfg.temperature)
    rows = torch.cat(chunks)
    offset = torch.arange(logp.shape[1], device=logp.device)
    index = (batch["prompt_len"][rows, None] + offset).clamp(max=batch["ids"].shape[1] - 1)  # into the batch
    mask = batch["mask"][rows].gather(1, index) * (offset < batch["response_len"][rows, None])
    old_logp, adv = batch["old_logp"][rows].gather(1, index), batch["adv"][rows]
    loss, stats = objective(cfg.loss, logp, old_logp, adv, mask, loss_settings(cfg))
    if ref_model is not None and cfg.kl_coef > 0:
        with torch.no_grad():
            ref_logp, _ = shared_prompt_logprobs(ref_model, batch, chunks, cfg.temperature)
        kl = kl_penalty(logp, ref_logp, cfg.kl_estimator)
        loss = loss + cfg.kl_coef * agg_loss(kl, mask, cfg.loss_agg, cfg.max_new_tokens)
    return loss, stats | {"loss": loss.item(), "entropy": float(agg_loss(entropy, mask, "token-mean"))}


def update(
    model: PreTrainedModel,
    ref_model: PreTrainedModel | None,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    group_size: int,
    cfg: RLConfig,
    rng: torch.Generator,
    dtype: torch.dtype = torch.float32,
    probe: GradientProbe | None = None,
) -> dict[str, float]:
    """PPO epochs of clipped mini-batch updates over the kept groups; returns averaged statistics. A `probe`
    reads per-domain gradients between micro-batches, which it makes of one domain each."""
    batch = {k: v.to(model.device) for k, v in batch.items()}
    n_groups = batch["ids"].shape[0] // group_size
    stats: dict[str, list[float]] = {"loss": [], "clip_frac": [], "ppo_kl": [], "entropy": [], "grad_norm": []}
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(n_groups, generator=rng)
        for start in range(0, n_groups, cfg.mini_batch_groups):
            groups = order[start:][: cfg.mini_batch_groups].tolist()
            rows = torch.cat([torch.arange(g * group_size, (g + 1) * group_size) for g in groups])
            optimizer.zero_grad(set_to_none=True)
            if probe:
                probe.start()
            units = agg_units(batch["mask"][rows], cfg.loss_agg).clamp(min=1)
            step_stats = dict.fromkeys(("loss", "clip_frac", "ppo_kl", "entropy"), 0.0)
            chunks = prompt_chunks(batch, groups, group_size, cfg.micro_batch_rows)
            parts = (probe.micro_batches if probe else micro_batches)(batch, chunks, cfg.micro_batch_rows)
            for part in parts:
                with attention(model, PACKED):  # over the backward too: checkpointed layers recompute packed
                    with autocast(model.device, dtype):
                        loss, part_stats = part_loss(model, batch, part, ref_model, cfg)
                    share = float(agg_units(batch["mask"][torch.cat(part)], cfg.loss_agg) / units)  # its weight
                    (loss * share).backward()
                if probe:
                    probe.read(part)
                for k, v in part_stats.items():
                    step_stats[k] += v * share
            stats["grad_norm"].append(float(torch.nn.utils.clip_grad_norm_(trainable(model), cfg.grad_clip)))
            optimizer.step()
            for k, v in step_stats.items():
                stats[k].append(v)
    optimizer.zero_grad(set_to_none=True)  # no gradients held while the next step samples
    return {k: round(sum(v) / len(v), 5) for k, v in stats.items() if v}


def step_metrics(kept: list[Group], sampled: list[Group], rounds: int) -> dict[str, float]:
    """Reward, accuracy, length, dropped share and skill rates over everything sampled in a step."""
    scores = [s for g in sampled for s in g.scores]
    rewards = [r for g in sampled for r in g.rewards]
    lengths = [len(r.response_ids) for g in sampled for r in g.rollouts]
    truncated = [r.truncated for g in sampled for r in g.rollouts]
    skills = [detect_skills(t) for g in sampled for t in g.texts]
    uniform = sum(len(set(g.scores)) == 1 for g in sampled)
    all_right = sum(min(g.scores) > 0 for g in sampled)
    out = {
        "reward": sum(rewards) / len(rewards),
        "acc": sum(scores) / len(scores),
        "response_length": sum(lengths) / len(lengths),
        "truncated": sum(truncated) / len(truncated),
        "groups_sampled": len(sampled),
        "groups_kept": len(kept),
        "dropped_share": uniform / len(sampled),  # groups whose accuracies were all equal ...
        "all_right_share": all_right / len(sampled),  # ... of which these were all right, the rest all wrong
        "gen_rounds": rounds,
    }
    out |= {f"skill_{k}": sum(s[k] for s in skills) / len(skills) for k in SKILL_PREFIXES}
    for domain in sorted({g.task.domain for g in sampled}):
        acc = [s for g in sampled if g.task.domain == domain for s in g.scores]
        out[f"acc_{domain}"] = sum(acc) / len(acc)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def lr_at(step: int, cfg: RLConfig) -> float:
    """Linear warm-up, then constant (the DAPO recipe's schedule)."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr


def learn(
    model: PreTrainedModel,
    ref_model: PreTrainedModel | None,
    optimizer: torch.optim.Optimizer,
    tokenizer: PreTrainedTokenizerBase,
    kept: list[Group],
    cfg: RLConfig,
    step: int,
    seed: int,
    dtype: torch.dtype,
) -> tuple[dict[str, float], dict[str, float]]:
    """One step's update on its kept groups (none kept: no update). Returns its statistics and, under the transfer
    schedule, each domain's gradient alignment with the others."""
    if not kept:
        return {}, {}
    probe = GradientProbe(model, [g.task.domain for g in kept], cfg.group_size) if cfg.schedule == "transfer" else None
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    model.train()
    batch = pack(kept, tokenizer.pad_token_id, cfg.mask_truncated, cfg.norm_adv_by_std)
    rng = torch.Generator().manual_seed(derive_seed(seed, "rl_minibatch_order", step))
    stats = update(model, ref_model, optimizer, batch, cfg.group_size, cfg, rng, dtype, probe)
    model.eval()
    alignment = probe.alignment() if probe else {}
    return stats | {f"align_{d}": a for d, a in alignment.items()}, alignment


def train_rl(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    cfg: RLConfig,
    pools: dict[str, list[RLPrompt]],
    stage_dir: Path,
    seed: int,
    desc: str,
    loggers: tuple[str, ...] = (),
    dtype: torch.dtype = torch.float32,
    curve_for: Callable[[int], LearningCurve] | None = None,
) -> PreTrainedModel:
    """Run cfg.steps DAPO steps on prompts drawn from `pools` (per domain), resuming from stage_dir/last when a
    checkpoint is there; metrics go to `loggers` too, held-out points to the learning curve that `curve_for`
    makes for the resumed step. Returns a plain HF model (LoRA adapters merged)."""
    ref_model = frozen_copy(model, dtype) if cfg.kl_coef > 0 else None
    model = adapt(model, cfg.lora, dtype)
    model, tokenizer, optimizer, start = resume(
        model,
        tokenizer,
        stage_dir,
        lambda m: torch.optim.AdamW(trainable(m), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.adam_betas),
        desc,
    )
    set_checkpointing(model, cfg.gradient_checkpointing)
    train_s = train_seconds(stage_dir, start)
    log = MetricsLog(stage_dir / "metrics.jsonl", start, loggers)
    curve = curve_for(start) if curve_for else None
    memory = PromptMemory(stage_dir, start)
    schedule = DomainSchedule(cfg, list(pools), stage_dir, start)
    if curve and curve.due(start):
        log.log(start, **heldout_point(curve, model, tokenizer, start, train_s, dtype))
    bar = tqdm(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps, dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        shares = schedule.shares()
        with autocast(model.device, dtype):
            collect = collect_streaming if cfg.streaming and cfg.dynamic_sampling else collect_batch
            kept, sampled, rounds = collect(model, tokenizer, pools, cfg, step, seed, memory, shares)
        memory.record(step + 1, [outcomes(g.task, g.scores) for g in sampled])
        t_sample = time.perf_counter() - t0
        metrics = step_metrics(kept, sampled, rounds) | share_metrics(shares)
        stats, alignment = learn(model, ref_model, optimizer, tokenizer, kept, cfg, step, seed, dtype)
        schedule.record(step + 1, shares, informative_counts([(g.task.domain, g.scores) for g in sampled]), alignment)
        metrics |= stats
        metrics |= {"sample_s": round(t_sample, 2), "step_s": round(time.perf_counter() - t0, 2)}
        train_s += metrics["step_s"]
        if curve and curve.due(step + 1):
            metrics |= heldout_point(curve, model, tokenizer, step + 1, train_s, dtype)
        log.log(step + 1, **metrics)
        bar.set_postfix(acc=f"{metrics['acc']:.2f}", kept=f"{len(kept)}/{len(sampled)}")
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            save_checkpoint(stage_dir / "last", model, tokenizer, optimizer, step + 1)
    bar.close()
    log.close()
    schedule.close()
    return finish(model, stage_dir)


def heldout_point(
    curve: LearningCurve,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    step: int,
    train_s: float,
    dtype: torch.dtype,
) -> dict[str, float]:
    """Measure a learning-curve point at `step`; its accuracies as metrics."""
    with autocast(model.device, dtype):
        return scalars(curve.measure(model, tokenizer, step, train_s))


def frozen_copy(model: PreTrainedModel, dtype: torch.dtype) -> PreTrainedModel:
    """The KL reference: a copy of the starting weights in `dtype`, never trained."""
    ref = type(model)(model.config).eval()
    ref.load_state_dict(model.state_dict())
    return ref.to(dtype).requires_grad_(False)
