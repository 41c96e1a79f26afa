"""Execution-based code verification in the sandbox.

`ground_truth` is JSON in one of three forms:
- HumanEval style `{"entry_point": ..., "test": ..., "prompt"?: ...}`: the test defines `check(candidate)`;
  with a prompt, the prompt's code comes first, as HumanEval's harness runs prompt + completion;
- stdin/stdout style `{"inputs": [...], "outputs": [...]}` (Guru, LiveCodeBench): one run per case;
- `{"functional": ...}`: a test script that runs after the program (Guru's LeetCode-style problems).
With an entry point (the first and third forms), the program is what a user takes from the answer: its code
blocks run in order, later definitions winning, kept to what the entry point and the test need (`sanitize.py`).
Without one (stdin/stdout), the top-level code is the program, so it is the last fenced python block (the whole
response when there is none): a later block is a rewrite, and example usage cannot be told from the program.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
from pathlib import Path

from mathfirst.rewards.answers import final_answer
from mathfirst.rewards.harness.check import run_test
from mathfirst.rewards.sandbox import Limits, run_python, start_python
from mathfirst.rewards.sanitize import sanitize

FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL)

LIMITS = Limits()  # each program's: wall clock, CPU, memory, processes, what it may write
HARNESS = Path(__file__).parent / "harness"
PROGRAM_SIDE = (HARNESS / "wire.py").read_text() + "\n" + (HARNESS / "program.py").read_text()  # the sandbox's
NO_PROGRAM = {"score": 0.0, "acc": False, "reason": "the answer's code defines nothing the test calls"}


def last_code_block(text: str) -> str:
    """The last fenced python block, or the whole text when there is none."""
    blocks = FENCE.findall(text)
    return blocks[-1] if blocks else text


def run_check(program: str, entry_point: str, test: str, limits: Limits | None = None) -> dict:
    """HumanEval style: the program runs in the sandbox; the test runs here, calling into it over two pipes and
    getting back plain data only (harness/check.py). It passes only when `check(entry_point)` returns."""
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    try:
        tested = start_python(
            f"{PROGRAM_SIDE}\nserve_program({program!r})\n", limits=limits, pass_fds=(requests_read, replies_write)
        )
    finally:
        os.close(requests_read)  # the sandbox holds these ends now: when it dies, we read EOF
        os.close(replies_write)
    t0 = time.perf_counter()
    try:
        run_test(test, entry_point, requests_write, replies_read)
        failure = None
    except (Exception, SystemExit) as e:  # the test failed, or the program died, or sent garbage
        failure = f"{type(e).__name__}: {e}"[:200]
    finally:
        os.close(requests_write)
        os.close(replies_read)
    ran = tested.stop(grace_s=0.5)  # the program reads EOF and exits
    ok = failure is None
    reason = "" if ok else "timeout" if ran.timed_out else failure
    if not ok and not ran.timed_out and failure.startswith("EOFError") and ran.stderr.strip():
        reason = ran.stderr.strip().splitlines()[-1][:200]  # the program's own error says more
    seconds = round(time.perf_counter() - t0, 4)
    return {"score": float(ok), "acc": ok, "reason": reason, "run_s": seconds, "isolated": ran.isolated}


def run_io(program: str, inputs: list[str], outputs: list[str], limits: Limits | None = None) -> dict:
    """stdin/stdout style: every case's output must match (trailing spaces and blank lines ignored)."""
    seconds = 0.0
    for i, (stdin, expected) in enumerate(zip(inputs, outputs)):
        result = run_python(program, stdin=str(stdin), limits=limits)
        seconds += result.seconds
        if result.timed_out or result.returncode != 0 or _lines(result.stdout) != _lines(str(expected)):
            verdict = _verdict(False, result)
            verdict["reason"] = f"case {i}: {verdict['reason'] or 'wrong output'}"
            return verdict
    return {"score": 1.0, "acc": True, "reason": "", "cases": len(inputs), "run_s": round(seconds, 4)}


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def _verdict(ok: bool, result) -> dict:
    if ok:
        reason = ""
    elif result.timed_out:
        reason = "timeout"
    else:
        reason = (result.stderr.strip().splitlines() or ["tests did not run to their end"])[-1][:200]
    return {"score": float(ok), "acc": ok, "reason": reason, "run_s": result.seconds, "isolated": result.isolated}


def score_code(solution: str, ground_truth: str) -> dict:
    spec = json.loads(ground_truth)
    if "entry_point" in spec and "test" in spec:
        # HumanEval runs prompt + completion: the prompt's definitions count, a full rewrite of the function wins
        program = sanitize(solution, spec["entry_point"], spec["test"], spec.get("prompt", ""))
        return run_check(program, spec["entry_point"], spec["test"], LIMITS) if program else dict(NO_PROGRAM)
    if "inputs" in spec and "outputs" in spec:
        return run_io(last_code_block(solution), spec["inputs"], spec["outputs"], LIMITS)
    if "functional" in spec:  # a test script run after the program (Guru, LeetCode style)
        test = "def check(_):\n" + "".join(f"    {line}\n" for line in spec["functional"].splitlines())
        program = sanitize(solution, "__name__", test)
        return run_check(program, "__name__", test, LIMITS) if program else dict(NO_PROGRAM)
    raise ValueError("code ground_truth needs {entry_point, test}, {inputs, outputs} or {functional}")


def score_output_prediction(solution: str, ground_truth: str) -> dict:
    """CRUXEval-O: the predicted output must be a Python literal equal to the true one (compared as values,
    as its harness's `assert <output> == <predicted>` does). Nothing is executed: an expression such as
    `f('abc')`, which the harness would run and accept, is not a prediction and scores 0."""
    spec = json.loads(ground_truth)
    predicted = final_answer(solution)
    if predicted is None:
        return {"score": 0.0, "acc": False, "pred": None, "reason": "no final answer"}
    predicted = last_code_block(predicted).strip().strip("`")
    try:
        value = ast.literal_eval(predicted)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return {"score": 0.0, "acc": False, "pred": predicted, "reason": "the prediction is not a Python literal"}
    try:
        ok = bool(ast.literal_eval(spec["output"]) == value)
    except (ValueError, TypeError, RecursionError):
        ok = False
    return {"score": float(ok), "acc": ok, "pred": predicted, "reason": "" if ok else "wrong output"}
