"""Table tasks: lookup, arg-max and totals over a small table."""

from __future__ import annotations

import random

from mathfirst.data.domains.math_tasks import near_miss
from mathfirst.data.schema import Task
from mathfirst.data.traces import Solution, Step, failed

NAMES = ["Ann", "Bob", "Cal", "Dee", "Eve", "Fay"]
COLUMNS = ["apples", "pears", "plums", "books", "coins"]


def _table(rng: random.Random) -> tuple[list[str], list[str], list[list[int]]]:
    names = rng.sample(NAMES, rng.randint(3, 4))
    cols = rng.sample(COLUMNS, 2)
    values = [[rng.randint(1, 9) for _ in cols] for _ in names]
    return names, cols, values


def _row(cells: list) -> str:
    return " | ".join(map(str, cells))


def _render(names: list[str], cols: list[str], values: list[list[int]]) -> str:
    rows = [_row(["name", *cols])] + [_row([n, *v]) for n, v in zip(names, values)]
    return "\n".join(f"| {row} |" for row in rows)


def _cell(name: str, row: list[int], c: int, col: str, case: bool = False, prefix: str = "") -> Step:
    """Read one cell in two moves: copy the row, then take the column from it.

    The copied row is written as in the table (`| Ann | 3 | 7 |`), after a word at a line start, so
    that the name is the same token (` Ann`) in the question, the table and the trace.
    """
    wrong = row[1 - c] if row[1 - c] != row[c] else row[c] % 9 + 1  # reading the wrong column is the natural slip
    return Step(f"{prefix}| {_row([name, *row])} |, {col}", str(row[c]), str(wrong), case=case)


def lookup(rng: random.Random) -> Task:
    names, cols, values = _table(rng)
    r, c = rng.randrange(len(names)), rng.randrange(len(cols))
    value = values[r][c]
    q = f"How many {cols[c]} does {names[r]} have?\n{_render(names, cols, values)}"
    step = _cell(names[r], values[r], c, cols[c], prefix="row ")
    sol = Solution(
        subgoals=[f"find the row of {names[r]}, then the column {cols[c]}."],
        steps=[step],
        answer=str(value),
        check=f"{cols[c]} of {names[r]} = {value}",
        wrong_check=failed(f"{cols[c]} of {names[r]} = {value}", step.wrong),
    )
    return Task("table", 1, "lookup", q, str(value), sol)


def arg_max(rng: random.Random) -> Task:
    names, cols, values = _table(rng)
    c = rng.randrange(len(cols))
    column = [v[c] for v in values]
    if column.count(max(column)) > 1:
        return arg_max(rng)
    best = names[column.index(max(column))]
    steps, leader = [], 0
    for i, (n, row) in enumerate(zip(names, values)):  # keep a running leader: each step compares two numbers
        steps.append(_cell(n, row, c, cols[c], case=True))
        leader = i if column[i] > column[leader] else leader
        shown = f"{names[leader]} {column[leader]}"
        steps.append(Step("most so far", shown, f"{n} {row[c]}" if i != leader else f"{names[0]} {column[0]}"))
    wrong = rng.choice([n for n in names if n != best])
    steps.append(Step("most", best, wrong))
    q = f"Who has the most {cols[c]}?\n{_render(names, cols, values)}"
    top, theirs = f"{best} {max(column)}", f"{wrong} {column[names.index(wrong)]}"
    sol = Solution(
        subgoals=[f"compare the {cols[c]} of every row."],
        steps=steps,
        answer=best,
        check=f"the last most so far = {top}",
        wrong_check=failed(f"{theirs} is below {top}", "the most"),
    )
    return Task("table", 2, "arg_max", q, best, sol, chance=1 / len(names))


def total(rng: random.Random) -> Task:
    names, cols, values = _table(rng)
    c = rng.randrange(len(cols))
    column = [v[c] for v in values]
    steps = [_cell(n, row, c, cols[c], case=True) for n, row in zip(names, values)]
    running = column[0]
    for v in column[1:]:
        steps.append(Step(f"{running} + {v}", str(running + v), near_miss(running + v, rng)))
        running += v
    q = f"How many {cols[c]} are there in total?\n{_render(names, cols, values)}"
    sol = Solution(
        subgoals=[f"add the {cols[c]} column row by row."],
        steps=steps,
        answer=str(running),
        check=f"{' + '.join(map(str, column))} = {running}",
        wrong_check=failed(f"{' + '.join(map(str, column))} = {running}", steps[-1].wrong),
    )
    return Task("table", 3, "total", q, str(running), sol)


GENERATORS = {1: [lookup], 2: [arg_max], 3: [total]}


def generate(rng: random.Random, level: int) -> Task:
    return rng.choice(GENERATORS[level])(rng)
