"""One task = one row of verl's RL parquet schema."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from mathfirst.data.traces import Solution

GYM_SOURCE_PREFIX = "reasoning_gym/"  # data_source of reasoning-gym rows: reasoning_gym/<task>
TINY_SOURCE_PREFIX = "tiny/"  # data_source of the tiny world's rows: tiny/<domain>
LEVELS = (1, 2, 3)  # difficulty levels of the tiny world's tasks
# The domains themselves, with their reward styles, are registered in data/domains/ (their modules import Task).


@dataclass
class Task:
    domain: str
    level: int
    kind: str  # the generator's template name, e.g. "column_add"
    question: str
    answer: str  # gold final answer (for code: a JSON string of tests)
    solution: Solution
    chance: float = 0.0  # accuracy of a uniform guess among the answer's options
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def uid(self) -> str:
        """Stable content hash; train and held-out splits are disjoint by it."""
        return task_hash(self.domain, self.question)

    def to_row(self, split: str, index: int) -> dict[str, Any]:
        """The verl RL row: data_source, prompt, ability, reward_model, extra_info."""
        from mathfirst.data.domains import DOMAINS  # here, not above: the registry's generator modules import Task

        return {
            "data_source": f"{TINY_SOURCE_PREFIX}{self.domain}",
            "prompt": [{"role": "user", "content": self.question}],
            "ability": self.domain,
            "reward_model": {"style": DOMAINS[self.domain].reward_style, "ground_truth": self.answer},
            "extra_info": {
                "split": split,
                "index": index,
                "level": self.level,
                "kind": self.kind,
                "uid": self.uid,
                "chance": self.chance,
                **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in self.extra.items()},
            },
        }


def task_hash(domain: str, question: str) -> str:
    return hashlib.sha256(f"{domain}\x00{question}".encode()).hexdigest()[:16]
