"""Prompt-level selection for RL: a memory of how the policy's recent groups fared, per prompt and per task kind,
and a draw that prefers the prompts whose next group is likely to be informative (neither all right nor all
wrong, the groups dynamic sampling keeps). Domains keep their shares (`domain_weights`); within a domain each
prompt's weight is the chance that a group of G on it is informative, under a Beta belief about its pass rate:
its kind's recent pass rate as a prior worth KIND_PRIOR groups' outcomes, plus the prompt's own outcomes. An
unseen prompt of a kind never tried is worth the most (exploration); no prompt's weight is ever 0.

The memory is replayed from `<stage>/groups.jsonl` (each step's groups: prompt key, kind, right, responses), so a
resumed stage draws as the uninterrupted one would."""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

from mathfirst.data.loaders import RLPrompt
from mathfirst.data.schema import task_hash
from mathfirst.train.metrics import MetricsLog, read_metrics

GROUPS_FILE = "groups.jsonl"
DECAY = 0.5  # a new group of a prompt (or a kind) halves the weight of its earlier ones: the policy moves
KIND_PRIOR = 2.0  # how many responses' worth of evidence a kind's pass rate lends to its unseen prompts


@lru_cache(maxsize=200_000)
def prompt_key(domain: str, question: str) -> str:
    return task_hash(domain, question)


def kind_of(task: RLPrompt) -> str:
    return f"{task.domain}/{task.extra_info.get('kind', '')}"


def informative_chance(right: float, wrong: float, group_size: int) -> float:
    """P(a group of `group_size` is neither all right nor all wrong) for a pass rate p ~ Beta(right, wrong):
    1 - E[p^G] - E[(1-p)^G], each expectation a product of G ratios."""
    all_right = all_wrong = 1.0
    for i in range(group_size):
        all_right *= (right + i) / (right + wrong + i)
        all_wrong *= (wrong + i) / (right + wrong + i)
    return max(0.0, 1.0 - all_right - all_wrong)


class PromptMemory:
    """Decayed counts of right and wrong responses per prompt and per kind, logged step by step."""

    def __init__(self, stage_dir: Path, resume_step: int = 0):
        self.log = MetricsLog(stage_dir / GROUPS_FILE, resume_step)  # drops the steps past the resumed one
        self.prompts: dict[str, tuple[float, float]] = {}
        self.kinds: dict[str, tuple[float, float]] = {}
        for record in read_metrics(self.log.path):
            self.observe(record["groups"])

    def observe(self, groups: list[list]) -> None:
        """Fold in groups as [prompt key, kind, right, responses]."""
        for key, kind, right, n in groups:
            for table, name in ((self.prompts, key), (self.kinds, kind)):
                r, w = table.get(name, (0.0, 0.0))
                table[name] = (DECAY * r + right, DECAY * w + n - right)

    def record(self, step: int, groups: list[list]) -> None:
        self.log.log(step, groups=groups)

    def weight(self, task: RLPrompt, group_size: int) -> float:
        """The chance that a group on `task` is informative, from its kind's and its own outcomes."""
        kr, kw = self.kinds.get(kind_of(task), (0.0, 0.0))
        rate = (kr + 1.0) / (kr + kw + 2.0)  # the kind's pass rate, Laplace-smoothed
        r, w = self.prompts.get(prompt_key(task.domain, task.question), (0.0, 0.0))
        return informative_chance(KIND_PRIOR * rate + r, KIND_PRIOR * (1 - rate) + w, group_size)

    def draw(self, pool: list[RLPrompt], k: int, group_size: int, rng: random.Random) -> list[RLPrompt]:
        """`k` prompts of one domain's pool, each drawn with probability proportional to its weight."""
        weights = [self.weight(t, group_size) for t in pool]
        return rng.choices(pool, weights, k=k) if sum(weights) > 0 else rng.choices(pool, k=k)


def outcomes(task: RLPrompt, scores: list[float]) -> list:
    """A group's row in the memory: [prompt key, kind, right, responses]."""
    return [prompt_key(task.domain, task.question), kind_of(task), sum(s > 0 for s in scores), len(scores)]
