"""Prompt templates as files: `task/<domain>.txt` for training and held-out tasks, `benchmark/<name>.txt` for
benchmarks. A template holds `{question}` and says how the final answer must be given, in the form the
domain's verifier reads."""

from __future__ import annotations

from functools import cache
from pathlib import Path

HERE = Path(__file__).parent  # every template file lives below this folder
STYLES = ("bare", "instruct")


def task_template_path(domain: str) -> Path:
    return HERE / "task" / f"{domain}.txt"


@cache
def task_template(domain: str) -> str:
    path = task_template_path(domain)
    if not path.is_file():
        raise FileNotFoundError(f"no instruction template for domain {domain!r} ({path})")
    return path.read_text()


def user_message(question: str, domain: str, style: str) -> str:
    """What the policy is asked: the bare question (the tiny model), or the question in its domain's
    instruction template (a pretrained model)."""
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose from: {', '.join(STYLES)}")
    if style == "bare":
        return question
    return task_template(domain).replace("{question}", question).rstrip("\n")
