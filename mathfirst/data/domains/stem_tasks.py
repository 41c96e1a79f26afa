"""STEM tasks: unit conversions, physics formulas, multiple choice."""

from __future__ import annotations

import random

from mathfirst.data.domains.math_tasks import divided, near_miss
from mathfirst.data.schema import Task
from mathfirst.data.traces import Solution, Step, failed

LETTERS = "ABCD"

CONVERSIONS = [  # (unit, its singular, smaller unit, factor)
    ("km", "km", "m", 1000),
    ("m", "m", "cm", 100),
    ("m", "m", "mm", 1000),
    ("cm", "cm", "mm", 10),
    ("kg", "kg", "g", 1000),
    ("g", "g", "mg", 1000),
    ("L", "L", "mL", 1000),
    ("hours", "hour", "minutes", 60),
    ("minutes", "minute", "seconds", 60),
]
FORMULA_SUBJECTS = {
    "speed": ["car", "train", "bus", "truck", "ship"],
    "distance": ["cyclist", "boat", "runner", "horse", "plane"],
    "force": ["mass", "cart", "box", "ball", "sled"],
    "work": ["box", "crate", "sled", "cart", "trunk"],
}
CONVERT_WORDINGS = [
    "Convert {n} {big} to {small}.",
    "How many {small} are in {n} {big}?",
    "Express {n} {big} in {small}.",
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
    big, one, small, factor = rng.choice(CONVERSIONS)
    n = rng.randint(2, 12)
    value = n * factor
    sol = Solution(
        subgoals=[f"one {one} is {factor} {small}, so multiply by {factor}."],
        steps=[Step(f"{n} × {factor}", str(value), str(value + factor))],
        answer=str(value),
        check=f"{value} / {factor} = {n}",
        wrong_check=failed(f"{value + factor} / {factor} = {n + 1}", n),
    )
    question = rng.choice(CONVERT_WORDINGS).format(n=n, big=big, small=small)
    return Task("stem", 1, "convert", question, str(value), sol)


def unit_choice(rng: random.Random) -> Task:
    quantity = rng.choice(sorted(UNITS))
    options = [UNITS[quantity]] + rng.sample([u for q, u in UNITS.items() if q != quantity], 3)
    rng.shuffle(options)
    gold = LETTERS[options.index(UNITS[quantity])]
    listing = " ".join(f"{L}) {o}" for L, o in zip(LETTERS, options))
    wrong = rng.choice([L for L in LETTERS if L != gold])
    measures = {u: q for q, u in UNITS.items()}
    wrong_unit = options[LETTERS.index(wrong)]
    sol = Solution(
        subgoals=[f"recall the SI unit of {quantity}."],
        steps=[Step(f"unit of {quantity}", f"{UNITS[quantity]}, option {gold}", f"option {wrong}")],
        answer=gold,
        wrong_answer=wrong,
        check=f"{gold}) {UNITS[quantity]} measures {quantity}",
        wrong_check=failed(f"{wrong}) {wrong_unit} measures {measures[wrong_unit]}", quantity),
    )
    q = f"Which unit measures {quantity}? {listing}"
    return Task("stem", 1, "unit_choice", q, gold, sol, chance=0.25)


def formula(rng: random.Random, kind: str) -> Task:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    thing = rng.choice(FORMULA_SUBJECTS[kind])
    if kind == "speed":
        d = a * b
        q = f"A {thing} travels {d} km in {b} hours. What is its speed in km/h?"
        goal, text, value = "use speed = distance / time.", f"speed = {d} / {b}", a
        check, inverse = f"{a} × {b} = {d}", lambda w: failed(f"{w} × {b} = {w * b}", d)
    elif kind == "distance":
        q = f"A {thing} moves at {a} km/h for {b} hours. How far does it go, in km?"
        goal, text, value = "use distance = speed × time.", f"distance = {a} × {b}", a * b
        check, inverse = f"{a * b} / {b} = {a}", lambda w: failed(f"{w} / {b} = {divided(w, b)}", a)
    elif kind == "force":
        q = f"A {a} kg {thing} accelerates at {b} m/s^2. What force acts on it, in N?"
        goal, text, value = "use F = m × a.", f"F = {a} × {b}", a * b
        check, inverse = f"{a * b} / {b} = {a}", lambda w: failed(f"{w} / {b} = {divided(w, b)}", a)
    else:
        q = f"A force of {a} N pushes a {thing} {b} m. How much work is done, in J?"
        goal, text, value = "use W = F × d.", f"W = {a} × {b}", a * b
        check, inverse = f"{a * b} / {a} = {b}", lambda w: failed(f"{w} / {a} = {divided(w, a)}", b)
    wrong = near_miss(value, rng)
    sol = Solution(
        subgoals=[goal],
        steps=[Step(text, str(value), wrong)],
        answer=str(value),
        check=check,
        wrong_check=inverse(int(wrong)),
    )
    return Task("stem", 2, kind, q, str(value), sol)


def heaviest(rng: random.Random) -> Task:
    grams = rng.sample(range(1, 10), 4)
    grams = [g * 1000 if rng.random() < 0.5 else g * 100 + 1000 * rng.randint(0, 3) for g in grams]
    if len(set(grams)) < 4:
        return heaviest(rng)
    shown = [f"{g // 1000} kg" if g % 1000 == 0 else f"{g} g" for g in grams]
    gold = LETTERS[grams.index(max(grams))]
    steps, leader = [], 0
    for i, (L, s, g) in enumerate(zip(LETTERS, shown, grams)):  # keep a running leader: one comparison per step
        steps.append(Step(f"{L}) {s}", f"{g} g", f"{g + 100} g", case=True))
        leader = i if g > grams[leader] else leader
        steps.append(Step("heaviest so far", f"{LETTERS[leader]} {grams[leader]} g", f"{L} {g} g"))
    wrong = rng.choice([L for L in LETTERS if L != gold])
    steps.append(Step("heaviest", gold, wrong))
    listing = " ".join(f"{L}) {s}" for L, s in zip(LETTERS, shown))
    top, theirs = f"{gold} {max(grams)} g", f"{wrong} {grams[LETTERS.index(wrong)]} g"
    sol = Solution(
        subgoals=["write every option in grams, then compare."],
        steps=steps,
        answer=gold,
        wrong_answer=wrong,
        check=f"the last heaviest so far = {top}",
        wrong_check=failed(f"{theirs} is below {top}", "the heaviest"),
    )
    return Task("stem", 3, "heaviest", f"Which is the heaviest? {listing}", gold, sol, chance=0.25)


def speed(rng: random.Random) -> Task:
    return formula(rng, "speed")


def distance(rng: random.Random) -> Task:
    return formula(rng, "distance")


def force(rng: random.Random) -> Task:
    return formula(rng, "force")


def work(rng: random.Random) -> Task:
    return formula(rng, "work")


GENERATORS = {1: [convert, unit_choice], 2: [speed, distance, force, work], 3: [heaviest]}


def generate(rng: random.Random, level: int) -> Task:
    return rng.choice(GENERATORS[level])(rng)
