"""STEM tasks: unit conversions, physics formulas, multiple choice."""

from __future__ import annotations

import random

from mathfirst.data.math import near_miss
from mathfirst.data.reasoning import Solution, Step
from mathfirst.data.schema import Task

LEVELS = (1, 2, 3)
LETTERS = "ABCD"

CONVERSIONS = [
    ("km", "m", 1000),
    ("m", "cm", 100),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("kg", "g", 1000),
]
UNITS = {
    "force": "newton",
    "energy": "joule",
    "power": "watt",
    "time": "second",
    "length": "meter",
    "mass": "kilogram",
    "current": "ampere",
    "temperature": "kelvin",
    "pressure": "pascal",
}


def convert(rng: random.Random) -> Task:
    big, small, factor = rng.choice(CONVERSIONS)
    n = rng.randint(2, 9)
    value = n * factor
    sol = Solution(
        subgoals=[f"one {big[:-1] if big.endswith('s') else big} is {factor} {small}, so multiply by {factor}."],
        steps=[Step(f"{n} × {factor}", str(value), str(value + factor))],
        answer=str(value),
        check=f"{value} / {factor} = {n}",
    )
    return Task("stem", 1, "convert", f"Convert {n} {big} to {small}.", str(value), sol)


def unit_choice(rng: random.Random) -> Task:
    quantity = rng.choice(sorted(UNITS))
    options = [UNITS[quantity]] + rng.sample([u for q, u in UNITS.items() if q != quantity], 3)
    rng.shuffle(options)
    gold = LETTERS[options.index(UNITS[quantity])]
    listing = " ".join(f"{L}) {o}" for L, o in zip(LETTERS, options))
    wrong = rng.choice([L for L in LETTERS if L != gold])
    sol = Solution(
        subgoals=[f"recall the SI unit of {quantity}."],
        steps=[Step(f"unit of {quantity}", f"{UNITS[quantity]}, option {gold}", f"option {wrong}")],
        answer=gold,
        wrong_answer=wrong,
    )
    q = f"Which unit measures {quantity}? {listing}"
    return Task("stem", 1, "unit_choice", q, gold, sol, chance=0.25)


def formula(rng: random.Random) -> Task:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    kind = rng.choice(["speed", "force", "work"])
    if kind == "speed":
        d = a * b
        q = f"A car travels {d} km in {b} hours. What is its speed in km/h?"
        goal, text, value = "use speed = distance / time.", f"speed = {d} / {b}", a
        check = f"{a} × {b} = {d}"
    elif kind == "force":
        q = f"A {a} kg mass accelerates at {b} m/s^2. What force acts on it, in N?"
        goal, text, value = "use F = m × a.", f"F = {a} × {b}", a * b
        check = f"{a * b} / {b} = {a}"
    else:
        q = f"A force of {a} N pushes a box {b} m. How much work is done, in J?"
        goal, text, value = "use W = F × d.", f"W = {a} × {b}", a * b
        check = f"{a * b} / {a} = {b}"
    sol = Solution(
        subgoals=[goal],
        steps=[Step(text, str(value), near_miss(value, rng))],
        answer=str(value),
        check=check,
    )
    return Task("stem", 2, kind, q, str(value), sol)


def heaviest(rng: random.Random) -> Task:
    grams = rng.sample(range(1, 10), 4)
    grams = [g * 1000 if rng.random() < 0.5 else g * 100 + 1000 * rng.randint(0, 3) for g in grams]
    if len(set(grams)) < 4:
        return heaviest(rng)
    shown = [f"{g // 1000} kg" if g % 1000 == 0 else f"{g} g" for g in grams]
    gold = LETTERS[grams.index(max(grams))]
    steps = [Step(f"{L}) {s}", f"{g} g", f"{g + 100} g", case=True) for L, s, g in zip(LETTERS, shown, grams)]
    wrong = rng.choice([L for L in LETTERS if L != gold])
    steps.append(Step("heaviest", gold, wrong))
    listing = " ".join(f"{L}) {s}" for L, s in zip(LETTERS, shown))
    sol = Solution(
        subgoals=["write every option in grams, then compare."], steps=steps, answer=gold, wrong_answer=wrong
    )
    return Task("stem", 3, "heaviest", f"Which is the heaviest? {listing}", gold, sol, chance=0.25)


GENERATORS = {1: [convert, unit_choice], 2: [formula], 3: [heaviest]}


def generate(rng: random.Random, level: int) -> Task:
    return rng.choice(GENERATORS[level])(rng)
