"""Execution-based code verification in the sandbox.

`ground_truth` is JSON in one of two forms:
- HumanEval style `{"entry_point": ..., "test": ..., "prompt"?: ...}`: the test defines `check(candidate)`;
  with a prompt, the program is prompt + "\n" + code, as HumanEval's harness runs it;
- stdin/stdout style `{"inputs": [...], "outputs": [...]}` (Guru, LiveCodeBench): one run per case;
- `{"functional": ...}`: a test script that runs after the program (Guru's LeetCode-style problems).
The program is the last fenced python block of the response (the whole response when there is none).
"""

from __future__ import annotations

import json
import os
import re
import secrets

from mathfirst.rewards.answers import final_answer
from mathfirst.rewards.sandbox import Limits, run_python

FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL)

# The program and the tests run inside this harness. The nonce that proves the tests ran to their end
# arrives through a pipe (never in a file or the environment) and is written last, straight to fd 1,
# before an os._exit that skips any atexit hook the program registered.
HARNESS = """\
def _mathfirst_harness(program, test, entry_point):
    import os, sys
    fd = int(sys.argv.pop())
    nonce = os.read(fd, 64)
    os.close(fd)
    scope = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(program, "solution.py", "exec"), scope)
    exec(compile(test, "test.py", "exec"), scope)
    scope["check"](scope[entry_point])
    sys.stdout.flush()
    os.write(1, b"\\n" + nonce + b"\\n")
    os._exit(0)
"""


def last_code_block(text: str) -> str:
    """The last fenced python block, or the whole text when there is none."""
    blocks = FENCE.findall(text)
    return blocks[-1] if blocks else text


def run_check(program: str, entry_point: str, test: str, limits: Limits | None = None) -> dict:
    """HumanEval style: pass only when `check(entry_point)` returns and the harness reaches its end."""
    nonce = secrets.token_hex(16).encode()
    read, write = os.pipe()
    try:
        os.write(write, nonce)
        os.close(write)
        script = f"{HARNESS}\n\n_mathfirst_harness({program!r}, {test!r}, {entry_point!r})\n"
        result = run_python(script, limits=limits, pass_fds=(read,))
    finally:
        os.close(read)
    lines = result.stdout.rstrip("\n").splitlines()
    ok = result.returncode == 0 and bool(lines) and lines[-1] == nonce.decode()
    return _verdict(ok, result)


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
    program = last_code_block(solution)
    if "entry_point" in spec and "test" in spec:
        # HumanEval runs prompt + completion: the prompt's imports count, a full rewrite of the function wins
        program = spec.get("prompt", "") + "\n" + program if spec.get("prompt") else program
        return run_check(program, spec["entry_point"], spec["test"])
    if "inputs" in spec and "outputs" in spec:
        return run_io(program, spec["inputs"], spec["outputs"])
    if "functional" in spec:  # a test script run after the program (Guru, LeetCode style)
        test = "def check(_):\n" + "".join(f"    {line}\n" for line in spec["functional"].splitlines())
        return run_check(program, "__name__", test)
    raise ValueError("code ground_truth needs {entry_point, test}, {inputs, outputs} or {functional}")


def score_output_prediction(solution: str, ground_truth: str) -> dict:
    """CRUXEval-O, checked as its harness does: `assert <true output> == <predicted>` runs after the code."""
    spec = json.loads(ground_truth)
    predicted = final_answer(solution)
    if predicted is None:
        return {"score": 0.0, "acc": False, "pred": None, "reason": "no final answer"}
    predicted = last_code_block(predicted).strip().strip("`")
    test = f"def check(candidate):\n    assert {spec['output']} == ({predicted})\n"
    return {**run_check(spec["code"], "f", test), "pred": predicted}
