"""Code tasks: small Python functions, checked by running HumanEval-style tests."""

from __future__ import annotations

import json
import random

from mathfirst.data.schema import Task
from mathfirst.data.traces import Solution, Step, failed

OPS = {"plus": "+", "minus": "-", "times": "*"}
COMPARE = {"greater than": ">", "less than": "<"}
LOOP_OPENINGS = [
    "Write a Python function f(xs) that returns",
    "Define a Python function f(xs) that returns",
    "Implement a Python function f(xs) that returns",
]


def _function(body: str):
    """The function `f` that our own generated program defines (never untrusted input)."""
    scope: dict = {}
    exec(body, scope)
    return scope["f"]


def _task(level: int, kind: str, question: str, body: str, wrong_body: str, goal: str, cases: list) -> Task:
    """Build a code task whose tests are the reference `body` run on `cases`."""
    fn, wrong_fn = _function(body), _function(wrong_body)
    args = [c if isinstance(c, tuple) else (c,) for c in cases]
    expected = [fn(*a) for a in args]
    wrong_last = wrong_fn(*args[-1])
    calls = [f"f({', '.join(repr(x) for x in a)})" for a in args]
    test = "def check(candidate):\n" + "".join(
        f"    assert candidate({c[2:-1]}) == {e!r}\n" for c, e in zip(calls, expected)
    )
    steps = [
        Step(c, repr(e), repr(e + 1) if isinstance(e, int) else repr(not e), case=True)
        for c, e in zip(calls[:2], expected)
    ]
    sol = Solution(
        subgoals=[goal],
        steps=steps,
        answer="",
        answer_block=body,
        wrong_block=wrong_body,
        check=f"{calls[-1]} = {expected[-1]!r}",
        wrong_check=failed(f"{calls[-1]} = {wrong_last!r}", repr(expected[-1])) if wrong_last != expected[-1] else "",
    )
    gold = json.dumps({"entry_point": "f", "test": test})
    return Task("code", level, kind, question, gold, sol, extra={"reference": body})


def arithmetic(rng: random.Random) -> Task:
    (w1, op1), (w2, op2) = rng.choice(sorted(OPS.items())), rng.choice(sorted(OPS.items()))
    a, b = rng.randint(2, 9), rng.randint(1, 9)
    wrong = rng.choice([o for o in OPS.values() if o != op1])
    return _task(
        1,
        "arithmetic",
        f"Write a Python function f(x) that returns x {w1} {a}, {w2} {b}.",
        f"def f(x):\n    return (x {op1} {a}) {op2} {b}",
        f"def f(x):\n    return (x {wrong} {a}) {op2} {b}",
        f"compute x {op1} {a}, then {op2} {b}.",
        rng.sample(range(0, 10), 3),
    )


def conditional(rng: random.Random) -> Task:
    word = rng.choice(sorted(COMPARE))
    k, m, j = rng.randint(2, 8), rng.randint(2, 9), rng.randint(1, 9)
    cmp = COMPARE[word]
    wrong = "<" if cmp == ">" else ">"
    body = f"def f(x):\n    if x {cmp} {k}:\n        return x * {m}\n    return x + {j}"
    return _task(
        2,
        "conditional",
        f"Write a Python function f(x) that returns x times {m} if x is {word} {k}, else x plus {j}.",
        body,
        body.replace(f"x {cmp} {k}", f"x {wrong} {k}"),
        f"branch on x {cmp} {k}.",
        [k - 1, k + 1, k + 2],
    )


def loop(rng: random.Random) -> Task:
    word = rng.choice(sorted(COMPARE))
    what = rng.choice(["sum", "count", "doubled sum"])
    k, j = rng.randint(2, 7), rng.randint(0, 9)
    cmp = COMPARE[word]
    update = {"sum": "total += x", "count": "total += 1", "doubled sum": "total += 2 * x"}[what]
    lines = ["def f(xs):", f"    total = {j}", "    for x in xs:", f"        if x {cmp} {k}:", f"            {update}"]
    body = "\n".join(lines + ["    return total"])
    wrong = body.replace(f"x {cmp} {k}", f"x {cmp}= {k}")
    cases = [([rng.randint(0, 9) for _ in range(4)],), ([rng.randint(0, 9) for _ in range(4)],), ([k, k + 1, k - 1],)]
    return _task(
        3,
        "loop",
        f"{rng.choice(LOOP_OPENINGS)} {j} plus the {what} of the numbers in xs {word} {k}.",
        body,
        wrong,
        f"start at {j}, loop over xs and keep x {cmp} {k}.",
        cases,
    )


GENERATORS = {1: [arithmetic], 2: [conditional], 3: [loop]}


def generate(rng: random.Random, level: int) -> Task:
    return rng.choice(GENERATORS[level])(rng)
