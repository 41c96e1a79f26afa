"""Logic tasks: propositional evaluation, orderings, knights and knaves."""

from __future__ import annotations

import itertools
import random

from mathfirst.data.schema import Task
from mathfirst.data.traces import Solution, Step, failed

NAMES = ["Ann", "Bob", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal"]
RELATIONS = [("taller", "tallest"), ("older", "oldest"), ("faster", "fastest")]


def _tf(b: bool) -> str:
    return "true" if b else "false"


def propositional(rng: random.Random) -> Task:
    env = {v: rng.random() < 0.5 for v in "pqrs"}
    a, b = rng.sample("pqrs", 2)
    neg = rng.random() < 0.5
    op = rng.choice(["and", "or"])
    inner = not env[b] if neg else env[b]
    value = (env[a] and inner) if op == "and" else (env[a] or inner)
    b_text = f"not {b}" if neg else b
    facts = ", ".join(f"{v} = {_tf(env[v])}" for v in "pqrs")
    # Each line starts with a word, so a variable is the same token (` q`) in the question and the trace.
    steps = [Step(f"given {v}", _tf(env[v]), _tf(not env[v])) for v in (a, b)]  # read the facts first
    if neg:
        steps.append(Step(f"so not {b}", _tf(inner), _tf(not inner)))
    steps.append(Step(f"so {a} {op} {b_text}", _tf(value), _tf(not value)))
    q = f"What is {a} {op} {b_text}, given {facts}?"
    both = f"{_tf(env[a])} {op} {_tf(inner)} = {_tf(value)}"
    sol = Solution(
        subgoals=["evaluate the inner parts first."],
        steps=steps,
        answer=_tf(value),
        check=both,
        wrong_check=failed(both, _tf(not value)),
    )
    return Task("logic", 1, "propositional", q, _tf(value), sol, chance=0.5)


def ordering(rng: random.Random) -> Task:
    people = rng.sample(NAMES, 3)  # people[0] is the top
    comparative, superlative = rng.choice(RELATIONS)
    pairs = [(people[i], people[i + 1]) for i in range(len(people) - 1)]
    rng.shuffle(pairs)
    facts = [f"{hi} is {comparative} than {lo}." for hi, lo in pairs]
    steps = [Step(f"fact {i}", f"{hi} > {lo}", f"{lo} > {hi}", case=True) for i, (hi, lo) in enumerate(pairs, 1)]
    for hi, _ in pairs:  # each first name: is it ever a second name?
        below = any(lo == hi for _, lo in pairs)
        steps.append(Step(f"is {hi} below someone", "yes" if below else "no", "no" if below else "yes"))
    steps.append(Step(f"the {superlative}", people[0], people[1]))
    q = f"Who is the {superlative}? {' '.join(facts)}"
    goal = "find who is never below anyone."
    sol = Solution(
        subgoals=[goal],
        steps=steps,
        answer=people[0],
        check=f"is {people[0]} below someone = no",
        wrong_check=failed(f"is {people[1]} below someone = yes", "no"),
    )
    return Task("logic", 2, "ordering", q, people[0], sol, chance=1 / len(people))


def _statement(rng: random.Random, speaker: str, other: str) -> tuple[str, object]:
    """A statement and its truth as a function of (speaker is knight, other is knight)."""
    kind = rng.randrange(4)
    if kind == 0:
        return f"{other} is a knave.", lambda s, o: not o
    if kind == 1:
        return f"{other} is a knight.", lambda s, o: o
    if kind == 2:
        return "We are the same kind.", lambda s, o: s == o
    return "At least one of us is a knave.", lambda s, o: (not s) or (not o)


def knights_knaves(rng: random.Random) -> Task:
    a, b = rng.sample(NAMES, 2)
    while True:
        sa, fa = _statement(rng, a, b)
        sb, fb = _statement(rng, b, a)
        ok = [(x, y) for x, y in itertools.product([True, False], repeat=2) if fa(x, y) == x and fb(y, x) == y]
        if len(ok) == 1:
            break
    kind = {True: "knight", False: "knave"}
    answer = f"{a} {kind[ok[0][0]]}, {b} {kind[ok[0][1]]}"
    steps = []
    for x, y in itertools.product([True, False], repeat=2):
        good = fa(x, y) == x and fb(y, x) == y
        steps.append(
            Step(
                f"{a} {kind[x]}, {b} {kind[y]}",
                "consistent" if good else "contradiction",
                "contradiction" if good else "consistent",
                case=True,
            )
        )
    wrong_pair = rng.choice([p for p in itertools.product([True, False], repeat=2) if p != ok[0]])
    steps.append(Step("the only consistent case", answer, f"{a} {kind[wrong_pair[0]]}, {b} {kind[wrong_pair[1]]}"))
    q = f"Knights always tell the truth and knaves always lie. {a} says: {sa} {b} says: {sb} What are {a} and {b}?"
    sol = Solution(
        subgoals=["try all four cases and keep the consistent one."],
        steps=steps,
        answer=answer,
        check=f"{answer} = consistent",
        wrong_check=failed(f"{steps[-1].wrong} = contradiction", "consistent"),
    )
    return Task("logic", 3, "knights_knaves", q, answer, sol, chance=0.25)


GENERATORS = {1: [propositional], 2: [ordering], 3: [knights_knaves]}


def generate(rng: random.Random, level: int) -> Task:
    return rng.choice(GENERATORS[level])(rng)
