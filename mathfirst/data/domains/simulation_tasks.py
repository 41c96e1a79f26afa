"""Simulation tasks: predict a state machine's state, a loop's output, a stack's top."""

from __future__ import annotations

import random

from mathfirst.data.domains.math_tasks import near_miss
from mathfirst.data.schema import Task
from mathfirst.data.traces import Solution, Step, failed

CYCLES = [
    ["red", "green", "yellow"],
    ["north", "east", "south", "west"],
    ["spring", "summer", "autumn", "winter"],
    ["small", "medium", "large"],
    ["low", "mid", "high"],
]
MACHINES = ["machine", "dial", "pointer", "switch", "robot", "lamp", "wheel", "counter"]


def state_machine(rng: random.Random) -> Task:
    cycle = rng.choice(CYCLES)
    start = rng.randrange(len(cycle))
    n = rng.randint(1, 4)
    states = [cycle[(start + i) % len(cycle)] for i in range(1, n + 1)]
    steps = [
        Step(f"after step {i}", s, cycle[(cycle.index(s) + 1) % len(cycle)], case=True) for i, s in enumerate(states, 1)
    ]
    loop = " -> ".join(cycle + [cycle[0]])
    q = f"A {rng.choice(MACHINES)} cycles {loop}. It starts at {cycle[start]}. Where is it after {n} steps?"
    before = ([cycle[start]] + states)[-2]  # the check reads the last move off the cycle: `before -> answer`
    sol = Solution(
        subgoals=[f"advance one state at a time, {n} times."],
        steps=steps,
        answer=states[-1],
        check=f"{before} -> {states[-1]}",
        wrong_check=failed(f"{before} -> {states[-1]}", steps[-1].wrong),
    )
    return Task("simulation", 1, "state_machine", q, states[-1], sol, chance=1 / len(cycle))


def loop(rng: random.Random) -> Task:
    x0, k, n = rng.randint(1, 9), rng.randint(2, 9), rng.randint(2, 4)
    op, v = rng.choice("+-"), rng.choice("xyzn")
    if op == "-":
        x0 += k * n
    x, steps = x0, []
    for i in range(n):
        new = x + k if op == "+" else x - k
        steps.append(Step(f"i = {i}: {v} = {x} {op} {k}", str(new), near_miss(new, rng), case=True))
        x = new
    program = f"{v} = {x0}\nfor i in range({n}):\n    {v} = {v} {op} {k}\nprint({v})"
    q = f"What does this program print?\n{program}"
    closed = f"{x0} {op} {n} × {k} = {x}"  # the loop's closed form: another route to the answer
    sol = Solution(
        subgoals=[f"run the loop {n} times, tracking {v}."],
        steps=steps,
        answer=str(x),
        check=closed,
        wrong_check=failed(closed, steps[-1].wrong),
    )
    return Task("simulation", 2, "loop", q, str(x), sol)


def stack(rng: random.Random) -> Task:
    ops, depth = [], 0
    for _ in range(rng.randint(4, 6)):
        if depth and rng.random() < 0.35:
            ops.append("pop")
            depth -= 1
        else:
            ops.append(f"push {rng.randint(1, 9)}")
            depth += 1
    if depth == 0:
        ops.append(f"push {rng.randint(1, 9)}")
    content: list[int] = []
    steps = []
    for op in ops:
        if op == "pop":
            content.pop()
        else:
            content.append(int(op.split()[1]))
        shown = "[" + ", ".join(map(str, content)) + "]"
        wrong = "[" + ", ".join(map(str, content[:-1] + [content[-1] % 9 + 1] if content else [1])) + "]"
        steps.append(Step(op, shown, wrong, case=True))
    top = str(content[-1])
    steps.append(Step("top", top, str(int(top) % 9 + 1)))
    q = f"Start with an empty stack and run: {', '.join(ops)}. Which number is on top?"
    last = f"the last stack {steps[-2].value} ends in {top}"
    sol = Solution(
        subgoals=["apply the operations in order, tracking the stack."],
        steps=steps,
        answer=top,
        check=last,
        wrong_check=failed(last, steps[-1].wrong),
    )
    return Task("simulation", 3, "stack", q, top, sol)


GENERATORS = {1: [state_machine], 2: [loop], 3: [stack]}


def generate(rng: random.Random, level: int) -> Task:
    return rng.choice(GENERATORS[level])(rng)
