"""The tiny world: six task generators, disjoint train/held-out splits, rendered traces."""

from __future__ import annotations

import random
from collections.abc import Callable

from mathfirst.data.domains import DOMAIN_NAMES, DOMAINS
from mathfirst.data.schema import LEVELS, Task
from mathfirst.data.traces import TraceStyle, render

HELDOUT_BUCKETS = 10  # one hash bucket in ten belongs to the held-out split


def is_heldout(task: Task) -> bool:
    return int(task.uid, 16) % HELDOUT_BUCKETS == 0


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of: {', '.join(DOMAIN_NAMES)}")
    return domain


def generate_one(domain: str, rng: random.Random, level: int) -> Task:
    return DOMAINS[domain].generate(rng, level)


def generate_tasks(domain: str, split: str, n: int, seed: int, levels: tuple[int, ...] = LEVELS) -> list[Task]:
    """`n` tasks of one domain and split, deterministic under `seed`.

    Train tasks are drawn as the generators draw them (a random level, then a random kind) and never hash into
    the held-out bucket. The held-out split holds distinct tasks only, as many of each level and, within a level,
    of each kind as the training mix has on average, so a kind with few distinct tasks is not under-measured.
    """
    check_domain(domain)
    if split not in ("train", "heldout"):
        raise ValueError(f"unknown split {split!r}; choose train or heldout")
    rng = random.Random(f"{seed}/{domain}/{split}")
    tasks: list[Task] = []
    if split == "train":
        while len(tasks) < n:
            task = generate_one(domain, rng, rng.choice(levels))
            if not is_heldout(task):
                tasks.append(task)
        return tasks
    seen: set[str] = set()
    for i in range(n):  # levels in turn, and each level's kinds in turn
        kinds = DOMAINS[domain].kinds(levels[i % len(levels)])
        tasks.append(_new_heldout_task(domain, kinds[(i // len(levels)) % len(kinds)], rng, seen))
    return tasks


def _new_heldout_task(domain: str, kind: Callable[[random.Random], Task], rng: random.Random, seen: set[str]) -> Task:
    """A held-out task of one kind that is not in `seen` yet."""
    for _ in range(HELDOUT_BUCKETS * 2000):
        task = kind(rng)
        if is_heldout(task) and task.uid not in seen:
            seen.add(task.uid)
            return task
    raise ValueError(f"{domain}: too few distinct held-out {kind.__name__} tasks for this many held-out tasks")


def traces(tasks: list[Task], style: TraceStyle, seed: int) -> list[tuple[str, str, bool]]:
    """(question, worked solution, solution is correct) for each task."""
    rng = random.Random(f"{seed}/traces")
    out = []
    for task in tasks:
        text, correct = render(task.solution, style, rng)
        out.append((task.question, text, correct))
    return out
