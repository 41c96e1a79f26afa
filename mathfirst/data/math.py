"""Math tasks: single-digit facts, column addition/subtraction, linear equations, fractions."""

from __future__ import annotations

import random

from mathfirst.data.reasoning import Solution, Step
from mathfirst.data.schema import Task

LEVELS = (1, 2, 3)


def near_miss(value: int, rng: random.Random) -> str:
    """A plausible wrong value for a slip."""
    return str(value + rng.choice([-2, -1, 1, 2, 10]) if value >= 10 else value + rng.choice([1, 2]))


def single_fact(rng: random.Random) -> Task:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    op = rng.choice("+-*")
    if op == "-":
        a, b = max(a, b) + rng.randint(0, 9), min(a, b)
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    sym = {"+": "+", "-": "-", "*": "×"}[op]
    inverse = {"+": f"{value} - {b} = {a}", "-": f"{value} + {b} = {a}", "*": f"{value} / {b} = {a}"}[op]
    sol = Solution(
        subgoals=[f"compute {a} {sym} {b}."],
        steps=[Step(f"{a} {sym} {b}", str(value), near_miss(value, rng))],
        answer=str(value),
        wrong_answer="",
        check=inverse,
    )
    return Task("math", 1, "fact", f"Compute {a} {sym} {b}.", str(value), sol)


def column_add(rng: random.Random) -> Task:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    ones = a % 10 + b % 10
    carry = ones // 10
    tens = a // 10 + b // 10 + carry
    total = a + b
    steps = [
        Step(f"ones: {a % 10} + {b % 10}", str(ones), near_miss(ones, rng)),
        Step(f"tens: {a // 10} + {b // 10} + {carry}", str(tens), near_miss(tens, rng)),
        Step(f"{a} + {b}", str(total), near_miss(total, rng)),
    ]
    sol = Solution(
        subgoals=["add the ones, then the tens with the carry."],
        steps=steps,
        answer=str(total),
        wrong_answer="",
        check=f"{total} - {b} = {a}",
    )
    return Task("math", 2, "column_add", f"Compute {a} + {b}.", str(total), sol)


def column_sub(rng: random.Random) -> Task:
    a, b = sorted(rng.sample(range(10, 100), 2), reverse=True)
    borrow = int(a % 10 < b % 10)
    ones = a % 10 + 10 * borrow - b % 10
    tens = a // 10 - borrow - b // 10
    diff = a - b
    steps = [
        Step(f"ones: {a % 10 + 10 * borrow} - {b % 10}", str(ones), near_miss(ones, rng)),
        Step(f"tens: {a // 10} - {borrow} - {b // 10}", str(tens), near_miss(tens, rng)),
        Step(f"{a} - {b}", str(diff), near_miss(diff, rng)),
    ]
    sol = Solution(
        subgoals=["subtract the ones (borrow if needed), then the tens."],
        steps=steps,
        answer=str(diff),
        wrong_answer="",
        check=f"{diff} + {b} = {a}",
    )
    return Task("math", 2, "column_sub", f"Compute {a} - {b}.", str(diff), sol)


def linear_equation(rng: random.Random) -> Task:
    a, x, b = rng.randint(2, 9), rng.randint(1, 9), rng.randint(1, 9)
    c = a * x + b
    steps = [
        Step(f"{a}x = {c} - {b}", str(a * x), near_miss(a * x, rng)),
        Step(f"x = {a * x} / {a}", str(x), near_miss(x, rng)),
    ]
    sol = Solution(
        subgoals=[f"isolate x: first remove {b}, then divide by {a}."],
        steps=steps,
        answer=str(x),
        wrong_answer="",
        check=f"{a} × {x} + {b} = {c}",
    )
    return Task("math", 3, "linear_equation", f"Solve for x: {a}x + {b} = {c}.", str(x), sol)


def fraction_of(rng: random.Random) -> Task:
    q = rng.randint(2, 9)
    p = rng.randint(1, q - 1)
    k = rng.randint(2, 9)
    n = q * k
    steps = [
        Step(f"one part: {n} / {q}", str(k), near_miss(k, rng)),
        Step(f"{p} parts: {k} × {p}", str(k * p), near_miss(k * p, rng)),
    ]
    sol = Solution(
        subgoals=[f"split {n} into {q} parts, then take {p} of them."],
        steps=steps,
        answer=str(k * p),
        wrong_answer="",
        check=f"{k * p} × {q} / {p} = {n}",
    )
    return Task("math", 3, "fraction_of", f"What is {p}/{q} of {n}?", str(k * p), sol)


GENERATORS = {1: [single_fact], 2: [column_add, column_sub], 3: [linear_equation, fraction_of]}


def generate(rng: random.Random, level: int) -> Task:
    return rng.choice(GENERATORS[level])(rng)
