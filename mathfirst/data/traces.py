"""The tiny world's shared reasoning language: one trace format for all six domains.

A worked solution is a list of lines. Four skill moves are explicit and detectable:
  Subgoal: ...      subgoal setting
  Case N: ...       enumeration of cases / candidates / iterations
  Check: ...        verification of a step or of the answer
  Wait, ...         backtracking: notices a slip and redoes the step
A trace ends with `Answer: \\boxed{...}` (or a fenced code block for code tasks), before it an answer check
that tests the answer by another route (an inverse operation, the labelled line it rests on, a closed form).
A slip is caught at once by re-checking the step, or only at the end, when the answer check fails.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SKILL_PREFIXES = {
    "subgoal": "Subgoal:",
    "enumeration": "Case ",
    "verification": "Check:",
    "backtracking": "Wait,",
}
FAILED_CHECK = ", not "  # a check that fails says what it found and what it did not: `Check: 61 / 7 = 8 r 5, not 9.`
CHECK_OUTCOMES = ("checks pass", "a check fails", "no check")  # how a response's checks went
ANSWER_CHECK_CATCHES = 0.5  # of the corrected slips, the share caught by the failing answer check at the end


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
    check: str = ""  # the answer check, without the prefix
    wrong_check: str = ""  # the answer check run on the slipped answer (or program): it fails ("..., not ...")
    answer_block: str = ""  # for code: the final program instead of a boxed answer
    wrong_block: str = ""


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
    slip_at, corrected, late = -1, True, False
    if sol.steps and rng.random() < style.slip_rate:
        corrected = rng.random() < style.corrected_share
        late = corrected and _can_fail_check(sol) and rng.random() < ANSWER_CHECK_CATCHES
        slip_at = rng.randrange(len(sol.steps)) if corrected and not late else len(sol.steps) - 1
        if late and sol.answer_block:
            slip_at = -1  # a program's slip is in the program itself
    case_no = 0
    for i, step in enumerate(sol.steps):
        prefix = ""
        if step.case:
            case_no += 1
            prefix = f"Case {case_no}: "
        if i == slip_at and step.wrong != step.value:
            lines.append(f"{prefix}{step.text} = {step.wrong}")
            if late:
                continue
            if not corrected:
                return _finish(lines, sol, style, rng, wrong=True), False
            lines.append(f"Check: {failed(f'{step.text} = {step.value}', step.wrong)}")
            lines.append(f"Wait, that step was wrong. Redo: {step.text} = {step.value}")
        else:
            lines.append(f"{prefix}{step.text} = {step.value}")
    if late:
        return _late_catch(lines, sol), True
    return _finish(lines, sol, style, rng, wrong=False), True


def failed(found: str, expected: object) -> str:
    """A failing check: what it found, and what it did not (`61 / 7 = 8 r 5, not 9.`)."""
    return f"{found}{FAILED_CHECK}{expected}."


def _can_fail_check(sol: Solution) -> bool:
    """Whether the answer check has a failing form for this solution's slip."""
    return bool(sol.wrong_check) and (bool(sol.answer_block) or sol.steps[-1].wrong != sol.steps[-1].value)


def _late_catch(lines: list[str], sol: Solution) -> str:
    """The slipped answer (or program) fails the answer check; the step is redone and the check passes."""
    if sol.answer_block:
        lines += [_program(sol.wrong_block), f"Check: {sol.wrong_check}", "Wait, that program was wrong. Redo:"]
        return "\n".join(lines + [_program(sol.answer_block), f"Check: {sol.check}"])
    last = sol.steps[-1]
    lines += [f"Check: {sol.wrong_check}", f"Wait, that step was wrong. Redo: {last.text} = {last.value}"]
    return "\n".join(lines + [f"Check: {sol.check}", _answer_line(sol.answer)])


def _program(block: str) -> str:
    return f"```python\n{block}\n```"


def _answer_line(answer: str) -> str:
    # A word keeps its leading space (`\\boxed{ Bob}`): the same token as in the lines above it.
    shown = f" {answer}" if answer[:1].isalpha() else answer
    return f"Answer: \\boxed{{{shown}}}"


def _finish(lines: list[str], sol: Solution, style: TraceStyle, rng: random.Random, wrong: bool) -> str:
    if sol.answer_block:
        lines.append(_program(sol.wrong_block if wrong else sol.answer_block))
        if sol.check and not wrong and rng.random() < style.skill_rate:
            lines.append(f"Check: {sol.check}")
        return "\n".join(lines)
    if sol.check and not wrong and rng.random() < style.skill_rate:
        lines.append(f"Check: {sol.check}")
    lines.append(_answer_line((sol.wrong_answer or sol.steps[-1].wrong) if wrong else sol.answer))
    return "\n".join(lines)


def detect_skills(text: str) -> dict[str, bool]:
    """Which of the four explicit skill moves a response shows."""
    starts = [line.strip() for line in text.splitlines()]
    return {skill: any(line.startswith(prefix) for line in starts) for skill, prefix in SKILL_PREFIXES.items()}


def check_outcome(text: str) -> str:
    """How a response's checks went: "a check fails", "checks pass" or "no check"."""
    lines = [line.strip() for line in text.splitlines()]
    checks = [line for line in lines if line.startswith(SKILL_PREFIXES["verification"])]
    passed, failed_one, none = CHECK_OUTCOMES
    if not checks:
        return none
    return failed_one if any(FAILED_CHECK in line for line in checks) else passed
