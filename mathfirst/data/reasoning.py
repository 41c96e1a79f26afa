"""The tiny world's shared reasoning language: one trace format for all six domains.

A worked solution is a list of lines. Four skill moves are explicit and detectable:
  Subgoal: ...      subgoal setting
  Case N: ...       enumeration of cases / candidates / iterations
  Check: ...        verification of a step or of the answer
  Wait, ...         backtracking: notices a slip and redoes the step
A trace ends with `Answer: \\boxed{...}` (or a fenced code block for code tasks).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

SKILL_PREFIXES = {
    "subgoal": "Subgoal:",
    "enumeration": "Case ",
    "verification": "Check:",
    "backtracking": "Wait,",
}


@dataclass
class Step:
    """One computed line: `text = value`; `wrong` is a plausible slip for it."""

    text: str
    value: str
    wrong: str
    case: bool = False  # rendered as an enumeration line ("Case N: ...")


@dataclass
class Solution:
    """What a domain generator knows about how to solve one task."""

    subgoals: list[str]
    steps: list[Step]
    answer: str
    wrong_answer: str = ""  # the answer an uncorrected slip leads to; default: the last step's slip
    check: str = ""  # a final verification line, without the prefix
    answer_block: str = ""  # for code: the final program instead of a boxed answer
    wrong_block: str = ""
    extra_lines: list[str] = field(default_factory=list)


@dataclass
class TraceStyle:
    """How skill-rich a rendered trace is and how often it slips."""

    skill_rate: float = 1.0  # chance of each optional skill move (subgoal, check)
    slip_rate: float = 0.0  # chance that a trace contains a slip
    corrected_share: float = 1.0  # share of slips that a check/backtrack corrects


def render(sol: Solution, style: TraceStyle, rng: random.Random) -> tuple[str, bool]:
    """Render a solution as a trace; returns (text, is_correct)."""
    lines: list[str] = []
    if rng.random() < style.skill_rate:
        lines += [f"Subgoal: {s}" for s in sol.subgoals]
    slip_at = -1
    corrected = True
    if sol.steps and rng.random() < style.slip_rate:
        corrected = rng.random() < style.corrected_share
        slip_at = rng.randrange(len(sol.steps)) if corrected else len(sol.steps) - 1
    case_no = 0
    for i, step in enumerate(sol.steps):
        prefix = ""
        if step.case:
            case_no += 1
            prefix = f"Case {case_no}: "
        if i == slip_at and step.wrong != step.value:
            lines.append(f"{prefix}{step.text} = {step.wrong}")
            if corrected:
                lines.append(f"Check: {step.text} = {step.value}, not {step.wrong}.")
                lines.append(f"Wait, that step was wrong. Redo: {step.text} = {step.value}")
            else:
                return _finish(lines, sol, style, rng, wrong=True), False
        else:
            lines.append(f"{prefix}{step.text} = {step.value}")
    lines += sol.extra_lines
    return _finish(lines, sol, style, rng, wrong=False), True


def _finish(lines: list[str], sol: Solution, style: TraceStyle, rng: random.Random, wrong: bool) -> str:
    if sol.answer_block:
        block = sol.wrong_block if wrong else sol.answer_block
        lines.append(f"```python\n{block}\n```")
        if sol.check and not wrong and rng.random() < style.skill_rate:
            lines.append(f"Check: {sol.check}")
        return "\n".join(lines)
    if sol.check and not wrong and rng.random() < style.skill_rate:
        lines.append(f"Check: {sol.check}")
    answer = (sol.wrong_answer or sol.steps[-1].wrong) if wrong else sol.answer
    # A word keeps its leading space (`\\boxed{ Bob}`): the same token as in the lines above it.
    shown = f" {answer}" if answer[:1].isalpha() else answer
    lines.append(f"Answer: \\boxed{{{shown}}}")
    return "\n".join(lines)


def detect_skills(text: str) -> dict[str, bool]:
    """Which of the four explicit skill moves a response shows."""
    starts = [line.strip() for line in text.splitlines()]
    return {skill: any(line.startswith(prefix) for line in starts) for skill, prefix in SKILL_PREFIXES.items()}
