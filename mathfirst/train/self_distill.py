"""Cold start without a teacher: rejection-sampled self-distillation. The starting model answers each prompt
`samples` times; the verified-correct, untruncated responses are kept, those that verify or backtrack first,
and become SFT rows. Written to `self_distill.jsonl` in the stage folder, which a resumed stage reads back."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.config import RunConfig, SelfDistillConfig
from mathfirst.data.assemble import styled, tiny_prompt
from mathfirst.data.gym import covered_domains, gym_prompts
from mathfirst.data.loaders import RLPrompt
from mathfirst.data.traces import detect_skills
from mathfirst.data.world import generate_tasks
from mathfirst.sampling.scored import sample_scored
from mathfirst.seed import derive_seed

FILE = "self_distill.jsonl"


def distill_prompts(cfg: RunConfig, sd: SelfDistillConfig, seed: int) -> list[RLPrompt]:
    """`sd.prompts` training prompts: the gym tasks of `sd.reasoning_gym` (spread over their domains), else the
    tiny world's math."""
    style = cfg.model.prompt_style
    if sd.reasoning_gym is None:
        tasks = generate_tasks("math", "train", sd.prompts, seed, tuple(cfg.world.levels))
        return [tiny_prompt(t, style) for t in tasks]
    domains = sorted(covered_domains(sd.reasoning_gym))
    prompts = []
    for d in domains:
        rows = gym_prompts(sd.reasoning_gym, d, "train", seed)[: -(-sd.prompts // len(domains))]
        prompts += [styled(p, style) for p in rows]
    return prompts[: sd.prompts]


def skill_rank(text: str) -> int:
    """Responses that verify or backtrack come first, then those with any other skill move."""
    skills = detect_skills(text)
    return -(2 * (skills["verification"] + skills["backtracking"]) + skills["subgoal"] + skills["enumeration"])


def select_verified(
    questions: list[str], texts: list[str], scores: list[float], truncated: list[bool], per_prompt: int
) -> list[dict[str, str]]:
    """Per question (its responses follow each other in `texts`): the distinct verified, untruncated responses,
    skill-richest first, at most `per_prompt`."""
    k = len(texts) // len(questions)
    rows = []
    for q, question in enumerate(questions):
        span = range(q * k, (q + 1) * k)
        right = dict.fromkeys(texts[i] for i in span if scores[i] > 0 and not truncated[i])
        rows += [{"prompt": question, "response": t} for t in sorted(right, key=skill_rank)[:per_prompt]]
    return rows


def self_distilled_pairs(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: RunConfig, sd: SelfDistillConfig, stage_dir: Path
) -> list[tuple[str, str]]:
    """(user message, the model's own verified response) pairs; computed once per stage folder."""
    path = stage_dir / FILE
    if path.is_file():
        return [(r["prompt"], r["response"]) for r in map(json.loads, path.read_text().splitlines())]
    seed = derive_seed(cfg.seed, "self_distill")
    prompts = distill_prompts(cfg, sd, seed)
    out = sample_scored(model, tokenizer, prompts, sd.samples, sd.max_new_tokens, sd.temperature, 1.0,
                        cfg.eval.batch_size, seed, desc="self-distill")  # fmt: skip
    texts, truncated = out.texts, [r.truncated for r in out.rollouts]
    rows = select_verified([p.question for p in prompts], texts, out.scores, truncated, sd.per_prompt)
    Console().print(f"self-distill: kept {len(rows)} responses of {len(texts)} sampled ({len(prompts)} prompts)")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [(r["prompt"], r["response"]) for r in rows]
