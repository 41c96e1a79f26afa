"""reasoning-gym (Apache-2.0) as a task source: verifiable math, logic and simulation tasks generated offline,
each scored by the task's own `score_answer`.

A row keeps verl's schema: `data_source` is `reasoning_gym/<task>` and the ground truth is the JSON of the
gym entry (question, answer, metadata), which is what `score_answer` needs. Train and held-out rows never
overlap: a row is held out when the hash of its question falls in one bucket of ten (as in the tiny world),
so no seed can put a held-out question into training."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from mathfirst.config import GymConfig, GymTask
from mathfirst.data.loaders import DataError, RLPrompt
from mathfirst.data.schema import GYM_SOURCE_PREFIX as SOURCE_PREFIX
from mathfirst.data.schema import task_hash
from mathfirst.data.world import HELDOUT_BUCKETS
from mathfirst.seed import derive_seed

# Our domain for each gym task we route; any other task needs `domain:` in its config entry.
GYM_DOMAINS = {
    **dict.fromkeys(
        ("basic_arithmetic", "chain_sum", "decimal_arithmetic", "decimal_chain_sum", "fraction_simplification",
         "gcd", "lcm", "gsm_symbolic", "simple_equations", "polynomial_equations", "prime_factorization",
         "products", "power_function", "leg_counting", "count_primes", "complex_arithmetic", "bitwise_arithmetic",
         "base_conversion", "time_intervals", "calendar_arithmetic"),
        "math",
    ),
    **dict.fromkeys(
        ("knights_knaves", "syllogism", "zebra_puzzles", "family_relationships", "propositional_logic",
         "self_reference", "circuit_logic", "aiw", "mini_sudoku", "futoshiki", "sudoku", "n_queens"),
        "logic",
    ),
    **dict.fromkeys(
        ("bf", "game_of_life", "codeio", "tower_of_hanoi", "jugs", "spiral_matrix", "rotate_matrix",
         "letter_counting", "number_sorting", "word_sorting", "spell_backward", "count_bits", "string_manipulation",
         "binary_alternation", "manipulate_matrix", "pool_matrix", "dice", "coin_flip"),
        "simulation",
    ),
}  # fmt: skip
SCAN_FACTOR = 40  # gym indices scanned per wanted row at most (held-out rows are one in ten, some repeat)


def task_domain(name: str, task: GymTask) -> str:
    domain = task.domain or GYM_DOMAINS.get(name)
    if domain is None:
        raise DataError(f"reasoning_gym task {name!r} has no default domain; give it `domain:` in the config")
    return domain


def check_gym(gym: GymConfig | None) -> None:
    """Every task exists in reasoning-gym and has a domain (before a run folder is touched)."""
    if gym is None:
        return
    try:
        from reasoning_gym.factory import DATASETS
    except ImportError:
        raise DataError("reasoning_gym tasks need the package: pip install 'mathfirst[real]'") from None
    for name, task in gym.tasks.items():
        if name not in DATASETS:
            raise DataError(f"reasoning_gym has no task {name!r} (see reasoning_gym.factory.DATASETS)")
        task_domain(name, task)


def covered_domains(gym: GymConfig | None) -> set[str]:
    return {task_domain(n, t) for n, t in gym.tasks.items()} if gym else set()


@cache
def _dataset(name: str, size: int, seed: int, options: str) -> Any:
    import reasoning_gym

    try:
        return reasoning_gym.create_dataset(name, size=size, seed=seed, **json.loads(options))
    except (ValueError, TypeError, AssertionError, KeyError) as e:
        raise DataError(f"reasoning_gym task {name!r}: {type(e).__name__}: {e}") from None


def gym_rows(name: str, task: GymTask, split: str, n: int, seed: int) -> list[RLPrompt]:
    """`n` prompts of one gym task and split; held-out rows are distinct, train rows may repeat."""
    size = n * SCAN_FACTOR
    dataset = _dataset(name, size, derive_seed(seed, "reasoning_gym", name), json.dumps(task.config, sort_keys=True))
    domain, rows, seen = task_domain(name, task), [], set()
    for i in range(size):
        entry = dataset[i]
        uid = task_hash(domain, entry["question"])
        held = int(uid, 16) % HELDOUT_BUCKETS == 0
        if held != (split == "heldout") or (split == "heldout" and uid in seen):
            continue
        seen.add(uid)
        truth = json.dumps({k: entry[k] for k in ("question", "answer", "metadata")}, default=str)
        rows.append(
            RLPrompt(
                SOURCE_PREFIX + name,
                domain,
                entry["question"],
                truth,
                {"uid": uid, "kind": name, "answer": str(entry["answer"])},
            )
        )
        if len(rows) == n:
            return rows
    raise DataError(f"reasoning_gym task {name!r}: only {len(rows)} distinct {split} rows of {n} wanted")


def gym_prompts(gym: GymConfig, domain: str, split: str, seed: int) -> list[RLPrompt]:
    """`gym.rows_per_domain` prompts of `domain`, split between its tasks by weight."""
    tasks = {n: t for n, t in gym.tasks.items() if task_domain(n, t) == domain}
    total = sum(t.weight for t in tasks.values())
    rows = []
    for name, task in tasks.items():
        rows += gym_rows(name, task, split, max(1, round(gym.rows_per_domain * task.weight / total)), seed)
    return rows
