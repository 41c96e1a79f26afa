"""Where a response's final answer is: the last \\boxed{} (braces may nest), else the last `Answer:` line.
Every verifier reads the final answer from here, never the whole response, so a response that lists many
candidates earns nothing."""

from __future__ import annotations

import re

ANSWER_LINE = re.compile(r"^\s*(?:final answer|answer)\s*[:：]\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (braces may nest), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            if depth == 0:
                return text[i:j].strip()
            depth -= 1
    return None


def final_answer(text: str) -> str | None:
    """The last \\boxed{} content, else the last `Answer: ...` line, else None."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    lines = ANSWER_LINE.findall(text)
    return lines[-1].strip().rstrip(".") if lines else None
