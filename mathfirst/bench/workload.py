"""What every contender of `mathfirst bench` runs: one model folder, its chat prompts, G samples each, a limit on
new tokens, one reward. The tiny bench asks tiny-world questions of the bench model and rewards a toy parity; a
real model (`--model DIR`) gets held-out reasoning-gym arithmetic in its domain's instruction, in the model's own
chat template, scored by each task's own verifier."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass

from transformers import PreTrainedTokenizerBase

from mathfirst.config import GymTask
from mathfirst.data.domains import DOMAIN_NAMES
from mathfirst.data.gym import gym_rows
from mathfirst.data.loaders import RLPrompt
from mathfirst.data.world import generate_tasks
from mathfirst.prompts import user_message
from mathfirst.rl.dapo import outcome_rewards
from mathfirst.sampling.scored import verify
from mathfirst.tokenizer import chat_prompt_ids

GYM_TASKS = {  # the easy arithmetic a small instruct model can sometimes solve, so rewards vary within groups
    "chain_sum": GymTask(config={"max_terms": 3, "max_digits": 2}),
    "basic_arithmetic": GymTask(
        config={"max_terms": 2, "max_digits": 1, "allow_parentheses": False, "allow_negation": False}
    ),
}


@dataclass(frozen=True)
class Workload:
    model_dir: str
    prompts: int  # distinct prompts
    new_tokens: int
    group: int = 8
    style: str = "instruct"  # "bare": tiny-world questions, toy reward (the tiny bench); "instruct": reasoning-gym

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Workload:
        return Workload(**json.loads(text))


@functools.cache
def tasks(w: Workload) -> list[RLPrompt | str]:
    """The distinct prompts' tasks (reasoning-gym rows), or bare tiny-world questions."""
    if w.style == "bare":
        per_domain = -(-w.prompts // len(DOMAIN_NAMES))
        return [t.question for d in DOMAIN_NAMES for t in generate_tasks(d, "heldout", per_domain, 1)][: w.prompts]
    half = -(-w.prompts // len(GYM_TASKS))
    rows = [r for name, task in GYM_TASKS.items() for r in gym_rows(name, task, "heldout", half, 0)]
    return rows[: w.prompts]


def prompt_ids(w: Workload, tok: PreTrainedTokenizerBase) -> list[list[int]]:
    """The distinct prompts as chat-template token ids, each ending where the assistant's answer starts."""
    return [
        chat_prompt_ids(tok, t if isinstance(t, str) else user_message(t.question, t.domain, "instruct"))
        for t in tasks(w)
    ]


def rewards(w: Workload, texts: list[str], prompt_index: list[int]) -> list[float]:
    """DAPO's +1 / -1 from the task's verifier (instruct), or the parity of the response's length (bare: a reward
    that varies within groups, so every group trains)."""
    if w.style == "bare":
        return [float(len(t) % 2) for t in texts]
    rows = tasks(w)
    return outcome_rewards([r["score"] for r in verify([rows[k] for k in prompt_index], texts)])
