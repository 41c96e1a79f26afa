"""Math tasks: one- and two-step word problems, linear equations, fractions of a number."""

from __future__ import annotations

import random

from mathfirst.data.schema import Task
from mathfirst.data.traces import Solution, Step, failed


def near_miss(value: int, rng: random.Random) -> str:
    """A plausible wrong value for a slip."""
    return str(value + rng.choice([-2, -1, 1, 2, 10]) if value >= 10 else value + rng.choice([1, 2]))


def divided(a: int, b: int) -> str:
    """a / b exactly, as a whole number or with its remainder (`61 / 7 = 8 r 5`)."""
    q, r = divmod(a, b)
    return f"{q} r {r}" if r else str(q)


NAMES = ["Ann", "Bob", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon"]
ITEMS = ["apples", "pens", "cards", "coins", "books", "shells", "stamps", "marbles"]


def _apply(op: str, x: int, y: int) -> int:
    return {"+": x + y, "-": x - y, "×": x * y}[op]


def _event(op: str, y: int, item: str) -> str:
    return {"+": f"gets {y} more", "-": f"gives {y} away", "×": f"ends up with {y} times as many {item}"}[op]


def word_problem(rng: random.Random, n_ops: int) -> Task:
    """A short story of `n_ops` changes to a count, each one a small fact (× only in one-step stories)."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    x = rng.randint(2, 9)
    start, story, steps, expr = x, [], [], str(x)
    for _ in range(n_ops):
        op = rng.choice(["+"] + ["-"] * (x >= 2) + ["×"] * (n_ops == 1))
        low, high = {"+": (2, 9), "-": (1, min(x - 1, 9)), "×": (2, 5)}[op]
        y = rng.randint(low, high)
        new = _apply(op, x, y)
        story.append(_event(op, y, item))
        steps.append(Step(f"{x} {op} {y}", str(new), near_miss(new, rng)))
        expr = f"{expr} {op} {y}"
        x = new
    q = f"{name} has {start} {item}, then {' and then '.join(story)}. How many {item} does {name} have now?"
    sol = Solution(
        subgoals=["follow each change in order."] if n_ops > 1 else [f"turn the change into one operation on {start}."],
        steps=steps,
        answer=str(x),
        check=f"{expr} = {x}",
        wrong_check=failed(f"{expr} = {x}", steps[-1].wrong),
    )
    return Task("math", n_ops, "word_problem", q, str(x), sol)


def one_step(rng: random.Random) -> Task:
    return word_problem(rng, 1)


def two_step(rng: random.Random) -> Task:
    return word_problem(rng, 2)


def linear_equation(rng: random.Random) -> Task:
    a, x, b = rng.randint(2, 5), rng.randint(1, 9), rng.randint(1, 9)
    c = a * x + b
    steps = [
        Step(f"{a}x = {c} - {b}", str(a * x), near_miss(a * x, rng)),
        Step(f"x = {a * x} / {a}", str(x), near_miss(x, rng)),
    ]
    sol = Solution(
        subgoals=[f"isolate x: first remove {b}, then divide by {a}."],
        steps=steps,
        answer=str(x),
        check=f"{a} × {x} + {b} = {c}",
        wrong_check=failed(f"{a} × {steps[-1].wrong} + {b} = {a * int(steps[-1].wrong) + b}", c),
    )
    return Task("math", 3, "linear_equation", f"Solve for x: {a}x + {b} = {c}.", str(x), sol)


def fraction_of(rng: random.Random) -> Task:
    q = rng.randint(2, 5)
    p = rng.randint(1, q - 1)
    k = rng.randint(2, 12)
    n = q * k
    steps = [
        Step(f"one part: {n} / {q}", str(k), near_miss(k, rng)),
        Step(f"{p} parts: {k} × {p}", str(k * p), near_miss(k * p, rng)),
    ]
    sol = Solution(
        subgoals=[f"split {n} into {q} parts, then take {p} of them."],
        steps=steps,
        answer=str(k * p),
        check=f"{k * p} × {q} / {p} = {n}",
        wrong_check=failed(f"{steps[-1].wrong} × {q} / {p} = {divided(int(steps[-1].wrong) * q, p)}", n),
    )
    question = rng.choice(["What is {f} of {n}?", "Find {f} of {n}.", "How much is {f} of {n}?"])
    return Task("math", 3, "fraction_of", question.format(f=f"{p}/{q}", n=n), str(k * p), sol)


GENERATORS = {1: [one_step], 2: [two_step], 3: [linear_equation, fraction_of]}


def generate(rng: random.Random, level: int) -> Task:
    return rng.choice(GENERATORS[level])(rng)
