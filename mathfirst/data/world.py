"""The tiny world: six task generators, disjoint train/held-out splits, rendered traces."""

from __future__ import annotations

import random
from types import ModuleType

from mathfirst.data import code, logic, math, simulation, stem, table
from mathfirst.data.reasoning import TraceStyle, render
from mathfirst.data.schema import DOMAINS, Task

GENERATORS: dict[str, ModuleType] = {
    "math": math,
    "stem": stem,
    "code": code,
    "simulation": simulation,
    "logic": logic,
    "table": table,
}
HELDOUT_BUCKETS = 10  # one hash bucket in ten belongs to the held-out split


def is_heldout(task: Task) -> bool:
    return int(task.uid, 16) % HELDOUT_BUCKETS == 0


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of: {', '.join(DOMAINS)}")
    return domain


def generate_one(domain: str, rng: random.Random, level: int) -> Task:
    return GENERATORS[domain].generate(rng, level)


def generate_tasks(domain: str, split: str, n: int, seed: int, levels: tuple[int, ...] = (1, 2, 3)) -> list[Task]:
    """`n` tasks of one domain and split, deterministic under `seed`.

    The held-out split holds distinct tasks only; train tasks never hash into the held-out bucket.
    """
    check_domain(domain)
    if split not in ("train", "heldout"):
        raise ValueError(f"unknown split {split!r}; choose train or heldout")
    rng = random.Random(f"{seed}/{domain}/{split}")
    tasks: list[Task] = []
    seen: set[str] = set()
    for _ in range(n * HELDOUT_BUCKETS * 50):
        if len(tasks) == n:
            break
        task = generate_one(domain, rng, rng.choice(levels))
        if is_heldout(task) != (split == "heldout"):
            continue
        if split == "heldout":
            if task.uid in seen:
                continue
            seen.add(task.uid)
        tasks.append(task)
    if len(tasks) < n:
        raise ValueError(f"{domain}: only {len(tasks)} distinct {split} tasks exist at levels {levels}, asked for {n}")
    return tasks


def traces(tasks: list[Task], style: TraceStyle, seed: int) -> list[tuple[str, str, bool]]:
    """(question, worked solution, solution is correct) for each task."""
    rng = random.Random(f"{seed}/traces")
    out = []
    for task in tasks:
        text, correct = render(task.solution, style, rng)
        out.append((task.question, text, correct))
    return out
