"""Responses sampled for tasks and verified: the step that RL, self-distillation, held-out evaluation and the bench
share (each task's question in chat form -> the native sampler -> text -> the task's own verifier)."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.data.loaders import RLPrompt
from mathfirst.rewards import compute_scores
from mathfirst.sampling.rollout import Rollout, decode, sample
from mathfirst.tokenizer import chat_prompt_ids


@dataclass
class Scored:
    """`n` responses per task, task by task: the rollouts, their text and the verifier's result for each."""

    rollouts: list[Rollout]
    texts: list[str]
    results: list[dict]  # score, pred, reason, ... (rewards.compute_scores)

    @property
    def scores(self) -> list[float]:
        return [r["score"] for r in self.results]


def verify(tasks: list[RLPrompt], texts: list[str]) -> list[dict]:
    """The verifier's result for each response, against the task at the same index."""
    items = [(t.data_source, x, t.ground_truth, {**t.extra_info, "ability": t.domain}) for t, x in zip(tasks, texts)]
    return compute_scores(items)


def sample_scored(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: list[RLPrompt],
    n: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    batch_size: int = 64,
    seed: int = 0,
    desc: str | None = None,
) -> Scored:
    """`n` responses per task (temperature 0: greedy), sampled, decoded and verified."""
    repeated = [t for t in tasks for _ in range(n)]
    prompts = [chat_prompt_ids(tokenizer, t.question) for t in repeated]
    rollouts = sample(model, tokenizer, prompts, max_new_tokens, temperature, top_p, batch_size, seed, desc)
    texts = decode(tokenizer, rollouts)
    return Scored(rollouts, texts, verify(repeated, texts))
