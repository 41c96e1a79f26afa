"""The tiny world's domains: the one registry. Adding a domain is one entry in `DOMAINS`, its generator module
in this folder, its instruction template `prompts/task/<name>.txt` and its test (tests/data/test_world.py runs every
registered domain).

A generator module is pure Python (the config imports this registry) and holds `GENERATORS`, the task kinds of
each level (`{level: [kind(rng) -> Task]}`), and `generate(rng, level) -> Task`, a random kind of that level.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

from mathfirst.data.domains import code_tasks, logic_tasks, math_tasks, simulation_tasks, stem_tasks, table_tasks
from mathfirst.data.schema import Task
from mathfirst.prompts import task_template_path


@dataclass(frozen=True)
class Domain:
    name: str  # the rows' ability, and data_source tiny/<name>
    module: ModuleType  # its generator module: GENERATORS and generate(rng, level)
    reward_style: Literal["rule", "execution"] = "rule"  # reward_model.style of its rows: rule-based or executed

    def generate(self, rng: random.Random, level: int) -> Task:
        """One task of `level`, a random kind of that level."""
        return self.module.generate(rng, level)

    def kinds(self, level: int) -> list[Callable[[random.Random], Task]]:
        """The task kinds of `level`, in their module's order."""
        return self.module.GENERATORS[level]

    @property
    def template(self) -> Path:
        """Its instruction template (prompts/task/<name>.txt)."""
        return task_template_path(self.name)


DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain("math", math_tasks),
        Domain("stem", stem_tasks),
        Domain("code", code_tasks, reward_style="execution"),
        Domain("simulation", simulation_tasks),
        Domain("logic", logic_tasks),
        Domain("table", table_tasks),
    )
}
DOMAIN_NAMES: tuple[str, ...] = tuple(DOMAINS)  # in the registry's order; what `domains: all` means
