"""Execution-based code checks: run the response's program against HumanEval-style tests.

A plain subprocess with a timeout; the isolated sandbox replaces it in the verifiers issue.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile

FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def last_code_block(text: str) -> str:
    """The last fenced python block, or the whole text when there is none."""
    blocks = FENCE.findall(text)
    return blocks[-1] if blocks else text


def run_tests(program: str, ground_truth: str, timeout: float = 5.0) -> dict:
    """Pass only if the program and `check(entry_point)` run to their end: a nonce printed last proves it."""
    spec = json.loads(ground_truth)
    nonce = secrets.token_hex(8)
    script = f"{program}\n\n{spec['test']}\n\ncheck({spec['entry_point']})\nprint({nonce!r})\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "program.py")
        with open(path, "w", encoding="utf-8", errors="replace") as f:
            f.write(script)
        try:
            proc = subprocess.run(
                [sys.executable, "-I", path],
                cwd=tmp,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                env={"PATH": os.environ.get("PATH", "")},
            )
        except subprocess.TimeoutExpired:
            return {"score": 0.0, "acc": False, "reason": "timeout"}
    lines = proc.stdout.strip().splitlines()
    ok = proc.returncode == 0 and bool(lines) and lines[-1] == nonce
    reason = "" if ok else (proc.stderr.strip().splitlines() or ["tests did not finish"])[-1][:200]
    return {"score": float(ok), "acc": ok, "reason": reason}


def score_code(solution: str, ground_truth: str) -> dict:
    return run_tests(last_code_block(solution), ground_truth)
